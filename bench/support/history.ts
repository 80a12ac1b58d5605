/**
 * What a sync run cost Temporal, read from its history: events and workflow tasks over every execution of the run
 * (continue-as-new included), and per activity type the time from scheduled to completed and the results.
 */
import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
type Timestamp = { seconds?: unknown; nanos?: number | null } | null | undefined;

/** Per activity type: how many ran, their summed time and the span from the first scheduled to the last completed. */
export interface ActivityStage {
  count: number;
  /** Sum of scheduled → completed times. */
  busyMs: number;
  /** First scheduled → last completed. */
  spanMs: number;
  firstScheduledAt: number;
  lastCompletedAt: number;
  /** Attempts beyond the first (retries). */
  retries: number;
}

/** A run's cost in Temporal terms. */
export interface RunHistory {
  executions: number;
  events: number;
  workflowTasks: number;
  activities: Record<string, ActivityStage>;
  /** First event of the first execution → last event of the last one. */
  wallMs: number;
  /** Sum of `requests` over the sendChunk results. */
  requests: number;
}

function ms(ts: Timestamp): number {
  if (ts === null || ts === undefined) return 0;
  return Number(ts.seconds ?? 0) * 1000 + (ts.nanos ?? 0) / 1e6;
}

/** The decoded JSON result of a completed activity (the default data converter, no codec). */
function activityResult(event: HistoryEvent): unknown {
  const data = event.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data;
  if (data === null || data === undefined) return undefined;
  return JSON.parse(Buffer.from(data).toString('utf8')) as unknown;
}

/** Fetches every execution of a workflow run, following continue-as-new from `firstRunId`, and sums their costs. */
export async function runHistory(client: Client, workflowId: string, firstRunId: string): Promise<RunHistory> {
  const events: HistoryEvent[] = [];
  let executions = 0;
  for (let runId: string | undefined = firstRunId; runId !== undefined && runId !== '';) {
    const history: temporal.api.history.v1.IHistory = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    executions += 1;
    runId = undefined;
    for (const event of history.events ?? []) {
      events.push(event);
      const next: string | null | undefined = event.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
      if (next !== null && next !== undefined) runId = next;
    }
  }
  return summarize(events, executions);
}

/** Sums events, workflow tasks and activity timings of the given events (of one or more executions). */
export function summarize(events: HistoryEvent[], executions: number): RunHistory {
  const scheduled = new Map<string, { type: string; at: number }>();
  const activities: Record<string, ActivityStage> = {};
  let workflowTasks = 0;
  let requests = 0;
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (const event of events) {
    const at = ms(event.eventTime);
    first = Math.min(first, at);
    last = Math.max(last, at);
    if (
      event.workflowTaskCompletedEventAttributes ||
      event.workflowTaskFailedEventAttributes ||
      event.workflowTaskTimedOutEventAttributes
    ) {
      workflowTasks += 1;
    }
    const sched = event.activityTaskScheduledEventAttributes;
    if (sched) {
      scheduled.set(String(event.eventId), { type: sched.activityType?.name ?? '?', at });
      continue;
    }
    const started = event.activityTaskStartedEventAttributes;
    if (started) {
      const s = scheduled.get(String(started.scheduledEventId));
      if (s !== undefined && (started.attempt ?? 1) > 1)
        stage(activities, s.type).retries += (started.attempt ?? 1) - 1;
      continue;
    }
    const done = event.activityTaskCompletedEventAttributes;
    if (done) {
      const s = scheduled.get(String(done.scheduledEventId));
      if (s === undefined) continue;
      const st = stage(activities, s.type);
      st.count += 1;
      st.busyMs += at - s.at;
      st.firstScheduledAt = Math.min(st.firstScheduledAt, s.at);
      st.lastCompletedAt = Math.max(st.lastCompletedAt, at);
      st.spanMs = st.lastCompletedAt - st.firstScheduledAt;
      if (s.type === 'sendChunk') {
        const result = activityResult(event) as { requests?: number } | undefined;
        requests += result?.requests ?? 0;
      }
    }
    // a new execution starts its event ids over: forget the previous execution's scheduled events
    if (event.workflowExecutionContinuedAsNewEventAttributes) scheduled.clear();
  }
  return {
    executions,
    events: events.length,
    workflowTasks,
    activities,
    wallMs: events.length === 0 ? 0 : last - first,
    requests,
  };
}

function stage(activities: Record<string, ActivityStage>, type: string): ActivityStage {
  let s = activities[type];
  if (s === undefined) {
    s = {
      count: 0,
      busyMs: 0,
      spanMs: 0,
      firstScheduledAt: Number.POSITIVE_INFINITY,
      lastCompletedAt: 0,
      retries: 0,
    };
    activities[type] = s;
  }
  return s;
}

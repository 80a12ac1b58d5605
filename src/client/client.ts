/**
 * Typed client API: start and inspect syncs, manage their Schedules, from the CLI or any other service.
 *
 *   const ampsync = await AmpsyncClient.connect();
 *   const result = await ampsync.run(sync, { onProgress: (p) => console.log(p.phase) });
 */
import {
  Client,
  Connection,
  ScheduleNotFoundError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type ScheduleOptions,
  type ScheduleOptionsStartWorkflowAction,
  type WorkflowHandle,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import { createHash } from 'node:crypto';
import type { PayloadCodec } from '@temporalio/common';
import type { SyncConfig } from '../config/schema';
import { codecFromEnv, ENCODED_FAILURES_PATH } from '../temporal/codec';
import { DEFAULT_TASK_QUEUE, MANAGED_SCHEDULE_MEMO, syncScheduleId, syncWorkflowId } from '../temporal/names';
import {
  SA_OBJECT,
  SA_ROWS_CHANGED,
  SA_ROWS_DELIVERED,
  SA_ROWS_REJECTED,
  SA_STATUS,
  SA_SYNC_ID,
} from '../temporal/search-attributes';
import { temporalTarget } from '../temporal/connection';
import {
  pauseSignal,
  progressQuery,
  resumeSignal,
  type SyncProgress,
  type SyncTrigger,
  type SyncWorkflowResult,
} from '../../workflows/definitions';
import type { scheduledSyncWorkflow, syncWorkflow } from '../../workflows';

/** A run of this sync is already going (one workflow id per sync: runs never overlap). */
export class SyncAlreadyRunningError extends Error {
  override readonly name = 'SyncAlreadyRunningError';
  constructor(
    readonly syncId: string,
    readonly runId: string | undefined,
  ) {
    super(`sync "${syncId}" is already running (workflow ${syncWorkflowId(syncId)}${runId ? `, run ${runId}` : ''})`);
  }
}

/** No run of this sync exists (never started, or history expired). */
export class SyncNotFoundError extends Error {
  override readonly name = 'SyncNotFoundError';
}

export interface AmpsyncClientOptions {
  client: Client;
  taskQueue?: string;
}

export interface ConnectOptions {
  address?: string;
  namespace?: string;
  taskQueue?: string;
  /**
   * Encrypts payloads, failure messages and stack traces (default: the codec AMPSYNC_CODEC_KEY /
   * AMPSYNC_CODEC_KEY_FILE configure; null for none).
   */
  payloadCodec?: PayloadCodec | null;
}

export interface RunOptions {
  trigger?: SyncTrigger;
  /** Called with the progress about every `pollMs` while the run goes. */
  onProgress?: (progress: SyncProgress) => void;
  pollMs?: number;
  /** Testing/ops knob passed to the workflow. */
  chunksPerExecution?: number;
}

/** One past or current run, as Temporal's visibility lists it. */
export interface RunListing {
  workflowId: string;
  runId: string;
  status: string;
  startTime: Date;
  closeTime: Date | undefined;
  syncStatus: string | undefined;
  rowsChanged: number | undefined;
  rowsDelivered: number | undefined;
  rowsRejected: number | undefined;
}

export interface ApplyResult {
  created: string[];
  updated: string[];
  deleted: string[];
  unchanged: string[];
}

function fingerprint(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

function durationToMs(text: string): number {
  const n = Number(text.slice(0, -1));
  const unit = text.slice(-1);
  const factor = unit === 's' ? 1000 : unit === 'm' ? 60_000 : unit === 'h' ? 3_600_000 : 86_400_000;
  return n * factor;
}

const OVERLAP = {
  skip: 'SKIP',
  buffer_one: 'BUFFER_ONE',
  allow_all: 'ALLOW_ALL',
  cancel_other: 'CANCEL_OTHER',
  terminate_other: 'TERMINATE_OTHER',
} as const;

export class AmpsyncClient {
  readonly client: Client;
  readonly taskQueue: string;

  constructor(options: AmpsyncClientOptions) {
    this.client = options.client;
    this.taskQueue = options.taskQueue ?? DEFAULT_TASK_QUEUE;
  }

  /** Connects with the standard Temporal environment (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, ...). */
  static async connect(options: ConnectOptions = {}): Promise<AmpsyncClient> {
    const target = temporalTarget(options);
    const codec = options.payloadCodec === undefined ? codecFromEnv() : options.payloadCodec;
    const connection = await Connection.connect({
      address: target.address,
      ...(target.apiKey !== undefined ? { apiKey: target.apiKey } : {}),
      ...(target.tls !== undefined ? { tls: target.tls } : {}),
    });
    const client = new Client({
      connection,
      namespace: target.namespace,
      // with the codec, failure messages and stack traces are encrypted too (see encoded-failures.ts)
      ...(codec ? { dataConverter: { payloadCodecs: [codec], failureConverterPath: ENCODED_FAILURES_PATH } } : {}),
    });
    return new AmpsyncClient({ client, ...(options.taskQueue !== undefined ? { taskQueue: options.taskQueue } : {}) });
  }

  async close(): Promise<void> {
    await this.client.connection.close();
  }

  /** Starts a run; throws SyncAlreadyRunningError when one is going. */
  async start(
    sync: SyncConfig,
    options: Omit<RunOptions, 'onProgress' | 'pollMs'> = {},
  ): Promise<WorkflowHandleWithFirstExecutionRunId<typeof syncWorkflow>> {
    try {
      return await this.client.workflow.start<typeof syncWorkflow>('syncWorkflow', {
        workflowId: syncWorkflowId(sync.id),
        taskQueue: this.taskQueue,
        args: [
          {
            sync,
            trigger: options.trigger ?? 'client',
            ...(options.chunksPerExecution !== undefined ? { chunksPerExecution: options.chunksPerExecution } : {}),
          },
        ],
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        // the run's memo and starting search attributes: the workflow then writes neither at its start
        memo: { syncId: sync.id, object: sync.object, trigger: options.trigger ?? 'client' },
        typedSearchAttributes: [
          { key: SA_SYNC_ID, value: sync.id },
          { key: SA_OBJECT, value: sync.object },
          { key: SA_STATUS, value: 'running' },
        ],
        staticSummary: `ampsync ${sync.object} sync "${sync.id}"`,
        staticDetails: describeSync(sync),
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        const running = await this.client.workflow
          .getHandle(syncWorkflowId(sync.id))
          .describe()
          .catch(() => undefined);
        throw new SyncAlreadyRunningError(sync.id, running?.runId);
      }
      throw err;
    }
  }

  /** Starts a run and waits for its result, reporting progress along the way. */
  async run(sync: SyncConfig, options: RunOptions = {}): Promise<SyncWorkflowResult> {
    const handle = await this.start(sync, options);
    return this.follow(handle, options);
  }

  /** Waits for a started run (following continue-as-new), polling its progress query. */
  async follow(handle: WorkflowHandle<typeof syncWorkflow>, options: RunOptions = {}): Promise<SyncWorkflowResult> {
    const done = handle.result();
    if (options.onProgress) {
      const onProgress = options.onProgress;
      let finished = false;
      void done.finally(() => (finished = true)).catch(() => undefined);
      const pause = (): Promise<unknown> =>
        Promise.race([done.catch(() => undefined), new Promise((r) => setTimeout(r, options.pollMs ?? 500))]);
      const poll = async (): Promise<void> => {
        // not at once: a query that lands while the run's first task waits for its local prepare step costs the
        // run an extra workflow task (3 history events), and says only "preparing"
        await pause();
        while (!finished) {
          const p = await this.progress(handle.workflowId).catch(() => null);
          if (p && !finished) onProgress(p);
          await pause();
        }
      };
      const polling = poll();
      try {
        return await done;
      } finally {
        await polling;
      }
    }
    return done;
  }

  /** Progress of the sync's current (or latest) run; null when it never ran. */
  async progress(syncIdOrWorkflowId: string): Promise<SyncProgress | null> {
    const id = syncIdOrWorkflowId.startsWith('ampsync/') ? syncIdOrWorkflowId : syncWorkflowId(syncIdOrWorkflowId);
    try {
      return await this.client.workflow.getHandle(id).query(progressQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  /** The latest run's Temporal status and, when it can answer, its progress. */
  async status(syncId: string): Promise<{
    workflowStatus: string;
    runId: string;
    startTime: Date;
    closeTime?: Date;
    progress: SyncProgress | null;
  } | null> {
    try {
      const d = await this.client.workflow.getHandle(syncWorkflowId(syncId)).describe();
      const progress = await this.progress(syncId).catch(() => null);
      return {
        workflowStatus: d.status.name,
        runId: d.runId,
        startTime: d.startTime,
        ...(d.closeTime ? { closeTime: d.closeTime } : {}),
        progress,
      };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  /** Runs of a sync, newest first, from Temporal's visibility store (search attributes carry the counts). */
  async runs(syncId: string, limit = 20): Promise<RunListing[]> {
    const out: RunListing[] = [];
    const query = `WorkflowId = '${syncWorkflowId(syncId).replace(/'/g, "\\'")}'`;
    for await (const w of this.client.workflow.list({ query, pageSize: limit })) {
      const sa = w.typedSearchAttributes;
      out.push({
        workflowId: w.workflowId,
        runId: w.runId,
        status: w.status.name,
        startTime: w.startTime,
        closeTime: w.closeTime,
        syncStatus: sa.get(SA_STATUS),
        rowsChanged: sa.get(SA_ROWS_CHANGED),
        rowsDelivered: sa.get(SA_ROWS_DELIVERED),
        rowsRejected: sa.get(SA_ROWS_REJECTED),
      });
      if (out.length >= limit) break;
    }
    return out;
  }

  async cancel(syncId: string): Promise<void> {
    await this.client.workflow.getHandle(syncWorkflowId(syncId)).cancel();
  }

  async pause(syncId: string): Promise<void> {
    await this.client.workflow.getHandle(syncWorkflowId(syncId)).signal(pauseSignal);
  }

  async resume(syncId: string): Promise<void> {
    await this.client.workflow.getHandle(syncWorkflowId(syncId)).signal(resumeSignal);
  }

  /** The Schedule options for a scheduled sync. */
  scheduleOptions(sync: SyncConfig): ScheduleOptions<ScheduleOptionsStartWorkflowAction<typeof scheduledSyncWorkflow>> {
    const s = sync.schedule;
    if (s === undefined) throw new Error(`sync "${sync.id}" has no schedule`);
    return {
      scheduleId: syncScheduleId(sync.id),
      spec: {
        ...(s.cron !== undefined ? { cronExpressions: [s.cron] } : {}),
        ...(s.every !== undefined ? { intervals: [{ every: durationToMs(s.every) }] } : {}),
        timezone: s.timezone,
      },
      action: {
        type: 'startWorkflow',
        workflowType: 'scheduledSyncWorkflow',
        workflowId: `ampsync-schedule/${sync.id}`,
        taskQueue: this.taskQueue,
        args: [{ sync, taskQueue: this.taskQueue }],
        memo: { syncId: sync.id, object: sync.object },
        typedSearchAttributes: [
          { key: SA_SYNC_ID, value: sync.id },
          { key: SA_OBJECT, value: sync.object },
        ],
      },
      policies: {
        overlap: OVERLAP[s.overlap],
        catchupWindow: durationToMs(s.catchupWindow),
        pauseOnFailure: s.pauseOnFailure,
      },
      // the note carries a fingerprint of what apply wrote, so a second apply knows what changed
      state: {
        paused: s.paused,
        note: `managed by ampsync apply · ${fingerprint({ sync, taskQueue: this.taskQueue })}`,
      },
      memo: { [MANAGED_SCHEDULE_MEMO]: true, syncId: sync.id, taskQueue: this.taskQueue },
    };
  }

  /**
   * Creates, updates and deletes Schedules so they match the syncs given. Only schedules that ampsync manages
   * for this client's task queue are touched: a syncs file and its task queue go together.
   */
  async applySchedules(syncs: SyncConfig[], options: { dryRun?: boolean } = {}): Promise<ApplyResult> {
    const result: ApplyResult = { created: [], updated: [], deleted: [], unchanged: [] };
    const wanted = new Map(syncs.filter((s) => s.schedule !== undefined).map((s) => [syncScheduleId(s.id), s]));
    const existing = new Set<string>();
    for await (const summary of this.client.schedule.list()) {
      if (summary.memo?.[MANAGED_SCHEDULE_MEMO] === true && summary.memo.taskQueue === this.taskQueue) {
        existing.add(summary.scheduleId);
      }
    }
    for (const [scheduleId, sync] of wanted) {
      const opts = this.scheduleOptions(sync);
      const handle = this.client.schedule.getHandle(scheduleId);
      // describe, not the (eventually consistent) list, decides between create and update
      const current = await handle.describe().catch((err: unknown) => {
        if (err instanceof ScheduleNotFoundError) return undefined;
        throw err;
      });
      if (current === undefined) {
        if (!options.dryRun) await this.client.schedule.create(opts);
        result.created.push(sync.id);
        continue;
      }
      const note = opts.state?.note ?? '';
      if (current.state.note === note) {
        // unchanged in the file: a pause made with `ampsync pause` stays
        result.unchanged.push(sync.id);
        continue;
      }
      if (!options.dryRun) {
        await handle.update((prev) => ({
          ...prev,
          spec: opts.spec,
          action: opts.action,
          policies: { ...prev.policies, ...opts.policies },
          state: { ...prev.state, paused: sync.schedule?.paused ?? false, note },
        }));
      }
      result.updated.push(sync.id);
    }
    for (const scheduleId of existing) {
      if (wanted.has(scheduleId)) continue;
      if (!options.dryRun) await this.client.schedule.getHandle(scheduleId).delete();
      result.deleted.push(scheduleId.replace(/^ampsync\//, ''));
    }
    return result;
  }

  /** Pause, unpause, trigger or backfill a sync's Schedule. */
  async schedule(syncId: string, verb: 'pause' | 'unpause' | 'trigger', note?: string): Promise<void> {
    const handle = this.client.schedule.getHandle(syncScheduleId(syncId));
    try {
      if (verb === 'pause') await handle.pause(note);
      else if (verb === 'unpause') await handle.unpause(note);
      else await handle.trigger();
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) {
        throw new SyncNotFoundError(`sync "${syncId}" has no schedule (run "ampsync apply" first)`, { cause: err });
      }
      throw err;
    }
  }

  async backfill(syncId: string, start: Date, end: Date): Promise<void> {
    await this.client.schedule.getHandle(syncScheduleId(syncId)).backfill({ start, end, overlap: 'BUFFER_ALL' });
  }
}

/** A short Markdown description of a sync for the Temporal UI's static details. */
export function describeSync(sync: SyncConfig): string {
  const model = 'sql' in sync.model ? 'SQL model' : `table \`${sync.model.table}\``;
  const dest = sync.destination.baseUrl ?? `Amplitude ${sync.destination.region.toUpperCase()}`;
  return [
    `**${sync.object}** sync \`${sync.id}\` keyed by \`${sync.key}\``,
    `from BigQuery project \`${sync.source.project}\` (${model}) to ${dest}`,
    `${sync.mappings.length} mapped fields; chunks of ${sync.options.chunkSize}, ${sync.options.concurrency} in parallel`,
  ].join('\n\n');
}

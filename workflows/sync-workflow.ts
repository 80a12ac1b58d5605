/**
 * One run of one sync as durable steps: prepare → extract and diff → send chunks (bounded parallelism) → commit
 * each chunk → report. Only references and counts enter the history, never rows.
 *
 * The history stays short: prepare and finish are local activities (one marker each, no task round trip), the
 * memo and the starting search attributes come from the starter, and a run whose chunks all go in one wave
 * publishes its counts once, at the end. A run that sends one chunk has 20 events.
 */
import {
  ActivityFailure,
  type ActivityInterfaceFor,
  type LocalActivityInterfaceFor,
  type RetryPolicy,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  log,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { CommitChunkResult, SyncActivities } from '../activities/types';
import { FailureTypes } from '../activities/types';
import type { RunCounts } from '../src/sync/types';
import {
  SA_OBJECT,
  SA_ROWS_CHANGED,
  SA_ROWS_DELIVERED,
  SA_ROWS_REJECTED,
  SA_STATUS,
  SA_SYNC_ID,
} from '../src/temporal/search-attributes';
import {
  pauseSignal,
  progressQuery,
  resumeSignal,
  type ActivityTimeouts,
  type SyncCarryOver,
  type SyncProgress,
  type SyncRunStatus,
  type SyncWorkflowInput,
  type SyncWorkflowResult,
} from './definitions';

const NON_RETRYABLE = [
  FailureTypes.config,
  FailureTypes.secret,
  'AmplitudeConfigError',
  'SourceConfigError',
  'MappingError',
  'StateConfigError',
];

const DEFAULT_HEARTBEAT_TIMEOUT_MS = 2 * 60_000;
const DEFAULT_SHORT_STEP_TIMEOUT_MS = 10 * 60_000;

/**
 * Proxies of the short steps (`quick`: commitChunk of an unfinished chunk), of the short state-store steps run as
 * local activities (`local`: prepareRun, finishRun; a dry run and a few statements, recorded as one marker each)
 * and of the long, heartbeating ones (`long`).
 */
function activitiesFor(timeouts: ActivityTimeouts = {}): {
  quick: ActivityInterfaceFor<SyncActivities>;
  local: LocalActivityInterfaceFor<SyncActivities>;
  long: ActivityInterfaceFor<SyncActivities>;
} {
  const shortRetry: RetryPolicy = {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 20,
    nonRetryableErrorTypes: NON_RETRYABLE,
  };
  const quick = proxyActivities<SyncActivities>({
    startToCloseTimeout: timeouts.shortStepMs ?? DEFAULT_SHORT_STEP_TIMEOUT_MS,
    retry: shortRetry,
  });
  const local = proxyLocalActivities<SyncActivities>({
    startToCloseTimeout: timeouts.shortStepMs ?? DEFAULT_SHORT_STEP_TIMEOUT_MS,
    retry: shortRetry,
  });
  const long = proxyActivities<SyncActivities>({
    startToCloseTimeout: '24 hours',
    heartbeatTimeout: timeouts.heartbeatMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS,
    retry: {
      initialInterval: '2s',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      maximumAttempts: 50,
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  });
  return { quick, local, long };
}

const MAX_THROTTLED_IDS = 20;

function zeroCounts(): RunCounts {
  return {
    extracted: 0,
    invalid: 0,
    new: 0,
    changed: 0,
    unchanged: 0,
    gone: 0,
    delivered: 0,
    rejected: 0,
    deferred: 0,
  };
}

/** Runs one sync. Signals: pause / resume. Query: progress. Cancel leaves delivered rows committed. */
export async function syncWorkflow(input: SyncWorkflowInput): Promise<SyncWorkflowResult> {
  const { sync } = input;
  const { quick, local, long } = activitiesFor(input.activityTimeouts);
  const info = workflowInfo();
  const carry: SyncCarryOver | undefined = input.carryOver;
  const runId = carry?.runId ?? info.runId;
  // a sync diffed in the warehouse (all but read-only ones) settles its snapshot when the run finishes: finishRun
  // needs its config
  const warehouseSync = sync.source.stateDataset !== false ? { sync } : {};
  const concurrency = sync.options.concurrency;

  const progress: SyncProgress = {
    syncId: sync.id,
    runId,
    object: sync.object,
    phase: carry ? 'sending' : 'preparing',
    status: carry?.paused ? 'paused' : 'running',
    paused: carry?.paused ?? false,
    bytesProcessed: carry?.bytesProcessed ?? null,
    chunksTotal: carry?.chunksTotal ?? null,
    chunksDone: carry?.nextChunk ?? 0,
    counts: carry?.counts ?? zeroCounts(),
    throttledIds: carry?.throttledIds ?? [],
    sampleRejections: carry?.sampleRejections ?? [],
    executions: (carry?.executions ?? 0) + 1,
  };

  const describe = (): void => {
    const c = progress.counts;
    const chunks = progress.chunksTotal === null ? '' : ` · chunks ${progress.chunksDone}/${progress.chunksTotal}`;
    setCurrentDetails(
      `**${progress.phase}**${progress.paused ? ' (paused)' : ''}${chunks} · changed ${c.new + c.changed} ` +
        `(new ${c.new}) · delivered ${c.delivered} · rejected ${c.rejected + c.invalid} · deferred ${c.deferred}`,
    );
  };
  const publish = (status: SyncRunStatus): void => {
    progress.status = status;
    const c = progress.counts;
    upsertSearchAttributes([
      { key: SA_SYNC_ID, value: sync.id },
      { key: SA_OBJECT, value: sync.object },
      { key: SA_STATUS, value: status },
      { key: SA_ROWS_CHANGED, value: c.new + c.changed },
      { key: SA_ROWS_DELIVERED, value: c.delivered },
      { key: SA_ROWS_REJECTED, value: c.rejected + c.invalid },
    ]);
    describe();
  };

  setHandler(progressQuery, () => progress);
  setHandler(pauseSignal, () => {
    if (progress.paused) return;
    progress.paused = true;
    publish('paused');
  });
  setHandler(resumeSignal, () => {
    if (!progress.paused) return;
    progress.paused = false;
    publish('running');
  });

  // the client and the schedule start a run with its memo and search attributes set: nothing to write then
  if (!carry && !memoPreset(input)) upsertMemo({ syncId: sync.id, object: sync.object, trigger: input.trigger });
  if (carry || !searchAttributesPreset(input)) publish(progress.status);
  else describe();

  const started = new Set<number>();
  const committed = new Set<number>();

  /** Sends chunks `first`… (`count` of them) in one activity, which commits each as it is answered. */
  const runChunks = async (first: number, count: number): Promise<void> => {
    for (let c = first; c < first + count; c++) started.add(c);
    const total = progress.chunksTotal ?? '?';
    const summary =
      count === 1
        ? `send chunk ${first + 1}/${total} of ${sync.id}`
        : `send chunks ${first + 1}–${first + count}/${total} of ${sync.id}`;
    const sent = await long.sendChunk.executeWithOptions({ summary }, [
      count === 1 ? { sync, runId, chunk: first } : { sync, runId, chunk: first, chunks: count },
    ]);
    for (const id of sent.throttledIds) {
      if (progress.throttledIds.length < MAX_THROTTLED_IDS && !progress.throttledIds.includes(id))
        progress.throttledIds.push(id);
    }
    // a result recorded by a release that sent one chunk per activity holds one commit, not a list
    const commits: CommitChunkResult[] = Array.isArray(sent.committed) ? sent.committed : [sent.committed];
    for (const result of commits) counted(result.chunk, result);
  };

  /** Commits a chunk whose send did not finish (failure, cancellation): what it delivered stays delivered. */
  const commit = async (chunk: number): Promise<void> => {
    if (committed.has(chunk)) return;
    counted(chunk, await quick.commitChunk({ syncId: sync.id, runId, chunk }));
  };

  const counted = (chunk: number, result: CommitChunkResult): void => {
    if (committed.has(chunk)) return;
    committed.add(chunk);
    progress.counts.delivered += result.delivered;
    progress.counts.rejected += result.rejected;
    progress.counts.deferred += result.deferred;
    progress.chunksDone += 1;
    describe();
  };

  const inFlight = new Map<number, Promise<void>>();
  let failure: Error | undefined;
  // read through a function: the failure is set in callbacks, which control-flow narrowing cannot see
  const failed = (): Error | undefined => failure;
  let carryOver: SyncCarryOver;
  try {
    if (!carry) {
      const prepared = await local.prepareRun.executeWithOptions(
        { summary: `validate ${sync.id} and dry-run its model` },
        [{ sync, runId, workflowId: info.workflowId }],
      );
      progress.bytesProcessed = prepared.bytesProcessed;
      progress.phase = 'extracting';
      describe();
      const extracted = await long.extractAndDiff.executeWithOptions(
        { summary: `extract ${sync.id} from BigQuery and diff against what was delivered` },
        [{ sync, runId }],
      );
      Object.assign(progress.counts, extracted.counts);
      progress.chunksTotal = extracted.chunks;
      progress.sampleRejections = extracted.sampleRejections;
      progress.phase = 'sending';
      // a run of several waves shows its changed rows while it sends; a one-wave run publishes them at the end
      if (extracted.chunks > concurrency) publish(progress.status);
      else describe();
    }

    const total = progress.chunksTotal ?? 0;
    // chunks per send activity: the sync's setting, fewer when that would leave some of `concurrency` idle (a sync
    // config from a release without the setting sends one chunk per activity, as that release did)
    const perActivity = Math.max(
      1,
      Math.min(sync.options.chunksPerActivity ?? 1, Math.ceil(total / Math.max(1, concurrency))),
    );
    let next = carry?.nextChunk ?? 0;
    let chunksThisExecution = 0;
    let handOver = false;
    while (next < total || inFlight.size > 0) {
      const early = failed();
      if (early) throw early;
      const mayStart = next < total && !handOver && inFlight.size < concurrency && !progress.paused;
      if (mayStart) {
        const first = next;
        const count = Math.min(perActivity, total - first);
        next += count;
        chunksThisExecution += count;
        const p = runChunks(first, count)
          .catch((err: unknown) => {
            failure ??= err instanceof Error ? err : new Error(String(err));
          })
          .finally(() => inFlight.delete(first));
        inFlight.set(first, p);
        const suggested = workflowInfo().continueAsNewSuggested;
        const limit = input.chunksPerExecution;
        if (next < total && (suggested || (limit !== undefined && chunksThisExecution >= limit))) handOver = true;
        continue;
      }
      if (inFlight.size === 0) {
        if (handOver) break;
        // paused with nothing in flight: wait for resume
        await condition(() => !progress.paused);
        continue;
      }
      await Promise.race(inFlight.values());
      const late = failed();
      if (late) throw late;
    }

    if (handOver && next < total) {
      carryOver = {
        runId,
        chunksTotal: total,
        nextChunk: next,
        bytesProcessed: progress.bytesProcessed ?? 0,
        counts: progress.counts,
        sampleRejections: progress.sampleRejections,
        throttledIds: progress.throttledIds,
        executions: progress.executions,
        paused: progress.paused,
      };
    } else {
      progress.phase = 'finishing';
      describe();
      const finished = await local.finishRun({
        syncId: sync.id,
        runId,
        status: 'succeeded',
        counts: progress.counts,
        ...warehouseSync,
      });
      progress.phase = 'done';
      publish('succeeded');
      return {
        syncId: sync.id,
        runId,
        status: 'succeeded',
        counts: progress.counts,
        chunks: total,
        bytesProcessed: progress.bytesProcessed ?? 0,
        syncedKeys: finished.syncedKeys,
        sampleRejections: progress.sampleRejections,
      };
    }
  } catch (err) {
    const cancelled = isCancellation(err);
    await CancellationScope.nonCancellable(async () => {
      // Let cancelled sends settle, then commit what they delivered: the rest is sent next run.
      await Promise.allSettled(inFlight.values());
      for (const chunk of started) {
        if (!committed.has(chunk)) await commit(chunk).catch(() => undefined);
      }
      await local
        .finishRun({
          syncId: sync.id,
          runId,
          status: cancelled ? 'cancelled' : 'failed',
          counts: progress.counts,
          error: cancelled ? 'cancelled' : describeFailure(err),
          ...warehouseSync,
        })
        .catch(() => undefined);
      progress.phase = 'done';
      publish(cancelled ? 'cancelled' : 'failed');
    });
    throw err;
  }
  // outside the try: continue-as-new is thrown, and must not be mistaken for a failure of the run
  log.info('continuing as new to keep the history short', { syncId: sync.id, runId, nextChunk: carryOver.nextChunk });
  return continueAsNew<typeof syncWorkflow>({ ...input, carryOver });
}

/** Whether the starter set this run's memo (AmpsyncClient.start and the scheduled parent do). */
function memoPreset(input: SyncWorkflowInput): boolean {
  const memo = workflowInfo().memo;
  return memo?.syncId === input.sync.id && memo.object === input.sync.object && memo.trigger === input.trigger;
}

/** Whether the starter set this run's search attributes to a running run of this sync. */
function searchAttributesPreset(input: SyncWorkflowInput): boolean {
  const sa = workflowInfo().typedSearchAttributes;
  return (
    sa.get(SA_SYNC_ID) === input.sync.id && sa.get(SA_OBJECT) === input.sync.object && sa.get(SA_STATUS) === 'running'
  );
}

function describeFailure(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) return `${cause.type ?? 'Error'}: ${cause.message}`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * The I/O steps of a sync. Built by a factory with injected collaborators (source, sender, state store), so
 * tests pass real or fake implementations of the same interfaces.
 */
import { activityContext, heartbeater } from '../src/temporal/activity-context';
import type { SourceConfig, SyncConfig } from '../src/config/schema';
import type { StateStore } from '../src/state/types';
import { defaultMaxListeners, setMaxListeners } from 'node:events';
import { setImmediate } from 'node:timers/promises';
import type {
  BuiltPayload,
  DiffRow,
  RowMapper,
  RowOutcome,
  RowRejection,
  Source,
  SourceField,
  SourcePosition,
  SourceRow,
  StagedRow,
  WarehouseDiff,
} from '../src/sync/types';
import { diffModeOf, emptyCounts, pageRowsAt } from '../src/sync/types';
import { ByteBudget } from '../src/sync/byte-budget';
import { classified } from '../src/temporal/failures';
import { mappingIdentity, modelColumns } from '../src/amplitude/mapping';
import { loadFingerprintHash } from '../src/diff/canonical';
import { DEFAULT_MAX_READ_AHEAD, PageReader } from '../src/sources/read-ahead';
import {
  checkDiffKey,
  MAX_EXCLUDED_KEYS,
  stateDatasetOf,
  WarehouseDiffConfigError,
  warehouseDiffHint,
  warehouseTables,
  withUnchangedElsewhere,
} from '../src/sync/warehouse-diff';
import type {
  CommitChunkInput,
  CommitChunkResult,
  ExtractAndDiffInput,
  ExtractAndDiffResult,
  FinishRunInput,
  FinishRunResult,
  PrepareRunInput,
  PrepareRunResult,
  SendChunkInput,
  SendChunkResult,
  SyncActivities,
} from './types';

/**
 * Sends one request's worth of staged rows and reports an outcome for every row, in the rows' order; a delivered
 * row's carries its staging position (deliveredOutcome), so the store records it without looking its key up.
 */
export interface BatchSender {
  sendBatch(rows: StagedRow[], options?: { signal?: AbortSignal }): Promise<RowOutcome[]>;
}

export interface ActivityDeps {
  state: StateStore;
  /** The warehouse for a sync's source settings. */
  sourceFor(source: SourceConfig): Source;
  /** Maps rows of a sync (validated against the model's schema when given). */
  mapperFor(sync: SyncConfig, schema?: SourceField[]): RowMapper;
  /** Amplitude for a sync (its API key resolved on this worker, never passed through Temporal). */
  senderFor(sync: SyncConfig): BatchSender;
  /** Splits staged rows into requests within the sync's API limits. */
  packBatches(sync: SyncConfig, rows: StagedRow[]): StagedRow[][];
  /** Rows per BigQuery page (default 10,000). */
  pageSize?: number;
  /** Pages of a model read at once at most, while the worker waits on them (default 4; see PageReader). */
  readAhead?: number;
}

const DEFAULT_PAGE_SIZE = 10_000;
const MAX_THROTTLED_IDS = 20;
/** Batches one send activity has in flight (its chunks' batches are taken in order as they free up). */
export const MAX_BATCHES_IN_FLIGHT = 6;
/**
 * Payload bytes of the batches one send activity has in flight at most (one batch, however large, always goes):
 * a batch in flight holds its rows and its request body twice over (built, then gzipped), so six 1,000-row batches
 * of 2.5 KB payloads would hold ~45 MB per activity; batches of ordinary payloads (~250 KB) all fit.
 */
export const MAX_BYTES_IN_FLIGHT = 8 * 1024 * 1024;

/** The payload bytes of a batch (read as bytes, or its JSON's characters: bytes for the ASCII most payloads are). */
function batchBytes(batch: readonly StagedRow[]): number {
  let n = 0;
  for (const row of batch) n += row.bytes !== undefined ? row.bytes.end - row.bytes.start : row.payload.length;
  return n;
}

/** A JSON string in a reason, with what precedes it when that marks a column name or a field name. */
const QUOTED = /(column |in |missing )?("(?:[^"\\]|\\.)*")/g;

/**
 * A rejection as it may enter Temporal's history (run result, progress): quoted values are masked, column and
 * field names and the row's key are kept. The full reason stays in the state store (`ampsync rejected`).
 */
export function withoutRowValues(rejection: RowRejection): RowRejection {
  const key = rejection.key === null ? undefined : JSON.stringify(rejection.key);
  const reason = rejection.reason.replace(QUOTED, (whole, name: string | undefined, quoted: string) =>
    name !== undefined || quoted === key ? whole : '"…"',
  );
  return { ...rejection, reason };
}

/**
 * The warehouse diff of a sync (the default where its source can diff in the warehouse), or undefined for a sync
 * diffed by the worker alone: read-only (`stateDataset: false`), or a source that cannot and was not asked to.
 */
function warehouseDiffOf(sync: SyncConfig, source: Source): WarehouseDiff | undefined {
  if (stateDatasetOf(sync.source) === undefined) return undefined;
  if (source.warehouseDiff === undefined) {
    if (sync.source.stateDataset === undefined) return undefined;
    throw new WarehouseDiffConfigError(
      `sync "${sync.id}": source.stateDataset is set, but its ${sync.source.type} source cannot diff in the warehouse`,
    );
  }
  return source.warehouseDiff;
}

/**
 * Keys a finished run leaves out of its warehouse snapshot (its rejected rows), or null when the snapshot must
 * not move: rows staged but not settled (deferred, never sent), or more rejections than a query parameter holds.
 */
async function excludedKeys(state: StateStore, input: FinishRunInput): Promise<string[] | null> {
  const { counts } = input;
  if (counts.deferred > 0 || counts.delivered + counts.rejected < counts.new + counts.changed) return null;
  // newest first: this run's rejections come before any older run's
  const listed = await state.listRejected(input.syncId, MAX_EXCLUDED_KEYS + 1);
  const ofRun = listed.filter((r) => r.runId === input.runId);
  if (ofRun.length > MAX_EXCLUDED_KEYS) return null;
  return [...new Set(ofRun.flatMap((r) => (r.key === null ? [] : [r.key])))];
}

/** BigQuery job ids allow letters, digits, `_` and `-` (at most 1024 characters). */
export function extractJobId(syncId: string, runId: string): string {
  return `ampsync_${syncId}_${runId}`.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** Builds the activities of a sync run around the given collaborators. */
export function createActivities(deps: ActivityDeps): SyncActivities {
  const pageSize = deps.pageSize ?? DEFAULT_PAGE_SIZE;
  const readAhead = deps.readAhead ?? DEFAULT_MAX_READ_AHEAD;

  /**
   * At the end of a run of a sync diffed in the warehouse: a run that succeeded makes its run table, less the
   * keys it did not deliver, the sync's snapshot; then the tables it replaces (and this run's) are dropped. A
   * failure here only leaves the snapshot behind (the next run diffs more rows in the worker): it is logged, and
   * the run still finishes with its own status.
   */
  async function settleWarehouseSnapshot(sync: SyncConfig, input: FinishRunInput): Promise<void> {
    const log = activityContext()?.log;
    try {
      const warehouse = warehouseDiffOf(sync, deps.sourceFor(sync.source));
      if (warehouse === undefined) return;
      const tables = warehouseTables(sync.id, input.runId);
      let current = await deps.state.getWarehouseSnapshot(sync.id);
      const exclude = input.status === 'succeeded' ? await excludedKeys(deps.state, input) : null;
      if (exclude !== null) {
        const { rows } = await warehouse.promoteSnapshot({
          jobId: `${extractJobId(sync.id, input.runId)}_snapshot`,
          key: sync.key,
          runTable: tables.runTable,
          snapshot: tables.snapshot,
          exclude,
        });
        current = { table: tables.snapshot, mapping: mappingIdentity(sync), runId: input.runId, rows };
        await deps.state.setWarehouseSnapshot(sync.id, current);
        log?.info('warehouse snapshot promoted', {
          syncId: sync.id,
          runId: input.runId,
          rows,
          excluded: exclude.length,
        });
      } else if (input.status === 'succeeded') {
        log?.warn('warehouse snapshot kept: the run left rows unsettled (they are diffed again next run)', {
          syncId: sync.id,
          runId: input.runId,
        });
      }
      await warehouse.dropTables(tables.prefixes, current === null ? [] : [current.table]);
    } catch (err) {
      log?.warn('warehouse snapshot not updated: the next run diffs more rows in the worker', {
        syncId: sync.id,
        runId: input.runId,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  return {
    async prepareRun(input: PrepareRunInput): Promise<PrepareRunResult> {
      return classified(async () => {
        const { sync } = input;
        // the run is logged first, so a run that fails its checks shows in `ampsync runs` with the reason
        await deps.state.beginRun({
          syncId: sync.id,
          runId: input.runId,
          workflowId: input.workflowId,
          mode: diffModeOf(sync.object),
          chunkSize: sync.options.chunkSize,
        });
        const source = deps.sourceFor(sync.source);
        // the bytes (and maximumBytesBilled) of what the extract reads: the key and the mapped columns
        const dry = await source.dryRun(sync.model, { columns: modelColumns(sync) });
        // compiling against the dry-run schema fails fast, naming any mapped column the model lacks
        deps.mapperFor(sync, dry.schema);
        if (warehouseDiffOf(sync, source) !== undefined) checkDiffKey(`sync "${sync.id}"`, sync.key, dry.schema);
        deps.senderFor(sync);
        activityContext()?.log.info('prepared sync run', {
          syncId: sync.id,
          runId: input.runId,
          bytesProcessed: dry.bytesProcessed,
        });
        return { bytesProcessed: dry.bytesProcessed, columns: dry.schema.map((f) => f.name) };
      });
    },

    async extractAndDiff(input: ExtractAndDiffInput): Promise<ExtractAndDiffResult> {
      return classified(async () => {
        const { sync, runId } = input;
        await loadFingerprintHash();
        const source = deps.sourceFor(sync.source);
        const saved = await deps.state.getExtractCursor(sync.id, runId);
        let position: SourcePosition;
        let mapper: RowMapper;
        if (saved === null) {
          // a deterministic job id: a retried attempt attaches to the query its predecessor started
          const jobId = extractJobId(sync.id, runId);
          const warehouse = warehouseDiffOf(sync, source);
          // the key and the mapped columns alone leave the warehouse (and are all a warehouse diff fingerprints)
          const columns = modelColumns(sync);
          let opened;
          if (warehouse === undefined) {
            // in key order where the key's type allows: the store then reads delivered state by key range
            opened = await source.open(sync.model, { jobId, orderByKey: sync.key, columns });
          } else {
            const stored = await deps.state.getWarehouseSnapshot(sync.id);
            const snapshot = stored !== null && stored.mapping === mappingIdentity(sync) ? stored.table : null;
            const { runTable } = warehouseTables(sync.id, runId);
            opened = await warehouse.openChanges(sync.model, { jobId, key: sync.key, runTable, snapshot, columns });
          }
          position = opened.position;
          mapper = deps.mapperFor(sync, opened.schema);
        } else {
          position = saved.position;
          mapper = deps.mapperFor(sync);
          activityContext()?.log.info('resuming extraction', {
            syncId: sync.id,
            runId,
            page: position.page,
            rows: position.rowsRead,
          });
        }
        const rowsPerPage = pageRowsAt(position, pageSize);
        if (rowsPerPage < pageSize) {
          activityContext()?.log.info('wide rows: the model is read in smaller pages', {
            syncId: sync.id,
            runId,
            rowsPerPage,
          });
        }
        const unchangedElsewhere = position.unchangedElsewhere ?? 0;
        const sendOnce = diffModeOf(sync.object) === 'send-once';
        // the next pages are fetched while this one is mapped and staged (a BigQuery page is a network round trip),
        // and a page is fingerprinted while the one before it is staged (the store's reads run off this thread)
        const reader = new PageReader(source, position, { pageSize, maxAhead: readAhead });
        let staging: Promise<void> | undefined;
        try {
          for (let page = await reader.next(); page !== undefined; page = await reader.next()) {
            // every row is fingerprinted (send-once: keyed only, the diff compares keys); only the rows the store
            // stages (new or changed) are mapped, by `build`
            const rows: DiffRow[] = [];
            const sourceRows: SourceRow[] = [];
            const rejected: RowRejection[] = [];
            for (const row of page.rows) {
              const fingerprint = sendOnce ? mapper.identify(row) : mapper.fingerprint(row);
              if (!fingerprint.ok) {
                rejected.push({ key: fingerprint.key, reason: fingerprint.reason, stage: fingerprint.stage });
                continue;
              }
              rows.push(fingerprint);
              sourceRows.push(row);
            }
            const build = (index: number): BuiltPayload =>
              mapper.build(sourceRows[index] as SourceRow, sendOnce ? undefined : (rows[index] as DiffRow).hash);
            // pages are staged one at a time, in order
            await staging;
            staging = deps.state
              .stagePage({
                syncId: sync.id,
                runId,
                rows,
                rejected,
                build,
                cursor: page.next,
                keyOrdered: page.next.keyOrdered === true,
              })
              .then(() => {
                activityContext()?.heartbeat({ page: page.next.page, rowsRead: page.next.rowsRead });
              });
            // a failed stage is thrown where it is awaited, not reported as unhandled before
            staging.catch(() => undefined);
            // mapping is synchronous: let timers, heartbeats and workflow tasks through between pages
            await setImmediate();
          }
          await staging;
        } finally {
          // a failed page or stage leaves no read or stage running on its own
          await Promise.allSettled([reader.close(), staging]);
        }
        if (reader.maxAheadReached > 1) {
          activityContext()?.log.info('read pages ahead: the worker waited on the source', {
            syncId: sync.id,
            runId,
            pagesAhead: reader.maxAheadReached,
          });
        }
        const finished = await deps.state.finishExtract(sync.id, runId);
        // rows the warehouse found unchanged never reached the store
        const counts = withUnchangedElsewhere(finished.counts, unchangedElsewhere);
        const staged = finished.counts.new + finished.counts.changed;
        if (finished.chunks > Math.ceil(staged / sync.options.chunkSize)) {
          activityContext()?.log.info('large payloads: the run is sent in smaller chunks than chunkSize', {
            syncId: sync.id,
            runId,
            chunks: finished.chunks,
            chunkSize: sync.options.chunkSize,
          });
        }
        const hint = warehouseDiffHint(sync, counts);
        if (hint !== undefined) activityContext()?.log.info(hint, { syncId: sync.id, runId });
        return {
          counts,
          chunks: finished.chunks,
          duplicateKeys: finished.duplicateKeys,
          sampleRejections: finished.sampleRejections.map(withoutRowValues),
        };
      });
    },

    async sendChunk(input: SendChunkInput): Promise<SendChunkResult> {
      return classified(async () => {
        const { sync, runId, chunk } = input;
        const last = chunk + Math.max(1, input.chunks ?? 1) - 1;
        const sender = deps.senderFor(sync);
        const signal = activityContext()?.cancellationSignal;
        const heartbeat = heartbeater();
        const result: Omit<SendChunkResult, 'committed'> = {
          chunk,
          attempted: 0,
          delivered: 0,
          rejected: 0,
          deferred: 0,
          requests: 0,
          throttledIds: [],
        };
        const commits: Promise<CommitChunkResult>[] = [];
        /**
         * Commits a chunk once all its batches are answered (off the worker's thread, while other chunks are sent):
         * not in an activity of its own, so a crash before the commit leaves outcomes recorded, and the retry sends
         * nothing of this chunk again and commits it.
         */
        const commit = (c: number): void => {
          const committing = deps.state
            .commitChunk(sync.id, runId, c)
            .then((r): CommitChunkResult => ({ chunk: c, ...r }));
          committing.catch(() => undefined);
          commits.push(committing);
        };

        // Several batches are in flight (the sender's pool bounds the connections), taken in order from the
        // activity's chunks as lanes free up: a chunk is read when the one before it has no batch left to start,
        // so rows Amplitude throttles wait on their own instead of holding back the rest of their chunk, or the
        // chunks after it. Rows delivered by an earlier attempt have outcomes already: only the rest is read.
        const queue: { chunk: number; batch: StagedRow[] }[] = [];
        /** Batches of each chunk not answered yet. */
        const unanswered = new Map<number, number>();
        let nextToRead = chunk;
        let reading: Promise<void> | undefined;
        const readNext = async (): Promise<void> => {
          const c = nextToRead++;
          const rows = await deps.state.readChunk(sync.id, runId, c);
          const batches = deps.packBatches(sync, rows);
          result.attempted += rows.length;
          if (batches.length === 0) commit(c);
          else unanswered.set(c, batches.length);
          for (const batch of batches) queue.push({ chunk: c, batch });
        };
        // a lane that finds no batch waits for the chunk being read, even the last one: only once every chunk is
        // read and its batches taken is a lane done (else a one-chunk activity would send with a single lane)
        const take = async (): Promise<{ chunk: number; batch: StagedRow[] } | undefined> => {
          for (;;) {
            if (queue.length > 0) return queue.shift();
            if (reading === undefined) {
              if (nextToRead > last) return undefined;
              reading = readNext().finally(() => (reading = undefined));
            }
            await reading;
          }
        };

        let failure: { reason: unknown } | undefined;
        // large payloads leave fewer batches in flight: their rows and bodies are what a send holds in memory
        const budget = new ByteBudget(MAX_BYTES_IN_FLIGHT);
        const lane = async (): Promise<void> => {
          for (;;) {
            if (failure !== undefined) return;
            signal?.throwIfAborted();
            const taken = await take();
            if (taken === undefined || failure !== undefined) return;
            const { batch } = taken;
            const bytes = batchBytes(batch);
            await budget.acquire(bytes);
            let outcomes: RowOutcome[];
            try {
              // another lane may have failed, or the activity been cancelled, while this one waited
              if (failure !== undefined) return;
              signal?.throwIfAborted();
              outcomes = await sender.sendBatch(batch, signal ? { signal } : {});
            } catch (err) {
              // rows settled before the failure (delivered, rejected, deferred) are kept: a retry sends only the rest
              const settled = (err as { outcomes?: unknown }).outcomes;
              if (Array.isArray(settled) && settled.length > 0) {
                await deps.state.recordOutcomes(sync.id, runId, settled as RowOutcome[]);
              }
              throw err;
            } finally {
              budget.release(bytes);
            }
            await deps.state.recordOutcomes(sync.id, runId, outcomes);
            result.requests += 1;
            for (const o of outcomes) {
              if (o.status === 'delivered') result.delivered += 1;
              else if (o.status === 'rejected') result.rejected += 1;
              else {
                result.deferred += 1;
                if (result.throttledIds.length < MAX_THROTTLED_IDS) result.throttledIds.push(o.key);
              }
            }
            const left = (unanswered.get(taken.chunk) ?? 1) - 1;
            unanswered.set(taken.chunk, left);
            if (left === 0) commit(taken.chunk);
            heartbeat(
              { chunk: taken.chunk, lastChunk: last, requests: result.requests, delivered: result.delivered },
              left === 0,
            );
          }
        };
        // every send in flight listens to the activity's cancellation: that many listeners is expected, not a leak
        if (signal !== undefined) setMaxListeners(defaultMaxListeners + MAX_BATCHES_IN_FLIGHT, signal);
        const lanes = Array.from({ length: MAX_BATCHES_IN_FLIGHT }, () =>
          lane().catch((reason: unknown) => {
            failure ??= { reason };
          }),
        );
        try {
          await Promise.all(lanes);
        } finally {
          // a failed send leaves no read or commit running on its own
          await Promise.allSettled([reading, ...commits]);
        }
        if (failure !== undefined) throw failure.reason;
        const committed = await Promise.all(commits);
        return { ...result, committed: committed.sort((a, b) => a.chunk - b.chunk) };
      });
    },

    async commitChunk(input: CommitChunkInput): Promise<CommitChunkResult> {
      return classified(async () => {
        const r = await deps.state.commitChunk(input.syncId, input.runId, input.chunk);
        return { chunk: input.chunk, ...r };
      });
    },

    async finishRun(input: FinishRunInput): Promise<FinishRunResult> {
      return classified(async () => {
        if (input.sync !== undefined) await settleWarehouseSnapshot(input.sync, input);
        const run = await deps.state.finishRun(input.syncId, input.runId, input.status, input.counts, input.error);
        const syncedKeys = await deps.state.countSynced(input.syncId);
        return {
          syncId: input.syncId,
          runId: input.runId,
          status: run.status,
          counts: run.counts ?? emptyCounts(),
          syncedKeys,
        };
      });
    },
  };
}

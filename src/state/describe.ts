/** Wording and record shapes both state stores share, so their messages and results read the same. */
import type { RowOutcome, RowRejection, RunCounts } from '../sync/types';
import { emptyCounts } from '../sync/types';
import { StateConfigError, StateConflictError } from './errors';
import type { CommitChunkResult, FinishExtractResult, RunStatus } from './types';

/** Rejections returned by finishExtract for the run summary. */
export const MAX_SAMPLE_REJECTIONS = 10;

/**
 * Payload bytes a chunk holds at most. A send activity holds about two chunks' rows while it sends (the one its
 * batches come from, and the next, read as the last batches go), each as the bytes the reader thread read (and,
 * while they are sent, its batches' gzipped bodies), and a worker runs `concurrency` of them. Measured on Dec 6,
 * when a chunk still came as the reader thread's text, its copy and the rows split from it: chunks of 10,000
 * payloads of 2.6 KB (30 text properties) kept a 200,000-row run's worker at 420–490 MB, chunks of 4 MiB at
 * 390–450 MB. Payloads up to ~420 bytes (a $identify event of a few properties takes ~250) still come 10,000 to a
 * chunk.
 */
export const CHUNK_BUDGET_BYTES = 4 * 1024 * 1024;
/** Rows a chunk holds however large its payloads. */
export const MIN_CHUNK_ROWS = 100;
/** The staged payloads whose average size sets a run's rows per chunk: the first ones, in staging order. */
export const CHUNK_SAMPLE_ROWS = 1000;

/**
 * Rows per chunk of a run whose payloads average `payloadBytes` (null: none staged): its `chunkSize`, or as many
 * as CHUNK_BUDGET_BYTES holds when fewer.
 */
export function chunkRowsFor(chunkSize: number, payloadBytes: number | null): number {
  if (payloadBytes === null || !Number.isFinite(payloadBytes) || payloadBytes <= 0) return chunkSize;
  return Math.min(chunkSize, Math.max(MIN_CHUNK_ROWS, Math.floor(CHUNK_BUDGET_BYTES / payloadBytes)));
}

/** `run "r1" of sync "users"`, the subject of most messages. */
export function runLabel(syncId: string, runId: string): string {
  return `run "${runId}" of sync "${syncId}"`;
}

/** Rejects a chunk size that cannot number chunks. */
export function checkChunkSize(chunkSize: number, syncId: string, runId: string): void {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new StateConfigError(`chunkSize of ${runLabel(syncId, runId)} must be a positive integer, got ${chunkSize}`);
  }
}

/**
 * What beginRun may find when a run with that id exists already. Once extracted (`chunks` set), a run's chunk size
 * may be below the one it was begun with: finishExtract makes smaller chunks of large payloads (chunkRowsFor).
 */
export function checkSameRun(
  existing: { mode: string; chunkSize: number; chunks: number | null },
  wanted: { mode: string; chunkSize: number },
  syncId: string,
  runId: string,
): void {
  const sameSize =
    existing.chunks === null ? existing.chunkSize === wanted.chunkSize : existing.chunkSize <= wanted.chunkSize;
  if (existing.mode !== wanted.mode || !sameSize) {
    throw new StateConflictError(
      `${runLabel(syncId, runId)} was begun with mode ${existing.mode} and chunkSize ${existing.chunkSize}, ` +
        `not mode ${wanted.mode} and chunkSize ${wanted.chunkSize}`,
    );
  }
}

/** The state of a run that chunk calls (readChunk, recordOutcomes, commitChunk) need. */
export interface ChunkableRun {
  status: RunStatus;
  extracted: boolean;
  chunks: number | null;
}

/** Throws unless the run is running and its extraction finished (and, when given, `chunk` is one of its chunks). */
export function checkChunkable(run: ChunkableRun, syncId: string, runId: string, chunk?: number): void {
  const label = runLabel(syncId, runId);
  if (run.status !== 'running') {
    throw new StateConflictError(`${label} is ${run.status}: its staged rows were dropped when it finished`);
  }
  if (!run.extracted) {
    throw new StateConflictError(`${label} has not finished extraction: call finishExtract before sending chunks`);
  }
  const chunks = run.chunks ?? 0;
  if (chunk !== undefined && (!Number.isSafeInteger(chunk) || chunk < 0 || chunk >= chunks)) {
    throw new StateConflictError(`${label} has ${chunks} chunks (0..${chunks - 1}); there is no chunk ${chunk}`);
  }
}

/** Throws when staging is asked of a run whose extraction is over. */
export function checkStageable(run: { status: RunStatus; extracted: boolean }, syncId: string, runId: string): void {
  const label = runLabel(syncId, runId);
  if (run.status !== 'running') throw new StateConflictError(`${label} is ${run.status}: it takes no more pages`);
  if (run.extracted) throw new StateConflictError(`${label} finished extraction: it takes no more pages`);
}

/** Raw aggregates of a run's seen keys, as both stores compute them in finishExtract. */
export interface SeenAggregates {
  new: number;
  changed: number;
  unchanged: number;
  /** Seen keys that had a delivered hash (the rest of the synced keys are gone). */
  seenSynced: number;
  /** Mapped rows of duplicated keys (counted invalid). */
  duplicateRows: number;
  duplicateKeys: number;
}

/** Final extract counts: extracted = invalid + new + changed + unchanged (a duplicated key's rows are invalid). */
export function extractResult(
  running: RunCounts,
  seen: SeenAggregates,
  syncedKeys: number,
  chunkSize: number,
  sampleRejections: RowRejection[],
): FinishExtractResult {
  const staged = seen.new + seen.changed;
  return {
    counts: {
      extracted: running.extracted,
      invalid: running.invalid + seen.duplicateRows,
      new: seen.new,
      changed: seen.changed,
      unchanged: seen.unchanged,
      gone: Math.max(0, syncedKeys - seen.seenSynced),
    },
    chunks: Math.ceil(staged / chunkSize),
    duplicateKeys: seen.duplicateKeys,
    sampleRejections,
  };
}

/** Running counts after one more page. */
export function addPage(
  counts: RunCounts,
  page: { rows: number; rejected: number; staged: number; new: number; unchanged: number },
): RunCounts {
  return {
    ...counts,
    extracted: counts.extracted + page.rows + page.rejected,
    invalid: counts.invalid + page.rejected,
    new: counts.new + page.new,
    changed: counts.changed + page.staged - page.new,
    unchanged: counts.unchanged + page.unchanged,
  };
}

/** Counts as stored, filled with zeros for fields an older record lacks. */
export function parseCounts(value: unknown): RunCounts {
  const parsed: unknown = typeof value === 'string' ? JSON.parse(value) : value;
  return { ...emptyCounts(), ...(parsed as Partial<RunCounts>) };
}

/** Outcomes for keys the run did not stage (a bug in the caller, or a run already finished). */
export function unknownKeys(keys: string[], syncId: string, runId: string): StateConflictError {
  const shown = keys
    .slice(0, 3)
    .map((k) => JSON.stringify(k))
    .join(', ');
  const more = keys.length > 3 ? ` and ${keys.length - 3} more` : '';
  return new StateConflictError(`${runLabel(syncId, runId)} staged no row with key ${shown}${more}`);
}

/**
 * Positions past any staged row: an abandoned run's chunks are committed in one statement. Fits PostgreSQL's
 * `integer` (the type of run_rows.pos there).
 */
export const ALL_POSITIONS = 2 ** 31 - 1;

/** Why a run that never finished was closed: a later run of its sync began (one workflow per sync runs at once). */
export function abandonedReason(byRunId: string): string {
  return (
    `abandoned: its workflow stopped without finishing (terminated, timed out or reset), and run "${byRunId}" ` +
    'of the same sync began; rows it delivered were committed, the rest are sent by later runs'
  );
}

/** An abandoned run's counts, with the outcomes its rows had when it stopped. */
export function abandonedCounts(counts: RunCounts, outcomes: CommitChunkResult | undefined): RunCounts {
  if (outcomes === undefined) return counts;
  return { ...counts, delivered: outcomes.delivered, rejected: outcomes.rejected, deferred: outcomes.deferred };
}

/**
 * The staging position a delivered outcome may be recorded at: its `pos` when it names a row the run staged
 * (below the run's next position), else undefined and the key decides.
 */
export function deliveredPosition(outcome: RowOutcome, nextPos: number): number | undefined {
  const pos = outcome.pos;
  if (outcome.status !== 'delivered' || pos === undefined) return undefined;
  return Number.isSafeInteger(pos) && pos >= 0 && pos < nextPos ? pos : undefined;
}

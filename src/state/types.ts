/**
 * The sync state store: what was delivered (key → hash), what a run staged, what was rejected, and a log of
 * runs. One interface, two implementations (SQLite, the embedded default; PostgreSQL, shared by workers on
 * several machines), one conformance suite (test/state/conformance.ts).
 */
import type {
  DiffMode,
  BuiltPayload,
  DiffRow,
  RowOutcome,
  RowRejection,
  RunCounts,
  SourcePosition,
  StagedRow,
} from '../sync/types';

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface RunRecord {
  syncId: string;
  runId: string;
  status: RunStatus;
  startedAt: string;
  finishedAt: string | null;
  counts: RunCounts;
  /** Chunks staged (known once extraction finished). */
  chunks: number | null;
  /** Temporal workflow id / run id that executed it, for links. */
  workflowId: string | null;
  error: string | null;
}

export interface BeginRunInput {
  syncId: string;
  runId: string;
  workflowId?: string;
  mode: DiffMode;
  chunkSize: number;
}

/** Where extraction stands, saved with each staged page in one transaction. */
export interface ExtractCursor {
  position: SourcePosition;
  /** Rows staged so far (the next staged row's sequence number). */
  staged: number;
}

export interface StagePageInput {
  syncId: string;
  runId: string;
  /** The page's rows with a usable key; a row without a payload is built with `build` if it is staged. */
  rows: DiffRow[];
  /** Rows that failed mapping/validation on this page. */
  rejected: RowRejection[];
  /**
   * Builds the payload of `rows[index]`, called only for rows the store stages and only when the row has none.
   * A row it rejects is recorded as rejected (with its reason) instead of staged.
   */
  build?: (index: number) => BuiltPayload;
  /** Position after this page; saved atomically with the page's rows. */
  cursor: ExtractCursor['position'];
  /**
   * The source delivers the model in ascending key order (byte order of the keys' UTF-8 text), as an ordered
   * extract does. A hint: the store checks each page against the keys before it, and uses the order (to read
   * the delivered state by key range, and to skip grouping the unchanged keys) only while it holds.
   */
  keyOrdered?: boolean;
}

export interface StagePageResult {
  /** Rows whose key is new or whose hash changed (events: keys never delivered). */
  staged: number;
  unchanged: number;
  /** Of `staged`, how many keys were never delivered. */
  new: number;
}

export interface FinishExtractResult {
  counts: Pick<RunCounts, 'extracted' | 'invalid' | 'new' | 'changed' | 'unchanged' | 'gone'>;
  /** Chunks to send, numbered 0..chunks-1. */
  chunks: number;
  /** Keys seen more than once in the model (rejected, never sent). */
  duplicateKeys: number;
  /** Up to 10 rejected keys with reasons, for the run summary. */
  sampleRejections: RowRejection[];
}

export interface CommitChunkResult {
  delivered: number;
  rejected: number;
  deferred: number;
  /** Rows of the chunk with no outcome yet (e.g. a cancelled send): they stay unsynced. */
  pending: number;
}

export interface RejectedRow {
  syncId: string;
  runId: string;
  key: string | null;
  reason: string;
  stage: RowRejection['stage'];
  at: string;
}

/**
 * Where a sync's warehouse-side diff keeps its snapshot (source.stateDataset): a BigQuery table of each key's
 * row fingerprint as of the last run that promoted one. Recorded here, beside the synced keys it must never run
 * ahead of: a store that forgot its keys (reset, or a new database) has no record, and the snapshot is ignored.
 */
export interface WarehouseSnapshot {
  /** Table name inside the source's stateDataset. */
  table: string;
  /** Identity of the mapping the snapshot's rows were delivered with; another mapping ignores the snapshot. */
  mapping: string;
  /** The run that promoted it. */
  runId: string;
  /** Keys it holds. */
  rows: number;
}

export interface StateStore {
  /** Creates tables if missing; safe to call from every worker at start. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  /** Starts a run, or returns the existing one with that id (an activity retried after a crash). */
  beginRun(input: BeginRunInput): Promise<RunRecord>;
  getRun(syncId: string, runId: string): Promise<RunRecord | null>;
  /** Runs of a sync, newest first. */
  listRuns(syncId: string, limit: number): Promise<RunRecord[]>;

  /** Where a crashed extraction stopped, or null to start from the model's first page. */
  getExtractCursor(syncId: string, runId: string): Promise<ExtractCursor | null>;
  /** Diffs one page against the delivered state and stages the rows to send, with the cursor, atomically. */
  stagePage(input: StagePageInput): Promise<StagePageResult>;
  /** Rejects duplicate keys, counts keys gone from the model, numbers the chunks. Idempotent. */
  finishExtract(syncId: string, runId: string): Promise<FinishExtractResult>;

  /** Staged rows of a chunk that have no outcome yet, in staging order. */
  readChunk(syncId: string, runId: string, chunk: number): Promise<StagedRow[]>;
  /** Records per-row outcomes of a send (idempotent by key). */
  recordOutcomes(syncId: string, runId: string, outcomes: RowOutcome[]): Promise<void>;
  /** Makes the chunk's delivered hashes the synced state and files its rejected rows. Idempotent. */
  commitChunk(syncId: string, runId: string, chunk: number): Promise<CommitChunkResult>;
  /** Closes a run with its status and counts; drops its staging data. */
  finishRun(
    syncId: string,
    runId: string,
    status: Exclude<RunStatus, 'running'>,
    counts: RunCounts,
    error?: string,
  ): Promise<RunRecord>;

  /** Deletes every trace of a run (its log entry, staging data and rejections): used by previews. */
  discardRun(syncId: string, runId: string): Promise<void>;

  /** Rejected rows of a sync, newest first. */
  listRejected(syncId: string, limit: number): Promise<RejectedRow[]>;
  /** Number of keys delivered so far. */
  countSynced(syncId: string): Promise<number>;
  /** Forgets everything delivered for a sync, and its warehouse snapshot (a full resync on the next run). */
  resetSync(syncId: string): Promise<void>;

  /** The sync's warehouse-side diff snapshot, or null when it has none it may trust. */
  getWarehouseSnapshot(syncId: string): Promise<WarehouseSnapshot | null>;
  /** Records the sync's new warehouse snapshot (null forgets it). */
  setWarehouseSnapshot(syncId: string, snapshot: WarehouseSnapshot | null): Promise<void>;
}

/**
 * The contracts between the steps of a sync: what the source yields, what the mapper makes of a row, what the
 * state store keeps, and what a send reports per row. Activities depend on these interfaces only.
 */
import type { ModelConfig, SyncObject } from '../config/schema';

/**
 * A model row as converted from BigQuery: plain JSON values, plus NaN/±Infinity for FLOAT64 specials.
 * The conversion of every BigQuery type is documented in src/sources/bigquery/convert.ts.
 */
export type SourceValue = null | boolean | number | string | SourceValue[] | { [key: string]: SourceValue };
export type SourceRow = Record<string, SourceValue>;

/** One column of a model's result schema (BigQuery's TableFieldSchema, reduced). */
export interface SourceField {
  name: string;
  /** BigQuery type name: STRING, INT64, TIMESTAMP, STRUCT, ... (legacy names normalised: INTEGER → INT64, RECORD → STRUCT). */
  type: string;
  mode: 'NULLABLE' | 'REQUIRED' | 'REPEATED';
  fields?: SourceField[];
  /** For a RANGE column: the type of its bounds (DATE, DATETIME or TIMESTAMP). */
  rangeElementType?: string;
}

/** Where extraction stands: enough to fetch the next page after a crash. */
export interface SourcePosition {
  /** The BigQuery job whose results are paged (for a table: the table reference). */
  jobId: string;
  location?: string;
  /** Token of the next page: null at the first page (page 0), and once every page has been read (page > 0). */
  pageToken: string | null;
  /** Pages read so far. */
  page: number;
  /** Rows read so far. */
  rowsRead: number;
  /**
   * Warehouse-side diff: rows of the model the warehouse found unchanged since its snapshot, which these results
   * leave out (they count as unchanged). Carried from page to page.
   */
  unchangedElsewhere?: number;
  /**
   * The results come in ascending order of the sync key's text (an ordered extract, see OpenOptions.orderByKey).
   * Carried from page to page.
   */
  keyOrdered?: boolean;
  /**
   * The results hold this many rows and are read by row index (BigQuery's `startIndex`), not by page token: each
   * page is the next `pageSize` rows, so where a later page starts is known before the pages before it are read,
   * and several can be read at once (see src/sources/read-ahead.ts). Absent: the pages are chained by token.
   */
  totalRows?: number;
  /**
   * Rows per page at most, set by a source whose rows are wide: a page of 10,000 rows of 30 text columns is ~15 MB of
   * JSON and ~45 MB once parsed, and several are read ahead. Chosen once, when the model is opened, and carried
   * from page to page (and in a saved cursor), so every attempt of a run splits it into the same pages. Absent:
   * the reader's page size.
   */
  pageRows?: number;
}

/** The rows a page from `position` holds at most: the reader's `pageSize`, or fewer where the source says so. */
export function pageRowsAt(position: SourcePosition, pageSize: number): number {
  return position.pageRows === undefined ? pageSize : Math.max(1, Math.min(pageSize, position.pageRows));
}

/**
 * True once the position points past the model's last page: every row read (results read by index), or a null
 * token after the first page (page 0 with a null token is the first page).
 */
export function isExhausted(position: SourcePosition): boolean {
  if (position.totalRows !== undefined) return position.rowsRead >= position.totalRows;
  return position.page > 0 && position.pageToken === null;
}

/**
 * Where the page `pages` pages after `position` starts, for results read by index (`totalRows` set), or
 * undefined for results chained by token (a page's position is known only once the page before it is read).
 * Every page but the last holds `pageSize` rows.
 */
export function positionAhead(position: SourcePosition, pages: number, pageSize: number): SourcePosition | undefined {
  if (position.totalRows === undefined) return undefined;
  // no token: only the position a read returns carries one (for a worker that reads by token)
  return {
    ...position,
    pageToken: null,
    page: position.page + pages,
    rowsRead: Math.min(position.totalRows, position.rowsRead + pages * pageSize),
  };
}

export interface DryRunResult {
  /** Bytes the model will process (what on-demand pricing bills). */
  bytesProcessed: number;
  schema: SourceField[];
}

export interface OpenedModel {
  schema: SourceField[];
  totalRows: number;
  /** Position of the first page. */
  position: SourcePosition;
}

export interface SourcePage {
  rows: SourceRow[];
  /** Position after this page (exhausted, see isExhausted, when this was the last page). */
  next: SourcePosition;
}

export interface ReadPageOptions {
  pageSize: number;
}

/** What a warehouse-side diff is asked (names come from src/sync/warehouse-diff.ts). */
export interface OpenChangesRequest {
  /** Deterministic per run: a retried attempt attaches to the jobs an earlier one started. */
  jobId: string;
  /** The model column holding the sync key (STRING or INT64). */
  key: string;
  /** Table (in the state dataset) the run's model is copied into, with each row's fingerprint. */
  runTable: string;
  /** The snapshot to diff against, or null: every row is new to the warehouse. */
  snapshot: string | null;
  /** The model's columns to copy and fingerprint (the key and the mapped columns); all of them when absent. */
  columns?: readonly string[];
  signal?: AbortSignal;
}

export interface PromoteSnapshotRequest {
  jobId: string;
  key: string;
  runTable: string;
  /** The new snapshot's table name. */
  snapshot: string;
  /** Keys left out of the snapshot: rows of the run not delivered, which later runs must extract again. */
  exclude: string[];
}

/**
 * A warehouse that diffs a model against a snapshot of what was delivered (source.stateDataset), so only new,
 * changed, duplicated and NULL-keyed rows leave it. The state store still diffs what arrives: the snapshot only
 * ever lags what was delivered, never runs ahead of it.
 */
export interface WarehouseDiff {
  /**
   * Runs the model into `runTable` and opens the rows that differ from `snapshot` (a snapshot table that no
   * longer exists counts as none), in key order where the key's type allows; the position's `unchangedElsewhere`
   * counts the rest.
   */
  openChanges(model: ModelConfig, request: OpenChangesRequest): Promise<OpenedModel>;
  /** Makes the run table, without `exclude`, the new snapshot table. Returns the keys it holds. */
  promoteSnapshot(request: PromoteSnapshotRequest): Promise<{ rows: number }>;
  /** Drops the state dataset's tables whose names start with one of `prefixes`, except those in `keep`. */
  dropTables(prefixes: readonly string[], keep: readonly string[]): Promise<string[]>;
}

/** A warehouse a sync reads its model from. */
export interface Source {
  /** Present when the source diffs in the warehouse (BigQuery, unless read-only: source.stateDataset false). */
  readonly warehouseDiff?: WarehouseDiff;
  /**
   * Validates the model and reports its schema and what reading it would cost (reading `columns` alone, when
   * given: what `open` with the same columns reads), running nothing.
   */
  dryRun(model: ModelConfig, options?: { columns?: readonly string[] }): Promise<DryRunResult>;
  /**
   * Runs the model (a query job, or a table read) and returns where its first page is. With a `jobId`, a
   * retried call attaches to the job an earlier attempt started instead of running the query again.
   */
  open(
    model: ModelConfig,
    options?: { jobId?: string; orderByKey?: string; columns?: readonly string[] },
  ): Promise<OpenedModel>;
  /**
   * Reads the page at `position`; calling again with the same position returns the same rows. A position read by
   * index (`totalRows` set) gets exactly `pageSize` rows, fewer only at the end of the results.
   */
  readPage(position: SourcePosition, options: ReadPageOptions): Promise<SourcePage>;
}

/**
 * A model row as the diff sees it: its key and fingerprint. Its payload may be left out: a store asks
 * `StagePageInput.build` for it only when it stages the row, so unchanged rows are never mapped.
 */
export interface DiffRow {
  /** The sync key's value, as text. */
  key: string;
  /** The row's fingerprint (RowMapper.fingerprint): equal hashes mean an equal payload. */
  hash: string;
  /** The event / identification as JSON text, without api_key. */
  payload?: string;
}

/** A row mapped to its Amplitude payload: the payload's JSON text is sent as is. */
export interface MappedRow extends DiffRow {
  payload: string;
}

/** A deferred payload, built: the payload, or why the row cannot be sent. */
/** A built payload, with the row's fingerprint when `build` was not given one (see RowMapper.identify). */
export type BuiltPayload = { ok: true; payload: string; hash?: string } | ({ ok: false } & RowRejection);

/** A row that will not be sent, with the reason (and the key when it has one). */
export interface RowRejection {
  key: string | null;
  reason: string;
  /** Where the reason came from: local validation, the diff (NULL/duplicate key) or Amplitude's answer. */
  stage: 'validation' | 'diff' | 'amplitude';
}

export type MapResult = ({ ok: true } & MappedRow) | ({ ok: false } & RowRejection);

/** The key and fingerprint of a model row, or why the row has no usable key. */
export type FingerprintResult = ({ ok: true } & DiffRow) | ({ ok: false } & RowRejection);

/** Turns model rows into Amplitude payloads for one sync. */
export interface RowMapper {
  /**
   * The row's key and a hash of what its payload is made of (the mapped columns' values and the mapping itself),
   * without building the payload: the diff compares it with the hash delivered last time, and only rows whose
   * fingerprint changed are mapped. Rejects only a NULL or non-scalar key; the rest is validated by `map`.
   */
  fingerprint(row: SourceRow): FingerprintResult;
  /**
   * The row's key alone, with an empty hash: for a send-once diff (events), which compares keys only, so the rows
   * delivered before are never fingerprinted. `build` fingerprints the rows it builds (BuiltPayload.hash).
   */
  identify(row: SourceRow): FingerprintResult;
  /**
   * The row's payload (validated), or why it cannot be sent; pass the row's fingerprint when it is known, else
   * the result carries it.
   */
  build(row: SourceRow, fingerprint?: string): BuiltPayload;
  /** `fingerprint` and `build` in one: key, hash and payload, or why the row cannot be sent. */
  map(row: SourceRow): MapResult;
}

/** Per-row result of a send. Deferred rows (throttled past the wait we allow) are sent again next run. */
export type RowOutcome = (
  | { key: string; status: 'delivered' }
  | { key: string; status: 'rejected'; reason: string }
  | { key: string; status: 'deferred'; reason: string; retryAfterMs?: number }
) & {
  /** The row's staging position (StagedRow.pos), when known: a store records it without looking the key up. */
  pos?: number;
};

/**
 * A staged row as read back for sending: its key, payload and position (its fingerprint stays in the store, which
 * commits it in SQL when the row is delivered).
 */
export interface StagedRow {
  key: string;
  payload: string;
  /** Its position in the run's staging order (set by readChunk). */
  pos?: number;
  /**
   * The payload's UTF-8 bytes, when the store read them as bytes (`payload` is then decoded from them only when
   * asked for): a JSON request body is made of views of them, the JSON never passing through a JS string.
   */
  bytes?: PayloadBytes;
}

/**
 * A payload's UTF-8 bytes: `source[start, end)`. Rows read together share one source, their payloads in order,
 * each followed by a `,`: consecutive rows' bytes are a JSON array's items as they are (see requestPieces).
 */
export interface PayloadBytes {
  source: Uint8Array;
  start: number;
  end: number;
}

/**
 * A row's outcome once Amplitude took it, with its staging position when it has one: the store records it by
 * position (no key looked up, none decoded to compare). The sender answers each row from the row itself.
 */
export function deliveredOutcome(row: StagedRow): RowOutcome {
  return row.pos === undefined
    ? { key: row.key, status: 'delivered' }
    : { key: row.key, status: 'delivered', pos: row.pos };
}

/** Counts of one run. */
export interface RunCounts {
  extracted: number;
  invalid: number;
  new: number;
  changed: number;
  unchanged: number;
  gone: number;
  delivered: number;
  rejected: number;
  deferred: number;
}

export const emptyCounts = (): RunCounts => ({
  extracted: 0,
  invalid: 0,
  new: 0,
  changed: 0,
  unchanged: 0,
  gone: 0,
  delivered: 0,
  rejected: 0,
  deferred: 0,
});

/** How the diff treats keys: upsert (users, devices, groups) sends new and changed; send-once (events) new only. */
export type DiffMode = 'upsert' | 'send-once';

export const diffModeOf = (object: SyncObject): DiffMode => (object === 'events' ? 'send-once' : 'upsert');

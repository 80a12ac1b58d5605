/**
 * The embedded state store: one SQLite file (WAL mode). better-sqlite3 is synchronous, so each call is one short
 * transaction on prepared statements, and the heavy ones run on threads of their own (SqliteThread), each with
 * its own connection, so the worker's event loop goes on meanwhile. A query-only reader diffs a page by one
 * statement (its keys as json_each, probing `synced` in key order) and reads a chunk's staged rows; the main
 * connection then appends the page's new and changed keys to `run_seen`, keeps its unchanged keys (most of them)
 * as one JSON array in `run_pages` and stages its rows to send in `run_rows`, in staging order; a writer records
 * the positions of delivered batches and commits chunks. finishExtract groups the keys by key once, to find
 * duplicates and count gone keys.
 *
 *   const state = new SqliteStateStore({ file: '.ampsync/state.db' });
 *   await state.migrate();
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setImmediate } from 'node:timers/promises';
import Database from 'better-sqlite3';
import type { DiffMode, PayloadBytes, RowOutcome, RowRejection, RunCounts, StagedRow } from '../sync/types';
import { emptyCounts } from '../sync/types';
import {
  ALL_POSITIONS,
  MAX_SAMPLE_REJECTIONS,
  abandonedCounts,
  abandonedReason,
  addPage,
  deliveredPosition,
  CHUNK_SAMPLE_ROWS,
  checkChunkSize,
  checkChunkable,
  checkSameRun,
  chunkRowsFor,
  checkStageable,
  extractResult,
  parseCounts,
  runLabel,
  unknownKeys,
} from './describe';
import type { SeenAggregates } from './describe';
import { RunNotFoundError, StateConflictError, StateUnavailableError, classifyDatabaseError } from './errors';
import { isStageable, pageOrder, pageTally, positionPage, summarizePage } from './page-plan';
import { SqliteThread, ThreadStoppedError, type ThreadStep } from './sqlite-thread';
import type {
  BeginRunInput,
  CommitChunkResult,
  ExtractCursor,
  FinishExtractResult,
  RejectedRow,
  RunRecord,
  RunStatus,
  StagePageInput,
  StagePageResult,
  StateStore,
  WarehouseSnapshot,
} from './types';

/** How long a write waits for another process's transaction before SQLITE_BUSY. */
export const DEFAULT_BUSY_TIMEOUT_MS = 10_000;
/**
 * Page cache of the connection (SQLite's default is 2 MiB). It also caps the sorter's memory (finishExtract groups
 * every key of a run), so SQLite's share of a worker's memory stays near twice this whatever the table size.
 */
const CACHE_SIZE_KIB = 32 * 1024;
/**
 * 2: `synced` keyed by a sync number (sync_ids) instead of the sync id text, which made every row longer; a page's
 * unchanged keys kept in `run_pages.unchanged` instead of a run_seen row each; payloads moved out of `run_rows`
 * (to `run_payloads`), so recording outcomes rewrites narrow rows.
 * 3: delivered rows recorded by position in `run_delivered` (appended, not a rewrite of their run_rows row); a
 * version 2 file keeps its in-flight runs' `status = 'delivered'` rows, which still count as delivered.
 * 4: `warehouse_snapshots`, where each sync's warehouse-side diff snapshot is recorded (a new table only).
 * 5: `runs.last_key` and `runs.key_ordered`: whether a run's pages came in key order (columns added; a run begun
 * before has key_ordered 0, and its unchanged keys are grouped as before).
 * 6: `run_delivered` holds ranges of positions (`pos` ≤ p < `upto`), one per run of consecutive positions a batch
 * delivered, instead of a row per position (a version 5 row becomes the range of its one position); `run_rows`
 * has a partial index of its settled rows, which is all a commit scans for statuses.
 */
const SCHEMA_VERSION = 6;

export interface SqliteStateStoreOptions {
  /** Database file; its folder is created (mode 0700) and the file made private (0600). */
  file: string;
  busyTimeoutMs?: number;
  /** Clock for run and rejection times (tests pin it). */
  now?: () => Date;
  /** Staging rows a finished run drops per transaction (DROP_BATCH_ROWS; tests lower it). */
  dropBatchRows?: number;
}

/**
 * Staged rows and payloads dropped per transaction once a run is over (~90 ms each on 2 cores): a million-row
 * run's staging is dropped in steps with the event loop free in between, so heartbeats, workflow tasks and other
 * syncs' calls go on. One DELETE of it held the worker's thread for 3 s (of 5M rows, long enough to time out a
 * workflow task); the steps take longer in all (bench:diff, 1M rows: 4.3 s against 3.1 s).
 */
export const DROP_BATCH_ROWS = 50_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  run_no INTEGER PRIMARY KEY,
  sync_id TEXT NOT NULL,
  run_id TEXT NOT NULL,
  workflow_id TEXT,
  status TEXT NOT NULL,
  mode TEXT NOT NULL,
  chunk_size INTEGER NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  counts TEXT NOT NULL,
  chunks INTEGER,
  error TEXT,
  cursor TEXT,
  next_pos INTEGER NOT NULL DEFAULT 0,
  extract_result TEXT,
  last_key TEXT,
  key_ordered INTEGER NOT NULL DEFAULT 0,
  UNIQUE (sync_id, run_id)
);
CREATE INDEX IF NOT EXISTS runs_by_sync ON runs (sync_id);

-- one row per staged page; its unchanged keys (delivered before with the same hash) as one JSON array
CREATE TABLE IF NOT EXISTS run_pages (
  run_no INTEGER NOT NULL,
  page INTEGER NOT NULL,
  result TEXT NOT NULL,
  unchanged TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY (run_no, page)
) WITHOUT ROWID;

-- every other distinct key of every staged page (new, changed, or not stageable): appended in page order
CREATE TABLE IF NOT EXISTS run_seen (
  run_no INTEGER NOT NULL,
  page INTEGER NOT NULL,
  key TEXT NOT NULL,
  seen INTEGER NOT NULL,
  valid INTEGER NOT NULL,
  was_synced INTEGER NOT NULL,
  staged INTEGER NOT NULL,
  PRIMARY KEY (run_no, page, key)
) WITHOUT ROWID;

-- rows to send, appended in staging order (rowid order follows pos, so a chunk is a few adjacent pages); narrow,
-- so that recording each row's outcome rewrites few pages
CREATE TABLE IF NOT EXISTS run_rows (
  id INTEGER PRIMARY KEY,
  run_no INTEGER NOT NULL,
  pos INTEGER NOT NULL,
  key TEXT NOT NULL,
  hash TEXT NOT NULL,
  status TEXT,
  reason TEXT
);
-- each staged row's payload, by run_rows.id: written once, read once, dropped by run (no IN list of ids)
CREATE TABLE IF NOT EXISTS run_payloads (
  id INTEGER PRIMARY KEY,
  run_no INTEGER NOT NULL,
  payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS run_payloads_by_run ON run_payloads (run_no);
CREATE UNIQUE INDEX IF NOT EXISTS run_rows_by_key ON run_rows (run_no, key);
-- delivered rows by staging position: ranges pos <= p < upto, appended as each batch is answered; they never overlap
CREATE TABLE IF NOT EXISTS run_delivered (
  run_no INTEGER NOT NULL,
  pos INTEGER NOT NULL,
  upto INTEGER NOT NULL,
  PRIMARY KEY (run_no, pos)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS run_rows_by_pos ON run_rows (run_no, pos);
-- rows with a status (rejected, deferred, or delivered by key): few, and all a commit reads statuses from
CREATE INDEX IF NOT EXISTS run_rows_settled ON run_rows (run_no, pos) WHERE status IS NOT NULL;

-- a number per sync id: the synced rows carry it instead of the id's text (the diff reads millions of them)
CREATE TABLE IF NOT EXISTS sync_ids (
  sync_no INTEGER PRIMARY KEY,
  sync_id TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS synced (
  sync_no INTEGER NOT NULL,
  key TEXT NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (sync_no, key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rejected (
  id INTEGER PRIMARY KEY,
  sync_id TEXT NOT NULL,
  run_id TEXT NOT NULL,
  key TEXT,
  reason TEXT NOT NULL,
  stage TEXT NOT NULL,
  at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rejected_by_sync ON rejected (sync_id);
CREATE INDEX IF NOT EXISTS rejected_by_run ON rejected (sync_id, run_id);
-- a chunk committed twice files each Amplitude rejection once
CREATE UNIQUE INDEX IF NOT EXISTS rejected_once ON rejected (sync_id, run_id, key) WHERE stage = 'amplitude';

-- a sync's warehouse-side diff snapshot (JSON WarehouseSnapshot); reset forgets it with the synced keys
CREATE TABLE IF NOT EXISTS warehouse_snapshots (
  sync_id TEXT PRIMARY KEY,
  snapshot TEXT NOT NULL
);
`;

/** Version 1 kept the sync id text in every synced row: number the syncs and rewrite the table. */
const MIGRATE_V1_TO_V2 = `
CREATE TABLE IF NOT EXISTS sync_ids (sync_no INTEGER PRIMARY KEY, sync_id TEXT NOT NULL UNIQUE);
INSERT OR IGNORE INTO sync_ids (sync_id) SELECT DISTINCT sync_id FROM synced ORDER BY sync_id;
INSERT OR IGNORE INTO sync_ids (sync_id) SELECT DISTINCT sync_id FROM runs ORDER BY sync_id;
ALTER TABLE synced RENAME TO synced_v1;
CREATE TABLE synced (
  sync_no INTEGER NOT NULL,
  key TEXT NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (sync_no, key)
) WITHOUT ROWID;
INSERT INTO synced (sync_no, key, hash)
  SELECT i.sync_no, o.key, o.hash FROM synced_v1 AS o JOIN sync_ids AS i ON i.sync_id = o.sync_id ORDER BY 1, 2;
DROP TABLE synced_v1;
ALTER TABLE run_pages ADD COLUMN unchanged TEXT NOT NULL DEFAULT '[]';
CREATE TABLE run_payloads (id INTEGER PRIMARY KEY, run_no INTEGER NOT NULL, payload TEXT NOT NULL);
INSERT INTO run_payloads (id, run_no, payload) SELECT id, run_no, payload FROM run_rows;
ALTER TABLE run_rows DROP COLUMN payload;
`;

/** Version 6's run_delivered: a version 3–5 row (one delivered position) becomes a range of one. */
const MIGRATE_RUN_DELIVERED_TO_RANGES = `
CREATE TABLE run_delivered_v6 (
  run_no INTEGER NOT NULL,
  pos INTEGER NOT NULL,
  upto INTEGER NOT NULL,
  PRIMARY KEY (run_no, pos)
) WITHOUT ROWID;
INSERT INTO run_delivered_v6 (run_no, pos, upto) SELECT run_no, pos, pos + 1 FROM run_delivered ORDER BY run_no, pos;
DROP TABLE run_delivered;
ALTER TABLE run_delivered_v6 RENAME TO run_delivered;
`;

/** The delivered ranges of a run that overlap positions @from ≤ p < @to (ranges never overlap each other). */
const DELIVERED_OVERLAPPING = `run_delivered WHERE run_no = @runNo AND pos < @to AND upto > @from
  AND pos >= (SELECT coalesce(max(pos), -1) FROM run_delivered WHERE run_no = @runNo AND pos <= @from)`;

/** Version 5's columns of `runs`, added to a file of an earlier version (SQLite has no ADD COLUMN IF NOT EXISTS). */
const RUNS_V5_COLUMNS: Record<string, string> = {
  last_key: 'ALTER TABLE runs ADD COLUMN last_key TEXT',
  key_ordered: 'ALTER TABLE runs ADD COLUMN key_ordered INTEGER NOT NULL DEFAULT 0',
};

/** Every key a run saw, once per page it was on: run_seen, and the unchanged keys of run_pages. */
const RUN_KEYS = `
  SELECT key, seen, valid, was_synced, staged FROM run_seen WHERE run_no = @runNo
  UNION ALL
  SELECT u.value, 1, 1, 1, 0 FROM run_pages AS p, json_each(p.unchanged) AS u WHERE p.run_no = @runNo`;

/**
 * The keys of a run whose pages came in key order that need grouping: no key is on two of its pages, so its
 * unchanged keys (each delivered, seen once) are counted from the run's counts instead.
 */
const ORDERED_RUN_KEYS = `SELECT key, seen, valid, was_synced, staged FROM run_seen WHERE run_no = @runNo`;

/** The aggregates of finishExtract over `runKeys`; @unchanged adds keys counted, not grouped. */
const seenAggregatesSql = (runKeys: string): string => `
  SELECT
    count(*) FILTER (WHERE n = 1 AND st = 1 AND ws = 0) AS new,
    count(*) FILTER (WHERE n = 1 AND st = 1 AND ws = 1) AS changed,
    count(*) FILTER (WHERE n = 1 AND v = 1 AND st = 0) + @unchanged AS unchanged,
    count(*) FILTER (WHERE ws = 1) + @unchanged AS seenSynced,
    coalesce(sum(v) FILTER (WHERE n > 1), 0) AS duplicateRows,
    count(*) FILTER (WHERE n > 1) AS duplicateKeys
  FROM (SELECT sum(seen) AS n, sum(valid) AS v, max(was_synced) AS ws, max(staged) AS st
        FROM (${runKeys}) GROUP BY key)`;

/** Keys seen more than once by a run, from `runKeys`. */
const findDuplicatesSql = (runKeys: string): string => `
  INSERT INTO temp.duplicate_keys (key, n)
  SELECT key, sum(seen) FROM (${runKeys}) GROUP BY key HAVING sum(seen) > 1`;

/** The sync number of a sync id (NULL for a sync never begun: nothing synced). */
const SYNC_NO = (param: string): string => `(SELECT sync_no FROM sync_ids WHERE sync_id = ${param})`;

/**
 * Inserts or updates the synced keys of a range of positions (@from ≤ p < @to) delivered, by position
 * (run_delivered) or by key in the row's status (as a version 2 file did); idempotent: a chunk committed again
 * rewrites nothing. `order` sorts the rows by key, so the B-tree of synced keys is written in order.
 */
function commitDeliveredSql(order: 'ORDER BY key' | ''): string {
  return `INSERT INTO synced (sync_no, key, hash)
    SELECT ${SYNC_NO('@syncId')}, key, hash FROM (
      SELECT r.key, r.hash FROM (SELECT pos, upto FROM ${DELIVERED_OVERLAPPING}) AS d
        CROSS JOIN run_rows AS r ON r.run_no = @runNo AND r.pos >= max(d.pos, @from) AND r.pos < min(d.upto, @to)
      UNION ALL
      SELECT key, hash FROM run_rows WHERE run_no = @runNo AND pos >= @from AND pos < @to AND status = 'delivered'
    ) WHERE true ${order}
    ON CONFLICT (sync_no, key) DO UPDATE SET hash = excluded.hash WHERE hash IS NOT excluded.hash`;
}

/** Files the rows Amplitude rejected of a range of positions (@from ≤ p < @to); idempotent. */
const COMMIT_REJECTED = `INSERT INTO rejected (sync_id, run_id, key, reason, stage, at)
  SELECT @syncId, @runId, key, coalesce(reason, 'rejected by Amplitude'), 'amplitude', @at FROM run_rows
  WHERE run_no = @runNo AND pos >= @from AND pos < @to AND status = 'rejected' ORDER BY pos
  ON CONFLICT (sync_id, run_id, key) WHERE stage = 'amplitude' DO NOTHING`;

/**
 * The outcomes of a range of positions (@from ≤ p < @to). A row delivered by position keeps a NULL status: it
 * counts as delivered, not pending. Statuses come from the settled rows' index, the range's size from the
 * positions' index (neither reads a table row).
 */
const CHUNK_COUNTS = `SELECT delivered + byPosition AS delivered, rejected, deferred,
         total - delivered - rejected - deferred - byPosition AS pending FROM (
    SELECT
      count(*) FILTER (WHERE status = 'delivered') AS delivered,
      count(*) FILTER (WHERE status = 'rejected') AS rejected,
      count(*) FILTER (WHERE status = 'deferred') AS deferred,
      (SELECT count(*) FROM run_rows WHERE run_no = @runNo AND pos >= @from AND pos < @to) AS total,
      (SELECT coalesce(sum(min(upto, @to) - max(pos, @from)), 0) FROM ${DELIVERED_OVERLAPPING}) AS byPosition
    FROM run_rows WHERE run_no = @runNo AND pos >= @from AND pos < @to AND status IS NOT NULL)`;

/** The ranges of delivered positions overlapping from ≤ p < to, in order. */
const DELIVERED_IN = `SELECT pos, upto FROM ${DELIVERED_OVERLAPPING} ORDER BY pos`;

/**
 * What the reader thread runs (see SqliteThread): the long reads, which would otherwise hold the worker's event
 * loop. Each reads only what the main connection committed before it was asked.
 */
const READER_QUERIES = {
  // the diff of one page: of its stageable keys (a JSON object of key → fingerprint, in key order), those never
  // delivered, those delivered with another fingerprint (upserts only) and the rest, probing `synced` in key
  // order; three JSON arrays
  probe: `SELECT json_group_array(key) FILTER (WHERE state = 0) AS fresh,
                 json_group_array(key) FILTER (WHERE state = 1) AS changed,
                 json_group_array(key) FILTER (WHERE state = 2) AS unchanged
          FROM (SELECT j.key, CASE WHEN s.key IS NULL THEN 0 WHEN @upsert AND s.hash IS NOT j.value THEN 1 ELSE 2 END
                       AS state
                FROM json_each(@keys) AS j
                LEFT JOIN synced AS s ON s.sync_no = ${SYNC_NO('@syncId')} AND s.key = j.key)`,
  // a chunk's rows without a status; those delivered by position are left out by readChunk (`deliveredIn`).
  // Keys and payloads come as their UTF-8 bytes, in order (payloads each followed by a comma), with each one's
  // length: two BLOBs handed to the main thread whole, where a row decodes its key or payload only when asked.
  // Positions come as the first one when they are consecutive (a chunk's first read), else as a JSON array.
  readChunk: `SELECT count(*) AS n, CAST(group_concat(key, '') AS BLOB) AS keys,
                     json_group_array(octet_length(key)) AS keyLengths, min(pos) AS firstPos,
                     CASE WHEN count(*) = max(pos) - min(pos) + 1 THEN NULL ELSE json_group_array(pos) END
                       AS positions,
                     json_group_array(octet_length(payload)) AS lengths,
                     CAST(group_concat(payload, ',') AS BLOB) AS payloads
              FROM (SELECT r.key, p.payload, r.pos FROM run_rows AS r JOIN run_payloads AS p ON p.id = r.id
                    WHERE r.run_no = @runNo AND r.pos >= @from AND r.pos < @to AND r.status IS NULL ORDER BY r.pos)`,
  deliveredIn: DELIVERED_IN,
};
/**
 * What the writer thread runs (see SqliteThread): the send stage's writes, which need no more than SQL. Each
 * request is one write transaction; the main connection's writes wait for it, and it for them.
 */
const WRITER_QUERIES = {
  // a batch delivered whole: its positions (@from ≤ p < @to) as one range, unless a recorded range overlaps it (a
  // batch recorded before: recordDeliveredRanges then records what is new, on the main connection)
  recordFreeRange: `INSERT INTO run_delivered (run_no, pos, upto)
    SELECT @runNo, @from, @to WHERE NOT EXISTS (SELECT 1 FROM ${DELIVERED_OVERLAPPING})`,
  commitDelivered: commitDeliveredSql('ORDER BY key'),
  // a run staged in key order has its positions in key order already: no sort (a fifth of a commit's time)
  commitDeliveredInOrder: commitDeliveredSql(''),
  commitRejected: COMMIT_REJECTED,
  chunkCounts: CHUNK_COUNTS,
};

/** The reader's page cache: it reads `synced` by key range and a chunk's rows, each once per run. */
const READER_CACHE_KIB = 4 * 1024;
/** The writer's page cache: it appends to `run_delivered` and `synced`, whose pages it writes are few at a time. */
const WRITER_CACHE_KIB = 4 * 1024;

interface RunRow {
  run_no: number;
  sync_id: string;
  run_id: string;
  workflow_id: string | null;
  status: RunStatus;
  mode: DiffMode;
  chunk_size: number;
  started_at: string;
  finished_at: string | null;
  counts: string;
  chunks: number | null;
  error: string | null;
  cursor: string | null;
  next_pos: number;
  extract_result: string | null;
  last_key: string | null;
  key_ordered: 0 | 1;
}

/** What chunk calls (readChunk, recordOutcomes, commitChunk) read of their run. */
type ChunkRunRow = Pick<RunRow, 'run_no' | 'status' | 'chunk_size' | 'chunks' | 'next_pos' | 'key_ordered'> & {
  extracted: 0 | 1;
};

type Statement = Database.Statement<unknown[], unknown>;

/**
 * The tables holding what runs staged, in the order a finished run's are dropped (run_pages last: a run that still
 * has pages still has staging rows), each with the statement that drops one range of at most @limit of a run's
 * rows when the table is shared (by key ranges: cheaper than IN lists).
 */
const STAGING_TABLES: readonly { table: string; step: string }[] = [
  // at once: ~0.3 s per million keys, a third of what steps of it cost
  { table: 'run_seen', step: 'DELETE FROM run_seen WHERE run_no = @runNo' },
  ...(
    [
      ['run_payloads', 'id'],
      ['run_rows', 'pos'],
      ['run_delivered', 'pos'],
      ['run_pages', 'page'],
    ] as const
  ).map(([table, column]) => ({
    table,
    step: `DELETE FROM ${table} WHERE run_no = @runNo
             AND ${column} < (SELECT min(${column}) FROM ${table} WHERE run_no = @runNo) + @limit`,
  })),
];

function prepareAll(db: Database.Database) {
  // per connection: the duplicate keys of the run being finished
  db.exec('CREATE TEMP TABLE IF NOT EXISTS duplicate_keys (key TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID');
  const s = (sql: string): Statement => db.prepare<unknown[], unknown>(sql);
  return {
    runById: s('SELECT * FROM runs WHERE sync_id = ? AND run_id = ?'),
    // what a chunk call needs of its run, without the run's JSON columns (asked once per batch sent)
    chunkRunById: s(
      `SELECT run_no, status, chunk_size, chunks, next_pos, key_ordered, extract_result IS NOT NULL AS extracted
       FROM runs WHERE sync_id = ? AND run_id = ?`,
    ),
    runsOfSync: s('SELECT * FROM runs WHERE sync_id = ? ORDER BY run_no DESC LIMIT ?'),
    otherRunningRuns: s("SELECT * FROM runs WHERE sync_id = ? AND run_id <> ? AND status = 'running' ORDER BY run_no"),
    insertRun: s(
      `INSERT INTO runs (sync_id, run_id, workflow_id, status, mode, chunk_size, started_at, counts, key_ordered)
       VALUES (?, ?, ?, 'running', ?, ?, ?, ?, 1)`,
    ),
    savePageProgress: s(
      'UPDATE runs SET cursor = ?, next_pos = ?, counts = ?, last_key = ?, key_ordered = ? WHERE run_no = ?',
    ),
    saveExtract: s('UPDATE runs SET extract_result = ?, chunks = ?, counts = ?, chunk_size = ? WHERE run_no = ?'),
    // bytes, not characters: a payload's size on the wire
    samplePayloadBytes: s(
      `SELECT avg(length(CAST(payload AS BLOB))) AS bytes FROM (
         SELECT payload FROM run_payloads WHERE run_no = @runNo ORDER BY id LIMIT ${CHUNK_SAMPLE_ROWS})`,
    ),
    finish: s('UPDATE runs SET status = ?, counts = ?, error = ?, finished_at = ? WHERE run_no = ?'),

    pageResult: s('SELECT result FROM run_pages WHERE run_no = ? AND page = ?'),
    insertPage: s('INSERT INTO run_pages (run_no, page, result, unchanged) VALUES (?, ?, ?, ?)'),

    // the keys the reader's probe found new (@wasSynced 0) or changed (1), as a JSON array in key order
    seeStaged: s(
      `INSERT INTO run_seen (run_no, page, key, seen, valid, was_synced, staged)
       SELECT @runNo, @page, value, 1, 1, @wasSynced, 1 FROM json_each(@keys)`,
    ),
    // a key twice on the page, or only on rejected rows: seen, never staged
    seeKey: s(
      `INSERT INTO run_seen (run_no, page, key, seen, valid, was_synced, staged)
       VALUES (@runNo, @page, @key, @seen, @valid,
               EXISTS (SELECT 1 FROM synced WHERE sync_no = ${SYNC_NO('@syncId')} AND key = @key), 0)`,
    ),
    // a staged key whose payload could not be built: rejected, like a row that failed mapping
    unseeStaged: s('UPDATE run_seen SET valid = 0, staged = 0 WHERE run_no = ? AND page = ? AND key = ?'),
    // a key staged on an earlier page too is a duplicate: finishExtract removes it
    insertRow: s(
      `INSERT INTO run_rows (run_no, pos, key, hash) VALUES (?, ?, ?, ?)
       ON CONFLICT (run_no, key) DO NOTHING`,
    ),
    insertPayload: s('INSERT INTO run_payloads (id, run_no, payload) VALUES (?, ?, ?)'),
    seenAggregates: s(seenAggregatesSql(RUN_KEYS)),
    seenAggregatesOrdered: s(seenAggregatesSql(ORDERED_RUN_KEYS)),
    clearDuplicates: s('DELETE FROM temp.duplicate_keys'),
    findDuplicates: s(findDuplicatesSql(RUN_KEYS)),
    findDuplicatesOrdered: s(findDuplicatesSql(ORDERED_RUN_KEYS)),
    fileDuplicates: s(
      `INSERT INTO rejected (sync_id, run_id, key, reason, stage, at)
       SELECT ?, ?, key, 'duplicate key ' || json_quote(key) || ' appears ' || n || ' times in the model', 'diff', ?
       FROM temp.duplicate_keys ORDER BY key`,
    ),
    unstageDuplicatePayloads: s(
      `DELETE FROM run_payloads WHERE id IN
         (SELECT id FROM run_rows WHERE run_no = ? AND key IN (SELECT key FROM temp.duplicate_keys))`,
    ),
    unstageDuplicates: s('DELETE FROM run_rows WHERE run_no = ? AND key IN (SELECT key FROM temp.duplicate_keys)'),
    // dense positions 0..n-1 in staging order, once duplicates left gaps
    renumber: s(
      `UPDATE run_rows SET pos = r.rn
       FROM (SELECT id, row_number() OVER (ORDER BY pos) - 1 AS rn FROM run_rows WHERE run_no = ?) AS r
       WHERE run_rows.id = r.id AND run_rows.pos <> r.rn`,
    ),
    readChunkRows: s(
      `SELECT r.key, p.payload, r.pos FROM run_rows AS r JOIN run_payloads AS p ON p.id = r.id
       WHERE r.run_no = ? AND r.pos >= ? AND r.pos < ? AND r.status IS NULL ORDER BY r.pos`,
    ),
    deliveredIn: s(DELIVERED_IN),
    recordDeliveredRange: s('INSERT INTO run_delivered (run_no, pos, upto) VALUES (?, ?, ?)'),
    recordOutcome: s('UPDATE run_rows SET status = @status, reason = @reason WHERE run_no = @runNo AND key = @key'),
    recordDelivered: s(
      `UPDATE run_rows SET status = 'delivered', reason = NULL
       WHERE run_no = @runNo AND key IN (SELECT value FROM json_each(@keys))`,
    ),
    unknownKeys: s(
      `SELECT DISTINCT j.value FROM json_each(@keys) AS j
       WHERE NOT EXISTS (SELECT 1 FROM run_rows WHERE run_no = @runNo AND key = j.value)`,
    ),
    commitDelivered: s(commitDeliveredSql('ORDER BY key')),
    commitRejected: s(COMMIT_REJECTED),
    chunkCounts: s(CHUNK_COUNTS),
    // a run's staging rows, table by table (STAGING_TABLES): a table holding this run's rows alone is emptied
    // whole (SQLite's truncate optimization frees its pages without visiting each row; min and max read the run_no
    // index's ends), otherwise its `step` drops them a range at a time
    dropStaging: STAGING_TABLES.map(({ table, step }) => ({
      onlyRun: s(
        `SELECT (SELECT min(run_no) FROM ${table}) = @runNo AND (SELECT max(run_no) FROM ${table}) = @runNo AS only`,
      ),
      whole: s(`DELETE FROM ${table}`),
      step: s(step),
    })),
    // finished runs of a sync whose staging a crash left half dropped
    leftoverStaging: s(
      `SELECT DISTINCT p.run_no FROM run_pages AS p JOIN runs AS r ON r.run_no = p.run_no
       WHERE r.sync_id = ? AND r.status <> 'running'`,
    ),
    dropRun: s('DELETE FROM runs WHERE run_no = ?'),
    dropRejectedOfRun: s('DELETE FROM rejected WHERE sync_id = ? AND run_id = ?'),

    insertRejected: s('INSERT INTO rejected (sync_id, run_id, key, reason, stage, at) VALUES (?, ?, ?, ?, ?, ?)'),
    sampleRejections: s(
      `SELECT key, reason, stage FROM rejected WHERE sync_id = ? AND run_id = ? ORDER BY id LIMIT ${MAX_SAMPLE_REJECTIONS}`,
    ),
    rejectedOfSync: s(
      'SELECT sync_id, run_id, key, reason, stage, at FROM rejected WHERE sync_id = ? ORDER BY id DESC LIMIT ?',
    ),
    countSynced: s(`SELECT count(*) AS n FROM synced WHERE sync_no = ${SYNC_NO('?')}`),
    resetSync: s(`DELETE FROM synced WHERE sync_no = ${SYNC_NO('?')}`),
    getSnapshot: s('SELECT snapshot FROM warehouse_snapshots WHERE sync_id = ?'),
    setSnapshot: s(
      'INSERT INTO warehouse_snapshots (sync_id, snapshot) VALUES (?, ?) ON CONFLICT (sync_id) DO UPDATE SET snapshot = excluded.snapshot',
    ),
    forgetSnapshot: s('DELETE FROM warehouse_snapshots WHERE sync_id = ?'),
    numberSync: s('INSERT INTO sync_ids (sync_id) VALUES (?) ON CONFLICT (sync_id) DO NOTHING'),
  };
}

type Statements = ReturnType<typeof prepareAll>;

/** A page's stageable keys by what the diff found, each a JSON array (`READER_QUERIES.probe`). */
interface ProbeResult {
  fresh: string;
  changed: string;
  unchanged: string;
}

const NOTHING_PROBED: ProbeResult = { fresh: '[]', changed: '[]', unchanged: '[]' };

interface ChunkColumns {
  n: number;
  /** The keys' UTF-8 bytes, one after the other. */
  keys: Uint8Array | null;
  /** Each key's length in bytes (JSON). */
  keyLengths: string;
  firstPos: number | null;
  /** Each row's position (JSON), or null when they run from firstPos one by one. */
  positions: string | null;
  /** Each payload's length in bytes (JSON). */
  lengths: string;
  /** The payloads' UTF-8 bytes, each followed by a comma but the last. */
  payloads: Uint8Array | null;
}

/**
 * A chunk as read: its keys and payloads as UTF-8 bytes, and where each row's key and payload end. Its rows are
 * views of it: a chunk of 10,000 rows is 10,000 small objects, not also 10,000 key strings, 10,000 fingerprints the
 * send stage never reads and their JSON columns, which lived long enough to be promoted to V8's old generation.
 */
class ChunkData {
  constructor(
    readonly keys: Buffer,
    readonly keyEnds: Int32Array,
    readonly payloads: Buffer,
    readonly payloadEnds: Int32Array,
    readonly firstPos: number,
    readonly positions: readonly number[] | undefined,
  ) {}
}

/** A row of a chunk read as bytes: its key and payload are decoded only when asked for (request bodies take bytes). */
class ChunkRow implements StagedRow, PayloadBytes {
  constructor(
    private readonly chunk: ChunkData,
    private readonly i: number,
  ) {}

  get key(): string {
    const { keys, keyEnds } = this.chunk;
    return keys.toString('utf8', this.i === 0 ? 0 : keyEnds[this.i - 1], keyEnds[this.i]);
  }

  get pos(): number {
    const { positions, firstPos } = this.chunk;
    return positions === undefined ? firstPos + this.i : (positions[this.i] as number);
  }

  get payload(): string {
    return this.chunk.payloads.toString('utf8', this.start, this.end);
  }

  get bytes(): PayloadBytes {
    return this;
  }

  get source(): Buffer {
    return this.chunk.payloads;
  }

  get start(): number {
    return this.i === 0 ? 0 : (this.chunk.payloadEnds[this.i - 1] as number) + 1;
  }

  get end(): number {
    return this.chunk.payloadEnds[this.i] as number;
  }
}

function bufferOf(bytes: Uint8Array | null): Buffer {
  return bytes === null ? Buffer.alloc(0) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * The rows of readChunk's query (its columns) as views of one ChunkData, or undefined when the keys' or payloads'
 * bytes do not add up to their lengths (the caller then reads the chunk row by row).
 */
function chunkRows(columns: ChunkColumns): StagedRow[] | undefined {
  if (columns.n === 0) return [];
  const keyLengths = JSON.parse(columns.keyLengths) as number[];
  const lengths = JSON.parse(columns.lengths) as number[];
  const keyEnds = new Int32Array(columns.n);
  const payloadEnds = new Int32Array(columns.n);
  let keyAt = 0;
  let at = 0;
  for (let i = 0; i < columns.n; i++) {
    keyAt += keyLengths[i] as number;
    keyEnds[i] = keyAt;
    const end = at + (lengths[i] as number);
    payloadEnds[i] = end;
    at = end + 1;
  }
  const keys = bufferOf(columns.keys);
  const payloads = bufferOf(columns.payloads);
  if (keyAt !== keys.length || at !== payloads.length + 1) return undefined;
  const positions = columns.positions === null ? undefined : (JSON.parse(columns.positions) as number[]);
  const chunk = new ChunkData(keys, keyEnds, payloads, payloadEnds, columns.firstPos ?? 0, positions);
  const rows = new Array<StagedRow>(columns.n);
  for (let i = 0; i < columns.n; i++) rows[i] = new ChunkRow(chunk, i);
  return rows;
}

/** Positions as ranges of consecutive positions (`[from, to)`), in order, each position once. */
function rangesOf(positions: ArrayLike<number>): [number, number][] {
  const sorted = Float64Array.from(positions).sort();
  const ranges: [number, number][] = [];
  for (const pos of sorted) {
    const last = ranges[ranges.length - 1];
    if (last !== undefined && pos <= last[1]) last[1] = Math.max(last[1], pos + 1);
    else ranges.push([pos, pos + 1]);
  }
  return ranges;
}

/**
 * The positions of outcomes all delivered (each with its staging position, below `nextPos`) as ranges (a batch
 * delivered whole is one); undefined if any outcome is of another kind.
 */
function deliveredRanges(outcomes: readonly RowOutcome[], nextPos: number): [number, number][] | undefined {
  const positions: number[] = [];
  for (const outcome of outcomes) {
    const pos = deliveredPosition(outcome, nextPos);
    if (pos === undefined) return undefined;
    positions.push(pos);
  }
  return rangesOf(positions);
}

/**
 * Records delivered positions as ranges of consecutive positions (a batch delivered whole is one range), less
 * those already recorded: ranges never overlap, so a chunk's delivered count is the sum of their lengths.
 */
function recordDeliveredRanges(s: Statements, runNo: number, positions: number[]): void {
  const ranges = rangesOf(positions);
  const from = (ranges[0] as [number, number])[0];
  const to = (ranges[ranges.length - 1] as [number, number])[1];
  const recorded = s.deliveredIn.raw().all({ runNo, from, to }) as [number, number][];
  let r = 0;
  for (const range of ranges) {
    let [start] = range;
    const end = range[1];
    while (r < recorded.length && (recorded[r] as [number, number])[1] <= start) r++;
    // what the recorded ranges leave of this one, between and after them
    for (let k = r; k < recorded.length && (recorded[k] as [number, number])[0] < end; k++) {
      const [recordedFrom, recordedTo] = recorded[k] as [number, number];
      if (recordedFrom > start) s.recordDeliveredRange.run(runNo, start, recordedFrom);
      start = Math.max(start, recordedTo);
    }
    if (start < end) s.recordDeliveredRange.run(runNo, start, end);
  }
}

function toRecord(row: RunRow): RunRecord {
  return {
    syncId: row.sync_id,
    runId: row.run_id,
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    counts: parseCounts(row.counts),
    chunks: row.chunks,
    workflowId: row.workflow_id,
    error: row.error,
  };
}

/** The state store in one SQLite file: the default for a single worker. */
export class SqliteStateStore implements StateStore {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly now: () => Date;
  private prepared: Statements | undefined;
  private readonly dropBatchRows: number;
  /** The long reads' connection, and the send stage's writes' (see SqliteThread). */
  private readonly reader: SqliteThread;
  private readonly writer: SqliteThread;

  constructor(options: SqliteStateStoreOptions) {
    this.file = path.resolve(options.file);
    this.now = options.now ?? (() => new Date());
    this.dropBatchRows = options.dropBatchRows ?? DROP_BATCH_ROWS;
    this.db = this.guard(`open ${this.file}`, () => {
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      fs.closeSync(fs.openSync(this.file, 'a', 0o600));
      fs.chmodSync(this.file, 0o600);
      const db = new Database(this.file);
      db.pragma('journal_mode = WAL');
      db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS}`);
      // WAL + NORMAL survives a process crash; a power cut may lose the last commits, which are then re-sent
      db.pragma('synchronous = NORMAL');
      db.pragma(`cache_size = -${CACHE_SIZE_KIB}`);
      return db;
    });
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    this.reader = new SqliteThread({
      file: this.file,
      busyTimeoutMs,
      cacheKib: READER_CACHE_KIB,
      writable: false,
      queries: READER_QUERIES,
    });
    this.writer = new SqliteThread({
      file: this.file,
      busyTimeoutMs,
      cacheKib: WRITER_CACHE_KIB,
      writable: true,
      queries: WRITER_QUERIES,
    });
  }

  migrate(): Promise<void> {
    return this.attempt('create or upgrade its tables', () => {
      this.db
        .transaction(() => {
          const version = this.db.pragma('user_version', { simple: true }) as number;
          if (version > SCHEMA_VERSION) {
            throw new StateConflictError(
              `SQLite state store ${this.file} has schema version ${version}, newer than this ampsync's ` +
                `${SCHEMA_VERSION}: upgrade ampsync, or point AMPSYNC_STATE at another file`,
            );
          }
          if (version === 1) this.db.exec(MIGRATE_V1_TO_V2);
          this.db.exec(SCHEMA);
          const runsColumns = new Set(
            (this.db.pragma('table_info(runs)') as { name: string }[]).map((column) => column.name),
          );
          for (const [name, add] of Object.entries(RUNS_V5_COLUMNS)) if (!runsColumns.has(name)) this.db.exec(add);
          const deliveredColumns = this.db.pragma('table_info(run_delivered)') as { name: string }[];
          if (!deliveredColumns.some((column) => column.name === 'upto')) this.db.exec(MIGRATE_RUN_DELIVERED_TO_RANGES);
          this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
        })
        .immediate();
      this.prepared = prepareAll(this.db);
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.reader.close(), this.writer.close()]);
    return this.attempt('close', () => {
      if (this.db.open) this.db.close();
    });
  }

  async beginRun(input: BeginRunInput): Promise<RunRecord> {
    const { syncId, runId } = input;
    const record = await this.write(`begin ${runLabel(syncId, runId)}`, (s) => {
      checkChunkSize(input.chunkSize, syncId, runId);
      const existing = s.runById.get(syncId, runId) as RunRow | undefined;
      if (existing !== undefined) {
        checkSameRun(
          { mode: existing.mode, chunkSize: existing.chunk_size, chunks: existing.chunks },
          input,
          syncId,
          runId,
        );
        return toRecord(existing);
      }
      s.numberSync.run(syncId);
      // one workflow runs a sync at a time: a run of this sync still open here was abandoned by its workflow
      for (const stale of s.otherRunningRuns.all(syncId, runId) as RunRow[]) this.closeAbandoned(s, stale, runId);
      s.insertRun.run(
        syncId,
        runId,
        input.workflowId ?? null,
        input.mode,
        input.chunkSize,
        this.now().toISOString(),
        JSON.stringify(emptyCounts()),
      );
      return toRecord(this.requireRun(s, syncId, runId));
    });
    // the staging of the runs just closed, and of any whose drop a crash cut short
    await this.dropLeftoverStaging(syncId);
    return record;
  }

  getRun(syncId: string, runId: string): Promise<RunRecord | null> {
    return this.read(`read ${runLabel(syncId, runId)}`, (s) => {
      const row = s.runById.get(syncId, runId) as RunRow | undefined;
      return row === undefined ? null : toRecord(row);
    });
  }

  listRuns(syncId: string, limit: number): Promise<RunRecord[]> {
    return this.read(`list the runs of sync "${syncId}"`, (s) =>
      (s.runsOfSync.all(syncId, limit) as RunRow[]).map(toRecord),
    );
  }

  getExtractCursor(syncId: string, runId: string): Promise<ExtractCursor | null> {
    return this.read(`read the extract cursor of ${runLabel(syncId, runId)}`, (s) => {
      const run = this.requireRun(s, syncId, runId);
      if (run.cursor === null) return null;
      return { position: JSON.parse(run.cursor) as ExtractCursor['position'], staged: run.next_pos };
    });
  }

  async stagePage(input: StagePageInput): Promise<StagePageResult> {
    const { syncId, runId, cursor } = input;
    const operation = `stage page ${cursor.page} of ${runLabel(syncId, runId)}`;
    const mode = await this.read(operation, (s) => this.requireRun(s, syncId, runId).mode);
    const entries = summarizePage(input.rows, input.rejected);
    // the page's stageable keys probed against `synced` on the reader thread (the event loop goes on meanwhile):
    // those new or changed are staged; `synced` changes only when this sync's chunks are committed, after
    // extraction
    const keys: string[] = [];
    const hashes: string[] = [];
    for (const e of entries) {
      if (!isStageable(e)) continue;
      keys.push(e.key);
      hashes.push(e.row.hash);
    }
    const probe =
      keys.length === 0
        ? NOTHING_PROBED
        : ((
            await this.aside(this.reader, operation, [
              {
                query: 'probe',
                params: { syncId, upsert: mode === 'upsert' ? 1 : 0 },
                object: { param: 'keys', keys, values: hashes },
                mode: 'get',
              },
            ])
          )[0] as ProbeResult);
    return this.write(operation, (s) => {
      const run = this.requireRun(s, syncId, runId);
      // a page staged before (an activity retried after the commit) is not staged twice
      const replayed = s.pageResult.get(run.run_no, cursor.page) as { result: string } | undefined;
      if (replayed !== undefined) return JSON.parse(replayed.result) as StagePageResult;
      checkStageable({ status: run.status, extracted: run.extract_result !== null }, syncId, runId);

      const page = { runNo: run.run_no, page: cursor.page, syncId };
      const staged = new Map<string, boolean>();
      for (const [list, wasSynced] of [
        [probe.fresh, false],
        [probe.changed, true],
      ] as const) {
        if (list === '[]') continue;
        s.seeStaged.run({ runNo: run.run_no, page: cursor.page, keys: list, wasSynced: wasSynced ? 1 : 0 });
        for (const key of JSON.parse(list) as string[]) staged.set(key, wasSynced);
      }
      for (const e of entries) {
        if (!isStageable(e)) s.seeKey.run({ ...page, key: e.key, seen: e.seen, valid: e.valid });
      }
      const plan = positionPage(entries, staged, run.next_pos, input.build);
      for (const r of plan.rows) {
        const inserted = s.insertRow.run(run.run_no, r.pos, r.key, r.hash);
        if (inserted.changes === 1) s.insertPayload.run(inserted.lastInsertRowid, run.run_no, r.payload);
      }
      const at = this.now().toISOString();
      for (const r of input.rejected) s.insertRejected.run(syncId, runId, r.key, r.reason, r.stage, at);
      for (const r of plan.rejected) {
        s.unseeStaged.run(run.run_no, cursor.page, r.key);
        s.insertRejected.run(syncId, runId, r.key, r.reason, r.stage, at);
      }

      const counts = addPage(parseCounts(run.counts), pageTally(input, plan));
      const position = run.cursor === null ? null : (JSON.parse(run.cursor) as ExtractCursor['position']);
      // the cursor only moves forward, even if an older attempt stages a page late
      const nextCursor = position !== null && position.page > cursor.page ? position : cursor;
      const order = pageOrder(
        entries,
        { ordered: run.key_ordered === 1, lastKey: run.last_key },
        input.keyOrdered === true,
      );
      s.savePageProgress.run(
        JSON.stringify(nextCursor),
        plan.nextPos,
        JSON.stringify(counts),
        order.lastKey,
        order.ordered ? 1 : 0,
        run.run_no,
      );
      // the unchanged keys as the probe listed them (the same keys as plan.unchanged)
      s.insertPage.run(run.run_no, cursor.page, JSON.stringify(plan.result), probe.unchanged);
      return plan.result;
    });
  }

  finishExtract(syncId: string, runId: string): Promise<FinishExtractResult> {
    return this.write(`finish extraction of ${runLabel(syncId, runId)}`, (s) => {
      const run = this.requireRun(s, syncId, runId);
      if (run.extract_result !== null) return JSON.parse(run.extract_result) as FinishExtractResult;
      checkStageable({ status: run.status, extracted: false }, syncId, runId);

      // a run whose pages came in key order has no key on two pages: its unchanged keys are counted, not grouped
      const ordered = run.key_ordered === 1;
      const unchanged = ordered ? parseCounts(run.counts).unchanged : 0;
      const aggregates = ordered ? s.seenAggregatesOrdered : s.seenAggregates;
      const seen = aggregates.get({ runNo: run.run_no, unchanged }) as SeenAggregates;
      if (seen.duplicateKeys > 0) {
        s.clearDuplicates.run();
        (ordered ? s.findDuplicatesOrdered : s.findDuplicates).run({ runNo: run.run_no });
        s.fileDuplicates.run(syncId, runId, this.now().toISOString());
        s.unstageDuplicatePayloads.run(run.run_no);
        s.unstageDuplicates.run(run.run_no);
        s.renumber.run(run.run_no);
        s.clearDuplicates.run();
      }
      const syncedKeys = (s.countSynced.get(syncId) as { n: number }).n;
      const samples = s.sampleRejections.all(syncId, runId) as RowRejection[];
      // large payloads make smaller chunks: the send stage holds a few chunks' rows at once
      const payloadBytes = (s.samplePayloadBytes.get({ runNo: run.run_no }) as { bytes: number | null }).bytes;
      const chunkSize = chunkRowsFor(run.chunk_size, payloadBytes);
      const result = extractResult(parseCounts(run.counts), seen, syncedKeys, chunkSize, samples);
      const counts: RunCounts = { ...parseCounts(run.counts), ...result.counts };
      s.saveExtract.run(JSON.stringify(result), result.chunks, JSON.stringify(counts), chunkSize, run.run_no);
      return result;
    });
  }

  async readChunk(syncId: string, runId: string, chunk: number): Promise<StagedRow[]> {
    const operation = `read chunk ${chunk} of ${runLabel(syncId, runId)}`;
    const run = await this.read(operation, (s) => this.chunkableRun(s, syncId, runId, chunk));
    const from = chunk * run.chunk_size;
    const to = from + run.chunk_size;
    const range = { runNo: run.run_no, from, to };
    // read on the reader thread: the event loop sends other chunks' batches meanwhile
    const [columns, deliveredRanges] = await this.aside(this.reader, operation, [
      { query: 'readChunk', params: range, mode: 'get' },
      { query: 'deliveredIn', params: range, mode: 'raw' },
    ]);
    const rows =
      chunkRows(columns as ChunkColumns) ??
      (await this.read(operation, (s) => s.readChunkRows.all(run.run_no, from, to) as StagedRow[]));
    // a retried send: rows an earlier attempt delivered are left out (none, on a chunk's first read)
    const delivered = deliveredRanges as [number, number][];
    if (delivered.length === 0) return rows;
    let next = 0;
    return rows.filter((r) => {
      const pos = r.pos as number;
      while (next < delivered.length && (delivered[next] as [number, number])[1] <= pos) next++;
      const covering = delivered[next];
      return covering === undefined || pos < covering[0];
    });
  }

  async recordOutcomes(syncId: string, runId: string, outcomes: RowOutcome[]): Promise<void> {
    if (outcomes.length === 0) return;
    const operation = `record ${outcomes.length} outcomes of ${runLabel(syncId, runId)}`;
    const run = await this.read(operation, (s) => this.chunkableRun(s, syncId, runId));
    // the usual answer, a batch delivered whole: its positions as ranges, appended on the writer thread (each
    // where no recorded range overlaps it; else, and for any other answer, in one transaction here)
    const ranges = deliveredRanges(outcomes, run.next_pos);
    if (ranges !== undefined) {
      const appended = await this.aside(
        this.writer,
        operation,
        ranges.map(([from, to]) => ({
          query: 'recordFreeRange',
          params: { runNo: run.run_no, from, to },
          mode: 'run',
        })),
      );
      if (appended.every((r) => (r as { changes: number }).changes === 1)) return;
    }
    return this.write(operation, (s) => {
      const run = this.chunkableRun(s, syncId, runId);
      const unknown: string[] = [];
      // delivered, the usual answer, in one statement per batch: appended by position when the outcome carries
      // one (no key lookup, no row rewritten), else by key; the rest one by one, with their reasons
      const delivered: string[] = [];
      const deliveredAt: number[] = [];
      for (const o of outcomes) {
        if (o.status === 'delivered') {
          const pos = deliveredPosition(o, run.next_pos);
          if (pos !== undefined) deliveredAt.push(pos);
          else delivered.push(o.key);
          continue;
        }
        const outcome = { status: o.status, reason: o.reason, runNo: run.run_no, key: o.key };
        if (s.recordOutcome.run(outcome).changes === 0) unknown.push(o.key);
      }
      if (deliveredAt.length > 0) recordDeliveredRanges(s, run.run_no, deliveredAt);
      if (delivered.length > 0) {
        const keys = JSON.stringify(delivered);
        const changed = s.recordDelivered.run({ runNo: run.run_no, keys }).changes;
        if (changed !== delivered.length) {
          unknown.push(...(s.unknownKeys.pluck().all({ runNo: run.run_no, keys }) as string[]));
        }
      }
      if (unknown.length > 0) throw unknownKeys(unknown, syncId, runId);
    });
  }

  async commitChunk(syncId: string, runId: string, chunk: number): Promise<CommitChunkResult> {
    const operation = `commit chunk ${chunk} of ${runLabel(syncId, runId)}`;
    const run = await this.read(operation, (s) => this.chunkableRun(s, syncId, runId, chunk));
    const from = chunk * run.chunk_size;
    const to = from + run.chunk_size;
    const range = { syncId, runId, runNo: run.run_no, from, to };
    // on the writer thread, in one transaction: the worker's event loop sends other chunks meanwhile
    const [, , counts] = await this.aside(this.writer, operation, [
      { query: run.key_ordered === 1 ? 'commitDeliveredInOrder' : 'commitDelivered', params: range, mode: 'run' },
      { query: 'commitRejected', params: { ...range, at: this.now().toISOString() }, mode: 'run' },
      { query: 'chunkCounts', params: range, mode: 'get' },
    ]);
    return counts as CommitChunkResult;
  }

  async finishRun(
    syncId: string,
    runId: string,
    status: Exclude<RunStatus, 'running'>,
    counts: RunCounts,
    error?: string,
  ): Promise<RunRecord> {
    const label = runLabel(syncId, runId);
    const finished = await this.write(`finish ${label}`, (s) => {
      const run = this.requireRun(s, syncId, runId);
      if (run.status === 'running') {
        s.finish.run(status, JSON.stringify(counts), error ?? null, this.now().toISOString(), run.run_no);
      }
      return { runNo: run.run_no, record: toRecord(this.requireRun(s, syncId, runId)) };
    });
    // after the run is marked finished, in steps (a finishRun retried after a crash drops what is left)
    await this.dropStagingInSteps(finished.runNo, label);
    return finished.record;
  }

  /**
   * Closes a run its workflow left open (terminated, timed out, reset): rows it delivered become synced, rows
   * Amplitude rejected are filed, the run is marked failed and its staging rows are dropped.
   */
  private closeAbandoned(s: Statements, run: RunRow, byRunId: string): void {
    const at = this.now().toISOString();
    let outcomes: CommitChunkResult | undefined;
    if (run.chunks !== null) {
      const all = { syncId: run.sync_id, runNo: run.run_no, from: 0, to: ALL_POSITIONS };
      s.commitDelivered.run(all);
      s.commitRejected.run({ ...all, runId: run.run_id, at });
      outcomes = s.chunkCounts.get(all) as CommitChunkResult;
    }
    const counts = abandonedCounts(parseCounts(run.counts), outcomes);
    s.finish.run('failed', JSON.stringify(counts), abandonedReason(byRunId), at, run.run_no);
    // its staging rows are dropped once the transaction is over (beginRun: dropLeftoverStaging)
  }

  /**
   * Drops what a run staged (seen keys, pages, rows, payloads, positional outcomes), table by table, letting the
   * event loop run between transactions; its log entry stays. A table that holds no other run's rows is emptied in
   * one statement (what a worker running one sync at a time always finds: 3.6 s of a 1M-row run's finish became
   * ~0.1 s); one shared with another run's staging loses this run's rows in steps of at most dropBatchRows.
   */
  private async dropStagingInSteps(runNo: number, label: string): Promise<void> {
    const operation = `drop the staging rows of ${label}`;
    const limit = this.dropBatchRows;
    for (let table = 0; table < STAGING_TABLES.length; table++) {
      const whole = await this.write(operation, (s) => {
        const drop = s.dropStaging[table] as (typeof s.dropStaging)[number];
        if ((drop.onlyRun.get({ runNo }) as { only: number | null }).only !== 1) return false;
        drop.whole.run();
        return true;
      });
      await setImmediate();
      if (whole) continue;
      for (;;) {
        const dropped = await this.write(operation, (s) => s.dropStaging[table]?.step.run({ runNo, limit }).changes);
        await setImmediate();
        // a range may hold fewer rows than the limit (ids of other runs in between): done once one holds none
        if (dropped === 0) break;
      }
    }
  }

  /** Drops the staging rows of the sync's finished runs that still have some (closed abandoned, or cut short). */
  private async dropLeftoverStaging(syncId: string): Promise<void> {
    const runs = await this.read(`find the leftover staging rows of sync "${syncId}"`, (s) =>
      s.leftoverStaging.pluck().all(syncId),
    );
    for (const runNo of runs as number[]) await this.dropStagingInSteps(runNo, `run ${runNo} of sync "${syncId}"`);
  }

  async discardRun(syncId: string, runId: string): Promise<void> {
    const label = runLabel(syncId, runId);
    const run = await this.read(`discard ${label}`, (s) => s.runById.get(syncId, runId) as RunRow | undefined);
    if (run === undefined) return;
    await this.dropStagingInSteps(run.run_no, label);
    await this.write(`discard ${label}`, (s) => {
      s.dropRejectedOfRun.run(syncId, runId);
      s.dropRun.run(run.run_no);
    });
  }

  listRejected(syncId: string, limit: number): Promise<RejectedRow[]> {
    return this.read(`list the rejected rows of sync "${syncId}"`, (s) =>
      (
        s.rejectedOfSync.all(syncId, limit) as {
          sync_id: string;
          run_id: string;
          key: string | null;
          reason: string;
          stage: RejectedRow['stage'];
          at: string;
        }[]
      ).map((r) => ({ syncId: r.sync_id, runId: r.run_id, key: r.key, reason: r.reason, stage: r.stage, at: r.at })),
    );
  }

  countSynced(syncId: string): Promise<number> {
    return this.read(
      `count the synced keys of sync "${syncId}"`,
      (s) => (s.countSynced.get(syncId) as { n: number }).n,
    );
  }

  resetSync(syncId: string): Promise<void> {
    return this.write(`reset sync "${syncId}"`, (s) => {
      s.resetSync.run(syncId);
      s.forgetSnapshot.run(syncId);
    });
  }

  getWarehouseSnapshot(syncId: string): Promise<WarehouseSnapshot | null> {
    return this.read(`read the warehouse snapshot of sync "${syncId}"`, (s) => {
      const row = s.getSnapshot.get(syncId) as { snapshot: string } | undefined;
      return row === undefined ? null : (JSON.parse(row.snapshot) as WarehouseSnapshot);
    });
  }

  setWarehouseSnapshot(syncId: string, snapshot: WarehouseSnapshot | null): Promise<void> {
    return this.write(`record the warehouse snapshot of sync "${syncId}"`, (s) => {
      if (snapshot === null) s.forgetSnapshot.run(syncId);
      else s.setSnapshot.run(syncId, JSON.stringify(snapshot));
    });
  }

  private statements(): Statements {
    try {
      this.prepared ??= prepareAll(this.db);
    } catch (err) {
      if (!/no such table/.test(err instanceof Error ? err.message : '')) throw err;
      throw new StateConflictError(`SQLite state store ${this.file} has no tables yet: call migrate() first`, {
        cause: err,
      });
    }
    return this.prepared;
  }

  private requireRun(s: Statements, syncId: string, runId: string): RunRow {
    const run = s.runById.get(syncId, runId) as RunRow | undefined;
    if (run === undefined) throw new RunNotFoundError(syncId, runId);
    return run;
  }

  private chunkableRun(s: Statements, syncId: string, runId: string, chunk?: number): ChunkRunRow {
    const run = s.chunkRunById.get(syncId, runId) as ChunkRunRow | undefined;
    if (run === undefined) throw new RunNotFoundError(syncId, runId);
    checkChunkable({ status: run.status, extracted: run.extracted === 1, chunks: run.chunks }, syncId, runId, chunk);
    return run;
  }

  private guard<T>(operation: string, body: () => T): T {
    try {
      return body();
    } catch (err) {
      throw classifyDatabaseError(err, `SQLite (${this.file})`, operation);
    }
  }

  /** Runs `body` now and settles the promise with its result or its classified failure. */
  private attempt<T>(operation: string, body: () => T): Promise<T> {
    return new Promise((resolve) => resolve(this.guard(operation, body)));
  }

  /** Runs the steps in one transaction on one of the store's threads, its failure classified. */
  private async aside(thread: SqliteThread, operation: string, steps: ThreadStep[]): Promise<unknown[]> {
    this.statements(); // migrated: the thread prepares its queries against the current schema
    try {
      return await thread.run(steps);
    } catch (err) {
      if (err instanceof ThreadStoppedError) {
        // retryable: the next request starts the thread again
        throw new StateUnavailableError(`SQLite (${this.file}) state store could not ${operation}: ${err.message}`, {
          cause: err,
        });
      }
      throw classifyDatabaseError(err, `SQLite (${this.file})`, operation);
    }
  }

  private read<T>(operation: string, body: (s: Statements) => T): Promise<T> {
    return this.attempt(operation, () => body(this.statements()));
  }

  /** Runs `body` in one write transaction, begun IMMEDIATE so concurrent writers wait instead of deadlocking. */
  private write<T>(operation: string, body: (s: Statements) => T): Promise<T> {
    return this.attempt(operation, () => this.db.transaction(() => body(this.statements())).immediate());
  }
}

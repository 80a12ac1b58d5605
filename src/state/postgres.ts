/**
 * The shared state store: PostgreSQL, for workers on several machines. Every call is one short transaction, so
 * workers can commit different chunks of one run at the same time without any lock held across calls. A page's
 * keys are loaded with COPY into a session temp table and diffed by one statement; its unchanged keys (most of
 * them) are kept as one JSON array per page, its other keys appended to `run_seen`, and all are grouped by key
 * once, in finishExtract, to find duplicates and count gone keys. Rows to send go to `run_rows` in staging order.
 *
 *   const state = new PostgresStateStore({ connectionString: 'postgres://ampsync@db:5432/ampsync' });
 *   await state.migrate();
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'pg';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { DiffMode, RowOutcome, RowRejection, RunCounts, StagedRow } from '../sync/types';
import { emptyCounts } from '../sync/types';
import {
  ALL_POSITIONS,
  abandonedCounts,
  abandonedReason,
  deliveredPosition,
  MAX_SAMPLE_REJECTIONS,
  addPage,
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
import { RunNotFoundError, StateConfigError, classifyDatabaseError } from './errors';
import { isStageable, pageOrder, pageTally, positionPage, summarizePage } from './page-plan';
import type { PositionedRow } from './page-plan';
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

/** Connections per process when not configured. */
export const DEFAULT_POOL_SIZE = 10;
/** How long a call waits for a free or new connection before failing (retryably). */
export const DEFAULT_CONNECTION_TIMEOUT_MS = 10_000;
const DEFAULT_SCHEMA = 'ampsync';
/**
 * 2: delivered rows recorded by position in `run_delivered` (status-recorded rows still count as delivered).
 * 3: `warehouse_snapshots`, where each sync's warehouse-side diff snapshot is recorded (a new table only).
 */
const SCHEMA_VERSION = 4;
/** An unquoted PostgreSQL identifier (at most 63 bytes). */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
/** The tables holding what runs staged. */
const STAGING_TABLES = ['run_seen', 'run_rows', 'run_delivered', 'run_pages'] as const;
/** SQLSTATEs that leave a finished run's staging to DELETE: a lock NOWAIT could not take, TRUNCATE not granted. */
const LOCK_NOT_AVAILABLE = '55P03';
const INSUFFICIENT_PRIVILEGE = '42501';
/** Session temp tables a page is copied into; emptied at each commit. */
const PAGE_KEYS = 'pg_temp.ampsync_page_keys';
const PAGE_ROWS = 'pg_temp.ampsync_page_rows';
/** Memory for finishExtract's group-by over a run's keys (server side, that transaction only). */
const GROUP_WORK_MEM = '64MB';
/**
 * Set for a commit's lookup of delivered rows by position. Once ANALYZE saw the staging tables empty (autovacuum
 * does between runs), every estimate is one row and the planner may probe run_rows with a bitmap scan of all the
 * run's rows (run_no only) for each delivered row: 10 s for a 10,000-row chunk instead of 0.1 s. Without bitmap
 * scans it uses the (run_no, pos) index.
 */
export const DELIVERED_LOOKUP_SETTING = 'enable_bitmapscan = off';

/**
 * The key and hash of each row of run $1 at positions [$2, $3) that was delivered: recorded by position
 * (run_delivered) or by key, in the row's status. `t` is the quoted schema.
 */
export function deliveredRowsSql(t: string): string {
  return `SELECT r.key, r.hash FROM ${t}.run_delivered AS d
    CROSS JOIN LATERAL (SELECT key, hash FROM ${t}.run_rows WHERE run_no = d.run_no AND pos = d.pos LIMIT 1) AS r
    WHERE d.run_no = $1 AND d.pos >= $2 AND d.pos < $3
    UNION ALL
    SELECT key, hash FROM ${t}.run_rows WHERE run_no = $1 AND pos >= $2 AND pos < $3 AND status = 'delivered'`;
}

export interface PostgresStateStoreOptions {
  /** `postgres://user@host:5432/db` (credentials may also come from PG* variables and ~/.pgpass). */
  connectionString: string;
  /** Schema of the tables, created if missing (default `ampsync`); lowercase letters, digits and `_`. */
  schema?: string;
  /** Connections per process (default 10). */
  poolSize?: number;
  connectionTimeoutMs?: number;
  /** Shown in pg_stat_activity (default `ampsync`). */
  applicationName?: string;
  /** Clock for run and rejection times (tests pin it). */
  now?: () => Date;
}

interface RunRow {
  run_no: number;
  sync_id: string;
  run_id: string;
  workflow_id: string | null;
  status: RunStatus;
  mode: DiffMode;
  chunk_size: number;
  started_at: Date;
  finished_at: Date | null;
  counts: RunCounts;
  chunks: number | null;
  error: string | null;
  cursor: ExtractCursor['position'] | null;
  next_pos: number;
  extract_result: FinishExtractResult | null;
  last_key: string | null;
  key_ordered: boolean;
}

function toRecord(row: RunRow): RunRecord {
  return {
    syncId: row.sync_id,
    runId: row.run_id,
    status: row.status,
    startedAt: row.started_at.toISOString(),
    finishedAt: row.finished_at === null ? null : row.finished_at.toISOString(),
    counts: parseCounts(row.counts),
    chunks: row.chunks,
    workflowId: row.workflow_id,
    error: row.error,
  };
}

const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** A value in COPY's text format. */
const NEEDS_ESCAPE = /[\\\n\r\t]/;

function copyValue(value: string | number | boolean | null): string {
  if (value === null) return '\\N';
  if (typeof value !== 'string') return String(value);
  return NEEDS_ESCAPE.test(value) ? value.replace(/[\\\n\r\t]/g, (c) => COPY_ESCAPES[c] ?? c) : value;
}

/** COPY text, one line per item; `sorted` orders the lines (the native sort, no comparator). */
function copyText<T>(
  items: readonly T[],
  columns: (item: T) => (string | number | boolean | null)[],
  sorted: boolean,
): string {
  const lines: string[] = [];
  for (const item of items) {
    const values = columns(item);
    let line = '';
    for (let i = 0; i < values.length; i++) line += (i === 0 ? '' : '\t') + copyValue(values[i] ?? null);
    lines.push(line);
  }
  if (sorted) lines.sort();
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** The state store in a PostgreSQL schema: shared by every worker of a deployment. */
export class PostgresStateStore implements StateStore {
  readonly schema: string;
  private readonly pool: Pool;
  private readonly now: () => Date;
  /** Quoted schema prefix of every table. */
  private readonly t: string;
  /** Pooled connections whose session already has the page temp table. */
  private readonly withPageTables = new WeakSet<PoolClient>();

  constructor(options: PostgresStateStoreOptions) {
    this.schema = options.schema ?? DEFAULT_SCHEMA;
    if (!IDENTIFIER.test(this.schema)) {
      throw new StateConfigError(
        `PostgreSQL state schema "${this.schema}" is not a plain identifier (lowercase letters, digits, _)`,
      );
    }
    this.t = `"${this.schema}"`;
    this.now = options.now ?? (() => new Date());
    this.pool = new Pool({
      connectionString: options.connectionString,
      max: options.poolSize ?? DEFAULT_POOL_SIZE,
      connectionTimeoutMillis: options.connectionTimeoutMs ?? DEFAULT_CONNECTION_TIMEOUT_MS,
      application_name: options.applicationName ?? 'ampsync',
    });
    // an idle connection dropped by the server is discarded by the pool; the next call opens another
    this.pool.on('error', () => undefined);
  }

  async migrate(): Promise<void> {
    const t = this.t;
    await this.transaction('create its tables', async (c) => {
      // workers starting together must not race on CREATE ... IF NOT EXISTS
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`ampsync.migrate.${this.schema}`]);
      await c.query(`
        CREATE SCHEMA IF NOT EXISTS ${t};
        CREATE TABLE IF NOT EXISTS ${t}.schema_version (version integer NOT NULL);
        CREATE TABLE IF NOT EXISTS ${t}.runs (
          run_no integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          sync_id text NOT NULL,
          run_id text NOT NULL,
          workflow_id text,
          status text NOT NULL,
          mode text NOT NULL,
          chunk_size integer NOT NULL,
          started_at timestamptz NOT NULL,
          finished_at timestamptz,
          counts jsonb NOT NULL,
          chunks integer,
          error text,
          cursor jsonb,
          next_pos integer NOT NULL DEFAULT 0,
          extract_result jsonb,
          UNIQUE (sync_id, run_id)
        );
        CREATE INDEX IF NOT EXISTS runs_by_sync ON ${t}.runs (sync_id, run_no DESC);
        -- key order (version 4): the greatest key staged so far, and whether every page came after the pages before
        -- it in key order (then no key is on two pages, and finishExtract need not group the unchanged keys)
        ALTER TABLE ${t}.runs ADD COLUMN IF NOT EXISTS last_key text COLLATE "C";
        ALTER TABLE ${t}.runs ADD COLUMN IF NOT EXISTS key_ordered boolean NOT NULL DEFAULT false;
        -- one row per staged page; its unchanged keys (most of them) are kept as one JSON array
        CREATE TABLE IF NOT EXISTS ${t}.run_pages (
          run_no integer NOT NULL,
          page integer NOT NULL,
          result jsonb NOT NULL,
          unchanged text NOT NULL,
          PRIMARY KEY (run_no, page)
        );
        -- written once, read once: compressing it costs more CPU than the bytes it saves
        ALTER TABLE ${t}.run_pages ALTER COLUMN unchanged SET STORAGE EXTERNAL;
        -- the page's other keys (staged, repeated, rejected), appended; grouped by key only in finishExtract
        CREATE TABLE IF NOT EXISTS ${t}.run_seen (
          run_no integer NOT NULL,
          page integer NOT NULL,
          key text COLLATE "C" NOT NULL,
          seen integer NOT NULL,
          valid integer NOT NULL,
          was_synced boolean NOT NULL,
          staged boolean NOT NULL
        );
        CREATE INDEX IF NOT EXISTS run_seen_by_run ON ${t}.run_seen (run_no);
        -- rows to send, in staging order
        CREATE TABLE IF NOT EXISTS ${t}.run_rows (
          run_no integer NOT NULL,
          pos integer NOT NULL,
          key text COLLATE "C" NOT NULL,
          hash text NOT NULL,
          payload text NOT NULL,
          status text,
          reason text,
          PRIMARY KEY (run_no, key)
        ) WITH (fillfactor = 90);
        CREATE INDEX IF NOT EXISTS run_rows_by_pos ON ${t}.run_rows (run_no, pos);
        -- delivered rows by staging position: inserted as each batch is answered, instead of a new version of
        -- each (payload-carrying) run_rows row
        CREATE TABLE IF NOT EXISTS ${t}.run_delivered (
          run_no integer NOT NULL,
          pos integer NOT NULL,
          PRIMARY KEY (run_no, pos)
        );
        CREATE TABLE IF NOT EXISTS ${t}.synced (
          sync_id text NOT NULL,
          key text COLLATE "C" NOT NULL,
          hash text NOT NULL,
          PRIMARY KEY (sync_id, key)
        );
        CREATE TABLE IF NOT EXISTS ${t}.rejected (
          id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          sync_id text NOT NULL,
          run_id text NOT NULL,
          key text,
          reason text NOT NULL,
          stage text NOT NULL,
          at timestamptz NOT NULL
        );
        CREATE INDEX IF NOT EXISTS rejected_by_sync ON ${t}.rejected (sync_id, id DESC);
        CREATE INDEX IF NOT EXISTS rejected_by_run ON ${t}.rejected (sync_id, run_id, id);
        -- a chunk committed twice files each Amplitude rejection once
        CREATE UNIQUE INDEX IF NOT EXISTS rejected_once ON ${t}.rejected (sync_id, run_id, key) WHERE stage = 'amplitude';
        -- a sync's warehouse-side diff snapshot; reset forgets it with the synced keys
        CREATE TABLE IF NOT EXISTS ${t}.warehouse_snapshots (
          sync_id text PRIMARY KEY,
          snapshot jsonb NOT NULL
        );
      `);
      await c.query(`DELETE FROM ${t}.schema_version`);
      await c.query(`INSERT INTO ${t}.schema_version (version) VALUES ($1)`, [SCHEMA_VERSION]);
    });
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }

  async beginRun(input: BeginRunInput): Promise<RunRecord> {
    const { syncId, runId } = input;
    return this.transaction(`begin ${runLabel(syncId, runId)}`, async (c) => {
      checkChunkSize(input.chunkSize, syncId, runId);
      const inserted = await c.query(
        `INSERT INTO ${this.t}.runs (sync_id, run_id, workflow_id, status, mode, chunk_size, started_at, counts,
                                     key_ordered)
         VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, true) ON CONFLICT (sync_id, run_id) DO NOTHING RETURNING run_no`,
        [syncId, runId, input.workflowId ?? null, input.mode, input.chunkSize, this.now(), emptyCounts()],
      );
      if (inserted.rowCount === 1) {
        // one workflow runs a sync at a time: a run of this sync still open here was abandoned by its workflow
        const stale = await c.query<RunRow>(
          `SELECT * FROM ${this.t}.runs WHERE sync_id = $1 AND run_id <> $2 AND status = 'running'
           ORDER BY run_no FOR UPDATE`,
          [syncId, runId],
        );
        for (const run of stale.rows) await this.closeAbandoned(c, run, runId);
      }
      const run = await this.requireRun(c, syncId, runId);
      checkSameRun({ mode: run.mode, chunkSize: run.chunk_size, chunks: run.chunks }, input, syncId, runId);
      return toRecord(run);
    });
  }

  async getRun(syncId: string, runId: string): Promise<RunRecord | null> {
    return this.session(`read ${runLabel(syncId, runId)}`, async (c) => {
      const run = await this.findRun(c, syncId, runId);
      return run === undefined ? null : toRecord(run);
    });
  }

  async listRuns(syncId: string, limit: number): Promise<RunRecord[]> {
    return this.session(`list the runs of sync "${syncId}"`, async (c) => {
      const { rows } = await c.query<RunRow>(
        `SELECT * FROM ${this.t}.runs WHERE sync_id = $1 ORDER BY run_no DESC LIMIT $2`,
        [syncId, limit],
      );
      return rows.map(toRecord);
    });
  }

  async getExtractCursor(syncId: string, runId: string): Promise<ExtractCursor | null> {
    return this.session(`read the extract cursor of ${runLabel(syncId, runId)}`, async (c) => {
      const run = await this.requireRun(c, syncId, runId);
      return run.cursor === null ? null : { position: run.cursor, staged: run.next_pos };
    });
  }

  async stagePage(input: StagePageInput): Promise<StagePageResult> {
    const { syncId, runId, cursor } = input;
    const t = this.t;
    return this.transaction(
      `stage page ${cursor.page} of ${runLabel(syncId, runId)}`,
      async (c) => {
        // the lock makes a concurrent replay of this page wait, then find it staged
        const locked = await c.query<RunRow & { replayed: StagePageResult | null }>(
          `SELECT r.*, p.result AS replayed FROM ${t}.runs AS r
           LEFT JOIN ${t}.run_pages AS p ON p.run_no = r.run_no AND p.page = $3
           WHERE r.sync_id = $1 AND r.run_id = $2 FOR UPDATE OF r`,
          [syncId, runId, cursor.page],
        );
        const run = locked.rows[0];
        if (run === undefined) throw new RunNotFoundError(syncId, runId);
        if (run.replayed !== null) return run.replayed;
        checkStageable({ status: run.status, extracted: run.extract_result !== null }, syncId, runId);

        const entries = summarizePage(input.rows, input.rejected);
        await this.ensurePageTables(c);
        // lines sorted (by key, as each starts with it): probing the synced index in order keeps its pages hot
        await this.copyInto(
          c,
          `${PAGE_KEYS} (key, hash)`,
          entries,
          (e) => [e.key, isStageable(e) ? e.row.hash : null],
          {
            sorted: true,
          },
        );
        const order = pageOrder(
          entries,
          { ordered: run.key_ordered, lastKey: run.last_key },
          input.keyOrdered === true,
        );
        // keys to stage, and every key that cannot be staged (its seen row needs was_synced)
        const found = await c.query<[string, boolean]>(
          order.range !== undefined
            ? {
                // a page past every earlier key: its keys span a narrow slice of the synced keys, read in one
                // index range and hashed (one probe per key would cost ~4 µs each)
                text: `SELECT k.key, d.hash IS NOT NULL
                   FROM ${PAGE_KEYS} AS k
                   LEFT JOIN (SELECT key, hash FROM ${t}.synced WHERE sync_id = $1 AND key >= $3 AND key <= $4) AS d
                     ON d.key = k.key
                   WHERE k.hash IS NULL OR d.hash IS NULL OR ($2 AND d.hash <> k.hash)`,
                values: [syncId, run.mode === 'upsert', order.range.first, order.range.last],
                rowMode: 'array',
              }
            : {
                // keys from anywhere in the sync: LATERAL ... LIMIT 1 keeps one index probe per key whatever the
                // estimates (a hash join would read the whole sync per page)
                text: `SELECT k.key, d.hash IS NOT NULL
                   FROM ${PAGE_KEYS} AS k
                   LEFT JOIN LATERAL (SELECT hash FROM ${t}.synced WHERE sync_id = $1 AND key = k.key LIMIT 1) AS d
                     ON true
                   WHERE k.hash IS NULL OR d.hash IS NULL OR ($2 AND d.hash <> k.hash)`,
                values: [syncId, run.mode === 'upsert'],
                rowMode: 'array',
              },
        );
        const delivered = new Map(found.rows);
        const plan = positionPage(entries, delivered, run.next_pos, input.build);
        const others = entries.filter((e) => !isStageable(e) || delivered.has(e.key));
        if (others.length > 0) {
          await this.copyInto(c, `${t}.run_seen (run_no, page, key, seen, valid, was_synced, staged)`, others, (e) => [
            run.run_no,
            cursor.page,
            e.key,
            e.seen,
            e.valid,
            delivered.get(e.key) === true,
            isStageable(e),
          ]);
        }
        if (plan.rows.length > 0) {
          await this.copyInto(c, `${PAGE_ROWS} (pos, key, hash, payload)`, plan.rows, (r: PositionedRow) => [
            r.pos,
            r.key,
            r.hash,
            r.payload,
          ]);
          // a key staged on an earlier page too is a duplicate: finishExtract removes it
          await c.query(
            `INSERT INTO ${t}.run_rows (run_no, pos, key, hash, payload)
           SELECT $1, pos, key, hash, payload FROM ${PAGE_ROWS} ON CONFLICT (run_no, key) DO NOTHING`,
            [run.run_no],
          );
        }
        const rejected = [...input.rejected, ...plan.rejected];
        if (rejected.length > 0) {
          await c.query(
            `INSERT INTO ${t}.rejected (sync_id, run_id, key, reason, stage, at)
           SELECT $1, $2, r.key, r.reason, r.stage, $3
           FROM unnest($4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS r(key, reason, stage, n) ORDER BY r.n`,
            [
              syncId,
              runId,
              this.now(),
              rejected.map((r) => r.key),
              rejected.map((r) => r.reason),
              rejected.map((r) => r.stage),
            ],
          );
        }
        const counts = addPage(parseCounts(run.counts), pageTally(input, plan));
        // the cursor only moves forward, even if an older attempt stages a page late
        const nextCursor = run.cursor !== null && run.cursor.page > cursor.page ? run.cursor : cursor;
        await c.query(
          `WITH progress AS (
             UPDATE ${t}.runs SET cursor = $1, next_pos = $2, counts = $3, last_key = $8, key_ordered = $9
             WHERE run_no = $4
           )
           INSERT INTO ${t}.run_pages (run_no, page, result, unchanged) VALUES ($4, $5, $6, $7)`,
          [
            nextCursor,
            plan.nextPos,
            counts,
            run.run_no,
            cursor.page,
            plan.result,
            JSON.stringify(plan.unchanged),
            order.lastKey,
            order.ordered,
          ],
        );
        return plan.result;
      },
      { relaxedCommit: true },
    );
  }

  async finishExtract(syncId: string, runId: string): Promise<FinishExtractResult> {
    const t = this.t;
    return this.transaction(`finish extraction of ${runLabel(syncId, runId)}`, async (c) => {
      const run = await this.requireRun(c, syncId, runId, 'FOR UPDATE');
      if (run.extract_result !== null) return run.extract_result;
      checkStageable({ status: run.status, extracted: false }, syncId, runId);

      await c.query(`SET LOCAL work_mem = '${GROUP_WORK_MEM}'`);
      // every key the run saw, once per page it was on. In a run whose pages came in key order no key is on two
      // pages: the unchanged keys (each delivered, seen once) are counted, not grouped, and only run_seen is.
      const ordered = run.key_ordered;
      const runKeys = ordered
        ? `SELECT key, seen, valid, was_synced, staged FROM ${t}.run_seen WHERE run_no = $1`
        : `
        SELECT key, seen, valid, was_synced, staged FROM ${t}.run_seen WHERE run_no = $1
        UNION ALL
        SELECT u.key COLLATE "C", 1, 1, true, false
        FROM ${t}.run_pages AS p, json_array_elements_text(p.unchanged::json) AS u(key) WHERE p.run_no = $1`;
      const unchangedKeys = ordered ? parseCounts(run.counts).unchanged : 0;
      const aggregates = await c.query<SeenAggregates>(
        `SELECT
           count(*) FILTER (WHERE n = 1 AND st AND NOT ws)::int AS "new",
           count(*) FILTER (WHERE n = 1 AND st AND ws)::int AS "changed",
           count(*) FILTER (WHERE n = 1 AND v = 1 AND NOT st)::int + $2 AS "unchanged",
           count(*) FILTER (WHERE ws)::int + $2 AS "seenSynced",
           coalesce(sum(v) FILTER (WHERE n > 1), 0)::int AS "duplicateRows",
           count(*) FILTER (WHERE n > 1)::int AS "duplicateKeys"
         FROM (SELECT sum(seen) AS n, sum(valid) AS v, bool_or(was_synced) AS ws, bool_or(staged) AS st
               FROM (${runKeys}) AS k GROUP BY key) AS g`,
        [run.run_no, unchangedKeys],
      );
      const seen = aggregates.rows[0] as SeenAggregates;
      if (seen.duplicateKeys > 0) {
        await c.query(
          `WITH duplicate AS (
             SELECT key, sum(seen) AS n FROM (${runKeys}) AS k GROUP BY key HAVING sum(seen) > 1
           ), unstaged AS (
             DELETE FROM ${t}.run_rows AS r USING duplicate AS d WHERE r.run_no = $1 AND r.key = d.key
           )
           INSERT INTO ${t}.rejected (sync_id, run_id, key, reason, stage, at)
           SELECT $2, $3, key, 'duplicate key ' || to_json(key)::text || ' appears ' || n || ' times in the model',
                  'diff', $4
           FROM duplicate ORDER BY key`,
          [run.run_no, syncId, runId, this.now()],
        );
        // dense positions 0..n-1 in staging order, once duplicates left gaps
        await c.query(
          `UPDATE ${t}.run_rows AS r SET pos = n.rn
           FROM (SELECT key, (row_number() OVER (ORDER BY pos) - 1)::int AS rn FROM ${t}.run_rows
                 WHERE run_no = $1) AS n
           WHERE r.run_no = $1 AND r.key = n.key AND r.pos <> n.rn`,
          [run.run_no],
        );
      }
      const syncedKeys = await this.countSyncedWith(c, syncId);
      const samples = await c.query<RowRejection>(
        `SELECT key, reason, stage FROM ${t}.rejected WHERE sync_id = $1 AND run_id = $2 ORDER BY id
         LIMIT ${MAX_SAMPLE_REJECTIONS}`,
        [syncId, runId],
      );
      // large payloads make smaller chunks: the send stage holds a few chunks' rows at once
      const sampled = await c.query<{ bytes: string | null }>(
        `SELECT avg(octet_length(payload)) AS bytes FROM (
           SELECT payload FROM ${t}.run_rows WHERE run_no = $1 ORDER BY pos LIMIT ${CHUNK_SAMPLE_ROWS}) AS p`,
        [run.run_no],
      );
      const bytes = sampled.rows[0]?.bytes;
      const chunkSize = chunkRowsFor(run.chunk_size, bytes === null || bytes === undefined ? null : Number(bytes));
      const result = extractResult(parseCounts(run.counts), seen, syncedKeys, chunkSize, samples.rows);
      const counts: RunCounts = { ...parseCounts(run.counts), ...result.counts };
      await c.query(
        `UPDATE ${t}.runs SET extract_result = $1, chunks = $2, counts = $3, chunk_size = $4 WHERE run_no = $5`,
        [result, result.chunks, counts, chunkSize, run.run_no],
      );
      return result;
    });
  }

  async readChunk(syncId: string, runId: string, chunk: number): Promise<StagedRow[]> {
    return this.session(`read chunk ${chunk} of ${runLabel(syncId, runId)}`, async (c) => {
      const run = await this.chunkableRun(c, syncId, runId, chunk);
      const from = chunk * run.chunk_size;
      const { rows } = await c.query<StagedRow>(
        `SELECT key, payload, pos FROM ${this.t}.run_rows AS r
         WHERE run_no = $1 AND pos >= $2 AND pos < $3 AND status IS NULL
           AND NOT EXISTS (
             SELECT 1 FROM ${this.t}.run_delivered AS d WHERE d.run_no = r.run_no AND d.pos = r.pos OFFSET 0
           )
         ORDER BY pos`,
        [run.run_no, from, from + run.chunk_size],
      );
      return rows;
    });
  }

  async recordOutcomes(syncId: string, runId: string, outcomes: RowOutcome[]): Promise<void> {
    if (outcomes.length === 0) return;
    await this.transaction(`record ${outcomes.length} outcomes of ${runLabel(syncId, runId)}`, async (c) => {
      const run = await this.chunkableRun(c, syncId, runId);
      // delivered with a position in the run (the usual answer): one insert; the rest by key, the last one given
      const deliveredAt: number[] = [];
      const byKey = new Map<string, RowOutcome>();
      for (const o of outcomes) {
        const pos = deliveredPosition(o, run.next_pos);
        if (pos !== undefined) deliveredAt.push(pos);
        else byKey.set(o.key, o);
      }
      if (deliveredAt.length > 0) {
        await c.query(
          `INSERT INTO ${this.t}.run_delivered (run_no, pos) SELECT $1, unnest($2::integer[]) ON CONFLICT DO NOTHING`,
          [run.run_no, deliveredAt],
        );
      }
      const list = [...byKey.values()];
      if (list.length === 0) return;
      const updated = await c.query<[string]>({
        text: `UPDATE ${this.t}.run_rows AS r SET status = u.status, reason = u.reason
               FROM unnest($2::text[], $3::text[], $4::text[]) AS u(key, status, reason)
               WHERE r.run_no = $1 AND r.key = u.key
               RETURNING r.key`,
        values: [
          run.run_no,
          list.map((o) => o.key),
          list.map((o) => o.status),
          list.map((o) => (o.status === 'delivered' ? null : o.reason)),
        ],
        rowMode: 'array',
      });
      if (updated.rows.length < list.length) {
        const matched = new Set(updated.rows.map((r) => r[0]));
        throw unknownKeys(
          list.filter((o) => !matched.has(o.key)).map((o) => o.key),
          syncId,
          runId,
        );
      }
    });
  }

  async commitChunk(syncId: string, runId: string, chunk: number): Promise<CommitChunkResult> {
    return this.transaction(`commit chunk ${chunk} of ${runLabel(syncId, runId)}`, async (c) => {
      const run = await this.chunkableRun(c, syncId, runId, chunk);
      const from = chunk * run.chunk_size;
      return this.commitRange(c, run, from, from + run.chunk_size);
    });
  }

  /** Commits the staged rows at positions [from, to) of a run; what they were delivered or rejected as. */
  private async commitRange(c: PoolClient, run: RunRow, from: number, to: number): Promise<CommitChunkResult> {
    const t = this.t;
    await c.query(`SET LOCAL ${DELIVERED_LOOKUP_SETTING}`);
    // idempotent: a chunk committed again (or by two workers at once) rewrites nothing and files nothing twice
    await c.query(
      `INSERT INTO ${t}.synced (sync_id, key, hash)
       SELECT $4, key, hash FROM (${deliveredRowsSql(t)}) AS delivered ORDER BY key
       ON CONFLICT (sync_id, key) DO UPDATE SET hash = excluded.hash WHERE synced.hash <> excluded.hash`,
      [run.run_no, from, to, run.sync_id],
    );
    await c.query(
      `INSERT INTO ${t}.rejected (sync_id, run_id, key, reason, stage, at)
       SELECT $4, $5, key, coalesce(reason, 'rejected by Amplitude'), 'amplitude', $6 FROM ${t}.run_rows
       WHERE run_no = $1 AND pos >= $2 AND pos < $3 AND status = 'rejected' ORDER BY pos
       ON CONFLICT (sync_id, run_id, key) WHERE stage = 'amplitude' DO NOTHING`,
      [run.run_no, from, to, run.sync_id, run.run_id, this.now()],
    );
    // a row delivered by position keeps a NULL status: it counts as delivered, not pending
    const counts = await c.query<CommitChunkResult>(
      `WITH by_position AS (
         SELECT count(*)::int AS n FROM ${t}.run_delivered WHERE run_no = $1 AND pos >= $2 AND pos < $3)
       SELECT
         count(*) FILTER (WHERE status = 'delivered')::int + (SELECT n FROM by_position) AS delivered,
         count(*) FILTER (WHERE status = 'rejected')::int AS rejected,
         count(*) FILTER (WHERE status = 'deferred')::int AS deferred,
         count(*) FILTER (WHERE status IS NULL)::int - (SELECT n FROM by_position) AS pending
       FROM ${t}.run_rows WHERE run_no = $1 AND pos >= $2 AND pos < $3`,
      [run.run_no, from, to],
    );
    return counts.rows[0] as CommitChunkResult;
  }

  /**
   * Closes a run its workflow left open (terminated, timed out, reset): rows it delivered become synced, rows
   * Amplitude rejected are filed, the run is marked failed and its staging rows are dropped.
   */
  private async closeAbandoned(c: PoolClient, run: RunRow, byRunId: string): Promise<void> {
    const outcomes = run.chunks === null ? undefined : await this.commitRange(c, run, 0, ALL_POSITIONS);
    const counts = abandonedCounts(parseCounts(run.counts), outcomes);
    await this.closeRun(c, run.run_no, 'failed', counts, abandonedReason(byRunId));
  }

  /** Records how a run ended and drops what it staged. */
  private async closeRun(
    c: PoolClient,
    runNo: number,
    status: Exclude<RunStatus, 'running'>,
    counts: RunCounts,
    error: string | null,
  ): Promise<void> {
    await c.query(
      `UPDATE ${this.t}.runs SET status = $1, counts = $2, error = $3, finished_at = $4 WHERE run_no = $5`,
      [status, counts, error, this.now(), runNo],
    );
    await this.dropStaging(c, runNo);
  }

  async finishRun(
    syncId: string,
    runId: string,
    status: Exclude<RunStatus, 'running'>,
    counts: RunCounts,
    error?: string,
  ): Promise<RunRecord> {
    return this.transaction(`finish ${runLabel(syncId, runId)}`, async (c) => {
      const run = await this.requireRun(c, syncId, runId, 'FOR UPDATE');
      if (run.status !== 'running') return toRecord(run);
      await this.closeRun(c, run.run_no, status, counts, error ?? null);
      return toRecord(await this.requireRun(c, syncId, runId));
    });
  }

  async discardRun(syncId: string, runId: string): Promise<void> {
    const t = this.t;
    await this.transaction(`discard ${runLabel(syncId, runId)}`, async (c) => {
      const run = await this.findRun(c, syncId, runId, 'FOR UPDATE');
      if (run === undefined) return;
      await this.dropStaging(c, run.run_no);
      await c.query(`DELETE FROM ${t}.rejected WHERE sync_id = $1 AND run_id = $2`, [syncId, runId]);
      await c.query(`DELETE FROM ${t}.runs WHERE run_no = $1`, [run.run_no]);
    });
  }

  async listRejected(syncId: string, limit: number): Promise<RejectedRow[]> {
    return this.session(`list the rejected rows of sync "${syncId}"`, async (c) => {
      const { rows } = await c.query<Omit<RejectedRow, 'at'> & { at: Date }>(
        `SELECT sync_id AS "syncId", run_id AS "runId", key, reason, stage, at
         FROM ${this.t}.rejected WHERE sync_id = $1 ORDER BY id DESC LIMIT $2`,
        [syncId, limit],
      );
      return rows.map((r) => ({ ...r, at: r.at.toISOString() }));
    });
  }

  async countSynced(syncId: string): Promise<number> {
    return this.session(`count the synced keys of sync "${syncId}"`, (c) => this.countSyncedWith(c, syncId));
  }

  async resetSync(syncId: string): Promise<void> {
    await this.transaction(`reset sync "${syncId}"`, async (c) => {
      await c.query(`DELETE FROM ${this.t}.synced WHERE sync_id = $1`, [syncId]);
      await c.query(`DELETE FROM ${this.t}.warehouse_snapshots WHERE sync_id = $1`, [syncId]);
    });
  }

  async getWarehouseSnapshot(syncId: string): Promise<WarehouseSnapshot | null> {
    return this.session(`read the warehouse snapshot of sync "${syncId}"`, async (c) => {
      const { rows } = await c.query<{ snapshot: WarehouseSnapshot }>(
        `SELECT snapshot FROM ${this.t}.warehouse_snapshots WHERE sync_id = $1`,
        [syncId],
      );
      return rows[0]?.snapshot ?? null;
    });
  }

  async setWarehouseSnapshot(syncId: string, snapshot: WarehouseSnapshot | null): Promise<void> {
    await this.session(`record the warehouse snapshot of sync "${syncId}"`, (c) =>
      snapshot === null
        ? c.query(`DELETE FROM ${this.t}.warehouse_snapshots WHERE sync_id = $1`, [syncId])
        : c.query(
            `INSERT INTO ${this.t}.warehouse_snapshots (sync_id, snapshot) VALUES ($1, $2)
             ON CONFLICT (sync_id) DO UPDATE SET snapshot = excluded.snapshot`,
            [syncId, snapshot],
          ),
    );
  }

  private async countSyncedWith(c: PoolClient, syncId: string): Promise<number> {
    const { rows } = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${this.t}.synced WHERE sync_id = $1`,
      [syncId],
    );
    return rows[0]?.n ?? 0;
  }

  private async findRun(
    c: PoolClient,
    syncId: string,
    runId: string,
    lock: '' | 'FOR UPDATE' = '',
  ): Promise<RunRow | undefined> {
    const { rows } = await c.query<RunRow>(`SELECT * FROM ${this.t}.runs WHERE sync_id = $1 AND run_id = $2 ${lock}`, [
      syncId,
      runId,
    ]);
    return rows[0];
  }

  private async requireRun(
    c: PoolClient,
    syncId: string,
    runId: string,
    lock: '' | 'FOR UPDATE' = '',
  ): Promise<RunRow> {
    const run = await this.findRun(c, syncId, runId, lock);
    if (run === undefined) throw new RunNotFoundError(syncId, runId);
    return run;
  }

  private async chunkableRun(c: PoolClient, syncId: string, runId: string, chunk?: number): Promise<RunRow> {
    const run = await this.requireRun(c, syncId, runId);
    checkChunkable(
      { status: run.status, extracted: run.extract_result !== null, chunks: run.chunks },
      syncId,
      runId,
      chunk,
    );
    return run;
  }

  /** Drops what a run staged, in the transaction that closes it. */
  private async dropStaging(c: PoolClient, runNo: number): Promise<void> {
    const tables = STAGING_TABLES.map((table) => `${this.t}.${table}`);
    if (await this.truncateStagingOfOnlyRun(c, runNo, tables)) return;
    for (const table of tables) await c.query(`DELETE FROM ${table} WHERE run_no = $1`, [runNo]);
  }

  /**
   * Empties the staging tables whole (TRUNCATE) when they hold no other run's rows, which is what a store serving
   * one sync at a time always finds: a 1M-row run's staging in ~0.1 s instead of ~1 s of DELETE, and no dead rows
   * left for vacuum. Their lock is taken without waiting, so a table another transaction is using (another run's
   * staging or reads), or a role that may not truncate, leaves it to DELETE; false then, and nothing changed.
   */
  private async truncateStagingOfOnlyRun(c: PoolClient, runNo: number, tables: string[]): Promise<boolean> {
    await c.query('SAVEPOINT ampsync_truncate_staging');
    try {
      // with the lock held, every other write to these tables has committed: the check below sees all of them
      await c.query(`LOCK TABLE ${tables.join(', ')} IN ACCESS EXCLUSIVE MODE NOWAIT`);
      const only = tables
        .map((t) => `coalesce((SELECT min(run_no) FROM ${t}) = $1 AND (SELECT max(run_no) FROM ${t}) = $1, true)`)
        .join(' AND ');
      const { rows } = await c.query<{ only: boolean }>(`SELECT ${only} AS only`, [runNo]);
      if (rows[0]?.only === true) {
        await c.query(`TRUNCATE ${tables.join(', ')}`);
        await c.query('RELEASE SAVEPOINT ampsync_truncate_staging');
        return true;
      }
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== LOCK_NOT_AVAILABLE && code !== INSUFFICIENT_PRIVILEGE) throw err;
    }
    // the lock (if taken) is released with the savepoint's work
    await c.query('ROLLBACK TO SAVEPOINT ampsync_truncate_staging');
    await c.query('RELEASE SAVEPOINT ampsync_truncate_staging');
    return false;
  }

  private async ensurePageTables(c: PoolClient): Promise<void> {
    if (this.withPageTables.has(c)) return;
    await c.query(
      `CREATE TEMP TABLE IF NOT EXISTS ampsync_page_keys (key text COLLATE "C", hash text) ON COMMIT DELETE ROWS;
       CREATE TEMP TABLE IF NOT EXISTS ampsync_page_rows (
         pos integer, key text COLLATE "C", hash text, payload text
       ) ON COMMIT DELETE ROWS`,
    );
    this.withPageTables.add(c);
  }

  /** Bulk-loads `items` into `target` (a table and its column list) with COPY. */
  private async copyInto<T>(
    c: PoolClient,
    target: string,
    items: readonly T[],
    columns: (item: T) => (string | number | boolean | null)[],
    options: { sorted?: boolean } = {},
  ): Promise<void> {
    const text = copyText(items, columns, options.sorted === true);
    await pipeline(Readable.from([text]), c.query(copyFrom(`COPY ${target} FROM STDIN`)));
  }

  /** Runs `body` on one pooled connection, outside a transaction (single statements, reads). */
  private async session<T>(operation: string, body: (c: PoolClient) => Promise<T>): Promise<T> {
    let client: PoolClient | undefined;
    try {
      client = await this.pool.connect();
      return await body(client);
    } catch (err) {
      throw classifyDatabaseError(err, 'PostgreSQL', operation);
    } finally {
      client?.release();
    }
  }

  /**
   * Runs `body` in one transaction on one pooled connection; a connection that failed is not reused.
   * `relaxedCommit` skips the WAL flush wait: a server crash may then lose the last commits, which is safe only
   * where the caller's progress marker is in the same transaction (a staged page and its cursor).
   */
  private async transaction<T>(
    operation: string,
    body: (c: PoolClient) => Promise<T>,
    options: { relaxedCommit?: boolean } = {},
  ): Promise<T> {
    let client: PoolClient | undefined;
    let broken: Error | undefined;
    try {
      client = await this.pool.connect();
      await client.query(options.relaxedCommit === true ? 'BEGIN; SET LOCAL synchronous_commit = off' : 'BEGIN');
      const result = await body(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      if (client !== undefined) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        }
      }
      throw classifyDatabaseError(err, 'PostgreSQL', operation);
    } finally {
      client?.release(broken);
    }
  }
}

/**
 * A warehouse whose models are generated from their own text, so a worker in another process computes the same
 * rows from the sync config alone: `bench:users?rows=1000000&revision=1`, `bench:events?rows=1010000`.
 * Users are the BigQuery emulator's synthetic users (src/dev/demo-data.ts, `syntheticUser(n, revision)`: revision 1
 * changes 1% of the rows); events are page views, and a later run of a grown table finds only the new rows new.
 *
 * With a warehouse folder it is also a WarehouseDiff standing in for BigQuery's (src/sync/warehouse-diff.ts): a
 * "table" is a file of 8-byte row fingerprints by row number. openChanges generates every row, fingerprints its
 * column values (as BigQuery's FARM_FINGERPRINT(TO_JSON_STRING(row)) does) and compares it with the snapshot's; the
 * rows that differ are listed in a file the pages are read from. That work runs in a process of its own
 * (warehouse-process.ts), as BigQuery's runs elsewhere, but on the worker's machine: the benchmark charges the
 * machine's cores and the run's wall time with it, not the worker's memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ModelConfig } from '../../src/config/schema';
import { syntheticUser } from '../../src/dev/demo-data';
import { PAGE_SAMPLE_ROWS, pageRowsFor } from '../../src/sources/bigquery/source';
import type {
  DryRunResult,
  OpenChangesRequest,
  OpenedModel,
  PromoteSnapshotRequest,
  ReadPageOptions,
  Source,
  SourceField,
  SourcePage,
  SourcePosition,
  SourceRow,
  WarehouseDiff,
} from '../../src/sync/types';

export type BenchModelKind = 'users' | 'events';

/** What a generated model holds. */
export interface BenchModel {
  kind: BenchModelKind;
  rows: number;
  /** Users: rows with n % 100 < revision differ from revision 0. */
  revision: number;
  /** Users: this many more text columns (`p0`, `p1`, …) of ~65 characters each: a wide model (default none). */
  wide?: number;
}

/** The model text is not `bench:KIND?...`. */
export class BenchModelError extends Error {
  override readonly name = 'BenchModelError';
}

const field = (name: string, type: string): SourceField => ({ name, type, mode: 'NULLABLE' });

/** Column schemas, as BigQuery would report them. */
export const BENCH_SCHEMAS: Readonly<Record<BenchModelKind, SourceField[]>> = {
  users: [
    field('user_id', 'STRING'),
    field('email_domain', 'STRING'),
    field('plan', 'STRING'),
    field('lifetime_value', 'NUMERIC'),
    field('trial_ends_at', 'TIMESTAMP'),
    field('activated_on', 'DATE'),
    field('sessions_30d', 'INT64'),
    field('account_id', 'STRING'),
  ],
  events: [
    field('event_id', 'STRING'),
    field('user_id', 'STRING'),
    field('occurred_at', 'INT64'),
    field('path', 'STRING'),
    field('referrer', 'STRING'),
    field('plan', 'STRING'),
    field('duration_ms', 'INT64'),
  ],
};

/** The model config of a generated model. */
export function benchModel(model: BenchModel): ModelConfig {
  const wide = model.wide !== undefined && model.wide > 0 ? `&wide=${model.wide}` : '';
  return { sql: `bench:${model.kind}?rows=${model.rows}&revision=${model.revision}${wide}` };
}

/** The names of a wide model's extra columns. */
export function wideColumns(wide: number | undefined): string[] {
  return Array.from({ length: wide ?? 0 }, (_, k) => `p${k}`);
}

/** The column schema of a generated model. */
export function benchSchema(model: BenchModel): SourceField[] {
  return [...BENCH_SCHEMAS[model.kind], ...wideColumns(model.wide).map((name) => field(name, 'STRING'))];
}

/** Parses `bench:KIND?rows=N&revision=R[&wide=W]`. */
export function parseBenchModel(text: string): BenchModel {
  const match = /^bench:(users|events)\?(.*)$/.exec(text);
  if (match === null) throw new BenchModelError(`not a generated bench model: "${text}"`);
  const params = new URLSearchParams(match[2]);
  const rows = Number(params.get('rows'));
  const revision = Number(params.get('revision') ?? 0);
  if (!Number.isSafeInteger(rows) || rows < 0) throw new BenchModelError(`bench model "${text}": bad rows`);
  const wide = Number(params.get('wide') ?? 0);
  if (!Number.isSafeInteger(wide) || wide < 0) throw new BenchModelError(`bench model "${text}": bad wide`);
  return { kind: match[1] as BenchModelKind, rows, revision, ...(wide > 0 ? { wide } : {}) };
}

const EVENT_EPOCH_MS = Date.UTC(2026, 0, 1);
const PATHS = ['/', '/pricing', '/docs/getting-started', '/blog/reverse-etl', '/signup'];
const PLANS = ['free', 'starter', 'pro', 'enterprise'];
/** Distinct users the page views belong to. */
const EVENT_USERS = 100_000;

/** Page view i (0-based): about the width of a real product event. */
export function pageView(i: number): SourceRow {
  return {
    event_id: `pv_${String(i).padStart(9, '0')}`,
    user_id: `user_${String((i % EVENT_USERS) + 1).padStart(7, '0')}`,
    occurred_at: EVENT_EPOCH_MS + i * 37,
    path: PATHS[i % PATHS.length]!,
    referrer: i % 3 === 0 ? 'https://www.google.com/' : null,
    plan: PLANS[i % PLANS.length]!,
    duration_ms: (i * 7919) % 60_000,
  };
}

/** The column each model's rows are generated in ascending order of (its ids are zero-padded). */
const ORDERED_BY: Readonly<Record<BenchModelKind, string>> = { users: 'user_id', events: 'event_id' };

/** Row i (0-based) of a generated model. */
export function benchRow(model: BenchModel, i: number): SourceRow {
  if (model.kind !== 'users') return pageView(i);
  const row: SourceRow = syntheticUser(i + 1, model.revision);
  const wide = model.wide ?? 0;
  for (let k = 0; k < wide; k++) row[`p${k}`] = `${row.user_id as string}_${k}_${WIDE_FILL}`;
  return row;
}

/** What fills a wide model's extra columns (after the row's key and the column's number). */
const WIDE_FILL = 'x'.repeat(50);

/**
 * The rows per page BigQuerySource would choose for the model (src/sources/bigquery/source.ts): from the JSON its
 * API would send for the first rows (`{"f":[{"v":"…"}]}`, every value as text), when they are wide.
 */
function pageRowsOf(model: BenchModel): { pageRows?: number } {
  const sample = Array.from({ length: Math.min(model.rows, PAGE_SAMPLE_ROWS) }, (_, i) => ({
    f: Object.values(benchRow(model, i)).map((v) => ({
      v: v === null ? null : typeof v === 'object' ? JSON.stringify(v) : String(v),
    })),
  }));
  if (sample.length === 0) return {};
  const pageRows = pageRowsFor(Buffer.byteLength(JSON.stringify(sample)) / sample.length);
  return pageRows === undefined ? {} : { pageRows };
}

const FP_BYTES = 8;
/** File in the warehouse folder holding the seconds the stand-in warehouse worked so far. */
export const WORK_FILE = 'work-seconds';
/** The job id of a changes read: `JOB|changes|RUN_TABLE|MODEL`. */
const CHANGES_MARK = '|changes|';

const f64 = new Float64Array(1);
const f64Words = new Uint32Array(f64.buffer);

/**
 * A row's warehouse fingerprint, written as 8 bytes at `offset`: a 64-bit hash (two 32-bit multiply-xorshift
 * lanes, as cyrb53) of every column's value in order — what FARM_FINGERPRINT(TO_JSON_STRING(row)) is to
 * BigQuery, computed without building the text. Never all zero (zero marks "no row").
 */
function rowFingerprint(row: SourceRow, out: Buffer, offset: number): void {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  const mix = (word: number): void => {
    h1 = Math.imul(h1 ^ word, 2654435761);
    h2 = Math.imul(h2 ^ word, 1597334677);
  };
  for (const value of Object.values(row)) {
    if (value === null) mix(0x9e3779b9);
    else if (typeof value === 'string') {
      mix(value.length);
      for (let i = 0; i < value.length; i++) mix(value.charCodeAt(i));
    } else if (typeof value === 'number') {
      f64[0] = value;
      mix(f64Words[0] as number);
      mix(f64Words[1] as number);
    } else if (typeof value === 'boolean') mix(value ? 0x7f4a7c15 : 0x2545f491);
    else {
      const text = JSON.stringify(value);
      for (let i = 0; i < text.length; i++) mix(text.charCodeAt(i));
    }
    mix(0x1f); // column separator
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  out.writeUInt32LE(h1 >>> 0, offset);
  out.writeUInt32LE(h2 >>> 0 || 1, offset + 4);
}

/** A table file's fingerprints as 64-bit words (the file is copied when its bytes are not 8-aligned). */
function words(file: Buffer): BigUint64Array {
  const aligned = file.byteOffset % 8 === 0 ? file : new Uint8Array(file);
  return new BigUint64Array(aligned.buffer, aligned.byteOffset, aligned.length / FP_BYTES);
}

/** What the stand-in warehouse's process is asked: copy a model with fingerprints and diff it with a snapshot. */
export interface WarehouseJob {
  model: string;
  /** The run table to write (8-byte fingerprints by row number). */
  runFile: string;
  /** The snapshot to diff against; null or missing: every row is changed. */
  snapshotFile: string | null;
}

export interface WarehouseJobResult {
  rows: number;
  changed: number;
}

/**
 * A warehouse diff as the stand-in warehouse runs it (in warehouse-process.ts): generates and fingerprints every row
 * of the model into the run table, and lists the row numbers that differ from the snapshot in `<run table>.changes`.
 */
export function runWarehouseJob(job: WarehouseJob): WarehouseJobResult {
  const m = parseBenchModel(job.model);
  const fps = Buffer.alloc(m.rows * FP_BYTES);
  for (let i = 0; i < m.rows; i++) rowFingerprint(benchRow(m, i), fps, i * FP_BYTES);
  fs.writeFileSync(job.runFile, fps);
  const snapshot =
    job.snapshotFile !== null && fs.existsSync(job.snapshotFile) ? fs.readFileSync(job.snapshotFile) : undefined;
  const mine = words(fps);
  const theirs = snapshot === undefined ? new BigUint64Array(0) : words(snapshot);
  const changed = new Int32Array(m.rows);
  let n = 0;
  for (let i = 0; i < m.rows; i++) if (i >= theirs.length || mine[i] !== theirs[i]) changed[n++] = i;
  fs.writeFileSync(`${job.runFile}.changes`, Buffer.from(changed.buffer, 0, n * 4));
  return { rows: m.rows, changed: n };
}

/** The Source over generated models; a position carries its model, so any process can read any page. */
export class GeneratedSource implements Source, WarehouseDiff {
  readonly warehouseDiff?: WarehouseDiff;
  private changes: { runTable: string; indexes: Int32Array } | undefined;

  /** `warehouseDir`: where the stand-in warehouse keeps its run and snapshot tables (enables warehouseDiff). */
  constructor(private readonly warehouseDir?: string) {
    if (warehouseDir !== undefined) {
      fs.mkdirSync(warehouseDir, { recursive: true });
      this.warehouseDiff = this;
    }
  }

  async openChanges(model: ModelConfig, request: OpenChangesRequest): Promise<OpenedModel> {
    const started = performance.now();
    try {
      return await this.diffInWarehouse(model, request);
    } finally {
      this.recordWarehouseWork(performance.now() - started);
    }
  }

  /** Adds to the seconds the stand-in warehouse worked (`<dir>/work-seconds`), which the benchmark reports. */
  private recordWarehouseWork(ms: number): void {
    const file = path.join(this.warehouseDir as string, WORK_FILE);
    const before = fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8')) : 0;
    fs.writeFileSync(file, String(before + ms / 1000));
  }

  private async diffInWarehouse(model: ModelConfig, request: OpenChangesRequest): Promise<OpenedModel> {
    const text = modelText(model);
    const m = parseBenchModel(text);
    const snapshotFile = request.snapshot === null ? null : this.tablePath(request.snapshot);
    const job: WarehouseJob = { model: text, runFile: this.tablePath(request.runTable), snapshotFile };
    // the script beside this module, run as this process runs (compiled JavaScript, or TypeScript through tsx)
    const script = path.join(__dirname, `warehouse-process${path.extname(__filename)}`);
    const { stdout } = await promisify(execFile)(process.execPath, [...process.execArgv, script, JSON.stringify(job)]);
    const { changed } = JSON.parse(stdout) as WarehouseJobResult;
    return {
      schema: benchSchema(m),
      totalRows: changed,
      position: {
        jobId: `${request.jobId}${CHANGES_MARK}${request.runTable}|${text}`,
        pageToken: null,
        page: 0,
        rowsRead: 0,
        unchangedElsewhere: m.rows - changed,
        // the changed rows' numbers ascend, and so do their keys: BigQuery's changes query orders them by key
        ...(request.key === ORDERED_BY[m.kind] ? { keyOrdered: true } : {}),
        ...pageRowsOf(m),
      },
    };
  }

  promoteSnapshot(request: PromoteSnapshotRequest): Promise<{ rows: number }> {
    const started = performance.now();
    const fps = fs.readFileSync(this.tablePath(request.runTable));
    if (request.exclude.length > 0) {
      // keys are row numbers' text in the generated models' own spellings: find the excluded rows by their key
      const excluded = new Set(request.exclude);
      const kind = request.key === 'user_id' ? 'users' : 'events';
      for (let i = 0; i * FP_BYTES < fps.length; i++) {
        const row = benchRow({ kind, rows: 0, revision: 0 }, i);
        const key = row[request.key];
        if (typeof key === 'string' && excluded.has(key)) fps.fill(0, i * FP_BYTES, (i + 1) * FP_BYTES);
      }
    }
    fs.writeFileSync(this.tablePath(request.snapshot), fps);
    let rows = 0;
    for (const fp of words(fps)) if (fp !== 0n) rows++;
    this.recordWarehouseWork(performance.now() - started);
    return Promise.resolve({ rows });
  }

  dropTables(prefixes: readonly string[], keep: readonly string[]): Promise<string[]> {
    const dir = this.warehouseDir as string;
    const dropped: string[] = [];
    for (const file of fs.readdirSync(dir)) {
      if (file === WORK_FILE) continue;
      const table = file.replace(/\.fp(\.changes)?$/, '');
      if (keep.includes(table) || !prefixes.some((p) => table.startsWith(p))) continue;
      fs.rmSync(path.join(dir, file), { force: true });
      if (!dropped.includes(table)) dropped.push(table);
    }
    return Promise.resolve(dropped);
  }

  private tablePath(table: string): string {
    return path.join(this.warehouseDir as string, `${table}.fp`);
  }

  dryRun(model: ModelConfig): Promise<DryRunResult> {
    const m = parseBenchModel(modelText(model));
    return Promise.resolve({ bytesProcessed: m.rows * 100, schema: benchSchema(m) });
  }

  open(model: ModelConfig, options: { jobId?: string; orderByKey?: string } = {}): Promise<OpenedModel> {
    const text = modelText(model);
    const m = parseBenchModel(text);
    // rows are generated in the order of their zero-padded ids: what BigQuery's extract ordered by that key returns
    const keyOrdered = options.orderByKey !== undefined && options.orderByKey === ORDERED_BY[m.kind];
    return Promise.resolve({
      schema: benchSchema(m),
      totalRows: m.rows,
      position: {
        jobId: `${options.jobId ?? 'bench'}|${text}`,
        pageToken: null,
        page: 0,
        rowsRead: 0,
        ...(keyOrdered ? { keyOrdered } : {}),
        ...pageRowsOf(m),
      },
    });
  }

  readPage(position: SourcePosition, options: ReadPageOptions): Promise<SourcePage> {
    if (position.jobId.includes(CHANGES_MARK)) return Promise.resolve(this.readChanges(position, options));
    const m = parseBenchModel(position.jobId.slice(position.jobId.indexOf('|') + 1));
    const start = position.pageToken === null ? 0 : Number(position.pageToken);
    const end = Math.min(start + options.pageSize, m.rows);
    const rows: SourceRow[] = new Array<SourceRow>(end - start);
    for (let i = start; i < end; i++) rows[i - start] = benchRow(m, i);
    return Promise.resolve({
      rows,
      next: {
        jobId: position.jobId,
        pageToken: end < m.rows ? String(end) : null,
        page: position.page + 1,
        rowsRead: position.rowsRead + rows.length,
        ...(position.keyOrdered === true ? { keyOrdered: true } : {}),
        ...(position.pageRows !== undefined ? { pageRows: position.pageRows } : {}),
      },
    });
  }

  /** The row numbers a changes read lists (the last list read is kept: pages are read in turn). */
  private changesOf(runTable: string): Int32Array {
    if (this.changes?.runTable !== runTable) {
      const list = fs.readFileSync(`${this.tablePath(runTable)}.changes`);
      const copy = new Uint8Array(list);
      this.changes = { runTable, indexes: new Int32Array(copy.buffer, 0, copy.length / 4) };
    }
    return this.changes.indexes;
  }

  /** A page of a changes read: the listed row numbers, generated. */
  private readChanges(position: SourcePosition, options: ReadPageOptions): SourcePage {
    const rest = position.jobId.slice(position.jobId.indexOf(CHANGES_MARK) + CHANGES_MARK.length);
    const runTable = rest.slice(0, rest.indexOf('|'));
    const m = parseBenchModel(rest.slice(rest.indexOf('|') + 1));
    const indexes = this.changesOf(runTable);
    const start = position.pageToken === null ? 0 : Number(position.pageToken);
    const end = Math.min(start + options.pageSize, indexes.length);
    const rows: SourceRow[] = new Array<SourceRow>(end - start);
    for (let i = start; i < end; i++) rows[i - start] = benchRow(m, indexes[i] as number);
    return {
      rows,
      next: {
        ...position,
        pageToken: end < indexes.length ? String(end) : null,
        page: position.page + 1,
        rowsRead: position.rowsRead + rows.length,
      },
    };
  }
}

function modelText(model: ModelConfig): string {
  return 'sql' in model ? model.sql : model.table;
}

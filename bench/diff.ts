/**
 * Diff benchmark: a synthetic model through the StateStore, as the extract and send activities drive it (rows
 * fingerprinted beforehand, payloads built only for the rows the store stages) —
 * first diff (stage pages + finishExtract), commit every chunk as delivered, finish, then a second diff with 1% of
 * rows changed. Each store runs in its own child process (under the worker's heap flag, WORKER_NODE_ARGS), so its
 * peak RSS is its own. Between the runs the PostgreSQL
 * staging tables are analyzed as autovacuum would once run_1 emptied them, so run_2 is planned with the statistics
 * a second run meets in production.
 *
 *   npx tsx bench/diff.ts                      # 1,000,000 rows, SQLite and PostgreSQL, rows ordered and not
 *   npx tsx bench/diff.ts --rows 100000 --stores sqlite --orders ordered
 *
 * Writes bench/results/diff.json and bench/results/diff.md.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { Client } from 'pg';
import { canonicalJson, fingerprintHash, loadFingerprintHash } from '../src/diff/canonical';
import { PostgresStateStore } from '../src/state/postgres';
import { SqliteStateStore } from '../src/state/sqlite';
import type { StateStore } from '../src/state/types';
import { deliveredOutcome, emptyCounts } from '../src/sync/types';
import type { BuiltPayload, DiffRow } from '../src/sync/types';
import { services } from '../test/support/env';
import { WORKER_ENV, WORKER_NODE_ARGS } from './support/processes';

const DEFAULT_ROWS = 1_000_000;
const PAGE_SIZE_ROWS = 10_000;
const CHUNK_SIZE_ROWS = 10_000;
/** Rows per request (ampsync's default batchSize): outcomes are recorded batch by batch. */
const BATCH_SIZE_ROWS = 1_000;
/** Every CHANGE_EVERY-th row changes in the second diff (1%). */
const CHANGE_EVERY = 100;
/** Targets from the design brief. */
const TARGET_PEAK_RSS_MB = 300;
const TARGET_CHANGED_DIFF_ROWS_PER_S = 200_000;

type StoreKind = 'sqlite' | 'postgres';

interface Phase {
  name: string;
  rows: number;
  seconds: number;
  rowsPerSecond: number;
  /** CPU time of this process (SQLite: the whole store; PostgreSQL: the client side only). */
  cpuSeconds: number;
  /** CPU time of the store's PostgreSQL backends over the phase (Linux; 0 for SQLite). */
  serverCpuSeconds: number;
  /** Rows per second of CPU spent (process + server): the rate an otherwise idle machine would approach. */
  rowsPerCpuSecond: number;
  /** Peak RSS of the process so far, after this phase. */
  peakRssMb: number;
}

interface StoreResult {
  store: StoreKind;
  /** Whether the model's rows arrived in key order (the ordered extract) or not. */
  keyOrder: KeyOrder;
  version: string;
  rows: number;
  pageSizeRows: number;
  chunkSizeRows: number;
  phases: Phase[];
  /** Time spent generating and hashing the synthetic rows (not counted in any phase). */
  generationSeconds: number;
  peakRssMb: number;
  /** Of each diff phase, the seconds finishExtract took (duplicates, gone keys, chunk numbering). */
  finishExtractSeconds: Record<string, number>;
  /** 1-minute load average before and after: the machine may be shared. */
  loadAverage: [number, number];
  checks: Record<string, number>;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** Summed user+system CPU seconds of the given local processes (0 where /proc is missing). */
function cpuSecondsOf(pids: readonly number[]): number {
  const ticksPerSecond = 100;
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // the process ended meanwhile, or no /proc
    }
  }
  return ticks / ticksPerSecond;
}

const mb = (kib: number): number => Math.round((kib / 1024) * 10) / 10;
const peakRssMb = (): number => mb(process.resourceUsage().maxRSS);

/**
 * How the model's rows arrive: in key order, as the extract orders a query model by its (STRING or INT64) key;
 * or in no particular order, as a table read with tabledata.list, or a key of another type.
 */
type KeyOrder = 'ordered' | 'unordered';

/** The key of row i: ascending (ordered), or a bijection of 0..rows-1 so keys arrive in no particular order. */
function keyOf(i: number, rows: number, order: KeyOrder): string {
  const p = order === 'ordered' ? i : (i * 7_919_993 + 12_345) % rows;
  return `user_${String(p).padStart(8, '0')}`;
}

/** A user's mapped values: what the extract activity fingerprints (and, if the row is staged, maps). */
function userValues(
  i: number,
  rows: number,
  order: KeyOrder,
  version: (i: number) => number,
): [string, string, number, string, number] {
  return [
    keyOf(i, rows, order),
    i % 3 === 0 ? 'pro' : 'free',
    (i % 1000) * 1.25,
    ['DE', 'US', 'FR', 'JP'][i % 4]!,
    version(i),
  ];
}

/** The payload of a user row, built only when the store stages the row (as the extract activity's `build`). */
function userPayload(values: ReturnType<typeof userValues>): string {
  const [key, plan, lifetimeValue, country, version] = values;
  return canonicalJson({
    user_id: key,
    user_properties: { plan, lifetime_value: lifetimeValue, country, signup_at: '2024-03-01T12:00:00.000Z', version },
  });
}

/** A page as the extract activity stages it: key and fingerprint per row, payloads built on demand. */
function makePage(
  from: number,
  to: number,
  rows: number,
  order: KeyOrder,
  version: (i: number) => number,
): { rows: DiffRow[]; build: (index: number) => BuiltPayload } {
  const page: DiffRow[] = [];
  const values: ReturnType<typeof userValues>[] = [];
  for (let i = from; i < to; i++) {
    const v = userValues(i, rows, order, version);
    values.push(v);
    page.push({ key: v[0], hash: fingerprintHash(JSON.stringify(v)) });
  }
  return { rows: page, build: (index) => ({ ok: true, payload: userPayload(values[index]!) }) };
}

async function child(kind: StoreKind, keyOrder: KeyOrder, rows: number): Promise<StoreResult> {
  const syncId = 'bench_users';
  await loadFingerprintHash();
  const loadBefore = Math.round((os.loadavg()[0] ?? 0) * 100) / 100;
  let store: StateStore;
  let version: string;
  let cleanup: () => Promise<void>;
  let serverCpu = (): Promise<number> => Promise.resolve(0);
  /** What autovacuum does between two runs: statistics of the emptied staging tables (PostgreSQL only). */
  let analyzeStaging = (): Promise<void> => Promise.resolve();
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-bench-'));
    store = new SqliteStateStore({ file: path.join(dir, 'state.db') });
    const probe = new Database(':memory:');
    version = `SQLite ${(probe.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v}`;
    probe.close();
    cleanup = () => Promise.resolve(fs.rmSync(dir, { recursive: true, force: true }));
  } else {
    const schema = `ampsync_bench_${process.pid}`;
    const connectionString = services.postgresUrl;
    const applicationName = `ampsync-bench-${process.pid}`;
    store = new PostgresStateStore({ connectionString, schema, applicationName });
    const admin = new Client({ connectionString });
    await admin.connect();
    const shown = await admin.query<{ server_version: string }>('SHOW server_version');
    version = `PostgreSQL ${(shown.rows[0]?.server_version ?? '?').replace(/ .*/, '')}`;
    // the store's own server processes (its pooled connections), for the server CPU column
    serverCpu = async () => {
      const { rows: backends } = await admin.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
        [applicationName],
      );
      return cpuSecondsOf(backends.map((b) => b.pid));
    };
    analyzeStaging = async () => {
      const tables = ['run_rows', 'run_delivered', 'run_seen', 'run_pages'].map((t) => `"${schema}".${t}`);
      await admin.query(`ANALYZE ${tables.join(', ')}`);
    };
    cleanup = async () => {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    };
  }
  await store.migrate();

  const phases: Phase[] = [];
  const finishExtractSeconds: Record<string, number> = {};
  let generationSeconds = 0;
  const timed = async (
    name: string,
    count: number,
    body: (clock: { paused: number; pausedCpu: number }) => Promise<void>,
  ) => {
    const clock = { paused: 0, pausedCpu: 0 };
    const start = process.hrtime.bigint();
    const cpuStart = process.cpuUsage();
    const serverStart = await serverCpu();
    await body(clock);
    const serverCpuSeconds = (await serverCpu()) - serverStart;
    const seconds = Number(process.hrtime.bigint() - start) / 1e9 - clock.paused;
    const cpu = process.cpuUsage(cpuStart);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6 - clock.pausedCpu;
    phases.push({
      name,
      rows: count,
      seconds: Math.round(seconds * 1000) / 1000,
      rowsPerSecond: Math.round(count / seconds),
      cpuSeconds: Math.round(cpuSeconds * 1000) / 1000,
      serverCpuSeconds: Math.round(serverCpuSeconds * 100) / 100,
      rowsPerCpuSecond: Math.round(count / (cpuSeconds + serverCpuSeconds)),
      peakRssMb: peakRssMb(),
    });
  };

  const diff = async (runId: string, version: (i: number) => number) => {
    await store.beginRun({ syncId, runId, mode: 'upsert', chunkSize: CHUNK_SIZE_ROWS });
    let page = 0;
    let staged = 0;
    await timed(`diff ${runId}`, rows, async (clock) => {
      for (let from = 0; from < rows; from += PAGE_SIZE_ROWS) {
        const to = Math.min(rows, from + PAGE_SIZE_ROWS);
        const g = process.hrtime.bigint();
        const gc = process.cpuUsage();
        const pageRows = makePage(from, to, rows, keyOrder, version);
        const generated = Number(process.hrtime.bigint() - g) / 1e9;
        const generatedCpu = process.cpuUsage(gc);
        clock.paused += generated;
        clock.pausedCpu += (generatedCpu.user + generatedCpu.system) / 1e6;
        generationSeconds += generated;
        page += 1;
        const cursor = { jobId: 'bench', pageToken: to < rows ? `p${page}` : null, page, rowsRead: to };
        const { rows: diffRows, build } = pageRows;
        const keyOrdered = keyOrder === 'ordered';
        staged += (await store.stagePage({ syncId, runId, rows: diffRows, rejected: [], build, cursor, keyOrdered }))
          .staged;
      }
      const f = process.hrtime.bigint();
      await store.finishExtract(syncId, runId);
      finishExtractSeconds[runId] = Number(process.hrtime.bigint() - f) / 1e9;
    });
    return staged;
  };

  const sendAll = async (runId: string, label: string): Promise<number> => {
    const run = await store.getRun(syncId, runId);
    const chunks = run?.chunks ?? 0;
    let delivered = 0;
    await timed(label, (run?.counts.new ?? 0) + (run?.counts.changed ?? 0), async () => {
      for (let chunk = 0; chunk < chunks; chunk++) {
        const staged = await store.readChunk(syncId, runId, chunk);
        // as sendChunk records them: one call per request's batch, outcomes carrying the rows' positions
        for (let from = 0; from < staged.length; from += BATCH_SIZE_ROWS) {
          const batch = staged.slice(from, from + BATCH_SIZE_ROWS);
          await store.recordOutcomes(syncId, runId, batch.map(deliveredOutcome));
        }
        delivered += (await store.commitChunk(syncId, runId, chunk)).delivered;
      }
    });
    return delivered;
  };

  const finish = async (runId: string, count: number) => {
    await timed(`finish ${runId}`, count, async () => {
      await store.finishRun(syncId, runId, 'succeeded', emptyCounts());
    });
  };

  const firstStaged = await diff('run_1', () => 1);
  const firstDelivered = await sendAll('run_1', 'commit run_1 (all delivered)');
  await finish('run_1', rows);
  // autovacuum analyzes the staging tables once run_1 emptied them: run_2 is planned with "empty" statistics
  await analyzeStaging();
  const changed = (i: number) => (i % CHANGE_EVERY === 0 ? 2 : 1);
  const secondStaged = await diff('run_2', changed);
  const secondDelivered = await sendAll('run_2', 'commit run_2 (1% changed)');
  await finish('run_2', rows);
  const synced = await store.countSynced(syncId);

  await store.close();
  await cleanup();
  return {
    store: kind,
    keyOrder,
    version,
    rows,
    pageSizeRows: PAGE_SIZE_ROWS,
    chunkSizeRows: CHUNK_SIZE_ROWS,
    phases,
    generationSeconds: Math.round(generationSeconds * 1000) / 1000,
    peakRssMb: peakRssMb(),
    finishExtractSeconds: Object.fromEntries(
      Object.entries(finishExtractSeconds).map(([run, seconds]) => [run, Math.round(seconds * 1000) / 1000]),
    ),
    loadAverage: [loadBefore, Math.round((os.loadavg()[0] ?? 0) * 100) / 100],
    checks: { firstStaged, firstDelivered, secondStaged, secondDelivered, synced },
  };
}

function runChild(kind: StoreKind, order: KeyOrder, rows: number): Promise<StoreResult> {
  return new Promise((resolve, reject) => {
    // the store runs inside `ampsync worker`, under the worker's heap limit and allocator environment
    const args = [
      ...WORKER_NODE_ARGS,
      ...process.execArgv,
      __filename,
      '--child',
      kind,
      '--order',
      order,
      '--rows',
      String(rows),
    ];
    const proc = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...WORKER_ENV },
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => {
      if (code !== 0) return reject(new Error(`bench child for ${kind} exited with code ${code}`));
      const last = out.trim().split('\n').pop() ?? '';
      resolve(JSON.parse(last) as StoreResult);
    });
  });
}

function markdown(results: StoreResult[], date: string): string {
  const lines = [
    `# Diff benchmark (${date})`,
    '',
    `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ` +
      `Node ${process.version}, each store in a process with ${WORKER_NODE_ARGS.join(' ')} (as in \`ampsync worker\`). ` +
      `Pages of ${PAGE_SIZE_ROWS.toLocaleString('en')} rows, chunks of ` +
      `${CHUNK_SIZE_ROWS.toLocaleString('en')}. Row generation and fingerprinting excluded from the phase times; payloads are built (inside the phase) only for the rows staged.`,
    '',
  ];
  for (const r of results) {
    const order =
      r.keyOrder === 'ordered'
        ? 'rows in key order (the extract orders a query model by its STRING or INT64 key)'
        : 'rows in no key order (a table read with tabledata.list, or a key of another type)';
    lines.push(`## ${r.version} — ${r.rows.toLocaleString('en')} rows, ${order}`, '');
    lines.push(
      '| phase | rows | seconds | rows/s | process CPU s | server CPU s | rows per CPU s | peak RSS (MB) |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const p of r.phases) {
      lines.push(
        `| ${p.name} | ${p.rows.toLocaleString('en')} | ${p.seconds} | ${p.rowsPerSecond.toLocaleString('en')} | ` +
          `${p.cpuSeconds} | ${p.serverCpuSeconds} | ${p.rowsPerCpuSecond.toLocaleString('en')} | ${p.peakRssMb} |`,
      );
    }
    const second = r.phases.find((p) => p.name === 'diff run_2');
    lines.push(
      '',
      `Peak RSS ${r.peakRssMb} MB (target < ${TARGET_PEAK_RSS_MB}: ${r.peakRssMb < TARGET_PEAK_RSS_MB ? 'met' : 'MISSED'}); ` +
        `1%-changed diff ${second?.rowsPerSecond.toLocaleString('en') ?? '?'} rows/s (target ≥ ` +
        `${TARGET_CHANGED_DIFF_ROWS_PER_S.toLocaleString('en')}: ` +
        `${(second?.rowsPerSecond ?? 0) >= TARGET_CHANGED_DIFF_ROWS_PER_S ? 'met' : 'MISSED'}). ` +
        `finishExtract took ${Object.entries(r.finishExtractSeconds)
          .map(([run, seconds]) => `${seconds} s of diff ${run}`)
          .join(', ')}. Generation ${r.generationSeconds} s. Load average ${r.loadAverage[0]} → ${r.loadAverage[1]} ` +
        `on ${os.cpus().length} CPUs. Checks: ${JSON.stringify(r.checks)}.`,
      '',
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const rows = Number(arg('rows') ?? DEFAULT_ROWS);
  const kind = arg('child');
  if (kind === 'sqlite' || kind === 'postgres') {
    const order: KeyOrder = arg('order') === 'unordered' ? 'unordered' : 'ordered';
    process.stdout.write(`${JSON.stringify(await child(kind, order, rows))}\n`);
    return;
  }
  const stores = (arg('stores') ?? 'sqlite,postgres').split(',') as StoreKind[];
  const orders = (arg('orders') ?? 'ordered,unordered').split(',') as KeyOrder[];
  const results: StoreResult[] = [];
  for (const store of stores) {
    for (const order of orders) {
      console.error(`bench: ${store}, ${rows.toLocaleString('en')} rows, ${order}...`);
      const result = await runChild(store, order, rows);
      for (const p of result.phases) console.error(`  ${p.name}: ${p.rowsPerSecond.toLocaleString('en')} rows/s`);
      results.push(result);
    }
  }
  const date = new Date().toISOString();
  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'diff.json'), `${JSON.stringify({ date, results }, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'diff.md'), markdown(results, date));
  console.log(markdown(results, date));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});

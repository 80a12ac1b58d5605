/**
 * End-to-end sync runs: the real Temporal dev server, real workers in child processes (SQLite state, generated
 * models), the Amplitude emulator in its own process. Each scenario runs a full sync, then a second run after a 1%
 * change, and reads each run's cost from its Temporal history.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { AmpsyncClient } from '../src/client/client';
import type { SyncConfig } from '../src/config/schema';
import type { RunCounts } from '../src/sync/types';
import { syncWorkflowId } from '../src/temporal/names';
import { BENCH_API_KEY, type AmplitudeProcess } from './support/amplitude-process';
import { WORK_FILE, type BenchModelKind } from './support/generated-source';
import { BENCH_API_KEY_ENV, benchSync } from './support/syncs';
import { runHistory, type ActivityStage } from './support/history';
import {
  MemorySampler,
  readCpuSeconds,
  readMemory,
  startChild,
  WORKER_ENV,
  stopChild,
  type Child,
  type Launcher,
} from './support/processes';

/** Share of rows the second run changes (users) or adds (events). */
export const CHANGED_SHARE = 0.01;
/** How often a running sync reports progress on stderr. */
const PROGRESS_EVERY_MS = 10_000;
/** How often the progress query is asked (each one is a query task on the worker). */
const PROGRESS_POLL_MS = 5_000;

/** A run did not deliver what it should have; the message names the run and the figures. */
export class BenchCheckError extends Error {
  override readonly name = 'BenchCheckError';
}

/** Throughput of one stage of a run. */
export interface StageFigures {
  /** Activities of the stage. */
  activities: number;
  /** First scheduled → last completed (what the stage adds to the run's wall time). */
  spanSeconds: number;
  /** Summed activity time (stages overlap: chunks are sent side by side). */
  busySeconds: number;
  /** Rows of the stage per second of its span. */
  rowsPerSecond: number;
}

/** One sync run, measured. */
export interface RunFigures {
  label: string;
  object: BenchModelKind;
  /** Rows in the model. */
  modelRows: number;
  /** Rows sent (new + changed). */
  sentRows: number;
  workers: number;
  wallSeconds: number;
  /** Model rows per second of wall time. */
  rowsPerSecond: number;
  counts: RunCounts;
  chunks: number;
  /** "send" includes each chunk's commit (sendChunk commits each of its chunks once its batches are answered). */
  stages: { extract: StageFigures; send: StageFigures };
  executions: number;
  historyEvents: number;
  workflowTasks: number;
  /** Rows sent per history event (target: ≥ 500). */
  rowsPerHistoryEvent: number;
  /** Requests the emulator answered; the sum of sendChunk results' `requests`. */
  requests: number;
  requestsFromHistory: number;
  activityRetries: number;
  emulatorEvents: number;
  /** Highest VmHWM of any worker process during this run. */
  workerPeakRssMb: number;
  /** CPU seconds the worker processes used during this run. */
  workerCpuSeconds: number;
  /**
   * Warehouse-side diff: seconds the stand-in warehouse worked inside the worker process (copying the model with
   * fingerprints, diffing it against the snapshot, promoting the next): BigQuery's work on a real deployment.
   */
  warehouseSeconds?: number;
}

export interface ScenarioOptions {
  label: string;
  kind: BenchModelKind;
  rows: number;
  workers: number;
  /** Also run again after a 1% change. */
  changedRun: boolean;
  /** Extra node flags of the worker processes (default: the context's). */
  workerNodeArgs?: string[];
  /**
   * Diff in the worker (read-only mode, `stateDataset: false`); otherwise in the (stand-in) warehouse, as ampsync
   * does by default (src/sync/warehouse-diff.ts).
   */
  readOnly?: boolean;
  /** Users: this many more text columns, each mapped to a user property (a wide model). */
  wide?: number;
}

export interface ScenarioFigures {
  label: string;
  kind: BenchModelKind;
  rows: number;
  workers: number;
  workerNodeArgs: string[];
  /** Whether the diff ran in the stand-in warehouse. */
  warehouseDiff: boolean;
  /** RSS of each worker once ready, before any run (the runtime's own footprint). */
  idleRssMb: number[];
  full: RunFigures;
  changed?: RunFigures;
}

/** What every scenario shares: the Temporal client on the bench task queue, the emulator and the workflow bundle. */
export interface BenchContext {
  temporalAddress: string;
  client: AmpsyncClient;
  amplitude: AmplitudeProcess;
  bundlePath: string;
  /** How child processes run (compiled JavaScript), with extra node flags. */
  launch: (nodeArgs: string[]) => Launcher;
  /** Node flags of worker processes unless a scenario says otherwise. */
  workerNodeArgs: string[];
  /** Unique to this benchmark invocation (sync ids, task queue). */
  tag: string;
  log(line: string): void;
}

async function startWorkers(
  ctx: BenchContext,
  count: number,
  taskQueue: string,
  stateUrl: string,
  nodeArgs: string[],
  warehouseDir: string | undefined,
): Promise<Child[]> {
  const workers: Child[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const { command, args } = ctx.launch(nodeArgs)('bench/support/worker-process.ts');
      const { child } = await startChild({
        name: `bench worker ${i + 1}`,
        command,
        args,
        env: {
          ...WORKER_ENV,
          BENCH_TEMPORAL_ADDRESS: ctx.temporalAddress,
          BENCH_TASK_QUEUE: taskQueue,
          BENCH_STATE: stateUrl,
          BENCH_BUNDLE: ctx.bundlePath,
          [BENCH_API_KEY_ENV]: BENCH_API_KEY,
          AMPSYNC_CODEC_KEY: '',
          AMPSYNC_CODEC_KEY_FILE: '',
          BENCH_WAREHOUSE_DIR: warehouseDir ?? '',
        },
        ready: /^@ready /,
        onLine: (line) => {
          if (!line.startsWith('@ready')) ctx.log(`  [worker ${i + 1}] ${line}`);
        },
      });
      workers.push(child);
    }
  } catch (err) {
    await Promise.all(workers.map((w) => stopChild(w)));
    throw err;
  }
  return workers;
}

function stageFigures(stage: ActivityStage | undefined, rows: number): StageFigures {
  if (stage === undefined) return { activities: 0, spanSeconds: 0, busySeconds: 0, rowsPerSecond: 0 };
  const spanSeconds = stage.spanMs / 1000;
  return {
    activities: stage.count,
    spanSeconds: round(spanSeconds, 3),
    busySeconds: round(stage.busyMs / 1000, 3),
    rowsPerSecond: spanSeconds > 0 ? Math.round(rows / spanSeconds) : 0,
  };
}

/** Runs one sync to completion on the given workers and measures it. */
async function measureRun(
  ctx: BenchContext,
  label: string,
  sync: SyncConfig,
  kind: BenchModelKind,
  modelRows: number,
  workers: Child[],
): Promise<RunFigures> {
  await ctx.amplitude.reset();
  const samplers = workers.map((w) => new MemorySampler(w.pid));
  const cpuBefore = workers.map((w) => readCpuSeconds(w.pid));
  ctx.log(`${label}: running ${sync.object} sync of ${modelRows.toLocaleString('en-US')} rows`);
  const started = performance.now();
  let lastReport = started;
  const handle = await ctx.client.start(sync);
  const result = await ctx.client.follow(handle, {
    pollMs: PROGRESS_POLL_MS,
    onProgress: (p) => {
      const now = performance.now();
      if (now - lastReport < PROGRESS_EVERY_MS) return;
      lastReport = now;
      ctx.log(
        `  ${label}: ${p.phase} · chunks ${p.chunksDone}/${p.chunksTotal ?? '?'} · delivered ${p.counts.delivered} ` +
          `· ${Math.round((now - started) / 1000)} s`,
      );
    },
  });
  const wallSeconds = (performance.now() - started) / 1000;
  const workerPeakRssMb = Math.max(...samplers.map((s) => s.stop()));
  const workerCpuSeconds = workers.reduce((sum, w, i) => sum + readCpuSeconds(w.pid) - (cpuBefore[i] ?? 0), 0);
  const history = await runHistory(ctx.client.client, syncWorkflowId(sync.id), handle.firstExecutionRunId);
  const emulator = await ctx.amplitude.counts();
  const c = result.counts;
  const sentRows = c.new + c.changed;
  if (result.status !== 'succeeded' || c.delivered !== sentRows || emulator.events !== c.delivered) {
    throw new BenchCheckError(
      `${label}: run ${result.status}, ${sentRows} rows to send, ${c.delivered} delivered, ` +
        `${emulator.events} ingested by the emulator (counts ${JSON.stringify(c)})`,
    );
  }
  const a = history.activities;
  const figures: RunFigures = {
    label,
    object: kind,
    modelRows,
    sentRows,
    workers: workers.length,
    wallSeconds: round(wallSeconds, 2),
    rowsPerSecond: Math.round(modelRows / wallSeconds),
    counts: c,
    chunks: result.chunks,
    stages: {
      extract: stageFigures(a.extractAndDiff, c.extracted),
      send: stageFigures(a.sendChunk, sentRows),
    },
    executions: history.executions,
    historyEvents: history.events,
    workflowTasks: history.workflowTasks,
    rowsPerHistoryEvent: round(sentRows / history.events, 1),
    requests: emulator.requests,
    requestsFromHistory: history.requests,
    activityRetries: Object.values(a).reduce((sum, s) => sum + s.retries, 0),
    emulatorEvents: emulator.events,
    workerPeakRssMb: round(workerPeakRssMb, 1),
    workerCpuSeconds: round(workerCpuSeconds, 2),
  };
  ctx.log(
    `  ${label}: ${figures.wallSeconds} s, ${figures.rowsPerSecond} rows/s, sent ${sentRows}, ` +
      `${figures.historyEvents} history events, ${figures.requests} requests, peak RSS ${figures.workerPeakRssMb} MB, ` +
      `worker CPU ${figures.workerCpuSeconds} s`,
  );
  return figures;
}

/** A full run and (optionally) a run after a 1% change, on fresh workers and a fresh SQLite state. */
export async function runScenario(ctx: BenchContext, options: ScenarioOptions): Promise<ScenarioFigures> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-bench-'));
  const taskQueue = `bench-${ctx.tag}-${options.label}`;
  const syncId = `bench-${ctx.tag}-${options.label}`
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '-')
    .slice(0, 63);
  const client = new AmpsyncClient({ client: ctx.client.client, taskQueue });
  const scoped: BenchContext = { ...ctx, client };
  const nodeArgs = options.workerNodeArgs ?? ctx.workerNodeArgs;
  const state = `sqlite:${path.join(dir, 'state.db')}`;
  const warehouseDir = options.readOnly === true ? undefined : path.join(dir, 'warehouse');
  const workers = await startWorkers(ctx, options.workers, taskQueue, state, nodeArgs, warehouseDir);
  try {
    const idleRssMb = workers.map((w) => round(readMemory(w.pid)?.rssMb ?? 0, 1));
    const at = {
      id: syncId,
      kind: options.kind,
      amplitudeUrl: ctx.amplitude.url,
      readOnly: options.readOnly === true,
      ...(options.wide !== undefined ? { wide: options.wide } : {}),
    };
    const fullSync = benchSync({ ...at, rows: options.rows, revision: 0 });
    // seconds the stand-in warehouse has worked so far (warehouse-side diff only)
    const warehouseWork = (): number => {
      const file = warehouseDir === undefined ? undefined : path.join(warehouseDir, WORK_FILE);
      return file !== undefined && fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8')) : 0;
    };
    const withWarehouse = (run: RunFigures, before: number): RunFigures =>
      warehouseDir === undefined ? run : { ...run, warehouseSeconds: round(warehouseWork() - before, 2) };
    const full = withWarehouse(
      await measureRun(scoped, `${options.label} full`, fullSync, options.kind, options.rows, workers),
      0,
    );
    const figures: ScenarioFigures = {
      label: options.label,
      kind: options.kind,
      rows: options.rows,
      workers: options.workers,
      workerNodeArgs: nodeArgs,
      warehouseDiff: options.readOnly !== true,
      idleRssMb,
      full,
    };
    if (options.changedRun) {
      // users: revision 1 changes 1% of the rows; events: the table grows by 1% (send-once: only those are new)
      const changedRows = options.kind === 'users' ? options.rows : Math.round(options.rows * (1 + CHANGED_SHARE));
      const revision = options.kind === 'users' ? Math.round(CHANGED_SHARE * 100) : 0;
      const changedSync = benchSync({ ...at, rows: changedRows, revision });
      const before = warehouseWork();
      figures.changed = withWarehouse(
        await measureRun(scoped, `${options.label} 1% changed`, changedSync, options.kind, changedRows, workers),
        before,
      );
    }
    return figures;
  } finally {
    await Promise.all(workers.map((w) => stopChild(w)));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

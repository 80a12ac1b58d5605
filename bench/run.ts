/**
 * The performance suite (`npm run bench`): end-to-end syncs of 1,000,000 users and 1,000,000 events through the
 * Temporal dev server and a worker child process, each followed by a 1%-changed run; the send stage side by side
 * with @amplitude/analytics-node and the raw POST limit, and against the latter in back-to-back pairs; scaling
 * (100k / 1M / 5M users, two workers against one); the BigQuery emulator's own read rate, read ahead, and the memory
 * of reading wide rows. Checks the targets and writes bench/results/report.{json,md}.
 *
 *   npm run bench                # the full suite (~14 minutes on 2 cores)
 *   npm run bench -- --quick     # 100k rows, no 5M, about 2 minutes
 *   npm run bench -- --only users [--rows N] [--read-only] [--workers N] [--wide W]   # one end-to-end scenario
 *                                      # (full, then 1% changed), printed only; --read-only diffs in the worker
 *                                      # (source.stateDataset: false) instead of the (stand-in) warehouse;
 *                                      # N workers; W more text columns, each mapped to a user property
 *   npm run bench -- --only users --profile DIR   # the same, the worker writing a CPU profile (--cpu-prof) to DIR
 *   npm run bench -- --only events-pairs [--rows N]   # the send stage against the raw limit alone: SEND_PAIRS × (raw
 *                                      # side, full run) back to back, printed only (users-pairs: the same for users)
 *   npm run bench -- --only bigquery   # the BigQuery emulator's reads alone (read ahead, wide rows), printed only
 *   npm run bench -- --no-5m     # the full suite without the 5,000,000-row run
 *   npm run bench -- --render-only   # re-check the targets and rewrite report.md from report.json
 *
 * `npm run bench` starts the local services first (`npm run services:up`: Temporal on TEMPORAL_ADDRESS, default
 * 127.0.0.1:7233, and the BigQuery emulator); run directly (`npx tsx bench/run.ts`), it needs them up.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { bundleWorkflowCode } from '@temporalio/worker';
import Database from 'better-sqlite3';
import { AmpsyncClient } from '../src/client/client';
import { optionsSchema } from '../src/config/schema';
import { WORKFLOWS_PATH } from '../src/worker/plugin';
import { runSendComparison } from './amplitude-send';
import { measureBigQueryEmulator, type BigQueryFigures } from './bigquery';
import { runScenario, type BenchContext, type ScenarioFigures } from './e2e';
import { measureSendPairs } from './send-pairs';
import { checkTargets, renderMarkdown, type BenchReport, type MachineFacts } from './report';
import { startAmplitudeProcess } from './support/amplitude-process';
import { compileForBench } from './support/compile';
import { WORKER_ENV, WORKER_NODE_ARGS, compiledLauncher } from './support/processes';
import type { Side } from './support/send-sides';

/** Rows per BigQuery page the worker reads (activities' default). */
const PAGE_SIZE_ROWS = 10_000;
/** Pairs of (raw side, end-to-end full run) the send stage's ratio to the raw limit is the median of. */
const SEND_PAIRS = 3;
/** The 5M-row run is skipped when the 1M full run suggests it would take longer than this. */
const MAX_5M_MINUTES = 20;

interface Plan {
  mode: 'full' | 'quick';
  e2eRows: number;
  scalingRows: number[];
  sendRows: number;
  sdkRows: number;
  twoWorkerRows: number;
  bigqueryRows: number;
  fiveMillion: boolean;
}

function planFor(quick: boolean, fiveMillion: boolean): Plan {
  return quick
    ? {
        mode: 'quick',
        e2eRows: 100_000,
        scalingRows: [20_000, 100_000],
        sendRows: 100_000,
        sdkRows: 5_000,
        twoWorkerRows: 100_000,
        bigqueryRows: 100_000,
        fiveMillion: false,
      }
    : {
        mode: 'full',
        e2eRows: 1_000_000,
        scalingRows: [100_000, 1_000_000, 5_000_000],
        sendRows: 1_000_000,
        sdkRows: 100_000,
        twoWorkerRows: 1_000_000,
        bigqueryRows: 100_000,
        fiveMillion,
      };
}

const SIDES: readonly Side[] = [
  'ampsync-events',
  'ampsync-send-events',
  'sdk-events',
  'raw-events',
  'ampsync-identifies',
  'ampsync-send-identifies',
  'sdk-identifies',
  'raw-identifies',
];

const started = Date.now();
function log(line: string): void {
  const seconds = Math.round((Date.now() - started) / 1000);
  process.stderr.write(
    `[${String(Math.floor(seconds / 60)).padStart(2, '0')}:${String(seconds % 60).padStart(2, '0')}] ${line}\n`,
  );
}

function machineFacts(): MachineFacts {
  const probe = new Database(':memory:');
  const sqlite = (probe.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  probe.close();
  const load = os.loadavg().map((n) => Math.round(n * 100) / 100);
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: Math.round(os.totalmem() / 1024 ** 3),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    sqlite: `SQLite ${sqlite}`,
    loadAverageAtStart: load,
    loadAverageAtEnd: load,
  };
}

const RESULTS_DIR = path.join(__dirname, 'results');

/** The figures of the last run (report.json), for `--render-only`. */
function readReport(): Omit<BenchReport, 'targets'> {
  return JSON.parse(fs.readFileSync(path.join(RESULTS_DIR, 'report.json'), 'utf8')) as BenchReport;
}

/** Checks the targets and writes report.json and report.md. */
function writeReport(figures: Omit<BenchReport, 'targets'>): void {
  const report: BenchReport = { ...figures, targets: checkTargets(figures) };
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(path.join(RESULTS_DIR, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  const markdown = renderMarkdown(report);
  fs.writeFileSync(path.join(RESULTS_DIR, 'report.md'), markdown);
  console.log(markdown);
  log(`wrote ${path.join(RESULTS_DIR, 'report.json')} and report.md`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      'no-5m': { type: 'boolean' },
      'render-only': { type: 'boolean' },
      only: { type: 'string' },
      rows: { type: 'string' },
      workers: { type: 'string' },
      'read-only': { type: 'boolean' },
      wide: { type: 'string' },
      profile: { type: 'string' },
    },
    strict: true,
  });
  if (values['render-only'] === true) return writeReport(readReport());
  const plan = planFor(values.quick === true, values['no-5m'] !== true);
  const startedAt = new Date().toISOString();
  const machine = machineFacts();
  log(`ampsync benchmark (${plan.mode}) on ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}`);

  const temporalAddress = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  // connected first: a Temporal that is not there fails the suite before it compiles, bundles or starts anything
  const client = await AmpsyncClient.connect({ address: temporalAddress, payloadCodec: null }).catch((err: unknown) => {
    throw new Error(
      `cannot reach Temporal on ${temporalAddress} (${err instanceof Error ? err.message : String(err)}): ` +
        'start the local services with `npm run services:up`',
    );
  });
  // from here on, one cleanup (the finally below) undoes whatever setup got to, whether the suite ran or not
  let bundlePath: string | undefined;
  let amplitude: Awaited<ReturnType<typeof startAmplitudeProcess>> | undefined;
  try {
    const compiled = await compileForBench();
    const launch = (nodeArgs: string[]) => compiledLauncher(compiled, nodeArgs);
    const bundle = await bundleWorkflowCode({
      workflowsPath: WORKFLOWS_PATH,
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
    });
    bundlePath = path.join(os.tmpdir(), `ampsync-bench-workflows-${process.pid}.js`);
    fs.writeFileSync(bundlePath, bundle.code);
    amplitude = await startAmplitudeProcess(launch([]));
    const ctx: BenchContext = {
      temporalAddress,
      client,
      amplitude,
      bundlePath,
      launch,
      workerNodeArgs:
        values.profile === undefined
          ? WORKER_NODE_ARGS
          : [...WORKER_NODE_ARGS, '--cpu-prof', `--cpu-prof-dir=${path.resolve(values.profile)}`],
      tag: randomUUID().slice(0, 8),
      log,
    };
    const label = (kind: string, rows: number): string =>
      `${kind}-${rows >= 1e6 ? `${rows / 1e6}m` : `${rows / 1e3}k`}`;
    if (values.only === 'bigquery') {
      // the BigQuery emulator's reads alone (read ahead, wide rows), printed, no report
      console.log(
        JSON.stringify(await measureBigQueryEmulator(plan.bigqueryRows, launch(WORKER_NODE_ARGS), log), null, 2),
      );
      return;
    }
    if (values.only === 'events-pairs' || values.only === 'users-pairs') {
      const rows = values.rows === undefined ? plan.e2eRows : Number(values.rows);
      if (!Number.isSafeInteger(rows) || rows <= 0) throw new Error(`--rows takes a row count, not "${values.rows}"`);
      const kind = values.only === 'events-pairs' ? 'events' : 'users';
      console.log(JSON.stringify(await measureSendPairs(ctx, { kind, rows, pairs: SEND_PAIRS }), null, 2));
      return;
    }
    if (values.only !== undefined) {
      // one end-to-end scenario (users or events, full then 1% changed), printed, no report: for design work
      const kind = values.only === 'events' ? 'events' : values.only === 'users' ? 'users' : undefined;
      if (kind === undefined) {
        throw new Error(`--only takes users, events, events-pairs, users-pairs or bigquery, not "${values.only}"`);
      }
      const rows = values.rows === undefined ? plan.e2eRows : Number(values.rows);
      if (!Number.isSafeInteger(rows) || rows <= 0) throw new Error(`--rows takes a row count, not "${values.rows}"`);
      const workers = values.workers === undefined ? 1 : Number(values.workers);
      if (!Number.isSafeInteger(workers) || workers < 1 || workers > 4) {
        throw new Error(`--workers takes 1 to 4 workers, not "${values.workers}"`);
      }
      const wide = values.wide === undefined ? 0 : Number(values.wide);
      if (!Number.isSafeInteger(wide) || wide < 0 || wide > 200 || (wide > 0 && kind !== 'users')) {
        throw new Error(`--wide takes 0 to 200 more text columns of a users model, not "${values.wide}"`);
      }
      const figures = await runScenario(ctx, {
        label: `${label(kind, rows)}${wide > 0 ? `-wide-${wide}` : ''}${values['read-only'] === true ? '-read-only' : ''}${workers > 1 ? `-${workers}-workers` : ''}`,
        kind,
        rows,
        workers,
        changedRun: true,
        readOnly: values['read-only'] === true,
        ...(wide > 0 ? { wide } : {}),
      });
      console.log(JSON.stringify(figures, null, 2));
      return;
    }
    const users = await runScenario(ctx, {
      label: label('users', plan.e2eRows),
      kind: 'users',
      rows: plan.e2eRows,
      workers: 1,
      changedRun: true,
    });
    const events = await runScenario(ctx, {
      label: label('events', plan.e2eRows),
      kind: 'events',
      rows: plan.e2eRows,
      workers: 1,
      changedRun: true,
    });
    // the send stage against the raw limit, each pair back to back (the target is checked on their median)
    const sendPairs = [
      await measureSendPairs(ctx, { kind: 'events', rows: plan.e2eRows, pairs: SEND_PAIRS }),
      await measureSendPairs(ctx, { kind: 'users', rows: plan.e2eRows, pairs: SEND_PAIRS }),
    ];
    // the same syncs in read-only mode (source.stateDataset: false): diffed in the worker, every row read
    const usersReadOnly = await runScenario(ctx, {
      label: `${label('users', plan.e2eRows)}-read-only`,
      kind: 'users',
      rows: plan.e2eRows,
      workers: 1,
      changedRun: true,
      readOnly: true,
    });
    const eventsReadOnly = await runScenario(ctx, {
      label: `${label('events', plan.e2eRows)}-read-only`,
      kind: 'events',
      rows: plan.e2eRows,
      workers: 1,
      changedRun: true,
      readOnly: true,
    });
    const usersDefaultHeap = await runScenario(ctx, {
      label: `${label('users', plan.e2eRows)}-default-heap`,
      kind: 'users',
      rows: plan.e2eRows,
      workers: 1,
      changedRun: true,
      workerNodeArgs: [],
    });

    const sides = await runSendComparison({
      // every side (ampsync, the SDK, raw POSTs) with the node flags a worker runs with
      launch: launch(WORKER_NODE_ARGS),
      amplitude,
      rows: plan.sendRows,
      sdkRows: plan.sdkRows,
      sides: SIDES,
      log,
    });

    const scaling: ScenarioFigures[] = [];
    const skipped: string[] = [];
    for (const rows of plan.scalingRows) {
      if (rows === plan.e2eRows) {
        scaling.push(users);
        continue;
      }
      if (rows >= 5_000_000) {
        const perRun = users.full.wallSeconds + (users.changed?.wallSeconds ?? 0);
        const estimateMinutes = ((perRun * rows) / users.rows / 60) * 1.2;
        if (!plan.fiveMillion || estimateMinutes > MAX_5M_MINUTES) {
          skipped.push(
            `${rows.toLocaleString('en-US')} users skipped: ` +
              (plan.fiveMillion
                ? `estimated ${Math.round(estimateMinutes)} minutes from the 1M run (limit ${MAX_5M_MINUTES})`
                : 'not requested (--no-5m)'),
          );
          continue;
        }
      }
      scaling.push(
        await runScenario(ctx, { label: label('users', rows), kind: 'users', rows, workers: 1, changedRun: true }),
      );
    }
    const twoWorkers = await runScenario(ctx, {
      label: `${label('users', plan.twoWorkerRows)}-2-workers`,
      kind: 'users',
      rows: plan.twoWorkerRows,
      workers: 2,
      changedRun: true,
    });

    let bigquery: BigQueryFigures | { error: string };
    try {
      bigquery = await measureBigQueryEmulator(plan.bigqueryRows, launch(WORKER_NODE_ARGS), log);
    } catch (err) {
      bigquery = { error: err instanceof Error ? err.message : String(err) };
      log(`BigQuery emulator not measured: ${bigquery.error}`);
    }

    machine.loadAverageAtEnd = os.loadavg().map((n) => Math.round(n * 100) / 100);
    const defaults = optionsSchema.parse({});
    const partial: Omit<BenchReport, 'targets'> = {
      mode: plan.mode,
      startedAt,
      finishedAt: new Date().toISOString(),
      minutes: Math.round((Date.now() - started) / 6000) / 10,
      machine,
      defaults: {
        chunkSize: defaults.chunkSize,
        chunksPerActivity: defaults.chunksPerActivity,
        batchSize: defaults.batchSize,
        concurrency: defaults.concurrency,
        pageSize: PAGE_SIZE_ROWS,
      },
      workerNodeArgs: WORKER_NODE_ARGS,
      workerEnv: WORKER_ENV,
      e2e: { users, events, usersReadOnly, eventsReadOnly, usersDefaultHeap },
      send: { rows: plan.sendRows, sdkRows: plan.sdkRows, sides, pairs: sendPairs },
      scaling: { users: scaling, twoWorkers, skipped },
      bigquery,
    };
    writeReport(partial);
  } finally {
    await amplitude?.stop();
    await client.close();
    if (bundlePath !== undefined) fs.rmSync(bundlePath, { force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});

/**
 * Benchmark: ampsync's Amplitude sender (compileMapper → packBatches → createAmplitudeSender, 4 batches in flight)
 * against the official @amplitude/analytics-node (useBatch, flushQueueSize 1000), both posting to the local
 * Amplitude emulator (storeEvents: false). Each side runs in its own child process so its peak RSS is its own, from
 * this file bundled to plain JavaScript (as the installed CLI runs compiled code, not the tsx loader).
 *
 *   npx tsx bench/amplitude-send.ts --rows 1000000 [--sdk-rows 100000] [--chunk-rows 2000]
 *
 * The SDK runs its plugin timeline one event per setTimeout tick (~1 ms), so it is capped near 1000 events/s
 * whatever its flush settings; `--sdk-rows` lets it send fewer rows (its rate is flat) to keep the run short.
 *
 * Writes bench/results/amplitude-send.json and bench/results/amplitude-send.md.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { createInstance, Types } from '@amplitude/analytics-node';
import { build } from 'esbuild';
import { packBatches } from '../src/amplitude/batches';
import { createAmplitudeSender } from '../src/amplitude/client';
import { compileMapper } from '../src/amplitude/mapping';
import type { SyncConfigInput } from '../src/config/schema';
import { syncSchema } from '../src/config/schema';
import { startAmplitudeEmulator } from '../src/emulator/amplitude';
import type { SourceRow, StagedRow } from '../src/sync/types';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const API_KEY = 'bench-api-key';
/** Rows generated, mapped and packed at a time (`--chunk-rows`): the slice of the model held in memory. */
const CHUNK_ROWS = Number(arg('chunk-rows') ?? 2000);
const IN_FLIGHT_BATCHES = 4;
const BATCH_ROWS = 1000;
const SDK_FLUSH_INTERVAL_MS = 10;

type Side = 'ampsync-events' | 'ampsync-identifies' | 'sdk-events';

interface SideResult {
  side: Side;
  rows: number;
  delivered: number;
  seconds: number;
  rowsPerSecond: number;
  peakRssMb: number;
}

const execFileAsync = promisify(execFile);

const PATHS = ['/', '/pricing', '/docs/getting-started', '/blog/reverse-etl', '/signup'];
const PLANS = ['free', 'starter', 'pro', 'enterprise'];

/** The same model row for both sides: an order-of-magnitude realistic page view. */
function pageView(i: number): SourceRow {
  return {
    id: i,
    user_id: `user-${String(i % 100_000).padStart(6, '0')}`,
    at: 1_760_000_000_000 + i * 37,
    path: PATHS[i % PATHS.length]!,
    referrer: i % 3 === 0 ? 'https://www.google.com/' : null,
    plan: PLANS[i % PLANS.length]!,
    duration_ms: (i * 7919) % 60_000,
  };
}

function profile(i: number): SourceRow {
  return {
    user_id: `user-${String(i).padStart(7, '0')}`,
    plan: PLANS[i % PLANS.length]!,
    country: i % 2 === 0 ? 'DE' : 'US',
    ltv: ((i * 131) % 100_000) / 100,
    signed_up: '2025-03-14',
  };
}

const base = {
  source: { project: 'bench' },
  model: { table: 'bench.model' },
  destination: { apiKey: { env: 'AMPLITUDE_API_KEY' } },
};

const EVENTS_SYNC: SyncConfigInput = {
  ...base,
  id: 'page-views',
  object: 'events',
  key: 'id',
  mappings: [
    { from: 'user_id', to: 'user_id' },
    { constant: 'Page Viewed', to: 'event_type' },
    { from: 'at', to: 'time' },
    { from: 'path', to: 'event_properties.path' },
    { from: 'referrer', to: 'event_properties.referrer' },
    { from: 'plan', to: 'event_properties.plan' },
    { from: 'duration_ms', to: 'event_properties.duration_ms' },
  ],
};

const USERS_SYNC: SyncConfigInput = {
  ...base,
  id: 'users',
  object: 'users',
  key: 'user_id',
  mappings: [
    { from: 'user_id', to: 'user_id' },
    { from: 'plan', to: 'user_properties.plan' },
    { from: 'country', to: 'country' },
    { from: 'ltv', to: 'user_properties.ltv' },
    { from: 'signed_up', to: 'user_properties.signed_up', op: '$setOnce' },
  ],
};

async function runAmpsync(url: string, rows: number, kind: 'events' | 'identifies'): Promise<number> {
  const sync = syncSchema.parse(kind === 'events' ? EVENTS_SYNC : USERS_SYNC);
  const mapper = compileMapper(sync);
  const make = kind === 'events' ? pageView : profile;
  const sender = createAmplitudeSender({
    api: 'batch',
    region: 'us',
    baseUrl: url,
    apiKey: API_KEY,
    minIdLength: 5,
    batchSize: BATCH_ROWS,
  });
  function* batches(): Generator<StagedRow[]> {
    for (let start = 0; start < rows; start += CHUNK_ROWS) {
      const chunk: StagedRow[] = [];
      for (let i = start; i < Math.min(rows, start + CHUNK_ROWS); i++) {
        const result = mapper.map(make(i));
        if (!result.ok) throw new Error(`row ${i} rejected: ${result.reason}`);
        chunk.push({ key: result.key, hash: result.hash, payload: result.payload });
      }
      yield* packBatches(chunk, sender.limits);
    }
  }
  const source = batches();
  let delivered = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT_BATCHES }, async () => {
      for (let next = source.next(); next.done !== true; next = source.next()) {
        for (const outcome of await sender.sendBatch(next.value)) if (outcome.status === 'delivered') delivered++;
      }
    }),
  );
  await sender.close();
  return delivered;
}

async function runSdk(url: string, rows: number): Promise<number> {
  const client = createInstance();
  await client.init(API_KEY, {
    serverUrl: `${url}/batch`,
    useBatch: true,
    flushQueueSize: BATCH_ROWS,
    // This SDK flushes on its timer only (flushQueueSize caps a request): a short interval is its fastest setting.
    flushIntervalMillis: SDK_FLUSH_INTERVAL_MS,
    logLevel: Types.LogLevel.None,
  }).promise;
  let delivered = 0;
  for (let start = 0; start < rows; start += CHUNK_ROWS) {
    const pending: Promise<{ code: number }>[] = [];
    for (let i = start; i < Math.min(rows, start + CHUNK_ROWS); i++) {
      const row = pageView(i);
      const properties: Record<string, unknown> = { path: row.path, plan: row.plan, duration_ms: row.duration_ms };
      if (row.referrer !== null) properties.referrer = row.referrer;
      pending.push(
        client.track({
          event_type: 'Page Viewed',
          user_id: row.user_id as string,
          time: row.at as number,
          insert_id: `page-views-${i}`,
          event_properties: properties,
        }).promise,
      );
    }
    for (const result of await Promise.all(pending)) if (result.code === 200) delivered++;
  }
  await client.flush().promise;
  return delivered;
}

/** Child process: runs one side and prints its result as one JSON line. */
async function child(side: Side, url: string, rows: number): Promise<void> {
  const started = performance.now();
  const delivered =
    side === 'sdk-events'
      ? await runSdk(url, rows)
      : await runAmpsync(url, rows, side === 'ampsync-events' ? 'events' : 'identifies');
  const seconds = (performance.now() - started) / 1000;
  const result: SideResult = {
    side,
    rows,
    delivered,
    seconds: round(seconds, 2),
    rowsPerSecond: Math.round(rows / seconds),
    peakRssMb: round(process.resourceUsage().maxRSS / 1024, 1),
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Bundles this file (dependencies external) next to node_modules so a child can run it with plain node. */
async function bundle(): Promise<string> {
  const outfile = path.resolve(__dirname, '..', 'node_modules', '.cache', 'ampsync-bench', 'amplitude-send.js');
  await build({
    entryPoints: [__filename],
    bundle: true,
    platform: 'node',
    target: 'node20',
    packages: 'external',
    outfile,
    logLevel: 'warning',
  });
  return outfile;
}

async function parent(rows: number, sdkRows: number): Promise<void> {
  const script = await bundle();
  const emulator = await startAmplitudeEmulator({ apiKeys: [API_KEY], storeEvents: false });
  const results: (SideResult & { emulatorEvents: number; requests: number })[] = [];
  try {
    for (const side of ['ampsync-events', 'sdk-events', 'ampsync-identifies'] as const) {
      emulator.reset();
      const sideRows = side === 'sdk-events' ? sdkRows : rows;
      process.stderr.write(`running ${side} (${sideRows} rows)...\n`);
      const { stdout } = await execFileAsync(
        process.execPath,
        [script, '--side', side, '--url', emulator.url, '--rows', String(sideRows), '--chunk-rows', String(CHUNK_ROWS)],
        { maxBuffer: 16 * 1024 * 1024, cwd: path.resolve(__dirname, '..') },
      );
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (line === undefined) throw new Error(`side ${side} printed no result:\n${stdout}`);
      const result = JSON.parse(line.slice('RESULT '.length)) as SideResult;
      results.push({ ...result, emulatorEvents: emulator.eventCount(API_KEY), requests: emulator.requests().length });
      process.stderr.write(`  ${JSON.stringify(results[results.length - 1])}\n`);
    }
  } finally {
    await emulator.close();
  }
  const by = (side: Side): SideResult => results.find((r) => r.side === side)!;
  const ratio = round(by('ampsync-events').rowsPerSecond / by('sdk-events').rowsPerSecond, 2);
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    rows,
    sdkRows,
    sdkFlushIntervalMs: SDK_FLUSH_INTERVAL_MS,
    chunkRows: CHUNK_ROWS,
    batchRows: BATCH_ROWS,
    inFlightBatches: IN_FLIGHT_BATCHES,
    results,
    eventsRatioAmpsyncOverSdk: ratio,
    targets: { ratioAtLeast: 3, peakRssMbBelow: 200 },
  };
  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'amplitude-send.json'), `${JSON.stringify(report, null, 2)}\n`);
  const table = [
    `# Amplitude send benchmark`,
    '',
    `${report.date} · Node ${report.node} · ${report.cpus} × ${report.cpuModel} · emulator with storeEvents: false · ` +
      `rows generated ${CHUNK_ROWS} at a time, ${BATCH_ROWS} per request, ${IN_FLIGHT_BATCHES} requests in flight (ampsync)`,
    '',
    '| side | rows | delivered | seconds | rows/s | peak RSS (MB) | emulator events | requests |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.side} | ${r.rows} | ${r.delivered} | ${r.seconds} | ${r.rowsPerSecond} | ${r.peakRssMb} | ` +
        `${r.emulatorEvents} | ${r.requests} |`,
    ),
    '',
    `Events: ampsync / SDK = **${ratio}×** (target ≥ 3×). ampsync maps each row (compileMapper) inside the timing; ` +
      `the SDK side builds its event objects from the same rows (flushQueueSize ${BATCH_ROWS}, ` +
      `flushIntervalMillis ${SDK_FLUSH_INTERVAL_MS}). Each side ran as bundled JavaScript in its own node process.`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'amplitude-send.md'), table);
  console.log(table);
}

const side = arg('side') as Side | undefined;
const rows = Number(arg('rows') ?? 1_000_000);
const sdkRows = Number(arg('sdk-rows') ?? rows);
(side === undefined ? parent(rows, sdkRows) : child(side, arg('url') ?? '', rows)).catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});

/**
 * Benchmark of the send path, side by side against one Amplitude emulator process (storeEvents: false): ampsync's
 * sender, the official @amplitude/analytics-node as a user would feed it, and the raw limit (pre-built gzipped bodies
 * POSTed with undici at the same concurrency). Each side runs as compiled JavaScript in its own process, so its peak
 * RSS is its own (bench/support/send-sides.ts). `npm run bench` runs this as part of the whole suite; alone:
 *
 *   npx tsx bench/amplitude-send.ts --rows 1000000 [--sdk-rows 100000]
 *
 * The SDK runs its plugin timeline one event per setTimeout tick, so it is capped near 1000 events/s whatever its
 * flush settings; `--sdk-rows` lets it send fewer rows (its rate is flat) to keep the run short.
 *
 * Alone, it writes bench/results/amplitude-send.json and bench/results/amplitude-send.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { startAmplitudeProcess, type AmplitudeProcess } from './support/amplitude-process';
import { compileForBench } from './support/compile';
import { WORKER_ENV, WORKER_NODE_ARGS, compiledLauncher, runChild, type Launcher } from './support/processes';
import {
  BATCH_ROWS,
  IN_FLIGHT_REQUESTS,
  SDK_FLUSH_INTERVAL_MS,
  SLICE_ROWS,
  type Side,
  type SideResult,
} from './support/send-sides';

/** One side with what the emulator saw of it. */
export interface MeasuredSide extends SideResult {
  emulatorEvents: number;
  requests: number;
}

export interface SendComparisonOptions {
  launch: Launcher;
  amplitude: AmplitudeProcess;
  rows: number;
  sdkRows: number;
  sides: readonly Side[];
  log(line: string): void;
}

/** A side delivered fewer rows than it sent, or printed no result. */
export class SendComparisonError extends Error {
  override readonly name = 'SendComparisonError';
}

/** Runs each side in turn, each in its own process, against the emulator (reset before each side). */
export async function runSendComparison(options: SendComparisonOptions): Promise<MeasuredSide[]> {
  const results: MeasuredSide[] = [];
  for (const side of options.sides) {
    await options.amplitude.reset();
    const rows = side.startsWith('sdk-') ? options.sdkRows : options.rows;
    options.log(`send comparison: ${side}, ${rows.toLocaleString('en-US')} rows`);
    const { command, args } = options.launch('bench/support/send-sides.ts', [
      '--side',
      side,
      '--url',
      options.amplitude.url,
      '--rows',
      String(rows),
    ]);
    const lines = await runChild({ name: `send side ${side}`, command, args, env: WORKER_ENV });
    const line = lines.find((l) => l.startsWith('RESULT '));
    if (line === undefined) throw new SendComparisonError(`send side ${side} printed no result`);
    const result = JSON.parse(line.slice('RESULT '.length)) as SideResult;
    const counts = await options.amplitude.counts();
    if (result.delivered !== rows || counts.events !== rows) {
      throw new SendComparisonError(
        `send side ${side}: ${rows} rows sent, ${result.delivered} reported delivered, ${counts.events} ingested`,
      );
    }
    const measured: MeasuredSide = { ...result, emulatorEvents: counts.events, requests: counts.requests };
    options.log(`  ${side}: ${measured.seconds} s, ${measured.rowsPerSecond} rows/s, ${measured.requests} requests`);
    results.push(measured);
  }
  return results;
}

/** Settings of the comparison, for the report. */
export const SEND_SETTINGS = {
  batchRows: BATCH_ROWS,
  inFlightRequests: IN_FLIGHT_REQUESTS,
  sliceRows: SLICE_ROWS,
  sdkFlushIntervalMs: SDK_FLUSH_INTERVAL_MS,
};

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rows: { type: 'string' }, 'sdk-rows': { type: 'string' } },
    strict: true,
  });
  const rows = Number(values.rows ?? 1_000_000);
  const sdkRows = Number(values['sdk-rows'] ?? Math.min(rows, 100_000));
  const compiled = await compileForBench();
  const amplitude = await startAmplitudeProcess(compiledLauncher(compiled));
  // every side with the node flags a worker runs with (the README's recommendation)
  const launch = compiledLauncher(compiled, WORKER_NODE_ARGS);
  let results: MeasuredSide[];
  try {
    results = await runSendComparison({
      launch,
      amplitude,
      rows,
      sdkRows,
      sides: [
        'ampsync-events',
        'sdk-events',
        'ampsync-send-events',
        'raw-events',
        'ampsync-identifies',
        'sdk-identifies',
        'ampsync-send-identifies',
        'raw-identifies',
      ],
      log: (line) => process.stderr.write(`${line}\n`),
    });
  } finally {
    await amplitude.stop();
  }
  const by = (side: Side): SideResult => results.find((r) => r.side === side)!;
  const overSdk = round(by('ampsync-events').rowsPerSecond / by('sdk-events').rowsPerSecond, 2);
  const ofRaw = round(by('ampsync-events').rowsPerSecond / by('raw-events').rowsPerSecond, 2);
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    rows,
    sdkRows,
    ...SEND_SETTINGS,
    results,
    eventsAmpsyncOverSdk: overSdk,
    eventsAmpsyncOfRaw: ofRaw,
  };
  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'amplitude-send.json'), `${JSON.stringify(report, null, 2)}\n`);
  const table = [
    `# Amplitude send benchmark`,
    '',
    `${report.date} · Node ${report.node} · ${report.cpus} × ${report.cpuModel} · emulator process with ` +
      `storeEvents: false · ${BATCH_ROWS} rows per request, ${IN_FLIGHT_REQUESTS} requests in flight`,
    '',
    '| side | rows | delivered | seconds | rows/s | peak RSS (MB) | requests |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.side} | ${r.rows} | ${r.delivered} | ${r.seconds} | ${r.rowsPerSecond} | ${r.peakRssMb} | ${r.requests} |`,
    ),
    '',
    `Events: ampsync / SDK = **${overSdk}×**, ampsync / raw POST = **${ofRaw}**.`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'amplitude-send.md'), table);
  console.log(table);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}

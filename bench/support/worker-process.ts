/**
 * A real ampsync worker alone in its own process, so its peak RSS is its own: `node --import tsx worker-process.ts`.
 * Models come from GeneratedSource; the workflow bundle is prebuilt by the parent (no webpack in this process).
 * Prints `@ready {"pid":N}` once polling; SIGTERM shuts it down gracefully.
 *
 * Environment: BENCH_TEMPORAL_ADDRESS, BENCH_TASK_QUEUE, BENCH_STATE (state store URL), BENCH_BUNDLE (path of the
 * workflow bundle), BENCH_MAX_ACTIVITIES (concurrent activities, default the worker's), BENCH_MEMORY_LOG (a file
 * to append `process.memoryUsage()` to every second, in MB, for design work).
 */
import * as fs from 'node:fs';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { createAmpsyncWorker } from '../../src/worker/worker';
import { GeneratedSource } from './generated-source';
import { requiredEnv } from './processes';

async function main(): Promise<void> {
  Runtime.install({
    logger: new DefaultLogger('WARN', (entry) => process.stderr.write(`[worker ${entry.level}] ${entry.message}\n`)),
    telemetryOptions: { logging: { filter: { core: 'WARN', other: 'WARN' }, forward: {} } },
  });
  // with a warehouse folder the generated models also stand in for BigQuery's warehouse-side diff
  const generated = new GeneratedSource(process.env.BENCH_WAREHOUSE_DIR || undefined);
  const maxActivities = process.env.BENCH_MAX_ACTIVITIES;
  const w = await createAmpsyncWorker({
    address: requiredEnv('BENCH_TEMPORAL_ADDRESS'),
    taskQueue: requiredEnv('BENCH_TASK_QUEUE'),
    state: requiredEnv('BENCH_STATE'),
    sourceFor: () => generated,
    payloadCodec: null,
    shutdownGraceTimeMs: 5_000,
    ...(maxActivities !== undefined ? { maxConcurrentActivities: Number(maxActivities) } : {}),
    workerOptions: { workflowBundle: { codePath: requiredEnv('BENCH_BUNDLE') } },
  });
  const memoryLog = process.env.BENCH_MEMORY_LOG;
  if (memoryLog !== undefined && memoryLog !== '') {
    const mb = (n: number): number => Math.round(n / 1e5) / 10;
    setInterval(() => {
      const m = process.memoryUsage();
      const line = { at: Date.now(), rss: mb(m.rss), heapTotal: mb(m.heapTotal), heapUsed: mb(m.heapUsed) };
      fs.appendFileSync(memoryLog, `${JSON.stringify({ ...line, external: mb(m.external) })}\n`);
    }, 1000).unref();
  }
  const stop = (): void => void w.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const running = w.run();
  process.stdout.write(`@ready ${JSON.stringify({ pid: process.pid })}\n`);
  await running;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench worker failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

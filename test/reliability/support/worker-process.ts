/**
 * A real ampsync worker in its own process, so a test can SIGKILL it: `node --import tsx worker-process.ts`.
 * Models come from GeneratedSource (the same rows in every process); the state store is the file
 * shared by every worker of the test. It prints `@ready` once polling and, with RELIABILITY_MARKERS=1, one line
 * `@<step> {json}` before and after each state-store call and activity, which is where the test aims its kills.
 * Logs (the SDK's and the Rust core's) go to stderr as JSON lines, for the secret scan.
 *
 * Environment: RELIABILITY_TEMPORAL_ADDRESS, RELIABILITY_TASK_QUEUE, RELIABILITY_STATE, RELIABILITY_BUNDLE (path of
 * a prebuilt workflow bundle), RELIABILITY_PAGE_SIZE, RELIABILITY_REQUEST_TIMEOUT_MS, RELIABILITY_LOG_LEVEL.
 */
import type { ActivityInboundCallsInterceptor, ActivityExecuteInput, Next } from '@temporalio/worker';
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import { openStateStore } from '../../../src/state';
import type { StateStore } from '../../../src/state/types';
import { createAmpsyncWorker } from '../../../src/worker/worker';
import { GeneratedSource } from './generated-source';

const env = process.env;
const markers = env.RELIABILITY_MARKERS === '1';
const level = (env.RELIABILITY_LOG_LEVEL ?? 'WARN') as LogLevel;

function mark(step: string, detail: Record<string, unknown> = {}): void {
  if (markers) process.stdout.write(`@${step} ${JSON.stringify(detail)}\n`);
}

/** What a state call is about, for the marker (never row data). */
function describeCall(method: string, args: unknown[]): Record<string, unknown> {
  const [first, , third] = args;
  if (method === 'stagePage') return { page: (first as { cursor: { page: number } }).cursor.page };
  if (method === 'commitChunk' || method === 'readChunk') return { chunk: third };
  if (method === 'recordOutcomes') return { rows: (third as unknown[]).length };
  return {};
}

/** Emits a marker before and after every call of the store. */
function marked(store: StateStore): StateStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      const method = String(prop);
      return async (...args: unknown[]) => {
        const detail = describeCall(method, args);
        mark(`state:${method}:begin`, detail);
        const result: unknown = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        mark(`state:${method}:end`, detail);
        return result;
      };
    },
  });
}

/** Marks the start and the end of each activity (the end: the result is not yet reported to Temporal). */
class MarkingInterceptor implements ActivityInboundCallsInterceptor {
  constructor(private readonly type: string) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    mark(`activity:${this.type}:begin`);
    const result = await next(input);
    mark(`activity:${this.type}:end`);
    return result;
  }
}

async function main(): Promise<void> {
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => {
      process.stderr.write(`${JSON.stringify({ level: entry.level, message: entry.message, meta: entry.meta })}\n`);
    }),
    telemetryOptions: { logging: { filter: { core: level, other: 'WARN' }, forward: {} } },
  });
  const stateUrl = env.RELIABILITY_STATE;
  if (stateUrl === undefined) throw new Error('RELIABILITY_STATE is not set');
  const state = marked(openStateStore(stateUrl));
  const generated = new GeneratedSource();
  const w = await createAmpsyncWorker({
    address: env.RELIABILITY_TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    taskQueue: env.RELIABILITY_TASK_QUEUE ?? 'reliability',
    state,
    sourceFor: () => generated,
    pageSize: Number(env.RELIABILITY_PAGE_SIZE ?? 2000),
    requestTimeoutMs: Number(env.RELIABILITY_REQUEST_TIMEOUT_MS ?? 10_000),
    maxThrottleWaitMs: 20_000,
    shutdownGraceTimeMs: 1_000,
    workerOptions: {
      ...(env.RELIABILITY_BUNDLE !== undefined ? { workflowBundle: { codePath: env.RELIABILITY_BUNDLE } } : {}),
      // a replacement worker picks up the workflow soon after its predecessor's sticky queue goes quiet
      stickyQueueScheduleToStartTimeout: '1s',
      interceptors: {
        activity: [(ctx) => ({ inbound: new MarkingInterceptor(ctx.info.activityType) })],
      },
    },
  });
  const stop = (): void => void w.shutdown();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const running = w.run();
  process.stdout.write(`@ready ${JSON.stringify({ pid: process.pid })}\n`);
  await running;
  await state.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`worker process failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

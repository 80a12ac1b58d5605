/**
 * The ampsync worker: one process hosts the sync workflows and activities for any number of syncs.
 * Temporal connection from the standard environment; state store from AMPSYNC_STATE.
 *
 *   const { worker, shutdown } = await createAmpsyncWorker({ taskQueue: 'ampsync' });
 *   await worker.run();
 */
import type { LogLevel, LogMetadata, Logger, PayloadCodec } from '@temporalio/common';
import { NativeConnection, Runtime, Worker, bundleWorkflowCode, type WorkerOptions } from '@temporalio/worker';
import { codecFromEnv, ENCODED_FAILURES_PATH } from '../temporal/codec';
import { DEFAULT_TASK_QUEUE } from '../temporal/names';
import { temporalTarget } from '../temporal/connection';
import { AmpsyncPlugin, WORKFLOWS_PATH, type AmpsyncPluginOptions } from './plugin';

export interface AmpsyncWorkerOptions extends AmpsyncPluginOptions {
  taskQueue?: string;
  address?: string;
  namespace?: string;
  /** Activities (chunks, extractions) run at once by this worker (default 8). */
  maxConcurrentActivities?: number;
  /** Workflow tasks run at once (default 10). */
  maxConcurrentWorkflowTasks?: number;
  /** How long in-flight activities may finish after a shutdown request (default 30 s). */
  shutdownGraceTimeMs?: number;
  /**
   * Encrypts payloads, failure messages and stack traces (default: the codec AMPSYNC_CODEC_KEY /
   * AMPSYNC_CODEC_KEY_FILE configure; null for none).
   */
  payloadCodec?: PayloadCodec | null;
  /**
   * Extra Worker options (e.g. interceptors, or a prebuilt workflowBundle: with the codec, bundle it with
   * `failureConverterPath: ENCODED_FAILURES_PATH`).
   */
  workerOptions?: Partial<WorkerOptions>;
}

export interface AmpsyncWorker {
  worker: Worker;
  plugin: AmpsyncPlugin;
  taskQueue: string;
  /** Stops polling, lets in-flight work finish (up to the grace time), closes the connection and state store. */
  shutdown(): Promise<void>;
  /** Runs until shutdown; closes everything afterwards. */
  run(): Promise<void>;
}

/**
 * The SDK's logger without its info and lower messages: the bundler reports every build at info level as webpack's
 * module listing (~20 lines on each worker start), and its warnings and errors are what matters.
 */
function warningsOnly(logger: Logger): Logger {
  const forward = (level: LogLevel, message: string, meta?: LogMetadata): void => {
    if (level === 'WARN' || level === 'ERROR') logger.log(level, message, meta);
  };
  return {
    log: forward,
    trace: () => undefined,
    debug: () => undefined,
    info: () => undefined,
    warn: (message, meta) => forward('WARN', message, meta),
    error: (message, meta) => forward('ERROR', message, meta),
  };
}

/**
 * ampsync's workflows bundled as the worker would bundle them from `workflowsPath` (with the failure converter
 * when payloads are encrypted), but quietly; a worker given its own workflows, workflow interceptors, bundler
 * options or plugins (which may configure the bundle) bundles them itself, as the SDK does.
 */
async function quietWorkflowBundle(
  extra: Partial<WorkerOptions> | undefined,
  encodedFailures: boolean,
): Promise<{ workflowBundle: { code: string } } | Record<string, never>> {
  const own =
    extra?.workflowsPath !== undefined ||
    extra?.workflowBundle !== undefined ||
    extra?.bundlerOptions !== undefined ||
    extra?.plugins !== undefined ||
    (extra?.interceptors?.workflowModules?.length ?? 0) > 0;
  if (own) return {};
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    ...(encodedFailures ? { failureConverterPath: ENCODED_FAILURES_PATH } : {}),
    logger: warningsOnly(Runtime.instance().logger),
  });
  return { workflowBundle: { code } };
}

/** Connects to Temporal and builds a worker with the ampsync plugin. */
export async function createAmpsyncWorker(options: AmpsyncWorkerOptions = {}): Promise<AmpsyncWorker> {
  const target = temporalTarget({
    ...(options.address !== undefined ? { address: options.address } : {}),
    ...(options.namespace !== undefined ? { namespace: options.namespace } : {}),
  });
  const codec = options.payloadCodec === undefined ? codecFromEnv() : options.payloadCodec;
  const connection = await NativeConnection.connect({
    address: target.address,
    ...(target.apiKey !== undefined ? { apiKey: target.apiKey } : {}),
    ...(target.tls !== undefined ? { tls: target.tls } : {}),
  });
  const plugin = new AmpsyncPlugin(options);
  const taskQueue = options.taskQueue ?? process.env.AMPSYNC_TASK_QUEUE ?? DEFAULT_TASK_QUEUE;
  let worker: Worker;
  try {
    const bundle = await quietWorkflowBundle(options.workerOptions, codec !== null && codec !== undefined);
    worker = await Worker.create({
      connection,
      namespace: target.namespace,
      taskQueue,
      ...bundle,
      maxConcurrentActivityTaskExecutions: options.maxConcurrentActivities ?? 8,
      maxConcurrentWorkflowTaskExecutions: options.maxConcurrentWorkflowTasks ?? 10,
      shutdownGraceTime: options.shutdownGraceTimeMs ?? 30_000,
      // with the codec, failure messages and stack traces are encrypted too (in the workflow bundle as well)
      ...(codec ? { dataConverter: { payloadCodecs: [codec], failureConverterPath: ENCODED_FAILURES_PATH } } : {}),
      ...options.workerOptions,
      // plugins given in workerOptions run beside ampsync's, not instead of it
      plugins: [plugin, ...(options.workerOptions?.plugins ?? [])],
    });
  } catch (err) {
    await plugin.close();
    await connection.close();
    throw err;
  }
  let closed: Promise<void> | undefined;
  const closeAll = async (): Promise<void> => {
    closed ??= (async () => {
      await plugin.close();
      await connection.close();
    })();
    return closed;
  };
  return {
    worker,
    plugin,
    taskQueue,
    shutdown() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      return Promise.resolve();
    },
    async run() {
      try {
        await worker.run();
      } finally {
        await closeAll();
      }
    },
  };
}

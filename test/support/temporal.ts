/** Workflow tests run on the real dev server (started by global-setup), with a worker in the test process. */
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { AmpsyncPlugin, WORKFLOWS_PATH, type AmpsyncPluginOptions } from '../../src/worker/plugin';
import { AmpsyncClient } from '../../src/client/client';
import { services, uniqueName } from './env';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** The workflow bundle, built once per test file (bundling takes seconds). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger });
  return bundle;
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

export interface Harness {
  env: TestWorkflowEnvironment;
  taskQueue: string;
  client: AmpsyncClient;
  /** Starts a worker with the plugin on this harness's task queue; stop it with the returned function. */
  startWorker(
    options: AmpsyncPluginOptions,
  ): Promise<{ worker: Worker; plugin: AmpsyncPlugin; stop: () => Promise<void> }>;
  close(): Promise<void>;
}

export async function createHarness(): Promise<Harness> {
  const env = await TestWorkflowEnvironment.createFromExistingServer({ address: services.temporalAddress });
  const taskQueue = uniqueName('tq');
  const client = new AmpsyncClient({ client: env.client, taskQueue });
  return {
    env,
    taskQueue,
    client,
    async startWorker(options) {
      const plugin = new AmpsyncPlugin(options);
      const worker = await Worker.create({
        connection: env.nativeConnection,
        taskQueue,
        workflowBundle: await workflowBundle(),
        plugins: [plugin],
        maxConcurrentActivityTaskExecutions: 8,
      });
      const running = worker.run();
      return {
        worker,
        plugin,
        async stop() {
          if (worker.getState() === 'RUNNING') worker.shutdown();
          await running;
          await plugin.close();
        },
      };
    },
    async close() {
      await env.teardown();
    },
  };
}

/**
 * The failure a failed run ended with: a WorkflowFailedError's cause, unwrapped from its ActivityFailure (a local
 * activity's failure fails the workflow unwrapped, an activity's comes inside one). Throws for anything else.
 */
export function runFailureCause(err: unknown): ApplicationFailure {
  if (!(err instanceof WorkflowFailedError)) throw new Error(`expected a WorkflowFailedError, got ${String(err)}`);
  const failure = err.cause instanceof ActivityFailure ? err.cause.cause : err.cause;
  if (!(failure instanceof ApplicationFailure))
    throw new Error(`expected an ApplicationFailure, got ${String(failure)}`);
  return failure;
}

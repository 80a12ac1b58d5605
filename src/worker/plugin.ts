/**
 * ampsync as a Temporal plugin: add it to a worker you already run and it registers ampsync's activities
 * (and its workflows, when your worker has no workflowsPath of its own; otherwise re-export them from your
 * workflows file: `export * from 'ampsync/workflows'`).
 *
 *   const worker = await Worker.create({ connection, taskQueue: 'ampsync', plugins: [new AmpsyncPlugin()] });
 */
import { SimplePlugin } from '@temporalio/plugin';
import type { WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../../activities/sync-activities';
import type { SyncActivities } from '../../activities/types';
import { createActivityDeps, type ActivityDepsOptions, type OwnedActivityDeps } from './deps';

export type AmpsyncPluginOptions = ActivityDepsOptions;

/** Path of the workflows module (compiled or TypeScript, whichever is running). */
export const WORKFLOWS_PATH = require.resolve('../../workflows');

export class AmpsyncPlugin extends SimplePlugin {
  readonly activities: SyncActivities;
  private readonly deps: OwnedActivityDeps;

  constructor(options: AmpsyncPluginOptions = {}) {
    const deps = createActivityDeps(options);
    const activities = createActivities(deps);
    super({
      name: 'ampsync',
      activities: { ...activities },
    });
    this.deps = deps;
    this.activities = activities;
  }

  /** Adds ampsync's workflows unless the worker brings its own workflowsPath or a prebuilt bundle. */
  override configureWorker(options: WorkerOptions): WorkerOptions {
    const configured = super.configureWorker(options);
    if (configured.workflowsPath !== undefined || configured.workflowBundle !== undefined) return configured;
    return { ...configured, workflowsPath: WORKFLOWS_PATH };
  }

  /** Closes the state store and HTTP pools (after the worker has shut down). */
  async close(): Promise<void> {
    await this.deps.close();
  }
}

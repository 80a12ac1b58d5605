/**
 * What a Temporal Schedule starts: it runs the sync as a child with the sync's own workflow id
 * (`ampsync/<sync>`), so a scheduled run never overlaps a manual one; a still-running sync means "skipped".
 */
import { executeChild, log, workflowInfo } from '@temporalio/workflow';
import { syncWorkflowId } from '../src/temporal/names';
import { SA_OBJECT, SA_STATUS, SA_SYNC_ID } from '../src/temporal/search-attributes';
import type { ScheduledSyncInput, ScheduledSyncResult } from './definitions';
import { syncWorkflow } from './sync-workflow';

export async function scheduledSyncWorkflow(input: ScheduledSyncInput): Promise<ScheduledSyncResult> {
  const { sync } = input;
  try {
    const result = await executeChild(syncWorkflow, {
      workflowId: syncWorkflowId(sync.id),
      taskQueue: input.taskQueue ?? workflowInfo().taskQueue,
      args: [{ sync, trigger: 'schedule' }],
      memo: { syncId: sync.id, object: sync.object, trigger: 'schedule' },
      typedSearchAttributes: [
        { key: SA_SYNC_ID, value: sync.id },
        { key: SA_OBJECT, value: sync.object },
        { key: SA_STATUS, value: 'running' },
      ],
      staticSummary: `ampsync ${sync.object} sync "${sync.id}" (scheduled)`,
    });
    return { outcome: 'ran', result };
  } catch (err) {
    // branch on the failure's name, not its class: realms differ in the sandbox
    if (err instanceof Error && err.name === 'WorkflowExecutionAlreadyStartedError') {
      log.info('a run of this sync is still going: skipped', { syncId: sync.id });
      return { outcome: 'skipped' };
    }
    throw err;
  }
}

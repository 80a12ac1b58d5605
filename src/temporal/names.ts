/** Names shared by the worker, the client and the workflows. Workflow-safe (no I/O). */

/** Default task queue of ampsync workers. */
export const DEFAULT_TASK_QUEUE = 'ampsync';

/** One workflow id per sync, so two runs of a sync never overlap. */
export const syncWorkflowId = (syncId: string): string => `ampsync/${syncId}`;

/** One Temporal Schedule per scheduled sync. */
export const syncScheduleId = (syncId: string): string => `ampsync/${syncId}`;

/** Memo key marking schedules that `ampsync apply` manages (others are never touched). */
export const MANAGED_SCHEDULE_MEMO = 'ampsyncManaged';

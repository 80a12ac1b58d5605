/** The workflow-safe surface of ampsync: workflows plus their queries, signals and types. */
export { syncWorkflow } from './sync-workflow';
export { scheduledSyncWorkflow } from './scheduled-sync-workflow';
export * from './definitions';

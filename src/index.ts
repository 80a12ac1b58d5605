/**
 * ampsync: reverse ETL from BigQuery to Amplitude as durable Temporal workflows.
 *
 *   import { AmpsyncClient, loadSyncsFile, findSync } from 'ampsync';
 *   const sync = findSync(loadSyncsFile('ampsync.yaml'), 'users');
 *   const ampsync = await AmpsyncClient.connect();
 *   const result = await ampsync.run(sync, { onProgress: (p) => console.log(p.phase, p.chunksDone) });
 *
 * Workers: `createAmpsyncWorker()` runs one; `new AmpsyncPlugin()` adds ampsync to a worker you already run.
 * Workflow-safe exports (for a workflows file of your own) live in `ampsync/workflows`.
 */
export { AmpsyncClient, SyncAlreadyRunningError, SyncNotFoundError, describeSync } from './client/client';
export type { AmpsyncClientOptions, ApplyResult, ConnectOptions, RunListing, RunOptions } from './client/client';
export { ConfigError, SecretError, findSync, loadSyncsFile, parseSyncsFile, resolveSecret } from './config/load';
export type { SyncsFile } from './config/load';
export { syncSchema, syncsFileSchema } from './config/schema';
export type { Mapping, SyncConfig, SyncConfigInput, SyncObject, SyncOptions } from './config/schema';
export { createAmpsyncWorker } from './worker/worker';
export type { AmpsyncWorker, AmpsyncWorkerOptions } from './worker/worker';
export { AmpsyncPlugin, WORKFLOWS_PATH } from './worker/plugin';
export { AesGcmPayloadCodec, codecFromEnv, ENCODED_FAILURES_PATH } from './temporal/codec';
export type { AmpsyncPluginOptions } from './worker/plugin';
export { openStateStore } from './state';
export type { StateStore, RunRecord, RejectedRow } from './state/types';
export type { Source, SourceRow, SourceField, RunCounts } from './sync/types';
export type { SyncProgress, SyncWorkflowInput, SyncWorkflowResult } from '../workflows/definitions';

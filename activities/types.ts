/**
 * One named input and one named result type per activity: inputs can grow without breaking running histories.
 * Between steps only references and counts travel (sync, run, chunk numbers), never rows.
 */
import type { SyncConfig } from '../src/config/schema';
import type { RunStatus } from '../src/state/types';
import type { RowRejection, RunCounts } from '../src/sync/types';

export interface PrepareRunInput {
  sync: SyncConfig;
  runId: string;
  workflowId: string;
}

export interface PrepareRunResult {
  /** Bytes the model will process (BigQuery dry run). */
  bytesProcessed: number;
  /** Columns of the model's result. */
  columns: string[];
}

export interface ExtractAndDiffInput {
  sync: SyncConfig;
  runId: string;
}

export interface ExtractAndDiffResult {
  counts: Pick<RunCounts, 'extracted' | 'invalid' | 'new' | 'changed' | 'unchanged' | 'gone'>;
  chunks: number;
  duplicateKeys: number;
  /** Up to 10 rejected keys with reasons (keys only: no row values). */
  sampleRejections: RowRejection[];
}

export interface SendChunkInput {
  sync: SyncConfig;
  runId: string;
  /** The first chunk to send. */
  chunk: number;
  /** Consecutive chunks from `chunk` to send and commit, one after another (default 1). */
  chunks?: number;
}

export interface SendChunkResult {
  /** The first chunk sent. */
  chunk: number;
  /** Rows sent in this attempt (rows delivered by an earlier attempt are not sent again). */
  attempted: number;
  delivered: number;
  rejected: number;
  deferred: number;
  requests: number;
  /** Ids Amplitude throttled (429) during these chunks, at most 20. */
  throttledIds: string[];
  /**
   * Each chunk's commit, in chunk order, made by the activity once every batch of the chunk was answered: its
   * delivered rows are synced state, its rejected rows filed. Counts cover the whole chunk, rows settled by earlier
   * attempts included. (A single commit, not a list, in results recorded by releases that sent one chunk per
   * activity.)
   */
  committed: CommitChunkResult[];
}

export interface CommitChunkInput {
  syncId: string;
  runId: string;
  chunk: number;
}

export interface CommitChunkResult {
  chunk: number;
  delivered: number;
  rejected: number;
  deferred: number;
  pending: number;
}

export interface FinishRunInput {
  syncId: string;
  runId: string;
  status: Exclude<RunStatus, 'running'>;
  counts: RunCounts;
  error?: string;
  /** The sync (no secrets: its API key is a reference): a sync diffed in the warehouse settles its snapshot. */
  sync?: SyncConfig;
}

export interface FinishRunResult {
  syncId: string;
  runId: string;
  status: RunStatus;
  counts: RunCounts;
  /** Keys delivered so far for this sync (after this run). */
  syncedKeys: number;
}

/** The activities of a sync, as the workflow sees them. */
export interface SyncActivities {
  prepareRun(input: PrepareRunInput): Promise<PrepareRunResult>;
  extractAndDiff(input: ExtractAndDiffInput): Promise<ExtractAndDiffResult>;
  sendChunk(input: SendChunkInput): Promise<SendChunkResult>;
  commitChunk(input: CommitChunkInput): Promise<CommitChunkResult>;
  finishRun(input: FinishRunInput): Promise<FinishRunResult>;
}

/** Stable failure types (ApplicationFailure.type) ampsync raises; branch on these, not on classes. */
export const FailureTypes = {
  /** The syncs file or mapping is wrong (e.g. a mapped column the model lacks). */
  config: 'AmpsyncConfigError',
  /** A referenced secret cannot be read on the worker. */
  secret: 'AmpsyncSecretError',
} as const;

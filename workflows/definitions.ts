/** Queries, signals and the input/result types of the sync workflows; shared with the client. Workflow-safe. */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { SyncConfig } from '../src/config/schema';
import type { RowRejection, RunCounts } from '../src/sync/types';

export type SyncPhase = 'preparing' | 'extracting' | 'sending' | 'finishing' | 'done';
export type SyncRunStatus = 'running' | 'paused' | 'succeeded' | 'failed' | 'cancelled';
export type SyncTrigger = 'manual' | 'schedule' | 'backfill' | 'client';

/** Where a run stands; answered by `progressQuery` at any time. */
export interface SyncProgress {
  syncId: string;
  runId: string;
  object: SyncConfig['object'];
  phase: SyncPhase;
  status: SyncRunStatus;
  paused: boolean;
  bytesProcessed: number | null;
  chunksTotal: number | null;
  chunksDone: number;
  counts: RunCounts;
  /** Ids Amplitude throttled during this run (at most 20). */
  throttledIds: string[];
  /** Up to 10 rejected keys with reasons. */
  sampleRejections: RowRejection[];
  /** Executions of this run so far (continue-as-new starts a new one). */
  executions: number;
}

/** State carried across continue-as-new. */
export interface SyncCarryOver {
  runId: string;
  chunksTotal: number;
  nextChunk: number;
  bytesProcessed: number;
  counts: RunCounts;
  sampleRejections: RowRejection[];
  throttledIds: string[];
  executions: number;
  paused: boolean;
}

export interface SyncWorkflowInput {
  sync: SyncConfig;
  trigger: SyncTrigger;
  /** Set by the workflow itself when it continues as new. */
  carryOver?: SyncCarryOver;
  /** Testing/ops knob: continue as new after this many chunks even when Temporal does not suggest it. */
  chunksPerExecution?: number;
  /** Ops knob: how soon a step lost with a crashed worker is tried again on another one. */
  activityTimeouts?: ActivityTimeouts;
}

/** Timeouts of the run's steps; a lost step is retried once its timeout passes. */
export interface ActivityTimeouts {
  /** Longest silence of a long step (extract, send) between heartbeats (default 2 minutes). */
  heartbeatMs?: number;
  /** Longest run of a short step (prepare, commit, finish) (default 10 minutes). */
  shortStepMs?: number;
}

export interface SyncWorkflowResult {
  syncId: string;
  runId: string;
  status: 'succeeded' | 'cancelled';
  counts: RunCounts;
  chunks: number;
  bytesProcessed: number;
  syncedKeys: number;
  sampleRejections: RowRejection[];
}

export interface ScheduledSyncInput {
  sync: SyncConfig;
  taskQueue?: string;
}

export interface ScheduledSyncResult {
  /** `skipped` when a run of the same sync was still going. */
  outcome: 'ran' | 'skipped';
  result?: SyncWorkflowResult;
}

export const progressQuery = defineQuery<SyncProgress>('progress');
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');

/**
 * Syncs over generated models, runs started with short step timeouts (so a step lost with a killed worker is
 * retried within seconds, not minutes), and the checks of "nothing lost" against the Amplitude emulator.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { syncSchema, type SyncConfig, type SyncConfigInput } from '../../../src/config/schema';
import type { AmplitudeEmulator } from '../../../src/emulator/amplitude';
import { syncWorkflowId } from '../../../src/temporal/names';
import type { ActivityTimeouts, SyncWorkflowInput } from '../../../workflows/definitions';
import type { syncWorkflow } from '../../../workflows';
import { workflowBundle } from '../../support/temporal';
import { eventRow, generatedModel, userRow, type GeneratedModel } from './generated-source';

/** Steps of a killed worker are retried after a few seconds (the defaults, minutes, suit real deployments). */
export const FAST_RECOVERY: ActivityTimeouts = { heartbeatMs: 3_000, shortStepMs: 6_000 };

let counter = 0;
/** A sync id unique to this process. */
export function uniqueSyncId(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/** Writes the workflow bundle once, for worker processes (bundling in each would take seconds per restart). */
export async function writeBundle(dir: string): Promise<string> {
  const bundle = await workflowBundle();
  const file = path.join(dir, 'workflow-bundle.js');
  fs.writeFileSync(file, bundle.code);
  return file;
}

export interface GeneratedSyncOptions {
  id: string;
  model: Pick<GeneratedModel, 'kind' | 'rows'> & Partial<GeneratedModel>;
  baseUrl: string;
  apiKeyEnv: string;
  options?: SyncConfigInput['options'];
}

/** A users or events sync over a generated model. */
export function generatedSync(o: GeneratedSyncOptions): SyncConfig {
  const users = o.model.kind === 'users';
  return syncSchema.parse({
    id: o.id,
    object: o.model.kind,
    source: { project: 'generated' },
    model: generatedModel(o.model),
    key: users ? 'user_id' : 'event_key',
    mappings: users
      ? [
          { from: 'user_id', to: 'user_id' },
          { from: 'email', to: 'user_properties.email' },
          { from: 'plan', to: 'user_properties.plan' },
          { from: 'ltv', to: 'user_properties.ltv' },
        ]
      : [
          { from: 'user_id', to: 'user_id' },
          { from: 'event_type', to: 'event_type' },
          { from: 'time', to: 'time' },
          { from: 'amount', to: 'event_properties.amount' },
        ],
    destination: { apiKey: { env: o.apiKeyEnv }, baseUrl: o.baseUrl },
    options: o.options ?? {},
  } satisfies SyncConfigInput);
}

/** Starts a run with the given step timeouts (AmpsyncClient.start with the ops knob set). */
export async function startRun(
  client: Client,
  taskQueue: string,
  sync: SyncConfig,
  extra: Partial<SyncWorkflowInput> = {},
): Promise<WorkflowHandle<typeof syncWorkflow>> {
  return client.workflow.start<typeof syncWorkflow>('syncWorkflow', {
    workflowId: syncWorkflowId(sync.id),
    taskQueue,
    args: [{ sync, trigger: 'manual', activityTimeouts: FAST_RECOVERY, ...extra }],
    workflowIdConflictPolicy: 'FAIL',
    // a workflow task held by a killed worker is handed to another one after this long
    workflowTaskTimeout: '5s',
    memo: { syncId: sync.id, object: sync.object },
  });
}

/** What Amplitude holds compared with a model: rows missing or different, insert_ids stored twice. */
export interface Delivery {
  rows: number;
  missing: string[];
  wrong: string[];
  duplicateInsertIds: number;
  /** Re-sent events Amplitude dropped as duplicates (retries after a crash or a lost answer). */
  dedupedResends: number;
}

/** Every user of the model must have exactly the model's properties. */
export function checkUsers(emulator: AmplitudeEmulator, apiKey: string, m: GeneratedModel): Delivery {
  const profiles = new Map(emulator.users(apiKey).map((u) => [u.user_id, u.user_properties]));
  const missing: string[] = [];
  const wrong: string[] = [];
  for (let i = 0; i < m.rows; i++) {
    const row = userRow(m, i);
    const props = profiles.get(row.user_id as string);
    if (props === undefined) missing.push(row.user_id as string);
    else if (props.email !== row.email || props.plan !== row.plan || props.ltv !== row.ltv)
      wrong.push(row.user_id as string);
  }
  return { rows: m.rows, missing, wrong, ...duplicates(emulator, apiKey) };
}

/** Every event of the model must be stored exactly once, with the model's values. */
export function checkEvents(emulator: AmplitudeEmulator, apiKey: string, m: GeneratedModel): Delivery {
  const byTime = new Map<number, Record<string, unknown>>();
  for (const e of emulator.events(apiKey)) if (typeof e.time === 'number') byTime.set(e.time, e);
  const missing: string[] = [];
  const wrong: string[] = [];
  for (let i = 0; i < m.rows; i++) {
    const row = eventRow(m, i);
    const stored = byTime.get(row.time as number);
    if (stored === undefined) missing.push(row.event_key as string);
    else if (
      stored.user_id !== row.user_id ||
      (stored.event_properties as { amount?: unknown })?.amount !== row.amount
    ) {
      wrong.push(row.event_key as string);
    }
  }
  return { rows: m.rows, missing, wrong, ...duplicates(emulator, apiKey) };
}

function duplicates(
  emulator: AmplitudeEmulator,
  apiKey: string,
): Pick<Delivery, 'duplicateInsertIds' | 'dedupedResends'> {
  const seen = new Set<string>();
  let duplicateInsertIds = 0;
  for (const e of emulator.events(apiKey)) {
    const id = String(e.insert_id);
    if (seen.has(id)) duplicateInsertIds += 1;
    seen.add(id);
  }
  return { duplicateInsertIds, dedupedResends: emulator.duplicatesDropped(apiKey) };
}

/** The line a reliability test file prints in its afterAll. */
export function summaryLine(area: string, figures: Record<string, number | string>): string {
  return `reliability ${area}: ${Object.entries(figures)
    .map(([k, v]) => `${k} ${v}`)
    .join(' · ')}`;
}

/**
 * syncWorkflow on the real dev server with a real worker, a real SQLite state store and the Amplitude
 * emulator; the warehouse is an in-memory Source (the BigQuery path is covered by test/e2e).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { syncSchema, type SyncConfig, type SyncConfigInput } from '../../src/config/schema';
import { startAmplitudeEmulator, type AmplitudeEmulator } from '../../src/emulator/amplitude';
import type { SourceRow } from '../../src/sync/types';
import { openStateStore } from '../../src/state';
import { syncWorkflowId } from '../../src/temporal/names';
import { SA_ROWS_DELIVERED, SA_STATUS } from '../../src/temporal/search-attributes';
import { createHarness, runFailureCause, workflowBundle, type Harness } from '../support/temporal';
import { field, MemorySource } from '../support/memory-source';

const API_KEY = 'test-key-workflows-0001';

let harness: Harness;
let emulator: AmplitudeEmulator;
let dir: string;

beforeAll(async () => {
  harness = await createHarness();
  emulator = await startAmplitudeEmulator({ port: 0, apiKeys: [API_KEY] });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-wf-'));
  process.env.AMPSYNC_TEST_AMPLITUDE_KEY = API_KEY;
});

afterAll(async () => {
  await emulator?.close();
  await harness?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => emulator.reset());

function syncOf(id: string, overrides: Partial<SyncConfigInput>): SyncConfig {
  return syncSchema.parse({
    id,
    object: 'users',
    source: { project: 'memory' },
    model: { sql: 'SELECT 1' },
    key: 'user_id',
    mappings: [
      { from: 'user_id', to: 'user_id' },
      { from: 'plan', to: 'user_properties.plan' },
      { from: 'ltv', to: 'user_properties.ltv' },
    ],
    destination: { apiKey: { env: 'AMPSYNC_TEST_AMPLITUDE_KEY' }, baseUrl: emulator.url },
    ...overrides,
  });
}

const userSchema = [field('user_id'), field('plan'), field('ltv', 'FLOAT64')];
const userRow =
  (version: (i: number) => number = () => 0) =>
  (i: number): SourceRow => ({
    user_id: `user-${String(i).padStart(7, '0')}`,
    plan: i % 3 === 0 ? 'pro' : 'free',
    ltv: i + version(i),
  });

async function withWorker<T>(source: MemorySource, state: string, body: () => Promise<T>): Promise<T> {
  const w = await harness.startWorker({ state, sourceFor: () => source, maxThrottleWaitMs: 2_000 });
  try {
    return await body();
  } finally {
    await w.stop();
  }
}

test('a users sync delivers every row, a second run sends nothing, a change sends only the change', async () => {
  const source = new MemorySource(userSchema, userRow(), 2_500);
  const state = `sqlite:${path.join(dir, 'users.db')}`;
  const sync = syncOf(uniqueSyncId('users'), { options: { chunkSize: 1000, batchSize: 500, concurrency: 2 } });
  await withWorker(source, state, async () => {
    const first = await harness.client.run(sync);
    expect(first.status).toBe('succeeded');
    expect(first.counts).toMatchObject({ extracted: 2500, new: 2500, changed: 0, delivered: 2500, rejected: 0 });
    expect(first.chunks).toBe(3);
    expect(emulator.eventCount()).toBe(2500);
    expect(emulator.user('user-0000003')?.user_properties).toEqual({ plan: 'pro', ltv: 3 });

    const second = await harness.client.run(sync);
    expect(second.counts).toMatchObject({ extracted: 2500, new: 0, changed: 0, unchanged: 2500, delivered: 0 });
    expect(emulator.eventCount()).toBe(2500);

    source.setRows(
      userRow((i) => (i === 7 || i === 8 ? 1000 : 0)),
      2_501,
    );
    const third = await harness.client.run(sync);
    expect(third.counts).toMatchObject({ new: 1, changed: 2, delivered: 3, unchanged: 2498 });
    expect(emulator.user('user-0000007')?.user_properties).toEqual({ plan: 'free', ltv: 1007 });
  });
});

test('a one-chunk run keeps a short history: local prepare and finish, memo and search attributes from the start', async () => {
  const source = new MemorySource(userSchema, userRow(), 900);
  const state = `sqlite:${path.join(dir, 'short-history.db')}`;
  const sync = syncOf(uniqueSyncId('short-history'), { options: { chunkSize: 1000, batchSize: 500, concurrency: 4 } });
  await withWorker(source, state, async () => {
    const handle = await harness.client.start(sync);
    const result = await handle.result();
    expect(result.counts).toMatchObject({ new: 900, delivered: 900 });
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    const types = events.map((e) => temporal.api.enums.v1.EventType[e.eventType ?? 0]);
    const count = (type: string): number => types.filter((t) => t?.endsWith(type) === true).length;
    // extract and the chunk's send are activities; prepare and finish are markers; one upsert, at the end
    expect(count('ACTIVITY_TASK_SCHEDULED')).toBe(2);
    expect(count('MARKER_RECORDED')).toBe(2);
    expect(count('UPSERT_WORKFLOW_SEARCH_ATTRIBUTES')).toBe(1);
    expect(count('WORKFLOW_PROPERTIES_MODIFIED')).toBe(0);
    expect(events.length).toBeLessThanOrEqual(20);
    const described = await handle.describe();
    expect(described.memo).toMatchObject({ syncId: sync.id, object: 'users', trigger: 'client' });
    expect(described.typedSearchAttributes.get(SA_STATUS)).toBe('succeeded');
    expect(described.typedSearchAttributes.get(SA_ROWS_DELIVERED)).toBe(900);
  });
});

test('send activities take up to chunksPerActivity chunks each, and spread a small run over concurrency', async () => {
  const source = new MemorySource(userSchema, userRow(), 2_500);
  const state = `sqlite:${path.join(dir, 'chunks-per-activity.db')}`;
  const sendActivities = async (handle: WorkflowHandle): Promise<number> => {
    const history = await handle.fetchHistory();
    return (history.events ?? []).filter(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'sendChunk',
    ).length;
  };
  await withWorker(source, state, async () => {
    // 25 chunks, 4 per activity: 7 activities (the last sends one chunk)
    const big = syncOf(uniqueSyncId('per-activity'), {
      options: { chunkSize: 100, batchSize: 50, concurrency: 2, chunksPerActivity: 4 },
    });
    const bigRun = await harness.client.start(big);
    const bigResult = await bigRun.result();
    expect(bigResult).toMatchObject({ status: 'succeeded', chunks: 25 });
    expect(bigResult.counts).toMatchObject({ new: 2500, delivered: 2500, rejected: 0, deferred: 0 });
    expect(await sendActivities(bigRun)).toBe(7);
    expect((await harness.client.progress(big.id))?.chunksDone).toBe(25);

    // 6 chunks, 5 per activity but 4 at once: 2 per activity, so that 3 activities share the work
    source.setRows(userRow(), 600);
    const small = syncOf(uniqueSyncId('per-activity-small'), {
      options: { chunkSize: 100, batchSize: 50, concurrency: 4, chunksPerActivity: 5 },
    });
    const smallRun = await harness.client.start(small);
    expect((await smallRun.result()).counts).toMatchObject({ new: 600, delivered: 600 });
    expect(await sendActivities(smallRun)).toBe(3);
    expect(emulator.eventCount()).toBe(3100);
  });
});

test('the progress query answers during a run, and search attributes record the outcome', async () => {
  const source = new MemorySource(userSchema, userRow(), 3_000);
  const state = `sqlite:${path.join(dir, 'progress.db')}`;
  const sync = syncOf(uniqueSyncId('progress'), { options: { chunkSize: 100, batchSize: 100, concurrency: 1 } });
  emulator.latency({ ms: 30 });
  await withWorker(source, state, async () => {
    const handle = await harness.client.start(sync);
    let seen: Awaited<ReturnType<typeof harness.client.progress>> = null;
    for (let i = 0; i < 100 && !(seen?.phase === 'sending' && seen.chunksDone > 0); i++) {
      seen = await harness.client.progress(sync.id);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).toMatchObject({ syncId: sync.id, phase: 'sending', chunksTotal: 30 });
    expect(seen!.chunksDone).toBeGreaterThan(0);
    await handle.result();
    const described = await handle.describe();
    expect(described.typedSearchAttributes.get(SA_STATUS)).toBe('succeeded');
  });
  emulator.clearFaults();
});

test('a second start of a running sync fails clearly, and cancel then rerun delivers every row exactly once', async () => {
  const source = new MemorySource(userSchema, userRow(), 4_000);
  const state = `sqlite:${path.join(dir, 'cancel.db')}`;
  // 40 chunks in 8 send activities of 5, two at a time: the cancel lands with most of them never started
  const sync = syncOf(uniqueSyncId('cancel'), { options: { chunkSize: 100, batchSize: 100, concurrency: 2 } });
  emulator.latency({ ms: 150 });
  await withWorker(source, state, async () => {
    const handle = await harness.client.start(sync);
    await expect(harness.client.start(sync)).rejects.toMatchObject({ name: 'SyncAlreadyRunningError' });
    for (let i = 0; i < 100; i++) {
      const p = await harness.client.progress(sync.id);
      if (p && p.chunksDone >= 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await harness.client.cancel(sync.id);
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    const partial = emulator.eventCount();
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(4000);
    emulator.clearFaults();

    const rerun = await harness.client.run(sync);
    expect(rerun.status).toBe('succeeded');
    // every profile in the model's state; rows committed before the cancel were not sent again
    expect(rerun.counts.delivered + rerun.counts.unchanged).toBe(4000);
    for (const i of [0, 1999, 3999])
      expect(emulator.user(`user-${String(i).padStart(7, '0')}`)?.user_properties).toEqual({
        plan: i % 3 === 0 ? 'pro' : 'free',
        ltv: i,
      });
  });
});

test('an events sync cancelled mid-run, then run again, delivers every event exactly once', async () => {
  const eventRow = (i: number): SourceRow => ({
    id: `evt-${i}`,
    user_id: `user-${String(i % 97).padStart(7, '0')}`,
    kind: i % 2 ? 'Opened' : 'Closed',
  });
  const source = new MemorySource([field('id'), field('user_id'), field('kind')], eventRow, 3_000);
  const state = `sqlite:${path.join(dir, 'cancel-events.db')}`;
  const sync = syncOf(uniqueSyncId('cancel-events'), {
    object: 'events',
    key: 'id',
    mappings: [
      { from: 'user_id', to: 'user_id' },
      { from: 'kind', to: 'event_type' },
    ],
    // 30 chunks in 6 send activities of 5, two at a time
    options: { chunkSize: 100, batchSize: 100, concurrency: 2 },
  });
  emulator.latency({ ms: 150 });
  await withWorker(source, state, async () => {
    const handle = await harness.client.start(sync);
    for (let i = 0; i < 100 && ((await harness.client.progress(sync.id))?.chunksDone ?? 0) < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await harness.client.cancel(sync.id);
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    expect(emulator.eventCount()).toBeLessThan(3000);
    emulator.clearFaults();
    const rerun = await harness.client.run(sync);
    expect(rerun.status).toBe('succeeded');
    expect(emulator.eventCount()).toBe(3000);
    const insertIds = new Set(emulator.events().map((e) => e.insert_id));
    expect(insertIds.size).toBe(3000);
    // only requests in flight at the cancel can be sent again (Amplitude dedups them by insert_id)
    expect(emulator.duplicatesDropped()).toBeLessThan(3000);
    expect(emulator.duplicatesDropped()).toBeLessThanOrEqual(2 * 6 * 100); // activities × batches in flight × rows
  });
});

test('pause holds new chunks (in-flight activities finish theirs and commit them), resume finishes the run', async () => {
  // 20 chunks, 5 per send activity, one activity at a time: the pause lands while the second activity runs
  const source = new MemorySource(userSchema, userRow(), 4_000);
  const state = `sqlite:${path.join(dir, 'pause.db')}`;
  const sync = syncOf(uniqueSyncId('pause'), { options: { chunkSize: 200, batchSize: 100, concurrency: 1 } });
  emulator.latency({ ms: 30 });
  await withWorker(source, state, async () => {
    const handle = await harness.client.start(sync);
    for (let i = 0; i < 100 && ((await harness.client.progress(sync.id))?.chunksDone ?? 0) < 1; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await harness.client.pause(sync.id);
    let paused = await harness.client.progress(sync.id);
    for (let i = 0; i < 100 && paused?.status !== 'paused'; i++) paused = await harness.client.progress(sync.id);
    // the activity in flight when the pause arrived still sends and commits its chunks; then nothing moves
    await new Promise((r) => setTimeout(r, 1_000));
    const held = await harness.client.progress(sync.id);
    await new Promise((r) => setTimeout(r, 1_000));
    const stillHeld = await harness.client.progress(sync.id);
    expect(stillHeld).toMatchObject({ status: 'paused', paused: true, chunksDone: held!.chunksDone });
    expect(stillHeld!.chunksDone % 5).toBe(0);
    expect(stillHeld!.chunksDone).toBeLessThan(20);
    expect(emulator.eventCount()).toBe(stillHeld!.counts.delivered);
    expect((await handle.describe()).typedSearchAttributes.get(SA_STATUS)).toBe('paused');

    await harness.client.resume(sync.id);
    const result = await handle.result();
    expect(result.counts).toMatchObject({ delivered: 4000, rejected: 0 });
  });
  emulator.clearFaults();
});

test('a mapping to a column the model lacks fails fast with a non-retryable failure naming the column', async () => {
  const source = new MemorySource(userSchema, userRow(), 10);
  const state = `sqlite:${path.join(dir, 'bad.db')}`;
  const sync = syncOf(uniqueSyncId('bad'), {
    mappings: [
      { from: 'user_id', to: 'user_id' },
      { from: 'no_such_column', to: 'user_properties.x' },
    ],
  });
  await withWorker(source, state, async () => {
    const cause = runFailureCause(await harness.client.run(sync).catch((e: unknown) => e));
    expect(cause.nonRetryable).toBe(true);
    expect(cause.message).toContain('no_such_column');
  });
  // the failed run is in the state store's run log (`ampsync runs`), with the reason
  const store = openStateStore(state);
  try {
    await store.migrate();
    const [logged] = await store.listRuns(sync.id, 1);
    expect(logged).toMatchObject({ status: 'failed' });
    expect(logged?.error).toContain('no_such_column');
  } finally {
    await store.close();
  }
});

test('a 200,000-row sync continues as new and finishes correctly; its history replays deterministically', async () => {
  const source = new MemorySource(userSchema, userRow(), 200_000);
  const state = `sqlite:${path.join(dir, 'big.db')}`;
  const sync = syncOf(uniqueSyncId('big'), { options: { chunkSize: 5000, batchSize: 1000, concurrency: 4 } });
  const storeEvents = emulator;
  await withWorker(source, state, async () => {
    const handle = await harness.client.start(sync, { chunksPerExecution: 15 });
    const result = await harness.client.follow(handle);
    expect(result.counts).toMatchObject({ extracted: 200_000, new: 200_000, delivered: 200_000, rejected: 0 });
    expect(storeEvents.eventCount()).toBe(200_000);
    const progress = await harness.client.progress(sync.id);
    expect(progress?.executions).toBeGreaterThanOrEqual(3);

    const histories = [];
    for await (const h of harness.env.client.workflow
      .list({ query: `WorkflowId = '${syncWorkflowId(sync.id)}'` })
      .intoHistories()) {
      histories.push(h);
    }
    expect(histories.length).toBeGreaterThanOrEqual(3);
    const replay = Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, histories);
    for await (const r of replay) expect(r.error).toBeUndefined();
  });
});

let counter = 0;
function uniqueSyncId(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

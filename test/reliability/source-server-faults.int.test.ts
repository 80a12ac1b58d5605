/**
 * Source and server faults: the BigQuery emulator restarted in the middle of an extraction, a query that fails
 * transiently then succeeds (a loopback proxy answering 503), and the Temporal server itself killed mid-run and
 * started again on its database file. Each run resumes where it stood and delivers every row once. The emulator
 * and the Temporal server here are this file's own (free ports): the shared services are never touched.
 */
import type { NativeLoader } from '../sources/bigquery/native-client';

// the real BigQuery client, loaded natively (see test/sources/bigquery/native-client.ts)
jest.mock('@google-cloud/bigquery', () =>
  jest.requireActual<NativeLoader>('../sources/bigquery/native-client').loadNatively('@google-cloud/bigquery'),
);
jest.mock('google-auth-library', () =>
  jest.requireActual<NativeLoader>('../sources/bigquery/native-client').loadNatively('google-auth-library'),
);
jest.setTimeout(300_000);

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { syncSchema, type SyncConfig } from '../../src/config/schema';
import { createSyntheticUsers, syntheticUser } from '../../src/dev/demo-data';
import { startAmplitudeEmulator, type AmplitudeEmulator } from '../../src/emulator/amplitude';
import { createBigQueryClient } from '../../src/sources/bigquery/client';
import { openStateStore, SqliteStateStore } from '../../src/state';
import type { StateStore } from '../../src/state/types';
import { interceptingProxy, PrivateEmulator } from '../sources/bigquery/support';
import { createHarness, type Harness } from '../support/temporal';
import { uniqueName } from '../support/env';
import { parseGeneratedModel, type GeneratedModel } from './support/generated-source';
import { PrivateTemporal, WorkerProcess, sleep } from './support/processes';
import { checkUsers, generatedSync, startRun, summaryLine, uniqueSyncId, writeBundle } from './support/runs';

const API_KEY = 'source-faults-key-5e11';
const KEY_ENV = 'RELIABILITY_SOURCE_FAULTS_KEY';
const BQ_ROWS = 6000;

let harness: Harness;
let emulator: AmplitudeEmulator;
let bigquery: PrivateEmulator;
let dir: string;
const tally = { faults: 0, rowsLost: 0, duplicateEvents: 0, bigqueryRestarts: 0, temporalRestarts: 0, retriedSteps: 0 };

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-source-faults-'));
  [harness, emulator, bigquery] = await Promise.all([
    createHarness(),
    startAmplitudeEmulator({ port: 0, apiKeys: [API_KEY] }),
    PrivateEmulator.start({ persistent: true }),
  ]);
  process.env[KEY_ENV] = API_KEY;
  const bq = createBigQueryClient(bigquery.source());
  await bq.createDataset('reliability');
  await createSyntheticUsers(bq, { dataset: 'reliability', table: 'users', rows: BQ_ROWS });
});

afterAll(async () => {
  console.log(
    summaryLine('source and server faults', {
      'faults injected': tally.faults,
      'BigQuery restarts': tally.bigqueryRestarts,
      'Temporal server restarts': tally.temporalRestarts,
      'steps retried': tally.retriedSteps,
      'rows lost': tally.rowsLost,
      'duplicate events': tally.duplicateEvents,
    }),
  );
  await emulator?.close();
  await harness?.close();
  await bigquery?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => emulator.reset());

function bigquerySync(id: string, apiEndpoint: string): SyncConfig {
  return syncSchema.parse({
    id,
    object: 'users',
    source: { project: 'ampsync-dev', apiEndpoint },
    model: { sql: 'SELECT user_id, plan, lifetime_value FROM reliability.users' },
    key: 'user_id',
    mappings: [
      { from: 'user_id', to: 'user_id' },
      { from: 'plan', to: 'user_properties.plan' },
      { from: 'lifetime_value', to: 'user_properties.ltv' },
    ],
    destination: { apiKey: { env: KEY_ENV }, baseUrl: emulator.url },
    options: { chunkSize: 1000, batchSize: 500, concurrency: 2 },
  });
}

/** Every synthetic user is in Amplitude exactly once, with the model's values. */
function expectAllUsers(): void {
  const profiles = new Map(emulator.users(API_KEY).map((u) => [u.user_id, u.user_properties]));
  const lost: string[] = [];
  for (let n = 1; n <= BQ_ROWS; n++) {
    const row = syntheticUser(n);
    const props = profiles.get(row.user_id as string);
    if (props?.plan !== row.plan || Number(props?.ltv) !== row.lifetime_value) lost.push(row.user_id as string);
  }
  tally.rowsLost += lost.length;
  const ids = emulator.events(API_KEY).map((e) => e.insert_id);
  tally.duplicateEvents += ids.length - new Set(ids).size;
  expect(lost).toEqual([]);
  expect(emulator.eventCount(API_KEY)).toBe(BQ_ROWS);
  expect(ids.length).toBe(new Set(ids).size);
}

/** Attempts beyond the first, per activity type, in a run's history. */
async function retries(handle: WorkflowHandle): Promise<Record<string, number>> {
  const history = await handle.fetchHistory();
  const scheduled = new Map<string, string>();
  const out: Record<string, number> = {};
  for (const e of history.events ?? []) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(e.eventId), s.activityType?.name ?? '?');
    const started = e.activityTaskStartedEventAttributes;
    if (started && (started.attempt ?? 1) > 1) {
      const type = scheduled.get(String(started.scheduledEventId)) ?? '?';
      out[type] = Math.max(out[type] ?? 0, (started.attempt ?? 1) - 1);
    }
  }
  return out;
}

/** Resolves once `check` holds (polled every 250 ms); throws after `timeoutMs`. */
async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(250);
  }
}

/** A state store that calls `onPage` after each staged page. */
function withPageHook(store: StateStore, onPage: (page: number) => void): StateStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (prop !== 'stagePage' || typeof value !== 'function') return value;
      return async (input: Parameters<StateStore['stagePage']>[0]) => {
        const result = await target.stagePage(input);
        onPage(input.cursor.page);
        return result;
      };
    },
  });
}

test('the BigQuery emulator restarted mid-extract: extraction resumes from its saved page, every row arrives once', async () => {
  let restart: Promise<void> | undefined;
  let handle: WorkflowHandle | undefined;
  const staged: number[] = [];
  const store = openStateStore(`sqlite:${path.join(dir, 'bq-restart.db')}`);
  const hooked = withPageHook(store, (page) => {
    staged.push(page);
    if (page === 2 && restart === undefined) {
      restart = (async () => {
        await bigquery.stopProcess();
        // down until the extraction step has failed (past the BigQuery client's own retries) and waits for a retry
        await until(async () => {
          const pending = (await handle!.describe()).raw.pendingActivities ?? [];
          return pending.some((a) => a.activityType?.name === 'extractAndDiff' && (a.attempt ?? 1) > 1);
        }, 120_000);
        await bigquery.startProcess();
        tally.bigqueryRestarts += 1;
      })();
    }
  });
  const worker = await harness.startWorker({ state: hooked, pageSize: 1000 });
  try {
    const sync = bigquerySync(uniqueSyncId('bq-restart'), bigquery.endpoint);
    handle = await harness.client.start(sync);
    const result = await harness.client.follow(handle);
    await restart;
    tally.faults += 1;
    expect(restart).toBeDefined();
    expect(result.counts).toMatchObject({ extracted: BQ_ROWS, new: BQ_ROWS, delivered: BQ_ROWS, rejected: 0 });
    const retried = await retries(harness.env.client.workflow.getHandle(handle.workflowId));
    expect(retried.extractAndDiff).toBeGreaterThanOrEqual(1);
    tally.retriedSteps += Object.values(retried).reduce((a, b) => a + b, 0);
    // the retried step went on from the saved page: the pages read before the restart were not read again
    expect(staged.filter((p) => p <= 2)).toEqual([1, 2]);
    expect(Math.max(...staged)).toBe(BQ_ROWS / 1000);
    expectAllUsers();
  } finally {
    await worker.stop();
    await store.close();
  }
});

test('a query failing with 503 then succeeding: retried by the client, then by Temporal, every row arrives once', async () => {
  const proxy = await interceptingProxy(bigquery.endpoint);
  const backendError = {
    status: 503,
    body: {
      error: { code: 503, message: 'The service is currently unavailable.', errors: [{ reason: 'backendError' }] },
    },
  };
  const worker = await harness.startWorker({ state: `sqlite:${path.join(dir, 'bq-503.db')}`, pageSize: 1000 });
  try {
    // the first query job answers 503 once (the client retries it); a page answers 503 past the client's
    // retries (a page after the first, read by its row index), so the extraction step fails as retryable and
    // Temporal runs it again
    proxy.intercept({ path: /\/jobs(\?|$)/, method: 'POST', answer: backendError });
    for (let i = 0; i < 4; i++)
      proxy.intercept({ path: /\/queries\/.*startIndex=[1-9]/, method: 'GET', answer: backendError });
    const sync = bigquerySync(uniqueSyncId('bq-503'), proxy.url);
    const handle = await harness.client.start(sync);
    const result = await harness.client.follow(handle);
    tally.faults += 1;
    expect(proxy.pending()).toBe(0);
    expect(result.counts).toMatchObject({ extracted: BQ_ROWS, delivered: BQ_ROWS, rejected: 0 });
    const retried = await retries(harness.env.client.workflow.getHandle(handle.workflowId));
    expect(retried.extractAndDiff).toBeGreaterThanOrEqual(1);
    tally.retriedSteps += Object.values(retried).reduce((a, b) => a + b, 0);
    expectAllUsers();
  } finally {
    await worker.stop();
    await proxy.close();
  }
});

test('the Temporal server killed mid-run and restarted on its database: the run resumes and finishes', async () => {
  const temporal = await PrivateTemporal.start(dir);
  const stateFile = path.join(dir, 'temporal-restart.db');
  const env = {
    RELIABILITY_TEMPORAL_ADDRESS: temporal.address,
    RELIABILITY_TASK_QUEUE: uniqueName('restart'),
    RELIABILITY_STATE: `sqlite:${stateFile}`,
    RELIABILITY_BUNDLE: await writeBundle(dir),
    RELIABILITY_MARKERS: '1',
    RELIABILITY_PAGE_SIZE: '2000',
    [KEY_ENV]: API_KEY,
  };
  let worker = await WorkerProcess.start('worker', env);
  let connection = await Connection.connect({ address: temporal.address });
  const m: GeneratedModel = { kind: 'users', rows: 20_000, seed: 4242, version: 1, delayMs: 0 };
  const sync = generatedSync({
    id: uniqueSyncId('temporal-restart'),
    model: m,
    baseUrl: emulator.url,
    apiKeyEnv: KEY_ENV,
    options: { chunkSize: 1000, batchSize: 250, concurrency: 2 },
  });
  emulator.latency({ ms: 40 });
  let workerRestarts = 0;
  try {
    const handle = await startRun(new Client({ connection }), env.RELIABILITY_TASK_QUEUE, sync);
    expect(await worker.waitFor((mk) => mk.step === 'state:commitChunk:end', 4)).not.toBeNull();
    await temporal.kill();
    await sleep(2_000);
    await temporal.startProcess();
    tally.temporalRestarts += 1;
    await connection.close();
    connection = await Connection.connect({ address: temporal.address });
    const client = new Client({ connection });
    // a worker that gave up on the vanished server is restarted, as its supervisor would
    if (!worker.running) {
      workerRestarts += 1;
      worker = await WorkerProcess.start('worker-again', env);
    }
    const result = await client.workflow.getHandle(handle.workflowId).result();
    tally.faults += 1;
    expect(result.counts).toMatchObject({ extracted: 20_000, delivered: 20_000, rejected: 0 });
    const delivery = checkUsers(emulator, API_KEY, parseGeneratedModel(sync.model));
    tally.rowsLost += delivery.missing.length;
    tally.duplicateEvents += delivery.duplicateInsertIds;
    expect(delivery.missing).toEqual([]);
    expect(delivery.wrong).toEqual([]);
    expect(delivery.duplicateInsertIds).toBe(0);
    const store = new SqliteStateStore({ file: stateFile });
    await store.migrate();
    expect(await store.countSynced(sync.id)).toBe(20_000);
    await store.close();
    expect(workerRestarts).toBe(0);
  } finally {
    emulator.clearFaults();
    await worker.stop();
    await connection.close();
    await temporal.stop();
  }
});

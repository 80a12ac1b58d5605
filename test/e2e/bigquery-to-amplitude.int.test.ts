/**
 * The whole product on real services: the demo syncs (users, devices, groups, events) from the BigQuery
 * emulator through the dev server and a real worker into the Amplitude emulator; Schedules made by apply.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BigQuery } from '@google-cloud/bigquery';
import { extractJobId } from '../../activities/sync-activities';
import { modelColumns } from '../../src/amplitude/mapping';
import { parseSyncsFile } from '../../src/config/load';
import type { SyncConfig } from '../../src/config/schema';
import { changeDemoRows, demoRows, seedDemoData } from '../../src/dev/demo-data';
import { startAmplitudeEmulator, type AmplitudeEmulator } from '../../src/emulator/amplitude';
import { createBigQueryClient } from '../../src/sources/bigquery/client';
import { openStateStore } from '../../src/state';
import { syncWorkflowId } from '../../src/temporal/names';
import { SA_ROWS_DELIVERED, SA_STATUS, SA_SYNC_ID } from '../../src/temporal/search-attributes';
import { services, uniqueName } from '../support/env';
import { createHarness, type Harness } from '../support/temporal';

const API_KEY = 'e2e-amplitude-key-0001';
const USERS = 60;

let harness: Harness;
let emulator: AmplitudeEmulator;
let bq: BigQuery;
let dir: string;
let dataset: string;
let syncs: Map<string, SyncConfig>;
let stop: () => Promise<void>;
let stateUrl: string;

beforeAll(async () => {
  harness = await createHarness();
  emulator = await startAmplitudeEmulator({ port: 0, apiKeys: [API_KEY] });
  process.env.AMPSYNC_DEMO_AMPLITUDE_KEY = API_KEY;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-e2e-'));
  dataset = uniqueName('e2e');
  bq = createBigQueryClient({
    type: 'bigquery',
    project: services.bigqueryProject,
    apiEndpoint: services.bigqueryEndpoint,
  });
  await seedDemoData(bq, { dataset, users: USERS });
  const text = fs
    .readFileSync(path.join(__dirname, '..', '..', 'examples', 'demo', 'ampsync.yaml'), 'utf8')
    .replaceAll('ampsync_demo.', `${dataset}.`)
    .replaceAll('http://127.0.0.1:9700', emulator.url)
    .replaceAll('http://127.0.0.1:9050', services.bigqueryEndpoint);
  syncs = new Map(
    parseSyncsFile(text, 'examples/demo/ampsync.yaml').syncs.map((s) => [s.id, { ...s, id: `${s.id}-${dataset}` }]),
  );
  stateUrl = `sqlite:${path.join(dir, 'state.db')}`;
  ({ stop } = await harness.startWorker({ state: stateUrl }));
});

afterAll(async () => {
  await stop?.();
  await emulator?.close();
  await harness?.close();
  await bq
    ?.dataset(dataset)
    .delete({ force: true })
    .catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

const sync = (id: string): SyncConfig => syncs.get(id)!;

test('every object syncs end to end, and a second run sends nothing', async () => {
  const expected = demoRows({ users: USERS });

  const users = await harness.client.run(sync('demo-users'));
  expect(users.counts).toMatchObject({ extracted: USERS, new: USERS, delivered: USERS, rejected: 0, invalid: 0 });
  const u = expected.users[4]!;
  const profile = emulator.user(u.user_id);
  expect(profile?.user_properties).toMatchObject({
    plan: u.plan,
    lifetime_value: Number(u.lifetime_value),
    sessions_30d: u.sessions_30d,
    email_domain: u.email_domain,
    activated_on: u.activated_on,
    synced_by: 'warehouse',
  });
  expect(profile?.groups).toMatchObject({ account: [u.account_id] });

  const devices = await harness.client.run(sync('demo-devices'));
  expect(devices.counts).toMatchObject({ new: expected.devices.length, delivered: expected.devices.length });
  const d = expected.devices[0]!;
  expect(emulator.user(d.user_id)?.device_id ?? d.device_id).toBeTruthy();

  const accounts = await harness.client.run(sync('demo-accounts'));
  expect(accounts.counts).toMatchObject({ new: expected.accounts.length, delivered: expected.accounts.length });
  const a = expected.accounts[0]!;
  expect(emulator.group('account', a.account_id)?.group_properties).toEqual({
    name: a.name,
    industry: a.industry,
    seats: a.seats,
    arr: Number(a.arr),
  });

  const events = await harness.client.run(sync('demo-events'));
  expect(events.counts).toMatchObject({ new: expected.events.length, delivered: expected.events.length });
  const e = expected.events[0]!;
  const arrived = emulator
    .events()
    .filter((x) => x.event_type === e.event_type && x.user_id === e.user_id && x.time === Date.parse(e.occurred_at));
  expect(arrived).toHaveLength(1);

  const before = emulator.eventCount();
  for (const id of ['demo-users', 'demo-devices', 'demo-accounts', 'demo-events']) {
    const again = await harness.client.run(sync(id));
    expect(again.counts.new + again.counts.changed).toBe(0);
    expect(again.counts.delivered).toBe(0);
  }
  expect(emulator.eventCount()).toBe(before);
});

test('after 3 rows change, 1 is added and 2 removed, only those are sent', async () => {
  const changed = await changeDemoRows(bq, { dataset });
  const before = emulator.eventCount();
  const result = await harness.client.run(sync('demo-users'));
  expect(result.counts).toMatchObject({ changed: 3, new: 1, gone: 2, delivered: 4 });
  expect(emulator.eventCount() - before).toBe(4);
  expect(emulator.user(changed.added[0]!)).toBeDefined();

  const store = openStateStore(stateUrl);
  await store.migrate();
  const runs = await store.listRuns(sync('demo-users').id, 10);
  await store.close();
  expect(runs[0]).toMatchObject({ status: 'succeeded', counts: { changed: 3, new: 1, gone: 2 } });
});

test('a Schedule made by apply fires, and its run carries the search attributes', async () => {
  const scheduled: SyncConfig = {
    ...sync('demo-accounts'),
    schedule: {
      every: '1h',
      timezone: 'UTC',
      overlap: 'skip',
      catchupWindow: '1h',
      pauseOnFailure: false,
      paused: false,
    },
  };
  const applied = await harness.client.applySchedules([scheduled]);
  expect(applied.created).toEqual([scheduled.id]);
  expect(await harness.client.applySchedules([scheduled])).toMatchObject({ unchanged: [scheduled.id] });

  await harness.client.schedule(scheduled.id, 'trigger');
  const handle = harness.env.client.workflow.getHandle(syncWorkflowId(scheduled.id));
  let described = await handle.describe();
  const firedAndDone = (): boolean => described.memo?.trigger === 'schedule' && described.status.name !== 'RUNNING';
  for (let i = 0; i < 150 && !firedAndDone(); i++) {
    await new Promise((r) => setTimeout(r, 200));
    described = await handle.describe();
  }
  expect(described.status.name).toBe('COMPLETED');
  expect(described.memo).toMatchObject({ trigger: 'schedule' });
  expect(described.typedSearchAttributes.get(SA_SYNC_ID)).toBe(scheduled.id);
  expect(described.typedSearchAttributes.get(SA_STATUS)).toBe('succeeded');
  expect(described.typedSearchAttributes.get(SA_ROWS_DELIVERED)).toBe(0);

  const removed = await harness.client.applySchedules([]);
  expect(removed.deleted).toContain(scheduled.id);
});

test('a run reads the key and the mapped columns alone out of BigQuery', async () => {
  const users = sync('demo-users');
  // the demo model selects sessions_30d; this sync leaves it unmapped
  const narrow: SyncConfig = {
    ...users,
    id: `narrow-${dataset}`,
    mappings: users.mappings.filter((m) => m.from !== 'sessions_30d'),
  };
  const result = await harness.client.run(narrow);
  expect(result.counts.delivered).toBeGreaterThan(0);
  const [, , response] = (await bq.job(extractJobId(narrow.id, result.runId)).getQueryResults({
    maxResults: 0,
    autoPaginate: false,
  })) as [unknown, unknown, { schema?: { fields?: { name: string }[] } }];
  const read = (response.schema?.fields ?? []).map((f) => f.name);
  expect(read).toEqual([
    'user_id',
    'plan',
    'lifetime_value',
    'trial_ends_at',
    'activated_on',
    'email_domain',
    'account_id',
  ]);
  expect(read).toEqual(modelColumns(narrow));
});

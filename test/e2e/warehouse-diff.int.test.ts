/**
 * The warehouse-side diff (the default; source.stateDataset) on real services: the demo users from the BigQuery
 * emulator through the dev server and a real worker into the Amplitude emulator. What leaves BigQuery is read from the
 * run's own query job (its row count), what arrives from the Amplitude emulator.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BigQuery } from '@google-cloud/bigquery';
import { createActivities, extractJobId } from '../../activities/sync-activities';
import { compileMapper } from '../../src/amplitude/mapping';
import { checkSync } from '../../src/cli/inspect';
import { parseSyncsFile } from '../../src/config/load';
import type { SyncConfig } from '../../src/config/schema';
import { changeDemoRows, seedDemoData } from '../../src/dev/demo-data';
import { startAmplitudeEmulator, type AmplitudeEmulator } from '../../src/emulator/amplitude';
import { openStateStore } from '../../src/state';
import type { StateStore } from '../../src/state/types';
import { SourceConfigError } from '../../src/sources/bigquery/errors';
import { BigQuerySource } from '../../src/sources/bigquery/source';
import { emptyCounts, type Source } from '../../src/sync/types';
import { DEFAULT_STATE_DATASET, warehouseTables } from '../../src/sync/warehouse-diff';
import { run, testEmulator } from '../sources/bigquery/support';
import { createHarness, runFailureCause, type Harness } from '../support/temporal';

const API_KEY = 'warehouse-diff-key-0001';
const USERS = 40;
/** Users once changeDemoRows deleted 2 and added 1. */
const VALID_AFTER_CHANGE = USERS - 2 + 1;

let harness: Harness;
let emulator: AmplitudeEmulator;
let bq: BigQuery;
let dir: string;
let dataset: string;
let stateDataset: string;
let users: SyncConfig;
let store: StateStore;
let stop: () => Promise<void>;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  harness = await createHarness();
  emulator = await startAmplitudeEmulator({ port: 0, apiKeys: [API_KEY] });
  process.env.AMPSYNC_DEMO_AMPLITUDE_KEY = API_KEY;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-whdiff-'));
  // a private emulator: the goccy emulator's heap grows with every DROP TABLE, and the snapshots drop tables
  const emulated = await testEmulator('whdiff');
  ({ bq, dataset } = emulated);
  cleanup = () => emulated.cleanup();
  stateDataset = `${dataset}_state`;
  await seedDemoData(bq, { dataset, users: USERS });
  await bq.createDataset(stateDataset);
  const text = fs
    .readFileSync(path.join(__dirname, '..', '..', 'examples', 'demo', 'ampsync.yaml'), 'utf8')
    .replaceAll('ampsync_demo.', `${dataset}.`)
    .replaceAll('http://127.0.0.1:9700', emulator.url)
    .replaceAll('http://127.0.0.1:9050', emulated.source.apiEndpoint!)
    .replaceAll('project: ampsync-dev', `project: ${emulated.source.project}`);
  const demo = parseSyncsFile(text, 'examples/demo/ampsync.yaml').syncs.find((s) => s.id === 'demo-users')!;
  users = { ...demo, id: `users-${dataset}`, source: { ...demo.source, stateDataset } };
  const stateUrl = `sqlite:${path.join(dir, 'state.db')}`;
  store = openStateStore(stateUrl);
  await store.migrate();
  ({ stop } = await harness.startWorker({ state: stateUrl }));
});

afterAll(async () => {
  await stop?.();
  await store?.close();
  await emulator?.close();
  await harness?.close();
  await cleanup?.();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The sync with one more mapping (every payload changes). */
function withExtraMapping(sync: SyncConfig): SyncConfig {
  return { ...sync, mappings: [...sync.mappings, { constant: 'v2', to: 'user_properties.model_version' }] };
}

/** Rows the run's query job returned: what left BigQuery. */
async function rowsLeftBigQuery(sync: SyncConfig, runId: string, client: BigQuery = bq): Promise<number> {
  const [, , response] = (await client.job(extractJobId(sync.id, runId)).getQueryResults({
    maxResults: 0,
    autoPaginate: false,
  })) as [unknown, unknown, { totalRows?: string }];
  return Number(response.totalRows);
}

async function stateTables(): Promise<string[]> {
  const [tables] = await bq.dataset(stateDataset).getTables();
  return tables.map((t) => t.id ?? '').sort();
}

/** The activities over `source` and the file's store, for tests that extract and finish runs but send nothing. */
function activitiesThatSendNothing(source: Source, pageSize?: number) {
  return createActivities({
    state: store,
    sourceFor: () => source,
    mapperFor: (sync, schema) => compileMapper(sync, schema === undefined ? {} : { schema }),
    senderFor: () => ({ sendBatch: () => Promise.reject(new Error('nothing is sent in this test')) }),
    packBatches: (_sync, rows) => [rows],
    ...(pageSize !== undefined ? { pageSize } : {}),
  });
}

/** Runs the sync and returns its result with the identifies that reached Amplitude and the rows read. */
async function runOnce(sync: SyncConfig, client: BigQuery = bq) {
  const before = emulator.eventCount();
  const result = await harness.client.run(sync);
  return { result, sent: emulator.eventCount() - before, read: await rowsLeftBigQuery(sync, result.runId, client) };
}

test('only new and changed rows leave BigQuery; the snapshot follows what was delivered', async () => {
  const first = await runOnce(users);
  expect(first.result.counts).toMatchObject({ extracted: USERS, new: USERS, delivered: USERS, unchanged: 0 });
  expect(first.read).toBe(USERS);
  expect(first.sent).toBe(USERS);
  const snapshot = await store.getWarehouseSnapshot(users.id);
  expect(snapshot).toMatchObject({ table: warehouseTables(users.id, first.result.runId).snapshot, rows: USERS });
  // the run table is dropped once the snapshot is made
  expect(await stateTables()).toEqual([snapshot!.table]);

  const second = await runOnce(users);
  expect(second.result.counts).toMatchObject({ extracted: USERS, unchanged: USERS, new: 0, changed: 0, gone: 0 });
  expect(second.read).toBe(0);
  expect(second.sent).toBe(0);

  const changed = await changeDemoRows(bq, { dataset });
  const third = await runOnce(users);
  expect(third.result.counts).toMatchObject({
    extracted: VALID_AFTER_CHANGE,
    changed: changed.updated.length,
    new: changed.added.length,
    gone: changed.deleted.length,
    unchanged: USERS - changed.deleted.length - changed.updated.length,
    delivered: changed.updated.length + changed.added.length,
  });
  expect(third.read).toBe(changed.updated.length + changed.added.length);
  expect(third.sent).toBe(changed.updated.length + changed.added.length);
  expect(emulator.user(changed.updated[0]!)?.user_properties).toMatchObject({ plan: 'enterprise' });
  const promoted = await store.getWarehouseSnapshot(users.id);
  expect(promoted).toMatchObject({ runId: third.result.runId, rows: VALID_AFTER_CHANGE });
  expect(await stateTables()).toEqual([promoted!.table]);
});

test('duplicate, NULL and rejected keys leave BigQuery every run, and are never sent', async () => {
  const table = `\`${bq.projectId}.${dataset}.users\``;
  for (const query of [
    // a key twice, a NULL key, and an id Amplitude's minimum length rejects
    `INSERT INTO ${table} (user_id, plan, sessions_30d) VALUES ('user_dup_1', 'free', 1), ('user_dup_1', 'pro', 2)`,
    `INSERT INTO ${table} (user_id, plan, sessions_30d) VALUES (NULL, 'free', 3)`,
    `INSERT INTO ${table} (user_id, plan, sessions_30d) VALUES ('ab', 'free', 4)`,
  ]) {
    const [job] = await bq.createQueryJob({ query });
    await job.getQueryResults({ maxResults: 0, autoPaginate: false });
  }
  for (let round = 0; round < 2; round++) {
    const run = await runOnce(users);
    // two duplicate rows + the NULL key row + the short id: each run reads and reports them again
    expect(run.read).toBe(4);
    expect(run.sent).toBe(0);
    expect(run.result.counts).toMatchObject({ invalid: 4, new: 0, changed: 0, delivered: 0 });
    const reasons = (await store.listRejected(users.id, 10)).filter((r) => r.runId === run.result.runId);
    expect(reasons.map((r) => r.key).sort()).toEqual([null, 'ab', 'user_dup_1'].sort());
  }
});

test('a changed mapping or a reset ignores the snapshot: every row is diffed again', async () => {
  const remapped = withExtraMapping(users);
  const remap = await runOnce(remapped);
  // every row left BigQuery; the new mapping changed every payload, so each valid key is sent once more
  expect(remap.read).toBe(remap.result.counts.extracted);
  expect(remap.result.counts).toMatchObject({ changed: VALID_AFTER_CHANGE, delivered: VALID_AFTER_CHANGE });
  const quiet = await runOnce(remapped);
  expect(quiet.read).toBe(4); // only the invalid rows of the previous test

  await store.resetSync(users.id);
  expect(await store.getWarehouseSnapshot(users.id)).toBeNull();
  const afterReset = await runOnce(remapped);
  expect(afterReset.read).toBe(afterReset.result.counts.extracted);
  expect(afterReset.result.counts).toMatchObject({ new: VALID_AFTER_CHANGE, delivered: VALID_AFTER_CHANGE });
});

test('a key column BigQuery cannot compare as text fails the run before any row moves, naming it', async () => {
  const bad: SyncConfig = {
    ...users,
    id: `${users.id}-ts`,
    key: 'trial_ends_at',
    mappings: [{ from: 'user_id', to: 'user_id' }],
  };
  const cause = runFailureCause(await harness.client.run(bad).catch((e: unknown) => e));
  expect(cause.nonRetryable).toBe(true);
  expect(cause.message).toMatch(/key column "trial_ends_at" is TIMESTAMP/);
  expect(await stateTables()).not.toContainEqual(expect.stringContaining(warehouseTables(bad.id, 'x').prefixes[0]!));
});

test('ampsync check reports the state dataset, one a run will create, and read-only mode', async () => {
  const lines: string[] = [];
  expect(await checkSync(users, (line) => lines.push(line))).toBe(true);
  expect(lines).toContainEqual(expect.stringMatching(/^✔ BigQuery state dataset: .* exists/));

  const missing: SyncConfig = { ...users, source: { ...users.source, stateDataset: 'no_such_dataset' } };
  lines.length = 0;
  expect(await checkSync(missing, (line) => lines.push(line))).toBe(true);
  expect(lines).toContainEqual(
    expect.stringMatching(
      /^✔ BigQuery state dataset: state dataset ".*\.no_such_dataset" does not exist yet: the first run creates it, which needs permission to create datasets/,
    ),
  );
  const [created] = await bq.dataset('no_such_dataset').exists();
  expect(created).toBe(false);

  const readOnly: SyncConfig = { ...users, source: { ...users.source, stateDataset: false } };
  lines.length = 0;
  expect(await checkSync(readOnly, (line) => lines.push(line))).toBe(true);
  expect(lines).toContainEqual(
    '✔ BigQuery state dataset: none (source.stateDataset: false): the worker diffs, reading every row each run',
  );

  // against the emulator (a loopback endpoint) a sync that names no dataset runs read-only
  const { stateDataset: _named, ...unnamed } = users.source;
  lines.length = 0;
  expect(await checkSync({ ...users, source: unnamed }, (line) => lines.push(line))).toBe(true);
  expect(lines).toContainEqual(
    '✔ BigQuery state dataset: none (a sync against a local emulator names no stateDataset): the worker diffs, ' +
      'reading every row each run',
  );
});

test('an extraction that fails mid-way resumes from its saved page and still counts the rows left in BigQuery', async () => {
  // the mapping the last snapshot was delivered with (the previous test's)
  const sync = withExtraMapping(users);
  const before = await store.getWarehouseSnapshot(sync.id);
  expect(before).not.toBeNull();
  const table = `\`${bq.projectId}.${dataset}.users\``;
  const [job] = await bq.createQueryJob({
    query: `UPDATE ${table} SET sessions_30d = sessions_30d + 1000 WHERE user_id IN ('user_00020', 'user_00021')`,
  });
  await job.getQueryResults({ maxResults: 0, autoPaginate: false });

  // the second page fails once, as a worker crash or a BigQuery outage would end the first attempt there
  const real = new BigQuerySource(sync.source);
  let failed = false;
  let opens = 0;
  let keyOrdered: boolean | undefined;
  const flaky: Source = {
    warehouseDiff: {
      openChanges: async (model, request) => {
        opens += 1;
        const opened = await real.openChanges(model, request);
        keyOrdered = opened.position.keyOrdered;
        return opened;
      },
      promoteSnapshot: (request) => real.promoteSnapshot(request),
      dropTables: (prefixes, keep) => real.dropTables(prefixes, keep),
    },
    dryRun: (model) => real.dryRun(model),
    open: (model, options) => real.open(model, options),
    readPage: async (position, options) => {
      if (position.page === 1 && !failed) {
        failed = true;
        throw new Error('connection reset while reading page 2');
      }
      return real.readPage(position, options);
    },
  };
  const activities = activitiesThatSendNothing(flaky, 2);
  const runId = `resume-${Date.now()}`;
  await activities.prepareRun({ sync, runId, workflowId: 'test' });
  await expect(activities.extractAndDiff({ sync, runId })).rejects.toThrow(/connection reset/);
  const resumed = await activities.extractAndDiff({ sync, runId });
  // the retry read on from the saved page of the same BigQuery job: the model was copied and diffed once
  expect(opens).toBe(1);
  // the changed rows came in key order (the store diffs them by key range)
  expect(keyOrdered).toBe(true);
  // 2 changed rows and the 4 invalid ones left BigQuery (3 pages of 2); the rest counted as unchanged there
  expect(resumed.counts).toMatchObject({ changed: 2, new: 0, invalid: 4, gone: 0 });
  expect(resumed.counts.extracted).toBe(resumed.counts.unchanged + 2 + 4);
  expect(resumed.counts.unchanged).toBe(VALID_AFTER_CHANGE - 2);

  // nothing was delivered: a run that does not succeed keeps the snapshot, and its run table is dropped
  await activities.finishRun({
    syncId: sync.id,
    runId,
    status: 'cancelled',
    counts: { ...emptyCounts(), ...resumed.counts },
    sync,
  });
  expect(await store.getWarehouseSnapshot(sync.id)).toEqual(before);
  expect(await stateTables()).toEqual([before!.table]);
});

test('a column the model selects but no mapping reads stays in BigQuery: changing it moves no row', async () => {
  // an emulator of its own: the file's one has dropped many tables by now (its analyzer's heap only grows)
  const own = await testEmulator('whcols');
  try {
    await seedDemoData(own.bq, { dataset: own.dataset, users: USERS });
    // the state dataset does not exist: the first run creates it
    const source = { ...users.source, ...own.source, stateDataset: `${own.dataset}_state` };
    // the demo users model is SQL over the file's dataset
    const sql = (users.model as { sql: string }).sql.replaceAll(`${dataset}.`, `${own.dataset}.`);
    // the demo model selects sessions_30d; this sync leaves it unmapped
    const narrow: SyncConfig = {
      ...users,
      id: `narrow-${own.dataset}`,
      source,
      model: { sql },
      mappings: users.mappings.filter((m) => m.from !== 'sessions_30d'),
    };
    const mapped: SyncConfig = { ...narrow, id: `mapped-${own.dataset}`, mappings: users.mappings };
    for (const sync of [narrow, mapped]) {
      expect((await runOnce(sync, own.bq)).result.counts).toMatchObject({ new: USERS, delivered: USERS });
    }
    const [tables] = await own.bq.dataset(`${own.dataset}_state`).getTables();
    expect(tables.map((t) => t.id)).toEqual(
      expect.arrayContaining([(await store.getWarehouseSnapshot(narrow.id))!.table]),
    );

    const updated = ['user_00030', 'user_00031'];
    await run(
      own.bq,
      `UPDATE \`${own.bq.projectId}.${own.dataset}.users\` SET sessions_30d = 1000 ` +
        `WHERE user_id IN ('${updated.join("', '")}')`,
    );
    const after = await runOnce(narrow, own.bq);
    // fingerprinted in BigQuery over the key and the mapped columns alone: the two rows did not differ there
    expect(after.read).toBe(0);
    expect(after.sent).toBe(0);
    expect(after.result.counts).toMatchObject({ changed: 0, new: 0, unchanged: USERS });
    // the sync that maps sessions_30d reads and sends them
    const changed = await runOnce(mapped, own.bq);
    expect(changed.read).toBe(updated.length);
    expect(changed.sent).toBe(updated.length);
    expect(emulator.user(updated[0]!)?.user_properties).toMatchObject({ sessions_30d: 1000 });
  } finally {
    await own.cleanup();
  }
});

test('a sync that names no state dataset diffs in ampsync_state, which its first run creates', async () => {
  // an emulator of its own, reached through a client: the sync's source names no endpoint and no state dataset,
  // as a sync against BigQuery itself does (against a loopback endpoint the default is read-only)
  const own = await testEmulator('whdefault');
  try {
    await seedDemoData(own.bq, { dataset: own.dataset, users: USERS });
    const sql = (users.model as { sql: string }).sql.replaceAll(`${dataset}.`, `${own.dataset}.`);
    const sync: SyncConfig = {
      ...users,
      id: `default-${own.dataset}`,
      source: { type: 'bigquery', project: own.source.project },
      model: { sql },
    };
    const source = new BigQuerySource(sync.source, { client: own.bq });
    expect(source.warehouseDiff).toBeDefined();
    const [before] = await own.bq.dataset(DEFAULT_STATE_DATASET).exists();
    expect(before).toBe(false);
    // credentials that may not create datasets: the run fails before any row moves, naming the ways out
    const denied = new Proxy(own.bq, {
      get(target, prop, receiver) {
        if (prop !== 'createDataset') return Reflect.get(target, prop, receiver) as unknown;
        return () =>
          Promise.reject(
            Object.assign(new Error('Access Denied: Project p: User does not have bigquery.datasets.create'), {
              code: 403,
              errors: [{ reason: 'accessDenied', message: 'Access Denied' }],
            }),
          );
      },
    });
    const readOnly = new BigQuerySource(sync.source, { client: denied });
    const failure = await readOnly
      .openChanges(sync.model, {
        jobId: `denied_${Date.now()}`,
        key: sync.key,
        runTable: 'never_made',
        snapshot: null,
        columns: ['user_id'],
      })
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(SourceConfigError);
    expect((failure as SourceConfigError).reason).toBe('accessDenied');
    // a dataset never created holds nothing to drop: the failed run's end finds nothing to clean up
    await expect(readOnly.dropTables(warehouseTables(sync.id, 'x').prefixes, [])).resolves.toEqual([]);
    expect((failure as Error).message).toMatch(
      /BigQuery dataset creation for state dataset ".*\.ampsync_state" \(datasets\.insert\) failed: access denied: .*bigquery\.datasets\.create.*roles\/bigquery\.user.*set source\.stateDataset: false to diff in the worker/,
    );

    const activities = activitiesThatSendNothing(source);
    const runId = `default-${Date.now()}`;
    await activities.prepareRun({ sync, runId, workflowId: 'test' });
    const extracted = await activities.extractAndDiff({ sync, runId });
    expect(extracted.counts).toMatchObject({ extracted: USERS, new: USERS });
    const [tables] = await own.bq.dataset(DEFAULT_STATE_DATASET).getTables();
    expect(tables.map((t) => t.id)).toEqual([warehouseTables(sync.id, runId).runTable]);
    // the run table's rows are what the changed-rows query read: all of them, there being no snapshot yet
    expect(await rowsLeftBigQuery(sync, runId, own.bq)).toBe(USERS);
    await activities.finishRun({
      syncId: sync.id,
      runId,
      status: 'cancelled',
      counts: { ...emptyCounts(), ...extracted.counts },
      sync,
    });
    const [after] = await own.bq.dataset(DEFAULT_STATE_DATASET).getTables();
    expect(after).toEqual([]);
  } finally {
    await own.cleanup();
  }
});

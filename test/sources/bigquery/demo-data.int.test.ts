/** The demo dataset and the synthetic user tables, read back through BigQuerySource from a private emulator. */
import type { NativeLoader } from './native-client';

// the real client, loaded natively (see native-client.ts)
jest.mock('@google-cloud/bigquery', () =>
  jest.requireActual<NativeLoader>('./native-client').loadNatively('@google-cloud/bigquery'),
);
jest.mock('google-auth-library', () =>
  jest.requireActual<NativeLoader>('./native-client').loadNatively('google-auth-library'),
);
jest.setTimeout(180_000);

import {
  changeDemoRows,
  createSyntheticUsers,
  DEMO_CHANGES,
  demoRows,
  seedDemoData,
  syntheticUser,
} from '../../../src/dev/demo-data';
import { BigQuerySource, isExhausted } from '../../../src/sources/bigquery/source';
import type { ModelConfig } from '../../../src/config/schema';
import type { SourceRow } from '../../../src/sync/types';
import { testEmulator } from './support';

let ctx: Awaited<ReturnType<typeof testEmulator>>;

beforeAll(async () => {
  ctx = await testEmulator('bq_demo');
});

afterAll(async () => {
  await ctx?.cleanup();
});

async function readModel(model: ModelConfig): Promise<SourceRow[]> {
  const source = new BigQuerySource(ctx.source, { client: ctx.bq });
  const opened = await source.open(model);
  const rows: SourceRow[] = [];
  let position = opened.position;
  while (!isExhausted(position)) {
    const page = await source.readPage(position, { pageSize: 5000 });
    rows.push(...page.rows);
    position = page.next;
  }
  return rows;
}

const byKey = (rows: SourceRow[], key: string) => new Map(rows.map((r) => [r[key] as string, r]));

test('demoRows is deterministic per seed', () => {
  expect(demoRows({ users: 50, seed: 7 })).toEqual(demoRows({ users: 50, seed: 7 }));
  expect(demoRows({ users: 50, seed: 7 }).users).not.toEqual(demoRows({ users: 50, seed: 8 }).users);
  expect(() => demoRows({ users: 5 })).toThrow('at least 12');
});

test('seedDemoData loads the four tables exactly, and seeding again replaces them', async () => {
  const dataset = `${ctx.dataset}_demo`;
  const expected = demoRows({ users: 120 });
  const first = await seedDemoData(ctx.bq, { dataset, users: 120 });
  expect(first).toEqual({
    dataset,
    rows: { users: 120, accounts: 12, devices: expected.devices.length, events: expected.events.length },
  });
  await seedDemoData(ctx.bq, { dataset, users: 120 });

  const users = await readModel({ sql: `SELECT * FROM ${dataset}.users ORDER BY user_id` });
  expect(users).toEqual(expected.users.map((u) => ({ ...u, lifetime_value: Number(u.lifetime_value) })));
  const accounts = await readModel({ table: `${dataset}.accounts` });
  expect(byKey(accounts, 'account_id')).toEqual(
    byKey(
      expected.accounts.map((a) => ({ ...a, arr: Number(a.arr) })),
      'account_id',
    ),
  );
  const devices = await readModel({ table: `${dataset}.devices` });
  expect(devices).toHaveLength(expected.devices.length);
  expect(byKey(devices, 'device_id').get(expected.devices[0]!.device_id)).toEqual(expected.devices[0]);
  const events = await readModel({ sql: `SELECT * FROM ${dataset}.events ORDER BY insert_id` });
  expect(events).toEqual(expected.events);
});

test('changeDemoRows changes 3 users, adds 1 and deletes 2 — and nothing else; twice is the same as once', async () => {
  const dataset = `${ctx.dataset}_change`;
  await seedDemoData(ctx.bq, { dataset, users: 40 });
  const before = byKey(await readModel({ table: `${dataset}.users` }), 'user_id');
  const result = await changeDemoRows(ctx.bq, { dataset });
  expect(result).toEqual({ dataset, ...DEMO_CHANGES });
  const afterOnce = await readModel({ sql: `SELECT * FROM ${dataset}.users ORDER BY user_id` });
  await changeDemoRows(ctx.bq, { dataset });
  expect(await readModel({ sql: `SELECT * FROM ${dataset}.users ORDER BY user_id` })).toEqual(afterOnce);

  const after = byKey(afterOnce, 'user_id');
  const changed = [...after.keys()].filter(
    (k) => before.has(k) && JSON.stringify(before.get(k)) !== JSON.stringify(after.get(k)),
  );
  const added = [...after.keys()].filter((k) => !before.has(k));
  const deleted = [...before.keys()].filter((k) => !after.has(k));
  expect({ changed, added, deleted }).toEqual({
    changed: [...DEMO_CHANGES.updated],
    added: [...DEMO_CHANGES.added],
    deleted: [...DEMO_CHANGES.deleted],
  });
  expect(after.get('user_00002')).toMatchObject({ plan: 'enterprise', lifetime_value: 12500, sessions_30d: 99 });
  expect(after.get('user_90001')).toEqual({
    user_id: 'user_90001',
    email_domain: 'acme.io',
    plan: 'pro',
    lifetime_value: 49,
    trial_ends_at: '2024-06-15T12:00:00Z',
    activated_on: '2024-06-01',
    sessions_30d: 1,
    account_id: 'acct_00001',
  });
});

test('createSyntheticUsers: row n is syntheticUser(n); revision 1 changes exactly 1% of the rows', async () => {
  const base = await createSyntheticUsers(ctx.bq, { dataset: ctx.dataset, table: 'synth_r0', rows: 2500 });
  expect(base).toMatchObject({ table: `${ctx.dataset}.synth_r0`, rows: 2500 });
  await createSyntheticUsers(ctx.bq, { dataset: ctx.dataset, table: 'synth_r1', rows: 2500, revision: 1 });
  const r0 = await readModel({ sql: `SELECT * FROM ${ctx.dataset}.synth_r0 ORDER BY user_id` });
  expect(r0).toEqual(Array.from({ length: 2500 }, (_, i) => syntheticUser(i + 1)));
  const diff = await readModel({
    sql: `SELECT * FROM ${ctx.dataset}.synth_r1 EXCEPT DISTINCT SELECT * FROM ${ctx.dataset}.synth_r0 ORDER BY user_id`,
  });
  expect(diff).toEqual(Array.from({ length: 25 }, (_, i) => syntheticUser((i + 1) * 100, 1)));
});

/**
 * The demo dataset: deterministic users, accounts, devices and events (seeded PRNG, fixed clock), loaded with
 * NDJSON load jobs (fast on the goccy emulator, and on BigQuery the rows are at once open to UPDATE/DELETE,
 * unlike streamed inserts). Plus the edit the demo makes before its second run, and a fast generator of large
 * synthetic user tables for tests and benchmarks.
 *
 *   const bq = createBigQueryClient({ type: 'bigquery', project: 'ampsync-dev', apiEndpoint: 'http://127.0.0.1:9050' });
 *   await seedDemoData(bq, { users: 500 });      // ampsync_demo.users / accounts / devices / events
 *   await changeDemoRows(bq, {});                // 3 users changed, 1 added, 2 deleted
 *   await createSyntheticUsers(bq, { dataset: 'bench', table: 'users_200k', rows: 200_000 });
 */
import type { BigQuery, Job, Table, TableField } from '@google-cloud/bigquery';

export const DEMO_DATASET = 'ampsync_demo';
/** The demo's clock: every generated time is relative to it, so every seed gives the same rows on any day. */
export const DEMO_EPOCH_MS = Date.UTC(2024, 5, 1);
/** Rows per load job; larger seeds are loaded in several jobs. */
export const LOAD_BATCH_ROWS = 50_000;

const PLANS = ['free', 'starter', 'pro', 'enterprise'] as const;
const DOMAINS = ['gmail.com', 'outlook.com', 'acme.io', 'globex.com', 'initech.com', 'umbrella.co'] as const;
const INDUSTRIES = ['SaaS', 'Retail', 'Fintech', 'Healthcare', 'Media', 'Logistics'] as const;
const NAME_HEADS = [
  'Acme',
  'Globex',
  'Initech',
  'Umbrella',
  'Hooli',
  'Vandelay',
  'Stark',
  'Wayne',
  'Tyrell',
  'Soylent',
];
const NAME_TAILS = ['Labs', 'Analytics', 'Systems', 'Health', 'Retail', 'Media', 'Logistics', 'Capital'];
const PLATFORMS = [
  { platform: 'iOS', os_name: 'ios' },
  { platform: 'Android', os_name: 'android' },
  { platform: 'Web', os_name: 'Chrome' },
  { platform: 'Web', os_name: 'Safari' },
] as const;
const EVENT_TYPES = ['Signed Up', 'Viewed Dashboard', 'Created Report', 'Invited Teammate', 'Upgraded Plan'] as const;
const PAGES = ['/home', '/reports', '/settings', '/billing', '/team'] as const;

const field = (name: string, type: string, mode: 'NULLABLE' | 'REQUIRED' = 'NULLABLE'): TableField => ({
  name,
  type,
  mode,
});

/** The demo tables' schemas. */
export const DEMO_SCHEMAS: Readonly<Record<DemoTable, TableField[]>> = {
  users: [
    field('user_id', 'STRING', 'REQUIRED'),
    field('email_domain', 'STRING'),
    field('plan', 'STRING'),
    field('lifetime_value', 'NUMERIC'),
    field('trial_ends_at', 'TIMESTAMP'),
    field('activated_on', 'DATE'),
    field('sessions_30d', 'INT64'),
    field('account_id', 'STRING'),
  ],
  accounts: [
    field('account_id', 'STRING', 'REQUIRED'),
    field('name', 'STRING'),
    field('industry', 'STRING'),
    field('seats', 'INT64'),
    field('arr', 'NUMERIC'),
  ],
  devices: [
    field('device_id', 'STRING', 'REQUIRED'),
    field('user_id', 'STRING'),
    field('platform', 'STRING'),
    field('os_name', 'STRING'),
    field('last_seen_at', 'TIMESTAMP'),
  ],
  events: [
    field('insert_id', 'STRING', 'REQUIRED'),
    field('user_id', 'STRING'),
    field('event_type', 'STRING'),
    field('occurred_at', 'TIMESTAMP'),
    field('amount', 'FLOAT64'),
    field('properties', 'JSON'),
  ],
};

export type DemoTable = 'users' | 'accounts' | 'devices' | 'events';

export interface DemoDataOptions {
  dataset?: string;
  /** Users (default 500; at least 12, so that changeDemoRows finds the users it edits). */
  users?: number;
  /** Accounts (default one per 10 users). */
  accounts?: number;
  /** Average events per user (default 3). */
  eventsPerUser?: number;
  /** PRNG seed: the same seed gives the same rows (default 1). */
  seed?: number;
  /** Dataset location when the dataset is created (BigQuery only; the emulator ignores it). */
  location?: string;
}

export interface DemoRows {
  users: DemoUser[];
  accounts: DemoAccount[];
  devices: DemoDevice[];
  events: DemoEvent[];
}

export interface DemoUser {
  user_id: string;
  email_domain: string;
  plan: string;
  /** NUMERIC as a decimal string, as loaded. */
  lifetime_value: string;
  trial_ends_at: string | null;
  activated_on: string;
  sessions_30d: number;
  account_id: string;
}
export interface DemoAccount {
  account_id: string;
  name: string;
  industry: string;
  seats: number;
  arr: string;
}
export interface DemoDevice {
  device_id: string;
  user_id: string;
  platform: string;
  os_name: string;
  last_seen_at: string;
}
export interface DemoEvent {
  insert_id: string;
  user_id: string;
  event_type: string;
  occurred_at: string;
  amount: number | null;
  properties: Record<string, string | number | boolean>;
}

export interface SeedDemoResult {
  dataset: string;
  rows: Record<DemoTable, number>;
}

/** A small fast deterministic PRNG (mulberry32): floats in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');
const isoSeconds = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');
const DAY_MS = 86_400_000;

/** The demo rows for `options` (what seedDemoData loads), generated without touching BigQuery. */
export function demoRows(options: DemoDataOptions = {}): DemoRows {
  const userCount = options.users ?? 500;
  if (!Number.isInteger(userCount) || userCount < 12) {
    throw new RangeError(
      `demo users must be an integer of at least 12 (changeDemoRows edits users 2 to 11); got ${userCount}`,
    );
  }
  const accountCount = options.accounts ?? Math.max(1, Math.ceil(userCount / 10));
  const eventsPerUser = options.eventsPerUser ?? 3;
  const random = prng(options.seed ?? 1);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));

  const accounts: DemoAccount[] = [];
  for (let i = 1; i <= accountCount; i++) {
    const seats = int(5, 500);
    accounts.push({
      account_id: `acct_${pad(i, 5)}`,
      name: `${pick(NAME_HEADS)} ${pick(NAME_TAILS)}`,
      industry: pick(INDUSTRIES),
      seats,
      arr: (seats * int(120, 900)).toFixed(2),
    });
  }

  const users: DemoUser[] = [];
  const devices: DemoDevice[] = [];
  const events: DemoEvent[] = [];
  for (let i = 1; i <= userCount; i++) {
    const userId = `user_${pad(i, 5)}`;
    const plan = PLANS[Math.min(3, Math.floor(random() ** 1.6 * 4))] as string;
    const onTrial = plan === 'free' || random() < 0.2;
    users.push({
      user_id: userId,
      email_domain: pick(DOMAINS),
      plan,
      lifetime_value: (int(0, 500_000) / 100).toFixed(2),
      trial_ends_at: onTrial ? isoSeconds(DEMO_EPOCH_MS + int(1, 30) * DAY_MS + int(0, 86_399) * 1000) : null,
      activated_on: new Date(DEMO_EPOCH_MS - int(0, 720) * DAY_MS).toISOString().slice(0, 10),
      sessions_30d: int(0, 60),
      account_id: `acct_${pad(int(1, accountCount), 5)}`,
    });
    const deviceCount = int(1, 2);
    for (let d = 0; d < deviceCount; d++) {
      const os = pick(PLATFORMS);
      devices.push({
        device_id: `dev_${pad(i, 5)}_${d + 1}_${Math.floor(random() * 0xffffff)
          .toString(16)
          .padStart(6, '0')}`,
        user_id: userId,
        platform: os.platform,
        os_name: os.os_name,
        last_seen_at: isoSeconds(DEMO_EPOCH_MS - int(0, 30 * 86_400) * 1000),
      });
    }
    const eventCount = int(Math.max(0, eventsPerUser - 2), eventsPerUser + 2);
    for (let e = 0; e < eventCount; e++) {
      const eventType = e === 0 ? 'Signed Up' : pick(EVENT_TYPES);
      events.push({
        insert_id: `evt_${pad(events.length + 1, 7)}`,
        user_id: userId,
        event_type: eventType,
        occurred_at: isoSeconds(DEMO_EPOCH_MS - int(0, 60 * 86_400) * 1000),
        amount: eventType === 'Upgraded Plan' ? int(900, 99_900) / 100 : null,
        properties: { page: pick(PAGES), source: pick(['web', 'ios', 'android'] as const), beta: random() < 0.1 },
      });
    }
  }
  return { users, accounts, devices, events };
}

/** Creates the dataset when it is missing. */
async function ensureDataset(client: BigQuery, dataset: string, location: string | undefined): Promise<void> {
  const handle = client.dataset(dataset);
  const [exists] = await handle.exists();
  if (exists) return;
  try {
    await client.createDataset(dataset, location !== undefined ? { location } : {});
  } catch (err) {
    // created meanwhile by a concurrent seed
    if ((err as { code?: unknown }).code !== 409) throw err;
  }
}

/** Drops and re-creates `table` with `schema`. */
async function recreateTable(client: BigQuery, dataset: string, table: string, schema: TableField[]): Promise<Table> {
  const handle = client.dataset(dataset).table(table);
  const [exists] = await handle.exists();
  if (exists) await handle.delete();
  const [created] = await client.dataset(dataset).createTable(table, { schema: { fields: schema } });
  return created;
}

/** Appends `rows` to `table` with NDJSON load jobs of at most LOAD_BATCH_ROWS rows each. */
export async function loadRows(table: Table, rows: readonly object[]): Promise<void> {
  for (let start = 0; start < rows.length; start += LOAD_BATCH_ROWS) {
    const batch = rows.slice(start, start + LOAD_BATCH_ROWS);
    const body = batch.map((r) => JSON.stringify(r)).join('\n') + '\n';
    await new Promise<void>((resolve, reject) => {
      const stream = table.createWriteStream({
        sourceFormat: 'NEWLINE_DELIMITED_JSON',
        writeDisposition: 'WRITE_APPEND',
      });
      stream.on('error', reject);
      stream.on('job', (job: Job) => {
        job.promise().then(() => resolve(), reject);
      });
      stream.end(body);
    });
  }
}

/** Seeds (or re-seeds: the tables are dropped first) the demo dataset; the same options give the same rows. */
export async function seedDemoData(client: BigQuery, options: DemoDataOptions = {}): Promise<SeedDemoResult> {
  const dataset = options.dataset ?? DEMO_DATASET;
  const rows = demoRows(options);
  await ensureDataset(client, dataset, options.location);
  const tables = Object.keys(DEMO_SCHEMAS) as DemoTable[];
  for (const name of tables) {
    const table = await recreateTable(client, dataset, name, DEMO_SCHEMAS[name]);
    await loadRows(table, rows[name]);
  }
  return {
    dataset,
    rows: {
      users: rows.users.length,
      accounts: rows.accounts.length,
      devices: rows.devices.length,
      events: rows.events.length,
    },
  };
}

export interface ChangeDemoOptions {
  dataset?: string;
}

export interface ChangeDemoResult {
  dataset: string;
  updated: string[];
  added: string[];
  deleted: string[];
}

/** The users changeDemoRows edits. */
export const DEMO_CHANGES = {
  updated: ['user_00002', 'user_00003', 'user_00005'],
  added: ['user_90001'],
  deleted: ['user_00007', 'user_00011'],
} as const;

const quoteList = (ids: readonly string[]): string => ids.map((id) => `'${id}'`).join(', ');

/**
 * The demo's change between two runs: 3 users upgraded (plan, lifetime value, sessions), 1 added, 2 deleted.
 * Idempotent: running it twice leaves the same rows.
 */
export async function changeDemoRows(client: BigQuery, options: ChangeDemoOptions = {}): Promise<ChangeDemoResult> {
  const dataset = options.dataset ?? DEMO_DATASET;
  const users = `\`${client.projectId}.${dataset}.users\``;
  const [added] = DEMO_CHANGES.added;
  const statements = [
    `UPDATE ${users} SET plan = 'enterprise', lifetime_value = NUMERIC '12500.00', sessions_30d = 99 ` +
      `WHERE user_id IN (${quoteList(DEMO_CHANGES.updated)})`,
    `DELETE FROM ${users} WHERE user_id IN (${quoteList([...DEMO_CHANGES.deleted, ...DEMO_CHANGES.added])})`,
    `INSERT INTO ${users} (user_id, email_domain, plan, lifetime_value, trial_ends_at, activated_on, sessions_30d, account_id) ` +
      `VALUES ('${added}', 'acme.io', 'pro', NUMERIC '49.00', TIMESTAMP '2024-06-15 12:00:00+00', DATE '2024-06-01', 1, 'acct_00001')`,
  ];
  for (const query of statements) await runStatement(client, query);
  return {
    dataset,
    updated: [...DEMO_CHANGES.updated],
    added: [...DEMO_CHANGES.added],
    deleted: [...DEMO_CHANGES.deleted],
  };
}

async function runStatement(client: BigQuery, query: string): Promise<void> {
  const [job] = await client.createQueryJob({ query });
  await job.getQueryResults({ maxResults: 0, autoPaginate: false });
}

export interface SyntheticUsersOptions {
  dataset: string;
  /** Table name (default `users_<rows>`). */
  table?: string;
  rows: number;
  /**
   * Revision r changes the rows whose n % 100 < r (plan → enterprise, sessions_30d + 100): revision 1 differs
   * from revision 0 in 1% of the rows, which is what a benchmark of "the second run sends only the changes" needs.
   */
  revision?: number;
  location?: string;
}

export interface SyntheticUsersResult {
  table: string;
  rows: number;
  ms: number;
}

/** Rows per side of the cross join that numbers synthetic rows (so no single array exceeds this). */
const SYNTHETIC_BLOCK = 1000;

/**
 * Creates (replaces) a table of `rows` synthetic users in one CREATE TABLE AS query: no rows cross the network,
 * so 200,000 rows take seconds even on the emulator. The columns are those of the demo `users` table; row n is
 * `syntheticUser(n, revision)`.
 */
export async function createSyntheticUsers(
  client: BigQuery,
  options: SyntheticUsersOptions,
): Promise<SyntheticUsersResult> {
  const started = Date.now();
  const rows = options.rows;
  if (!Number.isInteger(rows) || rows < 1)
    throw new RangeError(`synthetic rows must be a positive integer; got ${rows}`);
  const revision = Math.max(0, Math.floor(options.revision ?? 0));
  const table = options.table ?? `users_${rows}`;
  await ensureDataset(client, options.dataset, options.location);
  const blocks = Math.ceil(rows / SYNTHETIC_BLOCK) - 1;
  const changed = `MOD(n, 100) < ${revision}`;
  const query = `CREATE OR REPLACE TABLE \`${client.projectId}.${options.dataset}.${table}\` AS
SELECT
  FORMAT('user_%07d', n) AS user_id,
  ['gmail.com', 'outlook.com', 'acme.io', 'globex.com', 'initech.com'][OFFSET(MOD(n, 5))] AS email_domain,
  IF(${changed}, 'enterprise', ['free', 'starter', 'pro', 'enterprise'][OFFSET(MOD(n, 4))]) AS plan,
  CAST(MOD(n * 7919, 100000) AS NUMERIC) / 100 AS lifetime_value,
  IF(MOD(n, 3) = 0, NULL, TIMESTAMP_ADD(TIMESTAMP '2024-06-01 00:00:00+00', INTERVAL MOD(n, 90) * 3600 SECOND)) AS trial_ends_at,
  DATE_SUB(DATE '2024-06-01', INTERVAL MOD(n, 365) DAY) AS activated_on,
  MOD(n * 31, 60) + IF(${changed}, 100, 0) AS sessions_30d,
  FORMAT('acct_%05d', DIV(n - 1, 10) + 1) AS account_id
FROM (
  SELECT hi * ${SYNTHETIC_BLOCK} + lo + 1 AS n
  FROM UNNEST(GENERATE_ARRAY(0, ${blocks})) AS hi CROSS JOIN UNNEST(GENERATE_ARRAY(0, ${SYNTHETIC_BLOCK - 1})) AS lo
)
WHERE n <= ${rows}`;
  await runStatement(client, query);
  return { table: `${options.dataset}.${table}`, rows, ms: Date.now() - started };
}

/** Row n (1-based) of a synthetic users table, as BigQuerySource returns it. */
export function syntheticUser(n: number, revision = 0): Record<string, string | number | null> {
  const changed = n % 100 < revision;
  const trialMs = (n % 90) * 3600 * 1000;
  return {
    user_id: `user_${pad(n, 7)}`,
    email_domain: ['gmail.com', 'outlook.com', 'acme.io', 'globex.com', 'initech.com'][n % 5] as string,
    plan: changed ? 'enterprise' : (['free', 'starter', 'pro', 'enterprise'][n % 4] as string),
    lifetime_value: ((n * 7919) % 100000) / 100,
    trial_ends_at: n % 3 === 0 ? null : isoSeconds(DEMO_EPOCH_MS + trialMs),
    activated_on: new Date(DEMO_EPOCH_MS - (n % 365) * DAY_MS).toISOString().slice(0, 10),
    sessions_30d: ((n * 31) % 60) + (changed ? 100 : 0),
    account_id: `acct_${pad(Math.floor((n - 1) / 10) + 1, 5)}`,
  };
}

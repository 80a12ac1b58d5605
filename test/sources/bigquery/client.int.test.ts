/** createBigQueryClient: against an emulator no request leaves loopback; BIGQUERY_EMULATOR_HOST cannot redirect it. */
import type { NativeLoader } from './native-client';

// the real client, loaded natively (see native-client.ts)
jest.mock('@google-cloud/bigquery', () =>
  jest.requireActual<NativeLoader>('./native-client').loadNatively('@google-cloud/bigquery'),
);
jest.mock('google-auth-library', () =>
  jest.requireActual<NativeLoader>('./native-client').loadNatively('google-auth-library'),
);
jest.setTimeout(180_000);

import { BigQuery } from '@google-cloud/bigquery';
import { createBigQueryClient } from '../../../src/sources/bigquery/client';
import { BigQuerySource, isExhausted } from '../../../src/sources/bigquery/source';
import { hostEnv } from './native-client';
import { recorder, testEmulator } from './support';

const ENV_KEYS = [
  'GCE_METADATA_HOST',
  'GCE_METADATA_IP',
  'METADATA_SERVER_DETECTION',
  'GOOGLE_APPLICATION_CREDENTIALS',
  'BIGQUERY_EMULATOR_HOST',
];

let ctx: Awaited<ReturnType<typeof testEmulator>>;
let metadata: Awaited<ReturnType<typeof recorder>>;
const saved: Record<string, string | undefined> = {};
const env = hostEnv();

beforeAll(async () => {
  ctx = await testEmulator('bq_client');
  metadata = await recorder();
  for (const key of ENV_KEYS) {
    saved[key] = env[key];
    delete env[key];
  }
  // any probe of the cloud metadata server lands on this loopback recorder
  env.GCE_METADATA_HOST = metadata.host;
});

afterAll(async () => {
  for (const key of ENV_KEYS) {
    if (saved[key] === undefined) delete env[key];
    else env[key] = saved[key];
  }
  await metadata?.close();
  await ctx?.cleanup();
});

test('with apiEndpoint the client never contacts the metadata server: dry run, open and every page stay on loopback', async () => {
  const bq = createBigQueryClient(ctx.source);
  const source = new BigQuerySource(ctx.source, { client: bq });
  const dry = await source.dryRun({ sql: 'SELECT n FROM UNNEST(GENERATE_ARRAY(1, 25)) AS n' });
  expect(dry.schema).toEqual([{ name: 'n', type: 'INT64', mode: 'NULLABLE' }]);
  const opened = await source.open({ sql: 'SELECT n FROM UNNEST(GENERATE_ARRAY(1, 25)) AS n ORDER BY n' });
  let position = opened.position;
  const seen: unknown[] = [];
  while (!isExhausted(position)) {
    const page = await source.readPage(position, { pageSize: 10 });
    seen.push(...page.rows.map((r) => r.n));
    position = page.next;
  }
  expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  expect(metadata.requests).toEqual([]);
});

test('BIGQUERY_EMULATOR_HOST (even in its broken host:port form) does not override the configured endpoint', async () => {
  env.BIGQUERY_EMULATOR_HOST = '127.0.0.1:1';
  try {
    const bq = createBigQueryClient(ctx.source);
    expect(bq.baseUrl).toBe(`${ctx.emulator.endpoint}/bigquery/v2`);
    const [rows] = await bq.query('SELECT 7 AS x');
    expect(rows).toEqual([{ x: 7 }]);
    const cloud = createBigQueryClient({ type: 'bigquery', project: 'p' });
    expect(cloud.baseUrl).toBe('https://bigquery.googleapis.com/bigquery/v2');
  } finally {
    delete env.BIGQUERY_EMULATOR_HOST;
  }
  expect(metadata.requests).toEqual([]);
});

test('control: the same client without the anonymous auth client probes the metadata server first', async () => {
  const plain = new BigQuery({ projectId: 'ampsync-dev', apiEndpoint: ctx.emulator.endpoint });
  // the library looks for Application Default Credentials (GCE metadata included), fails, and sends unauthenticated
  const [rows] = await plain.query('SELECT 1 AS x');
  expect(rows).toEqual([{ x: 1 }]);
  expect(metadata.requests.length).toBeGreaterThan(0);
  expect(metadata.requests[0]?.path).toMatch(/^\/computeMetadata\/v1\//);
});

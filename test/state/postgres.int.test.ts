import { Client } from 'pg';
import { canonicalJson, hashText } from '../../src/diff/canonical';
import { StateConfigError, StateUnavailableError } from '../../src/state/errors';
import { DELIVERED_LOOKUP_SETTING, PostgresStateStore, deliveredRowsSql } from '../../src/state/postgres';
import { deliveredOutcome, emptyCounts } from '../../src/sync/types';
import { services, uniqueName } from '../support/env';
import { describeStateStore } from './conformance';

const schema = uniqueName('ampsync_test').toLowerCase();
const connectionString = services.postgresUrl;

afterAll(async () => {
  const client = new Client({ connectionString });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

// every factory call opens its own pool, as a worker on another machine would
describeStateStore('PostgresStateStore', () => new PostgresStateStore({ connectionString, schema, poolSize: 4 }));

describe('PostgresStateStore', () => {
  it('refuses a schema name that is not a plain identifier', () => {
    expect(() => new PostgresStateStore({ connectionString, schema: 'x"; DROP TABLE runs; --' })).toThrow(
      StateConfigError,
    );
  });

  it('reports a refused connection as retryable, naming the operation', async () => {
    const store = new PostgresStateStore({
      connectionString: 'postgres://ampsync:secret@127.0.0.1:1/ampsync',
      schema,
      connectionTimeoutMs: 2000,
    });
    const attempt = store.countSynced('users');
    await expect(attempt).rejects.toThrow(StateUnavailableError);
    await expect(attempt).rejects.toMatchObject({ retryable: true });
    await expect(attempt).rejects.toThrow(/PostgreSQL state store could not count the synced keys of sync "users"/);
    await expect(attempt).rejects.not.toThrow(/secret/);
    await store.close();
  });

  it('keeps its tables in the configured schema', async () => {
    const store = new PostgresStateStore({ connectionString, schema });
    await store.migrate();
    const client = new Client({ connectionString });
    await client.connect();
    const { rows } = await client.query<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
      [schema],
    );
    await client.end();
    expect(rows.map((r) => r.table_name)).toEqual([
      'rejected',
      'run_delivered',
      'run_pages',
      'run_rows',
      'run_seen',
      'runs',
      'schema_version',
      'synced',
      'warehouse_snapshots',
    ]);
    await store.close();
  });
});

describe('PostgresStateStore plans', () => {
  const planSchema = uniqueName('ampsync_plan').toLowerCase();
  const rows = 5_000;
  const syncId = 'plan_users';
  let store: PostgresStateStore;
  let admin: Client;

  beforeAll(async () => {
    store = new PostgresStateStore({ connectionString, schema: planSchema });
    await store.migrate();
    admin = new Client({ connectionString });
    await admin.connect();
  });

  afterAll(async () => {
    await store.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${planSchema}" CASCADE`);
    await admin.end();
  });

  async function deliverRun(runId: string, plan: string): Promise<number> {
    await store.beginRun({ syncId, runId, mode: 'upsert', chunkSize: rows, workflowId: 'wf_plan' });
    const mappedRows = Array.from({ length: rows }, (_, i) => {
      const key = `user-${String(i).padStart(6, '0')}`;
      const payload = canonicalJson({ user_id: key, user_properties: { plan } });
      return { key, hash: hashText(payload), payload };
    });
    const position = { jobId: 'job_1', location: 'US', pageToken: null, page: 1, rowsRead: rows };
    await store.stagePage({ syncId, runId, rows: mappedRows, rejected: [], cursor: position });
    await store.finishExtract(syncId, runId);
    const staged = await store.readChunk(syncId, runId, 0);
    await store.recordOutcomes(syncId, runId, staged.map(deliveredOutcome));
    return staged.length;
  }

  it('looks delivered rows up by position even when ANALYZE last saw the staging tables empty', async () => {
    const analyzeStaging = () =>
      admin.query(
        ['run_rows', 'run_delivered', 'run_seen', 'run_pages'].map((t) => `ANALYZE "${planSchema}".${t}`).join(';'),
      );
    expect(await deliverRun('run_1', 'free')).toBe(rows);
    // what autovacuum does during a long run, then between runs: statistics of full, then of empty staging tables
    await analyzeStaging();
    expect(await store.commitChunk(syncId, 'run_1', 0)).toMatchObject({ delivered: rows, pending: 0 });
    await store.finishRun(syncId, 'run_1', 'succeeded', emptyCounts());
    await analyzeStaging();

    expect(await deliverRun('run_2', 'paid')).toBe(rows);
    await admin.query(`SET ${DELIVERED_LOOKUP_SETTING}`);
    // the lookup commitChunk makes, planned as it plans it, with its buffer reads counted
    const runNo = await admin.query<{ run_no: number }>(
      `SELECT run_no FROM "${planSchema}".runs WHERE run_id = 'run_2'`,
    );
    const explained = await admin.query<{
      'QUERY PLAN': [{ Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number } }];
    }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${deliveredRowsSql(`"${planSchema}"`)}`, [
      runNo.rows[0]!.run_no,
      0,
      rows,
    ]);
    const plan = explained.rows[0]!['QUERY PLAN'][0].Plan;
    // one index probe per row reads a few blocks; scanning the run's rows for each row reads thousands
    expect((plan['Shared Hit Blocks'] + plan['Shared Read Blocks']) / rows).toBeLessThan(10);
    expect(await store.commitChunk(syncId, 'run_2', 0)).toMatchObject({ delivered: rows, pending: 0 });
  });

  it('keeps a run in key order while its promised pages come in order, and drops it at the first that does not', async () => {
    const orderSync = 'plan_order';
    const order = async (runId: string) =>
      (
        await admin.query<{ key_ordered: boolean; last_key: string | null }>(
          `SELECT key_ordered, last_key FROM "${planSchema}".runs WHERE sync_id = $1 AND run_id = $2`,
          [orderSync, runId],
        )
      ).rows[0];
    const page = (keys: string[], page: number, keyOrdered: boolean) =>
      store.stagePage({
        syncId: orderSync,
        runId: 'run_1',
        rows: keys.map((key) => ({ key, hash: 'h', payload: '{}' })),
        rejected: [],
        cursor: { jobId: 'job_1', pageToken: `p${page}`, page, rowsRead: page * 2 },
        keyOrdered,
      });
    await store.beginRun({ syncId: orderSync, runId: 'run_1', mode: 'upsert', chunkSize: 10 });
    expect(await order('run_1')).toEqual({ key_ordered: true, last_key: null });
    // byte order of the keys' UTF-8 text ("Z" < "a" < "é"), whatever order the rows have within a page
    await page(['b', 'Z'], 1, true);
    expect(await order('run_1')).toEqual({ key_ordered: true, last_key: 'b' });
    await page(['é', 'c'], 2, true);
    expect(await order('run_1')).toEqual({ key_ordered: true, last_key: 'é' });
    await page([], 3, true);
    expect(await order('run_1')).toEqual({ key_ordered: true, last_key: 'é' });
    await page(['f', 'ü'], 4, true);
    expect(await order('run_1')).toEqual({ key_ordered: false, last_key: 'ü' });
    await page(['ā'], 5, true);
    expect(await order('run_1')).toEqual({ key_ordered: false, last_key: 'ā' });
    const finished = await store.finishExtract(orderSync, 'run_1');
    expect(finished.counts).toMatchObject({ new: 7, unchanged: 0 });

    // a page not promised in order ends the order too
    await store.beginRun({ syncId: orderSync, runId: 'run_2', mode: 'upsert', chunkSize: 10 });
    await store.stagePage({
      syncId: orderSync,
      runId: 'run_2',
      rows: [{ key: 'a', hash: 'h', payload: '{}' }],
      rejected: [],
      cursor: { jobId: 'job_2', pageToken: null, page: 1, rowsRead: 1 },
    });
    expect(await order('run_2')).toMatchObject({ key_ordered: false });
  });
});

describe("PostgresStateStore dropping a finished run's staging", () => {
  const dropSchema = uniqueName('ampsync_drop').toLowerCase();
  let store: PostgresStateStore;
  let admin: Client;

  beforeAll(async () => {
    store = new PostgresStateStore({ connectionString, schema: dropSchema });
    await store.migrate();
    admin = new Client({ connectionString });
    await admin.connect();
  });

  afterAll(async () => {
    await store.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${dropSchema}" CASCADE`);
    await admin.end();
  });

  async function stage(syncId: string, runId: string, rows: number): Promise<void> {
    await store.beginRun({ syncId, runId, mode: 'upsert', chunkSize: 1000 });
    const page = Array.from({ length: rows }, (_, i) => ({
      key: `u${String(i).padStart(5, '0')}`,
      hash: `h${runId}`,
      payload: '{}',
    }));
    const cursor = { jobId: 'j', pageToken: null, page: 1, rowsRead: rows };
    await store.stagePage({ syncId, runId, rows: page, rejected: [], cursor, keyOrdered: true });
    await store.finishExtract(syncId, runId);
  }
  const stagedRows = async (runId: string): Promise<number> => {
    const { rows } = await admin.query<{ n: string }>(
      `SELECT count(*) AS n FROM "${dropSchema}".run_rows
        WHERE run_no = (SELECT run_no FROM "${dropSchema}".runs WHERE run_id = $1)`,
      [runId],
    );
    return Number(rows[0]?.n);
  };
  /** The file behind run_rows: TRUNCATE gives the table a new one, DELETE keeps it. */
  const fileOfRunRows = async (): Promise<string> =>
    (await admin.query<{ f: string }>(`SELECT pg_relation_filenode('"${dropSchema}".run_rows')::text AS f`)).rows[0]
      ?.f as string;

  it('truncates the staging tables when they hold that run alone', async () => {
    await stage('users', 'r1', 500);
    expect(await stagedRows('r1')).toBe(500);
    const before = await fileOfRunRows();
    await store.finishRun('users', 'r1', 'succeeded', { ...emptyCounts(), new: 500 });
    expect(await stagedRows('r1')).toBe(0);
    expect(await fileOfRunRows()).not.toBe(before);
    expect((await store.getRun('users', 'r1'))?.counts).toMatchObject({ new: 500 });
  });

  it("deletes only that run's rows when another run's staging shares the tables", async () => {
    await stage('orders', 'o1', 300);
    await stage('users', 'r2', 500);
    const before = await fileOfRunRows();
    await store.finishRun('users', 'r2', 'succeeded', { ...emptyCounts(), new: 500 });
    expect(await stagedRows('r2')).toBe(0);
    expect(await fileOfRunRows()).toBe(before);
    expect(await stagedRows('o1')).toBe(300);
    expect(await store.readChunk('orders', 'o1', 0)).toHaveLength(300);
    await store.finishRun('orders', 'o1', 'succeeded', { ...emptyCounts(), new: 300 });
  });

  it('does not wait for a transaction that holds a staging table: it deletes instead', async () => {
    await stage('users', 'r3', 500);
    const before = await fileOfRunRows();
    const reader = new Client({ connectionString });
    await reader.connect();
    try {
      // an open transaction that read a staging table holds a lock TRUNCATE would wait for
      await reader.query('BEGIN');
      await reader.query(`SELECT count(*) FROM "${dropSchema}".run_rows`);
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<'waited'>((resolve) => (timer = setTimeout(() => resolve('waited'), 10_000)));
      const finished = store
        .finishRun('users', 'r3', 'succeeded', { ...emptyCounts(), new: 500 })
        .then(() => 'finished');
      expect(await Promise.race([finished, waited])).toBe('finished');
      clearTimeout(timer);
      expect(await stagedRows('r3')).toBe(0);
      expect(await fileOfRunRows()).toBe(before);
    } finally {
      await reader.query('ROLLBACK');
      await reader.end();
    }
  });
});

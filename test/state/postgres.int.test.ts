import { Client } from 'pg';
import { StateConfigError, StateUnavailableError } from '../../src/state/errors';
import { PostgresStateStore } from '../../src/state/postgres';
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

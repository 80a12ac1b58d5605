import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStateStore } from '../../src/state';
import { StateConfigError } from '../../src/state/errors';
import { PostgresStateStore } from '../../src/state/postgres';
import { SqliteStateStore } from '../../src/state/sqlite';

describe('openStateStore', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-open-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['sqlite:', path.join(dir, 'a.db')],
    ['sqlite://', path.join(dir, 'b.db')],
    ['', path.join(dir, 'c.db')],
  ])('opens SQLite for %s%s', async (prefix, file) => {
    const store = openStateStore(`${prefix}${file}`);
    expect(store).toBeInstanceOf(SqliteStateStore);
    expect((store as SqliteStateStore).file).toBe(file);
    await store.close();
  });

  it.each(['postgres://ampsync@127.0.0.1:1/db', 'postgresql://ampsync@127.0.0.1:1/db'])(
    'opens PostgreSQL for %s, in the schema asked for',
    async (url) => {
      const store = openStateStore(url, { schema: 'tenant_a' });
      expect(store).toBeInstanceOf(PostgresStateStore);
      expect((store as PostgresStateStore).schema).toBe('tenant_a');
      await store.close();
    },
  );

  it('names an unknown scheme, never the rest of the URL', () => {
    const open = (): unknown => openStateStore('mysql://root:hunter2@db/ampsync');
    expect(open).toThrow(StateConfigError);
    expect(open).toThrow('unsupported state store URL scheme "mysql:"');
    expect(open).not.toThrow(/hunter2/);
  });

  it('refuses a sqlite: URL without a file', () => {
    expect(() => openStateStore('sqlite:')).toThrow(StateConfigError);
  });
});

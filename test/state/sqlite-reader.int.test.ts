import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { StateUnavailableError } from '../../src/state/errors';
import { SqliteReader } from '../../src/state/sqlite-reader';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-reader-'));
const file = path.join(dir, 'state.db');
let db: Database.Database;
let reader: SqliteReader;

const QUERIES = {
  count: 'SELECT count(*) AS n FROM items',
  items: 'SELECT id, name FROM items WHERE id >= @from ORDER BY id',
  // what a JSON object parameter holds, in the order json_each reads it
  objectKeys: `SELECT json_group_array(key) AS keys, json_group_array(value) AS vals FROM json_each(@object)`,
  broken: `SELECT json_extract(@text, '$.a') AS a`,
  write: `INSERT INTO items (id, name) VALUES (@id, 'written by the reader') RETURNING id`,
  slow: `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 50000000) SELECT count(*) AS n FROM c`,
};

beforeAll(() => {
  db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
  reader = new SqliteReader({ file, busyTimeoutMs: 1_000, cacheKib: 1_024, queries: QUERIES });
});

afterAll(async () => {
  await reader.close();
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('SqliteReader', () => {
  it('runs the steps of one request on its thread, each as a row object (get) or rows of values (raw)', async () => {
    db.prepare('INSERT INTO items (id, name) VALUES (?, ?)').run(1, 'one');
    db.prepare('INSERT INTO items (id, name) VALUES (?, ?)').run(2, 'two');
    const [count, items] = await reader.read([
      { query: 'count', params: {}, mode: 'get' },
      { query: 'items', params: { from: 2 }, mode: 'raw' },
    ]);
    expect(count).toEqual({ n: 2 });
    expect(items).toEqual([[2, 'two']]);
  });

  it('reads what the main connection committed before each request', async () => {
    db.prepare('INSERT INTO items (id, name) VALUES (?, ?)').run(3, 'three');
    expect(await reader.read([{ query: 'count', params: {}, mode: 'get' }])).toEqual([{ n: 3 }]);
    db.transaction(() => {
      db.prepare('INSERT INTO items (id, name) VALUES (?, ?)').run(4, 'four');
      db.prepare('INSERT INTO items (id, name) VALUES (?, ?)').run(5, 'five');
    })();
    expect(await reader.read([{ query: 'count', params: {}, mode: 'get' }])).toEqual([{ n: 5 }]);
  });

  it('builds a JSON object parameter from keys and values, in key order, with any text in them', async () => {
    const keys = ['b', 'a "quoted" key', 'ünïcødé', '', 'back\\slash', 'line\nbreak', '\u001f\u001e', 'a'];
    const values = keys.map((k, i) => `value ${i} of ${k}`);
    const [row] = (await reader.read([
      { query: 'objectKeys', params: {}, object: { param: 'object', keys, values }, mode: 'get' },
    ])) as [{ keys: string; vals: string }];
    const sorted = [...keys].sort();
    expect(JSON.parse(row.keys)).toEqual(sorted);
    expect(JSON.parse(row.vals)).toEqual(sorted.map((k) => `value ${keys.indexOf(k)} of ${k}`));
  });

  it('rejects a request with the database error and its code, and refuses to write', async () => {
    await expect(reader.read([{ query: 'broken', params: { text: '{not json' }, mode: 'get' }])).rejects.toThrow(
      /malformed JSON/,
    );
    await expect(reader.read([{ query: 'write', params: { id: 99 }, mode: 'get' }])).rejects.toMatchObject({
      code: expect.stringMatching(/^SQLITE_READONLY/) as unknown,
    });
    await expect(reader.read([{ query: 'nope', params: {}, mode: 'get' }])).rejects.toThrow(
      'the reader has no query "nope"',
    );
    // the thread goes on answering
    expect(await reader.read([{ query: 'count', params: {}, mode: 'get' }])).toEqual([{ n: 5 }]);
  });

  it('fails the reads in flight when its thread stops, as retryable, and starts a new thread for the next', async () => {
    const slow = reader.read([{ query: 'slow', params: {}, mode: 'get' }]);
    await reader.close();
    await expect(slow).rejects.toBeInstanceOf(StateUnavailableError);
    await expect(slow).rejects.toThrow(/reader thread stopped/);
    expect(await reader.read([{ query: 'count', params: {}, mode: 'get' }])).toEqual([{ n: 5 }]);
  });
});

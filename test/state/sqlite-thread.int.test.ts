import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { SqliteThread, ThreadStoppedError } from '../../src/state/sqlite-thread';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-reader-'));
const file = path.join(dir, 'state.db');
let db: Database.Database;
let reader: SqliteThread;
let writer: SqliteThread;

const QUERIES = {
  count: 'SELECT count(*) AS n FROM items',
  items: 'SELECT id, name FROM items WHERE id >= @from ORDER BY id',
  // what a JSON object parameter holds, in the order json_each reads it
  objectKeys: `SELECT json_group_array(key) AS keys, json_group_array(value) AS vals FROM json_each(@object)`,
  broken: `SELECT json_extract(@text, '$.a') AS a`,
  write: `INSERT INTO items (id, name) VALUES (@id, 'written by the reader') RETURNING id`,
  pause: `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000000) SELECT count(*) AS n FROM c`,
  slow: `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 50000000) SELECT count(*) AS n FROM c`,
};

beforeAll(() => {
  db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
  reader = new SqliteThread({ file, busyTimeoutMs: 1_000, cacheKib: 1_024, writable: false, queries: QUERIES });
  writer = new SqliteThread({ file, busyTimeoutMs: 1_000, cacheKib: 1_024, writable: true, queries: QUERIES });
});

afterAll(async () => {
  await reader.close();
  await writer.close();
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('SqliteThread', () => {
  it('runs the steps of one request on its thread, each as a row object (get) or rows of values (raw)', async () => {
    db.prepare('INSERT INTO items (id, name) VALUES (?, ?)').run(1, 'one');
    db.prepare('INSERT INTO items (id, name) VALUES (?, ?)').run(2, 'two');
    const [count, items] = await reader.run([
      { query: 'count', params: {}, mode: 'get' },
      { query: 'items', params: { from: 2 }, mode: 'raw' },
    ]);
    expect(count).toEqual({ n: 2 });
    expect(items).toEqual([[2, 'two']]);
  });

  it('reads what the main connection committed before each request', async () => {
    db.prepare('INSERT INTO items (id, name) VALUES (?, ?)').run(3, 'three');
    expect(await reader.run([{ query: 'count', params: {}, mode: 'get' }])).toEqual([{ n: 3 }]);
    db.transaction(() => {
      db.prepare('INSERT INTO items (id, name) VALUES (?, ?)').run(4, 'four');
      db.prepare('INSERT INTO items (id, name) VALUES (?, ?)').run(5, 'five');
    })();
    expect(await reader.run([{ query: 'count', params: {}, mode: 'get' }])).toEqual([{ n: 5 }]);
  });

  it('builds a JSON object parameter from keys and values, in key order, with any text in them', async () => {
    const keys = ['b', 'a "quoted" key', 'ünïcødé', '', 'back\\slash', 'line\nbreak', '\u001f\u001e', 'a'];
    const values = keys.map((k, i) => `value ${i} of ${k}`);
    const [row] = (await reader.run([
      { query: 'objectKeys', params: {}, object: { param: 'object', keys, values }, mode: 'get' },
    ])) as [{ keys: string; vals: string }];
    const sorted = [...keys].sort();
    expect(JSON.parse(row.keys)).toEqual(sorted);
    expect(JSON.parse(row.vals)).toEqual(sorted.map((k) => `value ${keys.indexOf(k)} of ${k}`));
  });

  it('rejects a request with the database error and its code, and refuses to write', async () => {
    await expect(reader.run([{ query: 'broken', params: { text: '{not json' }, mode: 'get' }])).rejects.toThrow(
      /malformed JSON/,
    );
    await expect(reader.run([{ query: 'write', params: { id: 99 }, mode: 'get' }])).rejects.toMatchObject({
      code: expect.stringMatching(/^SQLITE_READONLY/) as unknown,
    });
    await expect(reader.run([{ query: 'nope', params: {}, mode: 'get' }])).rejects.toThrow(
      'the thread has no query "nope"',
    );
    // the thread goes on answering
    expect(await reader.run([{ query: 'count', params: {}, mode: 'get' }])).toEqual([{ n: 5 }]);
  });

  it('fails the reads in flight when its thread stops, and starts a new thread for the next', async () => {
    const slow = reader.run([{ query: 'slow', params: {}, mode: 'get' }]);
    await reader.close();
    await expect(slow).rejects.toBeInstanceOf(ThreadStoppedError);
    await expect(slow).rejects.toThrow('its reader thread stopped (exit code 1)');
    expect(await reader.run([{ query: 'count', params: {}, mode: 'get' }])).toEqual([{ n: 5 }]);
  });

  it('runs the steps of a writer in one write transaction: all of them, or none when one fails', async () => {
    const [first, second] = await writer.run([
      { query: 'write', params: { id: 10 }, mode: 'run' },
      { query: 'write', params: { id: 11 }, mode: 'run' },
    ]);
    expect(first).toEqual({ changes: 1 });
    expect(second).toEqual({ changes: 1 });
    await expect(
      writer.run([
        { query: 'write', params: { id: 12 }, mode: 'run' },
        { query: 'write', params: { id: 10 }, mode: 'run' },
      ]),
    ).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    const ids = db.prepare('SELECT id FROM items WHERE id >= 10 ORDER BY id').pluck().all();
    expect(ids).toEqual([10, 11]);
  });

  it('lets the main connection and the writer take turns at writing, neither failing while the other writes', async () => {
    const main = db.prepare('INSERT INTO items (id, name) VALUES (?, ?)');
    const writing = writer.run([
      { query: 'pause', params: {}, mode: 'get' },
      { query: 'write', params: { id: 20 }, mode: 'run' },
    ]);
    db.transaction(() => main.run(21, 'main'))();
    await writing;
    db.transaction(() => main.run(22, 'main'))();
    expect(db.prepare('SELECT id FROM items WHERE id >= 20 ORDER BY id').pluck().all()).toEqual([20, 21, 22]);
  });
});

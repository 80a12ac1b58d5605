import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { StateUnavailableError } from '../../src/state/errors';
import { SqliteStateStore } from '../../src/state/sqlite';
import { describeStateStore } from './conformance';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-sqlite-'));
const file = path.join(dir, 'nested', 'state.db');

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describeStateStore('SqliteStateStore', () => new SqliteStateStore({ file }));

describe('SqliteStateStore', () => {
  it('creates a private folder and file, in WAL mode', async () => {
    const store = new SqliteStateStore({ file: path.join(dir, 'private', 'state.db') });
    await store.migrate();
    expect(fs.statSync(path.join(dir, 'private')).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, 'private', 'state.db')).mode & 0o777).toBe(0o600);
    const raw = new Database(path.join(dir, 'private', 'state.db'), { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    await store.close();
  });

  it('reports a write blocked by another process past the busy timeout as retryable', async () => {
    const busyFile = path.join(dir, 'busy.db');
    const store = new SqliteStateStore({ file: busyFile, busyTimeoutMs: 50 });
    await store.migrate();
    const other = new Database(busyFile);
    other.exec('BEGIN IMMEDIATE');
    try {
      const attempt = store.beginRun({ syncId: 'users', runId: 'r1', mode: 'upsert', chunkSize: 10 });
      await expect(attempt).rejects.toThrow(StateUnavailableError);
      await expect(attempt).rejects.toMatchObject({ retryable: true, type: 'StateUnavailableError' });
      await expect(attempt).rejects.toThrow(/could not begin run "r1" of sync "users": .*SQLITE_BUSY/);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    // once the lock is gone the same call succeeds
    expect((await store.beginRun({ syncId: 'users', runId: 'r1', mode: 'upsert', chunkSize: 10 })).status).toBe(
      'running',
    );
    await store.close();
  });
});

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { StateConflictError, StateUnavailableError } from '../../src/state/errors';
import { SqliteStateStore } from '../../src/state/sqlite';
import { emptyCounts } from '../../src/sync/types';
import { describeStateStore, plain } from './conformance';

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

  it('upgrades a version 1 file: delivered keys keep their sync; a file from a newer ampsync is refused', async () => {
    const v1File = path.join(dir, 'v1.db');
    const raw = new Database(v1File);
    // the version 1 tables the upgrade reads (the others are unchanged)
    raw.exec(`
      CREATE TABLE runs (
        run_no INTEGER PRIMARY KEY, sync_id TEXT NOT NULL, run_id TEXT NOT NULL, workflow_id TEXT,
        status TEXT NOT NULL, mode TEXT NOT NULL, chunk_size INTEGER NOT NULL, started_at TEXT NOT NULL,
        finished_at TEXT, counts TEXT NOT NULL, chunks INTEGER, error TEXT, cursor TEXT,
        next_pos INTEGER NOT NULL DEFAULT 0, extract_result TEXT, UNIQUE (sync_id, run_id));
      CREATE TABLE synced (
        sync_id TEXT NOT NULL, key TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (sync_id, key)) WITHOUT ROWID;
      CREATE TABLE run_pages (
        run_no INTEGER NOT NULL, page INTEGER NOT NULL, result TEXT NOT NULL, PRIMARY KEY (run_no, page)) WITHOUT ROWID;
      CREATE TABLE run_rows (
        id INTEGER PRIMARY KEY, run_no INTEGER NOT NULL, pos INTEGER NOT NULL, key TEXT NOT NULL, hash TEXT NOT NULL,
        payload TEXT NOT NULL, status TEXT, reason TEXT);
      CREATE UNIQUE INDEX run_rows_by_key ON run_rows (run_no, key);
      CREATE INDEX run_rows_by_pos ON run_rows (run_no, pos);
      INSERT INTO synced VALUES ('users', 'u1', 'h1'), ('users', 'u2', 'h2'), ('devices', 'd1', 'h1');
      INSERT INTO runs (sync_id, run_id, status, mode, chunk_size, started_at, counts, chunks, next_pos, extract_result)
        VALUES ('groups', 'r1', 'running', 'upsert', 10, '2026-11-01T00:00:00Z', '{}', 1, 2, '{}');
      INSERT INTO run_rows (run_no, pos, key, hash, payload)
        VALUES (1, 0, 'acme', 'g1', '{"group_value":"acme"}'), (1, 1, 'globex', 'g2', '{"group_value":"globex"}');
    `);
    raw.pragma('user_version = 1');
    raw.close();

    const store = new SqliteStateStore({ file: v1File });
    await store.migrate();
    await store.migrate();
    expect([
      await store.countSynced('users'),
      await store.countSynced('devices'),
      await store.countSynced('groups'),
    ]).toEqual([2, 1, 0]);
    // a run staged before the upgrade goes on: its rows and payloads are where the new tables expect them
    expect(plain(await store.readChunk('groups', 'r1', 0))).toEqual([
      { key: 'acme', payload: '{"group_value":"acme"}', pos: 0 },
      { key: 'globex', payload: '{"group_value":"globex"}', pos: 1 },
    ]);
    // and their fingerprints, which a commit makes the delivered ones
    const rowsFile = new Database(v1File, { readonly: true });
    expect(rowsFile.prepare('SELECT key, hash FROM run_rows WHERE run_no = 1 ORDER BY pos').all()).toEqual([
      { key: 'acme', hash: 'g1' },
      { key: 'globex', hash: 'g2' },
    ]);
    rowsFile.close();
    await store.recordOutcomes('groups', 'r1', [{ key: 'acme', status: 'delivered' }]);
    expect(await store.commitChunk('groups', 'r1', 0)).toEqual({ delivered: 1, rejected: 0, deferred: 0, pending: 1 });
    expect(await store.countSynced('groups')).toBe(1);
    // outcomes recorded by key (as a version 2 worker did) and by position count alike
    await store.recordOutcomes('groups', 'r1', [{ key: 'globex', status: 'delivered', pos: 1 }]);
    expect(plain(await store.readChunk('groups', 'r1', 0))).toEqual([]);
    expect(await store.commitChunk('groups', 'r1', 0)).toEqual({ delivered: 2, rejected: 0, deferred: 0, pending: 0 });
    expect(await store.countSynced('groups')).toBe(2);
    // the next run diffs against the upgraded state: u1 unchanged, u2 changed, u3 new
    await store.beginRun({ syncId: 'users', runId: 'r2', mode: 'upsert', chunkSize: 10 });
    const staged = await store.stagePage({
      syncId: 'users',
      runId: 'r2',
      rows: [
        { key: 'u1', hash: 'h1', payload: '{"user_id":"u1"}' },
        { key: 'u2', hash: 'h2b', payload: '{"user_id":"u2"}' },
        { key: 'u3', hash: 'h3', payload: '{"user_id":"u3"}' },
      ],
      rejected: [],
      cursor: { jobId: 'j', pageToken: null, page: 1, rowsRead: 3 },
      keyOrdered: true,
    });
    expect(staged).toEqual({ staged: 2, unchanged: 1, new: 1 });
    // version 5's key order columns were added to the old runs table
    expect((await store.finishExtract('users', 'r2')).counts).toEqual({
      extracted: 3,
      invalid: 0,
      new: 1,
      changed: 1,
      unchanged: 1,
      gone: 0,
    });
    await store.close();
    const upgraded = new Database(v1File, { readonly: true });
    expect(upgraded.pragma('user_version', { simple: true })).toBe(6);
    upgraded.close();

    const newer = new Database(v1File);
    newer.pragma('user_version = 99');
    newer.close();
    const refusing = new SqliteStateStore({ file: v1File });
    const attempt = refusing.migrate();
    await expect(attempt).rejects.toThrow(StateConflictError);
    await expect(attempt).rejects.toThrow(/schema version 99, newer than this ampsync's 6/);
    await refusing.close();
  });

  it('upgrades a version 5 file: a run in flight keeps the positions it delivered, as ranges', async () => {
    const v5File = path.join(dir, 'v5.db');
    const store = new SqliteStateStore({ file: v5File });
    await store.migrate();
    await store.beginRun({ syncId: 'users', runId: 'r1', mode: 'upsert', chunkSize: 10 });
    await store.stagePage({
      syncId: 'users',
      runId: 'r1',
      rows: ['u0', 'u1', 'u2', 'u3'].map((key) => ({ key, hash: `h-${key}`, payload: `{"user_id":"${key}"}` })),
      rejected: [],
      cursor: { jobId: 'j', pageToken: null, page: 1, rowsRead: 4 },
    });
    await store.finishExtract('users', 'r1');
    await store.close();
    // what a version 5 worker left: one run_delivered row per delivered position
    const raw = new Database(v5File);
    raw.exec(`
      DROP TABLE run_delivered;
      CREATE TABLE run_delivered (run_no INTEGER NOT NULL, pos INTEGER NOT NULL, PRIMARY KEY (run_no, pos)) WITHOUT ROWID;
      INSERT INTO run_delivered (run_no, pos) VALUES (1, 0), (1, 2);
    `);
    raw.pragma('user_version = 5');
    raw.close();

    const upgraded = new SqliteStateStore({ file: v5File });
    await upgraded.migrate();
    expect((await upgraded.readChunk('users', 'r1', 0)).map((r) => r.key)).toEqual(['u1', 'u3']);
    expect(await upgraded.commitChunk('users', 'r1', 0)).toEqual({
      delivered: 2,
      rejected: 0,
      deferred: 0,
      pending: 2,
    });
    await upgraded.recordOutcomes('users', 'r1', [
      { key: 'u1', status: 'delivered', pos: 1 },
      { key: 'u3', status: 'delivered', pos: 3 },
    ]);
    expect(await upgraded.commitChunk('users', 'r1', 0)).toEqual({
      delivered: 4,
      rejected: 0,
      deferred: 0,
      pending: 0,
    });
    expect(await upgraded.countSynced('users')).toBe(4);
    await upgraded.close();
  });

  describe("dropping a finished run's staging", () => {
    let stagingFile: string;
    let store: SqliteStateStore;
    let raw: Database.Database;
    const stage = async (syncId: string, runId: string, rows: number): Promise<number> => {
      await store.beginRun({ syncId, runId, mode: 'upsert', chunkSize: 1000 });
      const page = Array.from({ length: rows }, (_, i) => ({
        key: `u${String(i).padStart(5, '0')}`,
        hash: `h${runId}`,
        payload: '{}',
      }));
      const cursor = { jobId: 'j', pageToken: null, page: 1, rowsRead: rows };
      await store.stagePage({ syncId, runId, rows: page, rejected: [], cursor, keyOrdered: true });
      await store.finishExtract(syncId, runId);
      return (raw.prepare('SELECT run_no FROM runs WHERE run_id = ?').get(runId) as { run_no: number }).run_no;
    };
    const stagingRows = (runNo: number): number =>
      ['run_seen', 'run_rows', 'run_payloads', 'run_delivered', 'run_pages']
        .map((t) => (raw.prepare(`SELECT count(*) AS n FROM ${t} WHERE run_no = ?`).get(runNo) as { n: number }).n)
        .reduce((a, b) => a + b, 0);
    /** Runs `work`, counting the turns the event loop takes meanwhile. */
    const countingTurns = async <T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> => {
      let turns = 0;
      let counting = true;
      const turn = (): void => {
        if (!counting) return;
        turns += 1;
        setImmediate(turn);
      };
      setImmediate(turn);
      const result = await work();
      counting = false;
      return { result, turns };
    };

    beforeEach(async () => {
      stagingFile = path.join(dir, `staging-${Math.random().toString(36).slice(2)}.db`);
      store = new SqliteStateStore({ file: stagingFile, dropBatchRows: 100 });
      await store.migrate();
      raw = new Database(stagingFile);
    });
    afterEach(async () => {
      raw.close();
      await store.close();
    });

    it('empties the staging tables whole when they hold that run alone', async () => {
      const runNo = await stage('users', 'r1', 1000);
      expect(stagingRows(runNo)).toBe(3001);
      const { result, turns } = await countingTurns(() =>
        store.finishRun('users', 'r1', 'succeeded', { ...emptyCounts(), new: 1000 }),
      );
      expect(result.status).toBe('succeeded');
      expect(stagingRows(runNo)).toBe(0);
      // one transaction per table (five), not one per 100 rows (the steps below take 20 and more)
      expect(turns).toBeLessThanOrEqual(8);
      // the run's log entry stays, and the next run of the sync stages and finishes as before
      expect((await store.getRun('users', 'r1'))?.counts).toMatchObject({ new: 1000 });
      const next = await stage('users', 'r2', 10);
      expect(stagingRows(next)).toBe(31);
      await store.finishRun('users', 'r2', 'succeeded', { ...emptyCounts(), new: 10 });
      expect(stagingRows(next)).toBe(0);
    });

    it("drops it in steps, the event loop free between them, when another run's staging shares the tables", async () => {
      const other = await stage('orders', 'o1', 300);
      const runNo = await stage('users', 'r1', 1000);
      expect(stagingRows(runNo)).toBe(3001);
      const { result, turns } = await countingTurns(() =>
        store.finishRun('users', 'r1', 'succeeded', { ...emptyCounts(), new: 1000 }),
      );
      expect(result.status).toBe('succeeded');
      expect(stagingRows(runNo)).toBe(0);
      expect(turns).toBeGreaterThanOrEqual(20);
      // the other run's staging is whole: its chunk reads and sends as before
      expect(stagingRows(other)).toBe(901);
      expect(await store.readChunk('orders', 'o1', 0)).toHaveLength(300);
    });

    it('finishes a drop cut short when the next run of the sync begins', async () => {
      // a crash after the run was marked finished left its staging (another run's shares the tables)
      await stage('orders', 'o1', 50);
      const r2 = await stage('users', 'r2', 500);
      raw.prepare("UPDATE runs SET status = 'succeeded' WHERE run_id = 'r2'").run();
      expect(stagingRows(r2)).toBe(1501);
      await store.beginRun({ syncId: 'users', runId: 'r3', mode: 'upsert', chunkSize: 1000 });
      expect(stagingRows(r2)).toBe(0);
    });
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

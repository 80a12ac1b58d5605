/**
 * The StateStore conformance suite: every implementation runs these same tests against a real database.
 * Each test works on its own sync id, so one database serves the whole file.
 */
import { randomUUID } from 'node:crypto';
import { canonicalJson, hashText } from '../../src/diff/canonical';
import { CHUNK_BUDGET_BYTES } from '../../src/state/describe';
import { RunNotFoundError, StateConflictError } from '../../src/state/errors';
import type { CommitChunkResult, FinishExtractResult, StagePageResult, StateStore } from '../../src/state/types';
import { emptyCounts } from '../../src/sync/types';
import type {
  BuiltPayload,
  DiffMode,
  DiffRow,
  MappedRow,
  RowOutcome,
  RowRejection,
  SourcePosition,
  StagedRow,
} from '../../src/sync/types';

/** Opens a new store (a new connection or pool) on the database shared by the file's tests. */
export type StateStoreFactory = () => StateStore;

interface Page {
  rows: MappedRow[];
  rejected?: RowRejection[];
}

interface RunOptions {
  mode?: DiffMode;
  chunkSize?: number;
  /** Stage every page with the source's promise of key order (the suite with the promise adds it anyway). */
  keyOrdered?: boolean;
  /** Outcome of each sent row (default: delivered). */
  outcome?: (row: StagedRow) => RowOutcome;
}

function mapped(key: string, properties: Record<string, unknown>): MappedRow {
  const payload = canonicalJson({ user_id: key, user_properties: properties });
  return { key, hash: hashText(payload), payload };
}

function user(key: string, plan = 'free'): MappedRow {
  return mapped(key, { plan });
}

function event(key: string, amount: number): MappedRow {
  const payload = canonicalJson({
    event_type: 'purchase',
    insert_id: key,
    user_id: 'u1',
    event_properties: { amount },
  });
  return { key, hash: hashText(payload), payload };
}

/** `u000`, `u001`, ... */
function keys(count: number, prefix = 'u', from = 0): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${String(from + i).padStart(3, '0')}`);
}

function pagesOf(rows: MappedRow[], pageSize: number): Page[] {
  const pages: Page[] = [];
  for (let i = 0; i < rows.length; i += pageSize) pages.push({ rows: rows.slice(i, i + pageSize) });
  return pages.length > 0 ? pages : [{ rows: [] }];
}

function cursorAfter(page: number, pages: number, rowsRead: number): SourcePosition {
  return { jobId: 'job_1', location: 'US', pageToken: page < pages ? `token_${page}` : null, page, rowsRead };
}

/**
 * Rows as a store read them back, as plain objects (key, payload, pos): a store may give rows that decode their
 * key and payload from bytes when asked, and those bytes must be the payload's UTF-8.
 */
export function plain(rows: readonly StagedRow[]): StagedRow[] {
  return rows.map((r) => {
    if (r.bytes !== undefined) {
      const { source, start, end } = r.bytes;
      expect(Buffer.from(source.buffer, source.byteOffset + start, end - start).toString('utf8')).toBe(r.payload);
    }
    return { key: r.key, payload: r.payload, ...(r.pos === undefined ? {} : { pos: r.pos }) };
  });
}

const delivered = (row: StagedRow): RowOutcome => ({ key: row.key, status: 'delivered' });

/** A staged row as readChunk gives it back at `pos`: its key and payload (its fingerprint stays in the store). */
const readBack = ({ key, payload }: { key: string; payload: string }, pos: number): StagedRow => ({
  key,
  payload,
  pos,
});

/**
 * The store with every page promised in key order, as an ordered extract stages them (unless a call says
 * otherwise). The promise is a hint the store checks: every answer must be the same with it as without.
 */
function promisingKeyOrder(target: StateStore): StateStore {
  return new Proxy(target, {
    get(t, property) {
      if (property === 'stagePage') {
        return (input: Parameters<StateStore['stagePage']>[0]) =>
          t.stagePage({ ...input, keyOrdered: input.keyOrdered ?? true });
      }
      const value: unknown = Reflect.get(t, property, t);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(t) : value;
    },
  });
}

/** Registers the conformance tests of a StateStore implementation, without and with the key-order promise. */
export function describeStateStore(name: string, open: StateStoreFactory): void {
  describeStateStoreWith(name, open, false);
  describeStateStoreWith(name, open, true);
}

function describeStateStoreWith(name: string, open: StateStoreFactory, promised: boolean): void {
  describe(`${name} conformance${promised ? ', pages promised in key order' : ''}`, () => {
    const stores: StateStore[] = [];
    let store: StateStore;

    const another = async (): Promise<StateStore> => {
      const s = promised ? promisingKeyOrder(open()) : open();
      stores.push(s);
      await s.migrate();
      return s;
    };

    beforeAll(async () => {
      store = await another();
      // migrating twice (every worker does at start) is harmless
      await store.migrate();
    });

    afterAll(async () => {
      for (const s of stores) await s.close();
    });

    const newSync = (): string => `sync_${randomUUID().slice(0, 8)}`;
    const newRun = (): string => `run_${randomUUID().slice(0, 8)}`;

    async function extract(
      syncId: string,
      runId: string,
      pages: Page[],
      options: RunOptions = {},
    ): Promise<{ results: StagePageResult[]; finished: FinishExtractResult }> {
      await store.beginRun({
        syncId,
        runId,
        mode: options.mode ?? 'upsert',
        chunkSize: options.chunkSize ?? 10,
        workflowId: `wf_${syncId}`,
      });
      const results: StagePageResult[] = [];
      let rowsRead = 0;
      for (let i = 0; i < pages.length; i++) {
        const page = pages[i]!;
        rowsRead += page.rows.length + (page.rejected?.length ?? 0);
        results.push(
          await store.stagePage({
            syncId,
            runId,
            rows: page.rows,
            rejected: page.rejected ?? [],
            cursor: cursorAfter(i + 1, pages.length, rowsRead),
            ...(options.keyOrdered === true ? { keyOrdered: true } : {}),
          }),
        );
      }
      return { results, finished: await store.finishExtract(syncId, runId) };
    }

    async function sendAll(
      syncId: string,
      runId: string,
      chunks: number,
      outcome: (row: StagedRow) => RowOutcome = delivered,
    ): Promise<{ sent: StagedRow[]; commits: CommitChunkResult[] }> {
      const sent: StagedRow[] = [];
      const commits: CommitChunkResult[] = [];
      for (let chunk = 0; chunk < chunks; chunk++) {
        const rows = await store.readChunk(syncId, runId, chunk);
        sent.push(...plain(rows));
        await store.recordOutcomes(syncId, runId, rows.map(outcome));
        commits.push(await store.commitChunk(syncId, runId, chunk));
      }
      return { sent, commits };
    }

    /** A whole run: extract, send every chunk, commit, finish. */
    async function fullRun(syncId: string, pages: Page[], options: RunOptions = {}) {
      const runId = newRun();
      const { results, finished } = await extract(syncId, runId, pages, options);
      const { sent, commits } = await sendAll(syncId, runId, finished.chunks, options.outcome);
      const record = await store.finishRun(syncId, runId, 'succeeded', {
        ...emptyCounts(),
        ...finished.counts,
        delivered: commits.reduce((n, c) => n + c.delivered, 0),
      });
      return { runId, results, finished, sent, commits, record };
    }

    const sentKeys = (rows: StagedRow[]): string[] => rows.map((r) => r.key);

    it('stages every row as new on the first run, in model order, dense chunks of chunkSize', async () => {
      const syncId = newSync();
      const rows = keys(25).map((k) => user(k));
      const run = await fullRun(syncId, pagesOf(rows, 10), { chunkSize: 10 });

      expect(run.results).toEqual([
        { staged: 10, unchanged: 0, new: 10 },
        { staged: 10, unchanged: 0, new: 10 },
        { staged: 5, unchanged: 0, new: 5 },
      ]);
      expect(run.finished).toEqual({
        counts: { extracted: 25, invalid: 0, new: 25, changed: 0, unchanged: 0, gone: 0 },
        chunks: 3,
        duplicateKeys: 0,
        sampleRejections: [],
      });
      // read back with their staging positions: dense, in model order
      expect(run.sent).toEqual(rows.map(readBack));
      expect(run.commits).toEqual([
        { delivered: 10, rejected: 0, deferred: 0, pending: 0 },
        { delivered: 10, rejected: 0, deferred: 0, pending: 0 },
        { delivered: 5, rejected: 0, deferred: 0, pending: 0 },
      ]);
      expect(await store.countSynced(syncId)).toBe(25);
    });

    it('stages nothing on a second run when nothing changed', async () => {
      const syncId = newSync();
      const rows = keys(25).map((k) => user(k));
      await fullRun(syncId, pagesOf(rows, 10));
      const second = await fullRun(syncId, pagesOf(rows, 10));

      expect(second.results.map((r) => r.staged)).toEqual([0, 0, 0]);
      expect(second.finished).toEqual({
        counts: { extracted: 25, invalid: 0, new: 0, changed: 0, unchanged: 25, gone: 0 },
        chunks: 0,
        duplicateKeys: 0,
        sampleRejections: [],
      });
      expect(second.sent).toEqual([]);
    });

    it('stages 3 changed and 1 new row and counts 2 gone after changing 3, removing 2, adding 1', async () => {
      const syncId = newSync();
      const original = keys(25).map((k) => user(k));
      await fullRun(syncId, pagesOf(original, 10));

      const changedKeys = new Set(['u003', 'u012', 'u020']);
      const removedKeys = new Set(['u007', 'u019']);
      const next = original
        .filter((r) => !removedKeys.has(r.key))
        .map((r) => (changedKeys.has(r.key) ? user(r.key, 'pro') : r));
      next.splice(5, 0, user('n001', 'trial'));
      const second = await fullRun(syncId, pagesOf(next, 10), { chunkSize: 2 });

      expect(second.finished.counts).toEqual({ extracted: 24, invalid: 0, new: 1, changed: 3, unchanged: 20, gone: 2 });
      expect(second.finished.chunks).toBe(2);
      expect(sentKeys(second.sent)).toEqual(['u003', 'n001', 'u012', 'u020']);
      expect(second.sent[0]).toEqual(readBack(user('u003', 'pro'), 0));

      // the changed hashes are now the delivered ones; the gone keys stay delivered
      const third = await fullRun(syncId, pagesOf(next, 10));
      expect(third.finished.counts).toEqual({ extracted: 24, invalid: 0, new: 0, changed: 0, unchanged: 24, gone: 2 });
      expect(await store.countSynced(syncId)).toBe(26);
    });

    it('stages only never-delivered keys for events (send-once), never a changed one again', async () => {
      const syncId = newSync();
      const first = await fullRun(syncId, [{ rows: keys(5, 'e').map((k) => event(k, 10)) }], {
        mode: 'send-once',
        outcome: (row) =>
          row.key === 'e003'
            ? { key: row.key, status: 'deferred', reason: 'throttled', retryAfterMs: 30_000 }
            : row.key === 'e004'
              ? { key: row.key, status: 'rejected', reason: 'missing user_id' }
              : delivered(row),
      });
      expect(first.commits).toEqual([{ delivered: 3, rejected: 1, deferred: 1, pending: 0 }]);

      const model = [event('e000', 10), event('e001', 99), event('e002', 10), event('e003', 10), event('e004', 10)];
      model.push(event('e005', 10));
      const second = await fullRun(syncId, [{ rows: model }], { mode: 'send-once' });
      expect(second.finished.counts).toEqual({ extracted: 6, invalid: 0, new: 3, changed: 0, unchanged: 3, gone: 0 });
      expect(second.results).toEqual([{ staged: 3, unchanged: 3, new: 3 }]);
      expect(sentKeys(second.sent)).toEqual(['e003', 'e004', 'e005']);
    });

    it('rejects NULL and duplicate keys with their reasons and never stages them', async () => {
      const syncId = newSync();
      const runId = newRun();
      const pages: Page[] = [
        {
          rows: [user('a'), user('b'), user('x', 'one'), user('x', 'two')],
          rejected: [{ key: null, reason: 'user_id is NULL', stage: 'diff' }],
        },
        {
          rows: [user('c'), user('b', 'pro'), user('d')],
          rejected: [{ key: 'd', reason: 'time is not a timestamp', stage: 'validation' }],
        },
      ];
      const { results, finished } = await extract(syncId, runId, pages, { chunkSize: 1 });

      expect(results).toEqual([
        { staged: 2, unchanged: 0, new: 2 },
        { staged: 2, unchanged: 0, new: 2 },
      ]);
      expect(finished).toEqual({
        // 7 mapped + 2 rejected rows; invalid: the 2 rejected and the 5 mapped rows of keys b, d, x
        counts: { extracted: 9, invalid: 7, new: 2, changed: 0, unchanged: 0, gone: 0 },
        chunks: 2,
        duplicateKeys: 3,
        sampleRejections: [
          { key: null, reason: 'user_id is NULL', stage: 'diff' },
          { key: 'd', reason: 'time is not a timestamp', stage: 'validation' },
          { key: 'b', reason: 'duplicate key "b" appears 2 times in the model', stage: 'diff' },
          { key: 'd', reason: 'duplicate key "d" appears 2 times in the model', stage: 'diff' },
          { key: 'x', reason: 'duplicate key "x" appears 2 times in the model', stage: 'diff' },
        ],
      });
      // duplicates removed, chunks renumbered densely in staging order
      expect(plain(await store.readChunk(syncId, runId, 0))).toEqual([readBack(user('a'), 0)]);
      expect(plain(await store.readChunk(syncId, runId, 1))).toEqual([readBack(user('c'), 1)]);
      await expect(store.readChunk(syncId, runId, 2)).rejects.toThrow(StateConflictError);

      const rejected = await store.listRejected(syncId, 10);
      expect(rejected.map((r) => [r.key, r.stage])).toEqual([
        ['x', 'diff'],
        ['d', 'diff'],
        ['b', 'diff'],
        ['d', 'validation'],
        [null, 'diff'],
      ]);
      expect(rejected.every((r) => r.syncId === syncId && r.runId === runId && !Number.isNaN(Date.parse(r.at)))).toBe(
        true,
      );
    });

    it('scales duplicate detection across many pages and chunk boundaries', async () => {
      const syncId = newSync();
      const runId = newRun();
      const rows = keys(30).map((k) => user(k));
      // u005 again on the last page, u006 twice on its own page
      const pages = pagesOf(rows, 7);
      pages[4]!.rows.push(user('u005', 'again'));
      pages[0]!.rows.push(user('u006', 'twice'));
      const { finished } = await extract(syncId, runId, pages, { chunkSize: 4 });
      expect(finished.duplicateKeys).toBe(2);
      expect(finished.counts).toEqual({ extracted: 32, invalid: 4, new: 28, changed: 0, unchanged: 0, gone: 0 });
      expect(finished.chunks).toBe(7);
      const staged: StagedRow[] = [];
      for (let chunk = 0; chunk < finished.chunks; chunk++) {
        const rowsOfChunk = await store.readChunk(syncId, runId, chunk);
        expect(rowsOfChunk.length).toBe(4);
        staged.push(...rowsOfChunk);
      }
      expect(sentKeys(staged)).toEqual(keys(30).filter((k) => k !== 'u005' && k !== 'u006'));
    });

    it('detects a delivered key that comes back twice, once unchanged and once changed, on different pages', async () => {
      const syncId = newSync();
      const rows = keys(6).map((k) => user(k));
      await fullRun(syncId, [{ rows }]);
      const runId = newRun();
      const { finished } = await extract(syncId, runId, [
        { rows: rows.slice(0, 3) },
        { rows: [...rows.slice(3), user('u001', 'pro'), user('n000')] },
      ]);
      expect(finished).toEqual({
        counts: { extracted: 8, invalid: 2, new: 1, changed: 0, unchanged: 5, gone: 0 },
        chunks: 1,
        duplicateKeys: 1,
        sampleRejections: [{ key: 'u001', reason: 'duplicate key "u001" appears 2 times in the model', stage: 'diff' }],
      });
      expect(plain(await store.readChunk(syncId, runId, 0))).toEqual([readBack(user('n000'), 0)]);
    });

    it('builds payloads only for the rows it stages; a row its build rejects is filed and tried again next run', async () => {
      const syncId = newSync();
      const model = keys(6).map((k) => user(k));
      // the rows carry key and fingerprint only, as the extract activity passes them
      const rows: DiffRow[] = model.map(({ key, hash }) => ({ key, hash }));
      let broken = new Set(['u003']);
      const built: string[] = [];
      const build = (index: number): BuiltPayload => {
        const row = model[index]!;
        built.push(row.key);
        return broken.has(row.key)
          ? { ok: false, key: row.key, reason: 'time from column "at": not a valid instant', stage: 'validation' }
          : { ok: true, payload: row.payload };
      };
      const extractWithBuild = async (runId: string, page: DiffRow[]) => {
        await store.beginRun({ syncId, runId, mode: 'upsert', chunkSize: 10 });
        const staged = await store.stagePage({
          syncId,
          runId,
          rows: page,
          rejected: [],
          build,
          cursor: cursorAfter(1, 1, page.length),
        });
        return { staged, finished: await store.finishExtract(syncId, runId) };
      };

      const firstRun = newRun();
      const first = await extractWithBuild(firstRun, rows);
      expect(built).toEqual(['u000', 'u001', 'u002', 'u003', 'u004', 'u005']);
      expect(first.staged).toEqual({ staged: 5, unchanged: 0, new: 5 });
      expect(first.finished.counts).toEqual({ extracted: 6, invalid: 1, new: 5, changed: 0, unchanged: 0, gone: 0 });
      expect(first.finished.sampleRejections).toEqual([
        { key: 'u003', reason: 'time from column "at": not a valid instant', stage: 'validation' },
      ]);
      const { sent } = await sendAll(syncId, firstRun, first.finished.chunks);
      const keyAndPayload = ({ key, payload }: { key: string; payload: string }) => ({ key, payload });
      expect(sent.map(keyAndPayload)).toEqual(model.filter((r) => r.key !== 'u003').map(keyAndPayload));
      await store.finishRun(syncId, firstRun, 'succeeded', { ...emptyCounts(), ...first.finished.counts });

      // unchanged fingerprints are never built; the rejected row is tried again, and now goes
      built.length = 0;
      broken = new Set();
      const secondRun = newRun();
      const second = await extractWithBuild(secondRun, rows);
      expect(built).toEqual(['u003']);
      expect(second.finished.counts).toEqual({ extracted: 6, invalid: 0, new: 1, changed: 0, unchanged: 5, gone: 0 });
      expect(sentKeys((await sendAll(syncId, secondRun, second.finished.chunks)).sent)).toEqual(['u003']);
      expect(await store.countSynced(syncId)).toBe(6);
    });

    it('retries rows Amplitude rejected on the next run and files them in the rejected log', async () => {
      const syncId = newSync();
      const rows = keys(3).map((k) => user(k));
      const first = await fullRun(syncId, [{ rows }], {
        outcome: (row) =>
          row.key === 'u001' ? { key: row.key, status: 'rejected', reason: 'user_id is too short' } : delivered(row),
      });
      expect(first.commits).toEqual([{ delivered: 2, rejected: 1, deferred: 0, pending: 0 }]);
      expect(await store.countSynced(syncId)).toBe(2);
      const log = await store.listRejected(syncId, 10);
      expect(log).toEqual([
        { syncId, runId: first.runId, key: 'u001', reason: 'user_id is too short', stage: 'amplitude', at: log[0]!.at },
      ]);

      const second = await fullRun(syncId, [{ rows }]);
      expect(sentKeys(second.sent)).toEqual(['u001']);
      expect(second.finished.counts).toMatchObject({ new: 1, unchanged: 2 });
      expect(await store.countSynced(syncId)).toBe(3);
    });

    it('loses nothing when a run crashes between send and commit and is never resumed', async () => {
      const syncId = newSync();
      const runId = newRun();
      const rows = keys(6).map((k) => user(k));
      const { finished } = await extract(syncId, runId, [{ rows }], { chunkSize: 2 });
      expect(finished.chunks).toBe(3);
      // chunk 0: sent and committed; chunk 1: sent, outcomes recorded, never committed; chunk 2: sent, the worker
      // died before it recorded the answers
      await store.recordOutcomes(syncId, runId, (await store.readChunk(syncId, runId, 0)).map(delivered));
      await store.commitChunk(syncId, runId, 0);
      await store.recordOutcomes(syncId, runId, (await store.readChunk(syncId, runId, 1)).map(delivered));
      expect(await store.countSynced(syncId)).toBe(2);

      // the next run closes the abandoned one: its recorded deliveries are committed, chunk 2 is staged again
      const next = await fullRun(syncId, [{ rows }]);
      expect(sentKeys(next.sent)).toEqual(['u004', 'u005']);
      expect(next.finished.counts).toMatchObject({ new: 2, unchanged: 4 });
      expect(await store.countSynced(syncId)).toBe(6);
      expect((await store.getRun(syncId, runId))?.status).toBe('failed');
    });

    it('never marks an unsent or deferred row synced: a commit counts them pending or deferred', async () => {
      const syncId = newSync();
      const runId = newRun();
      const rows = keys(5).map((k) => user(k));
      await extract(syncId, runId, [{ rows }], { chunkSize: 5 });
      await store.recordOutcomes(syncId, runId, [
        { key: 'u000', status: 'delivered' },
        { key: 'u001', status: 'deferred', reason: 'throttled (429)', retryAfterMs: 1000 },
      ]);
      expect(await store.commitChunk(syncId, runId, 0)).toEqual({ delivered: 1, rejected: 0, deferred: 1, pending: 3 });
      expect(await store.countSynced(syncId)).toBe(1);
      await store.finishRun(syncId, runId, 'failed', emptyCounts(), 'cancelled mid-chunk');

      const next = await fullRun(syncId, [{ rows }]);
      expect(sentKeys(next.sent)).toEqual(['u001', 'u002', 'u003', 'u004']);
    });

    it('resumes extraction from the saved cursor; a replayed page is not staged twice nor seen as duplicates', async () => {
      const syncId = newSync();
      const runId = newRun();
      const rows = keys(12).map((k) => user(k));
      await store.beginRun({ syncId, runId, mode: 'upsert', chunkSize: 5 });
      expect(await store.getExtractCursor(syncId, runId)).toBeNull();

      const page1 = { syncId, runId, rows: rows.slice(0, 6), rejected: [], cursor: cursorAfter(1, 2, 6) };
      const first = await store.stagePage(page1);
      expect(await store.getExtractCursor(syncId, runId)).toEqual({ position: cursorAfter(1, 2, 6), staged: 6 });

      // the activity crashed after the commit and its retry stages the same page again
      expect(await store.stagePage(page1)).toEqual(first);
      expect(await store.getExtractCursor(syncId, runId)).toEqual({ position: cursorAfter(1, 2, 6), staged: 6 });

      await store.stagePage({ syncId, runId, rows: rows.slice(6), rejected: [], cursor: cursorAfter(2, 2, 12) });
      // a late replay of page 1 does not move the cursor back
      await store.stagePage(page1);
      expect(await store.getExtractCursor(syncId, runId)).toEqual({ position: cursorAfter(2, 2, 12), staged: 12 });

      const finished = await store.finishExtract(syncId, runId);
      expect(finished).toEqual({
        counts: { extracted: 12, invalid: 0, new: 12, changed: 0, unchanged: 0, gone: 0 },
        chunks: 3,
        duplicateKeys: 0,
        sampleRejections: [],
      });
      expect((await store.getRun(syncId, runId))?.counts).toMatchObject({ extracted: 12, new: 12 });
      // extraction is over: a new page is refused, finishExtract answers the same
      await expect(
        store.stagePage({ syncId, runId, rows: [user('late')], rejected: [], cursor: cursorAfter(3, 3, 13) }),
      ).rejects.toThrow(StateConflictError);
      expect(await store.finishExtract(syncId, runId)).toEqual(finished);
    });

    it('returns only the rows of a chunk without an outcome, in staging order', async () => {
      const syncId = newSync();
      const runId = newRun();
      const rows = keys(5).map((k) => user(k));
      await extract(syncId, runId, [{ rows }], { chunkSize: 5 });
      await store.recordOutcomes(syncId, runId, [
        { key: 'u003', status: 'delivered' },
        { key: 'u000', status: 'rejected', reason: 'bad device_id' },
      ]);
      expect(plain(await store.readChunk(syncId, runId, 0))).toEqual([
        readBack(user('u001'), 1),
        readBack(user('u002'), 2),
        readBack(user('u004'), 4),
      ]);
      // recording the same outcomes again changes nothing
      await store.recordOutcomes(syncId, runId, [{ key: 'u003', status: 'delivered' }]);
      expect(sentKeys(await store.readChunk(syncId, runId, 0))).toEqual(['u001', 'u002', 'u004']);
    });

    it('makes smaller chunks of large payloads, as many as CHUNK_BUDGET_BYTES holds, each row sent once', async () => {
      const syncId = newSync();
      const runId = newRun();
      // 30 properties of 100 characters: ~3.3 KB a payload: several chunks of 6,000 rows, not 1
      const wide = (key: string): MappedRow =>
        mapped(key, Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`p${i}`, `${key}_${'x'.repeat(96)}`])));
      const rows = keys(6000, 'w').map(wide);
      const bytes = Buffer.byteLength(rows[0]!.payload);
      const perChunk = Math.floor(CHUNK_BUDGET_BYTES / bytes);
      expect(perChunk).toBeLessThan(3000);
      const { finished } = await extract(syncId, runId, pagesOf(rows, 1000), { chunkSize: 10_000 });
      expect(finished.chunks).toBe(Math.ceil(6000 / perChunk));
      const { sent, commits } = await sendAll(syncId, runId, finished.chunks);
      expect(commits.map((c) => c.delivered)).toEqual(
        Array.from({ length: finished.chunks }, (_, c) => Math.min(perChunk, 6000 - c * perChunk)),
      );
      expect(sent.map((r) => r.pos)).toEqual(rows.map((_, pos) => pos));
      expect(await store.countSynced(syncId)).toBe(6000);
      // finishing again gives the same chunks (the size is the run's from then on)
      expect(await store.finishExtract(syncId, runId)).toEqual(finished);
      // beginning the run again with its configured chunkSize is still the same run (a smaller size is its own)
      await expect(store.beginRun({ syncId, runId, mode: 'upsert', chunkSize: 10_000 })).resolves.toMatchObject({
        runId,
      });
      await expect(store.beginRun({ syncId, runId, mode: 'upsert', chunkSize: 500 })).rejects.toThrow(
        StateConflictError,
      );
    });

    it('keeps chunks of chunkSize rows for payloads of ordinary size', async () => {
      const syncId = newSync();
      const runId = newRun();
      const rows = keys(2500).map((k) => user(k));
      const { finished } = await extract(syncId, runId, pagesOf(rows, 1000), { chunkSize: 1000 });
      expect(finished.chunks).toBe(3);
      expect((await store.readChunk(syncId, runId, 2)).map((r) => r.pos)).toEqual(
        Array.from({ length: 500 }, (_, i) => 2000 + i),
      );
    });

    it('applies concurrent commits of different chunks from separate stores', async () => {
      const syncId = newSync();
      const runId = newRun();
      const rows = keys(40).map((k) => user(k));
      const { finished } = await extract(syncId, runId, pagesOf(rows, 15), { chunkSize: 10 });
      expect(finished.chunks).toBe(4);
      const other = await another();

      const worker = async (s: StateStore, chunk: number): Promise<CommitChunkResult> => {
        const chunkRows = await s.readChunk(syncId, runId, chunk);
        await s.recordOutcomes(syncId, runId, chunkRows.map(delivered));
        return s.commitChunk(syncId, runId, chunk);
      };
      const commits = await Promise.all([worker(store, 0), worker(other, 1), worker(store, 2), worker(other, 3)]);
      expect(commits.map((c) => c.delivered)).toEqual([10, 10, 10, 10]);
      expect(await other.countSynced(syncId)).toBe(40);

      const next = await fullRun(syncId, pagesOf(rows, 15));
      expect(next.finished.counts).toMatchObject({ new: 0, unchanged: 40 });
    });

    it('is idempotent: beginRun, finishExtract, commitChunk and finishRun called twice give the same answer', async () => {
      const syncId = newSync();
      const runId = newRun();
      const begun = await store.beginRun({ syncId, runId, mode: 'upsert', chunkSize: 3, workflowId: 'wf_1' });
      expect(begun).toEqual({
        syncId,
        runId,
        status: 'running',
        startedAt: begun.startedAt,
        finishedAt: null,
        counts: emptyCounts(),
        chunks: null,
        workflowId: 'wf_1',
        error: null,
      });
      expect(Number.isNaN(Date.parse(begun.startedAt))).toBe(false);
      expect(await store.beginRun({ syncId, runId, mode: 'upsert', chunkSize: 3, workflowId: 'wf_1' })).toEqual(begun);
      await expect(store.beginRun({ syncId, runId, mode: 'upsert', chunkSize: 4 })).rejects.toThrow(StateConflictError);

      const rows = keys(3).map((k) => user(k));
      await store.stagePage({ syncId, runId, rows, rejected: [], cursor: cursorAfter(1, 1, 3) });
      const finished = await store.finishExtract(syncId, runId);
      expect(await store.finishExtract(syncId, runId)).toEqual(finished);

      await store.recordOutcomes(syncId, runId, [
        { key: 'u000', status: 'delivered' },
        { key: 'u001', status: 'rejected', reason: 'invalid email' },
      ]);
      const commit = await store.commitChunk(syncId, runId, 0);
      expect(commit).toEqual({ delivered: 1, rejected: 1, deferred: 0, pending: 1 });
      expect(await store.commitChunk(syncId, runId, 0)).toEqual(commit);
      expect((await store.listRejected(syncId, 10)).length).toBe(1);
      expect(await store.countSynced(syncId)).toBe(1);

      const counts = { ...emptyCounts(), ...finished.counts, delivered: 1, rejected: 1 };
      const done = await store.finishRun(syncId, runId, 'succeeded', counts);
      expect(done).toMatchObject({ status: 'succeeded', counts, chunks: 1, error: null, workflowId: 'wf_1' });
      expect(done.finishedAt).not.toBeNull();
      expect(await store.finishRun(syncId, runId, 'failed', emptyCounts(), 'late retry')).toEqual(done);
      // its staging data is gone
      await expect(store.readChunk(syncId, runId, 0)).rejects.toThrow(StateConflictError);
    });

    it('closes a run its workflow left open when the next run of the sync begins, committing what it delivered', async () => {
      const syncId = newSync();
      const rows = keys(25).map((k) => user(k));
      const abandoned = newRun();
      const first = await extract(syncId, abandoned, pagesOf(rows, 10), { chunkSize: 10 });
      expect(first.finished.chunks).toBe(3);
      // chunk 0 delivered, chunk 1 delivered but one row rejected; nothing committed; chunk 2 never sent
      const chunk0 = await store.readChunk(syncId, abandoned, 0);
      await store.recordOutcomes(syncId, abandoned, chunk0.map(delivered));
      const chunk1 = await store.readChunk(syncId, abandoned, 1);
      await store.recordOutcomes(
        syncId,
        abandoned,
        chunk1.map((row) =>
          row.key === 'u012' ? { key: row.key, status: 'rejected', reason: 'user_id is too short' } : delivered(row),
        ),
      );
      expect(await store.countSynced(syncId)).toBe(0);

      const next = newRun();
      const second = await extract(syncId, next, pagesOf(rows, 10), { chunkSize: 10 });
      const closed = await store.getRun(syncId, abandoned);
      expect(closed).toMatchObject({ status: 'failed', counts: { delivered: 19, rejected: 1, new: 25 } });
      expect(closed?.error).toContain('abandoned');
      expect(closed?.error).toContain(next);
      expect(closed?.finishedAt).not.toBeNull();
      // what it delivered is synced, so the next run sends only the rest (the rejected row is tried again)
      expect(second.finished.counts).toMatchObject({ unchanged: 19, new: 6 });
      const rejected = await store.listRejected(syncId, 10);
      expect(rejected).toEqual([expect.objectContaining({ runId: abandoned, key: 'u012', stage: 'amplitude' })]);
      // its staging rows are gone
      await expect(store.readChunk(syncId, abandoned, 0)).rejects.toThrow(StateConflictError);
      // a retried begin of the new run changes nothing
      await store.beginRun({ syncId, runId: next, mode: 'upsert', chunkSize: 10, workflowId: `wf_${syncId}` });
      expect(await store.getRun(syncId, abandoned)).toEqual(closed);
      expect((await store.getRun(syncId, next))?.status).toBe('running');
    });

    it('closes a run abandoned during extraction without committing anything', async () => {
      const syncId = newSync();
      const rows = keys(5).map((k) => user(k));
      const abandoned = newRun();
      await store.beginRun({ syncId, runId: abandoned, mode: 'upsert', chunkSize: 10 });
      await store.stagePage({ syncId, runId: abandoned, rows, rejected: [], cursor: cursorAfter(1, 2, 5) });
      const other = newSync();
      const otherRun = newRun();
      await store.beginRun({ syncId: other, runId: otherRun, mode: 'upsert', chunkSize: 10 });

      const next = await fullRun(syncId, pagesOf(rows, 10));
      expect(await store.getRun(syncId, abandoned)).toMatchObject({ status: 'failed', counts: { delivered: 0 } });
      expect(next.finished.counts).toMatchObject({ new: 5 });
      // only runs of the same sync are closed
      expect((await store.getRun(other, otherRun))?.status).toBe('running');
    });

    it('records deliveries by staging position as by key', async () => {
      const syncId = newSync();
      const runId = newRun();
      await extract(syncId, runId, [{ rows: keys(4).map((k) => user(k)) }], { chunkSize: 10 });
      const rows = await store.readChunk(syncId, runId, 0);
      expect(rows.map((r) => r.pos)).toEqual([0, 1, 2, 3]);
      await store.recordOutcomes(syncId, runId, [
        { key: 'u000', status: 'delivered', pos: 0 },
        { key: 'u001', status: 'rejected', reason: 'bad user_id', pos: 1 },
        { key: 'u002', status: 'delivered' },
        // a position out of the run's range is not trusted: the key decides
        { key: 'u003', status: 'delivered', pos: 99 },
      ]);
      expect(plain(await store.readChunk(syncId, runId, 0))).toEqual([]);
      expect(await store.commitChunk(syncId, runId, 0)).toEqual({ delivered: 3, rejected: 1, deferred: 0, pending: 0 });
      expect(await store.countSynced(syncId)).toBe(3);
    });

    /** A run of 10 users staged in one chunk, and `at(...positions)`: those positions' outcomes as delivered. */
    async function tenUsersInOneChunk(): Promise<{
      syncId: string;
      runId: string;
      at: (...positions: number[]) => RowOutcome[];
    }> {
      const syncId = newSync();
      const runId = newRun();
      await extract(syncId, runId, [{ rows: keys(10).map((k) => user(k)) }], { chunkSize: 10 });
      const rows = await store.readChunk(syncId, runId, 0);
      const at = (...positions: number[]): RowOutcome[] =>
        positions.map((pos) => ({ key: (rows[pos] as StagedRow).key, status: 'delivered', pos }));
      return { syncId, runId, at };
    }

    it('counts each delivered position once, recorded in pieces, out of order, twice or around gaps', async () => {
      const { syncId, runId, at } = await tenUsersInOneChunk();
      await store.recordOutcomes(syncId, runId, at(5, 3, 4));
      await store.recordOutcomes(syncId, runId, at(0, 1, 4, 5, 6, 6, 9));
      await store.recordOutcomes(syncId, runId, at(3));
      expect((await store.readChunk(syncId, runId, 0)).map((r) => r.pos)).toEqual([2, 7, 8]);
      expect(await store.commitChunk(syncId, runId, 0)).toEqual({ delivered: 7, rejected: 0, deferred: 0, pending: 3 });
      await store.recordOutcomes(syncId, runId, at(8, 2, 7, 9));
      expect(plain(await store.readChunk(syncId, runId, 0))).toEqual([]);
      expect(await store.commitChunk(syncId, runId, 0)).toEqual({
        delivered: 10,
        rejected: 0,
        deferred: 0,
        pending: 0,
      });
      expect(await store.countSynced(syncId)).toBe(10);
    });

    it('records a batch around positions recorded before, filling only the gaps between and around them', async () => {
      const { syncId, runId, at } = await tenUsersInOneChunk();
      await store.recordOutcomes(syncId, runId, at(2));
      await store.recordOutcomes(syncId, runId, at(5, 6));
      await store.recordOutcomes(syncId, runId, at(8, 7, 6, 5, 4, 3, 2, 1));
      expect((await store.readChunk(syncId, runId, 0)).map((r) => r.pos)).toEqual([0, 9]);
      expect(await store.commitChunk(syncId, runId, 0)).toEqual({ delivered: 8, rejected: 0, deferred: 0, pending: 2 });
    });

    it('refuses outcomes for keys the run did not stage, applying none of them', async () => {
      const syncId = newSync();
      const runId = newRun();
      await extract(syncId, runId, [{ rows: [user('a'), user('b')] }]);
      const attempt = store.recordOutcomes(syncId, runId, [
        { key: 'a', status: 'delivered' },
        { key: 'nope', status: 'delivered' },
      ]);
      await expect(attempt).rejects.toThrow(StateConflictError);
      await expect(attempt).rejects.toThrow(/staged no row with key "nope"/);
      expect(sentKeys(await store.readChunk(syncId, runId, 0))).toEqual(['a', 'b']);
    });

    it('keeps a runs log newest first, and resetSync forgets delivered keys but not the logs', async () => {
      const syncId = newSync();
      const rows = [user('a'), user('b')];
      const first = await fullRun(syncId, [{ rows }], {
        outcome: (r) => (r.key === 'b' ? { key: 'b', status: 'rejected', reason: 'bad' } : delivered(r)),
      });
      const second = await fullRun(syncId, [{ rows }]);
      const runs = await store.listRuns(syncId, 10);
      expect(runs.map((r) => [r.runId, r.status])).toEqual([
        [second.runId, 'succeeded'],
        [first.runId, 'succeeded'],
      ]);
      expect(runs[1]).toEqual(first.record);
      expect(await store.listRuns(syncId, 1)).toEqual([runs[0]]);

      await store.resetSync(syncId);
      expect(await store.countSynced(syncId)).toBe(0);
      expect((await store.listRuns(syncId, 10)).length).toBe(2);
      expect((await store.listRejected(syncId, 10)).length).toBe(1);
      const third = await fullRun(syncId, [{ rows }]);
      expect(third.finished.counts).toMatchObject({ new: 2, unchanged: 0 });
    });

    it('records a warehouse snapshot per sync, replaces it, and forgets it on reset', async () => {
      const syncId = newSync();
      const other = newSync();
      expect(await store.getWarehouseSnapshot(syncId)).toBeNull();
      const first = { table: 'ampsync_snapshot_a_r1', mapping: 'm1', runId: 'r1', rows: 3 };
      await store.setWarehouseSnapshot(syncId, first);
      await store.setWarehouseSnapshot(other, { ...first, runId: 'other' });
      expect(await store.getWarehouseSnapshot(syncId)).toEqual(first);
      const second = { table: 'ampsync_snapshot_a_r2', mapping: 'm1', runId: 'r2', rows: 4 };
      await store.setWarehouseSnapshot(syncId, second);
      expect(await store.getWarehouseSnapshot(syncId)).toEqual(second);

      await store.resetSync(syncId);
      expect(await store.getWarehouseSnapshot(syncId)).toBeNull();
      expect(await store.getWarehouseSnapshot(other)).toEqual({ ...first, runId: 'other' });
      await store.setWarehouseSnapshot(other, null);
      expect(await store.getWarehouseSnapshot(other)).toBeNull();
    });

    it('discards a run with its staging data and rejections, keeping what other runs delivered', async () => {
      const syncId = newSync();
      await fullRun(syncId, [{ rows: [user('a')] }]);
      const runId = newRun();
      await extract(syncId, runId, [
        { rows: [user('a', 'pro'), user('b')], rejected: [{ key: null, reason: 'NULL key', stage: 'diff' }] },
      ]);
      await store.discardRun(syncId, runId);
      await store.discardRun(syncId, runId);
      expect(await store.getRun(syncId, runId)).toBeNull();
      expect(await store.listRejected(syncId, 10)).toEqual([]);
      expect(await store.countSynced(syncId)).toBe(1);
      expect((await store.listRuns(syncId, 10)).length).toBe(1);
    });

    it('round-trips keys and payloads with tabs, newlines, backslashes, quotes and non-ASCII text', async () => {
      const syncId = newSync();
      const runId = newRun();
      const odd = ['tab\there', 'line\nbreak', 'back\\slash', 'quote"s', 'ünïcødé 用户 🚀', 'cr\rlf', '\\N'];
      const rows = odd.map((k) => mapped(k, { note: `${k}\t\\N\n` }));
      // a payload that is not JSON text, with a raw control character JSON would have escaped
      rows.push({ key: 'raw', hash: 'h-raw', payload: 'not JSON: \u001e\u001f end' });
      const { finished } = await extract(syncId, runId, [{ rows }], { chunkSize: 100 });
      expect(finished.counts.new).toBe(rows.length);
      expect(plain(await store.readChunk(syncId, runId, 0))).toEqual(rows.map(readBack));
      await store.recordOutcomes(syncId, runId, rows.map(delivered));
      await store.commitChunk(syncId, runId, 0);
      await store.finishRun(syncId, runId, 'succeeded', emptyCounts());
      const again = await fullRun(syncId, [{ rows }]);
      expect(again.finished.counts).toMatchObject({ unchanged: rows.length, new: 0 });
    });

    it('names the run in errors for a run never begun', async () => {
      const syncId = newSync();
      expect(await store.getRun(syncId, 'missing')).toBeNull();
      await expect(store.getExtractCursor(syncId, 'missing')).rejects.toThrow(RunNotFoundError);
      await expect(
        store.stagePage({ syncId, runId: 'missing', rows: [], rejected: [], cursor: cursorAfter(1, 1, 0) }),
      ).rejects.toThrow(`run "missing" of sync "${syncId}" was never begun`);
      await expect(store.finishExtract(syncId, 'missing')).rejects.toMatchObject({
        type: 'RunNotFoundError',
        retryable: false,
      });
    });

    describe('pages in key order', () => {
      /** Stages `pages` with the key-order promise, then finishes the extraction. */
      const extractOrdered = async (syncId: string, runId: string, pages: Page[]) =>
        (await extract(syncId, runId, pages, { chunkSize: 1000, keyOrdered: true })).finished;

      it('diffs a model read in key order: changed, new and gone keys across many pages', async () => {
        const syncId = newSync();
        const model = keys(200).map((k) => user(k));
        await fullRun(syncId, pagesOf(model, 17));
        // every 10th row changed, every 25th gone, one new key between pages and one past the last
        const next = model.filter((_, i) => i % 25 !== 3).map((r, i) => (i % 10 === 0 ? user(r.key, 'pro') : r));
        next.splice(50, 0, user('u049a'));
        next.push(user('v000'));
        const runId = newRun();
        const finished = await extractOrdered(syncId, runId, pagesOf(next, 17));
        expect(finished.counts).toEqual({ extracted: 194, invalid: 0, new: 2, changed: 20, unchanged: 172, gone: 8 });
        expect(finished.duplicateKeys).toBe(0);
        const staged = sentKeys(await store.readChunk(syncId, runId, 0));
        const original = new Map(model.map((r) => [r.key, r.hash]));
        expect(staged).toEqual(next.filter((r) => original.get(r.key) !== r.hash).map((r) => r.key));
        expect(staged).toHaveLength(22);
      });

      it('rejects a key that ends one page and starts the next as a duplicate', async () => {
        const syncId = newSync();
        const model = keys(20).map((k) => user(k));
        await fullRun(syncId, pagesOf(model, 10));
        const pages = pagesOf(model, 10);
        pages[1]!.rows.unshift(user('u009'));
        const finished = await extractOrdered(syncId, newRun(), pages);
        expect(finished.duplicateKeys).toBe(1);
        expect(finished.counts).toEqual({ extracted: 21, invalid: 2, new: 0, changed: 0, unchanged: 19, gone: 0 });
        expect(finished.sampleRejections).toEqual([
          { key: 'u009', reason: 'duplicate key "u009" appears 2 times in the model', stage: 'diff' },
        ]);
      });

      it('finds keys seen again on a page out of order, after pages in order', async () => {
        const syncId = newSync();
        const model = keys(30).map((k) => user(k));
        await fullRun(syncId, pagesOf(model, 10));
        // the promise broken by the last page: it goes back to keys of the first page
        const pages = [...pagesOf(model, 10), { rows: [user('u003', 'pro'), user('u031')] }];
        const runId = newRun();
        const finished = await extractOrdered(syncId, runId, pages);
        expect(finished.duplicateKeys).toBe(1);
        expect(finished.counts).toEqual({ extracted: 32, invalid: 2, new: 1, changed: 0, unchanged: 29, gone: 0 });
        expect(sentKeys(await store.readChunk(syncId, runId, 0))).toEqual(['u031']);
      });

      it('keeps to the same answers when a promised page repeats a key it already staged within itself', async () => {
        const syncId = newSync();
        const pages = [{ rows: [user('a'), user('b'), user('b', 'pro'), user('c')] }, { rows: [user('d')] }];
        const finished = await extractOrdered(syncId, newRun(), pages);
        expect(finished.duplicateKeys).toBe(1);
        expect(finished.counts).toEqual({ extracted: 5, invalid: 2, new: 3, changed: 0, unchanged: 0, gone: 0 });
      });
    });

    it('refuses chunk calls before extraction finished', async () => {
      const syncId = newSync();
      const runId = newRun();
      await store.beginRun({ syncId, runId, mode: 'upsert', chunkSize: 10 });
      await store.stagePage({ syncId, runId, rows: [user('a')], rejected: [], cursor: cursorAfter(1, 1, 1) });
      await expect(store.readChunk(syncId, runId, 0)).rejects.toThrow(/has not finished extraction/);
      await expect(store.commitChunk(syncId, runId, 0)).rejects.toThrow(StateConflictError);
    });
  });
}

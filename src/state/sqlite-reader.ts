/**
 * A second connection to the SQLite state file, on a thread of its own, for the store's long reads: the diff's
 * probe of a page's keys against `synced` and a chunk's staged rows. better-sqlite3 runs a statement on the
 * calling thread, so these reads held the worker's event loop (and its one core) while the other core idled; on
 * the reader thread they run while the main thread fingerprints the next page or sends other chunks. WAL lets the
 * reader read while the main connection writes, and a read begun after a write committed sees it.
 *
 *   const reader = new SqliteReader({ file, busyTimeoutMs, cacheKib, queries: { probe: 'SELECT …' } });
 *   const [row] = await reader.read([{ query: 'probe', params: { … }, mode: 'get' }]);
 *   await reader.close();
 */
import { Worker } from 'node:worker_threads';
import { StateUnavailableError } from './errors';

/** How a step's statement is run: one row object, or all rows as arrays of column values. */
export type ReadMode = 'get' | 'raw';

export interface ReadStep {
  /** A name of `queries`. */
  query: string;
  params: Record<string, unknown>;
  mode: ReadMode;
  /**
   * A parameter the thread sets to the JSON object `{"key":"value",…}` of these keys and values, in key order
   * (for json_each): the thread, not the caller's, stringifies a page of keys.
   */
  object?: { param: string; keys: string[]; values: string[] };
}

export interface SqliteReaderOptions {
  file: string;
  busyTimeoutMs: number;
  cacheKib: number;
  /** The SQL the reader prepares, by name (the store keeps its SQL in one place). */
  queries: Record<string, string>;
}

interface ReaderData {
  driver: string;
  file: string;
  busyTimeoutMs: number;
  cacheKib: number;
  queries: Record<string, string>;
}

interface ReadRequest {
  id: number;
  steps: ReadStep[];
}

type ReadReply = { id: number; results: unknown[] } | { id: number; error: { message: string; code?: string } };

/**
 * The reader thread's program, as JavaScript text: a worker of `eval` runs it, and text is what it runs whatever
 * compiled this module (tsx, a bundler or a coverage tool would add helpers a function's own text cannot reach).
 * It opens its own connection (query-only), prepares the queries it was given, and answers each request with the
 * results of its steps, read in one transaction, or with the error (message and SQLite code) that stopped them.
 */
const READER_THREAD = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = ' + workerData.busyTimeoutMs);
db.pragma('cache_size = -' + workerData.cacheKib);
db.pragma('query_only = 1');
// prepared on first use, per mode: a statement that fails to prepare fails its request, not the thread
const prepared = { get: new Map(), raw: new Map() };
function statementFor(query, mode) {
  let statement = prepared[mode].get(query);
  if (statement === undefined) {
    if (!Object.hasOwn(workerData.queries, query)) throw new Error('the reader has no query "' + query + '"');
    const sql = workerData.queries[query];
    statement = mode === 'raw' ? db.prepare(sql).raw(true) : db.prepare(sql);
    prepared[mode].set(query, statement);
  }
  return statement;
}

// {"key":"value",...} in key order: in key order a statement reads its B-tree pages in order, twice as fast
function objectText(keys, values) {
  const order = keys.map((_, i) => i);
  let ascending = true;
  for (let i = 1; i < keys.length && ascending; i++) ascending = keys[i - 1] < keys[i];
  if (!ascending) order.sort((a, b) => (keys[a] < keys[b] ? -1 : 1));
  return '{' + order.map((i) => JSON.stringify(keys[i]) + ':' + JSON.stringify(values[i])).join(',') + '}';
}

const readAll = db.transaction((steps) =>
  steps.map((step) => {
    const statement = statementFor(step.query, step.mode);
    let params = step.params;
    if (step.object !== undefined) {
      params = { ...params, [step.object.param]: objectText(step.object.keys, step.object.values) };
    }
    return step.mode === 'get' ? statement.get(params) : statement.all(params);
  }),
);

parentPort.on('message', (request) => {
  try {
    parentPort.postMessage({ id: request.id, results: readAll(request.steps) });
  } catch (err) {
    const error = { message: String((err && err.message) || err) };
    if (err && typeof err.code === 'string') error.code = err.code;
    parentPort.postMessage({ id: request.id, error });
  }
});
`;

interface Pending {
  resolve: (results: unknown[]) => void;
  reject: (err: Error) => void;
}

/** The store's reader thread; started on first use, and again on the next read if it stopped. */
export class SqliteReader {
  private readonly options: SqliteReaderOptions;
  private thread: { worker: Worker; pending: Map<number, Pending> } | undefined;
  private nextId = 0;

  constructor(options: SqliteReaderOptions) {
    this.options = options;
  }

  /** Runs the steps in one read transaction on the reader thread; rejects with the database's error as sent. */
  read(steps: ReadStep[]): Promise<unknown[]> {
    const { worker, pending } = this.thread ?? this.start();
    const id = this.nextId++;
    return new Promise<unknown[]>((resolve, reject) => {
      // a read in flight keeps the process alive (an idle reader does not: see start)
      if (pending.size === 0) worker.ref();
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, steps } satisfies ReadRequest);
    });
  }

  async close(): Promise<void> {
    const thread = this.thread;
    this.thread = undefined;
    if (thread !== undefined) await thread.worker.terminate();
  }

  private start(): { worker: Worker; pending: Map<number, Pending> } {
    const data: ReaderData = { driver: require.resolve('better-sqlite3'), ...this.options };
    const worker = new Worker(READER_THREAD, {
      eval: true,
      workerData: data,
      // what it holds at once is one request's rows: a small heap keeps the worker's memory down
      resourceLimits: { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 128 },
    });
    // an idle reader does not keep a CLI command's process alive
    worker.unref();
    const pending = new Map<number, Pending>();
    worker.on('message', (reply: ReadReply) => {
      const waiting = pending.get(reply.id);
      if (waiting === undefined) return;
      pending.delete(reply.id);
      if (pending.size === 0) worker.unref();
      if ('error' in reply) waiting.reject(Object.assign(new Error(reply.error.message), { code: reply.error.code }));
      else waiting.resolve(reply.results);
    });
    const stopped = (reason: string): void => {
      if (this.thread?.worker === worker) this.thread = undefined;
      const failure = new StateUnavailableError(`SQLite (${this.options.file}) state store's reader thread ${reason}`);
      for (const waiting of pending.values()) waiting.reject(failure);
      pending.clear();
    };
    worker.on('error', (err) => stopped(`failed: ${err.message}`));
    worker.on('exit', (code) => stopped(`stopped (exit code ${code})`));
    this.thread = { worker, pending };
    return this.thread;
  }
}

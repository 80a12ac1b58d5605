/**
 * A connection to the SQLite state file on a thread of its own. better-sqlite3 runs a statement on the calling
 * thread, so the store's heavy statements held the worker's event loop (and its one core) while the other core
 * idled; on a thread they run while the main thread fingerprints the next page or sends other chunks. The store
 * keeps two: a query-only reader (the diff's probe of a page's keys against `synced`, a chunk's staged rows) and
 * a writer for the statements of the send stage that need nothing but SQL (a batch's delivered positions, a
 * chunk's commit). WAL lets the reader read while a connection writes, and a read begun after a write committed
 * sees it; writes from the writer and from the main connection take turns (BEGIN IMMEDIATE, busy timeout). A BLOB
 * a step returns (a chunk's payloads) is moved to the main thread, not copied.
 *
 *   const reader = new SqliteThread({ file, busyTimeoutMs, cacheKib, writable: false, queries: { probe: 'SELECT …' } });
 *   const [row] = await reader.run([{ query: 'probe', params: { … }, mode: 'get' }]);
 *   await reader.close();
 */
import { Worker } from 'node:worker_threads';

/** How a step's statement is run: one row object, all rows as arrays of column values, or a write (its changes). */
export type StepMode = 'get' | 'raw' | 'run';

export interface ThreadStep {
  /** A name of `queries`. */
  query: string;
  params: Record<string, unknown>;
  mode: StepMode;
  /**
   * A parameter the thread sets to the JSON object `{"key":"value",…}` of these keys and values, in key order
   * (for json_each): the thread, not the caller's, stringifies a page of keys.
   */
  object?: { param: string; keys: string[]; values: string[] };
}

export interface SqliteThreadOptions {
  file: string;
  busyTimeoutMs: number;
  cacheKib: number;
  /** A writer runs its steps in a write transaction (BEGIN IMMEDIATE); a reader's connection is query-only. */
  writable: boolean;
  /** The SQL the thread prepares, by name (the store keeps its SQL in one place). */
  queries: Record<string, string>;
}

interface ThreadData extends SqliteThreadOptions {
  driver: string;
}

interface StepsRequest {
  id: number;
  steps: ThreadStep[];
}

type StepsReply = { id: number; results: unknown[] } | { id: number; error: { message: string; code?: string } };

/**
 * The thread's program, as JavaScript text: a worker of `eval` runs it, and text is what it runs whatever compiled
 * this module (tsx, a bundler or a coverage tool would add helpers a function's own text cannot reach). It opens
 * its own connection, prepares the queries it was given, and answers each request with the results of its steps,
 * run in one transaction, or with the error (message and SQLite code) that stopped them (and rolled them back).
 */
const THREAD_PROGRAM = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = ' + workerData.busyTimeoutMs);
db.pragma('cache_size = -' + workerData.cacheKib);
if (!workerData.writable) db.pragma('query_only = 1');
// prepared on first use, per mode: a statement that fails to prepare fails its request, not the thread
const prepared = { get: new Map(), raw: new Map(), run: new Map() };
function statementFor(query, mode) {
  let statement = prepared[mode].get(query);
  if (statement === undefined) {
    if (!Object.hasOwn(prepared, mode)) throw new Error('no step mode "' + mode + '"');
    if (!Object.hasOwn(workerData.queries, query)) throw new Error('the thread has no query "' + query + '"');
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

const runAll = db.transaction((steps) =>
  steps.map((step) => {
    const statement = statementFor(step.query, step.mode);
    let params = step.params;
    if (step.object !== undefined) {
      params = { ...params, [step.object.param]: objectText(step.object.keys, step.object.values) };
    }
    if (step.mode === 'run') {
      const { changes } = statement.run(params);
      return { changes };
    }
    return step.mode === 'get' ? statement.get(params) : statement.all(params);
  }),
);
const runSteps = workerData.writable ? runAll.immediate : runAll;

// a BLOB column comes as a Buffer with a memory of its own: it is handed over (moved), not copied
function transferablesOf(results) {
  const moved = [];
  for (const result of results) {
    if (result === null || typeof result !== 'object') continue;
    for (const value of Object.values(result)) {
      if (value instanceof Uint8Array && value.byteOffset === 0 && value.byteLength === value.buffer.byteLength &&
          value.buffer instanceof ArrayBuffer && !moved.includes(value.buffer)) {
        moved.push(value.buffer);
      }
    }
  }
  return moved;
}

parentPort.on('message', (request) => {
  try {
    const results = runSteps(request.steps);
    parentPort.postMessage({ id: request.id, results }, transferablesOf(results));
  } catch (err) {
    const error = { message: String((err && err.message) || err) };
    if (err && typeof err.code === 'string') error.code = err.code;
    parentPort.postMessage({ id: request.id, error });
  }
});
`;

/** The thread stopped (it failed, or was closed) before answering: a new one starts on the next request. */
export class ThreadStoppedError extends Error {
  override readonly name = 'ThreadStoppedError';
}

interface Pending {
  resolve: (results: unknown[]) => void;
  reject: (err: Error) => void;
}

/** A connection on a thread of its own; the thread starts on first use, and again on the next request if it stopped. */
export class SqliteThread {
  private readonly options: SqliteThreadOptions;
  private thread: { worker: Worker; pending: Map<number, Pending> } | undefined;
  private nextId = 0;

  constructor(options: SqliteThreadOptions) {
    this.options = options;
  }

  /** Runs the steps in one transaction on the thread; rejects with the database's error as the thread sent it. */
  run(steps: ThreadStep[]): Promise<unknown[]> {
    const { worker, pending } = this.thread ?? this.start();
    const id = this.nextId++;
    return new Promise<unknown[]>((resolve, reject) => {
      // a request in flight keeps the process alive (an idle thread does not: see start)
      if (pending.size === 0) worker.ref();
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, steps } satisfies StepsRequest);
    });
  }

  async close(): Promise<void> {
    const thread = this.thread;
    this.thread = undefined;
    if (thread !== undefined) await thread.worker.terminate();
  }

  private start(): { worker: Worker; pending: Map<number, Pending> } {
    const data: ThreadData = { driver: require.resolve('better-sqlite3'), ...this.options };
    const worker = new Worker(THREAD_PROGRAM, {
      eval: true,
      workerData: data,
      // what it holds at once is one request's rows, handed over whole: a small young generation keeps the
      // worker's memory down (8 MB cost ~15 MB more peak RSS in the benchmark, and no time)
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 128 },
    });
    // an idle thread does not keep a CLI command's process alive
    worker.unref();
    const pending = new Map<number, Pending>();
    worker.on('message', (reply: StepsReply) => {
      const waiting = pending.get(reply.id);
      if (waiting === undefined) return;
      pending.delete(reply.id);
      if (pending.size === 0) worker.unref();
      if ('error' in reply) waiting.reject(Object.assign(new Error(reply.error.message), { code: reply.error.code }));
      else waiting.resolve(reply.results);
    });
    const stopped = (reason: string): void => {
      if (this.thread?.worker === worker) this.thread = undefined;
      const role = this.options.writable ? 'writer' : 'reader';
      const failure = new ThreadStoppedError(`its ${role} thread ${reason}`);
      for (const waiting of pending.values()) waiting.reject(failure);
      pending.clear();
    };
    worker.on('error', (err) => stopped(`failed: ${err.message}`));
    worker.on('exit', (code) => stopped(`stopped (exit code ${code})`));
    this.thread = { worker, pending };
    return this.thread;
  }
}

/**
 * The V8 heap limit of `ampsync worker`. Node's default limit on a large-memory host is several GB, and V8 lets
 * garbage grow the heap towards it: a worker syncing 1M users peaked at ~440 MB RSS with the default against
 * ~320 MB with a 1 GB limit (its live heap stays near 100 MB). So `ampsync worker` runs itself under
 * `--max-old-space-size` (1024 MB, or AMPSYNC_WORKER_HEAP_MB; 0 keeps node's default) unless node's own flags
 * or NODE_OPTIONS already set a limit. A worker embedded with the plugin runs under its host's flags.
 *
 *   const flag = workerHeapFlag(process.execArgv, process.env);   // '--max-old-space-size=1024' or null
 *   if (flag !== null) process.exitCode = await relaunchWith(flag);
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import * as v8 from 'node:v8';

export const DEFAULT_WORKER_HEAP_MB = 1024;
export const WORKER_HEAP_ENV = 'AMPSYNC_WORKER_HEAP_MB';
/** Below this a worker cannot hold its Temporal SDK, a chunk and a page. */
const MIN_WORKER_HEAP_MB = 256;

/** AMPSYNC_WORKER_HEAP_MB is not a whole number of megabytes (0, or at least 256). */
export class WorkerHeapConfigError extends Error {
  override readonly name = 'WorkerHeapConfigError';
}

const HEAP_FLAG = /(^|\s)--max[-_]old[-_]space[-_]size(=|\s|$)/;

/** The flag to relaunch the worker with, or null when node already runs with a limit (or the env says 0). */
export function workerHeapFlag(execArgv: readonly string[], env: NodeJS.ProcessEnv): string | null {
  const raw = env[WORKER_HEAP_ENV];
  const mb = raw === undefined || raw.trim() === '' ? DEFAULT_WORKER_HEAP_MB : Number(raw);
  if (!Number.isSafeInteger(mb) || (mb !== 0 && mb < MIN_WORKER_HEAP_MB)) {
    throw new WorkerHeapConfigError(
      `${WORKER_HEAP_ENV}="${raw ?? ''}" is not a heap limit: give megabytes (at least ${MIN_WORKER_HEAP_MB}), or 0 for node's default`,
    );
  }
  if (mb === 0) return null;
  if (execArgv.some((a) => HEAP_FLAG.test(a)) || HEAP_FLAG.test(env.NODE_OPTIONS ?? '')) return null;
  return `--max-old-space-size=${mb}`;
}

/** This process's heap limit in MB (V8's: the old space limit plus the young generation), for the start line. */
export function heapLimitMb(): number {
  return Math.round(v8.getHeapStatistics().heap_size_limit / 2 ** 20);
}

const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs this same command again in a child node with `flag`, passing signals on (a container stops its first
 * process only), and resolves with the exit code to leave with.
 */
export function relaunchWith(flag: string): Promise<number> {
  const child = spawn(process.execPath, [flag, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      for (const s of FORWARDED_SIGNALS) process.off(s, forward);
      // killed by a signal: the shell convention, 128 + its number
      resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal]));
    });
  });
}

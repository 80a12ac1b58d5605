/**
 * The memory settings of `ampsync worker`, which it runs itself again under when node was started without them.
 *
 * - The V8 heap limit. Node's default limit on a large-memory host is several GB, and V8 lets garbage grow the
 *   heap towards it: a worker syncing 1M users peaked at ~440 MB RSS with the default against ~320 MB with a
 *   1 GB limit (its live heap stays near 100 MB). So the worker runs under `--max-old-space-size` (1024 MB, or
 *   AMPSYNC_WORKER_HEAP_MB; 0 keeps node's default) unless node's own flags or NODE_OPTIONS already set a limit.
 * - glibc's malloc arenas. Every thread that allocates (SQLite's reader and writer, zlib, libuv's pool, the
 *   Temporal core) may get an arena of its own, up to 8 per core, each keeping freed memory for reuse:
 *   `MALLOC_ARENA_MAX=2` lowered a 1M-row run's peak RSS by 20-40 MB at the same wall time. It is read when the
 *   process starts, so it is set in the relaunched process's environment, on Linux, unless already set.
 *
 * A worker embedded with the plugin runs under its host's flags and environment.
 *
 *   const heapFlag = workerHeapFlag(process.execArgv, process.env);           // '--max-old-space-size=1024' or null
 *   const allocator = workerAllocatorEnv(process.env, process.platform);      // { MALLOC_ARENA_MAX: '2' } or null
 *   if (heapFlag !== null || allocator !== null) process.exitCode = await relaunchWith(heapFlag, allocator);
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

export const MALLOC_ARENA_ENV = 'MALLOC_ARENA_MAX';
export const WORKER_MALLOC_ARENAS = 2;

/**
 * The allocator environment to relaunch the worker with, or null when there is nothing to set: the variable is
 * already in the environment (any value, so a user's choice stands), or the platform's allocator is not glibc's.
 */
export function workerAllocatorEnv(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): Record<string, string> | null {
  if (platform !== 'linux' || env[MALLOC_ARENA_ENV] !== undefined) return null;
  return { [MALLOC_ARENA_ENV]: String(WORKER_MALLOC_ARENAS) };
}

/** This process's heap limit in MB (V8's: the old space limit plus the young generation), for the start line. */
export function heapLimitMb(): number {
  return Math.round(v8.getHeapStatistics().heap_size_limit / 2 ** 20);
}

const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs this same command again in a child node with the heap flag (if any) and the extra environment, passing
 * signals on (a container stops its first process only), and resolves with the exit code to leave with.
 */
export function relaunchWith(heapFlag: string | null, env: Record<string, string> | null): Promise<number> {
  const args = [...(heapFlag === null ? [] : [heapFlag]), ...process.execArgv, ...process.argv.slice(1)];
  const child = spawn(process.execPath, args, { stdio: 'inherit', env: { ...process.env, ...env } });
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

/**
 * Child processes of the benchmark (workers, the Amplitude emulator, the BigQuery emulator): start, wait for a
 * ready line, sample memory from /proc, stop by pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { workerAllocatorEnv } from '../../src/worker/heap';

/** The repository root (bench/support/../..). */
export const ROOT = path.resolve(__dirname, '..', '..');
/** How long a child may take to print its ready line. */
export const READY_TIMEOUT_MS = 120_000;
/** How often a process's memory is sampled. */
export const MEMORY_SAMPLE_INTERVAL_MS = 100;
/** How long a stopped child may take to exit before it is killed. */
export const STOP_TIMEOUT_MS = 30_000;

/** A child did not come up, or exited when it should not have; the message names it and quotes its output. */
export class ChildProcessError extends Error {
  override readonly name = 'ChildProcessError';
}

/** A running child with its collected output. */
export interface Child {
  name: string;
  process: ChildProcess;
  pid: number;
  /** Last lines of stderr, for error messages. */
  tail(): string;
  /** Resolves with the exit code once the child exits. */
  exited: Promise<number | null>;
}

export interface StartChildOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** The child is ready when a line of its stdout or stderr matches. */
  ready: RegExp;
  /** Called with every line the child prints. */
  onLine?: (line: string) => void;
}

const TAIL_LINES = 30;

/** Spawns a child and waits until it prints a line matching `ready`. */
export async function startChild(options: StartChildOptions): Promise<{ child: Child; match: RegExpExecArray }> {
  const proc = spawn(options.command, options.args, {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (proc.pid === undefined) throw new ChildProcessError(`cannot spawn ${options.name} (${options.command})`);
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const child: Child = { name: options.name, process: proc, pid: proc.pid, tail: () => lines.join('\n'), exited };
  let onReady: ((m: RegExpExecArray) => void) | undefined;
  const ready = new Promise<RegExpExecArray>((resolve) => (onReady = resolve));
  const listen = (stream: NodeJS.ReadableStream | null): void => {
    let buffered = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (data: string) => {
      buffered += data;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        lines.push(line);
        if (lines.length > TAIL_LINES) lines.shift();
        options.onLine?.(line);
        const m = options.ready.exec(line);
        if (m !== null) onReady?.(m);
      }
    });
  };
  listen(proc.stdout);
  listen(proc.stderr);
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then((m) => ({ m })),
    exited.then((code) => ({ code })),
    new Promise<{ timeout: true }>(
      (resolve) => (timer = setTimeout(() => resolve({ timeout: true }), READY_TIMEOUT_MS)),
    ),
  ]);
  clearTimeout(timer);
  if ('m' in outcome) return { child, match: outcome.m };
  if ('timeout' in outcome) proc.kill('SIGKILL');
  const why =
    'code' in outcome ? `exited with code ${String(outcome.code)}` : `was not ready in ${READY_TIMEOUT_MS} ms`;
  throw new ChildProcessError(`${options.name} ${why}; its last lines:\n${child.tail()}`);
}

/** Runs a child to its end; resolves with its stdout lines, throws ChildProcessError when it fails. */
export async function runChild(options: Omit<StartChildOptions, 'ready'>): Promise<string[]> {
  const proc = spawn(options.command, options.args, {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('close', (c) => resolve(c));
  });
  if (code !== 0) throw new ChildProcessError(`${options.name} exited with code ${String(code)}:\n${stderr}`);
  return stdout.split('\n');
}

/** Asks a child to stop (SIGTERM), then kills it (by its pid) if it does not exit in time. */
export async function stopChild(child: Child): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  child.process.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), STOP_TIMEOUT_MS)));
  if ((await Promise.race([child.exited, late])) === 'late') {
    child.process.kill('SIGKILL');
    await child.exited;
  }
  clearTimeout(timer);
}

/** How to run a source file of the repository (relative to the root) with arguments. */
export type Launcher = (source: string, args?: string[]) => { command: string; args: string[] };

/** Runs `node --import tsx FILE ARGS` (TypeScript through the loader). */
export const tsxLauncher: Launcher = (source, args = []) => ({
  command: process.execPath,
  args: ['--import', 'tsx', path.resolve(ROOT, source), ...args],
});

/** Runs the compiled file of a source with plain node (and `nodeArgs`, e.g. `--cpu-prof`). */
/**
 * The V8 heap cap workers (and the send comparison's sides) run with, as the README recommends. ampsync's live heap
 * stays near 60-90 MB; without a cap, node on a large-memory host lets garbage grow the heap to ~4x that before
 * collecting (V8 scales its growth factor with the heap limit).
 */
export const WORKER_NODE_ARGS = ['--max-old-space-size=1024'];

/**
 * The environment `ampsync worker` gives itself (glibc's malloc arenas capped at 2 on Linux, unless this process's
 * environment already sets them), for the processes that stand in for it.
 */
export const WORKER_ENV: Record<string, string> = workerAllocatorEnv(process.env, process.platform) ?? {};

export function compiledLauncher(compiled: (source: string) => string, nodeArgs: string[] = []): Launcher {
  return (source, args = []) => ({ command: process.execPath, args: [...nodeArgs, compiled(source), ...args] });
}

/** A TCP port free on 127.0.0.1 right now. */
/** A variable a benchmark child process needs is missing from its environment, or wrong. */
export class BenchEnvError extends Error {
  override readonly name = 'BenchEnvError';
}

/** The value of a variable a benchmark child process needs; BenchEnvError naming it when unset or empty. */
export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new BenchEnvError(`${name} is not set`);
  return value;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** Memory of a process from /proc/PID/status, in MB. */
export interface MemoryReading {
  rssMb: number;
  /** Peak RSS since start or since the last resetPeak. */
  hwmMb: number;
}

const KIB_PER_MB = 1024;

/** Reads VmRSS and VmHWM of a process; undefined once it is gone. */
export function readMemory(pid: number): MemoryReading | undefined {
  let status: string;
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rssMb: kib('VmRSS') / KIB_PER_MB, hwmMb: kib('VmHWM') / KIB_PER_MB };
}

/** Resets a process's VmHWM to its current RSS (Linux clear_refs 5); false when the kernel refuses. */
export function resetPeak(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on Linux). */
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) a process has used so far; 0 once it is gone. */
export function readCpuSeconds(pid: number): number {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0;
  }
  // fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/**
 * Samples a process's RSS while a run goes and keeps the peak: VmHWM when `resetPeak` succeeded before (so the peak
 * is this run's), otherwise the sampled VmRSS only.
 */
export class MemorySampler {
  private peakMb = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly useHwm: boolean;

  constructor(private readonly pid: number) {
    this.useHwm = resetPeak(pid);
    this.sample();
    this.timer = setInterval(() => this.sample(), MEMORY_SAMPLE_INTERVAL_MS);
  }

  /** Stops sampling and returns the peak RSS in MB. */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peakMb;
  }

  private sample(): void {
    const m = readMemory(this.pid);
    if (m !== undefined) this.peakMb = Math.max(this.peakMb, this.useHwm ? m.hwmMb : 0, m.rssMb);
  }
}

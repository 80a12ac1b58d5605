/**
 * Child processes of the reliability tests: ampsync workers (worker-process.ts) a test can SIGKILL and restart,
 * and a private Temporal dev server on free ports that a test may kill and start again on the same database file.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { toolPaths } from '../../../src/dev/services';
import { SEARCH_ATTRIBUTE_TYPES } from '../../../src/temporal/search-attributes';

const execFileAsync = promisify(execFile);
const REPO = path.resolve(__dirname, '..', '..', '..');
export const WORKER_ENTRY = path.join(__dirname, 'worker-process.ts');
const READY_TIMEOUT_MS = 90_000;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A free loopback port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** One `@step {detail}` line a worker printed. */
export interface Marker {
  step: string;
  detail: Record<string, unknown>;
  at: number;
}

interface Waiter {
  match: (m: Marker) => boolean;
  remaining: number;
  resolve: (m: Marker | null) => void;
}

/** A worker in a child process; its stdout markers can be awaited, its output is kept for scans. */
export class WorkerProcess {
  readonly markers: Marker[] = [];
  stdout = '';
  stderr = '';
  private waiters: Waiter[] = [];
  private readonly exited: Promise<number | null>;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    let pending = '';
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      this.stdout += text;
      pending += text;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.startsWith('@')) this.onMarker(line);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (this.stderr += text));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    void this.exited.then(() => {
      for (const w of this.waiters.splice(0)) w.resolve(null);
    });
  }

  /** Starts a worker and waits until it polls. `env` is added to the test's environment. */
  static async start(name: string, env: Record<string, string>): Promise<WorkerProcess> {
    const hostEnv: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: '' };
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER_ENTRY], {
      cwd: REPO,
      env: { ...hostEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const worker = new WorkerProcess(name, child);
    const ready = await worker.waitFor((m) => m.step === 'ready', 1, READY_TIMEOUT_MS);
    if (ready === null) {
      await worker.kill();
      throw new Error(`worker ${name} did not start: ${worker.stderr.slice(-2000)}`);
    }
    return worker;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the `occurrence`-th marker matching from now on, or null on exit or timeout. */
  waitFor(match: (m: Marker) => boolean, occurrence = 1, timeoutMs = 120_000): Promise<Marker | null> {
    if (!this.running) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(null);
      }, timeoutMs);
      const waiter: Waiter = {
        match,
        remaining: occurrence,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** SIGKILL: no shutdown, no flush, nothing reported to Temporal. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM: a graceful shutdown. */
  async stop(): Promise<void> {
    if (this.running) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(timer);
  }

  private onMarker(line: string): void {
    const space = line.indexOf(' ');
    const step = space < 0 ? line.slice(1) : line.slice(1, space);
    let detail: Record<string, unknown> = {};
    try {
      detail = space < 0 ? {} : (JSON.parse(line.slice(space + 1)) as Record<string, unknown>);
    } catch {
      // a marker cut by a kill
    }
    const marker: Marker = { step, detail, at: Date.now() };
    this.markers.push(marker);
    for (const w of [...this.waiters]) {
      if (!w.match(marker)) continue;
      w.remaining -= 1;
      if (w.remaining === 0) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve(marker);
      }
    }
  }
}

const START_ATTEMPTS = 3;

/** The private dev server exited while starting; the message leads with its panic or error line. */
class EarlyExit extends Error {
  constructor(code: number, log: string) {
    const cause = log.split('\n').find((l) => /^(panic|Error|fatal error):|level=ERROR/.test(l)) ?? '';
    super(`private Temporal server exited (${code}) while starting: ${cause}\n${log.slice(-1500)}`);
    this.name = 'EarlyExit';
  }
}

/** A Temporal dev server of the test's own (free ports, SQLite file), which the test may kill and restart. */
export class PrivateTemporal {
  private child: ChildProcess | undefined;
  log = '';

  private constructor(
    readonly port: number,
    readonly dbFile: string,
  ) {}

  /**
   * Starts on a free port. The dev server picks its internal ports (HTTP, history, matching, worker) itself
   * between probing and binding them, so on a busy machine another process can take one first and the server
   * panics at start: that is retried on a fresh port, and the panic is named if every attempt fails.
   */
  static async start(dir: string): Promise<PrivateTemporal> {
    const dbFile = path.join(dir, 'temporal.db');
    for (let attempt = 1; ; attempt++) {
      const server = new PrivateTemporal(await freePort(), dbFile);
      try {
        await server.spawnAndWait();
        return server;
      } catch (err) {
        if (!(err instanceof EarlyExit) || attempt >= START_ATTEMPTS) throw err;
        fs.rmSync(dbFile, { force: true });
      }
    }
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** (Re)starts the server on its port and database file; an early exit (see start) is tried again. */
  async startProcess(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.spawnAndWait();
        return;
      } catch (err) {
        if (!(err instanceof EarlyExit) || attempt >= START_ATTEMPTS) throw err;
        await sleep(500);
      }
    }
  }

  private async spawnAndWait(): Promise<void> {
    this.log = '';
    const bin = toolPaths().temporal;
    if (!fs.existsSync(bin))
      throw new Error(`the Temporal CLI is not installed at "${bin}": run scripts/install-tools.sh`);
    const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(this.port), '--headless'];
    args.push('--db-filename', this.dbFile, '--log-level', 'error');
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTE_TYPES))
      args.push('--search-attribute', `${name}=${type}`);
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8').on('data', (t: string) => (this.log += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => (this.log += t));
    this.child = child;
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new EarlyExit(child.exitCode, this.log);
      const healthy = await execFileAsync(bin, ['operator', 'cluster', 'health', '--address', this.address], {
        timeout: 5000,
      })
        .then(() => true)
        .catch(() => false);
      if (healthy) return;
      await sleep(250);
    }
    throw new Error(`private Temporal server did not answer on ${this.address} within 90 s: ${this.log.slice(-1500)}`);
  }

  /** SIGKILL: the server dies mid-flight, its SQLite file stays. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

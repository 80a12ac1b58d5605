/**
 * Local services for the demo and the tests: the Temporal dev server, the BigQuery emulator and PostgreSQL.
 * Idempotent (a running service of ours is reused), loopback only, with readiness waits and a clean stop.
 *
 *   const services = await startServices(); // Temporal on 127.0.0.1:7233, UI on 8233, BigQuery on 9050, ...
 *   await stopServices();
 */
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { SEARCH_ATTRIBUTE_TYPES } from '../temporal/search-attributes';

const execFileAsync = promisify(execFile);

export const DEV_BIGQUERY_PROJECT = 'ampsync-dev';

export type ServiceName = 'temporal' | 'bigquery' | 'postgres';

export interface ServiceEndpoints {
  temporalAddress: string;
  temporalUiUrl: string;
  bigqueryEndpoint: string;
  bigqueryProject: string;
  postgresUrl: string;
}

export interface ServicesOptions {
  /** Folder for pid files, logs and persistent data (default `.ampsync/` in the working directory). */
  stateDir?: string;
  temporalPort?: number;
  temporalUiPort?: number;
  bigqueryPort?: number;
  bigqueryGrpcPort?: number;
  postgresPort?: number;
  /** Which services to start (default: all). */
  only?: ServiceName[];
  /**
   * Services to start afresh: a running one of this state folder is stopped first (the BigQuery emulator's memory
   * only grows with use, see temporal-dev.md; the demo, which seeds its data anew, restarts it every time).
   */
  restart?: ServiceName[];
  log?: (line: string) => void;
}

/** A service could not be started; the message names the service and the cause. */
export class ServiceStartError extends Error {
  override readonly name = 'ServiceStartError';
}

const HOST = '127.0.0.1';

interface Resolved {
  stateDir: string;
  temporalPort: number;
  temporalUiPort: number;
  bigqueryPort: number;
  bigqueryGrpcPort: number;
  postgresPort: number;
  log: (line: string) => void;
}

function resolve(options: ServicesOptions): Resolved {
  const env = process.env;
  return {
    stateDir: path.resolve(options.stateDir ?? env.AMPSYNC_STATE_DIR ?? '.ampsync'),
    temporalPort: options.temporalPort ?? Number(env.AMPSYNC_TEMPORAL_PORT ?? 7233),
    temporalUiPort: options.temporalUiPort ?? Number(env.AMPSYNC_TEMPORAL_UI_PORT ?? 8233),
    bigqueryPort: options.bigqueryPort ?? Number(env.AMPSYNC_BIGQUERY_PORT ?? 9050),
    bigqueryGrpcPort: options.bigqueryGrpcPort ?? Number(env.AMPSYNC_BIGQUERY_GRPC_PORT ?? 9060),
    postgresPort: options.postgresPort ?? Number(env.AMPSYNC_POSTGRES_PORT ?? 55432),
    log: options.log ?? (() => undefined),
  };
}

export function endpointsFor(options: ServicesOptions = {}): ServiceEndpoints {
  const r = resolve(options);
  return {
    temporalAddress: `${HOST}:${r.temporalPort}`,
    temporalUiUrl: `http://${HOST}:${r.temporalUiPort}`,
    bigqueryEndpoint: `http://${HOST}:${r.bigqueryPort}`,
    bigqueryProject: DEV_BIGQUERY_PROJECT,
    postgresUrl: `postgres://ampsync@${HOST}:${r.postgresPort}/ampsync`,
  };
}

/** Where install-tools.sh put the binaries (`~/.cache/ampsync/tools.env`), overridable by env vars. */
export function toolPaths(): { temporal: string; bigqueryEmulator: string; pgBinDir: string } {
  const cache = process.env.AMPSYNC_CACHE ?? path.join(os.homedir(), '.cache', 'ampsync');
  const fromFile: Record<string, string> = {};
  const envFile = path.join(cache, 'tools.env');
  if (fs.existsSync(envFile)) {
    for (const line of fs.readFileSync(envFile, 'utf8').split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) fromFile[line.slice(0, eq)] = line.slice(eq + 1);
    }
  }
  const pick = (name: string): string => process.env[name] ?? fromFile[name] ?? '';
  return {
    temporal: pick('AMPSYNC_TEMPORAL_BIN'),
    bigqueryEmulator: pick('AMPSYNC_BQ_EMULATOR_BIN'),
    pgBinDir: pick('AMPSYNC_PG_BIN_DIR'),
  };
}

function requireTool(file: string, what: string): string {
  if (!file || !fs.existsSync(file)) {
    throw new ServiceStartError(
      `${what} is not installed (looked for "${file || '(unset)'}"): run scripts/install-tools.sh`,
    );
  }
  return file;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = net.connect({ host: HOST, port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      done(false);
    });
    socket.once('error', () => done(false));
  });
}

function pidFile(r: Resolved, name: ServiceName): string {
  return path.join(r.stateDir, 'run', `${name}.pid`);
}

function runningPid(r: Resolved, name: ServiceName): number | undefined {
  const file = pidFile(r, name);
  if (!fs.existsSync(file)) return undefined;
  const pid = Number(fs.readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    fs.rmSync(file, { force: true });
    return undefined;
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
  throw new ServiceStartError(
    `${what} did not become ready within ${timeoutMs / 1000}s; last lines of ${logFile}:\n${tail}`,
  );
}

interface Launch {
  name: ServiceName;
  ports: number[];
  command: string;
  args: string[];
  uid?: number;
  gid?: number;
  ready: () => Promise<boolean>;
  timeoutMs: number;
}

async function launch(r: Resolved, spec: Launch): Promise<'started' | 'reused'> {
  const existing = runningPid(r, spec.name);
  if (existing !== undefined) {
    if (await spec.ready().catch(() => false)) return 'reused';
    await waitFor(spec.name, spec.ready, spec.timeoutMs, logPath(r, spec.name));
    return 'reused';
  }
  for (const port of spec.ports) {
    if (await portOpen(port)) {
      throw new ServiceStartError(
        `cannot start ${spec.name}: port ${HOST}:${port} is already taken by another process ` +
          `(not one started from ${r.stateDir}); stop it or choose other ports (AMPSYNC_*_PORT)`,
      );
    }
  }
  fs.mkdirSync(path.join(r.stateDir, 'run'), { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.join(r.stateDir, 'logs'), { recursive: true, mode: 0o700 });
  const logFile = logPath(r, spec.name);
  const out = fs.openSync(logFile, 'a');
  const child = spawn(spec.command, spec.args, {
    detached: true,
    stdio: ['ignore', out, out],
    cwd: r.stateDir,
    env: { ...process.env, BIGQUERY_EMULATOR_HOST: undefined },
    ...(spec.uid !== undefined ? { uid: spec.uid } : {}),
    ...(spec.gid !== undefined ? { gid: spec.gid } : {}),
  });
  fs.closeSync(out);
  if (child.pid === undefined)
    throw new ServiceStartError(`cannot start ${spec.name}: spawn of ${spec.command} failed`);
  fs.writeFileSync(pidFile(r, spec.name), String(child.pid));
  child.unref();
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));
  await waitFor(
    spec.name,
    async () => {
      if (exited !== null) throw new ServiceStartError(`${spec.name} exited with code ${exited}`);
      return spec.ready();
    },
    spec.timeoutMs,
    logFile,
  ).catch((err: unknown) => {
    fs.rmSync(pidFile(r, spec.name), { force: true });
    throw err;
  });
  return 'started';
}

function logPath(r: Resolved, name: ServiceName): string {
  return path.join(r.stateDir, 'logs', `${name}.log`);
}

function temporalLaunch(r: Resolved): Launch {
  const temporal = requireTool(toolPaths().temporal, 'The Temporal CLI');
  const args = [
    'server',
    'start-dev',
    '--ip',
    HOST,
    '--port',
    String(r.temporalPort),
    '--ui-port',
    String(r.temporalUiPort),
    '--ui-ip',
    HOST,
    '--ui-disable-news-fetch',
    '--db-filename',
    path.join(r.stateDir, 'temporal.db'),
    '--log-level',
    'warn',
  ];
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTE_TYPES)) args.push('--search-attribute', `${name}=${type}`);
  return {
    name: 'temporal',
    ports: [r.temporalPort, r.temporalUiPort],
    command: temporal,
    args,
    ready: async () => {
      await execFileAsync(temporal, ['operator', 'cluster', 'health', '--address', `${HOST}:${r.temporalPort}`], {
        timeout: 5000,
      });
      return true;
    },
    timeoutMs: 90_000,
  };
}

function bigqueryLaunch(r: Resolved): Launch {
  const bin = requireTool(toolPaths().bigqueryEmulator, 'The BigQuery emulator');
  return {
    name: 'bigquery',
    ports: [r.bigqueryPort, r.bigqueryGrpcPort],
    command: bin,
    args: [
      `--project=${DEV_BIGQUERY_PROJECT}`,
      `--host=${HOST}`,
      `--port=${r.bigqueryPort}`,
      `--grpc-port=${r.bigqueryGrpcPort}`,
      // in memory: every query leaves a result dataset behind, and a file database only grows (see temporal-dev.md)
      '--log-level=warn',
    ],
    ready: async () => {
      const res = await fetch(`http://${HOST}:${r.bigqueryPort}/bigquery/v2/projects/${DEV_BIGQUERY_PROJECT}/datasets`);
      return res.ok;
    },
    timeoutMs: 60_000,
  };
}

async function postgresLaunch(r: Resolved): Promise<Launch> {
  const binDir = toolPaths().pgBinDir;
  const postgres = requireTool(binDir && path.join(binDir, 'postgres'), 'The PostgreSQL server');
  const dataDir = path.join(r.stateDir, 'postgres');
  // PostgreSQL refuses to run as root: run it as the unprivileged "postgres" (or "nobody") account.
  let uid: number | undefined;
  let gid: number | undefined;
  if (process.getuid?.() === 0) {
    const account = await pgAccount();
    uid = account.uid;
    gid = account.gid;
  }
  if (uid !== undefined) {
    // the unprivileged account must traverse (not list) the state folder to reach its data and socket folders
    fs.chmodSync(r.stateDir, 0o711);
    fs.mkdirSync(path.join(r.stateDir, 'run'), { recursive: true, mode: 0o700 });
  }
  if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (uid !== undefined && gid !== undefined) fs.chownSync(dataDir, uid, gid);
    await execFileAsync(
      path.join(binDir, 'initdb'),
      ['-D', dataDir, '-U', 'ampsync', '--auth=trust', '-E', 'UTF8', '--no-instructions'],
      { ...(uid !== undefined ? { uid } : {}), ...(gid !== undefined ? { gid } : {}), cwd: '/' },
    );
    // database "ampsync" is created on first connect by the state store's tests via "CREATE DATABASE"
  }
  const socketDir = path.join(r.stateDir, 'run');
  if (uid !== undefined && gid !== undefined) fs.chownSync(socketDir, uid, gid);
  return {
    name: 'postgres',
    ports: [r.postgresPort],
    command: postgres,
    args: ['-D', dataDir, '-h', HOST, '-p', String(r.postgresPort), '-k', socketDir, '-c', 'fsync=off'],
    ...(uid !== undefined ? { uid } : {}),
    ...(gid !== undefined ? { gid } : {}),
    ready: async () => {
      await execFileAsync(path.join(binDir, 'pg_isready'), ['-h', HOST, '-p', String(r.postgresPort)], {
        timeout: 3000,
      });
      await ensureDatabase(binDir, r.postgresPort);
      return true;
    },
    timeoutMs: 60_000,
  };
}

async function ensureDatabase(binDir: string, port: number): Promise<void> {
  const psql = fs.existsSync(path.join(binDir, 'psql')) ? path.join(binDir, 'psql') : 'psql';
  const conn = ['-h', HOST, '-p', String(port), '-U', 'ampsync', '-d', 'postgres', '-tAc'];
  const { stdout } = await execFileAsync(psql, [...conn, "SELECT 1 FROM pg_database WHERE datname = 'ampsync'"]);
  if (stdout.trim() !== '1') await execFileAsync(psql, [...conn, 'CREATE DATABASE ampsync']);
}

async function pgAccount(): Promise<{ uid: number; gid: number }> {
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number((await execFileAsync('id', ['-u', name])).stdout.trim());
      const gid = Number((await execFileAsync('id', ['-g', name])).stdout.trim());
      return { uid, gid };
    } catch {
      // try the next account
    }
  }
  throw new ServiceStartError('PostgreSQL cannot run as root and no "postgres" or "nobody" account exists');
}

/** Starts (or reuses) the local services and waits until each answers. */
export async function startServices(options: ServicesOptions = {}): Promise<ServiceEndpoints> {
  const r = resolve(options);
  fs.mkdirSync(r.stateDir, { recursive: true, mode: 0o700 });
  const wanted = new Set<ServiceName>(options.only ?? ['temporal', 'bigquery', 'postgres']);
  const launches: Promise<void>[] = [];
  const run = async (name: ServiceName, make: () => Launch | Promise<Launch>): Promise<void> => {
    if (!wanted.has(name)) return;
    const restarted = options.restart?.includes(name) === true && (await stopService(r, name));
    const outcome = await launch(r, await make());
    r.log(`${name}: ${restarted && outcome === 'started' ? 'restarted' : outcome}`);
  };
  launches.push(run('temporal', () => temporalLaunch(r)));
  launches.push(run('bigquery', () => bigqueryLaunch(r)));
  launches.push(run('postgres', () => postgresLaunch(r)));
  const results = await Promise.allSettled(launches);
  const failures = results.flatMap((x) => (x.status === 'rejected' ? [x.reason as Error] : []));
  if (failures.length > 0) {
    throw new ServiceStartError(failures.map((e) => e.message).join('\n'), { cause: failures[0] });
  }
  return endpointsFor(options);
}

/** Stops the services this state folder started (SIGTERM, then SIGKILL after 10 s). */
export async function stopServices(options: ServicesOptions = {}): Promise<ServiceName[]> {
  const r = resolve(options);
  const stopped: ServiceName[] = [];
  for (const name of ['temporal', 'bigquery', 'postgres'] as const) {
    if (!(await stopService(r, name))) continue;
    stopped.push(name);
    r.log(`${name}: stopped`);
  }
  return stopped;
}

/** Stops one service of this state folder (SIGTERM, then SIGKILL after 10 s); false when it was not running. */
async function stopService(r: Resolved, name: ServiceName): Promise<boolean> {
  const pid = runningPid(r, name);
  if (pid === undefined) return false;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && runningPid(r, name) !== undefined) await new Promise((x) => setTimeout(x, 100));
  if (runningPid(r, name) !== undefined) process.kill(pid, 'SIGKILL');
  fs.rmSync(pidFile(r, name), { force: true });
  return true;
}

/** Which services of this state folder are running. */
export function serviceStatus(options: ServicesOptions = {}): Record<ServiceName, number | undefined> {
  const r = resolve(options);
  return {
    temporal: runningPid(r, 'temporal'),
    bigquery: runningPid(r, 'bigquery'),
    postgres: runningPid(r, 'postgres'),
  };
}

/** `up | down | status`, as `ampsync dev` and `npm run services` run it; prints to `print`, logs to `log`. */
export async function servicesCommand(
  verb: string,
  print: (line: string) => void,
  log: (line: string) => void,
): Promise<void> {
  if (verb === 'up') {
    const e = await startServices({ log });
    print(
      `Temporal ${e.temporalAddress} (UI ${e.temporalUiUrl}) · BigQuery emulator ${e.bigqueryEndpoint} · PostgreSQL ${e.postgresUrl}`,
    );
  } else if (verb === 'down') {
    if ((await stopServices({ log })).length === 0) log('nothing was running');
  } else if (verb === 'status') {
    for (const [name, pid] of Object.entries(serviceStatus())) {
      print(`${name.padEnd(9)} ${pid === undefined ? 'stopped' : `running (pid ${pid})`}`);
    }
    print(`Temporal UI: ${endpointsFor().temporalUiUrl}`);
  } else {
    throw new ServiceStartError(`unknown verb "${verb}": use up, down or status`);
  }
}

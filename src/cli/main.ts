/**
 * `ampsync`: run the worker, start and follow syncs, inspect runs, manage Schedules.
 * Exit codes: 0 success, 1 run failed, 2 bad input (syncs file, secret, mapping), 3 already running, 4 not found.
 */
import * as fs from 'node:fs';
import { Command, Option } from 'commander';
import { ServiceStartError, servicesCommand } from '../dev/services';
import { createAmpsyncWorker } from '../worker/worker';
import {
  MALLOC_ARENA_ENV,
  WorkerHeapConfigError,
  heapLimitMb,
  relaunchWith,
  workerAllocatorEnv,
  workerHeapFlag,
} from '../worker/heap';
import { SingleBar, Presets } from 'cli-progress';
import { ConfigError, SecretError, findSync, loadSyncsFile, type SyncsFile } from '../config/load';
import { CODEC_ENV, CodecKeyError, codecFromEnv } from '../temporal/codec';
import { DEFAULT_UI_ORIGINS, startCodecServer } from './codec-server';
import type { SyncConfig } from '../config/schema';
import { AmpsyncClient, SyncAlreadyRunningError, SyncNotFoundError } from '../client/client';
import type { SyncProgress, SyncWorkflowResult } from '../../workflows/definitions';
import { syncWorkflowId } from '../temporal/names';
import { defaultStateUrl } from '../worker/deps';
import { openStateStore } from '../state';
import { checkSync, previewSync } from './inspect';
import { describeFailure, exitQuietlyWhenOutputCloses, formatCounts, formatBytes } from './format';
import { warehouseDiffHint } from '../sync/warehouse-diff';

const EXIT = { ok: 0, failed: 1, input: 2, running: 3, notFound: 4 } as const;

class CliExit extends Error {
  override readonly name = 'CliExit';
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

const program = new Command();
program
  .name('ampsync')
  .description('Sync BigQuery models into Amplitude as durable Temporal workflows')
  .option('-f, --file <path>', 'syncs file', process.env.AMPSYNC_FILE ?? 'ampsync.yaml')
  .option('--address <host:port>', 'Temporal frontend (default: TEMPORAL_ADDRESS or 127.0.0.1:7233)')
  .option('--namespace <name>', 'Temporal namespace (default: TEMPORAL_NAMESPACE or "default")')
  .option('--task-queue <name>', 'task queue of the ampsync workers', process.env.AMPSYNC_TASK_QUEUE ?? 'ampsync')
  .option(
    '--state <url>',
    'state store: sqlite:PATH or postgres://... (default: AMPSYNC_STATE or .ampsync/data/state.db)',
  )
  .showHelpAfterError();

interface GlobalOptions {
  file: string;
  address?: string;
  namespace?: string;
  taskQueue: string;
  state?: string;
}

const globals = (): GlobalOptions => program.opts<GlobalOptions>();

function loadFile(): SyncsFile {
  return loadChecked(globals().file);
}

/** Loads a syncs file, warning when others may rewrite it (its mappings decide what leaves for Amplitude). */
function loadChecked(file: string): SyncsFile {
  const mode = (() => {
    try {
      return fs.statSync(file).mode;
    } catch {
      return undefined; // loadSyncsFile reports the missing file
    }
  })();
  if (mode !== undefined && (mode & 0o022) !== 0) {
    const who = (mode & 0o002) !== 0 ? 'every user' : 'its group';
    console.error(
      `⚠ syncs file ${file} is writable by ${who} (mode ${(mode & 0o777).toString(8)}): anyone who can edit it decides ` +
        `what is sent to Amplitude; chmod go-w ${file}`,
    );
  }
  return loadSyncsFile(file);
}

function syncFromFile(id: string): SyncConfig {
  return findSync(loadFile(), id);
}

async function connect(): Promise<AmpsyncClient> {
  const g = globals();
  return AmpsyncClient.connect({
    ...(g.address !== undefined ? { address: g.address } : {}),
    ...(g.namespace !== undefined ? { namespace: g.namespace } : {}),
    taskQueue: g.taskQueue,
  });
}

async function withClient<T>(body: (client: AmpsyncClient) => Promise<T>): Promise<T> {
  const client = await connect();
  try {
    return await body(client);
  } finally {
    await client.close();
  }
}

function uiLink(workflowId: string, runId?: string): string {
  const base = process.env.AMPSYNC_TEMPORAL_UI ?? 'http://127.0.0.1:8233';
  const ns = globals().namespace ?? process.env.TEMPORAL_NAMESPACE ?? 'default';
  return `${base}/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}${runId ? `/${runId}` : ''}`;
}

function printResult(result: SyncWorkflowResult, sync: SyncConfig): void {
  console.log(
    `✔ ${result.syncId}: ${formatCounts(result.counts)} · ${result.chunks} chunk(s) · BigQuery ${formatBytes(result.bytesProcessed)} · ${result.syncedKeys} keys in sync`,
  );
  for (const r of result.sampleRejections.slice(0, 5)) console.log(`  rejected ${r.key ?? '(no key)'}: ${r.reason}`);
  const hint = warehouseDiffHint(sync, result.counts);
  if (hint !== undefined) console.log(`  hint: ${hint}`);
}

async function follow(client: AmpsyncClient, sync: SyncConfig, showBar: boolean): Promise<SyncWorkflowResult> {
  const handle = await client.start(sync, { trigger: 'manual' });
  console.error(`▶ ${sync.id}: started ${handle.workflowId} — ${uiLink(handle.workflowId)}`);
  const bar =
    showBar && process.stderr.isTTY
      ? new SingleBar(
          { format: ' {bar} {percentage}% | {phase} | chunks {value}/{total} | {detail}', hideCursor: true },
          Presets.shades_classic,
        )
      : undefined;
  let barStarted = false;
  let lastLine = '';
  const onProgress = (p: SyncProgress): void => {
    const detail = `delivered ${p.counts.delivered} · rejected ${p.counts.rejected + p.counts.invalid}${p.paused ? ' · PAUSED' : ''}`;
    if (bar) {
      if (!barStarted) {
        bar.start(p.chunksTotal ?? 1, p.chunksDone, { phase: p.phase, detail });
        barStarted = true;
      }
      bar.setTotal(Math.max(p.chunksTotal ?? 1, 1));
      bar.update(p.chunksDone, { phase: p.phase, detail });
    } else {
      const line = `  ${p.phase} · chunks ${p.chunksDone}/${p.chunksTotal ?? '?'} · ${detail}`;
      if (line !== lastLine) console.error(line);
      lastLine = line;
    }
  };
  try {
    return await client.follow(handle, { onProgress, pollMs: 500 });
  } finally {
    if (barStarted) bar?.stop();
  }
}

program
  .command('worker')
  .description('run a worker that executes syncs (any number of syncs per worker)')
  .option('--max-activities <n>', 'activities run at once', (v) => Number(v))
  .action(async (opts: { maxActivities?: number }) => {
    // a bounded heap keeps V8 from growing it with garbage, and fewer malloc arenas keep freed memory from
    // piling up per thread: run again under both when node was started without them
    const heapFlag = workerHeapFlag(process.execArgv, process.env);
    const allocator = workerAllocatorEnv(process.env, process.platform);
    if (heapFlag !== null || allocator !== null) {
      process.exitCode = await relaunchWith(heapFlag, allocator);
      return;
    }
    const g = globals();
    const w = await createAmpsyncWorker({
      taskQueue: g.taskQueue,
      ...(g.address !== undefined ? { address: g.address } : {}),
      ...(g.namespace !== undefined ? { namespace: g.namespace } : {}),
      ...(g.state !== undefined ? { state: g.state } : {}),
      ...(opts.maxActivities !== undefined ? { maxConcurrentActivities: opts.maxActivities } : {}),
    });
    const codec = codecFromEnv();
    const arenas = process.env[MALLOC_ARENA_ENV];
    const memory = `heap limit ${heapLimitMb()} MB${arenas === undefined ? '' : `, ${MALLOC_ARENA_ENV}=${arenas}`}`;
    const payloads = codec ? `payloads encrypted with codec key "${codec.activeKeyId}"` : 'payloads not encrypted';
    console.error(
      `ampsync worker polling task queue "${w.taskQueue}" (state: ${redactUrl(g.state ?? defaultStateUrl())}; ${payloads}; ${memory}); Ctrl-C stops it gracefully`,
    );
    await w.run();
  });

program
  .command('run <sync>')
  .description('start a run and follow it with a progress bar; the exit code reflects the result')
  .option('--no-progress', 'print progress lines instead of a bar')
  .action(async (id: string, opts: { progress: boolean }) => {
    const sync = syncFromFile(id);
    await withClient(async (client) => printResult(await follow(client, sync, opts.progress), sync));
  });

program
  .command('start <sync>')
  .description('start a run and return at once')
  .action(async (id: string) => {
    const sync = syncFromFile(id);
    await withClient(async (client) => {
      const handle = await client.start(sync, { trigger: 'manual' });
      console.log(`started ${handle.workflowId} (run ${handle.firstExecutionRunId}) — ${uiLink(handle.workflowId)}`);
    });
  });

program
  .command('status <sync>')
  .description('the latest run of a sync: status and progress')
  .action(async (id: string) => {
    await withClient(async (client) => {
      const s = await client.status(id);
      if (s === null) throw new CliExit(`sync "${id}" has never run`, EXIT.notFound);
      console.log(
        `${id}: ${s.workflowStatus} (started ${s.startTime.toISOString()}${s.closeTime ? `, closed ${s.closeTime.toISOString()}` : ''})`,
      );
      if (s.progress) {
        const p = s.progress;
        console.log(
          `  phase ${p.phase}${p.paused ? ' (paused)' : ''} · chunks ${p.chunksDone}/${p.chunksTotal ?? '?'} · ${formatCounts(p.counts)}`,
        );
        if (p.throttledIds.length > 0) console.log(`  throttled ids: ${p.throttledIds.join(', ')}`);
      }
      console.log(`  ${uiLink(syncWorkflowId(id), s.runId)}`);
    });
  });

program
  .command('runs <sync>')
  .description('run history with counts (from the state store)')
  .option('-n, --limit <n>', 'how many', (v) => Number(v), 20)
  .action(async (id: string, opts: { limit: number }) => {
    const store = openStateStore(globals().state ?? defaultStateUrl());
    try {
      await store.migrate();
      const runs = await store.listRuns(id, opts.limit);
      if (runs.length === 0) console.log(`sync "${id}" has no recorded runs`);
      for (const r of runs) {
        console.log(
          `${r.startedAt}  ${r.status.padEnd(9)}  ${formatCounts(r.counts)}  run ${r.runId}${r.error ? `  — ${r.error}` : ''}`,
        );
      }
      const snapshot = await store.getWarehouseSnapshot(id);
      if (snapshot !== null) {
        console.log(
          `warehouse snapshot: table ${snapshot.table} in the state dataset, ${snapshot.rows} keys, ` +
            `promoted by run ${snapshot.runId}`,
        );
      }
    } finally {
      await store.close();
    }
  });

program
  .command('rejected <sync>')
  .description('rows that were not delivered, with the reason')
  .option('-n, --limit <n>', 'how many', (v) => Number(v), 50)
  .action(async (id: string, opts: { limit: number }) => {
    const store = openStateStore(globals().state ?? defaultStateUrl());
    try {
      await store.migrate();
      const rows = await store.listRejected(id, opts.limit);
      if (rows.length === 0) console.log(`sync "${id}" has no rejected rows`);
      for (const r of rows) console.log(`${r.at}  ${r.stage.padEnd(10)}  ${r.key ?? '(no key)'}  ${r.reason}`);
    } finally {
      await store.close();
    }
  });

program
  .command('check <sync>')
  .description('validate the sync, dry-run its model on BigQuery and reach Amplitude (no data sent)')
  .action(async (id: string) => {
    const sync = syncFromFile(id);
    const ok = await checkSync(sync, (line) => console.log(line));
    if (!ok) throw new CliExit(`check of "${id}" failed`, EXIT.input);
  });

program
  .command('preview <sync>')
  .description('a dry run: what the next run would send (counts and the first payloads); nothing is sent')
  .option('-n, --payloads <n>', 'payloads to print', (v) => Number(v), 3)
  .action(async (id: string, opts: { payloads: number }) => {
    const sync = syncFromFile(id);
    await previewSync(sync, {
      state: globals().state ?? defaultStateUrl(),
      payloads: opts.payloads,
      print: (l) => console.log(l),
    });
  });

program
  .command('apply [file]')
  .description('create, update and delete Temporal Schedules to match the syncs file')
  .option('--dry-run', 'show what would change')
  .action(async (file: string | undefined, opts: { dryRun?: boolean }) => {
    const syncs = loadChecked(file ?? globals().file);
    await withClient(async (client) => {
      const r = await client.applySchedules(syncs.syncs, { dryRun: opts.dryRun ?? false });
      const verb = opts.dryRun ? 'would be ' : '';
      for (const id of r.created) console.log(`+ ${id}: schedule ${verb}created`);
      for (const id of r.updated) console.log(`~ ${id}: schedule ${verb}updated`);
      for (const id of r.deleted) console.log(`- ${id}: schedule ${verb}deleted`);
      for (const id of r.unchanged) console.log(`= ${id}: unchanged`);
      if (r.created.length + r.updated.length + r.deleted.length + r.unchanged.length === 0)
        console.log('no scheduled syncs');
    });
  });

program
  .command('pause <sync>')
  .description("pause the sync's schedule (or, with --run, its current run)")
  .option('--run', 'pause the running run instead: chunks in flight finish, no new chunk starts')
  .action(async (id: string, opts: { run?: boolean }) => {
    await withClient(async (client) => {
      if (opts.run) await client.pause(id);
      else await client.schedule(id, 'pause', 'paused with ampsync pause');
      console.log(`${id}: ${opts.run ? 'run' : 'schedule'} paused`);
    });
  });

program
  .command('unpause <sync>')
  .description("unpause the sync's schedule (or, with --run, resume its current run)")
  .option('--run', 'resume the paused run')
  .action(async (id: string, opts: { run?: boolean }) => {
    await withClient(async (client) => {
      if (opts.run) await client.resume(id);
      else await client.schedule(id, 'unpause', 'unpaused with ampsync unpause');
      console.log(`${id}: ${opts.run ? 'run resumed' : 'schedule unpaused'}`);
    });
  });

program
  .command('cancel <sync>')
  .description('cancel the running run: delivered rows are committed, the rest is sent next run')
  .action(async (id: string) => {
    await withClient(async (client) => {
      await client.cancel(id);
      console.log(`${id}: cancellation requested`);
    });
  });

program
  .command('trigger <sync>')
  .description("run the sync's schedule now")
  .action(async (id: string) => {
    await withClient(async (client) => {
      await client.schedule(id, 'trigger');
      console.log(`${id}: schedule triggered`);
    });
  });

program
  .command('backfill <sync>')
  .description('run the schedule for the times it would have fired in a past range')
  .requiredOption('--from <iso>', 'start of the range')
  .addOption(new Option('--to <iso>', 'end of the range').default(new Date().toISOString(), 'now'))
  .action(async (id: string, opts: { from: string; to: string }) => {
    const start = new Date(opts.from);
    const end = new Date(opts.to);
    if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()))
      throw new CliExit('--from and --to take ISO dates', EXIT.input);
    await withClient(async (client) => {
      await client.backfill(id, start, end);
      console.log(`${id}: backfill requested from ${start.toISOString()} to ${end.toISOString()}`);
    });
  });

program
  .command('reset <sync>')
  .description('forget what was delivered: the next run sends every row again')
  .option('--force', 'also for events (Amplitude dedups insert_id for only 7 days: older events would be duplicated)')
  .action(async (id: string, opts: { force?: boolean }) => {
    const sync = syncFromFile(id);
    if (sync.object === 'events' && !opts.force && !sync.options.allowEventReplay) {
      throw new CliExit(
        `refusing to reset events sync "${id}": Amplitude dedups insert_id for 7 days only, so older events would be sent twice. Pass --force if that is what you want.`,
        EXIT.input,
      );
    }
    const store = openStateStore(globals().state ?? defaultStateUrl());
    try {
      await store.migrate();
      const before = await store.countSynced(id);
      await store.resetSync(id);
      console.log(`${id}: forgot ${before} delivered keys; the next run sends every row`);
    } finally {
      await store.close();
    }
  });

program
  .command('codec-server')
  .description('serve /encode and /decode for the Temporal UI (--ui-codec-endpoint), with the AMPSYNC_CODEC_KEY* keys')
  .option('--port <n>', 'port to listen on', (v) => Number(v), 8888)
  .option('--host <ip>', 'interface to listen on', '127.0.0.1')
  .option('--cors-origin <origin...>', 'Temporal UI origins allowed to call', DEFAULT_UI_ORIGINS)
  .option(
    '--token-env <name>',
    'environment variable holding a bearer token callers must send',
    'AMPSYNC_CODEC_SERVER_TOKEN',
  )
  .action(async (opts: { port: number; host: string; corsOrigin: string[]; tokenEnv: string }) => {
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65_535)
      throw new CliExit(`--port ${opts.port} is not a port`, EXIT.input);
    const codec = codecFromEnv();
    if (codec === undefined) {
      throw new CliExit(
        `no codec key: set ${CODEC_ENV.key} and ${CODEC_ENV.keyId}, or ${CODEC_ENV.keyFile}`,
        EXIT.input,
      );
    }
    const token = process.env[opts.tokenEnv]?.trim() || undefined;
    const server = await startCodecServer({
      codec,
      port: opts.port,
      host: opts.host,
      corsOrigins: opts.corsOrigin,
      ...(token !== undefined ? { token } : {}),
      onError: (line) => console.error(line),
    });
    console.error(
      `ampsync codec server on ${server.url} (keys ${codec.keyIds.join(', ')}, encrypting with ${codec.activeKeyId}; ` +
        `CORS ${opts.corsOrigin.join(', ')}; ${token !== undefined ? `bearer token from $${opts.tokenEnv}` : 'no token check'})`,
    );
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        void server.close().then(resolve);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  });

program
  .command('dev <verb>')
  .description('local services for trying ampsync: up | down | status')
  .action(async (verb: string) => {
    await servicesCommand(
      verb,
      (line) => console.log(line),
      (line) => console.error(`[services] ${line}`),
    ).catch((err: unknown) => {
      throw err instanceof ServiceStartError ? new CliExit(err.message, EXIT.input) : err;
    });
  });

function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

async function main(): Promise<void> {
  exitQuietlyWhenOutputCloses();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CliExit) {
      console.error(`✖ ${err.message}`);
      process.exitCode = err.code;
    } else if (
      err instanceof ConfigError ||
      err instanceof SecretError ||
      err instanceof CodecKeyError ||
      err instanceof WorkerHeapConfigError
    ) {
      console.error(`✖ ${err.message}`);
      process.exitCode = EXIT.input;
    } else if (err instanceof SyncAlreadyRunningError) {
      console.error(
        `✖ ${err.message}; follow it with "ampsync status ${err.syncId}" — ${uiLink(syncWorkflowId(err.syncId))}`,
      );
      process.exitCode = EXIT.running;
    } else if (err instanceof SyncNotFoundError) {
      console.error(`✖ ${err.message}`);
      process.exitCode = EXIT.notFound;
    } else {
      console.error(`✖ ${describeFailure(err)}`);
      process.exitCode = EXIT.failed;
    }
  }
}

void main();

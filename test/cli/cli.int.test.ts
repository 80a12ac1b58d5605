/** The `ampsync` command as a user runs it: a subprocess, its output and its exit code. */
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startAmplitudeEmulator, type AmplitudeEmulator } from '../../src/emulator/amplitude';
import { openStateStore } from '../../src/state';
import type { SourceRow } from '../../src/sync/types';
import { services } from '../support/env';
import { field, MemorySource } from '../support/memory-source';
import { createHarness, type Harness } from '../support/temporal';

const BIN = path.join(__dirname, '..', '..', 'bin', 'ampsync.js');
const API_KEY = 'cli-amplitude-key-0001';

let harness: Harness;
let emulator: AmplitudeEmulator;
let dir: string;
let file: string;
let state: string;
let stop: () => Promise<void>;
const source = new MemorySource(
  [field('user_id'), field('plan')],
  (i): SourceRow => ({ user_id: i === 5 ? 'n/a' : `cli-user-${i}`, plan: 'pro' }),
  1_200,
);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function ampsync(...args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [
        BIN,
        '-f',
        file,
        '--state',
        state,
        '--task-queue',
        harness.taskQueue,
        '--address',
        services.temporalAddress,
        ...args,
      ],
      { env: { ...process.env, AMPSYNC_CLI_KEY: API_KEY, NODE_OPTIONS: '' }, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  harness = await createHarness();
  emulator = await startAmplitudeEmulator({ port: 0, apiKeys: [API_KEY] });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-cli-'));
  file = path.join(dir, 'ampsync.yaml');
  state = `sqlite:${path.join(dir, 'state.db')}`;
  const id = `cli-users-${process.pid}`;
  fs.writeFileSync(
    file,
    `version: 1
syncs:
  - id: ${id}
    object: users
    source: { project: memory }
    model: { sql: "SELECT user_id, plan FROM t" }
    key: user_id
    mappings:
      - { from: user_id, to: user_id }
      - { from: plan, to: user_properties.plan }
    destination: { apiKey: { env: AMPSYNC_CLI_KEY }, baseUrl: ${emulator.url} }
    options: { chunkSize: 200, batchSize: 100, concurrency: 1 }
  - id: cli-events
    object: events
    source: { project: memory }
    model: { sql: "SELECT 1" }
    key: id
    mappings:
      - { from: user_id, to: user_id }
      - { constant: signed_up, to: event_type }
    destination: { apiKey: { env: AMPSYNC_CLI_KEY }, baseUrl: ${emulator.url} }
`,
  );
  process.env.AMPSYNC_CLI_KEY = API_KEY;
  ({ stop } = await harness.startWorker({ state, sourceFor: () => source }));
});

afterAll(async () => {
  await stop?.();
  await emulator?.close();
  await harness?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const syncId = (): string => `cli-users-${process.pid}`;

test('run follows a sync to the end, prints the counts and exits 0; runs and rejected show the history', async () => {
  const ran = await ampsync('run', syncId(), '--no-progress');
  expect({ code: ran.code, stderr: ran.stderr }).toMatchObject({ code: 0 });
  expect(ran.stderr).toContain(`started ampsync/${syncId()}`);
  expect(ran.stdout).toMatch(/✔ cli-users-\d+: changed 1199 \(new 1199\) · delivered 1199 · rejected 1/);
  expect(ran.code).toBe(0);

  const runs = await ampsync('runs', syncId());
  expect(runs.stdout).toMatch(/succeeded\s+changed 1199 \(new 1199\) · delivered 1199 · rejected 1/);
  expect(runs.stdout).not.toContain('warehouse snapshot');
  // a sync diffed in the warehouse (source.stateDataset) also shows the snapshot its next run diffs against
  const store = openStateStore(state);
  await store.migrate();
  await store.setWarehouseSnapshot(syncId(), { table: 'ampsync_snapshot_x', mapping: 'm', runId: 'r9', rows: 1199 });
  await store.close();
  const withSnapshot = await ampsync('runs', syncId());
  expect(withSnapshot.stdout).toContain(
    'warehouse snapshot: table ampsync_snapshot_x in the state dataset, 1199 keys, promoted by run r9',
  );

  const rejected = await ampsync('rejected', syncId());
  expect(rejected.stdout).toMatch(/validation\s+n\/a\s+.*placeholder/);

  const status = await ampsync('status', syncId());
  expect(status.stdout).toContain('COMPLETED');
  expect(status.code).toBe(0);
});

test('a second run while one is going exits 3 and says so', async () => {
  emulator.latency({ ms: 300 });
  source.setRows((i): SourceRow => ({ user_id: `cli-user-${i}`, plan: 'team' }), 1_200);
  const first = ampsync('run', syncId(), '--no-progress');
  for (let i = 0; i < 50 && (await harness.client.progress(syncId()))?.status !== 'running'; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  // paused, the first run holds its sends and stays open however long the second CLI takes to start
  await harness.client.pause(syncId());
  const second = await ampsync('start', syncId());
  expect(second.code).toBe(3);
  expect(second.stderr).toContain(`sync "${syncId()}" is already running`);
  emulator.clearFaults();
  await harness.client.resume(syncId());
  expect((await first).code).toBe(0);
});

test('bad input exits 2 naming the cause', async () => {
  const missing = await ampsync('run', 'no-such-sync');
  expect(missing.code).toBe(2);
  expect(missing.stderr).toMatch(/has no sync "no-such-sync" \(it has: cli-users-\d+, cli-events\)/);

  const reset = await ampsync('reset', 'cli-events');
  expect(reset.code).toBe(2);
  expect(reset.stderr).toContain('refusing to reset events sync "cli-events"');

  const badFile = path.join(dir, 'bad.yaml');
  fs.writeFileSync(badFile, 'syncs:\n  - id: x\n    object: users\n');
  const bad = await new Promise<Ran>((resolve) =>
    execFile(
      process.execPath,
      [BIN, '-f', badFile, 'check', 'x'],
      { env: { ...process.env, NODE_OPTIONS: '' } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain(`${badFile} is invalid`);
  expect(bad.stderr).toContain('syncs[0].source.project: required (expected string) (sync "x")');
  expect(bad.stderr).toContain('syncs[0].model: expected { sql: "SELECT ..." } or { table: DATASET.TABLE } (sync "x")');
});

test('reset forgets what was delivered, so the next run sends every row', async () => {
  const reset = await ampsync('reset', syncId());
  expect(reset.code).toBe(0);
  expect(reset.stdout).toMatch(/forgot \d+ delivered keys/);
  const ran = await ampsync('run', syncId(), '--no-progress');
  expect(ran.stdout).toMatch(/changed 1200 \(new 1200\)/);
});

function withoutAllocatorEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { MALLOC_ARENA_MAX: _set, ...rest } = env;
  return rest;
}

test('worker starts polling and stops gracefully on SIGINT', async () => {
  const child = spawn(
    process.execPath,
    [BIN, '--state', state, '--task-queue', `${harness.taskQueue}-w`, '--address', services.temporalAddress, 'worker'],
    {
      env: { ...withoutAllocatorEnv(process.env), NODE_OPTIONS: '' },
    },
  );
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    for (let i = 0; i < 600 && !stderr.includes('ampsync worker polling task queue'); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(stderr).toContain(`ampsync worker polling task queue "${harness.taskQueue}-w"`);
    // started without a heap flag, it runs itself again under its 1024 MB old space (V8's limit adds the young
    // generation; node's default here is several GB) and with glibc's malloc arenas capped; SIGINT is passed on
    expect(stderr).toMatch(/heap limit 10\d\d MB, MALLOC_ARENA_MAX=2\)/);
    // the workflows are bundled without webpack's module listing in the log
    expect(stdout + stderr).not.toMatch(/webpack|modules by path|workflow-bundle/);
  } finally {
    child.kill('SIGINT');
  }
  expect(await exited).toBe(0);
});

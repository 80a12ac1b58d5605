/**
 * Crashes: syncs of 100,000 rows whose worker processes are SIGKILLed at many points — during extraction, in the
 * middle of a chunk, between a chunk's send and its commit, during a commit — and restarted each time. The runs
 * finish, and the Amplitude emulator (in this process) holds exactly the model: every changed row delivered, each
 * insert_id stored once, the state store in step with what arrived. Kill points are markers the worker prints
 * around each state-store call and activity, offset by a seeded jitter, so the schedule is reproducible.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { startAmplitudeEmulator, type AmplitudeEmulator } from '../../src/emulator/amplitude';
import { seededRandom } from '../../src/emulator/amplitude/faults';
import type { SyncConfig } from '../../src/config/schema';
import { SqliteStateStore } from '../../src/state';
import { services, uniqueName } from '../support/env';
import { parseGeneratedModel, userRow, type GeneratedModel } from './support/generated-source';
import { WorkerProcess, sleep } from './support/processes';
import {
  checkEvents,
  checkUsers,
  generatedSync,
  startRun,
  summaryLine,
  uniqueSyncId,
  writeBundle,
  type Delivery,
} from './support/runs';

jest.setTimeout(600_000);

const API_KEY = 'crash-amplitude-key-7f3e9a';
const KEY_ENV = 'RELIABILITY_AMPLITUDE_KEY';
const EVENTS_API_KEY = 'crash-events-key-41bd07';
const EVENTS_KEY_ENV = 'RELIABILITY_EVENTS_KEY';
const SEED = 20261129;
const ROWS = 100_000;

type Phase = 'extract' | 'mid-chunk' | 'send→commit' | 'commit';

/** Where each phase's kills aim: the n-th marker of a step after the worker (re)started, plus a jitter. */
const TARGETS: Record<Phase, { step: string; maxOccurrence: number; maxJitterMs: number }> = {
  extract: { step: 'state:stagePage:end', maxOccurrence: 4, maxJitterMs: 40 },
  'mid-chunk': { step: 'state:recordOutcomes:end', maxOccurrence: 4, maxJitterMs: 60 },
  // the chunk's rows are sent and recorded, the activity has not reported its result: it will run again
  'send→commit': { step: 'activity:sendChunk:end', maxOccurrence: 2, maxJitterMs: 0 },
  commit: { step: 'state:commitChunk:begin', maxOccurrence: 2, maxJitterMs: 10 },
};

interface KillPoint {
  phase: Phase;
  step: string;
  occurrence: number;
  jitterMs: number;
}

/**
 * A reproducible schedule: extraction kills first (extraction comes first), then rounds over the sending phases,
 * each round in a seeded order, so that any prefix of the plan covers every phase.
 */
function killPlan(seed: number, counts: Partial<Record<Phase, number>>): KillPoint[] {
  const random = seededRandom(seed);
  const point = (phase: Phase): KillPoint => {
    const t = TARGETS[phase];
    return {
      phase,
      step: t.step,
      occurrence: 1 + Math.floor(random() * t.maxOccurrence),
      jitterMs: Math.floor(random() * (t.maxJitterMs + 1)),
    };
  };
  const plan = Array.from({ length: counts.extract ?? 0 }, () => point('extract'));
  const left = {
    'mid-chunk': counts['mid-chunk'] ?? 0,
    'send→commit': counts['send→commit'] ?? 0,
    commit: counts.commit ?? 0,
  };
  while (Object.values(left).some((n) => n > 0)) {
    const round = (Object.keys(left) as (keyof typeof left)[]).filter((p) => left[p] > 0);
    for (let i = round.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [round[i], round[j]] = [round[j]!, round[i]!];
    }
    for (const p of round) {
      left[p] -= 1;
      plan.push(point(p));
    }
  }
  return plan;
}

let emulator: AmplitudeEmulator;
let connection: Connection;
let client: Client;
let dir: string;
let bundle: string;
const taskQueue = uniqueName('crash');
const tally = { kills: 0, rowsLost: 0, wrongRows: 0, duplicateEvents: 0, dedupedResends: 0, runs: 0 };
const killsByPhase: Record<Phase, number> = { extract: 0, 'mid-chunk': 0, 'send→commit': 0, commit: 0 };

beforeAll(async () => {
  emulator = await startAmplitudeEmulator({ port: 0, apiKeys: [API_KEY, EVENTS_API_KEY] });
  // every request takes a while, so runs last long enough to be killed at many points
  emulator.latency({ ms: 60 });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-crash-'));
  bundle = await writeBundle(dir);
  connection = await Connection.connect({ address: services.temporalAddress });
  client = new Client({ connection });
});

afterAll(async () => {
  console.log(
    summaryLine('crashes', {
      'kills survived': tally.kills,
      ...Object.fromEntries(Object.entries(killsByPhase).map(([p, n]) => [`(${p}`, `${n})`])),
      'runs finished': tally.runs,
      'rows lost': tally.rowsLost,
      'rows wrong': tally.wrongRows,
      'duplicate events': tally.duplicateEvents,
      're-sends deduplicated by insert_id': tally.dedupedResends,
    }),
  );
  await connection?.close();
  await emulator?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function workerEnv(state: string): Record<string, string> {
  return {
    RELIABILITY_TEMPORAL_ADDRESS: services.temporalAddress,
    RELIABILITY_TASK_QUEUE: taskQueue,
    RELIABILITY_STATE: state,
    RELIABILITY_BUNDLE: bundle,
    RELIABILITY_MARKERS: '1',
    RELIABILITY_PAGE_SIZE: '2000',
    [KEY_ENV]: API_KEY,
    [EVENTS_KEY_ENV]: EVENTS_API_KEY,
  };
}

/**
 * Runs `sync` with `workers` worker processes; the first one is killed at every point of `plan` and restarted
 * at once (the others keep running). Returns the result and the kills that happened.
 */
async function runWithKills(sync: SyncConfig, state: string, plan: KillPoint[], workers = 1) {
  const env = workerEnv(state);
  let victim = await WorkerProcess.start('victim-0', env);
  const extracting = victim.waitFor((m) => m.step === 'activity:extractAndDiff:begin');
  const handle = await startRun(client, taskQueue, sync);
  // the others join once the victim holds the extraction, so that its kills can land there too
  expect(await extracting).not.toBeNull();
  const bystanders = Promise.all(
    Array.from({ length: workers - 1 }, (_, i) => WorkerProcess.start(`bystander-${i}`, env)),
  );
  let finished = false;
  const outcome = handle.result().finally(() => {
    finished = true;
  });
  const kills: KillPoint[] = [];
  const t0 = Date.now();
  const trace = (line: string): void => {
    if (process.env.RELIABILITY_TRACE === '1')
      process.stderr.write(`${((Date.now() - t0) / 1000).toFixed(1)}s ${line}\n`);
  };
  try {
    for (const point of plan) {
      if (finished) break;
      const hit = await Promise.race([
        victim.waitFor((m) => m.step === point.step, point.occurrence),
        outcome.then(
          () => null,
          () => null,
        ),
      ]);
      if (hit === null) break;
      if (point.jitterMs > 0) await sleep(point.jitterMs);
      await victim.kill();
      kills.push(point);
      trace(`killed at ${point.phase} (${point.step} #${point.occurrence} +${point.jitterMs}ms)`);
      victim = await WorkerProcess.start(`victim-${kills.length}`, env);
      trace('replacement ready');
    }
    const result = await outcome;
    trace('run finished');
    return { result, kills };
  } finally {
    await Promise.all([victim, ...(await bystanders)].map((w) => w.stop()));
  }
}

function record(delivery: Delivery, kills: KillPoint[]): void {
  tally.kills += kills.length;
  for (const k of kills) killsByPhase[k.phase] += 1;
  tally.runs += 1;
  tally.rowsLost += delivery.missing.length;
  tally.wrongRows += delivery.wrong.length;
  tally.duplicateEvents += delivery.duplicateInsertIds;
  tally.dedupedResends += delivery.dedupedResends;
}

async function syncedCount(file: string, syncId: string): Promise<{ synced: number; rejected: number }> {
  const store = new SqliteStateStore({ file });
  try {
    await store.migrate();
    return { synced: await store.countSynced(syncId), rejected: (await store.listRejected(syncId, 10)).length };
  } finally {
    await store.close();
  }
}

describe('a users sync of 100,000 rows', () => {
  const file = () => path.join(dir, 'users.db');
  let sync: SyncConfig;
  const syncId = uniqueSyncId('crash-users');
  const model = (version: number, rows = ROWS): GeneratedModel => ({
    kind: 'users',
    rows,
    seed: SEED,
    version,
    delayMs: 30,
  });
  const syncFor = (m: GeneratedModel, chunkSize: number): SyncConfig =>
    generatedSync({
      id: syncId,
      model: m,
      baseUrl: emulator.url,
      apiKeyEnv: KEY_ENV,
      options: { chunkSize, batchSize: chunkSize / 4, concurrency: 4 },
    });

  test('survives at least 10 SIGKILLs of its only worker, at every kind of point, and delivers every row once', async () => {
    sync = syncFor(model(1), 2000);
    const plan = killPlan(SEED, { extract: 2, 'mid-chunk': 4, 'send→commit': 3, commit: 3 });
    const { result, kills } = await runWithKills(sync, `sqlite:${file()}`, plan);
    const delivery = checkUsers(emulator, API_KEY, parseGeneratedModel(sync.model));
    record(delivery, kills);

    expect(kills.length).toBeGreaterThanOrEqual(10);
    expect(new Set(kills.map((k) => k.phase)).size).toBe(4);
    expect(result).toMatchObject({ status: 'succeeded', chunks: 50 });
    expect(result.counts).toMatchObject({
      extracted: ROWS,
      new: ROWS,
      delivered: ROWS,
      rejected: 0,
      deferred: 0,
      invalid: 0,
    });
    expect(delivery.missing).toEqual([]);
    expect(delivery.wrong).toEqual([]);
    expect(delivery.duplicateInsertIds).toBe(0);
    expect(emulator.eventCount(API_KEY)).toBe(ROWS);
    expect(await syncedCount(file(), syncId)).toEqual({ synced: ROWS, rejected: 0 });
  });

  test('then a changed model (10% changed, 1,000 new rows) with two workers, one killed repeatedly: only the changes go, and every profile ends in the model state', async () => {
    expect(sync).toBeDefined();
    const before = emulator.eventCount(API_KEY);
    const next = model(2, ROWS + 1000);
    // smaller chunks: only the changes are sent, and the victim must get some of them
    sync = syncFor(next, 500);
    const changed = Array.from({ length: ROWS }, (_, i) => i).filter(
      (i) => userRow(next, i).ltv !== userRow(model(1), i).ltv || userRow(next, i).plan !== userRow(model(1), i).plan,
    ).length;
    expect(changed).toBeGreaterThan(9000);
    const plan = killPlan(SEED + 1, { extract: 1, 'mid-chunk': 1, 'send→commit': 1, commit: 1 });
    const { result, kills } = await runWithKills(sync, `sqlite:${file()}`, plan, 2);
    const delivery = checkUsers(emulator, API_KEY, next);
    record(delivery, kills);

    // a changed run is short: on a quiet machine it may finish before every planned kill point comes round
    expect(kills.length).toBeGreaterThanOrEqual(1);
    expect(result.counts).toMatchObject({
      extracted: ROWS + 1000,
      new: 1000,
      changed,
      unchanged: ROWS - changed,
      delivered: changed + 1000,
      rejected: 0,
    });
    expect(delivery.missing).toEqual([]);
    expect(delivery.wrong).toEqual([]);
    expect(delivery.duplicateInsertIds).toBe(0);
    expect(emulator.eventCount(API_KEY) - before).toBe(changed + 1000);
    expect(await syncedCount(file(), syncId)).toEqual({ synced: ROWS + 1000, rejected: 0 });
  });
});

test('an events sync of 100,000 rows with two workers, one killed repeatedly: each insert_id is stored exactly once', async () => {
  const file = path.join(dir, 'events.db');
  const m: GeneratedModel = { kind: 'events', rows: ROWS, seed: SEED, version: 1, delayMs: 20 };
  const sync = generatedSync({
    id: uniqueSyncId('crash-events'),
    model: m,
    baseUrl: emulator.url,
    apiKeyEnv: EVENTS_KEY_ENV,
    options: { chunkSize: 1000, batchSize: 250, concurrency: 4 },
  });
  const plan = killPlan(SEED + 2, { extract: 1, 'mid-chunk': 2, 'send→commit': 2, commit: 2 });
  const { result, kills } = await runWithKills(sync, `sqlite:${file}`, plan, 2);
  const delivery = checkEvents(emulator, EVENTS_API_KEY, m);
  record(delivery, kills);

  expect(kills.length).toBeGreaterThanOrEqual(4);
  expect(result.counts).toMatchObject({ extracted: ROWS, new: ROWS, delivered: ROWS, rejected: 0 });
  expect(delivery.missing).toEqual([]);
  expect(delivery.wrong).toEqual([]);
  expect(delivery.duplicateInsertIds).toBe(0);
  expect(await syncedCount(file, sync.id)).toEqual({ synced: ROWS, rejected: 0 });
});

/**
 * Destination faults, injected through the Amplitude emulator's faults API while real runs go: 429 storms on a
 * few ids (only their rows wait), daily quotas (rows deferred, then delivered by the next run), 30% 5xx answers,
 * answers slower than the request timeout, connection resets, 413 from a lowered byte limit, and the endpoint
 * down for 20 s. Every run finishes and Amplitude holds every row, each insert_id once.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { SyncConfig } from '../../src/config/schema';
import { startAmplitudeEmulator, type AmplitudeEmulator } from '../../src/emulator/amplitude';
import { createHarness, type Harness } from '../support/temporal';
import { GeneratedSource, userId, type GeneratedModel } from './support/generated-source';
import { sleep } from './support/processes';
import { checkUsers, generatedSync, summaryLine, uniqueSyncId, type Delivery } from './support/runs';

jest.setTimeout(240_000);

const API_KEY = 'faults-amplitude-key-19c2';
const KEY_ENV = 'RELIABILITY_FAULTS_KEY';
const SEED = 77;
const ROWS = 3000;
const REQUEST_TIMEOUT_MS = 1_000;

let harness: Harness;
let emulator: AmplitudeEmulator;
let stopWorker: () => Promise<void>;
let dir: string;
const tally = { faults: 0, rowsLost: 0, wrongRows: 0, duplicateEvents: 0, dedupedResends: 0 };
const waits = { throttledMs: 0, unthrottledMs: 0, othersDoneMs: 0, outageMs: 0 };

beforeAll(async () => {
  harness = await createHarness();
  emulator = await startAmplitudeEmulator({ port: 0, apiKeys: [API_KEY], seed: SEED });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-faults-'));
  process.env[KEY_ENV] = API_KEY;
  const generated = new GeneratedSource();
  const worker = await harness.startWorker({
    state: `sqlite:${path.join(dir, 'state.db')}`,
    sourceFor: () => generated,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    maxThrottleWaitMs: 20_000,
    pageSize: 1000,
  });
  stopWorker = worker.stop;
});

afterAll(async () => {
  console.log(
    summaryLine('destination faults', {
      'faults injected': tally.faults,
      'rows lost': tally.rowsLost,
      'rows wrong': tally.wrongRows,
      'duplicate events': tally.duplicateEvents,
      're-sends deduplicated by insert_id': tally.dedupedResends,
      'throttled rows waited': `${(waits.throttledMs / 1000).toFixed(1)} s`,
      'other rows waited': `at most ${waits.unthrottledMs} ms (all in ${(waits.othersDoneMs / 1000).toFixed(1)} s)`,
      'outage ridden out': `${(waits.outageMs / 1000).toFixed(1)} s`,
    }),
  );
  await stopWorker?.();
  await emulator?.close();
  await harness?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  emulator.clearFaults();
  // a request an earlier test abandoned is stored when its latency passes: not in this test's counts
  await emulator.settled();
  emulator.reset();
});

function model(seed: number): GeneratedModel {
  return { kind: 'users', rows: ROWS, seed, version: 1, delayMs: 0 };
}

function syncOf(prefix: string, m: GeneratedModel, batchSize = 250): SyncConfig {
  return generatedSync({
    id: uniqueSyncId(prefix),
    model: m,
    baseUrl: emulator.url,
    apiKeyEnv: KEY_ENV,
    options: { chunkSize: 1000, batchSize, concurrency: 2 },
  });
}

function settle(delivery: Delivery): Delivery {
  tally.faults += 1;
  tally.rowsLost += delivery.missing.length;
  tally.wrongRows += delivery.wrong.length;
  tally.duplicateEvents += delivery.duplicateInsertIds;
  tally.dedupedResends += delivery.dedupedResends;
  return delivery;
}

function expectNothingLost(delivery: Delivery): void {
  expect(delivery.missing).toEqual([]);
  expect(delivery.wrong).toEqual([]);
  expect(delivery.duplicateInsertIds).toBe(0);
  expect(emulator.eventCount(API_KEY)).toBe(delivery.rows);
}

/** user_id → when Amplitude first saw it, and when a request carrying it was accepted. */
function timeline(): Map<string, { first: number; accepted?: number }> {
  const seen = new Map<string, { first: number; accepted?: number }>();
  for (const r of emulator.requests()) {
    if (r.body === undefined || r.path !== '/batch') continue;
    const events = (JSON.parse(r.body) as { events: { user_id: string }[] }).events;
    for (const e of events) {
      const entry = seen.get(e.user_id) ?? { first: r.at };
      if (r.status === 200 && entry.accepted === undefined) entry.accepted = r.at;
      seen.set(e.user_id, entry);
    }
  }
  return seen;
}

const statuses = (): Record<number, number> => {
  const out: Record<number, number> = {};
  for (const r of emulator.requests()) out[r.status] = (out[r.status] ?? 0) + 1;
  return out;
};

test('a 429 storm on 10 ids: only their rows wait, the rest of each request goes at once', async () => {
  const m = model(SEED + 1);
  const sync = syncOf('storm', m);
  // all in the first chunk, so they are first sent while the throttle holds
  const throttled = Array.from({ length: 10 }, (_, k) => userId(m.seed, k * 90 + 7));
  const from = Date.now();
  const THROTTLE_MS = 6_000;
  emulator.throttle({ userIds: throttled, forMs: THROTTLE_MS, retryAfterSeconds: 1 });
  const result = await harness.client.run(sync);
  const delivery = settle(checkUsers(emulator, API_KEY, m));

  expect(result.counts).toMatchObject({ delivered: ROWS, deferred: 0, rejected: 0 });
  expectNothingLost(delivery);
  // a storm: throttled rows were refused again on their first retries
  expect(statuses()[429]).toBeGreaterThanOrEqual(3);

  // every row of the run, throttled or not, by when Amplitude first saw it and when it accepted it
  const times = timeline();
  const others = [...times.entries()].filter(([id]) => !throttled.includes(id));
  const otherWaits = others.map(([, t]) => t.accepted! - t.first);
  const throttledWaits = throttled.map((id) => times.get(id)!.accepted! - times.get(id)!.first);
  for (const id of throttled) expect(times.get(id)!.accepted!).toBeGreaterThanOrEqual(from + THROTTLE_MS);
  // rows that shared a 429'd request with a throttled row were re-sent at once
  const refused = emulator.requests().filter((r) => r.status === 429);
  const companions = new Set(
    refused.flatMap((r) => (JSON.parse(r.body!) as { events: { user_id: string }[] }).events.map((e) => e.user_id)),
  );
  for (const id of throttled) companions.delete(id);
  expect(companions.size).toBeGreaterThan(200);
  const companionWaits = [...companions].map((id) => times.get(id)!.accepted! - times.get(id)!.first);
  waits.throttledMs = Math.min(...throttledWaits);
  waits.unthrottledMs = Math.max(...companionWaits, ...otherWaits);
  expect(others).toHaveLength(ROWS - throttled.length);
  expect(waits.throttledMs).toBeGreaterThanOrEqual(2_000);
  // not one other row waited: neither those refused with them, nor those behind them in the same chunk
  expect(waits.unthrottledMs).toBeLessThan(1_000);
  const lastOther = Math.max(...others.map(([, t]) => t.accepted!));
  waits.othersDoneMs = lastOther - from;
  expect(lastOther).toBeLessThan(from + THROTTLE_MS);
});

test('ids over their daily quota are deferred, not lost: the next run delivers them', async () => {
  const m = model(SEED + 2);
  const sync = syncOf('quota', m);
  const capped = [userId(m.seed, 5), userId(m.seed, 1500), userId(m.seed, 2999)];
  emulator.throttle({ dailyQuotaUserIds: capped, forMs: 60 * 60_000 });
  const first = await harness.client.run(sync);
  expect(first.counts).toMatchObject({ delivered: ROWS - 3, deferred: 3, rejected: 0 });
  expect(capped.map((id) => emulator.user(id, API_KEY))).toEqual([undefined, undefined, undefined]);
  expect(new Set((await harness.client.progress(sync.id))?.throttledIds)).toEqual(new Set(capped));

  emulator.clearFaults();
  const second = await harness.client.run(sync);
  expect(second.counts).toMatchObject({ new: 3, unchanged: ROWS - 3, delivered: 3 });
  expect(second.syncedKeys).toBe(ROWS);
  expectNothingLost(settle(checkUsers(emulator, API_KEY, m)));
});

test('30% of requests answer 500 after storing them: retried, and Amplitude drops the re-sent duplicates', async () => {
  const m = model(SEED + 3);
  emulator.failRate({ status: 500, rate: 0.3, ingestBeforeFailing: true });
  const result = await harness.client.run(syncOf('five-hundreds', m));
  const delivery = settle(checkUsers(emulator, API_KEY, m));
  expect(result.counts).toMatchObject({ delivered: ROWS, rejected: 0, deferred: 0 });
  expect(statuses()[500]).toBeGreaterThan(0);
  expect(delivery.dedupedResends).toBeGreaterThan(0);
  expectNothingLost(delivery);
});

test('30% of requests answer 503 (nothing stored): retried until accepted', async () => {
  const m = model(SEED + 4);
  emulator.failRate({ status: 503, rate: 0.3 });
  const result = await harness.client.run(syncOf('five-oh-threes', m));
  expect(result.counts).toMatchObject({ delivered: ROWS, rejected: 0 });
  expect(statuses()[503]).toBeGreaterThan(0);
  expectNothingLost(settle(checkUsers(emulator, API_KEY, m)));
});

test('answers slower than the request timeout for 5 s: requests are abandoned, re-sent, and not doubled', async () => {
  const m = model(SEED + 5);
  emulator.latency({ ms: REQUEST_TIMEOUT_MS * 2 });
  const slowFor = setTimeout(() => emulator.latency({ ms: 0 }), 5_000);
  try {
    const result = await harness.client.run(syncOf('slow', m));
    expect(result.counts).toMatchObject({ delivered: ROWS, rejected: 0 });
  } finally {
    clearTimeout(slowFor);
  }
  // requests abandoned near the end may still be waiting out their latency
  await emulator.settled();
  const delivery = settle(checkUsers(emulator, API_KEY, m));
  // the emulator stored the abandoned requests once their latency passed: the re-sends were duplicates
  expect(delivery.dedupedResends).toBeGreaterThan(0);
  expectNothingLost(delivery);
});

test('30% of connections reset without an answer: retried', async () => {
  const m = model(SEED + 6);
  emulator.resetConnections({ rate: 0.3 });
  const result = await harness.client.run(syncOf('resets', m));
  expect(result.counts).toMatchObject({ delivered: ROWS, rejected: 0 });
  expect(statuses()[0]).toBeGreaterThan(0);
  expectNothingLost(settle(checkUsers(emulator, API_KEY, m)));
});

test('413 from a byte limit lowered to 20 kB: requests are halved until they fit', async () => {
  const m = model(SEED + 7);
  emulator.byteLimit({ bytes: 20_000 });
  const result = await harness.client.run(syncOf('too-large', m, 1000));
  expect(result.counts).toMatchObject({ delivered: ROWS, rejected: 0 });
  expect(statuses()[413]).toBeGreaterThan(0);
  for (const r of emulator.requests()) if (r.status === 200) expect(r.bytes).toBeLessThanOrEqual(20_000);
  expectNothingLost(settle(checkUsers(emulator, API_KEY, m)));
});

test('the endpoint down for 20 s mid-run, then back: the run rides it out', async () => {
  // 20 s rather than a minute keeps the suite short; the path is the same (refused connections, the send's
  // retries exhausted, Temporal's backoff between attempts of the step) whatever the length of the outage
  const OUTAGE_MS = 20_000;
  const m = model(SEED + 8);
  emulator.latency({ ms: 50 });
  const handle = await harness.client.start(syncOf('outage', m));
  while (emulator.requests().filter((r) => r.status === 200).length < 2) await sleep(20);
  const downAt = Date.now();
  await emulator.down({ forMs: OUTAGE_MS });
  const result = await harness.client.follow(handle);
  waits.outageMs = Date.now() - downAt;
  expect(waits.outageMs).toBeGreaterThanOrEqual(OUTAGE_MS);
  expect(result.counts).toMatchObject({ delivered: ROWS, rejected: 0, deferred: 0 });
  expectNothingLost(settle(checkUsers(emulator, API_KEY, m)));
});

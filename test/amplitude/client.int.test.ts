/**
 * Wire-level tests of the Amplitude sender against loopback servers answering canned Amplitude responses:
 * exact bodies and endpoints, and every response class (200, partial 400, config errors, 413, 429, 5xx, resets).
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { AmplitudeSenderOptions } from '../../src/amplitude/client';
import { createAmplitudeSender, retryAfterMs } from '../../src/amplitude/client';
import { AmplitudeAbortedError, AmplitudeConfigError, AmplitudeUnavailableError } from '../../src/amplitude/errors';
import { packBatches } from '../../src/amplitude/batches';
import { canonicalJson } from '../../src/diff/canonical';
import type { RowOutcome, StagedRow } from '../../src/sync/types';
import type { CannedAnswer, CannedServer, RecordedRequest } from './support/canned-server';
import { startCannedServer } from './support/canned-server';
import { rowsReadAsBytes } from '../support/byte-rows';

const API_KEY = 'secret-api-key-123';

function staged(value: Record<string, unknown>, key: string): StagedRow {
  const payload = canonicalJson(value);
  return { key, payload };
}

function eventRows(n: number, user = (i: number) => `user-${String(i).padStart(5, '0')}`): StagedRow[] {
  return Array.from({ length: n }, (_, i) =>
    staged({ event_type: 'Viewed', user_id: user(i), insert_id: `ins-${i}`, event_properties: { i } }, `k${i}`),
  );
}

/** Every row has exactly one outcome, in order, with a valid status. */
function expectOneOutcomeEach(rows: StagedRow[], outcomes: RowOutcome[]): void {
  expect(outcomes).toHaveLength(rows.length);
  outcomes.forEach((o, i) => {
    expect(o.key).toBe(rows[i]!.key);
    expect(['delivered', 'rejected', 'deferred']).toContain(o.status);
  });
}

const statuses = (outcomes: RowOutcome[]): Record<string, number> =>
  outcomes.reduce<Record<string, number>>((acc, o) => ({ ...acc, [o.status]: (acc[o.status] ?? 0) + 1 }), {});

const insertIds = (req: RecordedRequest): unknown[] => req.items.map((e) => e.insert_id);

/** A seeded uniform [0, 1) source (mulberry32). */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Records requested waits and sleeps 1/`divisor` of them for real. */
function fastSleep(divisor = 100): { sleeps: number[]; sleep: NonNullable<AmplitudeSenderOptions['sleep']> } {
  const sleeps: number[] = [];
  return {
    sleeps,
    sleep: async (ms, signal) => {
      sleeps.push(ms);
      await delay(ms / divisor, undefined, { signal });
    },
  };
}

describe('Amplitude sender on the wire', () => {
  let server: CannedServer | undefined;
  let close: (() => Promise<void>) | undefined;

  afterEach(async () => {
    await close?.();
    await server?.close();
    server = undefined;
    close = undefined;
  });

  async function setup(
    respond: (req: RecordedRequest, n: number) => CannedAnswer | Promise<CannedAnswer>,
    options: Partial<AmplitudeSenderOptions> = {},
  ) {
    server = await startCannedServer(respond);
    const sender = createAmplitudeSender({
      api: 'batch',
      region: 'us',
      baseUrl: server.url,
      apiKey: API_KEY,
      minIdLength: 5,
      random: () => 0.5,
      ...options,
    });
    close = () => sender.close();
    return { sender, requests: server.requests };
  }

  it('200: posts the exact Batch body (gzipped) and delivers every row', async () => {
    const { sender, requests } = await setup(() => ({ status: 200 }));
    const rows = eventRows(50);
    const outcomes = await sender.sendBatch(rows);
    expectOneOutcomeEach(rows, outcomes);
    expect(statuses(outcomes)).toEqual({ delivered: 50 });
    expect(requests).toHaveLength(1);
    const req = requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/batch');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['content-encoding']).toBe('gzip');
    expect(req.body).toBe(
      `{"api_key":"${API_KEY}","events":[${rows.map((r) => r.payload).join(',')}],"options":{"min_id_length":5}}`,
    );
    expect(Buffer.byteLength(req.body)).toBeLessThanOrEqual(sender.limits.maxBytes);
    expect(sender.limits.envelopeBytes).toBe(
      Buffer.byteLength(`{"api_key":"${API_KEY}","events":,"options":{"min_id_length":5}}`),
    );
  });

  it('posts rows read as bytes (as a store reads a chunk) from their bytes alone, gzipped or not', async () => {
    const { sender, requests } = await setup(() => ({ status: 200 }));
    const text = eventRows(50);
    const { rows, decodes } = rowsReadAsBytes(text);
    // the batch leaves the 10th row out: its bytes stay in the source between the rows sent
    expect(statuses(await sender.sendBatch(rows.filter((_, i) => i !== 9)))).toEqual({ delivered: 49 });
    expect(statuses(await sender.sendBatch(rows.slice(0, 1)))).toEqual({ delivered: 1 });
    // no payload was decoded to text to build either body
    expect(decodes()).toBe(0);
    const payloads = text.filter((_, i) => i !== 9).map((r) => r.payload);
    expect(requests.map((r) => r.headers['content-encoding'])).toEqual(['gzip', undefined]);
    expect(requests[0]!.body).toBe(
      `{"api_key":"${API_KEY}","events":[${payloads.join(',')}],"options":{"min_id_length":5}}`,
    );
    expect(requests[1]!.body).toBe(
      `{"api_key":"${API_KEY}","events":[${text[0]!.payload}],"options":{"min_id_length":5}}`,
    );
  });

  it("gives a delivered row's outcome its staging position, so the store records it by position", async () => {
    const { sender } = await setup(() => ({ status: 200 }));
    const rows = eventRows(3).map((r, i) => ({ ...r, pos: 40 + i }));
    expect(await sender.sendBatch(rows)).toStrictEqual(
      rows.map((r) => ({ key: r.key, status: 'delivered', pos: r.pos })),
    );
    // rows without one (not read from a store) get outcomes without one
    const [unpositioned] = eventRows(1);
    expect(await sender.sendBatch([unpositioned!])).toStrictEqual([{ key: unpositioned!.key, status: 'delivered' }]);
  });

  it('sends small bodies uncompressed, and HTTP V2 to /2/httpapi', async () => {
    const { sender, requests } = await setup(() => ({}), { api: 'httpv2', minIdLength: 3 });
    await sender.sendBatch(eventRows(1));
    expect(requests[0]!.path).toBe('/2/httpapi');
    expect(requests[0]!.headers['content-encoding']).toBeUndefined();
    expect(requests[0]!.options).toEqual({ min_id_length: 3 });
  });

  it('posts identifications form-encoded to /identify and /groupidentify', async () => {
    const { sender, requests } = await setup(() => ({ status: 200, body: 'success' }), { api: 'identify' });
    const rows = [
      staged({ user_id: 'user-00001', user_properties: { $set: { plan: 'pro & co' } } }, 'user-00001'),
      staged({ user_id: 'user-00002', user_properties: { $unset: { plan: '-' } } }, 'user-00002'),
    ];
    expect(statuses(await sender.sendBatch(rows))).toEqual({ delivered: 2 });
    const req = requests[0]!;
    expect(req.path).toBe('/identify');
    expect(req.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(req.body).toBe(
      `api_key=${encodeURIComponent(API_KEY)}&identification=${encodeURIComponent(`[${rows[0]!.payload},${rows[1]!.payload}]`)}`,
    );
    expect(req.items).toEqual(rows.map((r) => JSON.parse(r.payload) as unknown));

    const groups = createAmplitudeSender({
      api: 'groupidentify',
      region: 'us',
      baseUrl: server!.url,
      apiKey: API_KEY,
      minIdLength: 5,
    });
    const group = staged({ group_type: 'account', group_value: 'acme', group_properties: { $set: { n: 1 } } }, 'acme');
    expect(await groups.sendBatch([group])).toEqual([{ key: 'acme', status: 'delivered' }]);
    await groups.close();
    expect(requests[1]!.path).toBe('/groupidentify');
    expect(requests[1]!.items).toEqual([JSON.parse(group.payload)]);
  });

  it('partial 400: rejects the indexed rows with Amplitude reasons and re-sends the rest at once', async () => {
    const { sender, requests } = await setup((req, n) =>
      n === 0
        ? {
            status: 400,
            body: {
              code: 400,
              error: 'Invalid field values on some events',
              events_with_invalid_fields: { time: [1, 3] },
              events_with_missing_fields: { event_type: [3] },
              events_with_invalid_id_lengths: { user_id: [5] },
              silenced_events: [7],
            },
          }
        : { status: 200, body: { code: 200, events_ingested: req.items.length } },
    );
    const rows = eventRows(8);
    const outcomes = await sender.sendBatch(rows);
    expectOneOutcomeEach(rows, outcomes);
    const reason = 'Amplitude /batch answered 400 (Invalid field values on some events): ';
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([
      { key: 'k1', status: 'rejected', reason: `${reason}invalid value in "time"` },
      { key: 'k3', status: 'rejected', reason: `${reason}invalid value in "time"; missing "event_type"` },
      { key: 'k5', status: 'rejected', reason: `${reason}"user_id" is shorter than min_id_length` },
      { key: 'k7', status: 'rejected', reason: `${reason}its device_id is silenced` },
    ]);
    expect(requests).toHaveLength(2);
    expect(insertIds(requests[1]!)).toEqual(['ins-0', 'ins-2', 'ins-4', 'ins-6']);
  });

  it('400 naming no row: bisects to isolate the bad row and rejects it alone', async () => {
    const { sender, requests } = await setup((req) =>
      req.items.some((e) => e.insert_id === 'ins-5')
        ? { status: 400, body: { code: 400, error: 'Invalid JSON request body' } }
        : {},
    );
    const rows = eventRows(8);
    const outcomes = await sender.sendBatch(rows);
    expectOneOutcomeEach(rows, outcomes);
    expect(outcomes[5]).toEqual({
      key: 'k5',
      status: 'rejected',
      reason: 'Amplitude /batch answered 400 (Invalid JSON request body)',
    });
    expect(statuses(outcomes)).toEqual({ delivered: 7, rejected: 1 });
    expect(requests.map((r) => r.items.length)).toEqual([8, 4, 4, 2, 1, 1, 2]);
  });

  it.each([
    [400, { code: 400, error: 'Invalid API key: secret-api-key-123' }, /answered 400 \(Invalid API key: \*\*\*\)/],
    [
      400,
      { code: 400, error: 'Request missing required field', missing_field: 'api_key' },
      /answered 400 \(Request missing required field: request field "api_key" missing\)/,
    ],
    [401, { code: 401, error: 'Unauthorized' }, /answered 401 \(Unauthorized\).*check the destination apiKey/],
    [403, { code: 403, error: 'Forbidden' }, /answered 403 \(Forbidden\).*firewall/],
    [404, 'Not Found', /answered 404 \(Not Found\).*baseUrl/],
  ])('%d %j → AmplitudeConfigError naming the endpoint, never the key', async (status, body, message) => {
    const { sender, requests } = await setup(() => ({ status, body }));
    const err: unknown = await sender
      .sendBatch(eventRows(3), { label: 'chunk 7 of sync "users"' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AmplitudeConfigError);
    const config = err as AmplitudeConfigError;
    expect(config).toMatchObject({ type: 'AmplitudeConfigError', retryable: false, status, outcomes: [] });
    expect(AmplitudeConfigError.type).toBe('AmplitudeConfigError');
    expect(config.message).toMatch(message);
    expect(config.message).toContain(`${server!.url}/batch`);
    expect(config.message).toContain('for chunk 7 of sync "users"');
    expect(config.message).not.toContain(API_KEY);
    expect(requests).toHaveLength(1);
  });

  it('413: splits the batch in halves until it fits; a single row still too large is rejected', async () => {
    const { sender, requests } = await setup((req) =>
      req.items.length > 2 || req.items.some((e) => e.insert_id === 'ins-6')
        ? { status: 413, body: { code: 413, error: 'Payload too large' } }
        : {},
    );
    const rows = eventRows(8);
    const outcomes = await sender.sendBatch(rows);
    expectOneOutcomeEach(rows, outcomes);
    expect(outcomes[6]).toEqual({
      key: 'k6',
      status: 'rejected',
      reason: `Amplitude /batch answered 413 (Payload too large) for this row alone (${Buffer.byteLength(
        `{"api_key":"${API_KEY}","events":[${rows[6]!.payload}],"options":{"min_id_length":5}}`,
      )} bytes)`,
    });
    expect(statuses(outcomes)).toEqual({ delivered: 7, rejected: 1 });
    expect(requests.map((r) => r.items.length)).toEqual([8, 4, 2, 2, 4, 2, 2, 1, 1]);
  });

  it('429 naming 2 users: only their rows wait 15 s; the others are delivered at once', async () => {
    const throttledUsers = new Set(['user-00002', 'user-00005']);
    let throttling = true;
    const { sleeps, sleep } = fastSleep(15); // 15 s → 1 s
    const { sender, requests } = await setup(
      (req) => {
        if (throttling && req.items.some((e) => throttledUsers.has(e.user_id as string))) {
          throttling = false;
          return {
            status: 429,
            body: {
              code: 429,
              error: 'Too many requests for some devices and users',
              eps_threshold: 1000,
              throttled_users: { 'user-00002': 1200, 'user-00005': 1100 },
              throttled_devices: {},
              throttled_events: [2, 5],
            },
          };
        }
        return {};
      },
      { sleep },
    );
    const rows = eventRows(10);
    const outcomes = await sender.sendBatch(rows);
    expectOneOutcomeEach(rows, outcomes);
    expect(statuses(outcomes)).toEqual({ delivered: 10 });
    expect(sleeps).toEqual([15_000]);
    expect(requests.map((r) => r.items.map((e) => e.user_id))).toEqual([
      rows.map((_, i) => `user-${String(i).padStart(5, '0')}`),
      ['user-00000', 'user-00001', 'user-00003', 'user-00004', 'user-00006', 'user-00007', 'user-00008', 'user-00009'],
      ['user-00002', 'user-00005'],
    ]);
    // The others went out right after the 429; the throttled ones only after the (scaled) 15 s wait.
    expect(requests[1]!.at - requests[0]!.at).toBeLessThan(500);
    expect(requests[2]!.at - requests[0]!.at).toBeGreaterThanOrEqual(990);
  });

  it('429: a user past its daily quota is deferred; a wait beyond maxThrottleWaitMs defers', async () => {
    let n = 0;
    const { sender, requests } = await setup(
      () =>
        n++ === 0
          ? {
              status: 429,
              body: {
                code: 429,
                error: 'Too many requests for some devices and users',
                throttled_users: { 'user-00001': 40 },
                exceeded_daily_quota_users: { 'user-00003': 500001 },
                throttled_events: [],
              },
              headers: { 'retry-after': '90' },
            }
          : {},
      { maxThrottleWaitMs: 60_000 },
    );
    const rows = eventRows(5);
    const outcomes = await sender.sendBatch(rows);
    expectOneOutcomeEach(rows, outcomes);
    expect(outcomes[3]).toEqual({
      key: 'k3',
      status: 'deferred',
      reason: 'user_id "user-00003" exceeded its daily Amplitude quota (429); sent again next run',
    });
    expect(outcomes[1]).toEqual({
      key: 'k1',
      status: 'deferred',
      reason:
        'Amplitude throttled user_id "user-00001" (429); waiting 90000 ms more would pass maxThrottleWaitMs 60000; ' +
        'sent again next run',
      retryAfterMs: 90_000,
    });
    expect(statuses(outcomes)).toEqual({ delivered: 3, deferred: 2 });
    expect(requests.map((r) => insertIds(r))).toEqual([
      ['ins-0', 'ins-1', 'ins-2', 'ins-3', 'ins-4'],
      ['ins-0', 'ins-2', 'ins-4'],
    ]);
  });

  it('429 naming nobody is project-level: the whole batch waits 60 s, then is delivered', async () => {
    const { sleeps, sleep } = fastSleep();
    const { sender, requests } = await setup(
      (_req, n) => (n === 0 ? { status: 429, body: { code: 429, error: 'Too many requests' } } : {}),
      { sleep },
    );
    const outcomes = await sender.sendBatch(eventRows(3));
    expect(statuses(outcomes)).toEqual({ delivered: 3 });
    expect(sleeps).toEqual([60_000]);
    expect(requests).toHaveLength(2);
  });

  it('a throttle that keeps coming defers the rows once the summed waits pass maxThrottleWaitMs', async () => {
    const { sleeps, sleep } = fastSleep();
    const { sender } = await setup(
      () => ({ status: 429, body: { code: 429, error: 'Too many requests', throttled_events: [0] } }),
      { sleep, maxThrottleWaitMs: 40_000 },
    );
    const outcomes = await sender.sendBatch(eventRows(1));
    expect(sleeps).toEqual([15_000, 15_000]);
    expect(outcomes).toEqual([{ key: 'k0', status: 'deferred', reason: expect.any(String), retryAfterMs: 15_000 }]);
  });

  it('5xx then success: retries with full-jitter backoff, relying on insert_id dedup', async () => {
    const { sleeps, sleep } = fastSleep();
    const { sender, requests } = await setup(
      (_req, n) =>
        n === 0 ? { status: 500, body: 'oops' } : n === 1 ? { status: 502 } : n === 2 ? { status: 504 } : {},
      { sleep, random: () => 0.5, backoffBaseMs: 100, backoffMaxMs: 250 },
    );
    const rows = eventRows(4);
    const outcomes = await sender.sendBatch(rows);
    expect(statuses(outcomes)).toEqual({ delivered: 4 });
    expect(sleeps).toEqual([50, 100, 125]);
    expect(requests.map(insertIds)).toEqual(Array.from({ length: 4 }, () => ['ins-0', 'ins-1', 'ins-2', 'ins-3']));
  });

  it('5xx through every attempt → AmplitudeUnavailableError carrying Retry-After', async () => {
    const { sender, requests } = await setup(
      () => ({ status: 503, body: { code: 503, error: 'Service Unavailable' }, headers: { 'retry-after': '0' } }),
      { maxAttempts: 3 },
    );
    const err: unknown = await sender.sendBatch(eventRows(2)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AmplitudeUnavailableError);
    expect(err).toMatchObject({ type: 'AmplitudeUnavailableError', retryable: true, retryAfterMs: 0 });
    expect((err as Error).message).toBe(
      `Amplitude ${server!.url}/batch answered 503 (Service Unavailable) (attempt 3 of 3)`,
    );
    expect(requests).toHaveLength(3);
  });

  it('a Retry-After longer than maxThrottleWaitMs on 503 fails at once so Temporal waits instead', async () => {
    const { sender, requests } = await setup(() => ({ status: 503, headers: { 'retry-after': '120' } }));
    await expect(sender.sendBatch(eventRows(1))).rejects.toMatchObject({
      type: 'AmplitudeUnavailableError',
      retryAfterMs: 120_000,
    });
    expect(requests).toHaveLength(1);
  });

  it('honours a 1 s Retry-After for real', async () => {
    const { sender, requests } = await setup((_req, n) =>
      n === 0 ? { status: 503, headers: { 'retry-after': '1' } } : {},
    );
    const outcomes = await sender.sendBatch(eventRows(2));
    expect(statuses(outcomes)).toEqual({ delivered: 2 });
    expect(requests[1]!.at - requests[0]!.at).toBeGreaterThanOrEqual(990);
  });

  it('a connection reset, then success', async () => {
    const { sender, requests } = await setup((_req, n) => (n === 0 ? { reset: true } : {}), { random: () => 0 });
    const rows = eventRows(3);
    const outcomes = await sender.sendBatch(rows);
    expectOneOutcomeEach(rows, outcomes);
    expect(statuses(outcomes)).toEqual({ delivered: 3 });
    expect(requests).toHaveLength(2);
  });

  it('a request timeout, then success', async () => {
    const { sender, requests } = await setup((_req, n) => (n === 0 ? { delayMs: 2000 } : {}), {
      requestTimeoutMs: 500,
      random: () => 0,
    });
    expect(statuses(await sender.sendBatch(eventRows(2)))).toEqual({ delivered: 2 });
    expect(requests).toHaveLength(2);
  });

  it('resets on every attempt → AmplitudeUnavailableError with the network cause', async () => {
    const { sender } = await setup(() => ({ reset: true }), { maxAttempts: 2, random: () => 0 });
    const err = (await sender.sendBatch(eventRows(1)).catch((e: unknown) => e)) as AmplitudeUnavailableError;
    expect(err).toBeInstanceOf(AmplitudeUnavailableError);
    expect(err.message).toMatch(/failed to answer \(.*\) \(attempt 2 of 2\)$/);
    expect(err.cause).toBeInstanceOf(Error);
  });

  it('an aborted send throws AmplitudeAbortedError carrying the rows settled so far', async () => {
    const controller = new AbortController();
    const sleeps: number[] = [];
    const { sender } = await setup(
      (req, n) => {
        // Abort once the rows that were not throttled have been answered (the throttled one is still waiting).
        if (n === 1) setTimeout(() => controller.abort(), 300);
        return req.items.some((e) => e.user_id === 'user-00001')
          ? { status: 429, body: { code: 429, error: 'Too many', throttled_users: { 'user-00001': 9 } } }
          : {};
      },
      {
        sleep: async (ms, signal) => {
          sleeps.push(ms);
          await delay(ms, undefined, { signal });
        },
      },
    );
    const err = (await sender
      .sendBatch(eventRows(3), { signal: controller.signal })
      .catch((e: unknown) => e)) as AmplitudeAbortedError;
    expect(err).toBeInstanceOf(AmplitudeAbortedError);
    expect(err).toMatchObject({ type: 'AmplitudeAbortedError', retryable: false });
    expect(sleeps).toEqual([15_000]);
    expect(err.outcomes).toEqual([
      { key: 'k0', status: 'delivered' },
      { key: 'k2', status: 'delivered' },
    ]);
  });

  it.each([1, 2, 3, 4, 5])('keeps one outcome per row under random answers (seed %d)', async (seed) => {
    const random = seeded(seed);
    const seenIn200 = new Set<unknown>();
    const { sender } = await setup(
      (req) => {
        const r = random();
        const some = (): number[] => req.items.map((_, i) => i).filter(() => random() < 0.2);
        if (r < 0.3) {
          for (const e of req.items) seenIn200.add(e.insert_id);
          return {};
        }
        if (r < 0.45)
          return { status: 400, body: { error: 'Invalid field values', events_with_invalid_fields: { time: some() } } };
        if (r < 0.55) return { status: 400, body: { error: 'Invalid JSON request body' } };
        if (r < 0.65) return { status: 413, body: { error: 'Payload too large' } };
        if (r < 0.8) return { status: 429, body: { error: 'Too many requests', throttled_events: some() } };
        if (r < 0.92) return { status: 503 };
        return { reset: true };
      },
      { sleep: () => Promise.resolve(), maxAttempts: 100, maxThrottleWaitMs: 20_000 },
    );
    const rows = eventRows(200);
    const outcomes = await sender.sendBatch(rows);
    expect(statuses(outcomes).delivered).toBeLessThan(rows.length);
    expectOneOutcomeEach(rows, outcomes);
    // Delivered exactly when a 200 answer carried the row; every other row is rejected or deferred.
    const delivered = outcomes.filter((o) => o.status === 'delivered').map((o) => o.key);
    expect(delivered).toEqual(rows.filter((_, i) => seenIn200.has(`ins-${i}`)).map((r) => r.key));
  });

  it('sends 2000 rows packed by the sender limits with one outcome each', async () => {
    const { sender, requests } = await setup(() => ({}), { batchSize: 500 });
    const rows = eventRows(2000);
    const outcomes = (await Promise.all(packBatches(rows, sender.limits).map((b) => sender.sendBatch(b)))).flat();
    expectOneOutcomeEach(rows, outcomes);
    expect(requests.map((r) => r.items.length)).toEqual([500, 500, 500, 500]);
  });

  it('uses a custom base URL with a path prefix, and the EU host when configured', async () => {
    const { requests } = await setup(() => ({}));
    const prefixed = createAmplitudeSender({
      api: 'batch',
      region: 'eu',
      baseUrl: `${server!.url}/amplitude/`,
      apiKey: API_KEY,
      minIdLength: 5,
    });
    await prefixed.sendBatch(eventRows(1));
    await prefixed.close();
    expect(requests[0]!.path).toBe('/amplitude/batch');
    const eu = createAmplitudeSender({ api: 'httpv2', region: 'eu', apiKey: API_KEY, minIdLength: 5 });
    expect(eu.url).toBe('https://api.eu.amplitude.com/2/httpapi');
    await eu.close();
    const us = createAmplitudeSender({ api: 'identify', region: 'us', apiKey: API_KEY, minIdLength: 5 });
    expect(us.url).toBe('https://api2.amplitude.com/identify');
    await us.close();
  });
});

describe('retryAfterMs', () => {
  it('reads seconds and HTTP dates', () => {
    const now = Date.UTC(2026, 0, 1, 0, 0, 0);
    expect(retryAfterMs({ 'retry-after': '2.5' }, now)).toBe(2500);
    expect(retryAfterMs({ 'retry-after': 'Thu, 01 Jan 2026 00:00:30 GMT' }, now)).toBe(30_000);
    expect(retryAfterMs({ 'retry-after': 'soon' }, now)).toBeUndefined();
    expect(retryAfterMs({}, now)).toBeUndefined();
  });
});

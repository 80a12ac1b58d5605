/**
 * End to end against the Amplitude emulator: model rows → compileMapper → packBatches → sender → emulator state,
 * for each object, plus response classes the emulator produces (400 indexes, 413, 429, 5xx, resets, 403).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { packBatches } from '../../src/amplitude/batches';
import type { AmplitudeSender, AmplitudeSenderOptions } from '../../src/amplitude/client';
import { createAmplitudeSender } from '../../src/amplitude/client';
import { apiForSync } from '../../src/amplitude/endpoints';
import { AmplitudeConfigError } from '../../src/amplitude/errors';
import { compileMapper } from '../../src/amplitude/mapping';
import type { SyncConfig } from '../../src/config/schema';
import { canonicalJson, hashText } from '../../src/diff/canonical';
import type { AmplitudeEmulator } from '../../src/emulator/amplitude';
import { startAmplitudeEmulator } from '../../src/emulator/amplitude';
import type { MappedRow, RowOutcome, RowRejection, SourceRow, StagedRow } from '../../src/sync/types';
import { makeSync } from './support/sync';

const API_KEY = 'emulator-project-key';

let emulator: AmplitudeEmulator;
const senders: AmplitudeSender[] = [];

beforeAll(async () => {
  emulator = await startAmplitudeEmulator({ apiKeys: [API_KEY] });
});

afterEach(async () => {
  emulator.clearFaults();
  emulator.reset();
  await Promise.all(senders.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await emulator.close();
});

function sender(api: AmplitudeSenderOptions['api'], options: Partial<AmplitudeSenderOptions> = {}): AmplitudeSender {
  const created = createAmplitudeSender({
    api,
    region: 'us',
    baseUrl: emulator.url,
    apiKey: API_KEY,
    minIdLength: 5,
    random: () => 0,
    ...options,
  });
  senders.push(created);
  return created;
}

/** Maps rows, sends the valid ones in packed batches (4 in flight), returns rejections and outcomes. */
async function sync(
  config: SyncConfig,
  rows: SourceRow[],
  options: Partial<AmplitudeSenderOptions> = {},
): Promise<{ mapped: MappedRow[]; invalid: RowRejection[]; outcomes: RowOutcome[] }> {
  const mapper = compileMapper(config);
  const mapped: MappedRow[] = [];
  const invalid: RowRejection[] = [];
  for (const row of rows) {
    const result = mapper.map(row);
    if (result.ok) mapped.push({ key: result.key, hash: result.hash, payload: result.payload });
    else invalid.push({ key: result.key, reason: result.reason, stage: result.stage });
  }
  const outcomes = await sendAll(
    sender(apiForSync(config), { batchSize: config.options.batchSize, ...options }),
    mapped,
  );
  return { mapped, invalid, outcomes };
}

async function sendAll(s: AmplitudeSender, rows: StagedRow[]): Promise<RowOutcome[]> {
  const batches = packBatches(rows, s.limits);
  const results: RowOutcome[][] = new Array<RowOutcome[]>(batches.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < batches.length) {
        const i = next++;
        results[i] = await s.sendBatch(batches[i]!);
      }
    }),
  );
  const outcomes = results.flat();
  expect(outcomes.map((o) => o.key)).toEqual(rows.map((r) => r.key));
  return outcomes;
}

const countBy = (outcomes: RowOutcome[]): Record<string, number> =>
  outcomes.reduce<Record<string, number>>((acc, o) => ({ ...acc, [o.status]: (acc[o.status] ?? 0) + 1 }), {});

function staged(value: Record<string, unknown>, key: string): StagedRow {
  const payload = canonicalJson(value);
  return { key, payload };
}

describe('each object end to end through the emulator', () => {
  it('users as $identify events on /batch set the profile', async () => {
    const config = makeSync({
      object: 'users',
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { from: 'plan', to: 'user_properties.plan' },
        { from: 'first_seen', to: 'user_properties.first_seen', op: '$setOnce' },
        { from: 'logins', to: 'user_properties.logins', op: '$add' },
        { from: 'account', to: 'groups.account' },
      ],
    });
    const { outcomes } = await sync(config, [
      { user_id: 'user-00001', plan: 'pro', first_seen: '2024-01-01', logins: 3, account: 'acme' },
      { user_id: 'user-00002', plan: 'free', first_seen: '2024-02-01', logins: 1, account: null },
    ]);
    expect(countBy(outcomes)).toEqual({ delivered: 2 });
    expect(emulator.user('user-00001', API_KEY)).toMatchObject({
      user_properties: { plan: 'pro', first_seen: '2024-01-01', logins: 3 },
      groups: { account: ['acme'] },
    });
    const events = emulator.events(API_KEY);
    expect(events.map((e) => e.event_type)).toEqual(['$identify', '$identify']);
    expect(emulator.requests().map((r) => [r.path, r.status])).toEqual([['/batch', 200]]);

    await sync(config, [{ user_id: 'user-00001', plan: 'team', first_seen: '2030-01-01', logins: 2, account: null }]);
    expect(emulator.user('user-00001', API_KEY)?.user_properties).toEqual({
      plan: 'team',
      first_seen: '2024-01-01',
      logins: 5,
    });
  });

  it('users on /identify, form-encoded, with NULLs unset', async () => {
    const config = makeSync({
      object: 'users',
      options: { api: 'identify', nullPolicy: 'unset' },
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { from: 'plan', to: 'user_properties.plan' },
        { from: 'country', to: 'country' },
      ],
    });
    await sync(config, [{ user_id: 'user-00003', plan: 'pro', country: 'FR' }]);
    expect(emulator.user('user-00003', API_KEY)?.user_properties).toEqual({ plan: 'pro' });
    const { outcomes } = await sync(config, [{ user_id: 'user-00003', plan: null, country: 'FR' }]);
    expect(outcomes).toEqual([{ key: 'user-00003', status: 'delivered' }]);
    expect(emulator.user('user-00003', API_KEY)?.user_properties).toEqual({});
    expect(emulator.requests().map((r) => [r.path, r.contentType])).toEqual([
      ['/identify', 'application/x-www-form-urlencoded'],
      ['/identify', 'application/x-www-form-urlencoded'],
    ]);
  });

  it('devices keyed by device_id', async () => {
    const config = makeSync({
      object: 'devices',
      key: 'device_id',
      mappings: [
        { from: 'device_id', to: 'device_id' },
        { from: 'model', to: 'user_properties.model' },
      ],
    });
    const { outcomes } = await sync(config, [{ device_id: 'dev-123456', model: 'Pixel 9' }]);
    expect(outcomes).toEqual([{ key: 'dev-123456', status: 'delivered' }]);
    expect(emulator.user('dev-123456', API_KEY)?.user_properties).toEqual({ model: 'Pixel 9' });
  });

  it('groups through /groupidentify', async () => {
    const config = makeSync({
      object: 'groups',
      key: 'account_id',
      groupType: 'account',
      mappings: [
        { from: 'name', to: 'group_properties.name' },
        { from: 'seats', to: 'group_properties.seats' },
      ],
    });
    const { outcomes } = await sync(config, [
      { account_id: 'acme', name: 'Acme Inc', seats: 12 },
      { account_id: 'globex', name: 'Globex', seats: 3 },
    ]);
    expect(countBy(outcomes)).toEqual({ delivered: 2 });
    expect(emulator.group('account', 'acme', API_KEY)?.group_properties).toEqual({ name: 'Acme Inc', seats: 12 });
    expect(emulator.requests().map((r) => r.path)).toEqual(['/groupidentify']);
  });

  it('events on /2/httpapi are stored as mapped', async () => {
    const config = makeSync({
      id: 'orders',
      object: 'events',
      key: 'order_id',
      options: { api: 'httpv2' },
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { constant: 'Order Completed', to: 'event_type' },
        { from: 'at', to: 'time' },
        { from: 'total', to: 'revenue' },
        { from: 'sku', to: 'event_properties.sku' },
      ],
    });
    const { mapped, outcomes } = await sync(config, [
      { order_id: 'o-1', user_id: 'user-00009', at: '2024-05-01T10:00:00Z', total: '9.50', sku: 'A-1' },
    ]);
    expect(outcomes).toEqual([{ key: 'o-1', status: 'delivered' }]);
    const [event] = emulator.events(API_KEY);
    expect(event).toMatchObject(JSON.parse(mapped[0]!.payload) as object);
    expect(event).toMatchObject({
      time: Date.UTC(2024, 4, 1, 10),
      revenue: 9.5,
      insert_id: hashText('orders\u001fo-1'),
    });
    expect(emulator.requests()[0]!.path).toBe('/2/httpapi');
  });
});

describe('volume and response classes through the emulator', () => {
  const eventsConfig = makeSync({
    id: 'clicks',
    object: 'events',
    key: 'id',
    mappings: [
      { from: 'user_id', to: 'user_id' },
      { constant: 'Clicked', to: 'event_type' },
      { from: 'at', to: 'time' },
    ],
  });
  const rows = (n: number): SourceRow[] =>
    Array.from({ length: n }, (_, i) => ({
      id: i,
      user_id: `user-${String(i % 300).padStart(5, '0')}`,
      at: 1_700_000_000_000 + i,
    }));

  it('2000 rows with 3 invalid: 1997 delivered, 3 rejected by validation with reasons', async () => {
    const input = rows(2000);
    input[10] = { ...input[10]!, user_id: 'null' };
    input[500] = { ...input[500]!, at: 'not a time' };
    input[1999] = { ...input[1999]!, user_id: 'abc' };
    const { invalid, outcomes } = await sync(eventsConfig, input);
    expect(invalid).toEqual([
      { key: '10', reason: 'user_id "null" is a placeholder Amplitude rejects', stage: 'validation' },
      {
        key: '500',
        reason:
          'time from column "at": "not a time" is not a timestamp (ms since the epoch, ISO 8601 timestamp or date)',
        stage: 'validation',
      },
      { key: '1999', reason: 'user_id "abc" is shorter than the minimum id length 5', stage: 'validation' },
    ]);
    expect(countBy(outcomes)).toEqual({ delivered: 1997 });
    expect(emulator.eventCount(API_KEY)).toBe(1997);
  });

  it('2000 staged rows with 3 Amplitude refuses: 1997 delivered, 3 rejected with its reasons', async () => {
    const staged2000 = Array.from({ length: 2000 }, (_, i) =>
      staged({ event_type: 'Clicked', user_id: `user-${String(i).padStart(5, '0')}`, insert_id: `c-${i}` }, `c${i}`),
    );
    staged2000[7] = staged({ event_type: 'Clicked', user_id: 'user-00007', time: 'yesterday' }, 'c7');
    staged2000[800] = staged({ user_id: 'user-00800' }, 'c800');
    staged2000[1500] = staged({ event_type: 'Clicked', user_id: 'abc' }, 'c1500');
    const outcomes = await sendAll(sender('batch', { batchSize: 1000 }), staged2000);
    expect(countBy(outcomes)).toEqual({ delivered: 1997, rejected: 3 });
    const rejected = outcomes.filter((o) => o.status === 'rejected');
    expect(rejected.map((o) => o.key)).toEqual(['c7', 'c800', 'c1500']);
    for (const o of rejected)
      expect(o).toMatchObject({ reason: expect.stringMatching(/^Amplitude \/batch answered 400/) });
    expect(emulator.eventCount(API_KEY)).toBe(1997);
  });

  it('the same insert_id sent twice counts once', async () => {
    const { outcomes } = await sync(eventsConfig, rows(50));
    const again = await sync(eventsConfig, rows(50));
    expect(countBy(outcomes)).toEqual({ delivered: 50 });
    expect(countBy(again.outcomes)).toEqual({ delivered: 50 });
    expect(emulator.eventCount(API_KEY)).toBe(50);
    expect(emulator.duplicatesDropped(API_KEY)).toBe(50);
  });

  it('429 for 2 users: their rows wait while the others are delivered at once', async () => {
    emulator.throttle({ userIds: ['user-00001', 'user-00002'], forMs: 500 });
    const waits: number[] = [];
    const { outcomes } = await sync(eventsConfig, rows(300), {
      sleep: async (ms, signal) => {
        waits.push(ms);
        await delay(ms / 15, undefined, { signal }); // 15 s → 1 s
      },
    });
    expect(countBy(outcomes)).toEqual({ delivered: 300 });
    expect(waits).toEqual([15_000]);
    const requests = emulator.requests();
    expect(requests.map((r) => [r.status, r.events])).toEqual([
      [429, 300],
      [200, 298],
      [200, 2],
    ]);
    expect(requests[1]!.at - requests[0]!.at).toBeLessThan(500);
    expect(requests[2]!.at - requests[0]!.at).toBeGreaterThanOrEqual(990);
    expect(emulator.eventCount(API_KEY)).toBe(300);
  });

  it('500 after storing, then success: insert_id dedup keeps one copy', async () => {
    emulator.failRate({ status: 500, rate: 1, ingestBeforeFailing: true, times: 1 });
    const { outcomes } = await sync(eventsConfig, rows(20));
    expect(countBy(outcomes)).toEqual({ delivered: 20 });
    expect(emulator.requests().map((r) => r.status)).toEqual([500, 200]);
    expect(emulator.eventCount(API_KEY)).toBe(20);
  });

  it('a reset connection, then success', async () => {
    emulator.resetConnections({ rate: 1, times: 1 });
    const { outcomes } = await sync(eventsConfig, rows(20));
    expect(countBy(outcomes)).toEqual({ delivered: 20 });
    expect(emulator.eventCount(API_KEY)).toBe(20);
  });

  it('413 from a lower byte limit: halves until each request fits', async () => {
    const one = compileMapper(eventsConfig).map(rows(1)[0]!);
    if (!one.ok) throw new Error(one.reason);
    emulator.byteLimit({ bytes: one.payload.length * 5 });
    const { outcomes } = await sync(eventsConfig, rows(16));
    expect(countBy(outcomes)).toEqual({ delivered: 16 });
    const requests = emulator.requests();
    expect(requests.map((r) => r.status)).toEqual([413, 413, 200, 200, 413, 200, 200]);
    expect(requests.filter((r) => r.status === 200).map((r) => r.events)).toEqual([4, 4, 4, 4]);
    expect(emulator.eventCount(API_KEY)).toBe(16);
  });

  it('403 and an unknown API key fail with AmplitudeConfigError', async () => {
    emulator.forbidden();
    await expect(sync(eventsConfig, rows(2))).rejects.toMatchObject({ type: 'AmplitudeConfigError', status: 403 });
    emulator.clearFaults();
    const err: unknown = await sendAll(sender('batch', { apiKey: 'wrong-key' }), [
      staged({ event_type: 'x', user_id: 'user-00001' }, 'k'),
    ]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AmplitudeConfigError);
    expect((err as Error).message).not.toContain('wrong-key');
  });
});

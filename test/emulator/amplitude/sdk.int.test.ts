/**
 * Fidelity against the official Node SDK (@amplitude/analytics-node): pointed at the emulator, what the
 * emulator stores equals what the SDK meant, and the SDK reacts to the emulator's 400/413/429/503 as the
 * reference says it does against Amplitude.
 */
import { Identify, Types, createInstance } from '@amplitude/analytics-node';
import { AmplitudeNode } from '@amplitude/analytics-node/lib/cjs/node-client';
import type { AmplitudeEmulator } from '../../../src/emulator/amplitude';
import { startAmplitudeEmulator } from '../../../src/emulator/amplitude';
import { API_KEY } from './http';

let amplitude: AmplitudeEmulator;

beforeAll(async () => {
  amplitude = await startAmplitudeEmulator({ apiKeys: [API_KEY] });
});

afterAll(async () => {
  await amplitude.close();
});

beforeEach(() => {
  amplitude.clearFaults();
  amplitude.reset();
});

/**
 * SDK options: scheduled flushes every `flushIntervalMillis` retry; an explicit flush() does not. The SDK
 * never clears its pending flush timer, so a short interval keeps Jest from waiting on it.
 */
function sdkOptions(path: '/2/httpapi' | '/batch', extra: Partial<Types.NodeOptions> = {}): Types.NodeOptions {
  return {
    serverUrl: `${amplitude.url}${path}`,
    useBatch: path === '/batch',
    flushQueueSize: 50,
    flushIntervalMillis: 500,
    logLevel: Types.LogLevel.None,
    ...extra,
  };
}

describe.each(['/2/httpapi', '/batch'] as const)('the official SDK against %s', (path) => {
  it('stores the events, user profile, group profile and group link the SDK meant', async () => {
    const sdk = createInstance();
    await sdk.init(API_KEY, sdkOptions(path)).promise;
    const user = { user_id: 'sdk-user-1', device_id: 'sdk-device-1' };
    const pending = [
      sdk.track('Signed Up', { plan: 'pro', seats: 3 }, user).promise,
      sdk.identify(
        new Identify()
          .set('plan', 'pro')
          .setOnce('first_seen', '2024-01-01')
          .add('logins', 2)
          .append('tags', 'a')
          .preInsert('roles', 'admin')
          .set('stale', true),
        user,
      ).promise,
      sdk.identify(
        new Identify()
          .setOnce('first_seen', '2025-01-01')
          .add('logins', 3)
          .append('tags', ['b', 'c'])
          .postInsert('roles', ['admin', 'owner'])
          .unset('stale'),
        user,
      ).promise,
      sdk.identify(new Identify().remove('tags', 'a').prepend('history', 'signup'), user).promise,
      sdk.groupIdentify(
        'company',
        'acme-corp',
        new Identify().set('tier', 'gold').add('seats', 10).append('regions', 'eu'),
        user,
      ).promise,
      sdk.setGroup('company', 'acme-corp', user).promise,
    ];
    await sdk.flush().promise;
    const results = await Promise.all(pending);
    expect(results.map((r) => r.code)).toEqual([200, 200, 200, 200, 200, 200]);

    expect(amplitude.user('sdk-user-1')).toEqual({
      user_id: 'sdk-user-1',
      device_id: 'sdk-device-1',
      user_properties: {
        plan: 'pro',
        first_seen: '2024-01-01',
        logins: 5,
        tags: ['b', 'c'],
        roles: ['admin', 'owner'],
        history: ['signup'],
        company: 'acme-corp',
      },
      groups: { company: ['acme-corp'] },
    });
    expect(amplitude.group('company', 'acme-corp')?.group_properties).toEqual({
      tier: 'gold',
      seats: 10,
      regions: ['eu'],
    });

    // every event as the SDK built it, in order, with the SDK's insert_ids
    const stored = amplitude.events();
    expect(stored.map((e) => e.event_type)).toEqual([
      'Signed Up',
      '$identify',
      '$identify',
      '$identify',
      '$groupidentify',
      '$identify',
    ]);
    results.forEach((result, i) => {
      expect(stored[i]).toEqual({ ...result.event, server_upload_time: stored[i]?.server_upload_time });
    });
    expect(stored[0]).toMatchObject({ event_properties: { plan: 'pro', seats: 3 }, ...user });
    expect(amplitude.requests().map((r) => [r.path, r.status, r.events])).toEqual([[path, 200, 6]]);
  });
});

describe('the official SDK reacting to faults', () => {
  it('400: drops the indexed events and re-sends the rest', async () => {
    const sdk = createInstance();
    // the 4th event fills the queue and flushes all four in one request (a short timer could fire after 2 of them
    // on a loaded machine); the retry of the rest waits for the next scheduled flush
    const options = sdkOptions('/2/httpapi', { flushIntervalMillis: 1000, flushQueueSize: 4 });
    await sdk.init(API_KEY, options).promise;
    const results = await Promise.all([
      sdk.track('Valid', undefined, { user_id: 'sdk-user-1' }).promise,
      sdk.track('Short Id', undefined, { user_id: 'abc' }).promise,
      sdk.track({ event_type: 'Bad Time', user_id: 'sdk-user-2', time: 1.5 }).promise,
      sdk.track('Valid Too', undefined, { user_id: 'sdk-user-3' }).promise,
    ]);
    expect(results.map((r) => r.code)).toEqual([200, 400, 400, 200]);
    expect(amplitude.requests().map((r) => [r.status, r.events])).toEqual([
      [400, 4],
      [200, 2],
    ]);
    expect(amplitude.events().map((e) => e.event_type)).toEqual(['Valid', 'Valid Too']);
  });

  it('429: drops daily-quota ids, pauses the throttled ones, then delivers them', async () => {
    const client = new AmplitudeNode();
    await client.init(API_KEY, sdkOptions('/batch', { flushIntervalMillis: 20 })).promise;
    // the SDK pauses throttled events a fixed 30 s; shorten it so the test runs in a second
    const destination = client.plugin('amplitude') as unknown as { throttleTimeout: number };
    // the throttle lasts long enough for the first request to meet it on a loaded machine, and ends before the
    // SDK's (shortened) pause does, so its one retry is accepted
    destination.throttleTimeout = 1_600;
    amplitude.throttle({ userIds: ['hot-user-1'], dailyQuotaUserIds: ['quota-user-1'], forMs: 1_500 });
    const started = Date.now();
    const results = await Promise.all([
      client.track('Calm', undefined, { user_id: 'calm-user-1' }).promise,
      client.track('Hot', undefined, { user_id: 'hot-user-1' }).promise,
      client.track('Over Quota', undefined, { user_id: 'quota-user-1' }).promise,
    ]);
    expect(results.map((r) => r.code)).toEqual([200, 200, 429]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_600);
    expect(amplitude.requests().map((r) => [r.status, r.events])).toEqual([
      [429, 3],
      [200, 2],
    ]);
    expect(amplitude.events().map((e) => e.event_type)).toEqual(['Calm', 'Hot']);
  });

  it('413: halves its chunk size and re-sends', async () => {
    const sdk = createInstance();
    await sdk.init(API_KEY, sdkOptions('/batch', { flushIntervalMillis: 20, flushQueueSize: 4 })).promise;
    const pad = 'x'.repeat(300);
    const single = JSON.stringify({ event_type: 'Padded', user_id: 'sdk-user-1', event_properties: { pad } });
    amplitude.byteLimit({ bytes: single.length * 2 + 600 });
    const results = await Promise.all(
      Array.from({ length: 4 }, () => sdk.track('Padded', { pad }, { user_id: 'sdk-user-1' }).promise),
    );
    expect(results.map((r) => r.code)).toEqual([200, 200, 200, 200]);
    // a 413 body is not parsed, so its events are not counted in the log
    expect(amplitude.requests().map((r) => [r.status, r.events])).toEqual([
      [413, 0],
      [200, 2],
      [200, 2],
    ]);
    expect(amplitude.eventCount()).toBe(4);
  });

  it('503: retries after its backoff and the events arrive once', async () => {
    const sdk = createInstance();
    await sdk.init(API_KEY, sdkOptions('/2/httpapi', { flushIntervalMillis: 20 })).promise;
    amplitude.failRate({ status: 503, rate: 1, times: 1 });
    const results = await Promise.all([sdk.track('Retried', undefined, { user_id: 'sdk-user-1' }).promise]);
    expect(results.map((r) => r.code)).toEqual([200]);
    expect(amplitude.requests().map((r) => r.status)).toEqual([503, 200]);
    expect(amplitude.eventCount()).toBe(1);
  });

  it('500 after storing: the retry is dropped as a duplicate by insert_id', async () => {
    const sdk = createInstance();
    await sdk.init(API_KEY, sdkOptions('/batch', { flushIntervalMillis: 20 })).promise;
    amplitude.failRate({ status: 500, rate: 1, times: 1, ingestBeforeFailing: true });
    const results = await Promise.all([sdk.track('Once', undefined, { user_id: 'sdk-user-1' }).promise]);
    expect(results.map((r) => r.code)).toEqual([200]);
    expect(amplitude.requests().map((r) => r.status)).toEqual([500, 200]);
    expect(amplitude.eventCount()).toBe(1);
    expect(amplitude.duplicatesDropped()).toBe(1);
  });

  it('invalid API key: drops every event without retrying', async () => {
    const sdk = createInstance();
    await sdk.init('unknown-key', sdkOptions('/2/httpapi', { flushIntervalMillis: 20 })).promise;
    const results = await Promise.all([sdk.track('Lost', undefined, { user_id: 'sdk-user-1' }).promise]);
    expect(results).toEqual([expect.objectContaining({ code: 400, message: 'Invalid API key' })]);
    expect(amplitude.requests().map((r) => r.status)).toEqual([400]);
  });
});

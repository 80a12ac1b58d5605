/** Every documented response class of the emulator, asserted on the exact wire body. */
import { gzipSync } from 'node:zlib';
import type { AmplitudeEmulator } from '../../../src/emulator/amplitude';
import { InvalidFaultError, startAmplitudeEmulator } from '../../../src/emulator/amplitude';
import { API_KEY, connectCode, event, failureCode, post } from './http';

const T0 = 1_750_000_000_000;
let clock = T0;
let amplitude: AmplitudeEmulator;

beforeAll(async () => {
  amplitude = await startAmplitudeEmulator({ apiKeys: [API_KEY], now: () => clock });
});

afterAll(async () => {
  await amplitude.close();
});

beforeEach(() => {
  clock = T0;
  amplitude.clearFaults();
  amplitude.reset();
});

const send = (path: string, events: unknown[], extra: Record<string, unknown> = {}) =>
  post(amplitude.url, path, { api_key: API_KEY, events, ...extra });

/** A JSON body of exactly `size` bytes holding one valid event. */
function bodyOfSize(size: number): string {
  const base = JSON.stringify({ api_key: API_KEY, events: [event('user-1', { event_properties: { pad: '' } })] });
  const padded = base.replace('"pad":""', `"pad":"${''.padEnd(size - base.length, 'x')}"`);
  expect(Buffer.byteLength(padded)).toBe(size);
  return padded;
}

describe('200', () => {
  it.each(['/2/httpapi', '/batch'])('%s answers the documented body and stores the events', async (path) => {
    const events = [event('user-1', { insert_id: 'a-1' }), { event_type: 'b', device_id: 'device-1' }];
    const body = JSON.stringify({ api_key: API_KEY, events });
    const answer = await post(amplitude.url, path, undefined, { raw: body });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('application/json');
    expect(answer.body).toEqual({
      code: 200,
      events_ingested: 2,
      payload_size_bytes: Buffer.byteLength(body),
      server_upload_time: T0,
    });
    expect(amplitude.events()).toEqual(events.map((e) => ({ ...e, server_upload_time: T0 })));
    expect(amplitude.eventCount()).toBe(2);
    expect(amplitude.requests()).toEqual([
      {
        at: T0,
        method: 'POST',
        path,
        status: 200,
        apiKey: API_KEY,
        events: 2,
        bytes: Buffer.byteLength(body),
        wireBytes: Buffer.byteLength(body),
        gzip: false,
        contentType: 'application/json',
        body,
      },
    ]);
  });

  it('accepts a gzip body and counts its decompressed size', async () => {
    const body = JSON.stringify({ api_key: API_KEY, events: [event('user-1')] });
    const answer = await post(amplitude.url, '/batch', undefined, { raw: body, gzip: true });
    expect(answer.body).toEqual({
      code: 200,
      events_ingested: 1,
      payload_size_bytes: Buffer.byteLength(body),
      server_upload_time: T0,
    });
    expect(amplitude.requests()[0]).toMatchObject({
      gzip: true,
      bytes: Buffer.byteLength(body),
      wireBytes: gzipSync(Buffer.from(body)).length,
    });
    expect(amplitude.eventCount()).toBe(1);
  });

  it('truncates strings longer than 1024 characters on ingest', async () => {
    const answer = await send('/2/httpapi', [event('user-1', { event_properties: { note: 'y'.repeat(3000) } })]);
    expect(answer.status).toBe(200);
    expect(amplitude.events()[0]?.event_properties).toEqual({ note: 'y'.repeat(1024) });
  });

  it('honours options.min_id_length', async () => {
    expect((await send('/2/httpapi', [event('ab')], { options: { min_id_length: 2 } })).status).toBe(200);
    expect((await send('/2/httpapi', [event('ab')])).status).toBe(400);
  });
});

describe('400', () => {
  it('invalid JSON', async () => {
    const answer = await post(amplitude.url, '/2/httpapi', undefined, { raw: '{"api_key":' });
    expect(answer.status).toBe(400);
    expect(answer.text).toBe('{"code":400,"error":"Invalid JSON request body"}');
  });

  it('missing api_key', async () => {
    const answer = await post(amplitude.url, '/batch', { events: [event('user-1')] });
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({ code: 400, error: 'Request missing required field', missing_field: 'api_key' });
  });

  it('unknown api key', async () => {
    const answer = await post(amplitude.url, '/2/httpapi', { api_key: 'not-a-key', events: [event('user-1')] });
    expect(answer.status).toBe(400);
    expect(answer.text).toBe('{"code":400,"error":"Invalid API key"}');
  });

  it('missing events', async () => {
    const answer = await send('/2/httpapi', []);
    expect(answer.body).toEqual({ code: 400, error: 'Request missing required field', missing_field: 'events' });
  });

  it('per-event problems: index maps, and none of the request is ingested', async () => {
    const answer = await send('/2/httpapi', [
      event('user-1'),
      { event_type: 'no ids' },
      event('abc'),
      event('anonymous'),
      event('user-2', { time: '2024-05-01T00:00:00Z' }),
      { user_id: 'user-3' },
      event('user-4'),
    ]);
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({
      code: 400,
      error: 'Request missing required field',
      events_with_invalid_fields: { user_id: [3], time: [4] },
      events_with_missing_fields: { device_id: [1], event_type: [5] },
      events_with_invalid_id_lengths: { user_id: [2] },
    });
    expect(amplitude.eventCount()).toBe(0);
  });

  it('invalid field values only', async () => {
    const answer = await send('/batch', [event('user-1'), event('user-2', { time: 1.5 })]);
    expect(answer.body).toEqual({
      code: 400,
      error: 'Invalid field values on some events',
      events_with_invalid_fields: { time: [1] },
    });
  });

  it('operators mixed with bare keys in a $identify', async () => {
    const answer = await send('/batch', [
      { event_type: '$identify', user_id: 'user-1', user_properties: { $set: { a: 1 }, plan: 'pro' } },
    ]);
    expect(answer.body).toEqual({
      code: 400,
      error: 'Invalid field values on some events',
      events_with_invalid_fields: { user_properties: [0] },
    });
  });

  it('missing or wrong Content-Type', async () => {
    const body = { api_key: API_KEY, events: [event('user-1')] };
    const missing = await post(amplitude.url, '/2/httpapi', body, { contentType: null });
    expect(missing.status).toBe(400);
    expect(missing.body).toEqual({ code: 400, error: 'Invalid Content-Type none: expected application/json' });
    const form = await post(amplitude.url, '/batch', body, { contentType: 'text/plain' });
    expect(form.status).toBe(400);
    expect(amplitude.eventCount()).toBe(0);
  });

  it('silenced devices', async () => {
    amplitude.silence({ deviceIds: ['device-silent'], forMs: 1000 });
    const answer = await send('/batch', [event('user-1'), event('user-2', { device_id: 'device-silent' })]);
    expect(answer.body).toEqual({
      code: 400,
      error: 'Events silenced for device_id',
      silenced_devices: ['device-silent'],
      silenced_events: [1],
    });
    expect(amplitude.eventCount()).toBe(0);
  });
});

describe('403', () => {
  it('answers the documented body until cleared', async () => {
    amplitude.forbidden();
    const answer = await send('/batch', [event('user-1')]);
    expect(answer.status).toBe(403);
    expect(answer.text).toBe('{"code":403,"error":"Forbidden"}');
    amplitude.clearFaults();
    expect((await send('/batch', [event('user-1')])).status).toBe(200);
    expect(amplitude.eventCount()).toBe(1);
  });
});

describe('413', () => {
  it('HTTP V2 accepts 999,999 bytes and refuses 1,000,000', async () => {
    const ok = await post(amplitude.url, '/2/httpapi', undefined, { raw: bodyOfSize(999_999) });
    expect(ok.status).toBe(200);
    const tooLarge = await post(amplitude.url, '/2/httpapi', undefined, { raw: bodyOfSize(1_000_000) });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.text).toBe('{"code":413,"error":"Payload too large"}');
    expect(amplitude.eventCount()).toBe(1);
  });

  it('Batch accepts 20,000,000 bytes and refuses 20,000,001', async () => {
    expect((await post(amplitude.url, '/batch', undefined, { raw: bodyOfSize(20_000_000) })).status).toBe(200);
    expect((await post(amplitude.url, '/batch', undefined, { raw: bodyOfSize(20_000_001) })).status).toBe(413);
  });

  it('counts the limit after gzip decompression', async () => {
    const answer = await post(amplitude.url, '/2/httpapi', undefined, { raw: bodyOfSize(1_200_000), gzip: true });
    expect(amplitude.requests()[0]?.wireBytes).toBeLessThan(100_000);
    expect(answer.status).toBe(413);
  });

  it('refuses more than 2000 events', async () => {
    const events = Array.from({ length: 2001 }, (_, i) => event(`user-${i}`));
    expect((await send('/batch', events)).status).toBe(413);
    expect((await send('/batch', events.slice(0, 2000))).status).toBe(200);
  });

  it('byteLimit lowers the threshold', async () => {
    amplitude.byteLimit({ bytes: 500 });
    expect((await post(amplitude.url, '/batch', undefined, { raw: bodyOfSize(500) })).status).toBe(200);
    expect((await post(amplitude.url, '/batch', undefined, { raw: bodyOfSize(501) })).status).toBe(413);
  });
});

describe('429', () => {
  it('answers the documented shape with throttled_events indexes and ingests nothing', async () => {
    amplitude.throttle({
      userIds: ['hot-user'],
      deviceIds: ['hot-device'],
      dailyQuotaUserIds: ['quota-user'],
      forMs: 30_000,
    });
    const answer = await send('/2/httpapi', [
      event('calm-user'),
      event('hot-user'),
      event('quota-user'),
      event('calm-user-2', { device_id: 'hot-device' }),
      event('hot-user'),
    ]);
    expect(answer.status).toBe(429);
    expect(answer.headers.get('retry-after')).toBeNull();
    expect(answer.text).toBe(
      JSON.stringify({
        code: 429,
        error: 'Too many requests for some devices and users',
        eps_threshold: 30,
        throttled_devices: { 'hot-device': 1 },
        throttled_users: { 'hot-user': 2 },
        throttled_events: [1, 2, 3, 4],
        exceeded_daily_quota_users: { 'quota-user': 1 },
        exceeded_daily_quota_devices: {},
      }),
    );
    expect(amplitude.eventCount()).toBe(0);
    // requests without throttled ids pass
    expect((await send('/2/httpapi', [event('calm-user')])).status).toBe(200);
  });

  it('accepts the ids again after forMs', async () => {
    amplitude.throttle({ userIds: ['hot-user'], forMs: 30_000 });
    expect((await send('/batch', [event('hot-user')])).body).toMatchObject({ eps_threshold: 1000 });
    clock += 30_000;
    expect((await send('/batch', [event('hot-user')])).status).toBe(200);
  });

  it('adds Retry-After only when asked', async () => {
    amplitude.throttle({ dailyQuotaDeviceIds: ['device-1'], forMs: 1000, retryAfterSeconds: 15 });
    const answer = await send('/batch', [event('user-1', { device_id: 'device-1' })]);
    expect(answer.status).toBe(429);
    expect(answer.headers.get('retry-after')).toBe('15');
    expect(answer.body).toMatchObject({ exceeded_daily_quota_devices: { 'device-1': 1 }, throttled_events: [0] });
  });

  it('epsLimit throttles ids above the per-id rate over the window', async () => {
    amplitude.epsLimit({ eventsPerSecond: 1, windowMs: 2000 });
    expect((await send('/batch', [event('user-1'), event('user-1')])).status).toBe(200);
    const answer = await send('/batch', [event('user-2'), event('user-1')]);
    expect(answer.status).toBe(429);
    expect(answer.body).toMatchObject({ eps_threshold: 1, throttled_users: { 'user-1': 1 }, throttled_events: [1] });
    clock += 2000;
    expect((await send('/batch', [event('user-1')])).status).toBe(200);
    expect(amplitude.eventCount()).toBe(3);
  });
});

describe('5xx, resets, latency, down', () => {
  it('503 never ingests', async () => {
    amplitude.failRate({ status: 503, rate: 1, times: 1 });
    const failed = await send('/batch', [event('user-1')]);
    expect(failed.status).toBe(503);
    expect(amplitude.eventCount()).toBe(0);
    expect((await send('/batch', [event('user-1')])).status).toBe(200);
    expect(amplitude.eventCount()).toBe(1);
  });

  it('500 with ingestBeforeFailing stores the events, then fails', async () => {
    amplitude.failRate({ status: 500, rate: 1, ingestBeforeFailing: true });
    const answer = await send('/batch', [event('user-1', { insert_id: 'x-1' })]);
    expect(answer.status).toBe(500);
    expect(answer.body).toEqual({ code: 500, error: 'Internal Server Error' });
    expect(amplitude.eventCount()).toBe(1);
    // the client's retry is deduplicated by insert_id
    await send('/batch', [event('user-1', { insert_id: 'x-1' })]);
    expect(amplitude.eventCount()).toBe(1);
    expect(amplitude.duplicatesDropped()).toBe(1);
  });

  it('502 and 504 answer a load balancer page', async () => {
    amplitude.failRate({ status: 502, rate: 1 });
    const answer = await send('/batch', [event('user-1')]);
    expect(answer.status).toBe(502);
    expect(answer.headers.get('content-type')).toBe('text/html');
    expect(answer.text).toContain('502 Bad Gateway');
    expect(amplitude.eventCount()).toBe(0);
  });

  it('draws fault rates from a seeded RNG', async () => {
    const pattern = async (emulator: AmplitudeEmulator): Promise<number[]> => {
      emulator.failRate({ status: 503, rate: 0.5 });
      const statuses: number[] = [];
      for (let i = 0; i < 16; i++) {
        statuses.push((await post(emulator.url, '/batch', { api_key: API_KEY, events: [event('user-1')] })).status);
      }
      return statuses;
    };
    const other = await startAmplitudeEmulator({ seed: 42 });
    const again = await startAmplitudeEmulator({ seed: 42 });
    try {
      const first = await pattern(other);
      expect(first).toContain(503);
      expect(first).toContain(200);
      expect(await pattern(again)).toEqual(first);
    } finally {
      await other.close();
      await again.close();
    }
  });

  it('resetConnections destroys the socket without a response and ingests nothing', async () => {
    amplitude.resetConnections({ rate: 1, times: 1 });
    expect(await failureCode(send('/batch', [event('user-1')]))).toMatch(/ECONNRESET|UND_ERR_SOCKET/);
    expect(amplitude.eventCount()).toBe(0);
    expect(amplitude.requests()[0]?.status).toBe(0);
    expect((await send('/batch', [event('user-1')])).status).toBe(200);
  });

  it('latency delays the response', async () => {
    amplitude.latency({ ms: 150 });
    const started = Date.now();
    expect((await send('/batch', [event('user-1')])).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('a request its client abandoned under latency is stored when the latency passes, and settled() waits for it', async () => {
    amplitude.latency({ ms: 300 });
    const abandoned = post(
      amplitude.url,
      '/batch',
      { api_key: API_KEY, events: [event('user-1')] },
      {
        signal: AbortSignal.timeout(50),
      },
    );
    await expect(abandoned).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(amplitude.eventCount()).toBe(0);
    await amplitude.settled();
    expect(amplitude.eventCount()).toBe(1);
    expect(amplitude.requests().map((r) => r.status)).toEqual([200]);
    // nothing in flight: resolves at once
    await amplitude.settled();
  });

  it('down refuses connections, then listens again on the same port', async () => {
    const { port } = amplitude;
    await amplitude.down({ forMs: 300 });
    const code = await connectCode(amplitude.url);
    await amplitude.waitUntilUp();
    expect(code).toBe('ECONNREFUSED');
    expect(amplitude.port).toBe(port);
    expect((await send('/batch', [event('user-1')])).status).toBe(200);
  });

  it('rejects invalid fault options with InvalidFaultError', () => {
    expect(() => amplitude.failRate({ status: 503, rate: 1, ingestBeforeFailing: true })).toThrow(InvalidFaultError);
    expect(() => amplitude.failRate({ status: 503, rate: 2 })).toThrow(/fault "failRate"/);
  });
});

describe('insert_id dedup', () => {
  it('counts the same insert_id for the same device once, and for another device twice', async () => {
    await send('/batch', [event('user-1', { device_id: 'device-1', insert_id: 'same' })]);
    await send('/batch', [event('user-1', { device_id: 'device-1', insert_id: 'same' })]);
    expect(amplitude.eventCount()).toBe(1);
    expect(amplitude.duplicatesDropped()).toBe(1);
    await send('/batch', [event('user-1', { device_id: 'device-2', insert_id: 'same' })]);
    expect(amplitude.eventCount()).toBe(2);
    expect(amplitude.events().map((e) => e.device_id)).toEqual(['device-1', 'device-2']);
  });

  it('scopes by user_id when there is no device_id, within one request too', async () => {
    const answer = await send('/batch', [
      event('user-1', { insert_id: 'k' }),
      event('user-1', { insert_id: 'k' }),
      event('user-2', { insert_id: 'k' }),
    ]);
    // events_ingested reports the request's events; the duplicate is dropped downstream
    expect(answer.body).toMatchObject({ events_ingested: 3 });
    expect(amplitude.eventCount()).toBe(2);
    expect(amplitude.duplicatesDropped()).toBe(1);
  });

  it('forgets insert_ids after 7 days', async () => {
    await send('/batch', [event('user-1', { insert_id: 'old' })]);
    clock += 7 * 24 * 3600 * 1000 - 1;
    await send('/batch', [event('user-1', { insert_id: 'old' })]);
    expect(amplitude.eventCount()).toBe(1);
    clock += 1;
    await send('/batch', [event('user-1', { insert_id: 'old' })]);
    expect(amplitude.eventCount()).toBe(2);
  });

  it('also drops the same event_id + time + device_id', async () => {
    await send('/batch', [event('user-1', { device_id: 'device-1', event_id: 7, time: T0 })]);
    await send('/batch', [event('user-1', { device_id: 'device-1', event_id: 7, time: T0 })]);
    await send('/batch', [event('user-1', { device_id: 'device-1', event_id: 7, time: T0 + 1 })]);
    expect(amplitude.eventCount()).toBe(2);
  });

  it('keeps counts and dedup keys per project', async () => {
    const open = await startAmplitudeEmulator();
    try {
      for (const key of ['project-a', 'project-b']) {
        await post(open.url, '/batch', { api_key: key, events: [event('user-1', { insert_id: 'same' })] });
      }
      expect(open.eventCount()).toBe(2);
      expect(open.eventCount('project-a')).toBe(1);
      expect(open.events('project-b')).toHaveLength(1);
      expect(open.projects()).toEqual(['project-a', 'project-b']);
    } finally {
      await open.close();
    }
  });
});

describe('storeEvents: false', () => {
  it('keeps counts and dedup keys only', async () => {
    const lean = await startAmplitudeEmulator({ storeEvents: false });
    try {
      const events = [event('user-1', { insert_id: 'a', user_properties: { plan: 'pro' } })];
      await post(lean.url, '/batch', { api_key: API_KEY, events });
      await post(lean.url, '/batch', { api_key: API_KEY, events });
      expect(lean.eventCount()).toBe(1);
      expect(lean.duplicatesDropped()).toBe(1);
      expect(lean.events()).toEqual([]);
      expect(lean.user('user-1')).toBeUndefined();
      expect(lean.requests()[0]?.body).toBeUndefined();
    } finally {
      await lean.close();
    }
  });
});

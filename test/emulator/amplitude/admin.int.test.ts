/** The admin HTTP API (faults and inspection from other processes) and the runnable entry point. */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import type { AmplitudeEmulator } from '../../../src/emulator/amplitude';
import { startAmplitudeEmulator } from '../../../src/emulator/amplitude';
import { API_KEY, connectCode, event, post } from './http';

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

const admin = (route: string, body?: unknown) => post(amplitude.url, `/__emulator/${route}`, body ?? {});

async function getJson(route: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${amplitude.url}/__emulator/${route}`);
  return { status: res.status, body: await res.json() };
}

const batch = (events: unknown[]) => post(amplitude.url, '/batch', { api_key: API_KEY, events });

describe('admin API', () => {
  it('injects faults over HTTP and clears them', async () => {
    expect((await admin('faults/throttle', { userIds: ['user-1'], forMs: 60_000 })).body).toEqual({ ok: true });
    expect((await batch([event('user-1')])).status).toBe(429);
    await admin('faults/fail-rate', { status: 504, rate: 1, times: 1 });
    expect((await batch([event('user-2')])).status).toBe(504);
    await admin('faults/forbidden');
    expect((await batch([event('user-2')])).status).toBe(403);
    await admin('faults/clear');
    expect((await batch([event('user-1')])).status).toBe(200);
  });

  it('answers 400 naming the fault and field for invalid options, 404 for an unknown fault', async () => {
    const invalid = await admin('faults/fail-rate', { status: 418, rate: 1 });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toEqual({ error: expect.stringContaining('invalid options for fault "failRate"') as unknown });
    expect((await admin('faults/latency', { ms: 5, extra: true })).status).toBe(400);
    expect((await admin('faults/meteor', {})).status).toBe(404);
    expect((await admin('faults/down', { forMs: -1 })).status).toBe(400);
  });

  it('takes the emulator down after answering', async () => {
    expect((await admin('faults/down', { forMs: 1000 })).status).toBe(200);
    // the listener closes once the answer is flushed: poll until a fresh connection is refused
    let code = await connectCode(amplitude.url);
    for (let tries = 0; code !== 'ECONNREFUSED' && tries < 50; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      code = await connectCode(amplitude.url);
    }
    expect(code).toBe('ECONNREFUSED');
    await amplitude.waitUntilUp();
    expect((await batch([event('user-1')])).status).toBe(200);
  });

  it('serves state, users and groups as JSON, and resets', async () => {
    await batch([
      event('user-1', { insert_id: 'a', user_properties: { plan: 'pro' } }),
      event('user-1', { insert_id: 'a' }),
      { event_type: '$groupidentify', user_id: 'user-1', groups: { org: 'o1' }, group_properties: { tier: 'gold' } },
    ]);
    const state = await getJson('state?include=events,users,groups,requests&limit=1');
    expect(state.body).toEqual({
      projects: [API_KEY],
      eventCount: 2,
      duplicatesDropped: 1,
      requestCount: 1,
      events: [
        {
          ...event('user-1', { insert_id: 'a', user_properties: { plan: 'pro' } }),
          server_upload_time: expect.any(Number) as unknown,
        },
      ],
      users: [{ user_id: 'user-1', device_id: null, user_properties: { plan: 'pro' }, groups: {} }],
      groups: [{ group_type: 'org', group_value: 'o1', group_properties: { tier: 'gold' } }],
      requests: [expect.objectContaining({ path: '/batch', status: 200, events: 3 }) as unknown],
    });
    expect(await getJson(`user?id=user-1&apiKey=${API_KEY}`)).toEqual({
      status: 200,
      body: { user_id: 'user-1', device_id: null, user_properties: { plan: 'pro' }, groups: {} },
    });
    expect((await getJson('user?id=nobody')).status).toBe(404);
    expect((await getJson('group?type=org&value=o1')).body).toEqual({
      group_type: 'org',
      group_value: 'o1',
      group_properties: { tier: 'gold' },
    });
    expect((await admin('reset')).status).toBe(200);
    expect((await getJson('state')).body).toEqual({
      projects: [],
      eventCount: 0,
      duplicatesDropped: 0,
      requestCount: 0,
    });
  });

  it('answers 404 for unknown paths and 405 for GET on an endpoint, in the log', async () => {
    const missing = await post(amplitude.url, '/3/httpapi', {});
    expect(missing.status).toBe(404);
    const res = await fetch(`${amplitude.url}/batch`);
    expect(res.status).toBe(405);
    expect(amplitude.requests().map((r) => [r.method, r.path, r.status])).toEqual([
      ['POST', '/3/httpapi', 404],
      ['GET', '/batch', 405],
    ]);
  });
});

describe('main.ts', () => {
  it('starts on the given port, prints its URL to stderr and stops on SIGTERM', async () => {
    const tsx = path.resolve(__dirname, '../../../node_modules/.bin/tsx');
    const main = path.resolve(__dirname, '../../../src/emulator/amplitude/main.ts');
    const child = spawn(tsx, [main, '--port', '0', '--api-key', 'cli-key'], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          const match = /listening on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(stderr);
          if (match?.[1] !== undefined) resolve(match[1]);
        });
        child.once('exit', (code) => reject(new Error(`main.ts exited with ${code}: ${stderr}`)));
      });
      const accepted = await post(url, '/batch', { api_key: 'cli-key', events: [event('user-1')] });
      expect(accepted.status).toBe(200);
      expect((await post(url, '/batch', { api_key: API_KEY, events: [event('user-1')] })).text).toBe(
        '{"code":400,"error":"Invalid API key"}',
      );
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  });
});

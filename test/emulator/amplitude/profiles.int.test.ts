/** User and group profiles: property operations in Amplitude's order, Identify / Group Identify, group links. */
import type { AmplitudeEmulator } from '../../../src/emulator/amplitude';
import { startAmplitudeEmulator } from '../../../src/emulator/amplitude';
import { API_KEY, event, post, postForm } from './http';

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

async function batch(events: unknown[]): Promise<void> {
  const answer = await post(amplitude.url, '/batch', { api_key: API_KEY, events });
  expect(answer.status).toBe(200);
}

const identify = (userId: string, userProperties: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  event_type: '$identify',
  user_id: userId,
  user_properties: userProperties,
  ...extra,
});

const BASELINE = {
  $set: {
    plan: 'free',
    stale: 'yes',
    visits: 4,
    tag: 'solo',
    roles: ['admin'],
    colors: ['red'],
    pets: ['cat', 'dog', 'cat'],
    first_seen: '2024-01-01',
  },
};

describe('$identify events', () => {
  it('apply every operation in Amplitude order on one identify', async () => {
    await batch([identify('user-1', BASELINE)]);
    await batch([
      identify('user-1', {
        $remove: { pets: 'cat' },
        $postInsert: { colors: ['red', 'blue'] },
        $preInsert: { roles: ['owner', 'admin'] },
        $prepend: { history: ['b'] },
        $append: { tag: 'duo' },
        $add: { visits: 2 },
        $setOnce: { first_seen: '2025-06-01', referrer: 'ads' },
        $set: { plan: 'pro' },
        $unset: { stale: '-' },
      }),
    ]);
    expect(amplitude.user('user-1')).toEqual({
      user_id: 'user-1',
      device_id: null,
      groups: {},
      user_properties: {
        plan: 'pro',
        visits: 6,
        tag: ['solo', 'duo'],
        roles: ['owner', 'admin'],
        colors: ['red', 'blue'],
        pets: ['dog'],
        first_seen: '2024-01-01',
        referrer: 'ads',
        history: ['b'],
      },
    });
  });

  it('run $clearAll first: later operations of the same identify start from an empty profile', async () => {
    await batch([identify('user-1', BASELINE)]);
    await batch([identify('user-1', { $setOnce: { plan: 'enterprise' }, $add: { visits: 1 }, $clearAll: '-' })]);
    expect(amplitude.user('user-1')?.user_properties).toEqual({ plan: 'enterprise', visits: 1 });
  });

  it('treat a plain dict as $set', async () => {
    await batch([identify('user-1', BASELINE), identify('user-1', { plan: 'team', seats: 5 })]);
    expect(amplitude.user('user-1')?.user_properties).toMatchObject({ plan: 'team', seats: 5, visits: 4 });
  });

  it('apply in arrival order within one request', async () => {
    await batch([identify('user-1', { $set: { n: 1 } }), identify('user-1', { $add: { n: 2 } })]);
    expect(amplitude.user('user-1')?.user_properties).toEqual({ n: 3 });
  });
});

describe('ordinary events', () => {
  it('$set their user_properties on the profile', async () => {
    await batch([
      event('user-1', { user_properties: { plan: 'pro' } }),
      event('user-1', { user_properties: { seats: 2 } }),
    ]);
    expect(amplitude.user('user-1')?.user_properties).toEqual({ plan: 'pro', seats: 2 });
  });

  it('join no group: groups on an event apply to that event only', async () => {
    await batch([event('user-1', { groups: { company: 'acme' } })]);
    expect(amplitude.user('user-1')?.groups).toEqual({});
    expect(amplitude.events()[0]?.groups).toEqual({ company: 'acme' });
  });
});

describe('user to group links', () => {
  it('groups on a $identify make a permanent membership, replaced per type', async () => {
    await batch([identify('user-1', {}, { groups: { company: 'acme', team: ['red', 'blue'] } })]);
    expect(amplitude.user('user-1')?.groups).toEqual({ company: ['acme'], team: ['red', 'blue'] });
    await batch([identify('user-1', {}, { groups: { company: 'globex' } })]);
    expect(amplitude.user('user-1')?.groups).toEqual({ company: ['globex'], team: ['red', 'blue'] });
  });

  it('groups on an /identify identification link the user too', async () => {
    const answer = await postForm(amplitude.url, '/identify', {
      api_key: API_KEY,
      identification: JSON.stringify([{ user_id: 'user-1', groups: { company: 'acme' } }]),
    });
    expect(answer.status).toBe(200);
    expect(amplitude.user('user-1')?.groups).toEqual({ company: ['acme'] });
  });
});

describe('profiles resolve to one user', () => {
  it('a device seen with a user_id belongs to that user; its anonymous properties carry over', async () => {
    await batch([{ event_type: 'a', device_id: 'device-1', user_properties: { source: 'ads' } }]);
    expect(amplitude.user('device-1')).toEqual({
      user_id: null,
      device_id: 'device-1',
      user_properties: { source: 'ads' },
      groups: {},
    });
    await batch([event('user-1', { device_id: 'device-1', user_properties: { plan: 'pro' } })]);
    await batch([{ event_type: 'b', device_id: 'device-1', user_properties: { seen: true } }]);
    const expected = {
      user_id: 'user-1',
      device_id: 'device-1',
      user_properties: { source: 'ads', plan: 'pro', seen: true },
      groups: {},
    };
    expect(amplitude.user('user-1')).toEqual(expected);
    expect(amplitude.user('device-1')).toEqual(expected);
    expect(amplitude.users()).toEqual([expected]);
  });
});

describe('/identify', () => {
  it('applies identifications (array or single object) and answers success', async () => {
    const answer = await postForm(amplitude.url, '/identify', {
      api_key: API_KEY,
      identification: JSON.stringify([
        { user_id: 'user-1', user_properties: BASELINE },
        { user_id: 'user-1', user_properties: { $add: { visits: 1 }, $unset: { stale: '-' } } },
      ]),
    });
    expect(answer.status).toBe(200);
    expect(answer.text).toBe('success');
    const single = await postForm(amplitude.url, '/identify', {
      api_key: API_KEY,
      identification: JSON.stringify({ device_id: 'device-9', user_properties: { plan: 'free' } }),
    });
    expect(single.status).toBe(200);
    expect(amplitude.user('user-1')?.user_properties).toMatchObject({ visits: 5, plan: 'free' });
    expect(amplitude.user('user-1')?.user_properties).not.toHaveProperty('stale');
    expect(amplitude.user('device-9')?.user_properties).toEqual({ plan: 'free' });
    expect(amplitude.eventCount()).toBe(0);
    expect(amplitude.requests().map((r) => [r.path, r.events])).toEqual([
      ['/identify', 2],
      ['/identify', 1],
    ]);
  });

  it('answers 400 with index maps and applies nothing', async () => {
    const answer = await postForm(amplitude.url, '/identify', {
      api_key: API_KEY,
      identification: JSON.stringify([
        { user_id: 'user-1', user_properties: { plan: 'pro' } },
        { user_id: 'user-2', user_properties: { $set: { a: 1 }, b: 2 } },
        { user_properties: { plan: 'pro' } },
      ]),
    });
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({
      code: 400,
      error: 'Request missing required field',
      events_with_invalid_fields: { user_properties: [1] },
      events_with_missing_fields: { device_id: [2] },
    });
    expect(amplitude.user('user-1')).toBeUndefined();
  });

  it('answers 400 for a missing identification, an unknown key and invalid JSON', async () => {
    expect((await postForm(amplitude.url, '/identify', { api_key: API_KEY })).body).toEqual({
      code: 400,
      error: 'Request missing required field',
      missing_field: 'identification',
    });
    expect((await postForm(amplitude.url, '/identify', { api_key: 'other', identification: '[]' })).text).toBe(
      '{"code":400,"error":"Invalid API key"}',
    );
    expect((await postForm(amplitude.url, '/identify', { api_key: API_KEY, identification: '[{' })).text).toBe(
      '{"code":400,"error":"Invalid JSON request body"}',
    );
  });

  it('is throttled like HTTP V2', async () => {
    amplitude.throttle({ userIds: ['user-1'], forMs: 10_000 });
    const answer = await postForm(amplitude.url, '/identify', {
      api_key: API_KEY,
      identification: JSON.stringify([{ user_id: 'user-0', user_properties: { a: 1 } }, { user_id: 'user-1' }]),
    });
    expect(answer.status).toBe(429);
    expect(answer.body).toMatchObject({ throttled_users: { 'user-1': 1 }, throttled_events: [1] });
    expect(amplitude.user('user-0')).toBeUndefined();
  });
});

describe('group identify', () => {
  it('$groupidentify events apply group operations to each group in groups', async () => {
    await batch([
      {
        event_type: '$groupidentify',
        user_id: 'user-1',
        groups: { company: 'acme' },
        group_properties: { tier: 'silver', seats: 5, tags: 'a', stale: 1 },
      },
      {
        event_type: '$groupidentify',
        user_id: 'user-1',
        groups: { company: 'acme' },
        group_properties: {
          $set: { tier: 'gold' },
          $setOnce: { seats: 99, founded: 1999 },
          $add: { arr: 100 },
          $append: { tags: 'b' },
          $prepend: { regions: 'eu' },
          $unset: { stale: '-' },
        },
      },
    ]);
    expect(amplitude.group('company', 'acme')).toEqual({
      group_type: 'company',
      group_value: 'acme',
      group_properties: { tier: 'gold', seats: 5, founded: 1999, arr: 100, tags: ['a', 'b'], regions: ['eu'] },
    });
    // a group identify neither links nor changes the user
    expect(amplitude.user('user-1')).toBeUndefined();
  });

  it('/groupidentify applies identifications and answers success', async () => {
    const answer = await postForm(amplitude.url, '/groupidentify', {
      api_key: API_KEY,
      identification: JSON.stringify([
        { group_type: 'company', group_value: 'acme', group_properties: { $set: { tier: 'gold' } } },
        { group_type: 'company', group_value: 'globex', group_properties: { tier: 'bronze' } },
      ]),
    });
    expect(answer.status).toBe(200);
    expect(answer.text).toBe('success');
    expect(amplitude.groups()).toEqual([
      { group_type: 'company', group_value: 'acme', group_properties: { tier: 'gold' } },
      { group_type: 'company', group_value: 'globex', group_properties: { tier: 'bronze' } },
    ]);
  });

  it('/groupidentify refuses user-only operations and more than 1024 identifications', async () => {
    const bad = await postForm(amplitude.url, '/groupidentify', {
      api_key: API_KEY,
      identification: JSON.stringify([
        { group_type: 'company', group_value: 'acme', group_properties: { $preInsert: { tags: 'a' } } },
      ]),
    });
    expect(bad.body).toEqual({
      code: 400,
      error: 'Invalid field values on some events',
      events_with_invalid_fields: { group_properties: [0] },
    });
    const many = Array.from({ length: 1025 }, (_, i) => ({
      group_type: 'c',
      group_value: `v${i}`,
      group_properties: {},
    }));
    const tooMany = await postForm(amplitude.url, '/groupidentify', {
      api_key: API_KEY,
      identification: JSON.stringify(many),
    });
    expect(tooMany.status).toBe(413);
    expect(amplitude.groups()).toEqual([]);
  });
});

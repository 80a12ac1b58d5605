import { PLACEHOLDER_IDS } from '../../../src/emulator/amplitude/limits';
import {
  validateEvents,
  validateGroupIdentifications,
  validateIdentifications,
} from '../../../src/emulator/amplitude/validate';

function nested(depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let i = 0; i < depth; i++) value = { n: value };
  return value;
}

describe('validateEvents', () => {
  it('accepts a minimal event with either id', () => {
    const { items, problems } = validateEvents(
      [
        { event_type: 'a', user_id: 'user-1' },
        { event_type: 'a', device_id: 'device-1' },
      ],
      5,
    );
    expect(problems.any).toBe(false);
    expect(items.map((item) => [item.kind, item.userId, item.deviceId])).toEqual([
      ['event', 'user-1', undefined],
      ['event', undefined, 'device-1'],
    ]);
  });

  it('reports every problem of every event by field and index', () => {
    const { items, problems } = validateEvents(
      [
        { event_type: 'ok', user_id: 'user-1' },
        { user_id: 'user-2' },
        { event_type: 'no ids' },
        { event_type: 'short', user_id: 'abc', device_id: 'dev' },
        { event_type: 'time', user_id: 'user-3', time: '2024-01-01' },
        { event_type: 'time', user_id: 'user-3', time: 1.5 },
        'not an event',
        { event_type: 7, device_id: 'device-1' },
        { event_type: 'props', user_id: 'user-4', event_properties: ['a'] },
      ],
      5,
    );
    expect(problems.any).toBe(true);
    expect(problems.missingFields).toEqual({ event_type: [1], device_id: [2] });
    expect(problems.invalidIdLengths).toEqual({ user_id: [3], device_id: [3] });
    expect(problems.invalidFields).toEqual({ time: [4, 5], event: [6], event_type: [7], event_properties: [8] });
    expect(items).toHaveLength(1);
  });

  it.each([...PLACEHOLDER_IDS].map((id) => [id]))('rejects the placeholder id %p', (id) => {
    const { problems } = validateEvents([{ event_type: 'a', user_id: id.toUpperCase(), device_id: 'device-1' }], 1);
    expect(problems.invalidFields).toEqual({ user_id: [0] });
  });

  it('honours a lower min_id_length and coerces numeric ids to strings', () => {
    const { items, problems } = validateEvents([{ event_type: 'a', user_id: 'ab', device_id: 12 }], 2);
    expect(problems.any).toBe(false);
    expect(items[0]?.record.device_id).toBe('12');
  });

  it('allows 40 levels of nesting in a property dict and rejects 41', () => {
    expect(validateEvents([{ event_type: 'a', user_id: 'user-1', event_properties: nested(40) }], 5).problems.any).toBe(
      false,
    );
    const { problems } = validateEvents([{ event_type: 'a', user_id: 'user-1', event_properties: nested(41) }], 5);
    expect(problems.invalidFields).toEqual({ event_properties: [0] });
  });

  it('truncates strings longer than 1024 characters, nested ones too, without rejecting', () => {
    const long = 'x'.repeat(1500);
    const { items, problems } = validateEvents(
      [
        {
          event_type: 'a',
          user_id: 'user-1',
          app_version: long,
          event_properties: { a: long, b: [long, { c: long }] },
        },
      ],
      5,
    );
    expect(problems.any).toBe(false);
    const record = items[0]!.record as {
      app_version: string;
      event_properties: { a: string; b: [string, { c: string }] };
    };
    expect(record.app_version).toHaveLength(1024);
    expect(record.event_properties.a).toHaveLength(1024);
    expect(record.event_properties.b[0]).toHaveLength(1024);
    expect(record.event_properties.b[1].c).toHaveLength(1024);
  });

  it('parses $identify operations and rejects operators and bare keys mixed', () => {
    const ok = validateEvents(
      [{ event_type: '$identify', user_id: 'user-1', user_properties: { $set: { a: 1 }, $add: { n: 1 } } }],
      5,
    );
    expect(ok.items[0]?.kind).toBe('identify');
    expect(ok.items[0]?.userUpdate?.steps.map(([op]) => op)).toEqual(['$set', '$add']);
    const mixed = validateEvents(
      [{ event_type: '$identify', user_id: 'user-1', user_properties: { $set: { a: 1 }, b: 2 } }],
      5,
    );
    expect(mixed.problems.invalidFields).toEqual({ user_properties: [0] });
  });

  it('rejects operations in user_properties of an ordinary event, and group_properties outside $groupidentify', () => {
    const { problems } = validateEvents(
      [
        { event_type: 'a', user_id: 'user-1', user_properties: { $add: { n: 1 } } },
        { event_type: 'a', user_id: 'user-1', groups: { company: 'acme' }, group_properties: { tier: 'gold' } },
      ],
      5,
    );
    expect(problems.invalidFields).toEqual({ user_properties: [0], group_properties: [1] });
  });

  it('requires groups on $groupidentify and allows only group operations', () => {
    const { problems } = validateEvents(
      [
        { event_type: '$groupidentify', user_id: 'user-1', group_properties: { tier: 'gold' } },
        {
          event_type: '$groupidentify',
          user_id: 'user-1',
          groups: { company: 'acme' },
          group_properties: { $preInsert: { tags: 'a' } },
        },
      ],
      5,
    );
    expect(problems.missingFields).toEqual({ groups: [0] });
    expect(problems.invalidFields).toEqual({ group_properties: [1] });
  });

  it('does not apply user_properties of an event flagged $skip_user_properties_sync', () => {
    const { items } = validateEvents(
      [{ event_type: 'a', user_id: 'user-1', user_properties: { a: 1 }, $skip_user_properties_sync: true }],
      5,
    );
    expect(items[0]?.userUpdate).toBeUndefined();
  });
});

describe('identifications', () => {
  it('validates Identify identifications like events, without event_type', () => {
    const { items, problems } = validateIdentifications(
      [{ user_id: 'user-1', user_properties: { $set: { a: 1 } }, groups: { org: 'o1' } }, { user_properties: {} }, 5],
      5,
    );
    expect(items).toHaveLength(1);
    expect(items[0]?.groups).toEqual({ org: ['o1'] });
    expect(problems.missingFields).toEqual({ device_id: [1] });
    expect(problems.invalidFields).toEqual({ identification: [2] });
  });

  it('validates Group Identify identifications and caps properties at 1024', () => {
    const tooMany = Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [`p${i}`, i]));
    const { items, problems } = validateGroupIdentifications([
      { group_type: 'org', group_value: 'o1', group_properties: { $set: { tier: 'gold' } } },
      { group_value: 'o1', group_properties: {} },
      { group_type: 'org', group_value: 'o2', group_properties: tooMany },
    ]);
    expect(items.map((item) => item.groups)).toEqual([{ org: ['o1'] }]);
    expect(problems.missingFields).toEqual({ group_type: [1] });
    expect(problems.invalidFields).toEqual({ group_properties: [2] });
  });
});

import { compileMapper } from '../../src/amplitude/mapping';
import type { ValidateOptions } from '../../src/amplitude/validate';
import {
  MAX_NESTING_DEPTH,
  MAX_PAYLOAD_BYTES,
  MAX_STRING_CHARS,
  PLACEHOLDER_IDS,
  payloadSizeProblem,
  validatePayload,
} from '../../src/amplitude/validate';
import { makeSync } from './support/sync';

const event: ValidateOptions = { minIdLength: 5, longStrings: 'reject', kind: 'event' };
const valid = (): Record<string, unknown> => ({ event_type: 'Signed Up', user_id: 'user-00001' });

/** An object nested `levels` containers deep, counting the outermost. */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < levels; i++) value = { n: value };
  return value;
}

describe('validatePayload', () => {
  it('accepts a minimal event', () => {
    expect(validatePayload(valid(), event)).toBeNull();
  });

  it('pins the placeholder list', () => {
    expect([...PLACEHOLDER_IDS].sort()).toEqual(
      [
        '',
        '-1',
        '0',
        '00000000-0000-0000-0000-000000000000',
        'anonymous',
        'lmy47d',
        'na',
        'n/a',
        'nil',
        'none',
        'null',
        'undefined',
        'unknown',
        '{}',
      ].sort(),
    );
  });

  it.each(['n/a', 'N/A', 'Null', ' none ', 'LMY47D', '00000000-0000-0000-0000-000000000000', '-1', ''])(
    'rejects the placeholder user_id %j',
    (id) => {
      expect(validatePayload({ ...valid(), user_id: id }, event)).toBe(
        `user_id ${JSON.stringify(id)} is a placeholder Amplitude rejects`,
      );
    },
  );

  it('rejects a placeholder device_id and an id shorter than minIdLength', () => {
    expect(validatePayload({ ...valid(), device_id: 'unknown' }, event)).toBe(
      'device_id "unknown" is a placeholder Amplitude rejects',
    );
    expect(validatePayload({ ...valid(), user_id: 'abcd' }, event)).toBe(
      'user_id "abcd" is shorter than the minimum id length 5',
    );
    expect(validatePayload({ ...valid(), user_id: 'abcd' }, { ...event, minIdLength: 4 })).toBeNull();
  });

  it('requires a user_id or device_id on events and identifies', () => {
    expect(validatePayload({ event_type: 'x' }, event)).toBe('neither user_id nor device_id is set');
    expect(validatePayload({ device_id: 'dev-00001' }, { ...event, kind: 'identify' })).toBeNull();
  });

  it('requires a non-empty event_type on events only', () => {
    expect(validatePayload({ user_id: 'user-00001' }, event)).toBe('event_type is missing');
    expect(validatePayload({ user_id: 'user-00001', event_type: '' }, event)).toBe('event_type is empty');
    expect(validatePayload({ user_id: 'user-00001' }, { ...event, kind: 'identify' })).toBeNull();
  });

  it.each([
    [1.5, 'time 1.5 is not a valid instant (integer milliseconds between 1970 and year 9999)'],
    [-1, 'time -1 is not a valid instant (integer milliseconds between 1970 and year 9999)'],
    [
      253_402_300_800_000,
      'time 253402300800000 is not a valid instant (integer milliseconds between 1970 and year 9999)',
    ],
    ['2024-01-01', 'time "2024-01-01" is not a valid instant (integer milliseconds between 1970 and year 9999)'],
  ])('rejects time %j', (time, reason) => {
    expect(validatePayload({ ...valid(), time }, event)).toBe(reason);
  });

  it('accepts session_id -1 and rejects other negatives', () => {
    expect(validatePayload({ ...valid(), session_id: -1 }, event)).toBeNull();
    expect(validatePayload({ ...valid(), session_id: -2 }, event)).toBe(
      'session_id -2 is not a session start time in milliseconds (or -1)',
    );
  });

  it('rejects a string over 1024 characters, naming its path', () => {
    const long = 'x'.repeat(MAX_STRING_CHARS + 1);
    expect(validatePayload({ ...valid(), event_properties: { bio: long } }, event)).toBe(
      'event_properties.bio is 1025 characters; Amplitude accepts at most 1024 (options.longStrings: truncate cuts it)',
    );
    expect(validatePayload({ ...valid(), event_properties: { bio: 'x'.repeat(1024) } }, event)).toBeNull();
  });

  it('truncates long strings in place when asked, never ids, without splitting a surrogate pair', () => {
    const payload = {
      ...valid(),
      event_properties: { bio: 'x'.repeat(2000), tags: ['y'.repeat(1023) + '😀z'] },
    };
    expect(validatePayload(payload, { ...event, longStrings: 'truncate' })).toBeNull();
    expect(payload.event_properties.bio).toBe('x'.repeat(1024));
    expect(payload.event_properties.tags[0]).toBe('y'.repeat(1023));
    expect(validatePayload({ ...valid(), user_id: 'u'.repeat(1025) }, { ...event, longStrings: 'truncate' })).toBe(
      'user_id is 1025 characters; Amplitude accepts at most 1024 (ids are never cut)',
    );
  });

  it(`rejects nesting deeper than ${MAX_NESTING_DEPTH}`, () => {
    expect(validatePayload({ ...valid(), event_properties: nested(MAX_NESTING_DEPTH) }, event)).toBeNull();
    expect(validatePayload({ ...valid(), event_properties: nested(MAX_NESTING_DEPTH + 1) }, event)).toBe(
      `event_properties${'.n'.repeat(MAX_NESTING_DEPTH)} nests deeper than 40 levels`,
    );
  });

  it.each([
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    [-Infinity, '-Infinity'],
  ])('rejects %s anywhere, naming the path', (value, shown) => {
    expect(validatePayload({ ...valid(), event_properties: { scores: [1, { v: value }] } }, event)).toBe(
      `event_properties.scores[1].v is ${shown}, which Amplitude cannot accept`,
    );
  });

  it('requires a group value on group identifications', () => {
    const group: ValidateOptions = { ...event, kind: 'group' };
    expect(validatePayload({ group_type: 'account', group_value: '' }, group)).toBe('group_value is empty');
    expect(validatePayload({ group_type: 'account', group_value: 'a' }, group)).toBeNull();
  });

  it('rejects a serialized payload over 1 MB', () => {
    expect(payloadSizeProblem('x'.repeat(MAX_PAYLOAD_BYTES))).toBeNull();
    expect(payloadSizeProblem('é'.repeat(MAX_PAYLOAD_BYTES / 2 + 1))).toBe(
      'payload is 1000002 bytes; at most 1000000 are sent per row',
    );
  });
});

describe('validation through the mapper', () => {
  const sync = (options: Record<string, unknown> = {}) =>
    makeSync({
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { from: 'bio', to: 'user_properties.bio' },
        { from: 'score', to: 'user_properties.score' },
      ],
      options,
    });

  it('rejects rows with the reason, so they are never staged', () => {
    const mapper = compileMapper(sync());
    expect(mapper.map({ user_id: 'n/a', bio: null, score: null })).toEqual({
      ok: false,
      key: 'n/a',
      reason: 'user_id "n/a" is a placeholder Amplitude rejects',
      stage: 'validation',
    });
    expect(mapper.map({ user_id: 'user-00001', bio: null, score: NaN })).toMatchObject({
      ok: false,
      reason: 'user_properties.$set.score is NaN, which Amplitude cannot accept',
    });
    expect(mapper.map({ user_id: 'user-00001', bio: 'b'.repeat(1500), score: 1 })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^user_properties\.\$set\.bio is 1500 characters/),
    });
  });

  it('honours minIdLength and truncation from the sync options', () => {
    const mapper = compileMapper(sync({ minIdLength: 3, longStrings: 'truncate' }));
    const result = mapper.map({ user_id: 'u-1', bio: 'b'.repeat(1500), score: 1 });
    if (!result.ok) throw new Error(result.reason);
    expect(
      (JSON.parse(result.payload) as { user_properties: { $set: { bio: string } } }).user_properties.$set.bio,
    ).toBe('b'.repeat(1024));
  });

  it('rejects a payload over 1 MB', () => {
    const big = makeSync({
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { from: 'blob', to: 'user_properties.blob' },
      ],
    });
    const blob = Array.from({ length: 1100 }, () => 'z'.repeat(1000));
    expect(compileMapper(big).map({ user_id: 'user-00001', blob })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^payload is \d+ bytes; at most 1000000 are sent per row$/),
    });
  });
});

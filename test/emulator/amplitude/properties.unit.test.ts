import type { Operation } from '../../../src/emulator/amplitude/properties';
import {
  GROUP_OPERATION_SET,
  USER_OPERATIONS,
  USER_OPERATION_SET,
  applyPropertyUpdate,
  parseGroups,
  parsePropertyUpdate,
} from '../../../src/emulator/amplitude/properties';

function apply(current: Record<string, unknown>, dict: Record<string, unknown>): Record<string, unknown> {
  const update = parsePropertyUpdate(dict, USER_OPERATION_SET);
  if (update === undefined) throw new TypeError(`test update rejected: ${JSON.stringify(dict)}`);
  return applyPropertyUpdate(current, update);
}

describe('property operations', () => {
  it('lists the operations in the order Amplitude applies them', () => {
    expect(USER_OPERATIONS).toEqual([
      '$clearAll',
      '$unset',
      '$set',
      '$setOnce',
      '$add',
      '$append',
      '$prepend',
      '$preInsert',
      '$postInsert',
      '$remove',
    ]);
  });

  it('parses steps in application order whatever the order of the keys', () => {
    const update = parsePropertyUpdate(
      { $remove: { a: 1 }, $set: { b: 2 }, $clearAll: '-', $unset: { c: '-' } },
      USER_OPERATION_SET,
    );
    expect(update).toEqual({
      clearAll: true,
      steps: [
        ['$unset', { c: '-' }],
        ['$set', { b: 2 }],
        ['$remove', { a: 1 }],
      ],
      propertyCount: 3,
    });
  });

  it('treats a dict without operators as $set', () => {
    expect(apply({ kept: 1, plan: 'free' }, { plan: 'pro', seats: 3 })).toEqual({ kept: 1, plan: 'pro', seats: 3 });
  });

  it.each([
    ['operators mixed with bare keys', { $set: { a: 1 }, b: 2 }],
    ['one property in two operations', { $set: { a: 1 }, $add: { a: 2 } }],
    ['an operation value that is not a dict', { $set: ['a'] }],
    ['a non-numeric $add', { $add: { logins: 'many' } }],
  ])('rejects %s', (_name, dict) => {
    expect(parsePropertyUpdate(dict, USER_OPERATION_SET)).toBeUndefined();
  });

  it('allows on groups only $set, $setOnce, $add, $append, $prepend and $unset', () => {
    const allowed: Operation[] = ['$set', '$setOnce', '$add', '$append', '$prepend', '$unset'];
    for (const op of USER_OPERATIONS) {
      const dict = op === '$clearAll' ? { $clearAll: '-' } : { [op]: { p: 1 } };
      expect(parsePropertyUpdate(dict, GROUP_OPERATION_SET) !== undefined).toBe(allowed.includes(op));
    }
  });

  it('$clearAll runs before $setOnce, so $setOnce sets a property that existed before', () => {
    expect(apply({ plan: 'free', other: 1 }, { $clearAll: '-', $setOnce: { plan: 'pro' } })).toEqual({ plan: 'pro' });
  });

  it('$unset removes, $set overwrites, $setOnce keeps an existing value', () => {
    expect(apply({ a: 1, b: 2, c: 3 }, { $unset: { a: '-' }, $set: { b: 20 }, $setOnce: { c: 30, d: 40 } })).toEqual({
      b: 20,
      c: 3,
      d: 40,
    });
  });

  it('$add increments numbers, numeric strings, and starts missing ones at 0', () => {
    expect(apply({ a: 1, b: '2', c: 'x' }, { $add: { a: 2, b: '3', c: 1, d: -4 } })).toEqual({
      a: 3,
      b: 5,
      c: 1,
      d: -4,
    });
  });

  it('$append and $prepend create lists, turn a scalar into a list and add every value of a list', () => {
    expect(
      apply({ s: 'x', l: ['y'] }, { $append: { s: 'z', l: ['y', 'w'], n: 1 }, $prepend: { p: ['a', 'b'] } }),
    ).toEqual({ s: ['x', 'z'], l: ['y', 'y', 'w'], n: [1], p: ['a', 'b'] });
    expect(apply({ l: ['y'] }, { $prepend: { l: ['a', 'b'] } })).toEqual({ l: ['a', 'b', 'y'] });
  });

  it('$preInsert and $postInsert add only values not present', () => {
    expect(
      apply({ a: ['x', 'y'], b: ['x'] }, { $preInsert: { a: ['y', 'w', 'w'] }, $postInsert: { b: ['x', 'z'] } }),
    ).toEqual({ a: ['w', 'x', 'y'], b: ['x', 'z'] });
  });

  it('$remove removes every matching value, objects compared by value', () => {
    expect(
      apply(
        { a: ['x', 'y', 'x', { k: 1 }], s: 'x', t: 'y' },
        { $remove: { a: ['x', { k: 1 }], s: 'x', t: 'x', missing: 'x' } },
      ),
    ).toEqual({ a: ['y'], t: 'y' });
  });

  it('never lets a "__proto__" property replace the prototype', () => {
    const result = apply({}, JSON.parse('{"$set":{"__proto__":{"polluted":true}}}') as Record<string, unknown>);
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    expect((result as { polluted?: boolean }).polluted).toBeUndefined();
  });
});

describe('parseGroups', () => {
  it('normalises values to string lists', () => {
    expect(parseGroups({ company: 'acme', teams: ['a', 7] })).toEqual({ company: ['acme'], teams: ['a', '7'] });
  });

  it('rejects more than 5 types, more than 10 values, and non-scalar values', () => {
    expect(parseGroups({ a: '1', b: '1', c: '1', d: '1', e: '1', f: '1' })).toBeUndefined();
    expect(parseGroups({ a: Array.from({ length: 11 }, (_, i) => `v${i}`) })).toBeUndefined();
    expect(parseGroups({ a: { nested: true } })).toBeUndefined();
    expect(parseGroups(['a'])).toBeUndefined();
  });
});

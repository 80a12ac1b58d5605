import { compileMapper } from '../../src/amplitude/mapping';
import { MappingError } from '../../src/amplitude/errors';
import { hashText } from '../../src/diff/canonical';
import type { MapResult, RowMapper, SourceField, SourceRow } from '../../src/sync/types';
import { makeSync } from './support/sync';

/** The payload of a successful mapping, parsed; fails the test with the reason otherwise. */
function payloadOf(result: MapResult): Record<string, unknown> {
  if (!result.ok) throw new Error(`expected a payload, got rejection: ${result.reason}`);
  return JSON.parse(result.payload) as Record<string, unknown>;
}

/** The fingerprint of a row with a usable key. */
function fingerprintHash(mapper: RowMapper, row: SourceRow): string {
  const result = mapper.fingerprint(row);
  if (!result.ok) throw new Error(`expected a fingerprint, got rejection: ${result.reason}`);
  return result.hash;
}

function field(name: string, type = 'STRING'): SourceField {
  return { name, type, mode: 'NULLABLE' };
}

const eventsSync = (mappings: Parameters<typeof makeSync>[0]['mappings'], options: Record<string, unknown> = {}) =>
  makeSync({
    id: 'orders',
    object: 'events',
    key: 'order_id',
    mappings: [
      { from: 'user_id', to: 'user_id' },
      { constant: 'Order Completed', to: 'event_type' },
      ...(mappings ?? []),
    ],
    options,
  });

describe('compileMapper: users', () => {
  const sync = makeSync({
    id: 'users',
    object: 'users',
    key: 'user_id',
    mappings: [
      { from: 'user_id', to: 'user_id' },
      { from: 'device', to: 'device_id' },
      { from: 'plan', to: 'user_properties.plan' },
      { from: 'country', to: 'country' },
      { from: 'account', to: 'groups.account' },
    ],
  });
  const row: SourceRow = { user_id: 'user-00001', device: 'dev-00001', plan: 'pro', country: 'DE', account: 42 };

  it('maps a row to a $identify event for Batch, as JSON in mapping order, with its fingerprint', () => {
    const mapper = compileMapper(sync);
    const result = mapper.map(row);
    const fingerprint = fingerprintHash(mapper, row);
    // the insert_id follows the fingerprint: a retry keeps it, a changed profile gets a new one
    const insertId = hashText(`users\u001fuser-00001\u001f${fingerprint}`);
    const payload =
      `{"event_type":"$identify","user_id":"user-00001","device_id":"dev-00001",` +
      `"user_properties":{"$set":{"plan":"pro"}},"country":"DE","groups":{"account":"42"},"insert_id":"${insertId}"}`;
    expect(result).toEqual({ ok: true, key: 'user-00001', hash: fingerprint, payload });
    // building from a known fingerprint gives the same text
    expect(mapper.build(row, fingerprint)).toEqual({ ok: true, payload });
    expect(mapper.build(row)).toEqual({ ok: true, payload, hash: fingerprint });
  });

  it("keeps this release's fingerprints: a change to them makes every user resend every row", () => {
    // pinned values: change them only with the fingerprint format, and say so under README "Upgrading"
    const mapper = compileMapper(sync);
    expect(fingerprintHash(mapper, row)).toBe('06f49f97b948254d');
    expect(fingerprintHash(mapper, { ...row, plan: 'free', account: null })).toBe('d4e1d7c0685a7f28');
  });

  it('gives an identify the same insert_id on a retry and a new one when the profile changes', () => {
    const mapper = compileMapper(sync);
    const first = payloadOf(mapper.map(row));
    const again = payloadOf(compileMapper(sync).map({ ...row }));
    const changed = payloadOf(mapper.map({ ...row, plan: 'enterprise' }));
    expect(again.insert_id).toBe(first.insert_id);
    expect(changed.insert_id).not.toBe(first.insert_id);
    expect(first.insert_id).toMatch(/^[0-9a-f]{32}$/);
  });

  it('maps to an /identify identification without event_type or insert_id when options.api is identify', () => {
    const identify = makeSync({ ...sync, options: { api: 'identify' }, mappings: [...sync.mappings] });
    expect(payloadOf(compileMapper(identify).map({ ...row }))).toEqual({
      user_id: 'user-00001',
      device_id: 'dev-00001',
      country: 'DE',
      groups: { account: '42' },
      user_properties: { $set: { plan: 'pro' } },
    });
  });

  it('applies each property operation in its own dict', () => {
    const ops = makeSync({
      object: 'users',
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { from: 'a', to: 'user_properties.a', op: '$set' },
        { from: 'b', to: 'user_properties.b', op: '$setOnce' },
        { from: 'c', to: 'user_properties.c', op: '$add' },
        { from: 'd', to: 'user_properties.d', op: '$append' },
        { from: 'e', to: 'user_properties.e', op: '$prepend' },
        { from: 'f', to: 'user_properties.f', op: '$preInsert' },
        { from: 'g', to: 'user_properties.g', op: '$postInsert' },
        { from: 'h', to: 'user_properties.h', op: '$remove' },
        { from: 'i', to: 'user_properties.i', op: '$unset' },
        { constant: 'web', to: 'user_properties.source' },
      ],
    });
    const mapped = payloadOf(
      compileMapper(ops).map({
        user_id: 'user-00001',
        a: 'x',
        b: '2024-01-02',
        c: '12.5',
        d: ['t1', 't2'],
        e: 'p',
        f: 'q',
        g: 'r',
        h: 's',
        i: 'ignored',
      }),
    );
    expect(mapped.user_properties).toEqual({
      $set: { a: 'x', source: 'web' },
      $setOnce: { b: '2024-01-02' },
      $add: { c: 12.5 },
      $append: { d: ['t1', 't2'] },
      $prepend: { e: 'p' },
      $preInsert: { f: 'q' },
      $postInsert: { g: 'r' },
      $remove: { h: 's' },
      $unset: { i: '-' },
    });
  });

  it('rejects a non-numeric $add operand naming the column and value', () => {
    const ops = makeSync({
      object: 'users',
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { from: 'logins', to: 'user_properties.logins', op: '$add' },
      ],
    });
    expect(compileMapper(ops).map({ user_id: 'user-00001', logins: 'many' })).toEqual({
      ok: false,
      key: 'user-00001',
      reason: 'user_properties.logins from column "logins": "many" is not a number to $add',
      stage: 'validation',
    });
  });

  describe('NULL policy', () => {
    const mappings = [
      { from: 'user_id', to: 'user_id' },
      { from: 'plan', to: 'user_properties.plan' },
      { from: 'first', to: 'user_properties.first', op: '$setOnce' as const },
      { from: 'n', to: 'user_properties.n', op: '$add' as const },
      { from: 'city', to: 'city' },
    ];
    const nullRow: SourceRow = { user_id: 'user-00001', plan: null, first: null, n: null, city: null };

    it('skip (default) leaves NULL properties out and omits NULL special fields', () => {
      const mapped = payloadOf(compileMapper(makeSync({ mappings })).map(nullRow));
      expect(mapped).not.toHaveProperty('user_properties');
      expect(mapped).not.toHaveProperty('city');
    });

    it('unset turns a NULL $set into $unset "-" and leaves other operations alone', () => {
      const mapped = payloadOf(compileMapper(makeSync({ mappings, options: { nullPolicy: 'unset' } })).map(nullRow));
      expect(mapped.user_properties).toEqual({ $unset: { plan: '-' } });
      expect(mapped).not.toHaveProperty('city');
    });
  });
});

describe('compileMapper: devices', () => {
  it('keys by device_id, user_id optional', () => {
    const sync = makeSync({
      id: 'devices',
      object: 'devices',
      key: 'device_id',
      mappings: [
        { from: 'device_id', to: 'device_id' },
        { from: 'user_id', to: 'user_id' },
        { from: 'os', to: 'os_name' },
      ],
    });
    const mapper = compileMapper(sync);
    const deviceRow = { device_id: 'dev-77777', user_id: null, os: 'iOS' };
    const result = mapper.map(deviceRow);
    expect(result.ok && result.key).toBe('dev-77777');
    expect(payloadOf(result)).toEqual({
      event_type: '$identify',
      device_id: 'dev-77777',
      os_name: 'iOS',
      insert_id: hashText(`devices\u001fdev-77777\u001f${fingerprintHash(mapper, deviceRow)}`),
    });
  });
});

describe('compileMapper: groups', () => {
  const sync = makeSync({
    id: 'accounts',
    object: 'groups',
    key: 'account_id',
    groupType: 'account',
    mappings: [
      { from: 'name', to: 'group_properties.name' },
      { from: 'seats', to: 'group_properties.seats', op: '$add' },
      { from: 'industry', to: 'group_properties.industry' },
    ],
    options: { nullPolicy: 'unset' },
  });

  it('maps a row to a Group Identify identification keyed by the group value', () => {
    const result = compileMapper(sync).map({ account_id: 1001, name: 'Acme', seats: 3, industry: null });
    expect(result).toEqual({
      ok: true,
      key: '1001',
      hash: expect.any(String),
      payload:
        '{"group_type":"account","group_value":"1001",' +
        '"group_properties":{"$set":{"name":"Acme"},"$add":{"seats":3},"$unset":{"industry":"-"}}}',
    });
  });

  it('refuses an operation Group Identify does not apply, at compile time', () => {
    const bad = makeSync({ ...sync, mappings: [{ from: 'x', to: 'group_properties.x', op: '$remove' }] });
    expect(() => compileMapper(bad)).toThrow(
      new MappingError(
        'mapping to "group_properties.x": Group Identify does not apply "$remove" (it applies $set, $setOnce, $add, ' +
          '$append, $prepend, $unset)',
        'accounts',
      ),
    );
  });
});

describe('compileMapper: events', () => {
  const sync = eventsSync([
    { from: 'created_at', to: 'time' },
    { from: 'total', to: 'revenue' },
    { from: 'items', to: 'event_properties.items' },
    { from: 'coupon', to: 'event_properties.coupon' },
    { from: 'plan', to: 'user_properties.plan' },
    { from: 'account', to: 'groups.account' },
  ]);
  const row: SourceRow = {
    order_id: 'o-1',
    user_id: 123456,
    created_at: '2024-03-01T12:00:00.250Z',
    total: '19.99',
    items: [{ sku: 'A', qty: 2 }],
    coupon: null,
    plan: 'pro',
    account: ['acme', 7],
  };

  it('maps a row to an event with a deterministic insert_id from sync id and key', () => {
    const mapper = compileMapper(sync);
    const result = mapper.map(row);
    expect(result).toMatchObject({ ok: true, key: 'o-1', hash: fingerprintHash(mapper, row) });
    expect(payloadOf(result)).toEqual({
      event_type: 'Order Completed',
      user_id: '123456',
      time: Date.UTC(2024, 2, 1, 12, 0, 0, 250),
      revenue: 19.99,
      event_properties: { items: [{ sku: 'A', qty: 2 }] },
      user_properties: { plan: 'pro' },
      groups: { account: ['acme', '7'] },
      insert_id: hashText('orders\u001fo-1'),
    });
    // the same row gives the same text on every run (its insert_id dedupes a re-send)
    expect(compileMapper(sync).map({ ...row })).toEqual(result);
  });

  it('keeps the insert_id identical across runs and changes it with the key or sync', () => {
    const first = payloadOf(compileMapper(sync).map(row));
    expect(payloadOf(compileMapper(sync).map({ ...row, total: 5 })).insert_id).toBe(first.insert_id);
    expect(payloadOf(compileMapper(sync).map({ ...row, order_id: 'o-2' })).insert_id).not.toBe(first.insert_id);
    const other = makeSync({ ...sync, id: 'orders-eu', mappings: [...sync.mappings] });
    expect(payloadOf(compileMapper(other).map(row)).insert_id).not.toBe(first.insert_id);
  });

  it('refuses a user_properties operation other than $set on events, at compile time', () => {
    const bad = eventsSync([{ from: 'n', to: 'user_properties.n', op: '$add' }]);
    expect(() => compileMapper(bad)).toThrow(
      'sync "orders": mapping to "user_properties.n": "$add" applies only on identifies; ' +
        "an event's user_properties are set as given",
    );
  });

  it('rejects a row whose event_type column is empty', () => {
    const typed = makeSync({
      ...sync,
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { from: 'kind', to: 'event_type' },
      ],
    });
    expect(compileMapper(typed).map({ order_id: 'o-9', user_id: 'user-00001', kind: null })).toEqual({
      ok: false,
      key: 'o-9',
      reason: 'event_type is missing',
      stage: 'validation',
    });
  });
});

describe('compileMapper: value coercion', () => {
  const sync = eventsSync([
    { from: 't', to: 'time' },
    { from: 's', to: 'session_id' },
    { from: 'price', to: 'price' },
    { from: 'qty', to: 'quantity' },
    { from: 'lat', to: 'location_lat' },
    { from: 'eid', to: 'event_id' },
    { from: 'ver', to: 'app_version' },
    { from: 'p', to: 'event_properties.p' },
  ]);
  const mapper = compileMapper(sync);
  const base: SourceRow = {
    order_id: 'o-1',
    user_id: 'user-00001',
    ...{ t: null, s: null, price: null, qty: null, lat: null, eid: null, ver: null, p: null },
  };
  const timeOf = (t: SourceRow[string]): unknown => payloadOf(mapper.map({ ...base, t })).time;

  it.each([
    ['a number, as ms', 1_700_000_000_123, 1_700_000_000_123],
    ['a TIMESTAMP with Z', '2024-01-02T03:04:05.678901Z', Date.UTC(2024, 0, 2, 3, 4, 5, 678)],
    ['a DATETIME without zone, as UTC', '2024-01-02T03:04:05', Date.UTC(2024, 0, 2, 3, 4, 5)],
    ['a DATE', '2024-01-02', Date.UTC(2024, 0, 2)],
    ['an offset timestamp', '2024-01-02T03:04:05+02:00', Date.UTC(2024, 0, 2, 1, 4, 5)],
    ['an INT64 decimal string', '1700000000123', 1_700_000_000_123],
  ])('turns time given as %s into integer ms', (_what, value, expected) => {
    expect(timeOf(value)).toBe(expected);
  });

  it.each([
    ['"yesterday"', 'yesterday'],
    ['"2024-02-30"', '2024-02-30'],
    ['true', true],
    ['an object', { a: 1 }],
    ['NaN', NaN],
  ])('rejects time given as %s naming the column and value', (shown, value) => {
    expect(mapper.map({ ...base, t: value })).toEqual({
      ok: false,
      key: 'o-1',
      reason: `time from column "t": ${shown} is not a timestamp${
        typeof value === 'number' ? '' : ' (ms since the epoch, ISO 8601 timestamp or date)'
      }`,
      stage: 'validation',
    });
  });

  it('coerces ids to text, revenue fields to numbers and keeps property values as given', () => {
    const mapped = payloadOf(
      mapper.map({
        ...base,
        s: '2024-01-02T00:00:00Z',
        price: '12.50',
        qty: 3,
        lat: 52.5,
        eid: '17',
        ver: 3.1,
        p: { when: '2024-01-02', big: '9007199254740993', n: 1.5 },
      }),
    );
    expect(mapped).toMatchObject({
      user_id: 'user-00001',
      session_id: Date.UTC(2024, 0, 2),
      price: 12.5,
      quantity: 3,
      location_lat: 52.5,
      event_id: 17,
      app_version: '3.1',
      event_properties: { p: { when: '2024-01-02', big: '9007199254740993', n: 1.5 } },
    });
  });

  it('rejects a price that is not a number', () => {
    const result = mapper.map({ ...base, price: 'free' });
    expect(result).toMatchObject({ ok: false, reason: 'price from column "price": "free" is not a number' });
  });

  it('rejects an id that is an object', () => {
    const result = mapper.map({ ...base, user_id: { id: 1 } });
    expect(result).toMatchObject({
      ok: false,
      reason: 'user_id from column "user_id": an object is not an id (text or a number)',
    });
  });
});

describe('compileMapper: keys and columns', () => {
  const sync = eventsSync([{ from: 'amount', to: 'event_properties.amount' }]);

  it('rejects a NULL key with the column named', () => {
    expect(compileMapper(sync).map({ order_id: null, user_id: 'user-00001', amount: 1 })).toEqual({
      ok: false,
      key: null,
      reason: 'NULL value in key column "order_id"',
      stage: 'validation',
    });
  });

  it('fails at compile time when the key column is not in the schema', () => {
    expect(() => compileMapper(sync, { schema: [field('user_id'), field('amount')] })).toThrow(
      new MappingError('key column "order_id" not in the model (columns: user_id, amount)', 'orders'),
    );
  });

  it('names every missing mapped column and the available ones', () => {
    expect(() => compileMapper(sync, { schema: [field('order_id'), field('total')] })).toThrow(
      'sync "orders": columns "user_id", "amount" not in the model (columns: order_id, total)',
    );
  });

  it('accepts a schema holding every column', () => {
    const schema = [field('order_id'), field('user_id'), field('amount', 'NUMERIC')];
    expect(compileMapper(sync, { schema }).map({ order_id: 'o-1', user_id: 'user-00001', amount: '1' }).ok).toBe(true);
  });

  it('without a schema, fails on a row that lacks a mapped column', () => {
    expect(() => compileMapper(sync).map({ order_id: 'o-1', user_id: 'user-00001' })).toThrow(
      'sync "orders": column "amount" not in the model (columns: order_id, user_id)',
    );
  });
});

describe('compileMapper: targets each API refuses', () => {
  it('refuses event_type on a users sync', () => {
    const sync = makeSync({
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { constant: 'x', to: 'event_type' },
      ],
    });
    expect(() => compileMapper(sync)).toThrow(/event_type is fixed/);
  });

  it('refuses time on /identify and paying elsewhere', () => {
    const identify = makeSync({
      options: { api: 'identify' },
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { from: 'seen', to: 'time' },
      ],
    });
    expect(() => compileMapper(identify)).toThrow(/mapping to "time": \/identify does not take this field/);
    const batch = makeSync({
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { from: 'paying', to: 'paying' },
      ],
    });
    expect(() => compileMapper(batch)).toThrow(/only \/identify takes this field/);
  });
});

describe('compileMapper: synthetic event (options.syntheticEvent)', () => {
  const sync = makeSync({
    id: 'users',
    mappings: [
      { from: 'user_id', to: 'user_id' },
      { from: 'plan', to: 'user_properties.plan' },
      { from: 'ltv', to: 'user_properties.ltv', op: '$set' },
    ],
    options: { syntheticEvent: 'Warehouse Profile Updated' },
  });

  test('a changed profile goes as an ordinary event carrying the user properties, out of session', () => {
    const result = compileMapper(sync).map({ user_id: 'user-00001', plan: 'pro', ltv: 12.5 });
    const payload = payloadOf(result);
    expect(payload).toEqual({
      event_type: 'Warehouse Profile Updated',
      user_id: 'user-00001',
      session_id: -1,
      user_properties: { ltv: 12.5, plan: 'pro' },
      insert_id: expect.stringMatching(/^[0-9a-f]{32}$/) as unknown,
    });
    // a changed profile is a new event; the same profile again is the same insert_id (deduped on retry)
    const again = payloadOf(compileMapper(sync).map({ user_id: 'user-00001', plan: 'pro', ltv: 12.5 }));
    const changed = payloadOf(compileMapper(sync).map({ user_id: 'user-00001', plan: 'team', ltv: 12.5 }));
    expect(again.insert_id).toBe(payload.insert_id);
    expect(changed.insert_id).not.toBe(payload.insert_id);
  });

  test('operations, group links and nullPolicy unset need $identify and are refused with the reason', () => {
    const withOp = makeSync({
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { from: 'n', to: 'user_properties.n', op: '$add' },
      ],
      options: { syntheticEvent: 'Profile Updated' },
    });
    expect(() => compileMapper(withOp)).toThrow(/"\$add" applies only on identifies; with options.syntheticEvent/);
    const withGroup = makeSync({
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { from: 'a', to: 'groups.account' },
      ],
      options: { syntheticEvent: 'Profile Updated' },
    });
    expect(() => compileMapper(withGroup)).toThrow(MappingError);
    const unset = makeSync({ options: { syntheticEvent: 'Profile Updated', nullPolicy: 'unset' } });
    expect(() => compileMapper(unset)).toThrow(/cannot \$unset: use nullPolicy "skip"/);
  });
});

describe('compileMapper: fingerprints', () => {
  const sync = makeSync({
    id: 'users',
    object: 'users',
    key: 'user_id',
    mappings: [
      { from: 'user_id', to: 'user_id' },
      { from: 'plan', to: 'user_properties.plan' },
      { from: 'ltv', to: 'user_properties.ltv' },
      { from: 'traits', to: 'user_properties.traits' },
    ],
  });
  const row: SourceRow = { user_id: 'user-00001', plan: 'pro', ltv: 12.5, traits: { b: 1, a: [true, null] } };
  const hashOf = (r: SourceRow, s = sync): string => fingerprintHash(compileMapper(s), r);

  it('gives equal rows the same fingerprint whatever their column or object-key order and unmapped columns', () => {
    const reordered: SourceRow = { traits: { a: [true, null], b: 1 }, ltv: 12.5, plan: 'pro', user_id: 'user-00001' };
    expect(hashOf(reordered)).toBe(hashOf(row));
    expect(hashOf({ ...row, unmapped: 'anything' })).toBe(hashOf(row));
    expect(hashOf({ ...row, ltv: -0 })).toBe(hashOf({ ...row, ltv: 0 }));
  });

  it('changes with any mapped value, nested ones included, and tells NULL from a missing operand', () => {
    const base = hashOf(row);
    for (const changed of [
      { ...row, plan: 'enterprise' },
      { ...row, ltv: 12.51 },
      { ...row, ltv: '12.5' },
      { ...row, plan: null },
      { ...row, traits: { b: 1, a: [true, false] } },
      { ...row, user_id: 'user-00002' },
    ]) {
      expect(hashOf(changed)).not.toBe(base);
    }
  });

  it('changes with the mapping, its options and the sync, so a changed mapping sends every row again', () => {
    const base = hashOf(row);
    const withOp = makeSync({
      ...sync,
      mappings: sync.mappings.map((m) => (m.to === 'user_properties.plan' ? { ...m, op: '$setOnce' as const } : m)),
    });
    expect(hashOf(row, withOp)).not.toBe(base);
    expect(hashOf(row, makeSync({ ...sync, options: { nullPolicy: 'unset' } }))).not.toBe(base);
    expect(hashOf(row, makeSync({ ...sync, id: 'users-eu' }))).not.toBe(base);
    // knobs that do not change a payload keep the fingerprint
    expect(hashOf(row, makeSync({ ...sync, options: { chunkSize: 500, concurrency: 2 } }))).toBe(base);
  });

  it('fingerprints rows JSON cannot carry deterministically and apart, and map still rejects them', () => {
    const nan = { ...row, ltv: Number.NaN };
    const inf = { ...row, ltv: Number.POSITIVE_INFINITY };
    expect(hashOf(nan)).toBe(hashOf({ ...nan }));
    expect(new Set([hashOf(nan), hashOf(inf), hashOf(row)]).size).toBe(3);
    expect(compileMapper(sync).map(nan)).toMatchObject({ ok: false, key: 'user-00001' });
  });

  it('rejects a NULL or non-scalar key as map does, and names a missing mapped column', () => {
    const mapper = compileMapper(sync);
    for (const bad of [null, { id: 1 }, [1]]) {
      const fingerprint = mapper.fingerprint({ ...row, user_id: bad });
      expect(fingerprint).toEqual(mapper.map({ ...row, user_id: bad }));
      expect(fingerprint).toMatchObject({ ok: false, key: null, stage: 'validation' });
    }
    const { ltv: _ltv, ...missing } = row;
    expect(() => mapper.fingerprint(missing)).toThrow(/column "ltv" not in the model/);
  });

  it('identifies a row by its key alone (send-once), and build then carries the fingerprint it skipped', () => {
    const mapper = compileMapper(sync);
    expect(mapper.identify(row)).toEqual({ ok: true, key: 'user-00001', hash: '' });
    for (const bad of [null, { id: 1 }]) {
      expect(mapper.identify({ ...row, user_id: bad })).toEqual(mapper.fingerprint({ ...row, user_id: bad }));
    }
    const built = mapper.build(row);
    expect(built).toEqual({ ok: true, payload: expect.any(String), hash: hashOf(row) });
    // a caller that had the fingerprint gets the payload alone, the same payload
    expect(mapper.build(row, hashOf(row))).toEqual({ ok: true, payload: (built as { payload: string }).payload });
  });
});

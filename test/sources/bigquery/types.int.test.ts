/**
 * Every BigQuery type the goccy emulator can produce, read through BigQuerySource with the real client, against
 * the table in src/sources/bigquery/convert.ts. RANGE and FLOAT64 NaN the emulator cannot return (RANGE results
 * fail to materialise, NaN comes back NULL): convert.unit.test.ts covers them on BigQuery's documented cell shapes.
 */
import type { NativeLoader } from './native-client';

// the real client, loaded natively (see native-client.ts)
jest.mock('@google-cloud/bigquery', () =>
  jest.requireActual<NativeLoader>('./native-client').loadNatively('@google-cloud/bigquery'),
);
jest.mock('google-auth-library', () =>
  jest.requireActual<NativeLoader>('./native-client').loadNatively('google-auth-library'),
);
jest.setTimeout(180_000);

import { BigQuerySource } from '../../../src/sources/bigquery/source';
import type { SourceRow } from '../../../src/sync/types';
import { run, testEmulator } from './support';

let ctx: Awaited<ReturnType<typeof testEmulator>>;

beforeAll(async () => {
  ctx = await testEmulator('bq_types');
});

afterAll(async () => {
  await ctx?.cleanup();
});

async function readOne(sql: string): Promise<{ row: SourceRow; types: Record<string, string> }> {
  const source = new BigQuerySource(ctx.source, { client: ctx.bq });
  const opened = await source.open({ sql });
  const page = await source.readPage(opened.position, { pageSize: 10 });
  expect(page.rows).toHaveLength(1);
  const types = Object.fromEntries(
    opened.schema.map((f) => [
      f.name,
      `${f.mode === 'REPEATED' ? 'ARRAY<' : ''}${f.type}${f.mode === 'REPEATED' ? '>' : ''}`,
    ]),
  );
  return { row: page.rows[0] as SourceRow, types };
}

test('scalar types convert to the documented JS values, legacy type names normalised', async () => {
  const { row, types } = await readOne(`SELECT
    TIMESTAMP '2024-05-01 12:00:00.123456+00' AS ts_micro,
    TIMESTAMP '2024-05-01 14:00:00+02' AS ts_zone,
    TIMESTAMP '1900-01-01 00:00:00.000001+00' AS ts_old,
    DATETIME '2024-05-01 12:00:00.5' AS dt_half,
    DATETIME '2024-05-01 12:00:00' AS dt_whole,
    DATE '2024-05-01' AS d,
    TIME '12:00:00.123456' AS t_micro,
    TIME '01:02:03' AS t_whole,
    42 AS int_small,
    -9007199254740991 AS int_min_safe,
    9007199254740993 AS int_big,
    -9223372036854775808 AS int_min,
    NUMERIC '1.5' AS num_exact,
    NUMERIC '12345678901234567890.123456789' AS num_long,
    NUMERIC '-0.000000001' AS num_tiny,
    BIGNUMERIC '1.123456789012345678901234567890123' AS bignum,
    1.25 AS f,
    0.1 AS f_tenth,
    IEEE_DIVIDE(1, 0) AS f_inf,
    IEEE_DIVIDE(-1, 0) AS f_ninf,
    TRUE AS b_true,
    FALSE AS b_false,
    'héllo ✓' AS s,
    b'\\x00\\x01abc' AS bytes_,
    JSON '{"a":[1,2,{"b":null}],"c":"x"}' AS j,
    ST_GEOGPOINT(1.5, 2.5) AS geo,
    MAKE_INTERVAL(1, 2, 3, 4, 5, 6) AS iv,
    INTERVAL 5 DAY AS iv_days,
    CAST(NULL AS STRING) AS null_string,
    CAST(NULL AS INT64) AS null_int,
    CAST(NULL AS TIMESTAMP) AS null_ts`);
  expect(row).toEqual({
    ts_micro: '2024-05-01T12:00:00.123456Z',
    ts_zone: '2024-05-01T12:00:00Z',
    ts_old: '1900-01-01T00:00:00.000001Z',
    dt_half: '2024-05-01T12:00:00.500000',
    dt_whole: '2024-05-01T12:00:00',
    d: '2024-05-01',
    t_micro: '12:00:00.123456',
    t_whole: '01:02:03',
    int_small: 42,
    int_min_safe: -9007199254740991,
    int_big: '9007199254740993',
    int_min: '-9223372036854775808',
    num_exact: 1.5,
    num_long: '12345678901234567890.123456789',
    num_tiny: -0.000000001,
    bignum: '1.123456789012345678901234567890123',
    f: 1.25,
    f_tenth: 0.1,
    f_inf: Infinity,
    f_ninf: -Infinity,
    b_true: true,
    b_false: false,
    s: 'héllo ✓',
    bytes_: Buffer.from([0, 1, 97, 98, 99]).toString('base64'),
    j: { a: [1, 2, { b: null }], c: 'x' },
    // WKT as the server writes it (BigQuery: "POINT(1.5 2.5)")
    geo: 'POINT (1.5 2.5)',
    iv: '1-2 3 4:5:6',
    iv_days: '0-0 5 0:0:0',
    null_string: null,
    null_int: null,
    null_ts: null,
  });
  expect(types).toMatchObject({
    ts_micro: 'TIMESTAMP',
    dt_half: 'DATETIME',
    d: 'DATE',
    t_micro: 'TIME',
    int_small: 'INT64',
    num_exact: 'NUMERIC',
    bignum: 'BIGNUMERIC',
    f: 'FLOAT64',
    b_true: 'BOOL',
    s: 'STRING',
    bytes_: 'BYTES',
    j: 'JSON',
    geo: 'GEOGRAPHY',
    iv: 'INTERVAL',
  });
});

test('ARRAY and STRUCT convert recursively, timestamps inside them too', async () => {
  const { row, types } = await readOne(`SELECT
    [1, 2, 3] AS ints,
    ARRAY<STRING>[] AS empty,
    [TIMESTAMP '2024-01-01 00:00:00+00', TIMESTAMP '2024-01-01 00:00:00.25+00'] AS stamps,
    STRUCT(1 AS a, 'x' AS b, [STRUCT(7 AS c, DATE '2024-02-29' AS d)] AS cs, TIMESTAMP '2024-01-01 00:00:00.5+00' AS seen_at) AS st,
    [STRUCT(NUMERIC '2.5' AS price, JSON '{"k":true}' AS meta)] AS items`);
  expect(row).toEqual({
    ints: [1, 2, 3],
    empty: [],
    stamps: ['2024-01-01T00:00:00Z', '2024-01-01T00:00:00.250000Z'],
    st: { a: 1, b: 'x', cs: [{ c: 7, d: '2024-02-29' }], seen_at: '2024-01-01T00:00:00.500000Z' },
    items: [{ price: 2.5, meta: { k: true } }],
  });
  expect(types).toEqual({
    ints: 'ARRAY<INT64>',
    empty: 'ARRAY<STRING>',
    stamps: 'ARRAY<TIMESTAMP>',
    st: 'STRUCT',
    items: 'ARRAY<STRUCT>',
  });
});

test('a table of every storable type reads the same through tabledata.list and through a query job', async () => {
  await run(
    ctx.bq,
    `CREATE TABLE ${ctx.dataset}.typed AS SELECT
      'k1' AS id, TIMESTAMP '2024-05-01 12:00:00.123456+00' AS ts, DATETIME '2024-05-01 12:00:00' AS dt, DATE '2024-05-01' AS d,
      TIME '23:59:59.999999' AS t, 9007199254740993 AS big, NUMERIC '19.99' AS price, 2.5 AS f, TRUE AS ok, b'ab' AS raw,
      JSON '{"n":1}' AS j, [1, 2] AS arr, STRUCT('x' AS name, [TIMESTAMP '2024-01-01 00:00:00+00'] AS seen) AS rec`,
  );
  const expected = {
    id: 'k1',
    ts: '2024-05-01T12:00:00.123456Z',
    dt: '2024-05-01T12:00:00',
    d: '2024-05-01',
    t: '23:59:59.999999',
    big: '9007199254740993',
    price: 19.99,
    f: 2.5,
    ok: true,
    raw: 'YWI=',
    j: { n: 1 },
    arr: [1, 2],
    rec: { name: 'x', seen: ['2024-01-01T00:00:00Z'] },
  };
  for (const tableRead of ['list', 'query'] as const) {
    const source = new BigQuerySource(ctx.source, { client: ctx.bq, tableRead });
    const opened = await source.open({ table: `${ctx.dataset}.typed` });
    const page = await source.readPage(opened.position, { pageSize: 10 });
    expect(page.rows).toEqual([expected]);
  }
});

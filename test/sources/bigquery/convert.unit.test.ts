/**
 * The converter on the REST cell shapes BigQuery documents, including those the goccy emulator cannot produce
 * (RANGE, FLOAT64 NaN / "Infinity", float-second and ISO timestamps, picoseconds).
 */
import {
  canonicalDecimal,
  convertRows,
  convertValue,
  isoFromMicros,
  normaliseSchema,
  type RawRow,
  type RawValue,
} from '../../../src/sources/bigquery/convert';
import { SourceValueError } from '../../../src/sources/bigquery/errors';
import type { SourceField } from '../../../src/sync/types';

const f = (type: string, extra: Partial<SourceField> = {}): SourceField => ({
  name: 'c',
  type,
  mode: 'NULLABLE',
  ...extra,
});
const conv = (type: string, raw: RawValue, extra: Partial<SourceField> = {}) => convertValue(f(type, extra), raw);

describe('normaliseSchema', () => {
  test('legacy names become standard SQL names; mode defaults to NULLABLE; RANGE keeps its element type', () => {
    expect(
      normaliseSchema([
        { name: 'a', type: 'INTEGER' },
        { name: 'b', type: 'FLOAT', mode: 'REQUIRED' },
        { name: 'c', type: 'BOOLEAN', mode: 'REPEATED' },
        { name: 'd', type: 'RECORD', fields: [{ name: 'e', type: 'BIGDECIMAL' }] },
        { name: 'r', type: 'RANGE', rangeElementType: { type: 'DATE' } },
        { name: 's', type: 'string', mode: null },
      ]),
    ).toEqual([
      { name: 'a', type: 'INT64', mode: 'NULLABLE' },
      { name: 'b', type: 'FLOAT64', mode: 'REQUIRED' },
      { name: 'c', type: 'BOOL', mode: 'REPEATED' },
      { name: 'd', type: 'STRUCT', mode: 'NULLABLE', fields: [{ name: 'e', type: 'BIGNUMERIC', mode: 'NULLABLE' }] },
      { name: 'r', type: 'RANGE', mode: 'NULLABLE', rangeElementType: 'DATE' },
      { name: 's', type: 'STRING', mode: 'NULLABLE' },
    ]);
  });
});

describe('TIMESTAMP', () => {
  test.each([
    ['int64 microseconds (useInt64Timestamp)', '1714564800123456', '2024-05-01T12:00:00.123456Z'],
    ['int64 microseconds, whole second', '1714564800000000', '2024-05-01T12:00:00Z'],
    ['negative microseconds (before 1970)', '-2208988799999999', '1900-01-01T00:00:00.000001Z'],
    ['float seconds with exponent (jobs.query default)', '1.714564800123456E9', '2024-05-01T12:00:00.123456Z'],
    ['float seconds, lowercase exponent', '1.7145648E9', '2024-05-01T12:00:00Z'],
    ['float seconds, plain decimal', '1714564800.5', '2024-05-01T12:00:00.500000Z'],
    ['ISO8601_STRING output', '2024-05-01T12:00:00.123456Z', '2024-05-01T12:00:00.123456Z'],
    ['ISO picoseconds keep their digits', '2024-05-01T12:00:00.123456789012Z', '2024-05-01T12:00:00.123456789012Z'],
    ['emulator text inside arrays', '2024-01-01 00:00:00+00', '2024-01-01T00:00:00Z'],
    ['emulator text with micros', '2024-01-01 00:00:00.500000+00', '2024-01-01T00:00:00.500000Z'],
    ['text with an offset', '2024-05-01 14:30:00+02:30', '2024-05-01T12:00:00Z'],
    ['text with UTC', '2024-05-01 12:00:00 UTC', '2024-05-01T12:00:00Z'],
    ['the smallest timestamp', '-62135596800000000', '0001-01-01T00:00:00Z'],
    ['the largest timestamp', '253402300799999999', '9999-12-31T23:59:59.999999Z'],
  ])('%s: %s → %s', (_what, raw, iso) => {
    expect(conv('TIMESTAMP', raw)).toBe(iso);
  });

  test('isoFromMicros floors negative fractions', () => {
    expect(isoFromMicros(-1n)).toBe('1969-12-31T23:59:59.999999Z');
  });

  test('a cell that is no timestamp fails naming the column', () => {
    expect(() => conv('TIMESTAMP', 'yesterday')).toThrow(SourceValueError);
    expect(() => conv('TIMESTAMP', 'yesterday')).toThrow('column c (TIMESTAMP): expected int64 microseconds');
  });
});

describe('DATETIME, DATE, TIME', () => {
  test.each([
    ['DATETIME', '2024-05-01T12:00:00', '2024-05-01T12:00:00'],
    ['DATETIME', '2024-05-01T12:00:00.500000', '2024-05-01T12:00:00.500000'],
    ['DATETIME', '2024-05-01T12:00:00.5', '2024-05-01T12:00:00.500000'],
    ['DATETIME', '2024-05-01 12:00:00.000000', '2024-05-01T12:00:00'],
    ['DATE', '2024-02-29', '2024-02-29'],
    ['TIME', '23:59:59.999999', '23:59:59.999999'],
    ['TIME', '01:02:03.1', '01:02:03.100000'],
    ['TIME', '01:02:03', '01:02:03'],
  ])('%s %s → %s', (type, raw, out) => {
    expect(conv(type, raw)).toBe(out);
  });

  test('malformed DATETIME and TIME fail', () => {
    expect(() => conv('DATETIME', '2024-05-01')).toThrow(SourceValueError);
    expect(() => conv('TIME', '12:00')).toThrow(SourceValueError);
  });
});

describe('numbers', () => {
  test.each([
    ['42', 42],
    ['-9007199254740991', -9007199254740991],
    ['9007199254740991', 9007199254740991],
    ['9007199254740992', '9007199254740992'],
    ['9223372036854775807', '9223372036854775807'],
    ['-9223372036854775808', '-9223372036854775808'],
  ])('INT64 %s → %p', (raw, out) => {
    expect(conv('INT64', raw)).toBe(out);
    expect(conv('INTEGER', raw)).toBe(out);
  });

  test.each([
    ['1.5', 1.5],
    ['0.1', 0.1],
    ['-0.000000001', -0.000000001],
    ['100000000000000000000', 1e20],
    ['79.19', 79.19],
    ['12345678901234567890.123456789', '12345678901234567890.123456789'],
    ['99999999999999999999999999999.999999999', '99999999999999999999999999999.999999999'],
    ['0.30000000000000004', 0.30000000000000004],
    ['1.00000000000000001', '1.00000000000000001'],
    ['-0', 0],
  ])('NUMERIC %s → %p (number only when the decimal round-trips)', (raw, out) => {
    expect(conv('NUMERIC', raw)).toBe(out);
  });

  test('BIGNUMERIC beyond double precision stays a string', () => {
    const raw = '578960446186580977117854925043439539266.34992332820282019728792003956564819967';
    expect(conv('BIGNUMERIC', raw)).toBe(raw);
  });

  test('canonicalDecimal drops redundant zeros and signs', () => {
    expect(canonicalDecimal('-001.500')).toBe('-1.5');
    expect(canonicalDecimal('+0.0')).toBe('0');
    expect(canonicalDecimal('-0.0')).toBe('0');
    expect(canonicalDecimal('.5')).toBe('0.5');
    expect(canonicalDecimal('1e5')).toBeNull();
    expect(() => conv('NUMERIC', 'abc')).toThrow(SourceValueError);
  });

  test.each([
    ['1.25', 1.25],
    ['1e+300', 1e300],
    ['-0', -0],
    ['5e-324', 5e-324],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['+Inf', Infinity],
    ['-Inf', -Infinity],
  ])('FLOAT64 %s → %p', (raw, out) => {
    expect(conv('FLOAT64', raw)).toBe(out);
    expect(conv('FLOAT', raw)).toBe(out);
  });

  test('FLOAT64 "NaN" → NaN; garbage fails', () => {
    expect(conv('FLOAT64', 'NaN')).toBeNaN();
    expect(() => conv('FLOAT64', 'many')).toThrow('column c (FLOAT64): expected a number, got "many"');
    expect(() => conv('FLOAT64', '')).toThrow(SourceValueError);
  });
});

describe('other scalars', () => {
  test('BOOL, STRING, BYTES, GEOGRAPHY, JSON', () => {
    expect(conv('BOOL', 'true')).toBe(true);
    expect(conv('BOOLEAN', 'FALSE')).toBe(false);
    expect(() => conv('BOOL', 'yes')).toThrow(SourceValueError);
    expect(conv('STRING', '')).toBe('');
    expect(conv('BYTES', 'AAFhYmM=')).toBe('AAFhYmM=');
    expect(conv('GEOGRAPHY', 'POINT(1 2)')).toBe('POINT(1 2)');
    expect(conv('JSON', '{"a":[1,{"b":null}],"s":"x"}')).toEqual({ a: [1, { b: null }], s: 'x' });
    expect(conv('JSON', '"text"')).toBe('text');
    expect(conv('JSON', 'null')).toBeNull();
    expect(() => conv('JSON', '{broken')).toThrow('column c (JSON): expected JSON text');
  });

  test.each([
    ['1-2 3 4:5:6', '1-2 3 4:5:6'],
    ['0-0 5 0:0:0', '0-0 5 0:0:0'],
    ['-1-2 -3 -4:5:6.500000', '-1-2 -3 -4:5:6.5'],
    ['0-0 0 0:0:1.25', '0-0 0 0:0:1.25'],
    ['P1Y2M', 'P1Y2M'],
  ])('INTERVAL %s → %s', (raw, out) => {
    expect(conv('INTERVAL', raw)).toBe(out);
  });

  test('a type unknown to this converter passes its text through', () => {
    expect(conv('FUTURE_TYPE', 'x')).toBe('x');
  });

  test('NULL of every type is null; a NULL array is []', () => {
    for (const type of ['STRING', 'INT64', 'TIMESTAMP', 'JSON', 'STRUCT', 'RANGE', 'NUMERIC']) {
      expect(conv(type, null)).toBeNull();
    }
    expect(conv('STRING', null, { mode: 'REPEATED' })).toEqual([]);
  });
});

describe('RANGE (documented REST shape "[start, end)")', () => {
  test.each([
    ['DATE', '[2024-01-01, 2024-02-01)', { start: '2024-01-01', end: '2024-02-01' }],
    ['DATE', '[2024-01-01, UNBOUNDED)', { start: '2024-01-01', end: null }],
    ['DATE', '[UNBOUNDED, UNBOUNDED)', { start: null, end: null }],
    [
      'DATETIME',
      '[2024-01-01T00:00:00, 2024-01-01T12:00:00.500000)',
      { start: '2024-01-01T00:00:00', end: '2024-01-01T12:00:00.500000' },
    ],
    ['TIMESTAMP', '[1704067200000000, UNBOUNDED)', { start: '2024-01-01T00:00:00Z', end: null }],
    [
      'TIMESTAMP',
      '[2024-01-01 00:00:00+00, 2024-01-02 00:00:00+00)',
      { start: '2024-01-01T00:00:00Z', end: '2024-01-02T00:00:00Z' },
    ],
  ])('RANGE<%s> %s', (element, raw, out) => {
    expect(conv('RANGE', raw, { rangeElementType: element })).toEqual(out);
  });

  test('a malformed range fails', () => {
    expect(() => conv('RANGE', '2024-01-01', { rangeElementType: 'DATE' })).toThrow(SourceValueError);
  });
});

describe('rows, arrays and structs', () => {
  const schema: SourceField[] = [
    { name: 'id', type: 'INT64', mode: 'REQUIRED' },
    { name: 'tags', type: 'STRING', mode: 'REPEATED' },
    {
      name: 'owner',
      type: 'STRUCT',
      mode: 'NULLABLE',
      fields: [
        { name: 'name', type: 'STRING', mode: 'NULLABLE' },
        {
          name: 'visits',
          type: 'STRUCT',
          mode: 'REPEATED',
          fields: [
            { name: 'at', type: 'TIMESTAMP', mode: 'NULLABLE' },
            { name: 'n', type: 'INT64', mode: 'NULLABLE' },
          ],
        },
      ],
    },
  ];

  test('nested REST rows become plain objects and arrays', () => {
    const rows: RawRow[] = [
      {
        f: [
          { v: '1' },
          { v: [{ v: 'a' }, { v: 'b' }] },
          {
            v: {
              f: [
                { v: 'Ada' },
                {
                  v: [{ v: { f: [{ v: '1714564800000000' }, { v: '3' }] } }, { v: { f: [{ v: null }, { v: null }] } }],
                },
              ],
            },
          },
        ],
      },
      { f: [{ v: '2' }, { v: [] }, { v: null }] },
    ];
    expect(convertRows(schema, rows)).toEqual([
      {
        id: 1,
        tags: ['a', 'b'],
        owner: {
          name: 'Ada',
          visits: [
            { at: '2024-05-01T12:00:00Z', n: 3 },
            { at: null, n: null },
          ],
        },
      },
      { id: 2, tags: [], owner: null },
    ]);
  });

  test('a wrong cell shape fails naming the path', () => {
    expect(() => convertRows(schema, [{ f: [{ v: '1' }, { v: 'not-an-array' }, { v: null }] }])).toThrow(
      'column tags (STRING): expected an array of cells',
    );
    expect(() =>
      convertRows(schema, [
        { f: [{ v: '1' }, { v: [] }, { v: { f: [{ v: 'x' }, { v: [{ v: { f: [{ v: 'soon' }] } }] }] } }] },
      ]),
    ).toThrow('column owner.visits[0].at (TIMESTAMP)');
  });

  test('no rows → []', () => {
    expect(convertRows(schema, undefined)).toEqual([]);
    expect(convertRows(schema, [])).toEqual([]);
  });
});

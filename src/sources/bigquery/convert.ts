/**
 * BigQuery REST cells → SourceValue. Rows arrive as `{ f: [{ v }] }` (tabledata.list / jobs.getQueryResults with
 * the client's parsing skipped); every type becomes plain JSON, so a row hashes the same on every run.
 *
 * | BigQuery type         | JS value                                                                    |
 * |-----------------------|-----------------------------------------------------------------------------|
 * | NULL (any type)       | null                                                                        |
 * | STRING                | string                                                                      |
 * | BYTES                 | base64 string (as sent)                                                     |
 * | INT64 (INTEGER)       | number when Number.isSafeInteger, else the decimal string (precision kept)  |
 * | NUMERIC, BIGNUMERIC   | number when its decimal text round-trips exactly, else the decimal string   |
 * | FLOAT64 (FLOAT)       | number, NaN, Infinity, -Infinity                                            |
 * | BOOL (BOOLEAN)        | boolean                                                                     |
 * | TIMESTAMP             | "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (UTC; 6 fraction digits, omitted when zero) |
 * | DATETIME              | "YYYY-MM-DDTHH:MM:SS[.ffffff]" (no zone; same fraction rule)                |
 * | DATE                  | "YYYY-MM-DD"                                                                |
 * | TIME                  | "HH:MM:SS[.ffffff]"                                                         |
 * | JSON                  | the parsed value (integers beyond 2^53 lose precision, as in JSON.parse)    |
 * | GEOGRAPHY             | WKT string, as sent                                                         |
 * | INTERVAL              | canonical "Y-M D H:M:S[.F]" (e.g. "1-2 3 4:5:6.5"), redundant zeros dropped |
 * | RANGE<T>              | { start, end } with T converted as above; null for UNBOUNDED                |
 * | ARRAY (mode REPEATED) | array (a NULL array is [])                                                  |
 * | STRUCT (RECORD)       | object keyed by the field names                                             |
 *
 * TIMESTAMP cells come as int64 microseconds (`formatOptions.useInt64Timestamp`, the client's default), float
 * seconds ("1.7145648001234E9", without that option), ISO text (`ISO8601_STRING`) or, from the goccy emulator
 * inside arrays and structs, "2024-05-01 12:00:00.500000+00": all four read exactly.
 */
import type { SourceField, SourceRow, SourceValue } from '../../sync/types';
import { SourceValueError } from './errors';

/** One REST cell: a scalar as text, an array of cells, or a nested row. */
export type RawCell = { v: RawValue };
export type RawValue = string | null | RawCell[] | RawRow;
export interface RawRow {
  f: RawCell[];
}

/** BigQuery's TableFieldSchema as the REST API sends it (the parts conversion needs). */
export interface RawField {
  name?: string | null;
  type?: string | null;
  mode?: string | null;
  fields?: RawField[] | null;
  rangeElementType?: { type?: string | null } | null;
}

const LEGACY_TYPES: Readonly<Record<string, string>> = {
  INTEGER: 'INT64',
  FLOAT: 'FLOAT64',
  BOOLEAN: 'BOOL',
  RECORD: 'STRUCT',
  BIGDECIMAL: 'BIGNUMERIC',
  DECIMAL: 'NUMERIC',
};

/** A type name with legacy spellings normalised (INTEGER → INT64, FLOAT → FLOAT64, BOOLEAN → BOOL, RECORD → STRUCT). */
export function normaliseType(type: string): string {
  const upper = type.toUpperCase();
  return LEGACY_TYPES[upper] ?? upper;
}

/** The REST schema as SourceFields, legacy type names normalised. */
export function normaliseSchema(fields: readonly RawField[] | null | undefined): SourceField[] {
  return (fields ?? []).map((raw) => {
    const mode = raw.mode === 'REPEATED' || raw.mode === 'REQUIRED' ? raw.mode : 'NULLABLE';
    const field: SourceField = { name: raw.name ?? '', type: normaliseType(raw.type ?? 'STRING'), mode };
    if (raw.fields && raw.fields.length > 0) field.fields = normaliseSchema(raw.fields);
    const elementType = raw.rangeElementType?.type;
    if (elementType) field.rangeElementType = normaliseType(elementType);
    return field;
  });
}

type Converter = (raw: RawValue, path: string) => SourceValue;

/** Compiles a converter for rows of `schema` (build once per page, apply to every row). */
export function rowConverter(schema: readonly SourceField[]): (row: RawRow) => SourceRow {
  const names = schema.map((f) => f.name);
  const converters = schema.map(fieldConverter);
  return (row) => {
    const out: SourceRow = {};
    const cells = row.f;
    for (let i = 0; i < converters.length; i++) {
      const name = names[i] as string;
      out[name] = (converters[i] as Converter)(cells[i]?.v ?? null, name);
    }
    return out;
  };
}

/** Converts a page of REST rows. */
export function convertRows(schema: readonly SourceField[], rows: readonly RawRow[] | null | undefined): SourceRow[] {
  if (!rows || rows.length === 0) return [];
  const convert = rowConverter(schema);
  return rows.map(convert);
}

/** Converts one REST value of `field` (a single cell's `v`). */
export function convertValue(field: SourceField, raw: RawValue): SourceValue {
  return fieldConverter(field)(raw, field.name);
}

function fieldConverter(field: SourceField): Converter {
  const scalar = scalarConverter(field);
  if (field.mode !== 'REPEATED') return scalar;
  return (raw, path) => {
    if (raw === null) return [];
    if (!Array.isArray(raw)) throw new SourceValueError(path, field.type, raw, 'an array of cells');
    return raw.map((cell, i) => scalar(cell.v, `${path}[${i}]`));
  };
}

function scalarConverter(field: SourceField): Converter {
  const type = normaliseType(field.type);
  const text =
    (convert: (value: string, path: string) => SourceValue): Converter =>
    (raw, path) => {
      if (raw === null) return null;
      if (typeof raw !== 'string') throw new SourceValueError(path, type, raw, 'a text cell');
      return convert(raw, path);
    };
  switch (type) {
    case 'STRING':
    case 'BYTES':
    case 'DATE':
    case 'GEOGRAPHY':
      return text((v) => v);
    case 'INT64':
      return text(int64);
    case 'NUMERIC':
    case 'BIGNUMERIC':
      return text((v, path) => decimal(v, path, type));
    case 'FLOAT64':
      return text((v, path) => float64(v, path));
    case 'BOOL':
      return text((v, path) => bool(v, path));
    case 'TIMESTAMP':
      return text((v, path) => timestamp(v, path));
    case 'DATETIME':
      return text((v, path) => datetime(v, path));
    case 'TIME':
      return text((v, path) => time(v, path));
    case 'JSON':
      return text((v, path) => json(v, path));
    case 'INTERVAL':
      return text(interval);
    case 'RANGE':
      return rangeConverter(field);
    case 'STRUCT':
      return structConverter(field);
    default:
      // a type added to BigQuery after this table was written: its REST text, unchanged
      return text((v) => v);
  }
}

function structConverter(field: SourceField): Converter {
  const children = field.fields ?? [];
  const names = children.map((f) => f.name);
  const converters = children.map(fieldConverter);
  return (raw, path) => {
    if (raw === null) return null;
    if (typeof raw !== 'object' || Array.isArray(raw) || !Array.isArray(raw.f)) {
      throw new SourceValueError(path, 'STRUCT', raw, 'a nested row { f: [...] }');
    }
    const out: { [key: string]: SourceValue } = {};
    for (let i = 0; i < converters.length; i++) {
      const name = names[i] as string;
      out[name] = (converters[i] as Converter)(raw.f[i]?.v ?? null, `${path}.${name}`);
    }
    return out;
  };
}

function rangeConverter(field: SourceField): Converter {
  const elementType = field.rangeElementType ?? 'DATE';
  const element = scalarConverter({ name: field.name, type: elementType, mode: 'NULLABLE' });
  return (raw, path) => {
    if (raw === null) return null;
    if (typeof raw !== 'string') throw new SourceValueError(path, 'RANGE', raw, 'a text cell "[start, end)"');
    const m = /^\s*[[(]\s*([^,]*?)\s*,\s*([^,]*?)\s*[\])]\s*$/.exec(raw);
    if (!m) throw new SourceValueError(path, 'RANGE', raw, '"[start, end)"');
    const bound = (b: string): SourceValue => (b === 'UNBOUNDED' || b === 'NULL' || b === '' ? null : element(b, path));
    return { start: bound(m[1] as string), end: bound(m[2] as string) };
  };
}

function int64(value: string): SourceValue {
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : value;
}

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?$/;

function decimal(value: string, path: string, type: string): SourceValue {
  const canonical = canonicalDecimal(value);
  if (canonical === null) throw new SourceValueError(path, type, value, 'a decimal number');
  const n = Number(canonical);
  return Number.isFinite(n) && canonicalDecimal(plainNumber(n)) === canonical ? n : canonical;
}

/** "-001.500" → "-1.5"; "-0.0" → "0"; null when not a plain decimal. */
export function canonicalDecimal(value: string): string | null {
  const m = DECIMAL.exec(value.trim());
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return null;
  const int = (m[2] as string).replace(/^0+(?=\d)/, '') || '0';
  const frac = (m[3] ?? '').replace(/0+$/, '');
  const body = frac ? `${int}.${frac}` : int;
  return m[1] === '-' && body !== '0' ? `-${body}` : body;
}

/** A number as a plain decimal (no exponent): 1e21 → "1000000000000000000000", 1e-9 → "0.000000001". */
function plainNumber(n: number): string {
  const s = String(n);
  const e = s.indexOf('e');
  if (e < 0) return s;
  const sign = s.startsWith('-') ? '-' : '';
  const mantissa = s.slice(sign.length, e);
  const exponent = Number(s.slice(e + 1));
  const [intPart = '', fracPart = ''] = mantissa.split('.');
  const digits = intPart + fracPart;
  const point = intPart.length + exponent;
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

function float64(value: string, path: string): number {
  switch (value) {
    case 'NaN':
    case 'nan':
      return NaN;
    case 'Infinity':
    case '+Infinity':
    case 'Inf':
    case '+Inf':
    case 'inf':
      return Infinity;
    case '-Infinity':
    case '-Inf':
    case '-inf':
      return -Infinity;
  }
  const n = Number(value);
  if (value.trim() === '' || Number.isNaN(n)) throw new SourceValueError(path, 'FLOAT64', value, 'a number');
  return n;
}

function bool(value: string, path: string): boolean {
  const lower = value.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  throw new SourceValueError(path, 'BOOL', value, '"true" or "false"');
}

function json(value: string, path: string): SourceValue {
  try {
    return JSON.parse(value) as SourceValue;
  } catch (err) {
    throw new SourceValueError(path, 'JSON', value, 'JSON text', { cause: err });
  }
}

const MICROS_PER_SECOND = 1_000_000n;
const INT64_MICROS = /^-?\d+$/;
const FLOAT_SECONDS = /^[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?$/;
const TEXT_TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)?$/i;

function timestamp(value: string, path: string): string {
  if (INT64_MICROS.test(value)) return isoFromMicros(BigInt(value));
  if (FLOAT_SECONDS.test(value)) return isoFromMicros(microsFromFloatSeconds(value));
  const m = TEXT_TIMESTAMP.exec(value);
  const epochMs = m ? Date.parse(`${m[1]}T${m[2]}Z`) : NaN;
  if (!m || Number.isNaN(epochMs)) {
    throw new SourceValueError(path, 'TIMESTAMP', value, 'int64 microseconds, float seconds or an ISO timestamp');
  }
  const fraction = m[3] ?? '';
  const seconds = BigInt(epochMs / 1000 - zoneOffsetSeconds(m[4] ?? 'Z'));
  const iso = isoFromMicros(seconds * MICROS_PER_SECOND + BigInt(fraction.slice(0, 6).padEnd(6, '0')));
  // picosecond timestamps (ISO8601_STRING output) keep their digits beyond the microsecond
  const beyond = fraction.slice(6).replace(/0+$/, '');
  return beyond ? `${iso.slice(0, 19)}.${fraction.slice(0, 6)}${beyond}Z` : iso;
}

function zoneOffsetSeconds(zone: string): number {
  if (zone === 'Z' || zone.toUpperCase() === 'UTC') return 0;
  const m = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone);
  if (!m) return 0;
  const seconds = Number(m[2]) * 3600 + Number(m[3] ?? 0) * 60;
  return m[1] === '-' ? -seconds : seconds;
}

/** "1.7145648001234560E9" → 1714564800123456n, exactly (rounded half away from zero at the microsecond). */
function microsFromFloatSeconds(value: string): bigint {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(value) as RegExpExecArray;
  const negative = m[1] === '-';
  const digits = (m[2] ?? '') + (m[3] ?? '');
  // the decimal point sits after the integer digits, moved by the exponent, then by 6 for microseconds
  const point = (m[2] ?? '').length + Number(m[4] ?? 0) + 6;
  let micros: bigint;
  if (point <= 0) micros = 0n;
  else if (point >= digits.length) micros = BigInt(digits + '0'.repeat(point - digits.length));
  else {
    micros = BigInt(digits.slice(0, point) || '0');
    if (Number(digits[point]) >= 5) micros += 1n;
  }
  return negative ? -micros : micros;
}

/** Microseconds since the epoch → "YYYY-MM-DDTHH:MM:SS[.ffffff]Z". */
export function isoFromMicros(micros: bigint): string {
  let seconds = micros / MICROS_PER_SECOND;
  let fraction = micros % MICROS_PER_SECOND;
  if (fraction < 0n) {
    fraction += MICROS_PER_SECOND;
    seconds -= 1n;
  }
  const whole = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return `${whole}${fractionText(fraction.toString().padStart(6, '0'))}Z`;
}

/** ".123456" for a non-zero fraction (padded to 6 digits), "" for zero. */
function fractionText(digits: string): string {
  if (/^0*$/.test(digits)) return '';
  const micro = digits.padEnd(6, '0');
  const extra = micro.slice(6).replace(/0+$/, '');
  return `.${micro.slice(0, 6)}${extra}`;
}

const DATETIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?$/;
const TIME = /^(\d{2}:\d{2}:\d{2})(?:\.(\d+))?$/;

function datetime(value: string, path: string): string {
  const m = DATETIME.exec(value);
  if (!m) throw new SourceValueError(path, 'DATETIME', value, '"YYYY-MM-DD[T ]HH:MM:SS[.ffffff]"');
  return `${m[1]}T${m[2]}${fractionText(m[3] ?? '')}`;
}

function time(value: string, path: string): string {
  const m = TIME.exec(value);
  if (!m) throw new SourceValueError(path, 'TIME', value, '"HH:MM:SS[.ffffff]"');
  return `${m[1]}${fractionText(m[2] ?? '')}`;
}

const INTERVAL = /^(-?)(\d+)-(\d+) (-?)(\d+) (-?)(\d+):(\d+):(\d+)(?:\.(\d+))?$/;

/** BigQuery's canonical interval text with redundant zeros dropped; other shapes pass through unchanged. */
function interval(value: string): string {
  const m = INTERVAL.exec(value.trim());
  if (!m) return value;
  const n = (s: string | undefined): string => String(Number(s ?? '0'));
  const fraction = (m[10] ?? '').replace(/0+$/, '');
  return `${m[1]}${n(m[2])}-${n(m[3])} ${m[4]}${n(m[5])} ${m[6]}${n(m[7])}:${n(m[8])}:${n(m[9])}${fraction ? `.${fraction}` : ''}`;
}

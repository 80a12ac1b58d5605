/**
 * Coercion of warehouse values (as converted from BigQuery: ISO strings for TIMESTAMP/DATETIME/DATE, decimal
 * strings for big INT64/NUMERIC) into the types Amplitude's top-level fields take.
 */
import type { SpecialField } from '../config/schema';
import type { SourceValue } from '../sync/types';

/** A value a field cannot take; `problem` completes "<field> from <source>: ...". */
export class Invalid {
  constructor(readonly problem: string) {}
}

/** Turns one source value into a field's wire value, or says why it cannot. */
export type Coercer = (value: SourceValue) => unknown;

const ISO_INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)?$/i;
const INTEGER_TEXT = /^[+-]?\d+$/;
const DECIMAL_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * Parses an ISO 8601 timestamp, zone-less datetime (taken as UTC) or date into ms since the epoch;
 * undefined when the text is not one, or names a day that does not exist.
 */
export function parseInstantMs(text: string): number | undefined {
  const m = ISO_INSTANT.exec(text.trim());
  if (m === null) return undefined;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone = 'Z'] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  const ms = Number(frac.padEnd(3, '0').slice(0, 3));
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  if (new Date(utc).getUTCDate() !== day) return undefined;
  return utc - zoneOffsetMs(zone.toUpperCase());
}

function zoneOffsetMs(zone: string): number {
  if (zone === 'Z' || zone === 'UTC') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
  return sign * (hours * 60 + minutes) * 60_000;
}

/** A short description of a value for a rejection reason. */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'object':
      return value === null ? 'NULL' : Array.isArray(value) ? 'an array' : 'an object';
    default:
      return typeof value;
  }
}

/** `time`, `session_id`: integer ms since the epoch from a number (ms), an integer text, or an ISO timestamp/date. */
export const toEpochMs: Coercer = (value) => {
  if (typeof value === 'number') {
    return Number.isFinite(value) ? Math.trunc(value) : new Invalid(`${describeValue(value)} is not a timestamp`);
  }
  if (typeof value === 'string') {
    if (INTEGER_TEXT.test(value)) {
      const n = Number(value);
      if (Number.isSafeInteger(n)) return n;
    } else {
      const ms = parseInstantMs(value);
      if (ms !== undefined) return ms;
    }
  }
  return new Invalid(`${describeValue(value)} is not a timestamp (ms since the epoch, ISO 8601 timestamp or date)`);
};

/** `user_id`, `device_id`: text; numbers are written out. */
export const toId: Coercer = (value) => {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return new Invalid(`${describeValue(value)} is not an id (text or a number)`);
};

/** `price`, `quantity`, `revenue`, `location_*`: numbers, from a number or a decimal text (NUMERIC, big INT64). */
export const toNumber: Coercer = (value) => {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && DECIMAL_TEXT.test(value)) return Number(value);
  return new Invalid(`${describeValue(value)} is not a number`);
};

/** `event_id`: an integer. */
export const toInteger: Coercer = (value) => {
  const n = toNumber(value);
  if (typeof n === 'number' && Number.isSafeInteger(n)) return n;
  return new Invalid(`${describeValue(value)} is not an integer`);
};

/** Text fields (`platform`, `country`, ...): text; numbers and booleans are written out. */
export const toText: Coercer = (value) => {
  if (typeof value === 'string') return value;
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') return String(value);
  return new Invalid(`${describeValue(value)} is not text`);
};

/** `plan`: an object (`{branch, source, version}`). */
export const toObject: Coercer = (value) =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? value
    : new Invalid(`${describeValue(value)} is not an object`);

/** `groups.TYPE`: a group value (text) or a list of them. */
export const toGroupValue: Coercer = (value) => {
  if (!Array.isArray(value)) return toId(value);
  const values: string[] = [];
  for (const item of value) {
    if (item === null) continue;
    const text = toId(item);
    if (text instanceof Invalid) return new Invalid(`${describeValue(item)} in the list is not a group value`);
    values.push(text as string);
  }
  return values;
};

/** `$add` operands: numbers. */
export const toAddend: Coercer = (value) => {
  const n = toNumber(value);
  return n instanceof Invalid ? new Invalid(`${describeValue(value)} is not a number to $add`) : n;
};

/** The coercion each special field's value goes through. */
export function coercerFor(field: SpecialField): Coercer {
  switch (field) {
    case 'time':
    case 'session_id':
      return toEpochMs;
    case 'user_id':
    case 'device_id':
      return toId;
    case 'price':
    case 'quantity':
    case 'revenue':
    case 'location_lat':
    case 'location_lng':
      return toNumber;
    case 'event_id':
      return toInteger;
    case 'plan':
      return toObject;
    default:
      return toText;
  }
}

/**
 * Canonical JSON: object keys sorted, -0 as 0, no undefined. Equal values give the same text whatever their key
 * order, so it is what row fingerprints hash (fingerprintText), and what a sync's mapping is identified by.
 */
import * as crypto from 'node:crypto';

/** A value that cannot be expressed in JSON (NaN, ±Infinity, bigint, a function...). */
export class NonJsonValueError extends Error {
  override readonly name = 'NonJsonValueError';
  constructor(
    readonly path: string,
    readonly value: unknown,
  ) {
    super(`${path} is ${describe(value)}, which JSON cannot carry`);
  }
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  return typeof value;
}

/** Serialises `value` canonically; throws NonJsonValueError naming the path of a NaN/Infinity/bigint. */
export function canonicalJson(value: unknown, path = '$'): string {
  return canonical(value, path, false);
}

/**
 * The canonical text of a list of values, for fingerprints: canonicalJson, but total — a value JSON cannot carry
 * (NaN, ±Infinity, a bigint...) is written as a tagged string instead of throwing, so the row still gets a stable
 * fingerprint of its own (its mapping then rejects it). Lists of plain scalars, the common case, take a fast path.
 */
export function fingerprintText(values: readonly unknown[]): string {
  for (const v of values) {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') continue;
    if (typeof v === 'number' && Number.isFinite(v)) continue;
    return canonical(values, '$', true);
  }
  // for finite numbers, strings, booleans and null JSON.stringify writes exactly what canonicalJson does (-0 as 0)
  return JSON.stringify(values);
}

/** A value JSON cannot carry: an error, or (lenient) a tagged string. */
function notJson(value: unknown, path: string, lenient: boolean): string {
  if (!lenient) throw new NonJsonValueError(path, value);
  return JSON.stringify(`\u0000${typeof value}:${String(value)}`);
}

function canonical(value: unknown, path: string, lenient: boolean): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) return notJson(value, path, lenient);
      return Object.is(value, -0) ? '0' : JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          const item: unknown = value[i];
          out += item === undefined ? 'null' : canonical(item, `${path}[${i}]`, lenient);
        }
        return out + ']';
      }
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) return notJson(value, path, lenient);
        return JSON.stringify(value.toISOString());
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        if (!first) out += ',';
        first = false;
        out += JSON.stringify(k) + ':' + canonical(v, `${path}.${k}`, lenient);
      }
      return out + '}';
    }
    default:
      return notJson(value, path, lenient);
  }
}

// one-shot crypto.hash (Node >= 20.12) is ~3x faster than createHash on row-sized texts, and hashing runs per row
const sha256Hex: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'hex')
    : (text) => crypto.createHash('sha256').update(text).digest('hex');

/** A short stable hash of a canonical text (first 128 bits of SHA-256, hex). */
export function hashText(text: string): string {
  return sha256Hex(text).slice(0, 32);
}

const sha256Base64: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'base64')
    : (text) => crypto.createHash('sha256').update(text).digest('base64');

/**
 * A row fingerprint's hash: the first 96 bits of SHA-256 as 16 base64 characters. A changed row keeps its old
 * fingerprint with odds of 2^-96; the short text keeps the state store's key → fingerprint rows small, which is
 * what a diff of millions of unchanged rows spends its time reading.
 */
export function fingerprintHash(text: string): string {
  return sha256Base64(text).slice(0, 16);
}

/**
 * Canonical JSON: object keys sorted, -0 as 0, no undefined. Two rows with the same mapped values give the
 * same text whatever the column order, so the text is both the payload sent and the input of the row hash.
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
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new NonJsonValueError(path, value);
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
          out += item === undefined ? 'null' : canonicalJson(item, `${path}[${i}]`);
        }
        return out + ']';
      }
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw new NonJsonValueError(path, value);
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
        out += JSON.stringify(k) + ':' + canonicalJson(v, `${path}.${k}`);
      }
      return out + '}';
    }
    default:
      throw new NonJsonValueError(path, value);
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

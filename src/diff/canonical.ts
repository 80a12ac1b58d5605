/**
 * Canonical JSON: object keys sorted, -0 as 0, no undefined. Equal values give the same text whatever their key
 * order, so it is what a sync's mapping is identified by; fingerprintText encodes a row's values for its fingerprint.
 */
import * as crypto from 'node:crypto';
import xxhashWasm, { type XXHashAPI } from 'xxhash-wasm';

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
 * The fingerprint text of a list of values: an injective encoding, cheaper than JSON (a fingerprint is computed
 * for every row of every run). A string is its length and text (`s5:hello`), a finite number its shortest text
 * (`n1.5;`, -0 as 0), a boolean `t`/`f`, null `z`; anything else (NaN, ±Infinity, a bigint, a Date, an object or
 * array) its canonical JSON, lenient (a value JSON cannot carry is written as a tagged string, so the row still gets
 * a stable fingerprint of its own and its mapping rejects it), length-prefixed (`j7:[1,"a"]`). Distinct lists give
 * distinct texts: every value says where it ends.
 */
export function fingerprintText(values: readonly unknown[]): string {
  let out = '';
  for (const v of values) {
    if (typeof v === 'string') out += 's' + v.length + ':' + v;
    else if (v === null) out += 'z';
    else if (typeof v === 'number' && Number.isFinite(v)) out += 'n' + (v === 0 ? '0' : String(v)) + ';';
    else if (typeof v === 'boolean') out += v ? 't' : 'f';
    else {
      const json = canonical(v, '$', true);
      out += 'j' + json.length + ':' + json;
    }
  }
  return out;
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

let xxhash: XXHashAPI | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads the fingerprint hash (xxHash64 in WebAssembly: compiled asynchronously, once per process). Every entry
 * point that fingerprints rows awaits it first: the activities, the CLI's preview, the benchmark, the tests.
 */
export function loadFingerprintHash(): Promise<void> {
  loading ??= xxhashWasm().then((api) => {
    xxhash = api;
  });
  return loading;
}

/**
 * A row fingerprint's hash: xxHash64 of the text as 16 hex digits (as FARM_FINGERPRINT is to the warehouse-side
 * diff). A changed row keeps its old fingerprint with odds of 2^-64; hashing a row costs a fifth of SHA-256 through
 * node:crypto, and it is done for every row of a model on every run. Needs loadFingerprintHash() first.
 */
export function fingerprintHash(text: string): string {
  if (xxhash === undefined) {
    throw new Error('row fingerprints need the xxHash module: await loadFingerprintHash() before mapping rows');
  }
  return xxhash.h64ToString(text);
}

/**
 * Local validation of a mapped payload against the rules Amplitude enforces, so an invalid row is rejected with
 * a reason before it is staged instead of failing a request later. Reasons name the field and the problem.
 */
import { describeValue } from './coerce';

/** Amplitude caps every string value at this many characters. */
export const MAX_STRING_CHARS = 1024;
/** Deepest nesting of objects/arrays Amplitude accepts in properties. */
export const MAX_NESTING_DEPTH = 40;
/** Largest serialized payload (one event or identification) ampsync sends. */
export const MAX_PAYLOAD_BYTES = 1_000_000;
/** Latest valid `time`: 9999-12-31T23:59:59.999Z in ms. */
export const MAX_TIME_MS = 253_402_300_799_999;

/** Ids Amplitude rejects as placeholders (compared case-insensitively). */
export const PLACEHOLDER_IDS: ReadonlySet<string> = new Set([
  '',
  'anonymous',
  'nil',
  'none',
  'null',
  'n/a',
  'na',
  'undefined',
  'unknown',
  '00000000-0000-0000-0000-000000000000',
  '{}',
  'lmy47d',
  '0',
  '-1',
]);

const ID_FIELDS = ['user_id', 'device_id'] as const;

/** The sync options and payload kind validation depends on. */
export interface ValidateOptions {
  /** Shortest user_id/device_id accepted (Amplitude's `min_id_length`, 5 by default). */
  minIdLength: number;
  /** A string over 1024 characters: reject the row, or cut the string (ids are never cut). */
  longStrings: 'reject' | 'truncate';
  /** What the payload is: an event needs `event_type`; events and identifies need a user_id or device_id. */
  kind: 'event' | 'identify' | 'group';
}

/**
 * Checks a payload object before it is serialized; returns why Amplitude would reject it, or null.
 * With `longStrings: 'truncate'` long strings are cut in place.
 */
export function validatePayload(payload: Record<string, unknown>, options: ValidateOptions): string | null {
  if (options.kind !== 'group') {
    let hasId = false;
    for (const field of ID_FIELDS) {
      const id = payload[field];
      if (id === undefined) continue;
      hasId = true;
      const problem = idProblem(field, id, options.minIdLength);
      if (problem !== null) return problem;
    }
    if (!hasId) return 'neither user_id nor device_id is set';
  } else {
    const value = payload.group_value;
    if (typeof value !== 'string' || value === '') return 'group_value is empty';
    if (value.length > MAX_STRING_CHARS) return tooLong('group_value', value.length, ' (group values are never cut)');
  }
  if (options.kind === 'event') {
    const eventType = payload.event_type;
    if (eventType === undefined) return 'event_type is missing';
    if (eventType === '') return 'event_type is empty';
  }
  const time = payload.time;
  if (time !== undefined && !(Number.isInteger(time) && (time as number) >= 0 && (time as number) <= MAX_TIME_MS)) {
    return `time ${describeValue(time)} is not a valid instant (integer milliseconds between 1970 and year 9999)`;
  }
  const session = payload.session_id;
  if (session !== undefined && !(Number.isInteger(session) && (session as number) >= -1)) {
    return `session_id ${describeValue(session)} is not a session start time in milliseconds (or -1)`;
  }
  for (const field in payload) {
    const found = walk(payload, field, 1, options.longStrings);
    if (found !== null) return found.describe(pathOf(found.keys));
  }
  return null;
}

/** Rejects a serialized payload above MAX_PAYLOAD_BYTES; returns the reason or null. */
export function payloadSizeProblem(json: string): string | null {
  if (json.length * 3 <= MAX_PAYLOAD_BYTES) return null; // a UTF-16 unit takes at most 3 UTF-8 bytes
  const bytes = Buffer.byteLength(json, 'utf8');
  return bytes > MAX_PAYLOAD_BYTES ? `payload is ${bytes} bytes; at most ${MAX_PAYLOAD_BYTES} are sent per row` : null;
}

function idProblem(field: string, id: unknown, minIdLength: number): string | null {
  if (typeof id !== 'string') return `${field} is ${typeof id}, not text`;
  if (PLACEHOLDER_IDS.has(id.trim().toLowerCase()))
    return `${field} ${JSON.stringify(id)} is a placeholder Amplitude rejects`;
  if (id.length < minIdLength)
    return `${field} ${JSON.stringify(id)} is shorter than the minimum id length ${minIdLength}`;
  if (id.length > MAX_STRING_CHARS) return tooLong(field, id.length, ' (ids are never cut)');
  return null;
}

function tooLong(path: string, length: number, note = ''): string {
  return `${path} is ${length} characters; Amplitude accepts at most ${MAX_STRING_CHARS}${note}`;
}

/** A problem at a nested value; its `keys` are gathered while unwinding, so a path costs nothing until a row fails. */
interface Problem {
  keys: (string | number)[];
  describe: (path: string) => string;
}

function problem(key: string | number, describe: (path: string) => string): Problem {
  return { keys: [key], describe };
}

function pathOf(keys: (string | number)[]): string {
  let path = '';
  for (const key of keys) path += typeof key === 'number' ? `[${key}]` : path === '' ? key : `.${key}`;
  return path;
}

/** Checks `parent[key]` at container depth `depth`; cuts long strings when asked (never top-level ids). */
function walk(
  parent: Record<string, unknown> | unknown[],
  key: string | number,
  depth: number,
  longStrings: ValidateOptions['longStrings'],
): Problem | null {
  const value = (parent as Record<string | number, unknown>)[key];
  switch (typeof value) {
    case 'string': {
      if (value.length <= MAX_STRING_CHARS) return null;
      const isId = depth === 1 && ID_FIELDS.includes(key as (typeof ID_FIELDS)[number]);
      if (longStrings === 'reject' || isId) {
        const note = isId ? ' (ids are never cut)' : ' (options.longStrings: truncate cuts it)';
        return problem(key, (path) => tooLong(path, value.length, note));
      }
      (parent as Record<string | number, unknown>)[key] = truncate(value);
      return null;
    }
    case 'number':
      return Number.isFinite(value)
        ? null
        : problem(key, (path) => `${path} is ${String(value)}, which Amplitude cannot accept`);
    case 'object': {
      if (value === null) return null;
      if (value instanceof Date) {
        return Number.isNaN(value.getTime()) ? problem(key, (path) => `${path} is an invalid date`) : null;
      }
      if (depth > MAX_NESTING_DEPTH) {
        return problem(key, (path) => `${path} nests deeper than ${MAX_NESTING_DEPTH} levels`);
      }
      let found: Problem | null = null;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length && found === null; i++) found = walk(value, i, depth + 1, longStrings);
      } else {
        const obj = value as Record<string, unknown>;
        for (const child in obj) {
          found = walk(obj, child, depth + 1, longStrings);
          if (found !== null) break;
        }
      }
      found?.keys.unshift(key);
      return found;
    }
    case 'boolean':
    case 'undefined':
      return null;
    default:
      return problem(key, (path) => `${path} is a ${typeof value}, which JSON cannot carry`);
  }
}

/** Cuts to MAX_STRING_CHARS without splitting a surrogate pair. */
function truncate(text: string): string {
  const code = text.charCodeAt(MAX_STRING_CHARS - 1);
  const end = code >= 0xd800 && code <= 0xdbff ? MAX_STRING_CHARS - 1 : MAX_STRING_CHARS;
  return text.slice(0, end);
}

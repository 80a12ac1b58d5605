/**
 * Compiles a sync's mappings into a RowMapper: each model row becomes one Amplitude payload (a `$identify` event,
 * an identification, a group identification or an event) as JSON text, or a rejection with its reason.
 *
 *   const mapper = compileMapper(sync, { schema });
 *   const result = mapper.map({ user_id: 'u-123', plan: 'pro' }); // { ok: true, key: 'u-123', hash, payload }
 *
 * A row's hash is its fingerprint: a hash of the mapped columns' values and of the mapping, computed without
 * building the payload (the payload is a function of exactly those). The diff compares fingerprints, so a run
 * maps only the rows that changed; a change to the mapping changes every fingerprint, and every row is sent again.
 */
import type { Mapping, PropertyOperation, SpecialField, SyncConfig } from '../config/schema';
import { SPECIAL_FIELDS } from '../config/schema';
import { canonicalJson, fingerprintHash, fingerprintText, hashText } from '../diff/canonical';
import type {
  BuiltPayload,
  FingerprintResult,
  MapResult,
  RowMapper,
  RowRejection,
  SourceField,
  SourceRow,
  SourceValue,
} from '../sync/types';
import type { Coercer } from './coerce';
import { coercerFor, Invalid, toAddend, toGroupValue } from './coerce';
import { apiForSync } from './endpoints';
import { MappingError } from './errors';
import type { ValidateOptions } from './validate';
import { payloadSizeProblem, validatePayload } from './validate';

/** Top-level fields /identify accepts besides user_id, device_id, user_properties and groups. */
export const IDENTIFY_FIELDS: ReadonlySet<SpecialField> = new Set<SpecialField>([
  'user_id',
  'device_id',
  'app_version',
  'platform',
  'os_name',
  'os_version',
  'device_brand',
  'device_manufacturer',
  'device_model',
  'carrier',
  'country',
  'region',
  'city',
  'dma',
  'language',
  'paying',
  'start_version',
]);

/** Fields only /identify takes (an event or `$identify` event has no such field). */
const IDENTIFY_ONLY_FIELDS: ReadonlySet<string> = new Set(['paying', 'start_version']);

/** Operations Group Identify applies to group_properties. */
export const GROUP_OPERATIONS: ReadonlySet<PropertyOperation> = new Set<PropertyOperation>([
  '$set',
  '$setOnce',
  '$add',
  '$append',
  '$prepend',
  '$unset',
]);

/**
 * Goes into every fingerprint. Bump it when a change to the mapping or validation code changes the payload the
 * same row and config produce: the next run of every sync then sends every row again.
 */
const FINGERPRINT_VERSION = 1;

/** Value Amplitude's `$unset` takes. */
const UNSET_VALUE = '-';

/** What compileMapper may check the mappings against. */
export interface CompileMapperOptions {
  /** The model's result schema: when given, missing columns fail at compile time instead of on the first row. */
  schema?: SourceField[];
}

type KeyRejection = { ok: false } & RowRejection;

/** The wire shape a sync produces. */
/**
 * `synthetic-event`: a users/devices sync with `options.syntheticEvent` sends, per changed profile, an ordinary
 * event of that type whose `user_properties` (a plain dict, which Amplitude sets on the profile) make the new
 * values visible in charts at once — Amplitude shows identify-only updates only after the user's next event.
 */
type Shape = 'identify-event' | 'identification' | 'group' | 'event' | 'synthetic-event';

type Bag = 'user_properties' | 'event_properties' | 'group_properties';

interface ValueSource {
  column: string | undefined;
  constant: SourceValue;
  /** `column "x"` or `a constant`, for reasons. */
  what: string;
}

type Step =
  | ({ kind: 'field'; name: SpecialField; coerce: Coercer } & ValueSource)
  | ({ kind: 'property'; bag: Bag; name: string; op: PropertyOperation | undefined } & ValueSource)
  | ({ kind: 'group'; type: string } & ValueSource);

/**
 * What a payload is made of besides its row: the mapping, its options and the code's version. Equal identities
 * and equal rows make equal payloads; it prefixes every fingerprint, and names the mapping a warehouse snapshot
 * was delivered with.
 */
export function mappingIdentity(sync: SyncConfig): string {
  const { api, nullPolicy, longStrings, minIdLength, syntheticEvent } = sync.options;
  return hashText(
    canonicalJson({
      version: FINGERPRINT_VERSION,
      sync: sync.id,
      object: sync.object,
      key: sync.key,
      groupType: sync.groupType ?? null,
      mappings: sync.mappings,
      options: { api: api ?? null, nullPolicy, longStrings, minIdLength, syntheticEvent: syntheticEvent ?? null },
    }),
  );
}

/** Compiles `sync.mappings` for its object and API; throws MappingError for a mapping that cannot work. */
export function compileMapper(sync: SyncConfig, options: CompileMapperOptions = {}): RowMapper {
  const shape = shapeOf(sync);
  checkColumns(sync, options.schema);
  if (shape === 'synthetic-event' && sync.options.nullPolicy === 'unset') {
    throw new MappingError(
      'options.syntheticEvent sends user properties as a plain dict, which cannot $unset: use nullPolicy "skip"',
      sync.id,
    );
  }
  const steps = sync.mappings.map((m) => compileStep(sync, shape, m));
  // the key, then each mapped column once: what a row's fingerprint is computed over, in this order
  const columns = modelColumns(sync);
  const unsetNulls = sync.options.nullPolicy === 'unset';
  const validation: ValidateOptions = {
    minIdLength: sync.options.minIdLength,
    longStrings: sync.options.longStrings,
    kind: shape === 'event' || shape === 'synthetic-event' ? 'event' : shape === 'group' ? 'group' : 'identify',
  };

  const reject = (key: string | null, reason: string): KeyRejection => ({
    ok: false,
    key,
    reason,
    stage: 'validation',
  });
  /** The row's key as text, or why it has none. */
  const keyOf = (row: SourceRow): string | KeyRejection => {
    const rawKey = row[sync.key];
    if (rawKey === undefined) throw missingColumns(sync, columns, Object.keys(row));
    if (rawKey === null) return reject(null, `NULL value in key column "${sync.key}"`);
    if (typeof rawKey === 'object') {
      return reject(null, `key column "${sync.key}" holds ${Array.isArray(rawKey) ? 'an array' : 'an object'}`);
    }
    return String(rawKey);
  };

  const mappingPrefix = `${mappingIdentity(sync)}\u001f`;
  const values: SourceValue[] = new Array<SourceValue>(columns.length);
  const fingerprintOf = (row: SourceRow): string => {
    for (let i = 0; i < columns.length; i++) {
      const value = row[columns[i] as string];
      if (value === undefined) throw missingColumns(sync, columns, Object.keys(row));
      values[i] = value;
    }
    return fingerprintHash(mappingPrefix + fingerprintText(values));
  };

  return {
    fingerprint(row: SourceRow): FingerprintResult {
      const key = keyOf(row);
      if (typeof key !== 'string') return key;
      return { ok: true, key, hash: fingerprintOf(row) };
    },

    map(row: SourceRow): MapResult {
      const key = keyOf(row);
      if (typeof key !== 'string') return key;
      const hash = fingerprintOf(row);
      const built = buildFor(row, key, hash);
      return built.ok ? { ok: true, key, hash, payload: built.payload } : built;
    },

    identify(row: SourceRow): FingerprintResult {
      const key = keyOf(row);
      return typeof key === 'string' ? { ok: true, key, hash: '' } : key;
    },

    build(row: SourceRow, fingerprint?: string): BuiltPayload {
      const key = keyOf(row);
      if (typeof key !== 'string') return key;
      if (fingerprint !== undefined) return buildFor(row, key, fingerprint);
      const hash = fingerprintOf(row);
      const built = buildFor(row, key, hash);
      return built.ok ? { ...built, hash } : built;
    },
  };

  function buildFor(row: SourceRow, key: string, fingerprint: string | undefined): BuiltPayload {
    const out: Record<string, unknown> = {};
    if (shape === 'identify-event') out.event_type = '$identify';
    if (shape === 'synthetic-event') {
      out.event_type = sync.options.syntheticEvent;
      out.session_id = -1;
    }
    if (shape === 'group') {
      out.group_type = sync.groupType;
      out.group_value = key;
    }
    for (const step of steps) {
      const value = step.column === undefined ? step.constant : row[step.column];
      if (value === undefined) throw missingColumns(sync, columns, Object.keys(row));
      const problem = apply(out, step, value, unsetNulls);
      if (problem !== null) return reject(key, problem);
    }

    const problem = validatePayload(out, validation);
    if (problem !== null) return reject(key, problem);
    if (shape === 'event') out.insert_id = hashText(`${sync.id}\u001f${key}`);
    // A changed profile gets a new insert_id (its fingerprint changed: not deduped away); a retried one keeps it.
    else if (shape === 'identify-event' || shape === 'synthetic-event') {
      out.insert_id = hashText(`${sync.id}\u001f${key}\u001f${fingerprint ?? fingerprintOf(row)}`);
    }
    // validatePayload let through only what JSON carries, and the object is built in the same order for the same
    // row and mapping: the text is deterministic without sorting
    const payload = JSON.stringify(out);
    const tooLarge = payloadSizeProblem(payload);
    if (tooLarge !== null) return reject(key, tooLarge);
    return { ok: true, payload };
  }
}

function shapeOf(sync: SyncConfig): Shape {
  switch (sync.object) {
    case 'groups':
      return 'group';
    case 'events':
      return 'event';
    default:
      if (sync.options.syntheticEvent !== undefined) {
        if (apiForSync(sync) === 'identify') {
          throw new MappingError('options.syntheticEvent sends events: use options.api batch, not identify', sync.id);
        }
        return 'synthetic-event';
      }
      return apiForSync(sync) === 'identify' ? 'identification' : 'identify-event';
  }
}

/**
 * The model columns a sync reads: its key, then each mapped column once. The extract selects these alone, so
 * the model's other columns are neither read out of BigQuery (nor billed) nor fingerprinted by a warehouse diff.
 */
export function modelColumns(sync: SyncConfig): string[] {
  return [...new Set([sync.key, ...sync.mappings.flatMap((m) => (m.from === undefined ? [] : [m.from]))])];
}

function checkColumns(sync: SyncConfig, schema: SourceField[] | undefined): void {
  if (schema === undefined) return;
  const available = schema.map((f) => f.name);
  const missing = modelColumns(sync).filter((c) => !available.includes(c));
  if (missing.length > 0) throw missingColumnsError(sync, missing, available);
}

function missingColumns(sync: SyncConfig, columns: string[], available: string[]): MappingError {
  const missing = [...new Set(columns.filter((c) => !available.includes(c)))];
  return missingColumnsError(sync, missing, available);
}

function missingColumnsError(sync: SyncConfig, missing: string[], available: string[]): MappingError {
  const names = missing.map((c) => `"${c}"`).join(', ');
  const role =
    missing.length === 1 && missing[0] === sync.key ? 'key column' : missing.length > 1 ? 'columns' : 'column';
  return new MappingError(
    `${role} ${names} not in the model (columns: ${available.length > 0 ? available.join(', ') : 'none'})`,
    sync.id,
  );
}

function compileStep(sync: SyncConfig, shape: Shape, m: Mapping): Step {
  const source: ValueSource = {
    column: m.from,
    constant: (m.constant ?? null) as SourceValue,
    what: m.from === undefined ? 'a constant' : `column "${m.from}"`,
  };
  const fail = (message: string): never => {
    throw new MappingError(`mapping to "${m.to}": ${message}`, sync.id);
  };
  if ((SPECIAL_FIELDS as readonly string[]).includes(m.to)) {
    const name = m.to as SpecialField;
    if (name === 'event_type' && shape !== 'event') {
      fail(`a ${sync.object} sync sends identifies, whose event_type is fixed; map event_type in an events sync`);
    }
    if (shape === 'identification' && !IDENTIFY_FIELDS.has(name)) {
      fail(`/identify does not take this field (it takes ${[...IDENTIFY_FIELDS].join(', ')}); use options.api: batch`);
    }
    if (shape !== 'identification' && IDENTIFY_ONLY_FIELDS.has(name)) {
      fail(`only /identify takes this field; set options.api: identify on a users or devices sync`);
    }
    return { kind: 'field', name, coerce: coercerFor(name), ...source };
  }
  const dot = m.to.indexOf('.');
  const head = m.to.slice(0, dot);
  const name = m.to.slice(dot + 1);
  if (head === 'groups') {
    if (shape === 'synthetic-event') {
      fail(
        'groups on an ordinary event apply to that event only; link users to groups in a sync without syntheticEvent',
      );
    }
    return { kind: 'group', type: name, ...source };
  }
  const bag = head as Bag;
  if (bag === 'user_properties' && (shape === 'event' || shape === 'synthetic-event')) {
    if (m.op !== undefined && m.op !== '$set') {
      fail(
        shape === 'event'
          ? `"${m.op}" applies only on identifies; an event's user_properties are set as given`
          : `"${m.op}" applies only on identifies; with options.syntheticEvent user properties are set as given`,
      );
    }
    return { kind: 'property', bag, name, op: undefined, ...source };
  }
  if (bag === 'event_properties') return { kind: 'property', bag, name, op: undefined, ...source };
  const op = m.op ?? '$set';
  if (bag === 'group_properties' && !GROUP_OPERATIONS.has(op)) {
    fail(`Group Identify does not apply "${op}" (it applies ${[...GROUP_OPERATIONS].join(', ')})`);
  }
  return { kind: 'property', bag, name, op, ...source };
}

/** Writes one mapped value into `out`; returns why the row is rejected, or null. */
function apply(out: Record<string, unknown>, step: Step, value: SourceValue, unsetNulls: boolean): string | null {
  switch (step.kind) {
    case 'field': {
      if (value === null) return null;
      const coerced = step.coerce(value);
      if (coerced instanceof Invalid) return `${step.name} from ${step.what}: ${coerced.problem}`;
      out[step.name] = coerced;
      return null;
    }
    case 'group': {
      if (value === null) return null;
      const coerced = toGroupValue(value);
      if (coerced instanceof Invalid) return `groups.${step.type} from ${step.what}: ${coerced.problem}`;
      if (Array.isArray(coerced) && coerced.length === 0) return null;
      bagOf(out, 'groups')[step.type] = coerced;
      return null;
    }
    case 'property': {
      const op = step.op;
      if (op === undefined) {
        // Plain dicts (events): a NULL is left out whatever the policy, as there is nothing to unset.
        if (value !== null) bagOf(out, step.bag)[step.name] = value;
        return null;
      }
      // Under nullPolicy "unset" a NULL $set becomes $unset; other operations with a NULL operand do nothing.
      if (op === '$unset' || (value === null && unsetNulls && op === '$set')) {
        bagOf(bagOf(out, step.bag), '$unset')[step.name] = UNSET_VALUE;
        return null;
      }
      if (value === null) return null;
      let operand: unknown = value;
      if (op === '$add') {
        operand = toAddend(value);
        if (operand instanceof Invalid) return `${step.bag}.${step.name} from ${step.what}: ${operand.problem}`;
      }
      bagOf(bagOf(out, step.bag), op)[step.name] = operand;
      return null;
    }
  }
}

function bagOf(parent: Record<string, unknown>, name: string): Record<string, unknown> {
  let bag = parent[name] as Record<string, unknown> | undefined;
  if (bag === undefined) {
    bag = {};
    parent[name] = bag;
  }
  return bag;
}

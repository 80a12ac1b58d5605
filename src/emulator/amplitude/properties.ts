/**
 * User and group property operations as Amplitude applies them: parsing (with the documented
 * validation rules) and application in the server's fixed order.
 */
import { MAX_GROUP_TYPES_PER_EVENT, MAX_GROUP_VALUES_PER_TYPE } from './limits';

/** A property dict: JSON values keyed by property name. */
export type Properties = Record<string, unknown>;

/** Group memberships: group type → group values. */
export type GroupMembership = Record<string, string[]>;

/** The property operations Amplitude documents, in the order its server applies them. */
export const USER_OPERATIONS = [
  '$clearAll',
  '$unset',
  '$set',
  '$setOnce',
  '$add',
  '$append',
  '$prepend',
  '$preInsert',
  '$postInsert',
  '$remove',
] as const;

/** One property operation name. */
export type Operation = (typeof USER_OPERATIONS)[number];

const ALL_OPERATIONS: ReadonlySet<string> = new Set(USER_OPERATIONS);

/** Operations allowed in `user_properties` of an identify. */
export const USER_OPERATION_SET: ReadonlySet<Operation> = new Set(USER_OPERATIONS);

/** Operations allowed in `group_properties` of a group identify. */
export const GROUP_OPERATION_SET: ReadonlySet<Operation> = new Set<Operation>([
  '$set',
  '$setOnce',
  '$add',
  '$append',
  '$prepend',
  '$unset',
]);

/** A parsed, valid property update: the steps in application order. */
export interface PropertyUpdate {
  readonly clearAll: boolean;
  readonly steps: ReadonlyArray<readonly [Operation, Properties]>;
  /** Distinct properties the update touches. */
  readonly propertyCount: number;
}

/** True for a JSON object (not an array, not null). */
export function isPlainObject(value: unknown): value is Properties {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNumeric(value: unknown): boolean {
  if (typeof value === 'number') return Number.isFinite(value);
  return typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value));
}

/**
 * Parses a property dict that may hold operations. A dict without operators is a `$set`.
 * Returns undefined when Amplitude would reject it: operators mixed with bare keys, an operator
 * not in `allowed`, an operation value that is not a dict, one property in two operations,
 * or a non-numeric `$add`.
 */
export function parsePropertyUpdate(dict: Properties, allowed: ReadonlySet<Operation>): PropertyUpdate | undefined {
  const keys = Object.keys(dict);
  let operators = 0;
  for (const key of keys) if (ALL_OPERATIONS.has(key)) operators++;
  if (operators === 0) {
    return allowed.has('$set') ? { clearAll: false, steps: [['$set', dict]], propertyCount: keys.length } : undefined;
  }
  if (operators !== keys.length) return undefined;
  const seen = new Set<string>();
  const steps: Array<readonly [Operation, Properties]> = [];
  let clearAll = false;
  for (const op of USER_OPERATIONS) {
    if (!(op in dict)) continue;
    if (!allowed.has(op)) return undefined;
    if (op === '$clearAll') {
      clearAll = true;
      continue;
    }
    const value = dict[op];
    if (!isPlainObject(value)) return undefined;
    for (const [property, operand] of Object.entries(value)) {
      // one property may appear in one operation per identification
      if (seen.has(property)) return undefined;
      seen.add(property);
      if (op === '$add' && !isNumeric(operand)) return undefined;
    }
    steps.push([op, value]);
  }
  return { clearAll, steps, propertyCount: seen.size };
}

/** True when a plain dict (as on an ordinary event) uses any operator key. */
export function hasOperators(dict: Properties): boolean {
  for (const key in dict) if (ALL_OPERATIONS.has(key)) return true;
  return false;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

function asList(value: unknown): unknown[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value.slice() : [value];
}

function includes(list: readonly unknown[], value: unknown): boolean {
  for (const item of list) if (sameValue(item, value)) return true;
  return false;
}

/** Values not yet in `list` (nor repeated among themselves). */
function missingFrom(list: readonly unknown[], values: readonly unknown[]): unknown[] {
  const added: unknown[] = [];
  for (const value of values) if (!includes(list, value) && !includes(added, value)) added.push(value);
  return added;
}

/** Applies one update to `current`; returns the resulting dict (a new one after `$clearAll`). */
export function applyPropertyUpdate(current: Properties, update: PropertyUpdate): Properties {
  const props = update.clearAll ? {} : current;
  for (const [op, operands] of update.steps) {
    for (const [name, operand] of Object.entries(operands)) {
      // a "__proto__" property would replace the dict's prototype instead of being stored
      if (name === '__proto__') continue;
      const existing = props[name];
      switch (op) {
        case '$clearAll':
          break;
        case '$unset':
          delete props[name];
          break;
        case '$set':
          props[name] = operand;
          break;
        case '$setOnce':
          if (existing === undefined) props[name] = operand;
          break;
        case '$add': {
          // a missing or non-numeric current value counts as 0
          const base = isNumeric(existing) ? Number(existing) : 0;
          props[name] = base + Number(operand);
          break;
        }
        case '$append':
          props[name] = [...asList(existing), ...asList(operand)];
          break;
        case '$prepend':
          props[name] = [...asList(operand), ...asList(existing)];
          break;
        case '$preInsert': {
          const list = asList(existing);
          props[name] = [...missingFrom(list, asList(operand)), ...list];
          break;
        }
        case '$postInsert': {
          const list = asList(existing);
          props[name] = [...list, ...missingFrom(list, asList(operand))];
          break;
        }
        case '$remove': {
          if (existing === undefined) break;
          const removed = asList(operand);
          if (Array.isArray(existing)) props[name] = existing.filter((item) => !includes(removed, item));
          else if (includes(removed, existing)) delete props[name];
          break;
        }
      }
    }
  }
  return props;
}

/**
 * Parses `groups` (`{type: value | [values]}`, ≤ 5 types, ≤ 10 values each; numbers become strings).
 * Returns undefined when invalid.
 */
export function parseGroups(value: unknown): GroupMembership | undefined {
  if (!isPlainObject(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length > MAX_GROUP_TYPES_PER_EVENT) return undefined;
  const groups: GroupMembership = {};
  for (const type of keys) {
    const raw = value[type];
    const list = Array.isArray(raw) ? raw : [raw];
    if (list.length > MAX_GROUP_VALUES_PER_TYPE) return undefined;
    const names: string[] = [];
    for (const item of list) {
      if (typeof item === 'string' && item !== '') names.push(item);
      else if (typeof item === 'number' && Number.isFinite(item)) names.push(String(item));
      else return undefined;
    }
    groups[type] = names;
  }
  return groups;
}

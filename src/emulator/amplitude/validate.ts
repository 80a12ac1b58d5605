/**
 * Per-item validation of HTTP V2 / Batch events and Identify / Group Identify identifications,
 * reporting problems as Amplitude's 400 index maps. Also truncates long strings in place.
 */
import {
  MAX_GROUP_PROPERTIES_PER_IDENTIFICATION,
  MAX_PROPERTY_NESTING_DEPTH,
  MAX_STRING_LENGTH_CHARS,
  PLACEHOLDER_IDS,
} from './limits';
import type { GroupMembership, Properties, PropertyUpdate } from './properties';
import {
  GROUP_OPERATION_SET,
  USER_OPERATION_SET,
  hasOperators,
  isPlainObject,
  parseGroups,
  parsePropertyUpdate,
} from './properties';

/** Field name → indexes of the items with that problem, as in Amplitude's 400 bodies. */
export type IndexMap = Record<string, number[]>;

/** The problems found in one request's items. */
export class ItemProblems {
  readonly invalidFields: IndexMap = {};
  readonly missingFields: IndexMap = {};
  readonly invalidIdLengths: IndexMap = {};
  private found = false;

  /** Records that item `index` has a problem with `field`. */
  add(map: IndexMap, field: string, index: number): void {
    this.found = true;
    const list = map[field];
    if (list === undefined) map[field] = [index];
    else if (list[list.length - 1] !== index) list.push(index);
  }

  /** True when any item has a problem. */
  get any(): boolean {
    return this.found;
  }
}

/** What an item does once ingested. */
export type ItemKind = 'event' | 'identify' | 'groupidentify';

/** A valid item with what the store needs, parsed once. */
export interface ValidItem {
  readonly kind: ItemKind;
  /** The event or identification as received, long strings truncated. */
  readonly record: Properties;
  readonly userId: string | undefined;
  readonly deviceId: string | undefined;
  /** User property update: operations of an identify, `$set` of an ordinary event's plain dict. */
  readonly userUpdate: PropertyUpdate | undefined;
  readonly groupUpdate: PropertyUpdate | undefined;
  readonly groups: GroupMembership | undefined;
}

const PROPERTY_FIELDS: ReadonlySet<string> = new Set(['event_properties', 'user_properties', 'group_properties']);
const INTEGER_FIELDS = ['time', 'session_id', 'event_id', 'quantity'] as const;
const NUMBER_FIELDS = ['price', 'revenue', 'location_lat', 'location_lng'] as const;

/** Truncates strings nested in `value`; returns its depth in containers (stops counting past the limit). */
function truncateNested(value: object, level: number): number {
  if (level > MAX_PROPERTY_NESTING_DEPTH + 1) return level;
  let deepest = level;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (typeof item === 'string') {
        if (item.length > MAX_STRING_LENGTH_CHARS) value[i] = item.slice(0, MAX_STRING_LENGTH_CHARS);
      } else if (typeof item === 'object' && item !== null) {
        deepest = Math.max(deepest, truncateNested(item, level + 1));
      }
    }
    return deepest;
  }
  const dict = value as Properties;
  for (const key in dict) {
    const item = dict[key];
    if (typeof item === 'string') {
      if (item.length > MAX_STRING_LENGTH_CHARS) dict[key] = item.slice(0, MAX_STRING_LENGTH_CHARS);
    } else if (typeof item === 'object' && item !== null) {
      deepest = Math.max(deepest, truncateNested(item, level + 1));
    }
  }
  return deepest;
}

/**
 * Truncates every string of the record to 1024 characters (Amplitude truncates, it does not reject)
 * and reports property dicts nested deeper than 40 levels below the dict itself.
 */
function truncateRecord(record: Properties, index: number, problems: ItemProblems): boolean {
  let ok = true;
  for (const key in record) {
    const value = record[key];
    if (typeof value === 'string') {
      if (value.length > MAX_STRING_LENGTH_CHARS) record[key] = value.slice(0, MAX_STRING_LENGTH_CHARS);
    } else if (typeof value === 'object' && value !== null) {
      const depth = truncateNested(value, 0);
      if (depth > MAX_PROPERTY_NESTING_DEPTH && PROPERTY_FIELDS.has(key)) {
        problems.add(problems.invalidFields, key, index);
        ok = false;
      }
    }
  }
  return ok;
}

/** Checks one id field; returns the id (numbers become strings), undefined when absent, null when bad. */
function checkId(
  record: Properties,
  field: 'user_id' | 'device_id',
  minIdLength: number,
  index: number,
  problems: ItemProblems,
): string | undefined | null {
  const raw = record[field];
  if (raw === undefined || raw === null) return undefined;
  let id: string;
  if (typeof raw === 'string') id = raw;
  else if (typeof raw === 'number' && Number.isFinite(raw)) {
    id = String(raw);
    record[field] = id;
  } else {
    problems.add(problems.invalidFields, field, index);
    return null;
  }
  if (PLACEHOLDER_IDS.has(id.toLowerCase())) {
    problems.add(problems.invalidFields, field, index);
    return null;
  }
  if (id.length < minIdLength) {
    problems.add(problems.invalidIdLengths, field, index);
    return null;
  }
  return id;
}

interface Ids {
  ok: boolean;
  userId: string | undefined;
  deviceId: string | undefined;
}

function checkIds(record: Properties, minIdLength: number, index: number, problems: ItemProblems): Ids {
  const userId = checkId(record, 'user_id', minIdLength, index, problems);
  const deviceId = checkId(record, 'device_id', minIdLength, index, problems);
  if (userId === null || deviceId === null) return { ok: false, userId: undefined, deviceId: undefined };
  if (userId === undefined && deviceId === undefined) {
    // Amplitude fills a missing device_id from user_id, so device_id is the field reported missing
    problems.add(problems.missingFields, 'device_id', index);
    return { ok: false, userId, deviceId };
  }
  return { ok: true, userId, deviceId };
}

function isAbsent(value: unknown): value is undefined | null {
  return value === undefined || value === null;
}

function checkGroups(record: Properties, index: number, problems: ItemProblems): GroupMembership | undefined | null {
  if (isAbsent(record.groups)) return undefined;
  const groups = parseGroups(record.groups);
  if (groups === undefined) {
    problems.add(problems.invalidFields, 'groups', index);
    return null;
  }
  return groups;
}

function checkGroupProperties(
  dict: unknown,
  field: string,
  index: number,
  problems: ItemProblems,
): PropertyUpdate | undefined | null {
  if (isAbsent(dict)) return undefined;
  const update = isPlainObject(dict) ? parsePropertyUpdate(dict, GROUP_OPERATION_SET) : undefined;
  if (update === undefined || update.propertyCount > MAX_GROUP_PROPERTIES_PER_IDENTIFICATION) {
    problems.add(problems.invalidFields, field, index);
    return null;
  }
  return update;
}

/** Validates one HTTP V2 / Batch event. */
function validateEvent(raw: unknown, index: number, minIdLength: number, problems: ItemProblems): ValidItem | null {
  if (!isPlainObject(raw)) {
    problems.add(problems.invalidFields, 'event', index);
    return null;
  }
  const event = raw;
  let ok = truncateRecord(event, index, problems);
  const type = event.event_type;
  if (isAbsent(type) || type === '') {
    problems.add(problems.missingFields, 'event_type', index);
    ok = false;
  } else if (typeof type !== 'string') {
    problems.add(problems.invalidFields, 'event_type', index);
    ok = false;
  }
  const ids = checkIds(event, minIdLength, index, problems);
  ok &&= ids.ok;
  for (const field of INTEGER_FIELDS) {
    const value = event[field];
    if (!isAbsent(value) && !Number.isSafeInteger(value)) {
      problems.add(problems.invalidFields, field, index);
      ok = false;
    }
  }
  for (const field of NUMBER_FIELDS) {
    const value = event[field];
    if (!isAbsent(value) && (typeof value !== 'number' || !Number.isFinite(value))) {
      problems.add(problems.invalidFields, field, index);
      ok = false;
    }
  }
  if (!isAbsent(event.insert_id) && typeof event.insert_id !== 'string') {
    problems.add(problems.invalidFields, 'insert_id', index);
    ok = false;
  }
  if (!isAbsent(event.event_properties) && !isPlainObject(event.event_properties)) {
    problems.add(problems.invalidFields, 'event_properties', index);
    ok = false;
  }

  let kind: ItemKind = 'event';
  let userUpdate: PropertyUpdate | undefined;
  let groupUpdate: PropertyUpdate | undefined;
  const userProperties = event.user_properties;
  if (type === '$identify') {
    kind = 'identify';
    if (!isAbsent(userProperties)) {
      userUpdate = isPlainObject(userProperties) ? parsePropertyUpdate(userProperties, USER_OPERATION_SET) : undefined;
      if (userUpdate === undefined) {
        problems.add(problems.invalidFields, 'user_properties', index);
        ok = false;
      }
    }
  } else if (!isAbsent(userProperties)) {
    // property operations only apply on "$identify": elsewhere user_properties is a plain dict that is $set
    if (!isPlainObject(userProperties) || hasOperators(userProperties)) {
      problems.add(problems.invalidFields, 'user_properties', index);
      ok = false;
    } else if (type !== '$groupidentify' && event.$skip_user_properties_sync !== true) {
      userUpdate = { clearAll: false, steps: [['$set', userProperties]], propertyCount: 0 };
    }
  }

  const groups = checkGroups(event, index, problems);
  if (groups === null) ok = false;
  if (type === '$groupidentify') {
    kind = 'groupidentify';
    if (groups !== null && (groups === undefined || Object.keys(groups).length === 0)) {
      problems.add(problems.missingFields, 'groups', index);
      ok = false;
    }
    const update = checkGroupProperties(event.group_properties, 'group_properties', index, problems);
    if (update === null) ok = false;
    else groupUpdate = update;
  } else if (!isAbsent(event.group_properties)) {
    // group_properties only take effect with event_type "$groupidentify"
    problems.add(problems.invalidFields, 'group_properties', index);
    ok = false;
  }
  if (!ok) return null;
  return {
    kind,
    record: event,
    userId: ids.userId,
    deviceId: ids.deviceId,
    userUpdate,
    groupUpdate,
    groups: groups ?? undefined,
  };
}

/** Validates the events of an HTTP V2 / Batch request; `items` holds the valid ones. */
export function validateEvents(
  events: readonly unknown[],
  minIdLength: number,
): { items: ValidItem[]; problems: ItemProblems } {
  const problems = new ItemProblems();
  const items: ValidItem[] = [];
  for (let i = 0; i < events.length; i++) {
    const item = validateEvent(events[i], i, minIdLength, problems);
    if (item !== null) items.push(item);
  }
  return { items, problems };
}

/** Validates the identifications of an Identify request. */
export function validateIdentifications(
  identifications: readonly unknown[],
  minIdLength: number,
): { items: ValidItem[]; problems: ItemProblems } {
  const problems = new ItemProblems();
  const items: ValidItem[] = [];
  identifications.forEach((raw, index) => {
    if (!isPlainObject(raw)) {
      problems.add(problems.invalidFields, 'identification', index);
      return;
    }
    let ok = truncateRecord(raw, index, problems);
    const ids = checkIds(raw, minIdLength, index, problems);
    ok &&= ids.ok;
    let userUpdate: PropertyUpdate | undefined;
    if (!isAbsent(raw.user_properties)) {
      userUpdate = isPlainObject(raw.user_properties)
        ? parsePropertyUpdate(raw.user_properties, USER_OPERATION_SET)
        : undefined;
      if (userUpdate === undefined) {
        problems.add(problems.invalidFields, 'user_properties', index);
        ok = false;
      }
    }
    const groups = checkGroups(raw, index, problems);
    if (groups === null || !ok) return;
    items.push({
      kind: 'identify',
      record: raw,
      userId: ids.userId,
      deviceId: ids.deviceId,
      userUpdate,
      groupUpdate: undefined,
      groups,
    });
  });
  return { items, problems };
}

/** Validates the identifications of a Group Identify request. */
export function validateGroupIdentifications(identifications: readonly unknown[]): {
  items: ValidItem[];
  problems: ItemProblems;
} {
  const problems = new ItemProblems();
  const items: ValidItem[] = [];
  identifications.forEach((raw, index) => {
    if (!isPlainObject(raw)) {
      problems.add(problems.invalidFields, 'identification', index);
      return;
    }
    let ok = truncateRecord(raw, index, problems);
    const type = raw.group_type;
    const value = typeof raw.group_value === 'number' ? String(raw.group_value) : raw.group_value;
    for (const [field, given] of [
      ['group_type', type],
      ['group_value', value],
    ] as const) {
      if (isAbsent(given) || given === '') {
        problems.add(problems.missingFields, field, index);
        ok = false;
      } else if (typeof given !== 'string') {
        problems.add(problems.invalidFields, field, index);
        ok = false;
      }
    }
    const update = checkGroupProperties(raw.group_properties, 'group_properties', index, problems);
    if (update === null || !ok || typeof type !== 'string' || typeof value !== 'string') return;
    items.push({
      kind: 'groupidentify',
      record: raw,
      userId: undefined,
      deviceId: undefined,
      userUpdate: undefined,
      groupUpdate: update,
      groups: { [type]: [value] },
    });
  });
  return { items, problems };
}

/**
 * What the emulator keeps per project (per API key): ingested events, insert_id dedup keys,
 * user profiles, group profiles and user-to-group memberships.
 */
import { DEDUP_WINDOW_MS } from './limits';
import type { GroupMembership, Properties } from './properties';
import { applyPropertyUpdate } from './properties';
import type { ValidItem } from './validate';

/**
 * An ingested event: the fields as received (long strings truncated) plus `server_upload_time`
 * (ms since the epoch), as Amplitude's own exports carry it.
 */
export type StoredEvent = Readonly<Properties> & { readonly server_upload_time: number };

/** A user profile (one Amplitude ID). */
export interface UserProfile {
  user_id: string | null;
  /** The last device seen for this user. */
  device_id: string | null;
  user_properties: Properties;
  /** Permanent group memberships, set by `groups` on an identify. */
  groups: GroupMembership;
}

/** A group profile. */
export interface GroupProfile {
  group_type: string;
  group_value: string;
  group_properties: Properties;
}

/** Slots of a new dedup table (grows by doubling, kept at most half full). */
const INITIAL_DEDUP_SLOTS = 1 << 12;

/** The 64-bit hash of the last `hashKey` call, as two unsigned 32-bit halves. */
let hashHigh = 0;
let hashLow = 0;

function mixPart(part: string): void {
  let h1 = hashHigh;
  let h2 = hashLow;
  for (let i = 0; i < part.length; i++) {
    const c = part.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  // a separator, so ("ab", "c") and ("a", "bc") differ
  hashHigh = Math.imul(h1 ^ 0x1f, 2654435761);
  hashLow = Math.imul(h2 ^ 0x1f, 1597334677);
}

/** Hashes the parts (cyrb53 widened to 64 bits) into hashHigh/hashLow without concatenating them. */
function hashKey(seed: number, first: string, second: string, third?: string): void {
  hashHigh = 0xdeadbeef ^ seed;
  hashLow = 0x41c6ce57 ^ seed;
  mixPart(first);
  mixPart(second);
  if (third !== undefined) mixPart(third);
  let h1 = hashHigh;
  let h2 = hashLow;
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  hashHigh = h1 >>> 0;
  // (0, 0) marks an empty slot
  hashLow = h2 >>> 0 || 1;
}

/**
 * Dedup keys as 64-bit hashes in an open-addressing table with the time each was first seen: 32 bytes
 * per key, so millions of events stay compact. A false duplicate needs a 64-bit collision (~3 in 10^8
 * at 10^6 keys).
 */
class DedupTable {
  private size = 0;
  private high = new Uint32Array(INITIAL_DEDUP_SLOTS);
  private low = new Uint32Array(INITIAL_DEDUP_SLOTS);
  private firstSeen = new Float64Array(INITIAL_DEDUP_SLOTS);

  private slotOf(high: number, low: number): number {
    const mask = this.high.length - 1;
    let slot = high & mask;
    for (;;) {
      const h = this.high[slot]!;
      const l = this.low[slot]!;
      if ((h === 0 && l === 0) || (h === high && l === low)) return slot;
      slot = (slot + 1) & mask;
    }
  }

  /** True when the last hashed key was first seen less than 7 days before `now`. */
  seenRecently(now: number): boolean {
    const slot = this.slotOf(hashHigh, hashLow);
    return this.low[slot] !== 0 && now - this.firstSeen[slot]! < DEDUP_WINDOW_MS;
  }

  /** Remembers the last hashed key as first seen at `now`. */
  remember(now: number): void {
    const slot = this.slotOf(hashHigh, hashLow);
    const fresh = this.low[slot] === 0;
    this.high[slot] = hashHigh;
    this.low[slot] = hashLow;
    this.firstSeen[slot] = now;
    if (fresh && ++this.size * 2 > this.high.length) this.grow();
  }

  private grow(): void {
    const { high, low, firstSeen } = this;
    this.high = new Uint32Array(high.length * 2);
    this.low = new Uint32Array(high.length * 2);
    this.firstSeen = new Float64Array(high.length * 2);
    for (let i = 0; i < high.length; i++) {
      if (low[i] === 0) continue;
      const slot = this.slotOf(high[i]!, low[i]!);
      this.high[slot] = high[i]!;
      this.low[slot] = low[i]!;
      this.firstSeen[slot] = firstSeen[i]!;
    }
  }
}

const INSERT_ID_SEED = 1;
const EVENT_ID_SEED = 2;
const USER_SCOPE_SEED = 4;

function groupKey(type: string, value: string): string {
  return `${type}\u0000${value}`;
}

/** One project's state. */
export class ProjectStore {
  /** Ingested events in arrival order, when events are kept. */
  readonly events: StoredEvent[] = [];
  eventCount = 0;
  duplicatesDropped = 0;
  private readonly seen = new DedupTable();
  private readonly profiles = new Map<string, UserProfile>();
  /** device_id → the user_id it was last seen with. */
  private readonly deviceOwners = new Map<string, string>();
  private readonly groupProfiles = new Map<string, GroupProfile>();

  constructor(
    readonly apiKey: string,
    private readonly keepProfiles: boolean,
  ) {}

  /** True (and counted) when Amplitude would drop this event as a duplicate; otherwise remembers its keys. */
  isDuplicate(item: ValidItem, now: number): boolean {
    const event = item.record;
    const insertId = typeof event.insert_id === 'string' && event.insert_id !== '' ? event.insert_id : undefined;
    // Amplitude's second rule: same event_id + time + device_id within 7 days
    const byEventId =
      item.deviceId !== undefined && typeof event.event_id === 'number' && typeof event.time === 'number';
    // scoped by device_id, or by user_id (seeded apart) when there is none
    const scope = item.deviceId ?? item.userId ?? '';
    const seed = item.deviceId === undefined ? USER_SCOPE_SEED : 0;
    if (insertId !== undefined) {
      hashKey(INSERT_ID_SEED + seed, scope, insertId);
      if (this.seen.seenRecently(now)) return this.dropped();
    }
    if (byEventId) {
      hashKey(EVENT_ID_SEED + seed, scope, String(event.event_id), String(event.time));
      if (this.seen.seenRecently(now)) return this.dropped();
      this.seen.remember(now);
    }
    if (insertId !== undefined) {
      hashKey(INSERT_ID_SEED + seed, scope, insertId);
      this.seen.remember(now);
    }
    return false;
  }

  private dropped(): true {
    this.duplicatesDropped++;
    return true;
  }

  /** Applies what an ingested event or identification does to profiles and groups. */
  apply(item: ValidItem): void {
    if (!this.keepProfiles) return;
    if (item.kind === 'groupidentify') {
      if (item.groupUpdate === undefined || item.groups === undefined) return;
      for (const [type, values] of Object.entries(item.groups)) {
        for (const value of values) {
          const group = this.groupFor(type, value);
          group.group_properties = applyPropertyUpdate(group.group_properties, item.groupUpdate);
        }
      }
      return;
    }
    const profile = this.profileFor(item.userId, item.deviceId);
    if (profile === undefined) return;
    if (item.userUpdate !== undefined) {
      profile.user_properties = applyPropertyUpdate(profile.user_properties, item.userUpdate);
    }
    // a user joins groups permanently via an identify; groups on an ordinary event apply to that event only
    if (item.kind === 'identify' && item.groups !== undefined) {
      for (const [type, values] of Object.entries(item.groups)) {
        if (values.length === 0) delete profile.groups[type];
        else profile.groups[type] = values.slice();
      }
    }
  }

  private groupFor(type: string, value: string): GroupProfile {
    const key = groupKey(type, value);
    let group = this.groupProfiles.get(key);
    if (group === undefined) {
      group = { group_type: type, group_value: value, group_properties: {} };
      this.groupProfiles.set(key, group);
    }
    return group;
  }

  /** Resolves (creating) the profile: user_id wins; a device seen with a user_id belongs to that user. */
  private profileFor(userId: string | undefined, deviceId: string | undefined): UserProfile | undefined {
    if (userId !== undefined) {
      const key = `u:${userId}`;
      let profile = this.profiles.get(key);
      if (profile === undefined) {
        const anonymous = deviceId === undefined ? undefined : this.profiles.get(`d:${deviceId}`);
        if (anonymous !== undefined && deviceId !== undefined) {
          // the anonymous device profile becomes this user's profile
          this.profiles.delete(`d:${deviceId}`);
          anonymous.user_id = userId;
          profile = anonymous;
        } else {
          profile = { user_id: userId, device_id: deviceId ?? null, user_properties: {}, groups: {} };
        }
        this.profiles.set(key, profile);
      }
      if (deviceId !== undefined) {
        this.deviceOwners.set(deviceId, userId);
        profile.device_id = deviceId;
      }
      return profile;
    }
    if (deviceId === undefined) return undefined;
    const owner = this.deviceOwners.get(deviceId);
    if (owner !== undefined) return this.profiles.get(`u:${owner}`);
    const key = `d:${deviceId}`;
    let profile = this.profiles.get(key);
    if (profile === undefined) {
      profile = { user_id: null, device_id: deviceId, user_properties: {}, groups: {} };
      this.profiles.set(key, profile);
    }
    return profile;
  }

  /** The profile of a user_id, or of a device_id (its owner's when the device was seen with a user). */
  user(id: string): UserProfile | undefined {
    const byUser = this.profiles.get(`u:${id}`);
    if (byUser !== undefined) return byUser;
    const owner = this.deviceOwners.get(id);
    if (owner !== undefined) return this.profiles.get(`u:${owner}`);
    return this.profiles.get(`d:${id}`);
  }

  /** A group profile. */
  group(type: string, value: string): GroupProfile | undefined {
    return this.groupProfiles.get(groupKey(type, value));
  }

  /** Every user profile, in creation order. */
  users(): UserProfile[] {
    return [...this.profiles.values()];
  }

  /** Every group profile, in creation order. */
  groups(): GroupProfile[] {
    return [...this.groupProfiles.values()];
  }
}

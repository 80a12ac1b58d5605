/**
 * Injected faults: throttling (429), silenced devices, 5xx failures, latency, connection resets,
 * a lower 413 threshold, 403 and per-id event-rate limits. Rates draw on a seeded RNG.
 */
import { z } from 'zod';

const id = z.string().min(1);
const ids = z.array(id);
const duration = z.number().int().nonnegative();

/** Throttles requests carrying events for these ids (429) for `forMs`. */
export const throttleFaultSchema = z.strictObject({
  userIds: ids.optional(),
  deviceIds: ids.optional(),
  dailyQuotaUserIds: ids.optional(),
  dailyQuotaDeviceIds: ids.optional(),
  forMs: duration,
  /** Adds `Retry-After: N` to the 429 (Amplitude documents no such header). */
  retryAfterSeconds: z.number().int().nonnegative().optional(),
});
export type ThrottleFault = z.infer<typeof throttleFaultSchema>;

/** Answers 400 "Events silenced for device_id" for events of these devices for `forMs`. */
export const silenceFaultSchema = z.strictObject({ deviceIds: z.array(id).min(1), forMs: duration });
export type SilenceFault = z.infer<typeof silenceFaultSchema>;

/** Fails a share of ingestion requests with a 5xx; `times` caps how many fail. */
export const failRateFaultSchema = z
  .strictObject({
    status: z.union([z.literal(500), z.literal(502), z.literal(503), z.literal(504)]),
    rate: z.number().min(0).max(1),
    /** 500/502/504 only: process (and store) the request, then answer the failure. 503 never stores. */
    ingestBeforeFailing: z.boolean().optional(),
    times: z.number().int().positive().optional(),
  })
  .refine((fault) => !(fault.status === 503 && fault.ingestBeforeFailing === true), {
    message: '503 means nothing was stored: ingestBeforeFailing cannot be true',
    path: ['ingestBeforeFailing'],
  });
export type FailRateFault = z.infer<typeof failRateFaultSchema>;

/** Delays every ingestion response by `ms`. */
export const latencyFaultSchema = z.strictObject({ ms: duration });
export type LatencyFault = z.infer<typeof latencyFaultSchema>;

/** Destroys the socket without a response for a share of ingestion requests; `times` caps how many. */
export const resetConnectionsFaultSchema = z.strictObject({
  rate: z.number().min(0).max(1),
  times: z.number().int().positive().optional(),
});
export type ResetConnectionsFault = z.infer<typeof resetConnectionsFaultSchema>;

/** Lowers the 413 threshold: bodies larger than `bytes` (after decompression) answer 413. */
export const byteLimitFaultSchema = z.strictObject({ bytes: z.number().int().positive() });
export type ByteLimitFault = z.infer<typeof byteLimitFaultSchema>;

/** Refuses connections for `forMs` (the listening socket is closed and reopened on the same port). */
export const downFaultSchema = z.strictObject({ forMs: duration });
export type DownFault = z.infer<typeof downFaultSchema>;

/** Per user_id / device_id rate limit: more than `eventsPerSecond` averaged over `windowMs` answers 429. */
export const epsLimitFaultSchema = z.strictObject({
  eventsPerSecond: z.number().positive(),
  windowMs: z.number().int().positive().optional(),
});
export type EpsLimitFault = z.infer<typeof epsLimitFaultSchema>;

/** A fault was configured with invalid options; the message names the fault and the field. */
export class InvalidFaultError extends Error {
  override readonly name = 'InvalidFaultError';
}

/** Parses fault options with `schema`, throwing InvalidFaultError naming the fault. */
export function parseFault<T>(fault: string, schema: z.ZodType<T>, input: unknown): T {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new InvalidFaultError(`invalid options for fault "${fault}": ${z.prettifyError(result.error)}`);
  }
  return result.data;
}

/** Deterministic PRNG (mulberry32) in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ThrottleRule {
  readonly users: ReadonlySet<string>;
  readonly devices: ReadonlySet<string>;
  readonly quotaUsers: ReadonlySet<string>;
  readonly quotaDevices: ReadonlySet<string>;
  readonly until: number;
  readonly retryAfterSeconds: number | undefined;
}

interface EpsWindow {
  start: number;
  count: number;
}

/** How a request's events are throttled (the 429 body fields, before serialisation). */
export interface ThrottleVerdict {
  readonly throttledUsers: Record<string, number>;
  readonly throttledDevices: Record<string, number>;
  readonly quotaUsers: Record<string, number>;
  readonly quotaDevices: Record<string, number>;
  readonly throttledEvents: number[];
  readonly epsThreshold: number | undefined;
  readonly retryAfterSeconds: number | undefined;
}

/** The ids of an event or identification, as the throttle sees them. */
export interface ThrottleSubject {
  readonly userId: string | undefined;
  readonly deviceId: string | undefined;
}

const DEFAULT_EPS_WINDOW_MS = 30_000;

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** The faults currently injected. */
export class FaultState {
  private throttles: ThrottleRule[] = [];
  private silenced: { devices: ReadonlySet<string>; until: number }[] = [];
  private failure: (FailRateFault & { remaining: number }) | undefined;
  private resets: { rate: number; remaining: number } | undefined;
  private eps: { eventsPerSecond: number; windowMs: number; windows: Map<string, EpsWindow> } | undefined;
  latencyMs = 0;
  byteLimit: number | undefined;
  forbidden = false;

  constructor(
    private readonly random: () => number,
    private readonly now: () => number,
  ) {}

  throttle(fault: ThrottleFault): void {
    this.throttles.push({
      users: new Set(fault.userIds ?? []),
      devices: new Set(fault.deviceIds ?? []),
      quotaUsers: new Set(fault.dailyQuotaUserIds ?? []),
      quotaDevices: new Set(fault.dailyQuotaDeviceIds ?? []),
      until: this.now() + fault.forMs,
      retryAfterSeconds: fault.retryAfterSeconds,
    });
  }

  silence(fault: SilenceFault): void {
    this.silenced.push({ devices: new Set(fault.deviceIds), until: this.now() + fault.forMs });
  }

  failRate(fault: FailRateFault): void {
    this.failure = { ...fault, remaining: fault.times ?? Number.POSITIVE_INFINITY };
  }

  resetConnections(fault: ResetConnectionsFault): void {
    this.resets = { rate: fault.rate, remaining: fault.times ?? Number.POSITIVE_INFINITY };
  }

  epsLimit(fault: EpsLimitFault): void {
    this.eps = {
      eventsPerSecond: fault.eventsPerSecond,
      windowMs: fault.windowMs ?? DEFAULT_EPS_WINDOW_MS,
      windows: new Map(),
    };
  }

  clear(): void {
    this.throttles = [];
    this.silenced = [];
    this.failure = undefined;
    this.resets = undefined;
    this.eps = undefined;
    this.latencyMs = 0;
    this.byteLimit = undefined;
    this.forbidden = false;
  }

  /** Rolls whether this request's connection is destroyed. */
  rollReset(): boolean {
    const resets = this.resets;
    if (resets === undefined || resets.remaining <= 0 || resets.rate === 0) return false;
    if (this.random() >= resets.rate) return false;
    resets.remaining--;
    return true;
  }

  /** Rolls whether this request fails; returns the failure to answer, if any. */
  rollFailure(): { status: number; ingestBeforeFailing: boolean } | undefined {
    const failure = this.failure;
    if (failure === undefined || failure.remaining <= 0 || failure.rate === 0) return undefined;
    if (this.random() >= failure.rate) return undefined;
    failure.remaining--;
    return { status: failure.status, ingestBeforeFailing: failure.ingestBeforeFailing === true };
  }

  /** Indexes and devices of silenced events, if any. */
  silencedIn(subjects: readonly ThrottleSubject[]): { devices: string[]; events: number[] } | undefined {
    const now = this.now();
    this.silenced = this.silenced.filter((rule) => rule.until > now);
    if (this.silenced.length === 0) return undefined;
    const devices = new Set<string>();
    const events: number[] = [];
    subjects.forEach((subject, index) => {
      const device = subject.deviceId;
      if (device !== undefined && this.silenced.some((rule) => rule.devices.has(device))) {
        devices.add(device);
        events.push(index);
      }
    });
    return events.length === 0 ? undefined : { devices: [...devices], events };
  }

  /**
   * Which of the request's events are throttled, by injected throttles and the eps limit.
   * Returns undefined when none is. Counts are the throttled id's events in this request.
   */
  throttledIn(apiKey: string, subjects: readonly ThrottleSubject[]): ThrottleVerdict | undefined {
    const now = this.now();
    this.throttles = this.throttles.filter((rule) => rule.until > now);
    const overLimit = this.idsOverEpsLimit(apiKey, subjects, now);
    if (this.throttles.length === 0 && overLimit === undefined) return undefined;
    const verdict: ThrottleVerdict = {
      throttledUsers: {},
      throttledDevices: {},
      quotaUsers: {},
      quotaDevices: {},
      throttledEvents: [],
      epsThreshold: this.eps?.eventsPerSecond,
      retryAfterSeconds: undefined,
    };
    let retryAfterSeconds: number | undefined;
    subjects.forEach((subject, index) => {
      const { userId, deviceId } = subject;
      let hit = false;
      for (const rule of this.throttles) {
        const matched = this.matchRule(rule, userId, deviceId, verdict);
        if (matched && rule.retryAfterSeconds !== undefined) {
          retryAfterSeconds = Math.max(retryAfterSeconds ?? 0, rule.retryAfterSeconds);
        }
        hit ||= matched;
      }
      if (overLimit !== undefined) {
        if (userId !== undefined && overLimit.has(`u:${userId}`)) {
          bump(verdict.throttledUsers, userId);
          hit = true;
        }
        if (deviceId !== undefined && overLimit.has(`d:${deviceId}`)) {
          bump(verdict.throttledDevices, deviceId);
          hit = true;
        }
      }
      if (hit) verdict.throttledEvents.push(index);
    });
    if (verdict.throttledEvents.length === 0) return undefined;
    return { ...verdict, retryAfterSeconds };
  }

  private matchRule(
    rule: ThrottleRule,
    userId: string | undefined,
    deviceId: string | undefined,
    verdict: ThrottleVerdict,
  ): boolean {
    let hit = false;
    if (userId !== undefined) {
      if (rule.users.has(userId)) {
        bump(verdict.throttledUsers, userId);
        hit = true;
      }
      if (rule.quotaUsers.has(userId)) {
        bump(verdict.quotaUsers, userId);
        hit = true;
      }
    }
    if (deviceId !== undefined) {
      if (rule.devices.has(deviceId)) {
        bump(verdict.throttledDevices, deviceId);
        hit = true;
      }
      if (rule.quotaDevices.has(deviceId)) {
        bump(verdict.quotaDevices, deviceId);
        hit = true;
      }
    }
    return hit;
  }

  /** Ids whose window count plus this request's events exceed the eps limit. */
  private idsOverEpsLimit(apiKey: string, subjects: readonly ThrottleSubject[], now: number): Set<string> | undefined {
    const eps = this.eps;
    if (eps === undefined) return undefined;
    const inRequest = new Map<string, number>();
    for (const { userId, deviceId } of subjects) {
      if (userId !== undefined) inRequest.set(`u:${userId}`, (inRequest.get(`u:${userId}`) ?? 0) + 1);
      if (deviceId !== undefined) inRequest.set(`d:${deviceId}`, (inRequest.get(`d:${deviceId}`) ?? 0) + 1);
    }
    const allowed = (eps.eventsPerSecond * eps.windowMs) / 1000;
    const over = new Set<string>();
    for (const [key, count] of inRequest) {
      const window = eps.windows.get(`${apiKey}\u0000${key}`);
      const current = window !== undefined && now - window.start < eps.windowMs ? window.count : 0;
      if (current + count > allowed) over.add(key);
    }
    return over.size === 0 ? undefined : over;
  }

  /** Counts an ingested request's events toward the eps limit. */
  countIngested(apiKey: string, subjects: readonly ThrottleSubject[]): void {
    const eps = this.eps;
    if (eps === undefined) return;
    const now = this.now();
    const add = (key: string): void => {
      const windowKey = `${apiKey}\u0000${key}`;
      const window = eps.windows.get(windowKey);
      if (window === undefined || now - window.start >= eps.windowMs)
        eps.windows.set(windowKey, { start: now, count: 1 });
      else window.count++;
    };
    for (const { userId, deviceId } of subjects) {
      if (userId !== undefined) add(`u:${userId}`);
      if (deviceId !== undefined) add(`d:${deviceId}`);
    }
  }
}

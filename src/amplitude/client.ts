/**
 * The Amplitude sender: posts packed rows to one ingestion API over a keep-alive pool with gzip bodies, and turns
 * every answer into one outcome per row (delivered, rejected with Amplitude's reason, or deferred to the next run).
 * Request-level failures are thrown as typed errors (src/amplitude/errors.ts).
 *
 *   const sender = createAmplitudeSender({ api: 'batch', region: 'eu', apiKey, minIdLength: 5 });
 *   for (const batch of packBatches(rows, sender.limits)) outcomes.push(...(await sender.sendBatch(batch)));
 *   await sender.close();
 */
import { setTimeout as delay } from 'node:timers/promises';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import type { IncomingHttpHeaders } from 'node:http';
import { Pool } from 'undici';
import type { RowOutcome, StagedRow } from '../sync/types';
import { deliveredOutcome } from '../sync/types';
import type { PackLimits } from './batches';
import { packLimitsFor, requestPieces } from './batches';
import type { AmplitudeApi, AmplitudeRegion } from './endpoints';
import { AMPLITUDE_API_SPECS, endpointUrl, PROJECT_THROTTLE_WAIT_MS } from './endpoints';
import { AmplitudeAbortedError, AmplitudeConfigError, AmplitudeUnavailableError } from './errors';

/** Per-request deadline (connection, upload and answer). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Attempts per request on 5xx, timeouts and connection failures. */
export const DEFAULT_MAX_ATTEMPTS = 5;
/** Throttle waits up to this long happen in the send; longer ones defer the rows to the next run. */
export const DEFAULT_MAX_THROTTLE_WAIT_MS = 60_000;
/** Full-jitter backoff: the first retry waits up to this long, doubling per attempt. */
export const DEFAULT_BACKOFF_BASE_MS = 500;
/** Cap of one backoff wait. */
export const DEFAULT_BACKOFF_MAX_MS = 30_000;
/** Keep-alive connections per endpoint. */
export const DEFAULT_CONNECTIONS = 8;
/** Bodies from this size are gzipped (the official SDKs' threshold). */
export const GZIP_MIN_BYTES = 2048;
/** Fast compression: bodies are repetitive JSON, level 1 already shrinks them ~10×. */
export const DEFAULT_GZIP_LEVEL = 1;
const MAX_QUOTED_ANSWER_CHARS = 300;

/** The logger the sender reports retries, splits and throttles to (Temporal's activity logger fits). */
export interface AmplitudeLogger {
  debug(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
}

/** How a sender reaches Amplitude and how patient it is. */
export interface AmplitudeSenderOptions {
  api: AmplitudeApi;
  region: AmplitudeRegion;
  /** Replaces the region's host (a proxy, the local emulator). */
  baseUrl?: string;
  apiKey: string;
  /** Sent as `options.min_id_length` on JSON APIs; the mapper validates ids with the same minimum. */
  minIdLength: number;
  /** Rows per request (capped by the API's limit); sizes `limits`. */
  batchSize?: number;
  requestTimeoutMs?: number;
  /** Attempts per request on 5xx, timeouts and connection failures before AmplitudeUnavailableError. */
  maxAttempts?: number;
  /** Longest throttle wait (summed per row) done in the send; beyond it rows are deferred. */
  maxThrottleWaitMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Keep-alive connections to the endpoint. */
  connections?: number;
  /** zlib level for request bodies; 0 sends them uncompressed. */
  gzipLevel?: number;
  /** Waits `ms` (rejects when `signal` aborts); injectable so tests need not sleep for real. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Current time in ms (for Retry-After dates). */
  now?: () => number;
  /** Uniform [0, 1) source for backoff jitter. */
  random?: () => number;
  logger?: AmplitudeLogger;
}

/** Per-call options of sendBatch. */
export interface SendBatchOptions {
  signal?: AbortSignal;
  /** Context for messages, e.g. `chunk 7 of sync "users"`. */
  label?: string;
}

/** Sends packed rows to one Amplitude API. */
export interface AmplitudeSender {
  /** The endpoint posted to. */
  readonly url: string;
  /** What one request may hold, with this sender's exact envelope: pass to packBatches. */
  readonly limits: PackLimits;
  /** Sends one packed batch; resolves with exactly one outcome per row, in the rows' order. */
  sendBatch(rows: readonly StagedRow[], options?: SendBatchOptions): Promise<RowOutcome[]>;
  /** Closes the connections once in-flight requests finish. */
  close(): Promise<void>;
}

/** Output pieces of a gzip stream: a batch's compressed body (~40 KB) in one or two. */
const GZIP_CHUNK_BYTES = 64 * 1024;

/** Gzips pieces, in order, as one body. */
async function gzipPieces(pieces: readonly Uint8Array[], level: number): Promise<Buffer> {
  const stream = createGzip({ level, chunkSize: GZIP_CHUNK_BYTES });
  const out: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => out.push(chunk));
  const ended = once(stream, 'end');
  for (const piece of pieces) stream.write(piece);
  stream.end();
  await ended;
  return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
}

const defaultSleep = (ms: number, signal: AbortSignal): Promise<void> => delay(ms, undefined, { signal });

/** Creates a sender for `options.api` in `options.region` (or at `options.baseUrl`). */
export function createAmplitudeSender(options: AmplitudeSenderOptions): AmplitudeSender {
  const url = new URL(endpointUrl(options.api, options.region, options.baseUrl));
  const spec = AMPLITUDE_API_SPECS[options.api];
  const json = spec.body === 'json';
  const prefix = json
    ? `{"api_key":${JSON.stringify(options.apiKey)},"events":`
    : `api_key=${encodeURIComponent(options.apiKey)}&identification=`;
  const suffix = json ? `,"options":{"min_id_length":${options.minIdLength}}}` : '';
  const limits: PackLimits = {
    ...packLimitsFor(options.api, options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
    envelopeBytes: Buffer.byteLength(prefix + suffix, 'utf8'),
  };
  const pool = new Pool(url.origin, {
    connections: options.connections ?? DEFAULT_CONNECTIONS,
    pipelining: 1,
    keepAliveTimeout: 10_000,
  });
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const gzipLevel = options.gzipLevel ?? DEFAULT_GZIP_LEVEL;
  const apiKey = options.apiKey;

  const endpoint: Endpoint = {
    url: url.href,
    path: url.pathname,
    throttleWaitMs: spec.throttleWaitMs,
    maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    maxThrottleWaitMs: options.maxThrottleWaitMs ?? DEFAULT_MAX_THROTTLE_WAIT_MS,
    backoffBaseMs: options.backoffBaseMs ?? DEFAULT_BACKOFF_BASE_MS,
    backoffMaxMs: options.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS,
    sleep: options.sleep ?? defaultSleep,
    now: options.now ?? Date.now,
    random: options.random ?? Math.random,
    logger: options.logger,
    redact: (text) => (apiKey === '' ? text : text.split(apiKey).join('***')),
    async post(rows, signal) {
      const headers: Record<string, string> = {
        'content-type': json ? 'application/json' : 'application/x-www-form-urlencoded',
        accept: 'application/json',
      };
      // payloads read as bytes are gzipped from where they were read: no body is assembled first
      const pieces = requestPieces(prefix, rows, spec.body, suffix);
      const bytes = pieces.reduce((n, piece) => n + piece.length, 0);
      let body: Buffer;
      if (gzipLevel > 0 && bytes >= GZIP_MIN_BYTES) {
        body = await gzipPieces(pieces, gzipLevel);
        headers['content-encoding'] = 'gzip';
      } else {
        body = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces, bytes);
      }
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), timeoutMs);
      const onAbort = (): void => controller.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const res = await pool.request({
          path: url.pathname + url.search,
          method: 'POST',
          headers,
          body,
          signal: controller.signal,
        });
        const answer = await res.body.text();
        return { status: res.statusCode, headers: res.headers, text: answer, bytes };
      } catch (err) {
        if (signal?.aborted === true) return { aborted: true };
        if (controller.signal.aborted) return { failure: `no answer within ${timeoutMs} ms`, cause: err };
        return { failure: networkProblem(err), cause: err };
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      }
    },
  };

  return {
    url: url.href,
    limits,
    sendBatch: (rows, sendOptions = {}) => new BatchSend(endpoint, rows, sendOptions).run(),
    close: () => pool.close(),
  };
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** Uncompressed request size. */
  bytes: number;
}

type PostResult = Answer | { failure: string; cause: unknown } | { aborted: true };

/** What a batch send needs from its sender. */
interface Endpoint {
  url: string;
  path: string;
  throttleWaitMs: number;
  maxAttempts: number;
  maxThrottleWaitMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  now: () => number;
  random: () => number;
  logger: AmplitudeLogger | undefined;
  redact: (text: string) => string;
  post(rows: readonly StagedRow[], signal: AbortSignal | undefined): Promise<PostResult>;
}

/** Rows (indexes into the batch) sent together, with their transient-failure and throttle history. */
interface Group {
  idx: number[];
  attempt: number;
  throttledMs: number;
}

/** Amplitude's 400/429 body (fields per the HTTP V2 / Batch docs; all optional). */
interface ErrorBody {
  error?: unknown;
  missing_field?: unknown;
  events_with_invalid_fields?: unknown;
  events_with_missing_fields?: unknown;
  events_with_invalid_id_lengths?: unknown;
  silenced_events?: unknown;
  throttled_events?: unknown;
  throttled_users?: unknown;
  throttled_devices?: unknown;
  exceeded_daily_quota_users?: unknown;
  exceeded_daily_quota_devices?: unknown;
}

/** Why a send's own signal is aborted when it ends (its requests and waits are over or no longer wanted). */
const SEND_ENDED = new Error('the batch send ended');

/** One call of sendBatch: a queue of groups ready to send, and groups waiting out a throttle or backoff. */
class BatchSend {
  private readonly outcomes: (RowOutcome | undefined)[];
  private readonly ready: Group[] = [];
  private readonly waiting = new Set<Promise<void>>();
  /**
   * Aborted with the caller's signal and when the send ends: it stops this send's requests and waits, so the caller's
   * signal carries one listener per send, not one per request (a chunk has many sends in flight on one signal).
   */
  private readonly stop = new AbortController();
  private readonly signal: AbortSignal | undefined;
  private readonly suffix: string;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly rows: readonly StagedRow[],
    options: SendBatchOptions,
  ) {
    this.outcomes = new Array<RowOutcome | undefined>(rows.length);
    this.signal = options.signal;
    this.suffix = options.label === undefined ? '' : ` for ${options.label}`;
  }

  async run(): Promise<RowOutcome[]> {
    const onAbort = (): void => this.stop.abort();
    this.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (this.rows.length > 0) this.ready.push({ idx: this.rows.map((_, i) => i), attempt: 0, throttledMs: 0 });
      while (this.ready.length > 0 || this.waiting.size > 0) {
        this.throwIfAborted();
        const group = this.ready.shift();
        if (group === undefined) await Promise.race(this.waiting);
        else await this.send(group);
      }
      this.throwIfAborted();
      return this.outcomes.map((outcome, i) => outcome ?? this.unsettled(i));
    } finally {
      // with a reason of its own: a DOMException (the default) captures a stack trace, once per batch
      this.stop.abort(SEND_ENDED);
      this.signal?.removeEventListener('abort', onAbort);
    }
  }

  private async send(group: Group): Promise<void> {
    // a group is an ordered subset of the rows (no index twice): as long as they, it is all of them, in order
    const rows = group.idx.length === this.rows.length ? this.rows : group.idx.map((i) => this.rows[i]!);
    const result = await this.endpoint.post(rows, this.stop.signal);
    if ('aborted' in result) return this.throwIfAborted();
    if ('failure' in result) return this.retry(group, result.failure, undefined, result.cause);
    const { status } = result;
    if (status >= 200 && status < 300) {
      for (const i of group.idx) this.settle(i, deliveredOutcome(this.rows[i]!));
      return;
    }
    const body = parseBody(result.text);
    const error = typeof body?.error === 'string' ? this.endpoint.redact(body.error) : this.quote(result.text);
    if (status === 400) return this.onBadRequest(group, body, error);
    if (status === 413) {
      return this.split(
        group,
        `${this.endpoint.path} answered 413 (${error}) for this row alone (${result.bytes} bytes)`,
      );
    }
    if (status === 429) return this.onThrottled(group, body ?? {}, retryAfterMs(result.headers, this.endpoint.now()));
    if (status >= 500 || status === 408 || status === 425) {
      return this.retry(group, `answered ${status} (${error})`, retryAfterMs(result.headers, this.endpoint.now()));
    }
    throw this.configError(status, error);
  }

  /** 400: rows named by index are rejected and the rest re-sent at once; a request-level problem is thrown. */
  private onBadRequest(group: Group, body: ErrorBody | undefined, error: string): void {
    if (/invalid api key/i.test(error)) throw this.configError(400, error);
    const reasons = new Map<number, string[]>();
    const note = (position: number, reason: string): void => {
      const i = group.idx[position];
      if (i === undefined) return;
      const list = reasons.get(i) ?? [];
      list.push(reason);
      reasons.set(i, list);
    };
    for (const [field, positions] of indexMap(body?.events_with_invalid_fields)) {
      for (const p of positions) note(p, `invalid value in "${field}"`);
    }
    for (const [field, positions] of indexMap(body?.events_with_missing_fields)) {
      for (const p of positions) note(p, `missing "${field}"`);
    }
    for (const [field, positions] of indexMap(body?.events_with_invalid_id_lengths)) {
      for (const p of positions) note(p, `"${field}" is shorter than min_id_length`);
    }
    for (const p of indexList(body?.silenced_events)) note(p, 'its device_id is silenced');
    if (reasons.size > 0) {
      for (const [i, list] of reasons) {
        this.reject(i, `Amplitude ${this.endpoint.path} answered 400 (${error}): ${list.join('; ')}`);
      }
      const rest = group.idx.filter((i) => !reasons.has(i));
      if (rest.length > 0) this.ready.unshift({ ...group, idx: rest });
      return;
    }
    if (typeof body?.missing_field === 'string') {
      throw this.configError(400, `${error}: request field "${body.missing_field}" missing`);
    }
    // A 400 naming no row: bisect until the offending rows are isolated.
    this.split(group, `${this.endpoint.path} answered 400 (${error})`);
  }

  /** 429: throttled users/devices/events wait (or are deferred); daily-quota ids are deferred; others go at once. */
  private onThrottled(group: Group, body: ErrorBody, retryAfter: number | undefined): void {
    const events = new Set(indexList(body.throttled_events));
    const users = idSet(body.throttled_users);
    const devices = idSet(body.throttled_devices);
    const quotaUsers = idSet(body.exceeded_daily_quota_users);
    const quotaDevices = idSet(body.exceeded_daily_quota_devices);
    const named = users.size + devices.size + quotaUsers.size + quotaDevices.size > 0;
    const throttled: number[] = [];
    const others: number[] = [];
    const why = new Map<number, string>();
    group.idx.forEach((i, position) => {
      const ids = named ? payloadIds(this.rows[i]!.payload) : {};
      const quota = quotaId(ids, quotaUsers, quotaDevices);
      if (quota !== undefined) {
        this.defer(i, `${quota} exceeded its daily Amplitude quota (429); sent again next run`, undefined);
        return;
      }
      const hit = events.has(position) ? `event ${position}` : quotaId(ids, users, devices);
      if (hit === undefined) {
        others.push(i);
        return;
      }
      throttled.push(i);
      why.set(i, hit);
    });
    const projectLevel = throttled.length === 0 && others.length === group.idx.length;
    const waiting = projectLevel ? others.splice(0) : throttled;
    const waitMs = retryAfter ?? (projectLevel ? PROJECT_THROTTLE_WAIT_MS : this.endpoint.throttleWaitMs);
    if (others.length > 0) this.ready.unshift({ ...group, idx: others });
    if (waiting.length === 0) return;
    const totalMs = group.throttledMs + waitMs;
    this.endpoint.logger?.warn(`Amplitude ${this.endpoint.path} throttled ${waiting.length} rows${this.suffix}`, {
      waitMs,
      projectLevel,
      deferred: totalMs > this.endpoint.maxThrottleWaitMs,
    });
    if (totalMs > this.endpoint.maxThrottleWaitMs) {
      for (const i of waiting) {
        const subject = why.get(i) ?? 'the project';
        this.defer(
          i,
          `Amplitude throttled ${subject} (429); waiting ${waitMs} ms more would pass maxThrottleWaitMs ` +
            `${this.endpoint.maxThrottleWaitMs}; sent again next run`,
          waitMs,
        );
      }
      return;
    }
    this.later({ idx: waiting, attempt: group.attempt, throttledMs: totalMs }, waitMs);
  }

  /** 5xx, timeouts, resets: the group is re-sent after a backoff (or Retry-After) until maxAttempts. */
  private retry(group: Group, problem: string, retryAfter: number | undefined, cause?: unknown): void {
    const attempt = group.attempt + 1;
    const { maxAttempts, maxThrottleWaitMs } = this.endpoint;
    if (attempt >= maxAttempts || (retryAfter !== undefined && retryAfter > maxThrottleWaitMs)) {
      throw new AmplitudeUnavailableError(
        `Amplitude ${this.endpoint.url} ${problem}${this.suffix} (attempt ${attempt} of ${maxAttempts})`,
        this.endpoint.url,
        retryAfter,
        { cause, outcomes: this.settled() },
      );
    }
    const waitMs = retryAfter ?? this.backoff(attempt);
    this.endpoint.logger?.warn(`Amplitude ${this.endpoint.path} ${problem}${this.suffix}; retrying`, {
      attempt,
      waitMs,
      rows: group.idx.length,
    });
    this.later({ ...group, attempt }, waitMs);
  }

  /** Full jitter: uniform in [0, min(max, base × 2^(attempt-1))). */
  private backoff(attempt: number): number {
    const { backoffBaseMs, backoffMaxMs, random } = this.endpoint;
    return Math.floor(random() * Math.min(backoffMaxMs, backoffBaseMs * 2 ** (attempt - 1)));
  }

  /** Halves a group and re-sends both halves at once; a single row is rejected with `reason`. */
  private split(group: Group, reason: string): void {
    if (group.idx.length === 1) {
      this.reject(group.idx[0]!, `Amplitude ${reason}`);
      return;
    }
    const half = Math.ceil(group.idx.length / 2);
    this.endpoint.logger?.debug(`Amplitude ${reason}${this.suffix}: splitting ${group.idx.length} rows`);
    this.ready.unshift(
      { idx: group.idx.slice(0, half), attempt: 0, throttledMs: group.throttledMs },
      { idx: group.idx.slice(half), attempt: 0, throttledMs: group.throttledMs },
    );
  }

  /** Queues `group` again after `ms`, without holding back the other groups. */
  private later(group: Group, ms: number): void {
    const waited: Promise<void> = this.endpoint
      .sleep(ms, this.stop.signal)
      .then(
        () => void this.ready.push(group),
        () => undefined,
      )
      .finally(() => this.waiting.delete(waited));
    this.waiting.add(waited);
  }

  private settle(i: number, outcome: RowOutcome): void {
    if (this.outcomes[i] === undefined) this.outcomes[i] = outcome;
  }

  private reject(i: number, reason: string): void {
    this.settle(i, { key: this.rows[i]!.key, status: 'rejected', reason: this.endpoint.redact(reason) });
  }

  private defer(i: number, reason: string, retryAfterMs: number | undefined): void {
    const key = this.rows[i]!.key;
    this.settle(
      i,
      retryAfterMs === undefined
        ? { key, status: 'deferred', reason }
        : { key, status: 'deferred', reason, retryAfterMs },
    );
  }

  private settled(): RowOutcome[] {
    return this.outcomes.filter((o): o is RowOutcome => o !== undefined);
  }

  private unsettled(i: number): never {
    throw new AmplitudeUnavailableError(
      `Amplitude ${this.endpoint.url}: row "${this.rows[i]!.key}" got no outcome${this.suffix}`,
      this.endpoint.url,
      undefined,
      { outcomes: this.settled() },
    );
  }

  private throwIfAborted(): void {
    if (this.signal?.aborted !== true) return;
    throw new AmplitudeAbortedError(
      `send to Amplitude ${this.endpoint.url} aborted${this.suffix} with ${this.settled().length} of ` +
        `${this.rows.length} rows settled`,
      this.endpoint.url,
      { cause: this.signal.reason, outcomes: this.settled() },
    );
  }

  private configError(status: number, error: string): AmplitudeConfigError {
    return new AmplitudeConfigError(
      `Amplitude ${this.endpoint.url} answered ${status} (${error})${this.suffix}; ` + hintFor(status, error),
      this.endpoint.url,
      status,
      { outcomes: this.settled() },
    );
  }

  private quote(text: string): string {
    const trimmed = text.trim();
    if (trimmed === '') return 'empty answer';
    return this.endpoint.redact(
      trimmed.length > MAX_QUOTED_ANSWER_CHARS ? `${trimmed.slice(0, MAX_QUOTED_ANSWER_CHARS)}…` : trimmed,
    );
  }
}

function hintFor(status: number, error: string): string {
  if (status === 401 || /api key/i.test(error)) return 'check the destination apiKey and region';
  if (status === 403) return 'the request was refused (firewall or IP block); retrying does not help';
  if (status === 404 || status === 405) return 'check destination.baseUrl';
  return 'retrying does not help';
}

function parseBody(text: string): ErrorBody | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** `{field: [indexes]}` entries of a 400 body. */
function indexMap(value: unknown): [string, number[]][] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [];
  return Object.entries(value as Record<string, unknown>).map(([field, list]) => [field, indexList(list)]);
}

function indexList(value: unknown): number[] {
  return Array.isArray(value) ? value.filter((v): v is number => Number.isInteger(v)) : [];
}

/** Ids of a `{id: count}` map. */
function idSet(value: unknown): Set<string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return new Set();
  return new Set(Object.keys(value));
}

function payloadIds(payload: string): { user_id?: unknown; device_id?: unknown } {
  try {
    return JSON.parse(payload) as { user_id?: unknown; device_id?: unknown };
  } catch {
    return {};
  }
}

/** `user_id "x"` / `device_id "y"` when the row's id is in the given sets. */
function quotaId(
  ids: { user_id?: unknown; device_id?: unknown },
  users: Set<string>,
  devices: Set<string>,
): string | undefined {
  if (typeof ids.user_id === 'string' && users.has(ids.user_id)) return `user_id ${JSON.stringify(ids.user_id)}`;
  if (typeof ids.device_id === 'string' && devices.has(ids.device_id)) {
    return `device_id ${JSON.stringify(ids.device_id)}`;
  }
  return undefined;
}

/** Retry-After in ms (seconds or an HTTP date), or undefined. */
export function retryAfterMs(headers: IncomingHttpHeaders, now: number): number | undefined {
  const raw: unknown = headers['retry-after'];
  const value: unknown = Array.isArray(raw) ? raw[0] : raw;
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.round(seconds * 1000));
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function networkProblem(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code;
    return `failed to answer (${typeof code === 'string' ? `${code}: ` : ''}${err.message})`;
  }
  return `failed to answer (${String(err)})`;
}

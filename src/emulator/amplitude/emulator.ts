/** The emulator's HTTP server: request pipeline, fault application, project stores and inspection. */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { ADMIN_PREFIX, handleAdmin } from './admin';
import type {
  ByteLimitFault,
  DownFault,
  EpsLimitFault,
  FailRateFault,
  LatencyFault,
  ResetConnectionsFault,
  SilenceFault,
  ThrottleFault,
  ThrottleVerdict,
} from './faults';
import {
  FaultState,
  byteLimitFaultSchema,
  downFaultSchema,
  epsLimitFaultSchema,
  failRateFaultSchema,
  latencyFaultSchema,
  parseFault,
  resetConnectionsFaultSchema,
  seededRandom,
  silenceFaultSchema,
  throttleFaultSchema,
} from './faults';
import type { EndpointSpec } from './limits';
import { DEFAULT_MIN_ID_LENGTH, ENDPOINTS } from './limits';
import { isPlainObject } from './properties';
import type { GroupProfile, StoredEvent, UserProfile } from './store';
import { ProjectStore } from './store';
import type { AmplitudeEmulator, AmplitudeEmulatorOptions, RequestRecord } from './types';
import type { ItemProblems, ValidItem } from './validate';
import { validateEvents, validateGroupIdentifications, validateIdentifications } from './validate';

const gunzip = promisify(zlib.gunzip);

const HOST = '127.0.0.1';
/** Bodies are read up to this many wire bytes; beyond, the request answers 413 unread. */
const MAX_WIRE_BYTES = 64 * 1024 * 1024;
/** The request log keeps between this many and twice this many of the latest entries. */
const MAX_LOGGED_REQUESTS = 100_000;
const DEFAULT_SEED = 1;

/** The emulator could not listen; the message names the address. */
export class EmulatorStartError extends Error {
  override readonly name = 'EmulatorStartError';
}

interface Reply {
  status: number;
  body: string;
  contentType: string;
  headers?: Record<string, string>;
}

interface Outcome {
  reply: Reply;
  apiKey: string | null;
  events: number;
  bytes: number;
  text: string | undefined;
}

interface RawBody {
  buffer: Buffer;
  overflow: boolean;
}

function json(status: number, body: object, headers?: Record<string, string>): Reply {
  return { status, body: JSON.stringify(body), contentType: 'application/json', ...(headers ? { headers } : {}) };
}

const PAYLOAD_TOO_LARGE = json(413, { code: 413, error: 'Payload too large' });
const INVALID_JSON = json(400, { code: 400, error: 'Invalid JSON request body' });
const INVALID_API_KEY = json(400, { code: 400, error: 'Invalid API key' });
const FORBIDDEN = json(403, { code: 403, error: 'Forbidden' });

function missingField(field: string): Reply {
  return json(400, { code: 400, error: 'Request missing required field', missing_field: field });
}

/** 5xx bodies are undocumented: 500 as Amplitude's JSON, 502/503/504 as a load balancer's HTML page. */
function failureReply(status: number): Reply {
  if (status === 500) return json(500, { code: 500, error: 'Internal Server Error' });
  const title = `${status} ${http.STATUS_CODES[status] ?? 'Error'}`;
  return {
    status,
    body: `<html><head><title>${title}</title></head><body><center><h1>${title}</h1></center></body></html>\n`,
    contentType: 'text/html',
  };
}

function problemsReply(problems: ItemProblems): Reply {
  const missing = Object.keys(problems.missingFields).length > 0;
  const body: Record<string, unknown> = {
    code: 400,
    // an event missing a field gets the same message as a request missing one, without missing_field
    error: missing ? 'Request missing required field' : 'Invalid field values on some events',
  };
  if (Object.keys(problems.invalidFields).length > 0) body.events_with_invalid_fields = problems.invalidFields;
  if (missing) body.events_with_missing_fields = problems.missingFields;
  if (Object.keys(problems.invalidIdLengths).length > 0) {
    body.events_with_invalid_id_lengths = problems.invalidIdLengths;
  }
  return json(400, body);
}

function throttleReply(verdict: ThrottleVerdict, spec: EndpointSpec): Reply {
  const headers =
    verdict.retryAfterSeconds === undefined ? undefined : { 'retry-after': String(verdict.retryAfterSeconds) };
  return json(
    429,
    {
      code: 429,
      error: 'Too many requests for some devices and users',
      eps_threshold: verdict.epsThreshold ?? spec.epsThreshold,
      throttled_devices: verdict.throttledDevices,
      throttled_users: verdict.throttledUsers,
      throttled_events: verdict.throttledEvents,
      exceeded_daily_quota_users: verdict.quotaUsers,
      exceeded_daily_quota_devices: verdict.quotaDevices,
    },
    headers,
  );
}

function readBody(req: http.IncomingMessage): Promise<RawBody | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let overflow = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_WIRE_BYTES) overflow = true;
      else chunks.push(chunk);
    });
    req.on('end', () => resolve({ buffer: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), overflow }));
    req.on('error', () => resolve(undefined));
    req.on('aborted', () => resolve(undefined));
  });
}

function send(res: http.ServerResponse, reply: Reply): void {
  res.writeHead(reply.status, {
    'content-type': reply.contentType,
    'content-length': Buffer.byteLength(reply.body),
    ...reply.headers,
  });
  res.end(reply.body);
}

function clone<T>(value: T | undefined): T | undefined {
  return value === undefined ? undefined : structuredClone(value);
}

/** The emulator. Create it with `startAmplitudeEmulator`. */
export class AmplitudeEmulatorServer implements AmplitudeEmulator {
  readonly url: string;
  readonly port: number;
  private readonly server: http.Server;
  private readonly faults: FaultState;
  private readonly now: () => number;
  private readonly acceptedKeys: ReadonlySet<string> | undefined;
  private readonly storeEvents: boolean;
  private readonly storeProfiles: boolean;
  private readonly recordBodies: boolean;
  private projectStores = new Map<string, ProjectStore>();
  private storedEvents: StoredEvent[] = [];
  private log: RequestRecord[] = [];
  private listening = false;
  private closed = false;
  private downTimer: NodeJS.Timeout | undefined;
  private upWaiters: Array<() => void> = [];
  /** Requests being handled (a latency fault keeps them here after their client gave up). */
  private inFlight = 0;
  private settleWaiters: Array<() => void> = [];

  private constructor(server: http.Server, port: number, options: AmplitudeEmulatorOptions) {
    this.server = server;
    this.port = port;
    this.url = `http://${HOST}:${port}`;
    this.now = options.now ?? Date.now;
    this.faults = new FaultState(seededRandom(options.seed ?? DEFAULT_SEED), this.now);
    this.acceptedKeys = options.apiKeys === undefined ? undefined : new Set(options.apiKeys);
    this.storeEvents = options.storeEvents ?? true;
    this.storeProfiles = options.storeProfiles ?? this.storeEvents;
    this.recordBodies = options.recordBodies ?? this.storeEvents;
    this.listening = true;
  }

  /** Starts listening on 127.0.0.1 (ephemeral port unless `options.port`). */
  static async start(options: AmplitudeEmulatorOptions = {}): Promise<AmplitudeEmulatorServer> {
    const server = http.createServer();
    server.keepAliveTimeout = 60_000;
    await listen(server, options.port ?? 0);
    const port = (server.address() as AddressInfo).port;
    const emulator = new AmplitudeEmulatorServer(server, port, options);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => emulator.onRequest(req, res));
    server.on('clientError', (_err, socket) => socket.destroy());
    return emulator;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.downTimer);
    this.downTimer = undefined;
    if (this.listening) await this.stopListening();
  }

  throttle(fault: ThrottleFault): void {
    this.faults.throttle(parseFault('throttle', throttleFaultSchema, fault));
  }

  silence(fault: SilenceFault): void {
    this.faults.silence(parseFault('silence', silenceFaultSchema, fault));
  }

  failRate(fault: FailRateFault): void {
    this.faults.failRate(parseFault('failRate', failRateFaultSchema, fault));
  }

  latency(fault: LatencyFault): void {
    this.faults.latencyMs = parseFault('latency', latencyFaultSchema, fault).ms;
  }

  resetConnections(fault: ResetConnectionsFault): void {
    this.faults.resetConnections(parseFault('resetConnections', resetConnectionsFaultSchema, fault));
  }

  byteLimit(fault: ByteLimitFault): void {
    this.faults.byteLimit = parseFault('byteLimit', byteLimitFaultSchema, fault).bytes;
  }

  forbidden(): void {
    this.faults.forbidden = true;
  }

  epsLimit(fault: EpsLimitFault): void {
    this.faults.epsLimit(parseFault('epsLimit', epsLimitFaultSchema, fault));
  }

  clearFaults(): void {
    this.faults.clear();
  }

  async down(fault: DownFault): Promise<void> {
    const { forMs } = parseFault('down', downFaultSchema, fault);
    clearTimeout(this.downTimer);
    if (this.listening) await this.stopListening();
    this.downTimer = setTimeout(() => {
      this.downTimer = undefined;
      // a failed re-listen leaves the emulator down; waitUntilUp() callers keep waiting until close
      listen(this.server, this.port).then(
        () => this.markUp(),
        () => undefined,
      );
    }, forMs);
  }

  waitUntilUp(): Promise<void> {
    if (this.listening) return Promise.resolve();
    return new Promise((resolve) => this.upWaiters.push(resolve));
  }

  private markUp(): void {
    if (this.closed) {
      this.server.close();
      return;
    }
    this.listening = true;
    const waiters = this.upWaiters;
    this.upWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private stopListening(): Promise<void> {
    this.listening = false;
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private storesFor(apiKey: string | undefined): ProjectStore[] {
    if (apiKey === undefined) return [...this.projectStores.values()];
    const store = this.projectStores.get(apiKey);
    return store === undefined ? [] : [store];
  }

  events(apiKey?: string): readonly StoredEvent[] {
    if (apiKey === undefined) return this.storedEvents;
    return this.projectStores.get(apiKey)?.events ?? [];
  }

  eventCount(apiKey?: string): number {
    return this.storesFor(apiKey).reduce((sum, store) => sum + store.eventCount, 0);
  }

  duplicatesDropped(apiKey?: string): number {
    return this.storesFor(apiKey).reduce((sum, store) => sum + store.duplicatesDropped, 0);
  }

  user(userIdOrDeviceId: string, apiKey?: string): UserProfile | undefined {
    for (const store of this.storesFor(apiKey)) {
      const profile = store.user(userIdOrDeviceId);
      if (profile !== undefined) return clone(profile);
    }
    return undefined;
  }

  users(apiKey?: string): UserProfile[] {
    return this.storesFor(apiKey).flatMap((store) => structuredClone(store.users()));
  }

  group(groupType: string, groupValue: string, apiKey?: string): GroupProfile | undefined {
    for (const store of this.storesFor(apiKey)) {
      const group = store.group(groupType, groupValue);
      if (group !== undefined) return clone(group);
    }
    return undefined;
  }

  groups(apiKey?: string): GroupProfile[] {
    return this.storesFor(apiKey).flatMap((store) => structuredClone(store.groups()));
  }

  projects(): string[] {
    return [...this.projectStores.keys()];
  }

  requests(): readonly RequestRecord[] {
    return this.log;
  }

  reset(): void {
    this.projectStores = new Map();
    this.storedEvents = [];
    this.log = [];
  }

  settled(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push(resolve));
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.inFlight += 1;
    this.handle(req, res)
      .catch((err: unknown) => {
        const cause = err instanceof Error ? err.message : String(err);
        if (res.headersSent) res.destroy();
        else send(res, json(500, { code: 500, error: `emulator failure on ${req.method} ${req.url}: ${cause}` }));
      })
      .finally(() => {
        this.inFlight -= 1;
        if (this.inFlight > 0) return;
        const waiters = this.settleWaiters;
        this.settleWaiters = [];
        for (const resolve of waiters) resolve();
      });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    const queryAt = target.indexOf('?');
    const path = queryAt === -1 ? target : target.slice(0, queryAt);
    const raw = await readBody(req);
    if (raw === undefined) return;
    if (path.startsWith(ADMIN_PREFIX)) {
      const query = new URLSearchParams(queryAt === -1 ? '' : target.slice(queryAt + 1));
      handleAdmin(this, req, res, path, query, raw.buffer);
      return;
    }
    const spec = ENDPOINTS.get(path);
    const method = req.method ?? 'GET';
    const contentType = req.headers['content-type'] ?? null;
    const gzip = (req.headers['content-encoding'] ?? '').trim().toLowerCase() === 'gzip';
    const record = { at: this.now(), method, path, contentType, gzip, wireBytes: raw.buffer.length };
    const finish = (outcome: Outcome | undefined, status: number): void => {
      this.logRequest({
        ...record,
        status,
        apiKey: outcome?.apiKey ?? null,
        events: outcome?.events ?? 0,
        bytes: outcome?.bytes ?? 0,
        ...(this.recordBodies && outcome?.text !== undefined ? { body: outcome.text } : {}),
      });
    };
    if (spec === undefined || method !== 'POST') {
      const reply =
        spec === undefined
          ? json(404, { code: 404, error: `Not found: ${path}` })
          : json(405, { code: 405, error: `Method ${method} not allowed on ${path}: use POST` });
      send(res, reply);
      finish(undefined, reply.status);
      return;
    }

    if (this.faults.latencyMs > 0) await delay(this.faults.latencyMs);
    if (this.faults.rollReset()) {
      req.socket.destroy();
      finish(undefined, 0);
      return;
    }
    if (this.faults.forbidden) {
      send(res, FORBIDDEN);
      finish(undefined, 403);
      return;
    }
    const failure = this.faults.rollFailure();
    if (failure !== undefined && !failure.ingestBeforeFailing) {
      send(res, failureReply(failure.status));
      finish(undefined, failure.status);
      return;
    }
    const outcome = await this.process(spec, req, raw);
    // with ingestBeforeFailing the request was processed (and possibly stored) before the failure answer
    const reply = failure === undefined ? outcome.reply : failureReply(failure.status);
    send(res, reply);
    finish(outcome, reply.status);
  }

  private logRequest(record: RequestRecord): void {
    if (this.log.length >= 2 * MAX_LOGGED_REQUESTS) this.log = this.log.slice(-MAX_LOGGED_REQUESTS);
    this.log.push(record);
  }

  private async process(spec: EndpointSpec, req: http.IncomingMessage, raw: RawBody): Promise<Outcome> {
    const outcome = (reply: Reply, bytes = 0, text?: string, apiKey: string | null = null, events = 0): Outcome => ({
      reply,
      apiKey,
      events,
      bytes,
      text,
    });
    // limits are counted after decompression
    const limit = Math.min(spec.maxBodyBytes, this.faults.byteLimit ?? Number.POSITIVE_INFINITY);
    if (raw.overflow) return outcome(PAYLOAD_TOO_LARGE);
    const encoding = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
    let body: Buffer;
    if (encoding === 'gzip') {
      try {
        body = await gunzip(raw.buffer, { maxOutputLength: limit + 1 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return outcome(PAYLOAD_TOO_LARGE);
        return outcome(json(400, { code: 400, error: 'Invalid gzip request body' }));
      }
    } else if (encoding === '' || encoding === 'identity') {
      body = raw.buffer;
    } else {
      return outcome(json(400, { code: 400, error: `Unsupported Content-Encoding "${encoding}": use gzip` }));
    }
    if (body.length > limit) return outcome(PAYLOAD_TOO_LARGE, body.length);
    const text = body.toString('utf8');
    if (spec.kind === 'events') {
      const contentType = (req.headers['content-type'] ?? '').toLowerCase();
      if (!contentType.startsWith('application/json')) {
        const given = req.headers['content-type'] === undefined ? 'none' : `"${req.headers['content-type']}"`;
        return outcome(
          json(400, { code: 400, error: `Invalid Content-Type ${given}: expected application/json` }),
          body.length,
          text,
        );
      }
      return this.processEvents(spec, text, body.length);
    }
    return this.processForm(spec, text, body.length);
  }

  private acceptsKey(apiKey: string): boolean {
    return this.acceptedKeys === undefined || this.acceptedKeys.has(apiKey);
  }

  private processEvents(spec: EndpointSpec, text: string, bytes: number): Outcome {
    const base = { bytes, text, apiKey: null as string | null, events: 0 };
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      return { ...base, reply: INVALID_JSON };
    }
    if (!isPlainObject(payload)) return { ...base, reply: INVALID_JSON };
    const apiKey = payload.api_key;
    const events = payload.events;
    const counted = { ...base, events: Array.isArray(events) ? events.length : 0 };
    if (typeof apiKey !== 'string' || apiKey === '') return { ...counted, reply: missingField('api_key') };
    const keyed = { ...counted, apiKey };
    if (!this.acceptsKey(apiKey)) return { ...keyed, reply: INVALID_API_KEY };
    if (!Array.isArray(events) || events.length === 0) return { ...keyed, reply: missingField('events') };
    if (events.length > spec.maxItems) return { ...keyed, reply: PAYLOAD_TOO_LARGE };
    let minIdLength = DEFAULT_MIN_ID_LENGTH;
    const options = payload.options;
    if (isPlainObject(options) && options.min_id_length !== undefined && options.min_id_length !== null) {
      const given = options.min_id_length;
      if (typeof given !== 'number' || !Number.isSafeInteger(given) || given < 1) {
        return {
          ...keyed,
          reply: json(400, { code: 400, error: 'Invalid field values on some events: options.min_id_length' }),
        };
      }
      minIdLength = given;
    }
    const { items, problems } = validateEvents(events, minIdLength);
    return { ...keyed, reply: this.admit(spec, apiKey, items, problems, bytes) };
  }

  private processForm(spec: EndpointSpec, text: string, bytes: number): Outcome {
    const base = { bytes, text, apiKey: null as string | null, events: 0 };
    const form = new URLSearchParams(text);
    const apiKey = form.get('api_key');
    if (apiKey === null || apiKey === '') return { ...base, reply: missingField('api_key') };
    const keyed = { ...base, apiKey };
    if (!this.acceptsKey(apiKey)) return { ...keyed, reply: INVALID_API_KEY };
    const identification = form.get('identification');
    if (identification === null || identification === '') return { ...keyed, reply: missingField('identification') };
    let parsed: unknown;
    try {
      parsed = JSON.parse(identification);
    } catch {
      return { ...keyed, reply: INVALID_JSON };
    }
    const list: unknown[] = Array.isArray(parsed) ? parsed : [parsed];
    const counted = { ...keyed, events: list.length };
    if (list.length === 0) return { ...counted, reply: missingField('identification') };
    if (list.length > spec.maxItems) return { ...counted, reply: PAYLOAD_TOO_LARGE };
    const { items, problems } =
      spec.kind === 'identify'
        ? validateIdentifications(list, DEFAULT_MIN_ID_LENGTH)
        : validateGroupIdentifications(list);
    return { ...counted, reply: this.admit(spec, apiKey, items, problems, bytes) };
  }

  /**
   * Answers a validated request and ingests it on success. A 400 or 429 ingests NONE of the request's
   * items: amplitude-api.md ("Responses") says after a 400 "the indexed events are rejected and the rest
   * of the batch must be re-sent", and after a 429 the others "can be re-sent at once".
   */
  private admit(
    spec: EndpointSpec,
    apiKey: string,
    items: readonly ValidItem[],
    problems: ItemProblems,
    bytes: number,
  ): Reply {
    if (problems.any) return problemsReply(problems);
    const silenced = this.faults.silencedIn(items);
    if (silenced !== undefined) {
      return json(400, {
        code: 400,
        error: 'Events silenced for device_id',
        silenced_devices: silenced.devices,
        silenced_events: silenced.events,
      });
    }
    if (spec.kind !== 'groupidentify') {
      const verdict = this.faults.throttledIn(apiKey, items);
      if (verdict !== undefined) return throttleReply(verdict, spec);
    }
    const now = this.now();
    const store = this.project(apiKey);
    for (const item of items) {
      if (spec.kind === 'events') {
        if (store.isDuplicate(item, now)) continue;
        store.eventCount++;
        if (this.storeEvents) {
          item.record.server_upload_time = now;
          const stored = item.record as StoredEvent;
          this.storedEvents.push(stored);
          store.events.push(stored);
        }
      }
      store.apply(item);
    }
    this.faults.countIngested(apiKey, items);
    if (spec.kind !== 'events') return { status: 200, body: 'success', contentType: 'text/plain' };
    // events_ingested counts the request's events: dedup happens downstream and is not reported
    return json(200, { code: 200, events_ingested: items.length, payload_size_bytes: bytes, server_upload_time: now });
  }

  private project(apiKey: string): ProjectStore {
    let store = this.projectStores.get(apiKey);
    if (store === undefined) {
      store = new ProjectStore(apiKey, this.storeProfiles);
      this.projectStores.set(apiKey, store);
    }
    return store;
  }
}

function listen(server: http.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(
        new EmulatorStartError(`Amplitude emulator cannot listen on ${HOST}:${port}: ${err.message}`, { cause: err }),
      );
    };
    server.once('error', onError);
    server.listen(port, HOST, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * One side of the send comparison, alone in its process (`node send-sides.js --side S --url U --rows N`), posting the
 * benchmark's rows to the Amplitude emulator and printing `RESULT {json}`:
 *
 * - `ampsync-*`: ampsync's sender path without Temporal or state (compileMapper → packBatches → sender), mapping
 *   inside the timing, IN_FLIGHT_REQUESTS requests at once;
 * - `ampsync-send-*`: the same with every row mapped before the clock starts: what the send stage itself adds
 *   (packing, request bodies, gzip, per-row outcomes) over the raw path;
 * - `sdk-*`: what a user would write with @amplitude/analytics-node (track / identify, useBatch);
 * - `raw-*`: the limit of the path: request bodies built and gzipped before the clock starts, then POSTed with undici,
 *   IN_FLIGHT_REQUESTS at once, no mapping, no bookkeeping.
 */
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import { createInstance, Identify, Types } from '@amplitude/analytics-node';
import { Pool } from 'undici';
import { packBatches, requestBody } from '../../src/amplitude/batches';
import { createAmplitudeSender, DEFAULT_CONNECTIONS, DEFAULT_GZIP_LEVEL } from '../../src/amplitude/client';
import { endpointUrl } from '../../src/amplitude/endpoints';
import { compileMapper } from '../../src/amplitude/mapping';
import { loadFingerprintHash } from '../../src/diff/canonical';
import type { RowMapper, StagedRow } from '../../src/sync/types';
import { benchRow, type BenchModel, type BenchModelKind } from './generated-source';
import { BENCH_API_KEY } from './amplitude-process';
import { benchSync } from './syncs';

export const SIDES = [
  'ampsync-events',
  'ampsync-identifies',
  'ampsync-send-events',
  'ampsync-send-identifies',
  'sdk-events',
  'sdk-identifies',
  'raw-events',
  'raw-identifies',
] as const;
export type Side = (typeof SIDES)[number];

/**
 * Requests in flight at once, as in a sync's send stage: its chunks (concurrency) each keep several batches in
 * flight, and the sender's keep-alive pool caps them at its connections.
 */
export const IN_FLIGHT_REQUESTS = DEFAULT_CONNECTIONS;
/** Rows per request (ampsync's default batchSize; the SDK's flushQueueSize). */
export const BATCH_ROWS = 1000;
/** Rows generated and mapped at a time: the slice of the model held in memory. */
export const SLICE_ROWS = 10_000;
/** The SDK flushes on its timer only (flushQueueSize caps a request): a short interval is its fastest setting. */
export const SDK_FLUSH_INTERVAL_MS = 10;
const MIN_ID_LENGTH = 5;

/** What one side measured. */
export interface SideResult {
  side: Side;
  rows: number;
  delivered: number;
  seconds: number;
  rowsPerSecond: number;
  peakRssMb: number;
  /** Seconds spent before the clock started (raw: building and gzipping bodies; ampsync-send: mapping). */
  preparedSeconds: number;
}

/** A side was asked for something it cannot do, or a row failed to map. */
export class SendSideError extends Error {
  override readonly name = 'SendSideError';
}

const gzip = promisify(gzipCallback);

function kindOf(side: Side): BenchModelKind {
  return side.endsWith('-events') ? 'events' : 'users';
}

function mapperFor(kind: BenchModelKind, url: string): RowMapper {
  return compileMapper(benchSync({ id: `send-${kind}`, kind, rows: 0, revision: 0, amplitudeUrl: url }));
}

function* slices(kind: BenchModelKind, rows: number, mapper: RowMapper): Generator<StagedRow[]> {
  const model: BenchModel = { kind, rows, revision: 0 };
  for (let start = 0; start < rows; start += SLICE_ROWS) {
    const slice: StagedRow[] = [];
    for (let i = start; i < Math.min(rows, start + SLICE_ROWS); i++) {
      const result = mapper.map(benchRow(model, i));
      if (!result.ok) throw new SendSideError(`row ${i} of the ${kind} model was rejected: ${result.reason}`);
      slice.push({ key: result.key, payload: result.payload });
    }
    yield slice;
  }
}

/** Runs `work` on IN_FLIGHT_REQUESTS loops pulling from one iterator. */
async function inFlight<T>(items: Iterator<T>, work: (item: T) => Promise<void>): Promise<void> {
  await Promise.all(
    Array.from({ length: IN_FLIGHT_REQUESTS }, async () => {
      for (let next = items.next(); next.done !== true; next = items.next()) await work(next.value);
    }),
  );
}

async function runAmpsync(url: string, source: Iterable<StagedRow[]>): Promise<number> {
  const sender = createAmplitudeSender({
    api: 'batch',
    region: 'us',
    baseUrl: url,
    apiKey: BENCH_API_KEY,
    minIdLength: MIN_ID_LENGTH,
    batchSize: BATCH_ROWS,
  });
  function* batches(): Generator<StagedRow[]> {
    for (const slice of source) yield* packBatches(slice, sender.limits);
  }
  let delivered = 0;
  await inFlight(batches(), async (batch) => {
    for (const outcome of await sender.sendBatch(batch)) if (outcome.status === 'delivered') delivered++;
  });
  await sender.close();
  return delivered;
}

/** Request bodies as the sender builds them (envelope, gzip level), ready before the clock starts. */
async function prebuiltBodies(kind: BenchModelKind, url: string, rows: number): Promise<Buffer[]> {
  const mapper = mapperFor(kind, url);
  const prefix = `{"api_key":${JSON.stringify(BENCH_API_KEY)},"events":`;
  const suffix = `,"options":{"min_id_length":${MIN_ID_LENGTH}}}`;
  const bodies: Buffer[] = [];
  for (const slice of slices(kind, rows, mapper)) {
    for (let at = 0; at < slice.length; at += BATCH_ROWS) {
      const body = requestBody(prefix, slice.slice(at, at + BATCH_ROWS), 'json', suffix);
      bodies.push(await gzip(body, { level: DEFAULT_GZIP_LEVEL }));
    }
  }
  return bodies;
}

async function runRaw(url: string, bodies: Buffer[]): Promise<number> {
  const target = new URL(endpointUrl('batch', 'us', url));
  const pool = new Pool(target.origin, { connections: DEFAULT_CONNECTIONS, pipelining: 1 });
  let delivered = 0;
  await inFlight(bodies.values(), async (body) => {
    const res = await pool.request({
      path: target.pathname,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', accept: 'application/json' },
      body,
    });
    const answer = (await res.body.json()) as { events_ingested?: number };
    if (res.statusCode !== 200) throw new SendSideError(`raw POST ${target.href} answered ${res.statusCode}`);
    delivered += answer.events_ingested ?? 0;
  });
  await pool.close();
  return delivered;
}

async function runSdk(kind: BenchModelKind, url: string, rows: number): Promise<number> {
  const client = createInstance();
  await client.init(BENCH_API_KEY, {
    serverUrl: `${url}/batch`,
    useBatch: true,
    flushQueueSize: BATCH_ROWS,
    flushIntervalMillis: SDK_FLUSH_INTERVAL_MS,
    logLevel: Types.LogLevel.None,
  }).promise;
  const model: BenchModel = { kind, rows, revision: 0 };
  let delivered = 0;
  for (let start = 0; start < rows; start += SLICE_ROWS) {
    const pending: Promise<{ code: number }>[] = [];
    for (let i = start; i < Math.min(rows, start + SLICE_ROWS); i++) {
      const row = benchRow(model, i);
      if (kind === 'events') {
        const properties: Record<string, unknown> = { path: row.path, plan: row.plan, duration_ms: row.duration_ms };
        if (row.referrer !== null) properties.referrer = row.referrer;
        pending.push(
          client.track({
            event_type: 'Page Viewed',
            user_id: row.user_id as string,
            time: row.occurred_at as number,
            insert_id: row.event_id as string,
            event_properties: properties,
          }).promise,
        );
      } else {
        const identify = new Identify()
          .set('plan', row.plan as string)
          .set('lifetime_value', row.lifetime_value as number)
          .set('sessions_30d', row.sessions_30d as number)
          .set('email_domain', row.email_domain as string)
          .setOnce('activated_on', row.activated_on as string);
        if (row.trial_ends_at !== null) identify.set('trial_ends_at', row.trial_ends_at as string);
        pending.push(
          client.identify(identify, { user_id: row.user_id as string, extra: { groups: { account: row.account_id } } })
            .promise,
        );
      }
    }
    for (const result of await Promise.all(pending)) if (result.code === 200) delivered++;
  }
  await client.flush().promise;
  return delivered;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { side: { type: 'string' }, url: { type: 'string' }, rows: { type: 'string' } },
    strict: true,
  });
  const side = values.side as Side;
  if (!SIDES.includes(side)) throw new SendSideError(`--side must be one of ${SIDES.join(', ')}`);
  const url = values.url ?? '';
  const rows = Number(values.rows);
  const kind = kindOf(side);
  await loadFingerprintHash();
  const prepareStart = performance.now();
  const bodies = side.startsWith('raw-') ? await prebuiltBodies(kind, url, rows) : [];
  const mapped = side.startsWith('ampsync-send-') ? [...slices(kind, rows, mapperFor(kind, url))] : [];
  const preparedSeconds = (performance.now() - prepareStart) / 1000;
  const started = performance.now();
  const delivered = side.startsWith('raw-')
    ? await runRaw(url, bodies)
    : side.startsWith('sdk-')
      ? await runSdk(kind, url, rows)
      : await runAmpsync(url, side.startsWith('ampsync-send-') ? mapped : slices(kind, rows, mapperFor(kind, url)));
  const seconds = (performance.now() - started) / 1000;
  const result: SideResult = {
    side,
    rows,
    delivered,
    seconds: Math.round(seconds * 100) / 100,
    rowsPerSecond: Math.round(rows / seconds),
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
    preparedSeconds: Math.round(preparedSeconds * 100) / 100,
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`send side failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}

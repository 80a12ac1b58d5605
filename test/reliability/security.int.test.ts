/**
 * Secrets and personal data stay out of Temporal. Real runs (one that succeeds, one that fails on a wrong API
 * key) by a worker in a child process: their full histories, descriptions (memo, search attributes), results,
 * failures and the worker's logs hold neither API key nor any row value. With AMPSYNC_CODEC_KEY set, the client
 * and the worker encrypt every payload (the raw history shows only `binary/encrypted`), and `ampsync codec-server`
 * decodes them for the Temporal UI. The state folder and file are private, and a syncs file others may write
 * draws a warning.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspect } from 'node:util';
import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { History } from '@temporalio/common/lib/proto-utils';
import { AmpsyncClient } from '../../src/client/client';
import { syncSchema } from '../../src/config/schema';
import { openStateStore } from '../../src/state';
import type { SyncWorkflowResult } from '../../workflows/definitions';
import { startAmplitudeEmulator, type AmplitudeEmulator } from '../../src/emulator/amplitude';
import { syncWorkflowId } from '../../src/temporal/names';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/temporal/search-attributes';
import { AesGcmPayloadCodec, codecFromEnv, ENCRYPTED_ENCODING } from '../../src/temporal/codec';
import { startCodecServer } from '../../src/cli/codec-server';
import { describeFailure } from '../../src/cli/format';
import { services, uniqueName } from '../support/env';
import { EMAIL_DOMAIN, SECRET_PLAN, userRow, type GeneratedModel } from './support/generated-source';
import { WorkerProcess, freePort, sleep } from './support/processes';
import { generatedSync, summaryLine, uniqueSyncId, writeBundle } from './support/runs';

jest.setTimeout(240_000);

/** What Temporal's core writes, unencoded, into a local activity's marker (`details.data`). */
const LOCAL_ACTIVITY_MARKER_KEYS = new Set([
  'seq',
  'attempt',
  'activity_id',
  'activity_type',
  'complete_time',
  'backoff',
  'original_schedule_time',
]);

const BIN = path.join(__dirname, '..', '..', 'bin', 'ampsync.js');
const API_KEY = `sk-ampsync-${randomBytes(12).toString('hex')}`;
const WRONG_KEY = `sk-wrong-${randomBytes(12).toString('hex')}`;
const KEY_ENV = 'RELIABILITY_SECURITY_KEY';
const WRONG_KEY_ENV = 'RELIABILITY_SECURITY_WRONG_KEY';
const CODEC_ENV = {
  AMPSYNC_CODEC_KEY: randomBytes(32).toString('base64'),
  AMPSYNC_CODEC_KEY_ID: 'reliability-2026-11',
};
const MODEL: GeneratedModel = { kind: 'users', rows: 800, seed: 9001, version: 1, delayMs: 0 };

let emulator: AmplitudeEmulator;
let connection: Connection;
/** A client without codec: it sees what the Temporal server stores. */
let raw: Client;
let dir: string;
let bundle: string;
const tally = { secretOccurrences: 0, rowValueOccurrences: 0, textsScanned: 0, bytesScanned: 0, encryptedPayloads: 0 };

/** Secrets and row values that must never appear in anything Temporal holds or the worker logs. */
const SECRETS = [API_KEY, WRONG_KEY, CODEC_ENV.AMPSYNC_CODEC_KEY];
const ROW_VALUES = [EMAIL_DOMAIN, SECRET_PLAN, userRow(MODEL, 3).email as string];

beforeAll(async () => {
  emulator = await startAmplitudeEmulator({ port: 0, apiKeys: [API_KEY] });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-security-'));
  bundle = await writeBundle(dir);
  connection = await Connection.connect({ address: services.temporalAddress });
  raw = new Client({ connection });
});

afterAll(async () => {
  console.log(
    summaryLine('security', {
      'secret occurrences': tally.secretOccurrences,
      'row value occurrences': tally.rowValueOccurrences,
      'texts scanned': `${tally.textsScanned} (${(tally.bytesScanned / 1024).toFixed(0)} KiB)`,
      'encrypted payloads in history': tally.encryptedPayloads,
    }),
  );
  await connection?.close();
  await emulator?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Text of anything: byte arrays are read as UTF-8 and as base64, so an encoded secret is found too. */
function textOf(value: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  const walk = (v: unknown): void => {
    if (v === null || v === undefined) return;
    if (typeof v === 'string') parts.push(v);
    else if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') parts.push(String(v));
    else if (v instanceof Uint8Array) parts.push(Buffer.from(v).toString('utf8'), Buffer.from(v).toString('base64'));
    else if (v instanceof Date) parts.push(v.toISOString());
    else if (v instanceof Map) {
      for (const [k, x] of v) {
        walk(k);
        walk(x);
      }
    } else if (typeof v === 'object' && !seen.has(v)) {
      seen.add(v);
      if (v instanceof Error) parts.push(v.message, v.stack ?? '', inspect(v, { depth: 10 }));
      for (const [k, x] of Object.entries(v)) {
        parts.push(k);
        walk(x);
      }
    }
  };
  walk(value);
  return parts.join('\n');
}

function occurrences(text: string, needles: string[]): Record<string, number> {
  const found: Record<string, number> = {};
  for (const n of needles) {
    const count = text.split(n).length - 1;
    if (count > 0) found[n] = count;
  }
  return found;
}

/** Scans a text for secrets and row values, counting what it finds. */
function scan(what: string, value: unknown): { secrets: Record<string, number>; rows: Record<string, number> } {
  const text = typeof value === 'string' ? value : textOf(value);
  tally.textsScanned += 1;
  tally.bytesScanned += text.length;
  const secrets = occurrences(text, SECRETS);
  const rows = occurrences(text, ROW_VALUES);
  tally.secretOccurrences += Object.values(secrets).reduce((a, b) => a + b, 0);
  tally.rowValueOccurrences += Object.values(rows).reduce((a, b) => a + b, 0);
  return { secrets, rows, ...(Object.keys(secrets).length + Object.keys(rows).length > 0 ? { in: what } : {}) };
}

async function histories(workflowId: string): Promise<History[]> {
  const out: History[] = [];
  for await (const h of raw.workflow.list({ query: `WorkflowId = '${workflowId}'` }).intoHistories()) {
    out.push(h.history as History);
  }
  return out;
}

function workerEnv(taskQueue: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    RELIABILITY_TEMPORAL_ADDRESS: services.temporalAddress,
    RELIABILITY_TASK_QUEUE: taskQueue,
    RELIABILITY_STATE: `sqlite:${path.join(dir, `${taskQueue}.db`)}`,
    RELIABILITY_BUNDLE: bundle,
    RELIABILITY_LOG_LEVEL: 'DEBUG',
    RELIABILITY_PAGE_SIZE: '200',
    [KEY_ENV]: API_KEY,
    [WRONG_KEY_ENV]: WRONG_KEY,
    ...extra,
  };
}

test('the API key and row values appear nowhere in histories, memos, search attributes, results, failures or logs', async () => {
  const taskQueue = uniqueName('security');
  const worker = await WorkerProcess.start('worker', workerEnv(taskQueue));
  const client = await AmpsyncClient.connect({ address: services.temporalAddress, taskQueue, payloadCodec: null });
  const good = generatedSync({
    id: uniqueSyncId('secure'),
    model: MODEL,
    baseUrl: emulator.url,
    apiKeyEnv: KEY_ENV,
    options: { chunkSize: 200, batchSize: 100 },
  });
  const bad = generatedSync({
    id: uniqueSyncId('wrong-key'),
    model: MODEL,
    baseUrl: emulator.url,
    apiKeyEnv: WRONG_KEY_ENV,
  });
  // a mapping mistake that rejects every row with a reason quoting the value (an email where a time belongs)
  const mistaken = syncSchema.parse({
    ...good,
    id: uniqueSyncId('mistaken'),
    mappings: [...good.mappings, { from: 'email', to: 'time' }],
  });
  let failure: unknown;
  let result: unknown;
  let rejecting: SyncWorkflowResult | undefined;
  const progress: unknown[] = [];
  try {
    result = await client.run(good, { onProgress: (p) => progress.push(p), pollMs: 200 });
    failure = await client.run(bad).catch((e: unknown) => e);
    rejecting = await client.run(mistaken, { onProgress: (p) => progress.push(p), pollMs: 200 });
  } finally {
    await client.close();
    await worker.stop();
  }
  expect(result).toMatchObject({ status: 'succeeded', counts: { delivered: MODEL.rows } });
  expect(rejecting).toMatchObject({ status: 'succeeded', counts: { invalid: MODEL.rows, delivered: 0 } });
  expect(rejecting.sampleRejections[0]).toMatchObject({ key: userRow(MODEL, 0).user_id, stage: 'validation' });
  // the state store, in the user's own infrastructure, keeps the full reason
  const store = openStateStore(`sqlite:${path.join(dir, `${taskQueue}.db`)}`);
  const kept = await store.listRejected(mistaken.id, 1).finally(() => store.close());
  expect(kept[0]?.reason).toContain(`"person.${MODEL.rows - 1}@${EMAIL_DOMAIN}" is not a timestamp`);
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  expect(describeFailure(failure)).toContain('answered 400 (Invalid API key)');
  // the key did reach Amplitude: the scan below would find it if it travelled through Temporal
  expect(emulator.user(userRow(MODEL, 3).user_id as string, API_KEY)?.user_properties.email).toBe(
    userRow(MODEL, 3).email,
  );

  const all = await Promise.all([good, bad, mistaken].map((s) => histories(syncWorkflowId(s.id))));
  for (const h of all) expect(h.length).toBeGreaterThanOrEqual(1);
  const historyText = textOf(all);
  // without a codec the history holds the workflow input as JSON: a scan that can find things
  expect(historyText).toContain(`"sql":"generated:users?rows=${MODEL.rows}`);
  expect(historyText).toContain(KEY_ENV);

  const described = await Promise.all(
    [good, bad, mistaken].map((s) => raw.workflow.getHandle(syncWorkflowId(s.id)).describe()),
  );
  expect(described[0]!.memo).toMatchObject({ syncId: good.id });
  const logs = `${worker.stdout}\n${worker.stderr}`;
  expect(logs.split('\n').length).toBeGreaterThan(20);
  expect(logs).toContain('prepared sync run');

  const findings = [
    scan('histories', historyText),
    scan(
      'memo and search attributes',
      described.map((d) => ({ memo: d.memo, sa: d.typedSearchAttributes, raw: d.raw })),
    ),
    scan('results and progress', [result, rejecting, progress]),
    scan('failure', [failure, describeFailure(failure), inspect(failure, { depth: 20 })]),
    scan('worker logs', logs),
  ];
  expect(findings).toEqual(findings.map(() => ({ secrets: {}, rows: {} })));
});

/** Every payload in a history, with where it sits. */
function payloadsOf(history: History): { at: string; metadata: Record<string, Uint8Array>; data: Uint8Array }[] {
  const found: { at: string; metadata: Record<string, Uint8Array>; data: Uint8Array }[] = [];
  const walk = (v: unknown, at: string): void => {
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return;
    const o = v as Record<string, unknown>;
    if (o.metadata && typeof o.metadata === 'object' && o.data instanceof Uint8Array) {
      found.push({ at, metadata: o.metadata as Record<string, Uint8Array>, data: o.data });
      return;
    }
    for (const [k, x] of Object.entries(o)) walk(x, `${at}.${k}`);
  };
  (history.events ?? []).forEach((e, i) => walk(e, `events[${i}]`));
  return found;
}

/** Every failure in a history (an event's failure and the causes under it). */
function failuresOf(history: History): FailureLike[] {
  const found: FailureLike[] = [];
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if ((k === 'failure' || k === 'cause') && x !== null && typeof x === 'object') found.push(x);
      walk(x);
    }
  };
  (history.events ?? []).forEach((e) => walk(e));
  return found;
}

interface FailureLike {
  message?: string | null;
  stackTrace?: string | null;
  encodedAttributes?: { metadata?: Record<string, Uint8Array> | null } | null;
}

const utf8 = (b: Uint8Array | undefined): string => Buffer.from(b ?? new Uint8Array()).toString('utf8');

describe('with AMPSYNC_CODEC_KEY set', () => {
  let sync: ReturnType<typeof generatedSync>;
  let rawHistory: History;

  test('client and worker encrypt every payload: the server stores only binary/encrypted', async () => {
    const taskQueue = uniqueName('codec');
    const worker = await WorkerProcess.start('codec-worker', workerEnv(taskQueue, CODEC_ENV));
    const saved = { ...process.env };
    Object.assign(process.env, CODEC_ENV);
    let client: AmpsyncClient;
    try {
      client = await AmpsyncClient.connect({ address: services.temporalAddress, taskQueue });
    } finally {
      process.env = saved;
    }
    sync = generatedSync({
      id: uniqueSyncId('codec'),
      model: MODEL,
      baseUrl: emulator.url,
      apiKeyEnv: KEY_ENV,
      options: { chunkSize: 400 },
    });
    try {
      const result = await client.run(sync);
      expect(result).toMatchObject({ syncId: sync.id, status: 'succeeded', counts: { delivered: MODEL.rows } });
      expect((await client.progress(sync.id))?.phase).toBe('done');
    } finally {
      await client.close();
      await worker.stop();
    }

    const handle: WorkflowHandle = raw.workflow.getHandle(syncWorkflowId(sync.id));
    rawHistory = await handle.fetchHistory();
    // search attributes stay readable (the server indexes them): ampsync's names and counts, nothing else
    const all = payloadsOf(rawHistory);
    const indexed = all.filter((p) => p.at.includes('.searchAttributes.indexedFields.'));
    expect(new Set(indexed.map((p) => p.at.slice(p.at.lastIndexOf('.') + 1)))).toEqual(
      new Set(Object.keys(SEARCH_ATTRIBUTE_TYPES)),
    );
    // a local activity's marker carries the SDK's own bookkeeping (sequence, attempt, activity id and type, times)
    // as plain JSON, written by Temporal's core, which no codec sees; its result sits beside it, encrypted
    const markerData = all.filter((p) => /markerRecordedEventAttributes\.details\.data\./.test(p.at));
    expect(markerData).toHaveLength(2);
    for (const p of markerData) {
      const data = JSON.parse(utf8(p.data)) as Record<string, unknown>;
      expect(Object.keys(data).every((k) => LOCAL_ACTIVITY_MARKER_KEYS.has(k))).toBe(true);
      expect(['prepareRun', 'finishRun']).toContain(data.activity_type);
    }
    const payloads = all.filter((p) => !indexed.includes(p) && !markerData.includes(p));
    // input, memo, activity inputs and results, local activity results, heartbeats, the result
    expect(payloads.length).toBeGreaterThan(10);
    expect(payloads.some((p) => /markerRecordedEventAttributes\.details\.result\./.test(p.at))).toBe(true);
    expect(new Set(payloads.map((p) => utf8(p.metadata.encoding)))).toEqual(new Set([ENCRYPTED_ENCODING]));
    expect(new Set(payloads.map((p) => utf8(p.metadata['encryption-key-id'])))).toEqual(
      new Set([CODEC_ENV.AMPSYNC_CODEC_KEY_ID]),
    );
    expect(payloads.some((p) => p.at.includes('.memo.'))).toBe(true);
    tally.encryptedPayloads += payloads.length;
    const text = textOf(rawHistory);
    expect(text).not.toContain('generated:users');
    expect(text).not.toContain(KEY_ENV);
    expect(scan('encrypted history', text)).toEqual({ secrets: {}, rows: {} });
    // a client without the key still finds the run by its search attributes
    const found = await raw.workflow.count(`AmpsyncSyncId = '${sync.id}' AND AmpsyncStatus = 'succeeded'`);
    expect(found.count).toBe(1);
  });

  test('failure messages and stack traces are encrypted too; the codec client and the worker read them', async () => {
    const taskQueue = uniqueName('codec-failure');
    // no prebuilt bundle: the worker bundles its workflows at start, with the failure converter, as `ampsync worker`
    const env = workerEnv(taskQueue, CODEC_ENV);
    delete env.RELIABILITY_BUNDLE;
    const worker = await WorkerProcess.start('codec-failure-worker', env);
    const client = await AmpsyncClient.connect({
      address: services.temporalAddress,
      taskQueue,
      payloadCodec: codecFromEnv(CODEC_ENV)!,
    });
    const failing = generatedSync({
      id: uniqueSyncId('codec-wrong-key'),
      model: MODEL,
      baseUrl: emulator.url,
      apiKeyEnv: WRONG_KEY_ENV,
    });
    let failure: unknown;
    try {
      failure = await client.run(failing).catch((e: unknown) => e);
    } finally {
      await client.close();
      await worker.stop();
    }
    // the client decodes the failure chain: the user reads what went wrong
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(describeFailure(failure)).toContain('answered 400 (Invalid API key)');
    // the workflow read it too, and recorded it in the state store, in the user's own infrastructure
    const store = openStateStore(`sqlite:${path.join(dir, `${taskQueue}.db`)}`);
    const runs = await store.listRuns(failing.id, 1).finally(() => store.close());
    expect(runs[0]).toMatchObject({ status: 'failed' });
    expect(runs[0]?.error).toContain('Invalid API key');

    // the server holds "Encoded failure" and an encrypted payload in place of every message and stack trace
    const history = await raw.workflow.getHandle(syncWorkflowId(failing.id)).fetchHistory();
    const failures = failuresOf(history);
    expect(failures.length).toBeGreaterThanOrEqual(2); // the activity's failure and the workflow's
    for (const f of failures) {
      expect(f.message).toBe('Encoded failure');
      expect(f.stackTrace ?? '').toBe('');
      expect(utf8(f.encodedAttributes?.metadata?.encoding ?? undefined)).toBe(ENCRYPTED_ENCODING);
    }
    const text = textOf(history);
    expect(text).not.toContain('Invalid API key');
    expect(text).not.toContain('answered 400');
    expect(scan('encrypted failure history', text)).toEqual({ secrets: {}, rows: {} });
  });

  test('the codec endpoint decodes history payloads for the UI: CORS for its origin, bearer token checked', async () => {
    expect(rawHistory).toBeDefined();
    const codec = codecFromEnv(CODEC_ENV)!;
    const server = await startCodecServer({
      codec,
      port: 0,
      token: 'ui-token-1',
      corsOrigins: ['http://127.0.0.1:8233'],
    });
    const started = rawHistory.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    expect(started).toBeDefined();
    const body = JSON.stringify({
      payloads: [
        {
          metadata: Object.fromEntries(
            Object.entries(started!.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
          ),
          data: Buffer.from(started!.data!).toString('base64'),
        },
      ],
    });
    const post = (route: string, payload: string, headers: Record<string, string> = {}) =>
      fetch(`${server.url}${route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers },
        body: payload,
      });
    try {
      const preflight = await fetch(`${server.url}/decode`, {
        method: 'OPTIONS',
        headers: { origin: 'http://127.0.0.1:8233', 'access-control-request-method': 'POST' },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe('http://127.0.0.1:8233');
      expect(preflight.headers.get('access-control-allow-headers')).toContain('x-namespace');
      const foreign = await fetch(`${server.url}/decode`, {
        method: 'OPTIONS',
        headers: { origin: 'http://evil.example' },
      });
      expect(foreign.headers.get('access-control-allow-origin')).toBeNull();

      expect((await post('/decode', body)).status).toBe(401);
      expect((await post('/decode', body, { authorization: 'Bearer wrong' })).status).toBe(401);

      const decoded = await post('/decode', body, {
        authorization: 'Bearer ui-token-1',
        origin: 'http://127.0.0.1:8233',
      });
      expect(decoded.status).toBe(200);
      expect(decoded.headers.get('access-control-allow-origin')).toBe('http://127.0.0.1:8233');
      const json = (await decoded.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
      expect(Buffer.from(json.payloads[0]!.metadata.encoding!, 'base64').toString()).toBe('json/plain');
      const input = JSON.parse(Buffer.from(json.payloads[0]!.data, 'base64').toString('utf8')) as {
        sync: { id: string; model: unknown };
      };
      expect(input.sync.id).toBe(sync.id);
      expect(input.sync.model).toEqual(sync.model);

      const stranger = await startCodecServer({
        codec: new AesGcmPayloadCodec({ keys: [{ id: 'other', key: randomBytes(32) }] }),
        port: 0,
      });
      try {
        const refused = await fetch(`${stranger.url}/decode`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        expect(refused.status).toBe(400);
        expect(((await refused.json()) as { error: string }).error).toContain(
          `payload sealed with codec key "${CODEC_ENV.AMPSYNC_CODEC_KEY_ID}", which this process does not have (it has: other)`,
        );
      } finally {
        await stranger.close();
      }
      expect((await post('/nothing', body, { authorization: 'Bearer ui-token-1' })).status).toBe(404);
      expect((await post('/decode', '{"nope":1}', { authorization: 'Bearer ui-token-1' })).status).toBe(400);
    } finally {
      await server.close();
    }
  });

  test('`ampsync codec-server --port N` serves /encode and /decode with the keys from the environment', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, 'codec-server', '--port', String(port)], {
      env: { ...process.env, NODE_OPTIONS: '', ...CODEC_ENV, AMPSYNC_CODEC_SERVER_TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      for (let i = 0; i < 300 && !stderr.includes('codec server on'); i++) await sleep(100);
      expect(stderr).toContain(
        `ampsync codec server on http://127.0.0.1:${port} (keys ${CODEC_ENV.AMPSYNC_CODEC_KEY_ID}`,
      );
      const plain = {
        metadata: { encoding: Buffer.from('json/plain').toString('base64') },
        data: Buffer.from('{"hello":"ui"}').toString('base64'),
      };
      const encoded = await fetch(`http://127.0.0.1:${port}/encode`, {
        method: 'POST',
        body: JSON.stringify({ payloads: [plain] }),
      });
      const sealed = (await encoded.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
      expect(Buffer.from(sealed.payloads[0]!.metadata.encoding!, 'base64').toString()).toBe(ENCRYPTED_ENCODING);
      expect(Buffer.from(sealed.payloads[0]!.data, 'base64').toString()).not.toContain('hello');
      const decoded = await fetch(`http://127.0.0.1:${port}/decode`, { method: 'POST', body: JSON.stringify(sealed) });
      expect(((await decoded.json()) as { payloads: unknown[] }).payloads).toEqual([plain]);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});

test('the state folder and the SQLite file are private; a syncs file others may write draws a warning', async () => {
  const cwd = fs.mkdtempSync(path.join(dir, 'cwd-'));
  const file = path.join(cwd, 'ampsync.yaml');
  fs.writeFileSync(
    file,
    `version: 1
syncs:
  - id: users
    object: users
    source: { project: my-project }
    model: { sql: "SELECT user_id FROM crm.users" }
    key: user_id
    mappings: [{ from: user_id, to: user_id }]
    destination: { apiKey: { env: ${KEY_ENV} } }
`,
  );
  fs.chmodSync(file, 0o666);
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
  delete env.AMPSYNC_STATE;
  delete env.AMPSYNC_HOME;
  const reset = (): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        [BIN, '-f', 'ampsync.yaml', 'reset', 'users'],
        { cwd, env, timeout: 60_000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  const first = await reset();
  expect(first.code).toBe(0);
  expect(first.stdout).toContain('users: forgot 0 delivered keys');
  expect(first.stderr).toContain('⚠ syncs file ampsync.yaml is writable by every user (mode 666)');
  const data = path.join(cwd, '.ampsync', 'data');
  expect(fs.statSync(data).mode & 0o777).toBe(0o700);
  for (const name of fs.readdirSync(data))
    expect({ name, mode: fs.statSync(path.join(data, name)).mode & 0o777 }).toEqual({ name, mode: 0o600 });
  expect(fs.readdirSync(data)).toContain('state.db');

  fs.chmodSync(file, 0o664);
  expect((await reset()).stderr).toContain('is writable by its group (mode 664)');
  fs.chmodSync(file, 0o644);
  const quiet = await reset();
  expect(quiet.code).toBe(0);
  expect(quiet.stderr).not.toContain('writable');
});

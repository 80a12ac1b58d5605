/**
 * Bad input: every kind of syncs-file mistake (through the loader and through the `ampsync` command), a missing
 * API-key variable, a mapping to a column the model lacks, rows Amplitude would refuse, and a model whose schema
 * changes between runs. A mistake in the file or the mapping stops with an error naming the file, path, column or
 * variable; a bad row is rejected alone, with its reason kept in the state store, and every other row is delivered.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { ConfigError, loadSyncsFile } from '../../src/config/load';
import { syncSchema, type SyncConfig, type SyncConfigInput } from '../../src/config/schema';
import { startAmplitudeEmulator, type AmplitudeEmulator } from '../../src/emulator/amplitude';
import { openStateStore } from '../../src/state';
import type { StateStore } from '../../src/state/types';
import type { Source, SourceRow, SourceValue } from '../../src/sync/types';
import { recorder } from '../sources/bigquery/support';
import { field, MemorySource } from '../support/memory-source';
import { createHarness, type Harness } from '../support/temporal';
import { summaryLine, uniqueSyncId } from './support/runs';

jest.setTimeout(180_000);

const BIN = path.join(__dirname, '..', '..', 'bin', 'ampsync.js');
const API_KEY = 'bad-input-amplitude-key-3c8d';
const KEY_ENV = 'RELIABILITY_BAD_INPUT_KEY';

let harness: Harness;
let emulator: AmplitudeEmulator;
let dir: string;
let store: StateStore;
let current: Source;
let stopWorker: () => Promise<void>;
const tally = { tried: 0, clearErrors: 0, rowsRejected: 0, goodRowsLost: 0 };

beforeAll(async () => {
  harness = await createHarness();
  emulator = await startAmplitudeEmulator({ port: 0, apiKeys: [API_KEY] });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-bad-input-'));
  process.env[KEY_ENV] = API_KEY;
  store = openStateStore(`sqlite:${path.join(dir, 'state.db')}`);
  await store.migrate();
  const worker = await harness.startWorker({ state: store, sourceFor: () => current });
  stopWorker = worker.stop;
});

afterAll(async () => {
  console.log(
    summaryLine('bad input', {
      'bad inputs tried': tally.tried,
      'stopped with an error naming the cause': tally.clearErrors,
      'bad rows rejected alone': tally.rowsRejected,
      'good rows lost': tally.goodRowsLost,
    }),
  );
  await stopWorker?.();
  await store?.close();
  await emulator?.close();
  await harness?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('a malformed syncs file: the error names the file, the path in it and what was expected', () => {
  const valid = `version: 1
defaults:
  source: { project: my-project }
  destination: { apiKey: { env: ${KEY_ENV} } }
syncs:
  - id: users
    object: users
    model: { sql: "SELECT user_id, plan FROM crm.users" }
    key: user_id
    mappings:
      - { from: user_id, to: user_id }
      - { from: plan, to: user_properties.plan }
`;
  const cases: [string, (text: string) => string, string][] = [
    [
      'an unknown key',
      (t) => t.replace('    key: user_id\n', '    key: user_id\n    mapings: []\n'),
      'syncs[0]: Unrecognized key: "mapings"',
    ],
    [
      'a wrong type',
      (t) => `${t}    options: { chunkSize: large }\n`,
      'syncs[0].options.chunkSize: Invalid input: expected number, received string',
    ],
    [
      'a mapping without a target',
      (t) => t.replace('{ from: plan, to: user_properties.plan }', '{ from: plan }'),
      'syncs[0].mappings[1].to: required',
    ],
    [
      'a target that does not exist',
      (t) => t.replace('user_properties.plan', 'user_props.plan'),
      'syncs[0].mappings[1].to: expected a special field',
    ],
    [
      'a bad schedule',
      (t) => `${t}    schedule: { every: "5 minutes" }\n`,
      'syncs[0].schedule.every: a number followed by s, m, h or d',
    ],
    [
      'a schedule with both cron and every',
      (t) => `${t}    schedule: { every: 15m, cron: "0 * * * *" }\n`,
      'syncs[0].schedule: give exactly one of "cron" or "every"',
    ],
    [
      'two syncs with one id',
      (t) => `${t}${t.slice(t.indexOf('  - id: users'))}`,
      'syncs[1].id: "users" is already the id of syncs[0]',
    ],
    [
      'a YAML syntax error',
      (t) => t.replace('{ from: user_id, to: user_id }', '{ from: user_id, to: user_id'),
      'YAML syntax:',
    ],
    [
      'an API key written into the file',
      (t) => t.replace(`{ env: ${KEY_ENV} }`, '"sk-live-123"'),
      'defaults.destination.apiKey: expected a reference { env: VARIABLE } or { file: PATH }, never the secret itself',
    ],
  ];

  test.each(cases)('%s', (_what, edit, issue) => {
    tally.tried += 1;
    const file = path.join(dir, `${_what.replace(/\W+/g, '-')}.yaml`);
    fs.writeFileSync(file, edit(valid));
    let err: unknown;
    try {
      loadSyncsFile(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as ConfigError).message;
    expect(message.startsWith(`${file} is invalid:`)).toBe(true);
    expect(message).toContain(issue);
    if (_what === 'a YAML syntax error') expect(message).toMatch(/at line \d+, column \d+/);
    if (_what === 'an API key written into the file') expect(message).not.toContain('sk-live-123');
    tally.clearErrors += 1;
  });

  test('the CLI exits with code 2 and names the file and the path, for check and run alike', async () => {
    const file = path.join(dir, 'cli-bad.yaml');
    fs.writeFileSync(file, valid.replace('{ from: plan, to: user_properties.plan }', '{ from: plan }'));
    for (const verb of ['check', 'run']) {
      tally.tried += 1;
      const ran = await ampsync(['-f', file, verb, 'users']);
      expect(ran.code).toBe(2);
      expect(ran.stderr).toContain(`✖ ${file} is invalid:`);
      expect(ran.stderr).toContain('syncs[0].mappings[1].to: required');
      tally.clearErrors += 1;
    }
    tally.tried += 1;
    const missing = await ampsync(['-f', path.join(dir, 'no-such.yaml'), 'check', 'users']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`cannot read syncs file ${path.join(dir, 'no-such.yaml')}: ENOENT`);
    tally.clearErrors += 1;
  });

  test('the CLI check names a missing API-key variable and exits with code 2', async () => {
    tally.tried += 1;
    const file = path.join(dir, 'cli-missing-key.yaml');
    // BigQuery is a loopback server answering 404 at once: the check reports it and goes on
    const bigquery = await recorder();
    fs.writeFileSync(
      file,
      valid.replace('{ project: my-project }', `{ project: my-project, apiEndpoint: "${bigquery.url}" }`),
    );
    const ran = await ampsync(['-f', file, 'check', 'users'], { [KEY_ENV]: '' }).finally(() => bigquery.close());
    expect(ran.code).toBe(2);
    expect(ran.stdout).toContain(
      `✖ Amplitude API key: Amplitude API key of sync "users": environment variable ${KEY_ENV} is not set on this worker`,
    );
    tally.clearErrors += 1;
  });
});

function ampsync(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, NODE_OPTIONS: '', ...env }, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

function syncOf(prefix: string, overrides: Partial<SyncConfigInput> = {}): SyncConfig {
  return syncSchema.parse({
    id: uniqueSyncId(prefix),
    object: 'users',
    source: { project: 'memory' },
    model: { sql: 'SELECT * FROM crm.users' },
    key: 'user_id',
    mappings: [
      { from: 'user_id', to: 'user_id' },
      { from: 'plan', to: 'user_properties.plan' },
      { from: 'ltv', to: 'user_properties.ltv' },
    ],
    destination: { apiKey: { env: KEY_ENV }, baseUrl: emulator.url },
    options: { chunkSize: 100, batchSize: 50, concurrency: 2 },
    ...overrides,
  });
}

/** The failure at the bottom of a failed run: its type, whether Temporal may retry it, and its message. */
async function failureOf(
  run: Promise<unknown>,
): Promise<{ type: string | undefined; nonRetryable: boolean; message: string }> {
  const err: unknown = await run.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  let cause: unknown = (err as WorkflowFailedError).cause;
  while (cause instanceof ActivityFailure) cause = cause.cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  const failure = cause as ApplicationFailure;
  return { type: failure.type ?? undefined, nonRetryable: failure.nonRetryable === true, message: failure.message };
}

test('a missing API-key variable stops the run at once, naming the variable (and no row is read)', async () => {
  tally.tried += 1;
  const source = new MemorySource(
    [field('user_id'), field('plan'), field('ltv', 'FLOAT64')],
    (i) => ({ user_id: `user-${i}-abcde`, plan: 'pro', ltv: i }),
    10,
  );
  current = source;
  const sync = syncOf('missing-key', {
    destination: { apiKey: { env: 'RELIABILITY_NOT_SET_ANYWHERE' }, baseUrl: emulator.url },
  });
  const failure = await failureOf(harness.client.run(sync));
  expect(failure).toEqual({
    type: 'SecretError',
    nonRetryable: true,
    message: `Amplitude API key of sync "${sync.id}": environment variable RELIABILITY_NOT_SET_ANYWHERE is not set on this worker`,
  });
  expect(source.pagesRead).toBe(0);
  tally.clearErrors += 1;
});

test('a mapping to a column the model lacks stops the run at once, naming the column and the columns there are', async () => {
  tally.tried += 1;
  current = new MemorySource(
    [field('user_id'), field('plan'), field('ltv', 'FLOAT64')],
    (i) => ({ user_id: `user-${i}-abcde`, plan: 'pro', ltv: i }),
    10,
  );
  const sync = syncOf('no-column', {
    mappings: [
      { from: 'user_id', to: 'user_id' },
      { from: 'lifetime_value', to: 'user_properties.ltv' },
    ],
  });
  const failure = await failureOf(harness.client.run(sync));
  expect(failure).toEqual({
    type: 'MappingError',
    nonRetryable: true,
    message: `sync "${sync.id}": column "lifetime_value" not in the model (columns: user_id, plan, ltv)`,
  });
  tally.clearErrors += 1;
});

describe('rows Amplitude would refuse are rejected one by one, with a reason; every other row is delivered', () => {
  const GOOD = 60;
  const deep = (levels: number): SourceValue => (levels === 0 ? 'bottom' : { level: deep(levels - 1) });
  const bad: { what: string; row: SourceRow; key: string | null; reason: string }[] = [
    { what: 'a NULL key', row: { user_id: null }, key: null, reason: 'NULL value in key column "user_id"' },
    {
      what: 'a key too short',
      row: { user_id: 'abc' },
      key: 'abc',
      reason: 'user_id "abc" is shorter than the minimum id length 5',
    },
    {
      what: 'a placeholder key',
      row: { user_id: 'anonymous' },
      key: 'anonymous',
      reason: 'user_id "anonymous" is a placeholder Amplitude rejects',
    },
    {
      what: 'a placeholder key (uuid)',
      row: { user_id: '00000000-0000-0000-0000-000000000000' },
      key: '00000000-0000-0000-0000-000000000000',
      reason: 'is a placeholder Amplitude rejects',
    },
    {
      what: 'a placeholder key (case)',
      row: { user_id: 'UNKNOWN' },
      key: 'UNKNOWN',
      reason: 'user_id "UNKNOWN" is a placeholder Amplitude rejects',
    },
    {
      what: 'a string over 1024 characters',
      row: { user_id: 'long-plan-user', plan: 'p'.repeat(1500) },
      key: 'long-plan-user',
      reason: 'user_properties.$set.plan is 1500 characters; Amplitude accepts at most 1024',
    },
    {
      what: 'nesting deeper than 40',
      row: { user_id: 'deep-nest-user', plan: deep(45) },
      key: 'deep-nest-user',
      reason: 'nests deeper than 40 levels',
    },
    {
      what: 'NaN',
      row: { user_id: 'nan-ltv-user', ltv: Number.NaN },
      key: 'nan-ltv-user',
      reason: 'user_properties.$set.ltv is NaN, which Amplitude cannot accept',
    },
    {
      what: 'Infinity',
      row: { user_id: 'inf-ltv-user', ltv: Number.POSITIVE_INFINITY },
      key: 'inf-ltv-user',
      reason: 'user_properties.$set.ltv is Infinity, which Amplitude cannot accept',
    },
    {
      what: 'an invalid timestamp',
      row: { user_id: 'bad-time-user', signed_up: '2024-02-30T10:00:00Z' },
      key: 'bad-time-user',
      reason: 'time from column "signed_up"',
    },
    {
      what: 'a timestamp that is not one',
      row: { user_id: 'word-time-user', signed_up: 'yesterday' },
      key: 'word-time-user',
      reason: 'is not a timestamp',
    },
    {
      what: 'a row over 1 MB',
      row: { user_id: 'huge-row-user', tags: Array.from({ length: 1100 }, (_, i) => `${i}`.padEnd(1000, 'x')) },
      key: 'huge-row-user',
      reason: 'at most 1000000 are sent per row',
    },
    {
      what: 'a key given twice',
      row: { user_id: 'twice-user' },
      key: 'twice-user',
      reason: 'appears 2 times in the model',
    },
  ];

  test('each bad row is in listRejected with its reason; the good rows all arrive', async () => {
    tally.tried += bad.length;
    const rows: SourceRow[] = [];
    const good = (i: number): SourceRow => ({
      user_id: `good-user-${String(i).padStart(4, '0')}`,
      plan: 'pro',
      ltv: i,
      signed_up: '2026-01-02T03:04:05Z',
      tags: ['a'],
    });
    for (let i = 0; i < GOOD; i++) {
      rows.push(good(i));
      const b = bad[i % 13];
      if (i < bad.length && b !== undefined) rows.push({ ...good(1000 + i), ...b.row });
    }
    rows.push({ ...good(2000), user_id: 'twice-user' });
    const schema = [
      field('user_id'),
      field('plan'),
      field('ltv', 'FLOAT64'),
      field('signed_up', 'TIMESTAMP'),
      field('tags', 'STRING'),
    ];
    current = new MemorySource(schema, (i) => rows[i]!, rows.length);
    const sync = syncOf('bad-rows', {
      mappings: [
        { from: 'user_id', to: 'user_id' },
        { from: 'plan', to: 'user_properties.plan' },
        { from: 'ltv', to: 'user_properties.ltv' },
        { from: 'signed_up', to: 'time' },
        { from: 'tags', to: 'user_properties.tags' },
      ],
    });
    const result = await harness.client.run(sync);
    expect(result.status).toBe('succeeded');
    expect(result.counts.delivered).toBe(GOOD);

    const rejected = await store.listRejected(sync.id, 100);
    for (const b of bad) {
      const found = rejected.filter((r) => r.key === b.key && r.reason.includes(b.reason));
      expect({ what: b.what, found: found.length > 0 }).toEqual({ what: b.what, found: true });
    }
    expect(rejected.filter((r) => r.key === 'twice-user')).toEqual([
      expect.objectContaining({ stage: 'diff', reason: 'duplicate key "twice-user" appears 2 times in the model' }),
    ]);
    tally.rowsRejected += rejected.length;
    const lost = Array.from({ length: GOOD }, (_, i) => `good-user-${String(i).padStart(4, '0')}`).filter(
      (id) => emulator.user(id, API_KEY)?.user_properties.plan !== 'pro',
    );
    tally.goodRowsLost += lost.length;
    expect(lost).toEqual([]);
    expect(emulator.eventCount(API_KEY)).toBe(GOOD);
    expect(await store.countSynced(sync.id)).toBe(GOOD);
  });
});

test('a model whose schema changes between runs: a dropped mapped column stops the run naming it; a changed type resends the rows', async () => {
  const sync = syncOf('schema-change');
  const N = 200;
  current = new MemorySource(
    [field('user_id'), field('plan'), field('ltv', 'FLOAT64')],
    (i) => ({ user_id: `schema-user-${i}`, plan: 'pro', ltv: i + 0.5 }),
    N,
  );
  const first = await harness.client.run(sync);
  expect(first.counts).toMatchObject({ new: N, delivered: N });

  tally.tried += 1;
  current = new MemorySource(
    [field('user_id'), field('ltv', 'FLOAT64')],
    (i) => ({ user_id: `schema-user-${i}`, ltv: i + 0.5 }),
    N,
  );
  const before = emulator.eventCount(API_KEY);
  const failure = await failureOf(harness.client.run(sync));
  expect(failure.type).toBe('MappingError');
  expect(failure.nonRetryable).toBe(true);
  expect(failure.message).toBe(`sync "${sync.id}": column "plan" not in the model (columns: user_id, ltv)`);
  expect(emulator.eventCount(API_KEY)).toBe(before);
  expect(await store.countSynced(sync.id)).toBe(N);
  tally.clearErrors += 1;

  tally.tried += 1;
  current = new MemorySource(
    [field('user_id'), field('plan'), field('ltv', 'NUMERIC')],
    (i) => ({ user_id: `schema-user-${i}`, plan: 'pro', ltv: `${i}.50` }),
    N,
  );
  const third = await harness.client.run(sync);
  expect(third.counts).toMatchObject({ changed: N, delivered: N, rejected: 0 });
  expect(emulator.user('schema-user-7', API_KEY)?.user_properties).toEqual({ plan: 'pro', ltv: '7.50' });
});

/**
 * BigQuerySource through a loopback proxy in front of the emulator: transient failures are retried or surface as
 * retryable, running jobs are polled, BigQuery's own dry-run answers are used as sent, and the wire bodies are exact.
 */
import type { NativeLoader } from './native-client';

// the real client, loaded natively (see native-client.ts)
jest.mock('@google-cloud/bigquery', () =>
  jest.requireActual<NativeLoader>('./native-client').loadNatively('@google-cloud/bigquery'),
);
jest.mock('google-auth-library', () =>
  jest.requireActual<NativeLoader>('./native-client').loadNatively('google-auth-library'),
);
jest.setTimeout(180_000);

import type { SourceConfig } from '../../../src/config/schema';
import { createBigQueryClient } from '../../../src/sources/bigquery/client';
import { SourceConfigError, SourceUnavailableError } from '../../../src/sources/bigquery/errors';
import { BigQuerySource, type BigQuerySourceOptions } from '../../../src/sources/bigquery/source';
import { freePort, interceptingProxy, run, testEmulator } from './support';

let ctx: Awaited<ReturnType<typeof testEmulator>>;
let proxy: Awaited<ReturnType<typeof interceptingProxy>>;
let sql: string;

const JOBS_INSERT = /^\/bigquery\/v2\/projects\/[^/]+\/jobs(\?|$)/;
const JOBS_GET = /^\/bigquery\/v2\/projects\/[^/]+\/jobs\/[^/?]+(\?|$)/;
const QUERY_RESULTS = /^\/bigquery\/v2\/projects\/[^/]+\/queries\//;

beforeAll(async () => {
  ctx = await testEmulator('bq_resilience');
  await run(ctx.bq, `CREATE TABLE ${ctx.dataset}.nums AS SELECT n FROM UNNEST(GENERATE_ARRAY(1, 25)) AS n`);
  sql = `SELECT n FROM ${ctx.dataset}.nums ORDER BY n`;
  proxy = await interceptingProxy(ctx.emulator.endpoint);
});

afterAll(async () => {
  await proxy?.close();
  await ctx?.cleanup();
});

beforeEach(() => {
  proxy.requests.length = 0;
});

function viaProxy(
  maxRetries: number,
  overrides: Partial<SourceConfig> = {},
  options: BigQuerySourceOptions = {},
): BigQuerySource {
  const config: SourceConfig = { ...ctx.source, apiEndpoint: proxy.url, ...overrides };
  return new BigQuerySource(config, { client: createBigQueryClient(config, { maxRetries }), ...options });
}

const backendError = {
  status: 503,
  body: {
    error: {
      code: 503,
      message: 'The service is currently unavailable.',
      errors: [{ reason: 'backendError', message: 'The service is currently unavailable.' }],
    },
  },
};

test('a 503 on a page is retried by the client, and the page arrives', async () => {
  const source = viaProxy(3);
  const opened = await source.open({ sql });
  proxy.intercept({ path: QUERY_RESULTS, method: 'GET', answer: backendError });
  const page = await source.readPage(opened.position, { pageSize: 10 });
  expect(page.rows.map((r) => r.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  expect(proxy.pending()).toBe(0);
  // the page's requests (the open's, which also fetches the first rows to size pages, asks for 100)
  const pageRequests = proxy.requests.filter((r) => QUERY_RESULTS.test(r.path) && /maxResults=10(&|$)/.test(r.path));
  expect(pageRequests).toHaveLength(2);
});

test('503 on every attempt → retryable SourceUnavailableError naming the endpoint and the job', async () => {
  const source = viaProxy(1);
  const opened = await source.open({ sql });
  proxy.intercept({ path: QUERY_RESULTS, answer: backendError }, { path: QUERY_RESULTS, answer: backendError });
  const err = await source.readPage(opened.position, { pageSize: 10 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(SourceUnavailableError);
  expect(err).toMatchObject({ type: 'SourceUnavailableError', retryable: true, reason: 'backendError' });
  expect((err as Error).message).toContain(`page 1 of job ${opened.position.jobId}`);
  expect((err as Error).message).toContain('(jobs.getQueryResults)');
  expect((err as Error).message).toContain('[503 backendError]');
});

test('429 with Retry-After → SourceUnavailableError carrying retryAfterMs', async () => {
  const source = viaProxy(0);
  proxy.intercept({
    path: JOBS_INSERT,
    method: 'POST',
    answer: {
      status: 429,
      headers: { 'retry-after': '30' },
      body: {
        error: {
          code: 429,
          message: 'Exceeded rate limits',
          errors: [{ reason: 'rateLimitExceeded', message: 'Exceeded rate limits' }],
        },
      },
    },
  });
  const err = await source.open({ sql }).catch((e: unknown) => e);
  expect(err).toMatchObject({
    type: 'SourceUnavailableError',
    reason: 'rateLimited',
    retryAfterMs: 30_000,
    retryable: true,
  });
});

test('a refused connection → SourceUnavailableError (network)', async () => {
  const closed = `http://127.0.0.1:${await freePort()}`;
  const config: SourceConfig = { ...ctx.source, apiEndpoint: closed };
  const source = new BigQuerySource(config, { client: createBigQueryClient(config, { maxRetries: 0 }) });
  const err = await source.dryRun({ sql }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(SourceUnavailableError);
  expect(err).toMatchObject({ reason: 'network', retryable: true });
  expect((err as Error).message).toContain('ECONNREFUSED');
});

test('a running job is polled until it is done, calling onJobWait on every poll', async () => {
  const waits: { jobId: string; elapsedMs: number }[] = [];
  const source = viaProxy(0, {}, { onJobWait: (w) => waits.push(w) });
  const running = (body: Record<string, unknown>) => ({ ...body, status: { state: 'RUNNING' } });
  proxy.intercept(
    { path: JOBS_INSERT, method: 'POST', rewrite: running },
    { path: JOBS_GET, method: 'GET', rewrite: running },
  );
  const opened = await source.open({ sql });
  expect(opened.totalRows).toBe(25);
  expect(waits.map((w) => w.jobId)).toEqual([opened.position.jobId, opened.position.jobId]);
  const polls = proxy.requests.filter((r) => r.method === 'GET' && JOBS_GET.test(r.path));
  expect(polls).toHaveLength(2);
});

test('a job that fails while running → its error, classified, naming the job', async () => {
  const source = viaProxy(0);
  const failure = { reason: 'invalidQuery', message: 'Division by zero: 1 / 0' };
  proxy.intercept(
    { path: JOBS_INSERT, method: 'POST', rewrite: (b) => ({ ...b, status: { state: 'RUNNING' } }) },
    {
      path: JOBS_GET,
      method: 'GET',
      rewrite: (b) => ({ ...b, status: { state: 'DONE', errorResult: failure, errors: [failure] } }),
    },
  );
  const err = await source.open({ sql }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(SourceConfigError);
  expect(err).toMatchObject({ reason: 'invalidQuery' });
  expect((err as Error).message).toMatch(
    /BigQuery query job ampsync_[\w-]+ for SQL model .* failed: invalid query: Division by zero/,
  );
});

test('a retried open whose job an earlier attempt left failed by a backend error runs the query again', async () => {
  const source = viaProxy(0);
  const jobId = `ampsync_rerun_${Date.now()}`;
  const failure = { reason: 'backendError', message: 'Backend error. Job aborted.' };
  const failed = (b: Record<string, unknown>) => ({
    ...b,
    status: { state: 'DONE', errorResult: failure, errors: [failure] },
  });
  proxy.intercept(
    { path: JOBS_INSERT, method: 'POST', rewrite: (b) => ({ ...b, status: { state: 'RUNNING' } }) },
    { path: JOBS_GET, method: 'GET', rewrite: failed },
  );
  const first = await source.open({ sql }, { jobId }).catch((e: unknown) => e);
  expect(first).toBeInstanceOf(SourceUnavailableError);

  // the retry finds the id taken and its job failed (as BigQuery keeps reporting it): a new job runs the query
  proxy.intercept({ path: JOBS_GET, method: 'GET', rewrite: failed });
  const opened = await source.open({ sql }, { jobId });
  expect(opened.position.jobId).toBe(`${jobId}_retry2`);
  expect(opened.totalRows).toBe(25);
  expect(proxy.pending()).toBe(0);

  // one more retry: the failed job is passed over again, and the job that succeeded is attached to, not run again
  proxy.intercept({ path: JOBS_GET, method: 'GET', rewrite: failed });
  const again = await source.open({ sql }, { jobId });
  expect(proxy.pending()).toBe(0);
  expect(again.position.jobId).toBe(`${jobId}_retry2`);
});

test('a model BigQuery cannot sort by key (resources exceeded) runs again unordered, under a job id of its own', async () => {
  const warnings: string[] = [];
  const logger = { debug: () => undefined, info: () => undefined, warn: (message: string) => warnings.push(message) };
  const source = viaProxy(0, {}, { logger });
  const jobId = `ampsync_sort_${Date.now()}`;
  const tooBig = { reason: 'resourcesExceeded', message: 'Resources exceeded during query execution' };
  // the ordered job's insert answers that it failed; every other job (dry runs, the rerun) goes through as is
  const failOrdered = (b: Record<string, unknown>) =>
    (b.jobReference as { jobId?: string } | undefined)?.jobId === jobId
      ? { ...b, status: { state: 'DONE', errorResult: tooBig, errors: [tooBig] } }
      : b;
  proxy.intercept(...Array.from({ length: 5 }, () => ({ path: JOBS_INSERT, method: 'POST', rewrite: failOrdered })));
  const opened = await source.open({ sql }, { jobId, orderByKey: 'n' }).finally(() => proxy.clear());

  expect(opened.position.jobId).toBe(`${jobId}_unordered`);
  expect(opened.position.keyOrdered).toBeUndefined();
  expect(opened.totalRows).toBe(25);
  const queries = proxy.requests
    .filter((r) => r.method === 'POST' && JOBS_INSERT.test(r.path))
    .map(
      (r) => JSON.parse(r.body) as { jobReference?: { jobId?: string }; configuration: { query: { query: string } } },
    )
    .filter((b) => b.jobReference?.jobId?.startsWith(jobId));
  expect(
    queries.map((b) => [b.jobReference?.jobId, b.configuration.query.query.includes('ORDER BY CAST(`n` AS STRING)')]),
  ).toEqual([
    [jobId, true],
    [`${jobId}_unordered`, false],
  ]);
  expect(warnings).toEqual(['ordering the model by key exceeded BigQuery resources: it runs again unordered']);
});

describe('wire bodies and BigQuery-shaped answers', () => {
  const dryRunAnswer = (statementType: string) => ({
    status: 200,
    body: {
      kind: 'bigquery#job',
      jobReference: { projectId: 'ampsync-dev', jobId: 'dry_run_job', location: 'US' },
      configuration: { dryRun: true, jobType: 'QUERY', query: { query: 'SELECT ...', useLegacySql: false } },
      status: { state: 'DONE' },
      statistics: {
        totalBytesProcessed: '12345',
        query: {
          totalBytesProcessed: '12345',
          statementType,
          schema: {
            fields: [
              { name: 'user_id', type: 'STRING', mode: 'REQUIRED' },
              { name: 'visits', type: 'RECORD', mode: 'REPEATED', fields: [{ name: 'at', type: 'TIMESTAMP' }] },
            ],
          },
        },
      },
    },
  });

  test('BigQuery’s true dry run (schema in its statistics) is used as sent: one jobs.insert with dryRun, nothing runs', async () => {
    const source = viaProxy(0, { location: 'US' });
    proxy.intercept({ path: JOBS_INSERT, method: 'POST', answer: dryRunAnswer('SELECT') });
    const dry = await source.dryRun({ sql });
    expect(dry).toEqual({
      bytesProcessed: 12345,
      schema: [
        { name: 'user_id', type: 'STRING', mode: 'REQUIRED' },
        {
          name: 'visits',
          type: 'STRUCT',
          mode: 'REPEATED',
          fields: [{ name: 'at', type: 'TIMESTAMP', mode: 'NULLABLE' }],
        },
      ],
    });
    expect(proxy.requests.map((r) => r.method)).toEqual(['POST']);
    const sent = JSON.parse(proxy.requests[0]!.body) as unknown;
    expect(sent).toEqual({
      configuration: { query: { query: sql, useLegacySql: false }, dryRun: true },
      jobReference: { projectId: 'ampsync-dev', jobId: expect.any(String), location: 'US' },
    });
  });

  test('a DML statement is refused as a model', async () => {
    const source = viaProxy(0);
    proxy.intercept({ path: JOBS_INSERT, method: 'POST', answer: dryRunAnswer('DELETE') });
    const err = await source.dryRun({ sql: `DELETE FROM ${ctx.dataset}.nums WHERE TRUE` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceConfigError);
    expect((err as Error).message).toContain('is a DELETE statement; a model must be a query that returns rows');
  });

  test('the query job carries maximumBytesBilled, the labels and an ampsync_ job id; the dry run comes first', async () => {
    const source = viaProxy(0, { maximumBytesBilled: '1000000000' }, { jobLabels: { app: 'ampsync', sync: 'users' } });
    const opened = await source.open({ sql });
    const inserts = proxy.requests
      .filter((r) => r.method === 'POST' && JOBS_INSERT.test(r.path))
      .map((r) => JSON.parse(r.body) as unknown);
    expect(inserts).toHaveLength(2);
    expect(inserts[0]).toEqual({
      configuration: { query: { query: sql, useLegacySql: false }, dryRun: true },
      jobReference: { projectId: 'ampsync-dev', jobId: expect.any(String) },
    });
    expect(inserts[1]).toEqual({
      configuration: {
        query: { query: sql, useLegacySql: false, maximumBytesBilled: '1000000000' },
        labels: { app: 'ampsync', sync: 'users' },
      },
      jobReference: { projectId: 'ampsync-dev', jobId: opened.position.jobId },
    });
    expect(opened.position.jobId).toMatch(/^ampsync_[0-9a-f-]{36}$/);
  });
});

/** BigQuerySource against the goccy emulator with the real client: paging, resume, dry runs, limits, errors. */

import type { NativeLoader } from './native-client';

// the real client, loaded natively (see native-client.ts)
jest.mock('@google-cloud/bigquery', () =>
  jest.requireActual<NativeLoader>('./native-client').loadNatively('@google-cloud/bigquery'),
);
jest.mock('google-auth-library', () =>
  jest.requireActual<NativeLoader>('./native-client').loadNatively('google-auth-library'),
);
jest.setTimeout(180_000);
import { createSyntheticUsers, syntheticUser } from '../../../src/dev/demo-data';
import { SourceConfigError, SourceResultsExpiredError } from '../../../src/sources/bigquery/errors';
import type { Table, TableMetadata } from '@google-cloud/bigquery';
import {
  BigQuerySource,
  isExhausted,
  PAGE_BUDGET_BYTES,
  pageRowsFor,
  type SourceLogger,
} from '../../../src/sources/bigquery/source';
import { PageReader } from '../../../src/sources/read-ahead';
import { positionAhead, type SourcePosition, type SourceRow } from '../../../src/sync/types';
import { run, testEmulator } from './support';

const ROWS = 2500;
const PAGE_SIZE = 1000;

let ctx: Awaited<ReturnType<typeof testEmulator>>;

beforeAll(async () => {
  ctx = await testEmulator('bq_source');
  await createSyntheticUsers(ctx.bq, { dataset: ctx.dataset, table: 'users', rows: ROWS });
});

afterAll(async () => {
  await ctx?.cleanup();
});

function source(options: ConstructorParameters<typeof BigQuerySource>[1] = {}): BigQuerySource {
  return new BigQuerySource(ctx.source, { client: ctx.bq, ...options });
}

function recordingLogger(): SourceLogger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  return {
    lines,
    debug: (message) => lines.push({ level: 'debug', message }),
    info: (message) => lines.push({ level: 'info', message }),
    warn: (message) => lines.push({ level: 'warn', message }),
  };
}

async function readAll(src: BigQuerySource, start: SourcePosition, pageSize: number) {
  const pages: SourceRow[][] = [];
  const positions: SourcePosition[] = [start];
  let position = start;
  while (!isExhausted(position)) {
    const page = await src.readPage(position, { pageSize });
    pages.push(page.rows);
    position = page.next;
    positions.push(position);
  }
  return { pages, positions };
}

describe('BigQuerySource paging', () => {
  test('a SQL model of 2,500 rows arrives in 3 pages of at most 1,000, every row once and exact', async () => {
    const src = source();
    const opened = await src.open({ sql: `SELECT * FROM ${ctx.dataset}.users ORDER BY user_id` });
    expect(opened.totalRows).toBe(ROWS);
    expect(opened.schema.map((f) => [f.name, f.type])).toEqual([
      ['user_id', 'STRING'],
      ['email_domain', 'STRING'],
      ['plan', 'STRING'],
      ['lifetime_value', 'NUMERIC'],
      ['trial_ends_at', 'TIMESTAMP'],
      ['activated_on', 'DATE'],
      ['sessions_30d', 'INT64'],
      ['account_id', 'STRING'],
    ]);
    // a query's results are read by row index: its positions hold the row count
    expect(opened.position).toEqual({
      jobId: expect.stringMatching(/^ampsync_/),
      pageToken: null,
      page: 0,
      rowsRead: 0,
      totalRows: ROWS,
      // rows of ~150 bytes of JSON: far more to a page than anyone reads at once
      pageRows: expect.any(Number),
    });
    expect(opened.position.pageRows).toBeGreaterThan(20_000);

    const { pages, positions } = await readAll(src, opened.position, PAGE_SIZE);
    expect(pages.map((p) => p.length)).toEqual([1000, 1000, 500]);
    expect(positions.map((p) => [p.page, p.rowsRead, p.pageToken === null])).toEqual([
      [0, 0, true],
      [1, 1000, false],
      [2, 2000, false],
      [3, 2500, true],
    ]);
    const rows = pages.flat();
    const expected = Array.from({ length: ROWS }, (_, i) => syntheticUser(i + 1));
    expect(rows).toEqual(expected);
    expect(new Set(rows.map((r) => r.user_id)).size).toBe(ROWS);
  });

  test('reading past the end returns no rows and the same position', async () => {
    const src = source();
    const opened = await src.open({ sql: `SELECT user_id FROM ${ctx.dataset}.users WHERE user_id = 'user_0000007'` });
    const first = await src.readPage(opened.position, { pageSize: 10 });
    expect(first.rows).toEqual([{ user_id: 'user_0000007' }]);
    expect(isExhausted(first.next)).toBe(true);
    const after = await src.readPage(first.next, { pageSize: 10 });
    expect(after).toEqual({ rows: [], next: first.next });
  });

  test('an empty result is exhausted from its first position: no page to read', async () => {
    const src = source();
    const opened = await src.open({ sql: `SELECT user_id FROM ${ctx.dataset}.users WHERE user_id = 'nobody'` });
    expect(opened.totalRows).toBe(0);
    expect(isExhausted(opened.position)).toBe(true);
    const page = await src.readPage(opened.position, { pageSize: 10 });
    expect(page).toEqual({ rows: [], next: opened.position });
  });

  test('pages are read by row index: a later page read first, from positionAhead, holds the same rows', async () => {
    const src = source();
    const opened = await src.open({ sql: `SELECT * FROM ${ctx.dataset}.users ORDER BY user_id` });
    const third = positionAhead(opened.position, 2, PAGE_SIZE);
    expect(third).toMatchObject({ page: 2, rowsRead: 2000, totalRows: ROWS });
    const early = await src.readPage(third as SourcePosition, { pageSize: PAGE_SIZE });
    const { pages, positions } = await readAll(src, opened.position, PAGE_SIZE);
    expect(early.rows).toEqual(pages[2]);
    expect(early.next).toEqual(positions[3]);
    expect(isExhausted(early.next)).toBe(true);
  });

  test('a page BigQuery answers in parts (a response holds at most 10 MB) is asked for until whole', async () => {
    // a client whose getQueryResults answers at most 300 rows, as BigQuery does when 300 rows fill 10 MB
    const asked: { startIndex: string | undefined; maxResults: number | undefined }[] = [];
    const capped = new Proxy(ctx.bq, {
      get(target, prop, receiver) {
        if (prop !== 'job') return Reflect.get(target, prop, receiver) as unknown;
        return (...args: Parameters<typeof target.job>) => {
          const job = target.job(...args);
          const original = job.getQueryResults.bind(job) as (o: Record<string, unknown>) => Promise<unknown>;
          Object.assign(job, {
            getQueryResults: (options: { startIndex?: string; maxResults?: number }) => {
              asked.push({ startIndex: options.startIndex, maxResults: options.maxResults });
              return original({ ...options, maxResults: Math.min(options.maxResults ?? 300, 300) });
            },
          });
          return job;
        };
      },
    });
    const src = new BigQuerySource(ctx.source, { client: capped });
    const opened = await src.open({ sql: `SELECT * FROM ${ctx.dataset}.users ORDER BY user_id` });
    asked.length = 0;
    const { pages, positions } = await readAll(src, opened.position, PAGE_SIZE);
    expect(pages.map((p) => p.length)).toEqual([1000, 1000, 500]);
    expect(positions.map((p) => p.rowsRead)).toEqual([0, 1000, 2000, 2500]);
    expect(pages.flat()).toEqual(Array.from({ length: ROWS }, (_, i) => syntheticUser(i + 1)));
    // each page's rest asked for from where the answer stopped, never past the page's end
    expect(asked.slice(0, 4)).toEqual([
      { startIndex: '0', maxResults: 1000 },
      { startIndex: '300', maxResults: 700 },
      { startIndex: '600', maxResults: 400 },
      { startIndex: '900', maxResults: 100 },
    ]);
    // the last page asks for the rows left, not a whole page
    expect(asked.slice(-2)).toEqual([
      { startIndex: '2000', maxResults: 500 },
      { startIndex: '2300', maxResults: 200 },
    ]);
  });

  test('a table model pages through a query job on a loopback endpoint (the emulator ignores tabledata.list paging)', async () => {
    const src = source();
    const opened = await src.open({ table: `${ctx.dataset}.users` });
    expect(opened.totalRows).toBe(ROWS);
    expect(opened.position.jobId).toMatch(/^ampsync_/);
    const { pages } = await readAll(src, opened.position, PAGE_SIZE);
    expect(pages.map((p) => p.length)).toEqual([1000, 1000, 500]);
    const ids = pages.flat().map((r) => r.user_id);
    expect(new Set(ids).size).toBe(ROWS);
  });

  test('tableRead "list" reads the table with tabledata.list; a server that ignores maxResults is reported', async () => {
    const logger = recordingLogger();
    const src = source({ tableRead: 'list', logger });
    const opened = await src.open({ table: `${ctx.dataset}.users` });
    expect(opened.position).toEqual({
      jobId: `ampsync-dev:${ctx.dataset}.users`,
      pageToken: null,
      page: 0,
      rowsRead: 0,
    });
    expect(opened.totalRows).toBe(ROWS);
    const { pages } = await readAll(src, opened.position, PAGE_SIZE);
    const rows = pages.flat();
    expect(rows).toHaveLength(ROWS);
    expect(rows.find((r) => r.user_id === 'user_0000042')).toEqual(syntheticUser(42));
    // goccy's tabledata.list returns the whole table in one answer
    expect(logger.lines.filter((l) => l.level === 'warn').map((l) => l.message)).toEqual([
      'the server ignored maxResults on tabledata.list (an emulator?): the whole table came as one page',
    ]);
  });
});

describe('BigQuerySource wide rows', () => {
  const WIDE_ROWS = 300;
  /** Each row ~40 KB of JSON: 10,000 of them would be a 400 MB page. */
  const WIDTH = 40_000;

  beforeAll(async () => {
    await run(
      ctx.bq,
      `CREATE TABLE ${ctx.dataset}.wide AS
       SELECT n AS id, REPEAT('x', ${WIDTH}) AS blob FROM UNNEST(GENERATE_ARRAY(1, ${WIDE_ROWS})) AS n`,
    );
  });

  test('a model of wide rows is read in pages of PAGE_BUDGET_BYTES of JSON, each row once, every position saying so', async () => {
    const src = source();
    const opened = await src.open({ sql: `SELECT * FROM ${ctx.dataset}.wide ORDER BY id` });
    // ~40,030 bytes a row on the wire: 104 rows to a 4 MiB page
    const pageRows = opened.position.pageRows as number;
    expect(pageRows).toBeGreaterThanOrEqual(Math.floor(PAGE_BUDGET_BYTES / (WIDTH + 60)));
    expect(pageRows).toBeLessThanOrEqual(Math.floor(PAGE_BUDGET_BYTES / WIDTH));
    // read as extractAndDiff reads it: a reader of 10,000-row pages, pages ahead
    const reader = new PageReader(src, opened.position, { pageSize: 10_000, maxAhead: 3 });
    const sizes: number[] = [];
    const ids: number[] = [];
    const positions: SourcePosition[] = [];
    for (let page = await reader.next(); page !== undefined; page = await reader.next()) {
      sizes.push(page.rows.length);
      ids.push(...page.rows.map((r) => r.id as number));
      positions.push(page.next);
      expect(page.rows.every((r) => (r.blob as string).length === WIDTH)).toBe(true);
    }
    expect(sizes).toEqual([pageRows, pageRows, WIDE_ROWS - 2 * pageRows]);
    expect(ids).toEqual(Array.from({ length: WIDE_ROWS }, (_, i) => i + 1));
    // a saved cursor carries the page size: a resumed run splits the rest into the same pages
    expect(positions.map((p) => p.pageRows)).toEqual([pageRows, pageRows, pageRows]);
  });

  test("a table read with tabledata.list is sized by the table's own bytes per row and its columns", async () => {
    // the emulator reports no numBytes: a client whose table lookups report 100,000 bytes a row
    const withBytes = (table: Table): Table => {
      const original = table.getMetadata.bind(table) as () => Promise<[TableMetadata, ...unknown[]]>;
      return Object.assign(table, {
        getMetadata: async () => {
          const [metadata, ...rest] = await original();
          return [{ ...metadata, numBytes: String(Number(metadata.numRows) * 100_000) }, ...rest];
        },
      });
    };
    const client = new Proxy(ctx.bq, {
      get(target, prop, receiver) {
        if (prop !== 'dataset') return Reflect.get(target, prop, receiver) as unknown;
        return (...args: Parameters<typeof target.dataset>) => {
          const dataset = target.dataset(...args);
          const table = dataset.table.bind(dataset);
          return Object.assign(dataset, { table: (...a: Parameters<typeof table>) => withBytes(table(...a)) });
        };
      },
    });
    const src = new BigQuerySource(ctx.source, { client, tableRead: 'list' });
    const opened = await src.open({ table: `${ctx.dataset}.users` });
    // 100,000 bytes a row, and 16 for each of its 8 cells: 41 rows to a 4 MiB page
    expect(opened.position.pageRows).toBe(pageRowsFor(100_000 + 16 * 8) as number);
    expect(opened.position.pageRows).toBe(41);
  });

  test('rows of ordinary width set no smaller pages: a table the emulator reports no size for sets none', async () => {
    const src = source({ tableRead: 'list' });
    const opened = await src.open({ table: `${ctx.dataset}.users` });
    expect(opened.position.pageRows).toBeUndefined();
  });
});

describe('BigQuerySource ordered by key', () => {
  /** Whether `keys` ascend in byte order of their UTF-8 text, the order the state stores compare keys in. */
  const ascending = (keys: string[]): boolean =>
    keys.every((k, i) => i === 0 || Buffer.compare(Buffer.from(keys[i - 1]!), Buffer.from(k)) < 0);

  test('a STRING key: the rows come in key order whatever the model orders them by, and every position says so', async () => {
    const src = source();
    const opened = await src.open(
      { sql: `SELECT * FROM ${ctx.dataset}.users ORDER BY user_id DESC` },
      { orderByKey: 'user_id' },
    );
    expect(opened.position).toMatchObject({ page: 0, keyOrdered: true });
    const { pages, positions } = await readAll(src, opened.position, PAGE_SIZE);
    const ids = pages.flat().map((r) => r.user_id as string);
    expect(ids).toHaveLength(ROWS);
    expect(ascending(ids)).toBe(true);
    expect(positions.every((p) => p.keyOrdered === true)).toBe(true);
  });

  test('an INT64 key: ordered by its text, as the worker keys rows ("10" before "9")', async () => {
    const src = source();
    const opened = await src.open(
      {
        sql: `SELECT CAST(SUBSTR(user_id, 6) AS INT64) AS n, plan FROM ${ctx.dataset}.users WHERE user_id <= 'user_0000120'`,
      },
      { orderByKey: 'n' },
    );
    expect(opened.position.keyOrdered).toBe(true);
    const { pages } = await readAll(src, opened.position, 50);
    const keys = pages.flat().map((r) => String(r.n as number));
    expect(keys).toHaveLength(120);
    expect(keys.slice(0, 4)).toEqual(['1', '10', '100', '101']);
    expect(ascending(keys)).toBe(true);
  });

  test('a key of another type, or a table read with tabledata.list, stays unordered', async () => {
    const byDate = await source().open(
      { sql: `SELECT activated_on, user_id FROM ${ctx.dataset}.users` },
      { orderByKey: 'activated_on' },
    );
    expect(byDate.position.keyOrdered).toBeUndefined();
    const listed = await source({ tableRead: 'list' }).open(
      { table: `${ctx.dataset}.users` },
      { orderByKey: 'user_id' },
    );
    expect(listed.position.keyOrdered).toBeUndefined();
    // on a loopback endpoint a table model runs as a query job, which orders it
    const queried = await source().open({ table: `${ctx.dataset}.users` }, { orderByKey: 'user_id' });
    expect(queried.position.keyOrdered).toBe(true);
  });
});

describe('BigQuerySource columns', () => {
  test('a query model is read with the given columns alone, each once, quoted, and still in key order', async () => {
    const src = source();
    const opened = await src.open(
      { sql: `SELECT user_id, plan AS \`plan-tier\`, sessions_30d, email_domain FROM ${ctx.dataset}.users` },
      { orderByKey: 'user_id', columns: ['user_id', 'plan-tier', 'user_id'] },
    );
    expect(opened.schema.map((f) => f.name)).toEqual(['user_id', 'plan-tier']);
    expect(opened.position.keyOrdered).toBe(true);
    const { pages } = await readAll(src, opened.position, PAGE_SIZE);
    const rows = pages.flat();
    expect(rows).toHaveLength(ROWS);
    expect(rows.every((r) => Object.keys(r).join() === 'user_id,plan-tier')).toBe(true);
    const first = rows[0]!;
    expect(first['plan-tier']).toBe(syntheticUser(Number((first.user_id as string).slice(5))).plan);
  });

  test('a table model read by a query selects the given columns; without columns every column is read', async () => {
    const src = source();
    const narrow = await src.open({ table: `${ctx.dataset}.users` }, { columns: ['user_id', 'activated_on'] });
    expect(narrow.schema.map((f) => f.name)).toEqual(['user_id', 'activated_on']);
    const page = await src.readPage(narrow.position, { pageSize: 10 });
    expect(Object.keys(page.rows[0]!)).toEqual(['user_id', 'activated_on']);
    const whole = await src.open({ table: `${ctx.dataset}.users` });
    expect(whole.schema.length).toBeGreaterThan(2);
  });

  test('a dry run with columns reports and limits the bytes of reading those alone, with the whole schema', async () => {
    const sql = `SELECT * FROM ${ctx.dataset}.users`;
    const columns = ['user_id', 'plan'];
    const whole = await source().dryRun({ sql });
    const narrow = await source().dryRun({ sql }, { columns });
    expect(narrow.schema).toEqual(whole.schema);
    expect(narrow.bytesProcessed).toBeGreaterThan(0);
    expect(narrow.bytesProcessed).toBeLessThan(whole.bytesProcessed);
    // a limit the whole model is over and its two columns are not: a run reading those can go
    const limited = new BigQuerySource(
      { ...ctx.source, maximumBytesBilled: String(narrow.bytesProcessed) },
      { client: ctx.bq },
    );
    await expect(limited.dryRun({ sql })).rejects.toMatchObject({ reason: 'bytesLimitExceeded' });
    await expect(limited.dryRun({ sql }, { columns })).resolves.toMatchObject({
      bytesProcessed: narrow.bytesProcessed,
    });
    await expect(limited.open({ sql }, { columns })).resolves.toMatchObject({ totalRows: ROWS });
    // a column the model lacks: its whole schema comes back for the mapper to name the column
    await expect(limited.dryRun({ sql }, { columns: ['user_id', 'no_such_column'] })).resolves.toMatchObject({
      schema: whole.schema,
    });
  });
});

describe('BigQuerySource resume', () => {
  test('a saved position read by a NEW source object returns the same next page', async () => {
    const first = source();
    const opened = await first.open({ sql: `SELECT * FROM ${ctx.dataset}.users ORDER BY user_id` });
    const page1 = await first.readPage(opened.position, { pageSize: PAGE_SIZE });
    const saved = JSON.parse(JSON.stringify(page1.next)) as SourcePosition;

    const page2 = await first.readPage(page1.next, { pageSize: PAGE_SIZE });
    const resumed = source();
    const again = await resumed.readPage(saved, { pageSize: PAGE_SIZE });
    expect(again).toEqual(page2);
    expect(again.rows[0]).toEqual(syntheticUser(1001));
    expect(again.next).toMatchObject({ page: 2, rowsRead: 2000 });
    // reading the same position twice is idempotent too
    expect(await resumed.readPage(saved, { pageSize: PAGE_SIZE })).toEqual(page2);
  });

  test('a position read by index carries the page token too: a worker that reads by token resumes it', async () => {
    const src = source();
    const opened = await src.open({ sql: `SELECT * FROM ${ctx.dataset}.users ORDER BY user_id` });
    const page1 = await src.readPage(opened.position, { pageSize: PAGE_SIZE });
    expect(page1.next.pageToken).not.toBeNull();
    const page2 = await src.readPage(page1.next, { pageSize: PAGE_SIZE });
    // what an earlier version saved and reads: no totalRows, the token
    const { totalRows: _dropped, ...byToken } = page1.next;
    const again = await src.readPage(byToken, { pageSize: PAGE_SIZE });
    expect(again.rows).toEqual(page2.rows);
  });

  test('a position of a job whose results are gone fails as SourceResultsExpiredError', async () => {
    const src = source();
    const gone: SourcePosition = { jobId: 'ampsync_no_such_job', pageToken: '1000', page: 1, rowsRead: 1000 };
    const err = await src.readPage(gone, { pageSize: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceResultsExpiredError);
    expect((err as SourceResultsExpiredError).retryable).toBe(false);
    expect((err as Error).message).toContain('ampsync_no_such_job');
  });
});

describe('BigQuerySource dry run and byte limit', () => {
  test('a SQL dry run reports the bytes and the result schema', async () => {
    const dry = await source().dryRun({ sql: `SELECT user_id, sessions_30d, trial_ends_at FROM ${ctx.dataset}.users` });
    expect(dry.bytesProcessed).toBeGreaterThan(0);
    expect(dry.schema).toEqual([
      { name: 'user_id', type: 'STRING', mode: 'NULLABLE' },
      { name: 'sessions_30d', type: 'INT64', mode: 'NULLABLE' },
      { name: 'trial_ends_at', type: 'TIMESTAMP', mode: 'NULLABLE' },
    ]);
  });

  test('a table dry run reports the table schema', async () => {
    const dry = await source().dryRun({ table: `${ctx.dataset}.users` });
    expect(dry.schema.map((f) => f.name)).toEqual([
      'user_id',
      'email_domain',
      'plan',
      'lifetime_value',
      'trial_ends_at',
      'activated_on',
      'sessions_30d',
      'account_id',
    ]);
    expect(dry.bytesProcessed).toBeGreaterThan(0);
  });

  test('maximumBytesBilled below the dry-run bytes fails dryRun and open with a non-retryable error naming the limit', async () => {
    const sql = `SELECT * FROM ${ctx.dataset}.users`;
    const { bytesProcessed } = await source().dryRun({ sql });
    const limit = bytesProcessed - 1;
    const limited = new BigQuerySource({ ...ctx.source, maximumBytesBilled: limit }, { client: ctx.bq });
    for (const attempt of [() => limited.dryRun({ sql }), () => limited.open({ sql })]) {
      const err = await attempt().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SourceConfigError);
      expect(err).toMatchObject({ type: 'SourceConfigError', retryable: false, reason: 'bytesLimitExceeded' });
      expect((err as Error).message).toContain(`maximumBytesBilled of ${limit} bytes`);
      expect((err as Error).message).toContain(`would process ${bytesProcessed} bytes`);
    }
    // at the limit, the model runs
    const atLimit = new BigQuerySource(
      { ...ctx.source, maximumBytesBilled: String(bytesProcessed) },
      { client: ctx.bq },
    );
    await expect(atLimit.open({ sql })).resolves.toMatchObject({ totalRows: ROWS });
  });
});

describe('BigQuerySource errors', () => {
  test('bad SQL → SourceConfigError naming the model and the cause', async () => {
    const err = await source()
      .open({ sql: 'SELEC user_id FROM somewhere' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceConfigError);
    expect(err).toMatchObject({ type: 'SourceConfigError', retryable: false, reason: 'invalidQuery' });
    expect((err as Error).message).toMatch(/SQL model "SELEC user_id FROM somewhere".*Syntax error/);
  });

  test('a SQL model on a missing table → SourceConfigError naming the table', async () => {
    const err = await source()
      .dryRun({ sql: `SELECT * FROM ${ctx.dataset}.no_such_table` })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceConfigError);
    expect(err).toMatchObject({ reason: 'notFound' });
    expect((err as Error).message).toContain(`${ctx.dataset}.no_such_table`);
  });

  test('a table model on a missing table → SourceConfigError naming the table', async () => {
    const err = await source()
      .open({ table: `${ctx.dataset}.no_such_table` })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceConfigError);
    expect(err).toMatchObject({ reason: 'notFound' });
    expect((err as Error).message).toContain(`table "ampsync-dev.${ctx.dataset}.no_such_table"`);
  });

  test('an unknown column → SourceConfigError', async () => {
    const err = await source()
      .open({ sql: `SELECT no_such_column FROM ${ctx.dataset}.users` })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'SourceConfigError', reason: 'invalidQuery' });
    expect((err as Error).message).toContain('no_such_column');
  });

  test('a deterministic job id: a retried open attaches to the job already started', async () => {
    const src = source();
    const jobId = `ampsync_test_${ctx.dataset}`;
    const first = await src.open(
      { sql: `SELECT user_id FROM ${ctx.dataset}.users ORDER BY user_id LIMIT 5` },
      { jobId },
    );
    const again = await src.open(
      { sql: `SELECT user_id FROM ${ctx.dataset}.users ORDER BY user_id LIMIT 5` },
      { jobId },
    );
    expect(again).toEqual(first);
    expect(first.position.jobId).toBe(jobId);
    const page = await src.readPage(again.position, { pageSize: 10 });
    expect(page.rows.map((r) => r.user_id)).toEqual([1, 2, 3, 4, 5].map((n) => syntheticUser(n).user_id));
  });
});

/**
 * Reads a model of wide rows as extractAndDiff reads a model (PageReader, pages read ahead) from a model of
 * BigQuery's API, in a process of its own so that its peak RSS is the reading's. Each page read waits a modelled
 * round trip, then is what the API sends and the source does with it: the page's JSON text (in answers of at most
 * 10 MB, as BigQuery sends them), parsed, and converted to rows by the source's converter (src/sources/bigquery/
 * convert.ts). Each page is walked (every value touched) and kept until the next one is done with, as a run keeps
 * a page while the next is fingerprinted and it is staged. Pages are sized as BigQuerySource sizes them
 * (`pageRowsFor` of the first 100 rows' JSON bytes), or 10,000 rows whatever their width, as before.
 *
 * Prints `@ready`, then `@result {"rows":N,"pages":N,"rowsPerPage":N,"bytesPerRow":N,"seconds":S}`, and stays up
 * until SIGTERM so the parent can read its peak RSS. Environment: BENCH_WIDE_ROWS, BENCH_WIDE_COLUMNS,
 * BENCH_LATENCY_MS, BENCH_PAGE_ROWS (`source` or `fixed`).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { convertRows, type RawRow } from '../../src/sources/bigquery/convert';
import { PAGE_SAMPLE_ROWS, pageRowsFor } from '../../src/sources/bigquery/source';
import { DEFAULT_MAX_READ_AHEAD, PageReader } from '../../src/sources/read-ahead';
import type { Source, SourceField, SourcePage, SourcePosition } from '../../src/sync/types';
import { BenchEnvError, requiredEnv } from './processes';

/** Rows per page a worker reads (the activities' default). */
const PAGE_SIZE_ROWS = 10_000;
/** What one answer of BigQuery's API holds at most. */
const ANSWER_BYTES = 10 * 1024 * 1024;

function count(name: string): number {
  const value = Number(requiredEnv(name));
  if (!Number.isSafeInteger(value) || value < 0) throw new BenchEnvError(`${name} is not a count`);
  return value;
}

/** Row n of the model as the API sends it: a key and `columns` text values of ~60 characters. */
function rawRow(n: number, columns: number): RawRow {
  const f = [{ v: `user_${String(n).padStart(7, '0')}` }];
  for (let i = 0; i < columns; i++) f.push({ v: `${n}_${i}_${'x'.repeat(50)}` });
  return { f };
}

/** Every value's length: the walk a page's fingerprinting makes. */
function walk(page: SourcePage): number {
  let n = 0;
  for (const row of page.rows)
    for (const value of Object.values(row)) n += typeof value === 'string' ? value.length : 1;
  return n;
}

async function main(): Promise<void> {
  const mode = requiredEnv('BENCH_PAGE_ROWS');
  if (mode !== 'source' && mode !== 'fixed') throw new BenchEnvError(`BENCH_PAGE_ROWS is "${mode}"`);
  const rows = count('BENCH_WIDE_ROWS');
  const columns = count('BENCH_WIDE_COLUMNS');
  const latencyMs = count('BENCH_LATENCY_MS');
  const schema: SourceField[] = [
    { name: 'user_id', type: 'STRING', mode: 'NULLABLE' },
    ...Array.from({ length: columns }, (_, i): SourceField => ({ name: `c${i}`, type: 'STRING', mode: 'NULLABLE' })),
  ];
  // as BigQuerySource.open sizes pages: from the JSON of the results' first rows
  const sample = Array.from({ length: Math.min(rows, PAGE_SAMPLE_ROWS) }, (_, i) => rawRow(i + 1, columns));
  const bytesPerRow = Math.round(Buffer.byteLength(JSON.stringify(sample)) / sample.length);
  const start: SourcePosition = {
    jobId: 'modelled',
    pageToken: null,
    page: 0,
    rowsRead: 0,
    totalRows: rows,
    ...(mode === 'source' ? { pageRows: pageRowsFor(bytesPerRow) ?? PAGE_SIZE_ROWS } : {}),
  };
  const api: Source = {
    dryRun: () => Promise.reject(new BenchEnvError('the modelled API only reads pages')),
    open: () => Promise.reject(new BenchEnvError('the modelled API only reads pages')),
    readPage: async (position, { pageSize }) => {
      const to = Math.min(rows, position.rowsRead + pageSize);
      let raw: RawRow[] = [];
      // the page in answers of at most ANSWER_BYTES of JSON, each waiting a round trip, parsed on arrival
      for (let from = position.rowsRead; from < to;) {
        await delay(latencyMs);
        const answer: RawRow[] = [];
        let bytes = 0;
        while (from < to && (answer.length === 0 || bytes + bytesPerRow <= ANSWER_BYTES)) {
          answer.push(rawRow(from + 1, columns));
          bytes += bytesPerRow;
          from += 1;
        }
        const text = JSON.stringify({ rows: answer });
        raw = raw.concat((JSON.parse(text) as { rows: RawRow[] }).rows);
      }
      const next = { ...position, page: position.page + 1, rowsRead: to, pageToken: to < rows ? String(to) : null };
      return { rows: convertRows(schema, raw), next };
    },
  };
  process.stdout.write('@ready\n');
  const started = performance.now();
  const reader = new PageReader(api, start, { pageSize: PAGE_SIZE_ROWS, maxAhead: DEFAULT_MAX_READ_AHEAD });
  let read = 0;
  let pages = 0;
  let touched = 0;
  let held: SourcePage | undefined;
  for (let page = await reader.next(); page !== undefined; page = await reader.next()) {
    touched += walk(page);
    read += page.rows.length;
    pages += 1;
    // kept while the next page is worked on, as a run stages a page while it fingerprints the next
    held = page;
    await delay(0);
  }
  const seconds = (performance.now() - started) / 1000;
  if (touched === 0 || held === undefined) throw new BenchEnvError('the model had no rows');
  const rowsPerPage = Math.min(PAGE_SIZE_ROWS, start.pageRows ?? PAGE_SIZE_ROWS);
  process.stdout.write(`@result ${JSON.stringify({ rows: read, pages, rowsPerPage, bytesPerRow, seconds })}\n`);
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
}

main().catch((err: unknown) => {
  process.stderr.write(`wide read failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

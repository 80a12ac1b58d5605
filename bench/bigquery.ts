/**
 * The BigQuery emulator's own read rate: a private, in-memory goccy emulator on free ports, a synthetic users table
 * (src/dev/demo-data.ts), then BigQuerySource pages it exactly as extractAndDiff does. The end-to-end runs use a
 * generated source instead because this emulator reads a few thousand rows per second and fails past ~2 GiB.
 * Then the same results are read through PageReader as extractAndDiff reads them, one page ahead (as before read
 * ahead) against up to DEFAULT_MAX_READ_AHEAD, side by side: from the emulator itself, from the emulator with a
 * modelled network round trip added to every page read (READ_LATENCY_MS, about what a 10,000-row page of
 * BigQuery's API takes), and from a model of the API alone (the round trip, rows generated: no emulator's CPU).
 * Last, the memory of reading wide rows: pages sized for their width against 10,000-row pages (measureWideRows).
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { createSyntheticUsers, syntheticUser } from '../src/dev/demo-data';
import { DEV_BIGQUERY_PROJECT, toolPaths } from '../src/dev/services';
import { createBigQueryClient } from '../src/sources/bigquery/client';
import { BigQuerySource } from '../src/sources/bigquery/source';
import { DEFAULT_MAX_READ_AHEAD, PageReader } from '../src/sources/read-ahead';
import { sourceSchema } from '../src/config/schema';
import { isExhausted, type Source, type SourcePosition } from '../src/sync/types';
import {
  ChildProcessError,
  freePort,
  MemorySampler,
  startChild,
  stopChild,
  WORKER_ENV,
  type Launcher,
} from './support/processes';

/** How long the emulator may take to answer its first request. */
const READY_TIMEOUT_MS = 60_000;
/** Rows per page, as the worker reads them. */
const PAGE_SIZE_ROWS = 10_000;
/** The round trip modelled for a page read from BigQuery's API over a network (none on loopback). */
const READ_LATENCY_MS = 300;
/** Rows of the modelled API: enough pages (50) for the read-ahead window to open and then hold. */
const MODELLED_API_ROWS = 500_000;
/** The wide model: a key and WIDE_COLUMNS text columns of ~60 characters (~2 KB of JSON a row). */
const WIDE_ROWS = 100_000;
const WIDE_COLUMNS = 30;

/** The BigQuery emulator binary is not installed. */
export class BigQueryEmulatorMissingError extends Error {
  override readonly name = 'BigQueryEmulatorMissingError';
}

export interface BigQueryFigures {
  rows: number;
  /** CREATE TABLE AS of the synthetic table. */
  createSeconds: number;
  /** The model's query job, until its first page can be read. */
  openSeconds: number;
  /** Paging every row through BigQuerySource (conversion included). */
  readSeconds: number;
  rowsPerSecond: number;
  pages: number;
  emulatorPeakRssMb: number;
  /**
   * The same results read through PageReader: one page ahead against read ahead, with and without latency
   * (absent in reports written before read ahead).
   */
  readAhead?: ReadAheadFigures[];
  /**
   * A model of wide rows read as a run reads it, with the source's pages for wide rows against 10,000-row pages,
   * each side in a process of its own (absent in reports written before pages were sized by their rows' width).
   */
  wideRows?: WideReadFigures[];
}

export interface WideReadFigures {
  /** `source`: pages the source sizes for the rows' width; `fixed`: 10,000-row pages, as before. */
  pages: 'source' | 'fixed';
  rows: number;
  columns: number;
  /** JSON bytes per row on the wire, measured from the first rows. */
  bytesPerRow: number;
  rowsPerPage: number;
  pagesRead: number;
  latencyMs: number;
  seconds: number;
  rowsPerSecond: number;
  /** Peak RSS of the process that read the model. */
  peakRssMb: number;
}

export interface ReadAheadFigures {
  /** What the pages came from. */
  source: 'emulator' | 'emulator + latency' | 'modelled API';
  rows: number;
  /** Reads ahead allowed (1: only the next page, as before read ahead). */
  maxAhead: number;
  /** Added to every page read (a modelled network round trip), ms. */
  latencyMs: number;
  seconds: number;
  rowsPerSecond: number;
  /** Pages read ahead at once, at the widest. */
  pagesAhead: number;
}

/** Reads every page from `start` through PageReader, as extractAndDiff does (no work on the pages). */
async function readThrough(
  kind: ReadAheadFigures['source'],
  source: Source,
  start: SourcePosition,
  maxAhead: number,
  latencyMs: number,
): Promise<ReadAheadFigures> {
  const delayed: Source =
    latencyMs === 0
      ? source
      : {
          dryRun: (model, options) => source.dryRun(model, options),
          open: (model, options) => source.open(model, options),
          readPage: async (position, options) => {
            await delay(latencyMs);
            return source.readPage(position, options);
          },
        };
  const started = performance.now();
  const reader = new PageReader(delayed, start, { pageSize: PAGE_SIZE_ROWS, maxAhead });
  let rows = 0;
  try {
    for (let page = await reader.next(); page !== undefined; page = await reader.next()) rows += page.rows.length;
  } finally {
    await reader.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    source: kind,
    rows,
    maxAhead,
    latencyMs,
    seconds: round(seconds),
    rowsPerSecond: Math.round(rows / seconds),
    pagesAhead: reader.maxAheadReached,
  };
}

/** Starts a private emulator, measures it on a table of `rows` synthetic users, stops it. */
export async function measureBigQueryEmulator(
  rows: number,
  launch: Launcher,
  log: (line: string) => void,
): Promise<BigQueryFigures> {
  const binary = toolPaths().bigqueryEmulator;
  if (binary === '') throw new BigQueryEmulatorMissingError('AMPSYNC_BQ_EMULATOR_BIN is unknown: run npm run tools');
  const port = await freePort();
  const grpcPort = await freePort();
  const emulator = spawn(
    binary,
    [
      `--project=${DEV_BIGQUERY_PROJECT}`,
      '--host=127.0.0.1',
      `--port=${port}`,
      `--grpc-port=${grpcPort}`,
      '--log-level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BIGQUERY_EMULATOR_HOST: undefined } },
  );
  let stderr = '';
  emulator.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const exited = new Promise<void>((resolve) => emulator.once('exit', () => resolve()));
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntilReady(endpoint, () => stderr);
    const memory = new MemorySampler(emulator.pid!);
    const source = sourceSchema.parse({ project: DEV_BIGQUERY_PROJECT, apiEndpoint: endpoint });
    log(`BigQuery emulator: creating ${rows.toLocaleString('en-US')} synthetic users`);
    const created = await createSyntheticUsers(createBigQueryClient(source), { dataset: 'bench', rows });
    const bq = new BigQuerySource(source);
    let started = performance.now();
    const opened = await bq.open({ sql: `SELECT * FROM bench.${created.table.split('.')[1]}` });
    const openSeconds = (performance.now() - started) / 1000;
    started = performance.now();
    let position = opened.position;
    let read = 0;
    let pages = 0;
    do {
      const page = await bq.readPage(position, { pageSize: PAGE_SIZE_ROWS });
      read += page.rows.length;
      pages += 1;
      position = page.next;
    } while (!isExhausted(position));
    const readSeconds = (performance.now() - started) / 1000;
    if (read !== rows) throw new ChildProcessError(`BigQuery emulator returned ${read} rows of ${rows}`);
    const readAhead: ReadAheadFigures[] = [];
    const sides = [
      { kind: 'emulator', source: bq, start: opened.position, latencyMs: 0 },
      { kind: 'emulator + latency', source: bq, start: opened.position, latencyMs: READ_LATENCY_MS },
      {
        kind: 'modelled API',
        source: modelledApi(MODELLED_API_ROWS),
        start: modelledApiStart(MODELLED_API_ROWS),
        latencyMs: READ_LATENCY_MS,
      },
    ] as const;
    for (const side of sides) {
      for (const maxAhead of [1, DEFAULT_MAX_READ_AHEAD]) {
        const figures = await readThrough(side.kind, side.source, side.start, maxAhead, side.latencyMs);
        log(
          `  ${side.kind}, ${side.latencyMs} ms added per page, up to ${maxAhead} read ahead: ` +
            `${figures.rowsPerSecond} rows/s (${figures.pagesAhead} at the widest)`,
        );
        readAhead.push(figures);
      }
    }
    const figures: BigQueryFigures = {
      rows,
      createSeconds: round(created.ms / 1000),
      openSeconds: round(openSeconds),
      readSeconds: round(readSeconds),
      rowsPerSecond: Math.round(rows / readSeconds),
      pages,
      emulatorPeakRssMb: round(memory.stop()),
      readAhead,
      wideRows: await measureWideRows(launch, log),
    };
    log(`  BigQuery emulator: ${figures.rowsPerSecond} rows/s read, query ${figures.openSeconds} s`);
    return figures;
  } finally {
    emulator.kill('SIGTERM');
    await Promise.race([exited, delay(10_000)]);
    if (emulator.exitCode === null && emulator.signalCode === null) emulator.kill('SIGKILL');
  }
}

/**
 * A model of WIDE_ROWS rows of WIDE_COLUMNS text columns (~2 KB of JSON a row) read as a run reads it, from a model
 * of BigQuery's API (READ_LATENCY_MS per answer, answers of at most 10 MB, the source's converter): in pages
 * BigQuerySource sizes for the rows' width, and in 10,000-row pages, each side in a process of its own. Not from
 * the emulator: it reads a query's whole results for every page it answers (~0.75 s for 40 MB, however few rows
 * are asked for), so its time grows with the number of pages, which BigQuery's does not.
 */
async function measureWideRows(launch: Launcher, log: (line: string) => void): Promise<WideReadFigures[]> {
  const figures: WideReadFigures[] = [];
  for (const pages of ['fixed', 'source'] as const) {
    const { command, args } = launch('bench/support/wide-read-process.ts');
    let onResult: (line: string) => void = () => undefined;
    const resultLine = new Promise<string>((resolve) => (onResult = resolve));
    const { child } = await startChild({
      name: `wide read (${pages} pages)`,
      command,
      args,
      env: {
        ...WORKER_ENV,
        BENCH_WIDE_ROWS: String(WIDE_ROWS),
        BENCH_WIDE_COLUMNS: String(WIDE_COLUMNS),
        BENCH_PAGE_ROWS: pages,
        BENCH_LATENCY_MS: String(READ_LATENCY_MS),
      },
      ready: /^@ready$/,
      onLine: (l) => {
        if (l.startsWith('@result ')) onResult(l);
      },
    });
    try {
      const memory = new MemorySampler(child.pid);
      const line = await Promise.race([
        resultLine,
        child.exited.then((code): never => {
          throw new ChildProcessError(`${child.name} exited with code ${String(code)}:\n${child.tail()}`);
        }),
      ]);
      const result = JSON.parse(line.slice('@result '.length)) as {
        rows: number;
        pages: number;
        rowsPerPage: number;
        bytesPerRow: number;
        seconds: number;
      };
      if (result.rows !== WIDE_ROWS) throw new ChildProcessError(`${child.name} read ${result.rows} rows`);
      const wide: WideReadFigures = {
        pages,
        rows: result.rows,
        columns: WIDE_COLUMNS + 1,
        bytesPerRow: result.bytesPerRow,
        rowsPerPage: result.rowsPerPage,
        pagesRead: result.pages,
        latencyMs: READ_LATENCY_MS,
        seconds: round(result.seconds),
        rowsPerSecond: Math.round(result.rows / result.seconds),
        peakRssMb: round(memory.stop()),
      };
      log(
        `  wide rows (${wide.bytesPerRow} bytes of JSON each), pages of ${wide.rowsPerPage} rows: ` +
          `${wide.rowsPerSecond} rows/s, peak RSS ${wide.peakRssMb} MB`,
      );
      figures.push(wide);
    } finally {
      await stopChild(child);
    }
  }
  return figures;
}

/** Where the modelled API's results start: `rows` rows read by index. */
function modelledApiStart(rows: number): SourcePosition {
  return { jobId: 'modelled', pageToken: null, page: 0, rowsRead: 0, totalRows: rows };
}

/** BigQuery's API reduced to its rows (synthetic users, as the emulator holds) and the caller's added latency. */
function modelledApi(rows: number): Source {
  const unused = (): never => {
    throw new Error('the modelled API only reads pages');
  };
  return {
    dryRun: unused,
    open: unused,
    readPage: (position, { pageSize }) => {
      const to = Math.min(rows, position.rowsRead + pageSize);
      const page = Array.from({ length: to - position.rowsRead }, (_, i) => syntheticUser(position.rowsRead + i + 1));
      const next = { ...position, page: position.page + 1, rowsRead: to, pageToken: to < rows ? String(to) : null };
      return Promise.resolve({ rows: page, next });
    },
  };
}

async function waitUntilReady(endpoint: string, output: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const ok = await fetch(`${endpoint}/bigquery/v2/projects/${DEV_BIGQUERY_PROJECT}/datasets`).then(
      (res) => res.ok,
      () => false,
    );
    if (ok) return;
    await delay(250);
  }
  throw new ChildProcessError(`BigQuery emulator at ${endpoint} not ready in ${READY_TIMEOUT_MS} ms:\n${output()}`);
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

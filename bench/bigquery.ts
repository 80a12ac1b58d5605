/**
 * The BigQuery emulator's own read rate: a private, in-memory goccy emulator on free ports, a synthetic users table
 * (src/dev/demo-data.ts), then BigQuerySource pages it exactly as extractAndDiff does. The end-to-end runs use a
 * generated source instead because this emulator reads a few thousand rows per second and fails past ~2 GiB.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { createSyntheticUsers } from '../src/dev/demo-data';
import { DEV_BIGQUERY_PROJECT, toolPaths } from '../src/dev/services';
import { createBigQueryClient } from '../src/sources/bigquery/client';
import { BigQuerySource } from '../src/sources/bigquery/source';
import { sourceSchema } from '../src/config/schema';
import { isExhausted } from '../src/sync/types';
import { ChildProcessError, freePort, MemorySampler } from './support/processes';

/** How long the emulator may take to answer its first request. */
const READY_TIMEOUT_MS = 60_000;
/** Rows per page, as the worker reads them. */
const PAGE_SIZE_ROWS = 10_000;

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
}

/** Starts a private emulator, measures it on a table of `rows` synthetic users, stops it. */
export async function measureBigQueryEmulator(rows: number, log: (line: string) => void): Promise<BigQueryFigures> {
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
    const figures: BigQueryFigures = {
      rows,
      createSeconds: round(created.ms / 1000),
      openSeconds: round(openSeconds),
      readSeconds: round(readSeconds),
      rowsPerSecond: Math.round(rows / readSeconds),
      pages,
      emulatorPeakRssMb: round(memory.stop()),
    };
    log(`  BigQuery emulator: ${figures.rowsPerSecond} rows/s read, query ${figures.openSeconds} s`);
    return figures;
  } finally {
    emulator.kill('SIGTERM');
    await Promise.race([exited, delay(10_000)]);
    if (emulator.exitCode === null && emulator.signalCode === null) emulator.kill('SIGKILL');
  }
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

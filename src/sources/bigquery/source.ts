/**
 * BigQuery as a sync's source: a SQL model runs as one query job whose results are paged by row index
 * (`startIndex`, so pages ahead can be read at once); a table model is paged directly with tabledata.list (free,
 * no job) with page tokens. A position (job id + row index or page token) read again returns the same page, so
 * extraction resumes after a crash from the last saved position.
 *
 *   const source = new BigQuerySource({ type: 'bigquery', project: 'my-project', location: 'US' });
 *   const { schema, totalRows, position } = await source.open({ sql: 'SELECT user_id, plan FROM crm.users' });
 *   for (let p = position; !isExhausted(p); ) ({ next: p } = await source.readPage(p, { pageSize: 10_000 }));
 *
 * Positions: `jobId` is the query job's id, or `PROJECT:DATASET.TABLE` for a table read (job ids hold no ":").
 * The first page has `page: 0, pageToken: null`; after the last page `pageToken` is null and `page > 0`. A query's
 * positions also hold its `totalRows` and are read by index; they carry the token BigQuery returned all the same.
 *
 * Unless `source.stateDataset` is false (read-only mode) it is also a WarehouseDiff (src/sync/warehouse-diff.ts):
 * `openChanges` creates the state dataset when it is missing (default `ampsync_state`), copies the model into a run
 * table with `FARM_FINGERPRINT(TO_JSON_STRING(row))` and each key's row count, and pages only the rows the snapshot
 * does not match; `promoteSnapshot` turns the run table into the next snapshot (key text and fingerprint per key).
 */
import type { BigQuery, Dataset, Job, Table } from '@google-cloud/bigquery';
import type { ModelConfig, SourceConfig } from '../../config/schema';
import type {
  DryRunResult,
  OpenChangesRequest,
  OpenedModel,
  PromoteSnapshotRequest,
  ReadPageOptions,
  Source,
  SourceField,
  SourcePage,
  SourcePosition,
  WarehouseDiff,
} from '../../sync/types';
import { isExhausted } from '../../sync/types';
import {
  checkDiffKey,
  DEFAULT_STATE_DATASET,
  DIFF_KEY_TYPES,
  isLoopbackUrl,
  stateDatasetOf,
} from '../../sync/warehouse-diff';
import { createBigQueryClient } from './client';
import { convertRows, normaliseSchema, type RawField, type RawRow } from './convert';
import {
  classifyBigQueryError,
  SourceConfigError,
  SourceResultsExpiredError,
  SourceUnavailableError,
  type BigQueryCallContext,
  type SourceError,
} from './errors';

/** Structured logging (Temporal's activity logger fits). */
export interface SourceLogger {
  debug(message: string, attributes?: Record<string, unknown>): void;
  info(message: string, attributes?: Record<string, unknown>): void;
  warn(message: string, attributes?: Record<string, unknown>): void;
}

/** How table models are read: tabledata.list pages (free) or a `SELECT *` query job. */
export type TableReadMode = 'list' | 'query';

export interface BigQuerySourceOptions {
  /** A ready client (default: createBigQueryClient(source)). */
  client?: BigQuery;
  logger?: SourceLogger;
  /**
   * Default 'list'; 'query' for a loopback `apiEndpoint`, because the goccy emulator's tabledata.list ignores
   * maxResults and page tokens (it returns the whole table at once) while its query results page correctly.
   */
  tableRead?: TableReadMode;
  /** Called on every poll while a query job runs (at most JOB_POLL_MAX_MS apart): heartbeat the activity here. */
  onJobWait?: (wait: { jobId: string; elapsedMs: number }) => void;
  /** Longest wait for a query job to finish (default JOB_TIMEOUT_MS). */
  jobTimeoutMs?: number;
  /** Labels set on every query job, e.g. { app: 'ampsync', sync: 'users' }, to find its cost in billing. */
  jobLabels?: Record<string, string>;
}

export interface OpenOptions {
  /**
   * A deterministic job id (e.g. from the sync run id): an open() retried after a crash attaches to the job
   * already running instead of starting the query again.
   */
  jobId?: string;
  signal?: AbortSignal;
  /**
   * The sync's key column. A query model's results then come in ascending order of the key's text (CAST AS
   * STRING, the text the worker keys rows by) when its type is one BigQuery and the worker spell alike (STRING,
   * INT64), so the state store can read delivered state by key range; `position.keyOrdered` says whether they
   * do. Table models read with tabledata.list (free, no job) stay unordered. Should BigQuery find the sort beyond
   * its resources (its final ORDER BY stage runs on one slot), the model runs again unordered.
   */
  orderByKey?: string;
  /**
   * The model's columns to read (a sync's key and mapped columns): a query then selects those alone, and
   * BigQuery bills only the columns it reads. A table read with tabledata.list (which bills nothing) reads every
   * column.
   */
  columns?: readonly string[];
}

/** Default longest wait for a query job. */
export const JOB_TIMEOUT_MS = 6 * 60 * 60 * 1000;
/** Polling of a running job starts at JOB_POLL_MIN_MS and doubles up to JOB_POLL_MAX_MS. */
export const JOB_POLL_MIN_MS = 250;
export const JOB_POLL_MAX_MS = 5_000;
/** Prefix of the ids of the query jobs ampsync starts (find them in the console / INFORMATION_SCHEMA.JOBS). */
export const JOB_ID_PREFIX = 'ampsync_';
/** How much of a SQL model a message quotes. */
const SQL_PREVIEW_CHARS = 80;

interface TableRef {
  project: string;
  dataset: string;
  table: string;
}

type TableMetadata = {
  type?: string | null;
  location?: string | null;
  numRows?: string | number | null;
  numBytes?: string | number | null;
  schema?: { fields?: RawField[] | null } | null;
};

export { isExhausted };

/**
 * The JSON a page of rows may take on the wire. Parsed, a page costs ~3× its JSON in the worker's heap, and up to
 * DEFAULT_MAX_READ_AHEAD pages are read ahead while one is diffed and the one before it staged: pages of 4 MiB
 * keep that under ~80 MB however wide the model. Rows up to ~420 bytes (8 short columns take ~190) still come
 * 10,000 to a page.
 */
export const PAGE_BUDGET_BYTES = 4 * 1024 * 1024;
/** Rows per page however wide they are (a row of BigQuery's API is at most 100 MB; ampsync's rows are smaller). */
export const MIN_PAGE_ROWS = 10;
/** Rows of a query's results whose JSON sizes its pages (read with the job's schema, in the same request). */
export const PAGE_SAMPLE_ROWS = 100;
/** What `{"v":…},` adds to each cell on the wire, beyond the value's own bytes. */
const CELL_OVERHEAD_BYTES = 16;

/**
 * Rows per page for rows of `bytesPerRow` bytes of JSON each: as many as PAGE_BUDGET_BYTES holds; undefined without
 * a measure (no rows, a size of 0): the reader's page size then holds.
 */
export function pageRowsFor(bytesPerRow: number | undefined): number | undefined {
  if (bytesPerRow === undefined || !Number.isFinite(bytesPerRow) || bytesPerRow <= 0) return undefined;
  return Math.max(MIN_PAGE_ROWS, Math.floor(PAGE_BUDGET_BYTES / bytesPerRow));
}

/** The JSON bytes per row of a sample of rows as the API sent them (undefined without rows). */
function sampleBytesPerRow(rows: readonly RawRow[] | undefined): number | undefined {
  if (rows === undefined || rows.length === 0) return undefined;
  const sample = rows.length > PAGE_SAMPLE_ROWS ? rows.slice(0, PAGE_SAMPLE_ROWS) : rows;
  return Buffer.byteLength(JSON.stringify(sample)) / sample.length;
}

/** Cells of a row on the wire: one per column, a RECORD's fields counted inside it. */
function cellsOf(fields: readonly SourceField[]): number {
  return fields.reduce((n, f) => n + (f.fields !== undefined && f.fields.length > 0 ? cellsOf(f.fields) : 1), 0);
}

function firstPosition(jobId: string, location: string | null | undefined): SourcePosition {
  return { jobId, ...(location ? { location } : {}), pageToken: null, page: 0, rowsRead: 0 };
}

/** The position with the rows per page its rows' width allows, when measured. */
function withPageRows(position: SourcePosition, pageRows: number | undefined): SourcePosition {
  return pageRows === undefined ? position : { ...position, pageRows };
}

/** `PROJECT:DATASET.TABLE`: BigQuery's own spelling of a table id; never a valid job id. */
function tablePositionId(ref: TableRef): string {
  return `${ref.project}:${ref.dataset}.${ref.table}`;
}

function tableOfPosition(jobId: string): TableRef | undefined {
  const colon = jobId.lastIndexOf(':');
  if (colon < 0) return undefined;
  const rest = jobId.slice(colon + 1);
  const dot = rest.indexOf('.');
  if (dot < 0) return undefined;
  return { project: jobId.slice(0, colon), dataset: rest.slice(0, dot), table: rest.slice(dot + 1) };
}

function describeModel(model: ModelConfig, project: string): string {
  if ('table' in model)
    return `table "${model.table.split('.').length === 2 ? `${project}.${model.table}` : model.table}"`;
  const oneLine = model.sql.replace(/\s+/g, ' ').trim();
  return `SQL model "${oneLine.length > SQL_PREVIEW_CHARS ? `${oneLine.slice(0, SQL_PREVIEW_CHARS - 1)}…` : oneLine}"`;
}

function formatBytes(bytes: bigint): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Days an abandoned run table lives (BigQuery drops it; a later run's promotion drops it sooner). */
const RUN_TABLE_EXPIRY_DAYS = 7;
/** Columns the run table adds to the model's: the row's fingerprint and how many rows share its key. */
const FP_COLUMN = '__ampsync_fp';
const COUNT_COLUMN = '__ampsync_n';

/** A column name as a quoted identifier. */
function column(name: string): string {
  return `\`${name.replace(/[`\\]/g, (c) => `\\${c}`)}\``;
}

/** Reads models from BigQuery (or the goccy emulator) page by page, resumably. */
export class BigQuerySource implements Source, WarehouseDiff {
  /** Set unless the source is read-only (`stateDataset: false`): the diff runs in BigQuery. */
  readonly warehouseDiff?: WarehouseDiff;
  private readonly client: BigQuery;
  private readonly logger: SourceLogger | undefined;
  private readonly tableRead: TableReadMode;
  private readonly maxBytes: bigint | undefined;
  private readonly tables = new Map<string, { table: Table; schema: SourceField[] }>();

  constructor(
    private readonly source: SourceConfig,
    private readonly options: BigQuerySourceOptions = {},
  ) {
    this.client = options.client ?? createBigQueryClient(source);
    this.logger = options.logger;
    this.tableRead = options.tableRead ?? (isLoopbackUrl(source.apiEndpoint) ? 'query' : 'list');
    this.maxBytes = source.maximumBytesBilled !== undefined ? BigInt(source.maximumBytesBilled) : undefined;
    if (stateDatasetOf(source) !== undefined) this.warehouseDiff = this;
  }

  /**
   * Copies the model into `request.runTable` with each row's fingerprint and key count, then opens the rows the
   * snapshot does not match: new keys, changed fingerprints, duplicated and NULL keys. Retried attempts attach to
   * the jobs of the first (deterministic job ids).
   */
  async openChanges(model: ModelConfig, request: OpenChangesRequest): Promise<OpenedModel> {
    const subject = describeModel(model, this.source.project);
    const body = project('sql' in model ? model.sql : selectAll(this.tableRef(model.table)), request.columns);
    const key = column(request.key);
    const run = this.stateTableRef(request.runTable);
    if (this.maxBytes !== undefined) await this.dryRunJob(body, subject);
    // checked on every run (one request): a dataset deleted meanwhile is made again
    await this.ensureStateDataset(body, subject);
    const copy = await this.startJob(
      `CREATE TABLE ${selectFrom(run)}
       OPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL ${RUN_TABLE_EXPIRY_DAYS} DAY)) AS
       SELECT m.*, FARM_FINGERPRINT(TO_JSON_STRING(m)) AS ${FP_COLUMN},
              COUNT(*) OVER (PARTITION BY m.${key}) AS ${COUNT_COLUMN}
       FROM (\n${body}\n) AS m`,
      `copy of ${subject} into ${request.runTable}`,
      `${request.jobId}_copy`,
    );
    await this.waitForJob(copy, `copy of ${subject} into ${request.runTable}`, request.signal);
    const { metadata, schema } = await this.tableMetadata(run, `run table "${request.runTable}"`, 'run table lookup');
    checkDiffKey(subject, request.key, schema);
    const runRows = Number(metadata.numRows ?? 0);

    let snapshot = request.snapshot === null ? null : this.stateTableRef(request.snapshot);
    if (snapshot !== null && !(await this.tableExists(snapshot))) {
      this.logger?.warn('the warehouse snapshot is gone: every row of the model is diffed by the worker', {
        snapshot: request.snapshot,
      });
      snapshot = null;
    }
    const changes =
      snapshot === null
        ? `SELECT * EXCEPT (${FP_COLUMN}, ${COUNT_COLUMN}) FROM ${selectFrom(run)}`
        : `SELECT r.* EXCEPT (${FP_COLUMN}, ${COUNT_COLUMN})
           FROM ${selectFrom(run)} AS r LEFT JOIN ${selectFrom(snapshot)} AS s ON s.k = CAST(r.${key} AS STRING)
           WHERE s.k IS NULL OR s.fp <> r.${FP_COLUMN} OR r.${COUNT_COLUMN} > 1`;
    // in key order, as a worker-diffed extract is: the store then diffs each page against one range of delivered
    // keys (a first run's whole model, a later run's changes)
    const opened = await this.openQuery(
      changes,
      `changed rows of ${subject}`,
      {
        jobId: request.jobId,
        orderByKey: request.key,
        ...(request.signal !== undefined ? { signal: request.signal } : {}),
      },
      schema,
    );
    const unchangedElsewhere = Math.max(0, runRows - opened.totalRows);
    this.logger?.info('BigQuery diffed the model against its snapshot', {
      runTable: request.runTable,
      snapshot: snapshot === null ? null : request.snapshot,
      rows: runRows,
      changed: opened.totalRows,
      unchanged: unchangedElsewhere,
    });
    return { ...opened, position: { ...opened.position, unchangedElsewhere } };
  }

  /** Writes the next snapshot: each key of the run table held by one row, less `exclude`, with its fingerprint. */
  async promoteSnapshot(request: PromoteSnapshotRequest): Promise<{ rows: number }> {
    const key = column(request.key);
    const target = this.stateTableRef(request.snapshot);
    const subject = `warehouse snapshot "${request.snapshot}"`;
    const job = await this.startJob(
      `CREATE TABLE ${selectFrom(target)} AS
       SELECT CAST(${key} AS STRING) AS k, ${FP_COLUMN} AS fp FROM ${selectFrom(this.stateTableRef(request.runTable))}
       WHERE ${key} IS NOT NULL AND ${COUNT_COLUMN} = 1 AND CAST(${key} AS STRING) NOT IN UNNEST(@exclude)`,
      subject,
      request.jobId,
      { params: { exclude: request.exclude }, types: { exclude: ['STRING'] } },
    );
    await this.waitForJob(job, subject, undefined);
    const { metadata } = await this.tableMetadata(target, subject, 'snapshot lookup');
    return { rows: Number(metadata.numRows ?? 0) };
  }

  /** Drops the state dataset's tables named with one of `prefixes`, except `keep`; returns the names dropped. */
  async dropTables(prefixes: readonly string[], keep: readonly string[]): Promise<string[]> {
    const dataset = this.stateDataset();
    let tables: Table[];
    try {
      [tables] = await this.stateDatasetHandle().getTables({ autoPaginate: true });
    } catch (err) {
      const failure = classifyBigQueryError(err, {
        operation: 'table list',
        subject: `dataset "${dataset}"`,
        endpoint: 'tables.list',
      });
      // a run that failed before creating the dataset left no table in it
      if (failure instanceof SourceConfigError && failure.reason === 'notFound') return [];
      throw failure;
    }
    const dropped: string[] = [];
    for (const table of tables) {
      const name = table.id ?? '';
      if (keep.includes(name) || !prefixes.some((p) => name.startsWith(p))) continue;
      try {
        await table.delete({ ignoreNotFound: true });
      } catch (err) {
        throw classifyBigQueryError(err, {
          operation: 'table drop',
          subject: `table "${dataset}.${name}"`,
          endpoint: 'tables.delete',
        });
      }
      dropped.push(name);
    }
    return dropped;
  }

  /** Says whether the state dataset exists (`ampsync check`): a run creates it when it does not. */
  async describeStateDataset(): Promise<string> {
    const subject = this.stateDatasetSubject();
    if (await this.stateDatasetExists()) {
      return `${subject} exists: changed rows are found in BigQuery, and only they leave it`;
    }
    return (
      `${subject} does not exist yet: the first run creates it, which needs permission to create datasets in ` +
      `project "${this.source.project}": ${this.stateDatasetRemedy(this.source.location)}`
    );
  }

  /** What a user can do about a state dataset ampsync may not create (`location`: where it would go). */
  private stateDatasetRemedy(location: string | undefined): string {
    return (
      `let ampsync's credentials create datasets (roles/bigquery.user), or create it yourself (bq mk ` +
      `${location !== undefined ? `--location=${location} ` : ''}${this.stateDataset()}) and let them create ` +
      'tables in it (roles/bigquery.dataEditor on it); or set source.stateDataset: false to diff in the worker ' +
      '(read-only mode: every run reads the whole model)'
    );
  }

  private stateDatasetSubject(): string {
    return `state dataset "${this.source.project}.${this.stateDataset()}"`;
  }

  private async stateDatasetExists(): Promise<boolean> {
    try {
      const [exists] = await this.stateDatasetHandle().exists();
      return exists;
    } catch (err) {
      throw classifyBigQueryError(err, {
        operation: 'dataset lookup',
        subject: this.stateDatasetSubject(),
        endpoint: 'datasets.get',
      });
    }
  }

  /**
   * Creates the state dataset unless it exists: in `source.location`, else where BigQuery runs the model (a dry
   * run of `body` tells), since a query writes only into a dataset of its own location. One created meanwhile by
   * another worker is as good.
   */
  private async ensureStateDataset(body: string, subject: string): Promise<void> {
    if (await this.stateDatasetExists()) return;
    let location = this.source.location;
    if (location === undefined) {
      try {
        const [job] = await this.client.createQueryJob({ query: body, dryRun: true });
        location = job.location ?? undefined;
      } catch (err) {
        throw classifyBigQueryError(err, { operation: 'dry run', subject, endpoint: 'jobs.insert' });
      }
    }
    const dataset = this.stateDataset();
    try {
      await this.client.createDataset(dataset, {
        ...(location !== undefined ? { location } : {}),
        description:
          'ampsync: a snapshot of what each sync delivered (its next run diffs against it) and run copies of models',
      });
    } catch (err) {
      if (alreadyExists(err)) return;
      const failure = classifyBigQueryError(err, {
        operation: 'dataset creation',
        subject: this.stateDatasetSubject(),
        endpoint: 'datasets.insert',
      });
      if (!(failure instanceof SourceConfigError)) throw failure;
      throw new SourceConfigError(
        `${failure.message}. ampsync diffs in this dataset (source.stateDataset, default "${DEFAULT_STATE_DATASET}"): ` +
          this.stateDatasetRemedy(location),
        failure.reason,
        { cause: failure },
      );
    }
    this.logger?.info('created the state dataset', { dataset, location: location ?? null });
  }

  private stateDataset(): string {
    const dataset = stateDatasetOf(this.source);
    if (dataset === undefined) {
      throw new SourceConfigError(
        'the warehouse diff needs a state dataset, and source.stateDataset is false (read-only mode)',
        'invalid',
      );
    }
    return dataset;
  }

  private stateDatasetHandle(): Dataset {
    return this.client.dataset(this.stateDataset(), { projectId: this.source.project, ...this.locationOption() });
  }

  private stateTableRef(table: string): TableRef {
    return { project: this.source.project, dataset: this.stateDataset(), table };
  }

  private async tableExists(ref: TableRef): Promise<boolean> {
    try {
      const [exists] = await this.handleFor(ref).exists();
      return exists;
    } catch (err) {
      throw classifyBigQueryError(err, {
        operation: 'table lookup',
        subject: `table "${ref.dataset}.${ref.table}"`,
        endpoint: 'tables.get',
      });
    }
  }

  /**
   * Validates the model and reports its schema and the bytes a read of it processes, without running it; fails
   * over maximumBytesBilled. With `columns`, the bytes (and the limit) are those of reading these columns alone,
   * as `open` with the same columns does; the schema is still the model's whole.
   */
  async dryRun(model: ModelConfig, options: { columns?: readonly string[] } = {}): Promise<DryRunResult> {
    const subject = describeModel(model, this.source.project);
    if ('sql' in model) return this.dryRunColumns(model.sql, subject, options.columns);
    const ref = this.tableRef(model.table);
    const { metadata, schema } = await this.tableMetadata(ref, subject, 'table lookup (dry run)');
    if (this.readsTableByQuery(metadata)) {
      const dry = await this.dryRunColumns(selectAll(ref), subject, options.columns);
      return { bytesProcessed: dry.bytesProcessed, schema };
    }
    // tabledata.list bills nothing: the size reported is what the read transfers
    return { bytesProcessed: Number(metadata.numBytes ?? 0), schema };
  }

  /** Runs the model (a query job, waited for; or a table reference) and returns the position of its first page. */
  async open(model: ModelConfig, options: OpenOptions = {}): Promise<OpenedModel> {
    const subject = describeModel(model, this.source.project);
    if ('sql' in model) return this.openQuery(project(model.sql, options.columns), subject, options);
    const ref = this.tableRef(model.table);
    const { metadata, schema } = await this.tableMetadata(ref, subject, 'table lookup');
    if (this.readsTableByQuery(metadata))
      return this.openQuery(project(selectAll(ref), options.columns), subject, options);
    const totalRows = Number(metadata.numRows ?? 0);
    // a table's rows are sized by its own figures: BigQuery's bytes per row, and what JSON adds to each cell
    const bytes = Number(metadata.numBytes ?? 0);
    const pageRows = pageRowsFor(bytes > 0 ? bytes / totalRows + CELL_OVERHEAD_BYTES * cellsOf(schema) : undefined);
    this.logger?.debug('opened BigQuery table', { table: tablePositionId(ref), totalRows, pageRows });
    return {
      schema,
      totalRows,
      position: withPageRows(firstPosition(tablePositionId(ref), metadata.location), pageRows),
    };
  }

  /** Reads the page at `position`; the same position always yields the same rows. */
  async readPage(position: SourcePosition, options: ReadPageOptions): Promise<SourcePage> {
    if (isExhausted(position)) return { rows: [], next: position };
    const pageSize = Math.max(1, Math.floor(options.pageSize));
    const table = tableOfPosition(position.jobId);
    const fetched = table
      ? await this.listTablePage(table, position, pageSize)
      : position.totalRows !== undefined
        ? await this.queryResultsRange(position, position.totalRows, pageSize)
        : await this.queryResultsPage(position, pageSize);
    const rows = convertRows(fetched.schema, fetched.rows);
    const next: SourcePosition = {
      jobId: position.jobId,
      ...(position.location !== undefined ? { location: position.location } : {}),
      pageToken: fetched.pageToken ? fetched.pageToken : null,
      page: position.page + 1,
      rowsRead: position.rowsRead + rows.length,
      ...(position.unchangedElsewhere !== undefined ? { unchangedElsewhere: position.unchangedElsewhere } : {}),
      ...(position.keyOrdered === true ? { keyOrdered: true } : {}),
      ...(position.totalRows !== undefined ? { totalRows: position.totalRows } : {}),
      ...(position.pageRows !== undefined ? { pageRows: position.pageRows } : {}),
    };
    this.logger?.debug('read BigQuery page', {
      jobId: position.jobId,
      page: position.page,
      rows: rows.length,
      last: next.pageToken === null,
    });
    return { rows, next };
  }

  private tableRef(name: string): TableRef {
    const parts = name.split('.');
    if (parts.length === 2)
      return { project: this.source.project, dataset: parts[0] as string, table: parts[1] as string };
    if (parts.length === 3)
      return { project: parts[0] as string, dataset: parts[1] as string, table: parts[2] as string };
    throw new SourceConfigError(`table model "${name}" is not DATASET.TABLE or PROJECT.DATASET.TABLE`, 'invalid');
  }

  private readsTableByQuery(metadata: TableMetadata): boolean {
    // views and external tables have no rows of their own for tabledata.list
    return (
      this.tableRead === 'query' || (metadata.type !== undefined && metadata.type !== null && metadata.type !== 'TABLE')
    );
  }

  private handleFor(ref: TableRef): Table {
    const dataset = this.client.dataset(ref.dataset, {
      projectId: ref.project,
      ...(this.source.location !== undefined ? { location: this.source.location } : {}),
    });
    return dataset.table(ref.table);
  }

  private async tableMetadata(
    ref: TableRef,
    subject: string,
    operation: string,
  ): Promise<{ metadata: TableMetadata; schema: SourceField[]; table: Table }> {
    const table = this.handleFor(ref);
    let metadata: TableMetadata;
    try {
      [metadata] = (await table.getMetadata()) as [TableMetadata, ...unknown[]];
    } catch (err) {
      throw classifyBigQueryError(err, { operation, subject, endpoint: 'tables.get' });
    }
    const schema = normaliseSchema(metadata.schema?.fields);
    this.tables.set(tablePositionId(ref), { table, schema });
    return { metadata, schema, table };
  }

  /**
   * The dry run of `sql`, with the bytes of reading `columns` alone out of it when given. The whole model is
   * dry-run first (without the byte limit) for its schema, so a column it lacks is named by the mapper instead of
   * failing BigQuery's dry run of the projection.
   */
  private async dryRunColumns(
    sql: string,
    subject: string,
    columns: readonly string[] | undefined,
  ): Promise<DryRunResult> {
    if (columns === undefined || columns.length === 0) return this.dryRunQuery(sql, subject);
    const whole = await this.dryRunQuery(sql, subject, false);
    if (!columns.every((c) => whole.schema.some((f) => f.name === c))) return whole;
    const read = await this.dryRunJob(project(sql, columns), subject);
    return { bytesProcessed: Number(read.bytes), schema: whole.schema };
  }

  private async dryRunQuery(sql: string, subject: string, enforceLimit = true): Promise<DryRunResult> {
    const dry = await this.dryRunJob(sql, subject, enforceLimit);
    let fields = dry.fields;
    if (fields === undefined) {
      // the goccy emulator's dry runs report bytes but no schema: run the model with LIMIT 0 to learn it
      this.logger?.debug('dry run returned no schema; reading it from a LIMIT 0 query', { subject });
      fields = await this.schemaFromEmptyRun(sql, subject);
    }
    return { bytesProcessed: Number(dry.bytes), schema: normaliseSchema(fields) };
  }

  /** A true dry run (nothing runs, nothing is billed): bytes, statement type and, from BigQuery, the schema. */
  private async dryRunJob(
    sql: string,
    subject: string,
    enforceLimit = true,
  ): Promise<{ bytes: bigint; fields: RawField[] | undefined }> {
    let job: Job;
    try {
      [job] = await this.client.createQueryJob({ query: sql, dryRun: true, ...this.locationOption() });
    } catch (err) {
      throw classifyBigQueryError(err, { operation: 'dry run', subject, endpoint: 'jobs.insert' });
    }
    const statistics = (job.metadata as { statistics?: DryRunStatistics } | undefined)?.statistics;
    const statementType = statistics?.query?.statementType;
    if (statementType !== undefined && statementType !== 'SELECT') {
      throw new SourceConfigError(
        `${subject} is a ${statementType} statement; a model must be a query that returns rows (SELECT ...)`,
        'invalidQuery',
      );
    }
    const bytes = BigInt(statistics?.totalBytesProcessed ?? statistics?.query?.totalBytesProcessed ?? '0');
    if (enforceLimit) this.enforceByteLimit(bytes, subject);
    return { bytes, fields: statistics?.query?.schema?.fields ?? undefined };
  }

  private enforceByteLimit(bytes: bigint, subject: string): void {
    if (this.maxBytes === undefined || bytes <= this.maxBytes) return;
    throw new SourceConfigError(
      `BigQuery dry run for ${subject}: the query would process ${bytes} bytes (${formatBytes(bytes)}), over the ` +
        `source's maximumBytesBilled of ${this.maxBytes} bytes (${formatBytes(this.maxBytes)}); raise the limit or narrow the query`,
      'bytesLimitExceeded',
    );
  }

  private async schemaFromEmptyRun(sql: string, subject: string): Promise<RawField[]> {
    const body = sql.replace(/[\s;]+$/, '');
    const context: BigQueryCallContext = { operation: 'schema query (LIMIT 0)', subject, endpoint: 'jobs.insert' };
    try {
      const [job] = await this.client.createQueryJob({
        query: `SELECT * FROM (\n${body}\n) LIMIT 0`,
        ...this.locationOption(),
      });
      const [, , response] = await job.getQueryResults({ maxResults: 0, autoPaginate: false, skipParsing: true });
      return (response as { schema?: { fields?: RawField[] } } | undefined)?.schema?.fields ?? [];
    } catch (err) {
      throw classifyBigQueryError(err, context);
    }
  }

  /** `columns`: the query's columns when known (no dry run then to learn the key's type). */
  private async openQuery(
    sql: string,
    subject: string,
    options: OpenOptions,
    columns?: readonly SourceField[],
  ): Promise<OpenedModel> {
    const ordered =
      options.orderByKey === undefined ? undefined : await this.orderedQuery(sql, subject, options.orderByKey, columns);
    // BigQuery enforces maximumBytesBilled itself; a dry run also enforces it where a server does not (emulators),
    // unless orderedQuery's own did
    const dryRunDone = options.orderByKey !== undefined && columns === undefined;
    if (!dryRunDone && this.maxBytes !== undefined) await this.dryRunJob(sql, subject);
    let job: Job;
    let keyOrdered = ordered !== null && ordered !== undefined;
    try {
      job = await this.startJob(keyOrdered ? (ordered as string) : sql, subject, options.jobId);
      await this.waitForJob(job, subject, options.signal);
    } catch (err) {
      if (!keyOrdered || !(err instanceof SourceConfigError) || err.reason !== 'resourcesExceeded') throw err;
      this.logger?.warn('ordering the model by key exceeded BigQuery resources: it runs again unordered', {
        subject,
        key: options.orderByKey,
      });
      keyOrdered = false;
      job = await this.startJob(sql, subject, options.jobId === undefined ? undefined : `${options.jobId}_unordered`);
      await this.waitForJob(job, subject, options.signal);
    }
    let response: { schema?: { fields?: RawField[] }; totalRows?: string | number; rows?: RawRow[] } | undefined;
    try {
      // the first rows come with the schema: their size on the wire sets the rows per page
      [, , response] = (await job.getQueryResults({
        maxResults: PAGE_SAMPLE_ROWS,
        autoPaginate: false,
        skipParsing: true,
      })) as [unknown, unknown, typeof response];
    } catch (err) {
      throw classifyBigQueryError(err, {
        operation: `results of job ${job.id ?? ''}`,
        subject,
        endpoint: 'jobs.getQueryResults',
      });
    }
    const schema = normaliseSchema(response?.schema?.fields);
    const totalRows = Number(response?.totalRows ?? 0);
    const jobId = job.id as string;
    const pageRows = pageRowsFor(sampleBytesPerRow(response?.rows));
    this.logger?.info('BigQuery query job done', { jobId, totalRows, subject, keyOrdered, pageRows });
    // results are read by row index: a finished job's results are a table of known size
    const position: SourcePosition = withPageRows({ ...firstPosition(jobId, job.location), totalRows }, pageRows);
    return { schema, totalRows, position: keyOrdered ? { ...position, keyOrdered } : position };
  }

  /**
   * The model ordered by its key's text, or null when the key's type has no text BigQuery and the worker spell
   * alike (or the model lacks the column: the mapper names it). Without `known` columns, its dry run learns them
   * and enforces maximumBytesBilled.
   */
  private async orderedQuery(
    sql: string,
    subject: string,
    key: string,
    known?: readonly SourceField[],
  ): Promise<string | null> {
    const schema = known ?? (await this.dryRunQuery(sql, subject)).schema;
    const field = schema.find((f) => f.name === key);
    if (field === undefined || field.mode === 'REPEATED' || !DIFF_KEY_TYPES.includes(field.type)) return null;
    return `SELECT * FROM (\n${sql.replace(/[\s;]+$/, '')}\n) ORDER BY CAST(${column(key)} AS STRING)`;
  }

  private async startJob(
    sql: string,
    subject: string,
    jobId: string | undefined,
    parameters: { params: Record<string, unknown>; types: Record<string, string[]> } | undefined = undefined,
  ): Promise<Job> {
    const query = {
      query: sql,
      ...(parameters ?? {}),
      ...this.locationOption(),
      ...(this.maxBytes !== undefined ? { maximumBytesBilled: this.maxBytes.toString() } : {}),
      ...(this.options.jobLabels !== undefined ? { labels: this.options.jobLabels } : {}),
    };
    if (jobId === undefined) {
      try {
        const [job] = await this.client.createQueryJob({ ...query, jobPrefix: JOB_ID_PREFIX });
        return job;
      } catch (err) {
        throw classifyBigQueryError(err, { operation: 'query job', subject, endpoint: 'jobs.insert' });
      }
    }
    // a deterministic id: a retried attempt attaches to the job an earlier one started, unless that job failed
    // for a reason a new job may not meet (a backend error): then the query runs again as `<id>_retry<n>`
    for (let attempt = 1; ; attempt++) {
      const id = attempt === 1 ? jobId : `${jobId}_retry${attempt}`;
      try {
        const [job] = await this.client.createQueryJob({ ...query, jobId: id });
        return job;
      } catch (err) {
        if (!alreadyExists(err)) {
          throw classifyBigQueryError(err, { operation: 'query job', subject, endpoint: 'jobs.insert' });
        }
      }
      const job = this.client.job(id, this.locationOption());
      try {
        await job.getMetadata();
      } catch (inner) {
        throw classifyBigQueryError(inner, { operation: `lookup of job ${id}`, subject, endpoint: 'jobs.get' });
      }
      const failure = retryableFailure(job, subject);
      if (failure === undefined || attempt >= MAX_JOB_RUNS) {
        this.logger?.info('attaching to the query job started by an earlier attempt', { jobId: id });
        return job;
      }
      this.logger?.warn('the query job an earlier attempt started failed; running the query again', {
        jobId: id,
        error: failure.message,
      });
    }
  }

  private async waitForJob(job: Job, subject: string, signal: AbortSignal | undefined): Promise<void> {
    const started = Date.now();
    const timeoutMs = this.options.jobTimeoutMs ?? JOB_TIMEOUT_MS;
    const jobId = job.id ?? '';
    let delay = JOB_POLL_MIN_MS;
    let metadata = job.metadata as JobMetadata | undefined;
    while (metadata?.status?.state !== 'DONE') {
      const elapsedMs = Date.now() - started;
      if (elapsedMs > timeoutMs) {
        throw new SourceUnavailableError(
          `BigQuery query job ${jobId} for ${subject} did not finish within ${Math.round(timeoutMs / 1000)} s`,
          'timeout',
        );
      }
      this.options.onJobWait?.({ jobId, elapsedMs });
      await sleep(delay, signal);
      delay = Math.min(delay * 2, JOB_POLL_MAX_MS);
      try {
        [metadata] = (await job.getMetadata()) as [typeof metadata, ...unknown[]];
      } catch (err) {
        throw classifyBigQueryError(err, { operation: `status of job ${jobId}`, subject, endpoint: 'jobs.get' });
      }
    }
    const failure = jobFailure(metadata, jobId, subject);
    if (failure !== undefined) throw failure;
  }

  /**
   * The `pageSize` rows from the position's row index (fewer at the end of the results): BigQuery may answer a
   * request with fewer rows than asked (a response holds at most 10 MB), so the rest are asked for until the page
   * is whole, and where the next page starts never depends on a response's size.
   */
  private async queryResultsRange(position: SourcePosition, totalRows: number, pageSize: number): Promise<FetchedPage> {
    const wanted = Math.min(pageSize, totalRows - position.rowsRead);
    let rows: RawRow[] = [];
    let fetched: FetchedPage | undefined;
    // the token after the rows taken, for a worker of an earlier version that resumes this position by token
    let pageToken: string | null = null;
    while (rows.length < wanted) {
      const startIndex = position.rowsRead + rows.length;
      fetched = await this.queryResultsPage(position, wanted - rows.length, startIndex);
      if (fetched.rows.length === 0) {
        throw new SourceUnavailableError(
          `BigQuery job ${position.jobId} returned no rows from row ${startIndex} of its ${totalRows}; ` +
            `page ${position.page + 1} is read again`,
          'backendError',
        );
      }
      // a server that ignores maxResults (an emulator) may answer with rows past the page's end
      const whole = fetched.rows.length <= wanted - rows.length;
      const take = whole ? fetched.rows : fetched.rows.slice(0, wanted - rows.length);
      pageToken = whole ? fetched.pageToken : null;
      rows = rows.length === 0 ? take : rows.concat(take);
    }
    const end = position.rowsRead + rows.length >= totalRows;
    return { schema: fetched?.schema ?? [], rows, pageToken: end ? null : pageToken };
  }

  private async queryResultsPage(
    position: SourcePosition,
    pageSize: number,
    startIndex?: number,
  ): Promise<FetchedPage> {
    const job = this.client.job(position.jobId, position.location !== undefined ? { location: position.location } : {});
    const context = {
      operation: `page ${position.page + 1} of job ${position.jobId}`,
      subject: `results of job ${position.jobId}`,
      endpoint: 'jobs.getQueryResults',
    };
    let response:
      | { schema?: { fields?: RawField[] }; rows?: RawRow[]; pageToken?: string | null; jobComplete?: boolean }
      | undefined;
    try {
      [, , response] = (await job.getQueryResults({
        autoPaginate: false,
        maxResults: pageSize,
        skipParsing: true,
        ...(startIndex !== undefined
          ? { startIndex: String(startIndex) }
          : position.pageToken !== null
            ? { pageToken: position.pageToken }
            : {}),
      })) as [unknown, unknown, typeof response];
    } catch (err) {
      const classified = classifyBigQueryError(err, context);
      if (classified instanceof SourceConfigError && classified.reason === 'notFound') {
        throw new SourceResultsExpiredError(
          `the results of BigQuery job ${position.jobId} are gone (BigQuery keeps query results about 24 h); ` +
            `page ${position.page + 1} cannot be read: open the model again`,
          { cause: classified },
        );
      }
      throw classified;
    }
    if (response?.jobComplete === false) {
      throw new SourceUnavailableError(
        `BigQuery job ${position.jobId} has not finished; its page ${position.page + 1} is not ready`,
        'timeout',
      );
    }
    return {
      schema: normaliseSchema(response?.schema?.fields),
      rows: response?.rows ?? [],
      pageToken: response?.pageToken ?? null,
    };
  }

  private async listTablePage(ref: TableRef, position: SourcePosition, pageSize: number): Promise<FetchedPage> {
    const id = tablePositionId(ref);
    const subject = `table "${ref.project}.${ref.dataset}.${ref.table}"`;
    const cached = this.tables.get(id) ?? (await this.tableMetadata(ref, subject, 'schema lookup'));
    let rows: RawRow[];
    let response: { pageToken?: string | null } | undefined;
    try {
      [rows, , response] = (await cached.table.getRows({
        autoPaginate: false,
        maxResults: pageSize,
        skipParsing: true,
        ...(position.pageToken !== null ? { pageToken: position.pageToken } : {}),
      })) as [RawRow[], unknown, typeof response];
    } catch (err) {
      throw classifyBigQueryError(err, { operation: `page ${position.page + 1}`, subject, endpoint: 'tabledata.list' });
    }
    if (rows.length > pageSize) {
      this.logger?.warn(
        'the server ignored maxResults on tabledata.list (an emulator?): the whole table came as one page',
        {
          table: id,
          rows: rows.length,
          pageSize,
        },
      );
    }
    return { schema: cached.schema, rows, pageToken: response?.pageToken ?? null };
  }

  private locationOption(): { location?: string } {
    return this.source.location !== undefined ? { location: this.source.location } : {};
  }
}

interface DryRunStatistics {
  totalBytesProcessed?: string;
  query?: { totalBytesProcessed?: string; statementType?: string; schema?: { fields?: RawField[] | null } | null };
}

interface FetchedPage {
  schema: SourceField[];
  rows: RawRow[];
  pageToken: string | null;
}

/** A table reference as quoted in SQL. */
function selectFrom(ref: TableRef): string {
  return `\`${ref.project}.${ref.dataset}.${ref.table}\``;
}

function selectAll(ref: TableRef): string {
  return `SELECT * FROM ${selectFrom(ref)}`;
}

/** A query of `columns` alone out of `sql` (BigQuery prunes the rest from the model's scans), or `sql` as it is. */
function project(sql: string, columns: readonly string[] | undefined): string {
  const body = sql.replace(/[\s;]+$/, '');
  if (columns === undefined || columns.length === 0) return body;
  return `SELECT ${[...new Set(columns)].map(column).join(', ')} FROM (\n${body}\n)`;
}

/** Runs of one query under one deterministic job id and its `_retry<n>` successors. */
const MAX_JOB_RUNS = 5;

interface JobMetadata {
  status?: { state?: string; errorResult?: unknown; errors?: unknown[] };
}

/** The error a job ended with, classified (undefined while it runs or once it succeeded). */
function jobFailure(metadata: JobMetadata | undefined, jobId: string, subject: string): SourceError | undefined {
  const status = metadata?.status;
  if (!status?.errorResult) return undefined;
  const first = status.errorResult as { message?: string };
  return classifyBigQueryError(
    { errors: [status.errorResult, ...(status.errors ?? [])], message: first.message ?? 'the job failed' },
    { operation: `query job ${jobId}`, subject },
  );
}

/** The error a finished job ended with, when it is one a new run of the query may not meet (backend, rate). */
function retryableFailure(job: Job, subject: string): SourceUnavailableError | undefined {
  const metadata = job.metadata as JobMetadata | undefined;
  if (metadata?.status?.state !== 'DONE') return undefined;
  const failure = jobFailure(metadata, job.id ?? '', subject);
  return failure instanceof SourceUnavailableError ? failure : undefined;
}

/** A job id (or dataset) already taken: 409 from BigQuery, a 400 "already created" from the goccy emulator. */
function alreadyExists(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (e?.code === 409) return true;
  return typeof e?.message === 'string' && /already (created|exists)/i.test(e.message);
}

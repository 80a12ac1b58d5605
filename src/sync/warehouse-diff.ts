/**
 * The warehouse-side diff, the default (but for a read-only sync, `stateDataset: false`, or a source that cannot):
 * each run copies its model into a run table of the state dataset with every row's fingerprint, and only rows
 * whose key is new to the snapshot, whose fingerprint differs from it, whose key is NULL or duplicated leave the
 * warehouse. The state store diffs those as usual. When a run succeeds, its run table (less the keys it did not
 * deliver) becomes the sync's snapshot; the store records which table that is and with which mapping, so a store
 * that forgot its keys (reset, a new database) or a changed mapping never trusts an old snapshot. The snapshot can
 * lag what was delivered (a rejected row, a run that failed, a promotion that failed): the rows it lags by are
 * extracted again and the store finds them unchanged.
 *
 * This file holds what the activities need to drive it; the BigQuery SQL is in src/sources/bigquery/source.ts.
 */
import { createHash } from 'node:crypto';
import type { RunCounts, SourceField } from './types';

/** The state dataset of a source that names none (created on its first run). */
export const DEFAULT_STATE_DATASET = 'ampsync_state';

/** Whether a URL points at this machine (a local emulator). */
export function isLoopbackUrl(url: string | undefined): boolean {
  if (url === undefined) return false;
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    return host === 'localhost' || host === '::1' || host.startsWith('127.');
  } catch {
    return false;
  }
}

/**
 * The dataset a source diffs in, or undefined for a sync diffed in the worker (read-only mode): the one it names,
 * none for `stateDataset: false`, else DEFAULT_STATE_DATASET, except against a local emulator (a loopback
 * `apiEndpoint`), whose memory grows by gigabytes with each warehouse diff (temporal-dev.md): it diffs in the
 * worker unless it names a dataset.
 */
export function stateDatasetOf(source: {
  stateDataset?: string | false | undefined;
  apiEndpoint?: string | undefined;
}): string | undefined {
  if (source.stateDataset === false) return undefined;
  if (source.stateDataset !== undefined) return source.stateDataset;
  return isLoopbackUrl(source.apiEndpoint) ? undefined : DEFAULT_STATE_DATASET;
}

/** Key column types whose text the warehouse and the worker spell alike (CAST(key AS STRING) = String(value)). */
export const DIFF_KEY_TYPES: readonly string[] = ['STRING', 'INT64'];

/**
 * Keys a run may leave out of its snapshot (its rejected and undelivered rows, passed as a query parameter);
 * a run with more keeps the previous snapshot, and the next run diffs more rows in the worker.
 */
export const MAX_EXCLUDED_KEYS = 10_000;

/** The warehouse diff cannot work for this sync: a non-retryable configuration failure. */
export class WarehouseDiffConfigError extends Error {
  override readonly name = 'WarehouseDiffConfigError';
  readonly retryable = false;
}

/** Throws unless the model's key column can be compared by text in the warehouse; `subject` names the sync or model. */
export function checkDiffKey(subject: string, key: string, schema: readonly SourceField[]): void {
  const field = schema.find((f) => f.name === key);
  if (field === undefined) return; // the mapper names a missing key column
  if (!DIFF_KEY_TYPES.includes(field.type) || field.mode === 'REPEATED') {
    const type = field.mode === 'REPEATED' ? `ARRAY<${field.type}>` : field.type;
    throw new WarehouseDiffConfigError(
      `${subject}: ampsync diffs in BigQuery (source.stateDataset), which needs a STRING or INT64 key column; ` +
        `key column "${key}" is ${type} (cast it in the model, or set source.stateDataset: false to diff in the ` +
        'worker)',
    );
  }
}

/** A table-name-safe tag of an id: its characters (letters, digits, `_`) and a hash, so distinct ids never meet. */
function tag(id: string): string {
  const readable = id.replace(/[^A-Za-z0-9]/g, '_').slice(0, 60);
  return `${readable}_${createHash('sha256').update(id).digest('hex').slice(0, 10)}`;
}

export interface WarehouseTables {
  /** The run's copy of its model, with fingerprints. */
  runTable: string;
  /** The snapshot this run promotes when it succeeds. */
  snapshot: string;
  /** Prefixes of the sync's own snapshot and run tables (those a promotion replaces). */
  prefixes: string[];
}

/** Table names of a run of a sync inside its state dataset. */
export function warehouseTables(syncId: string, runId: string): WarehouseTables {
  const sync = tag(syncId);
  const run = tag(runId);
  return {
    runTable: `ampsync_run_${sync}_${run}`,
    snapshot: `ampsync_snapshot_${sync}_${run}`,
    prefixes: [`ampsync_run_${sync}_`, `ampsync_snapshot_${sync}_`],
  };
}

/**
 * A run's extract counts once the rows the warehouse left out are added: they were extracted and unchanged,
 * and they are not gone (the store counts gone keys as the synced keys it did not see).
 */
export function withUnchangedElsewhere<C extends Pick<RunCounts, 'extracted' | 'unchanged' | 'gone'>>(
  counts: C,
  unchangedElsewhere: number,
): C {
  if (unchangedElsewhere <= 0) return counts;
  return {
    ...counts,
    extracted: counts.extracted + unchangedElsewhere,
    unchanged: counts.unchanged + unchangedElsewhere,
    gone: Math.max(0, counts.gone - unchangedElsewhere),
  };
}

/** Rows a run diffed in the worker reads before `warehouseDiffHint` suggests diffing in the warehouse... */
export const WAREHOUSE_DIFF_HINT_ROWS = 100_000;
/** ...when at most this share of them changed. */
const WAREHOUSE_DIFF_HINT_SHARE = 0.05;

/**
 * Advice for a sync diffed in the worker (read-only) whose run read a large model out of BigQuery to find few
 * changed rows: diffed in the warehouse, the unchanged rows would stay in BigQuery. Undefined for a sync diffed in
 * the warehouse, a small model, or a run that changed much of it.
 */
export function warehouseDiffHint(
  sync: { source: Parameters<typeof stateDatasetOf>[0] },
  counts: Pick<RunCounts, 'extracted' | 'new' | 'changed'>,
): string | undefined {
  if (stateDatasetOf(sync.source) !== undefined || counts.extracted < WAREHOUSE_DIFF_HINT_ROWS) return undefined;
  const changed = counts.new + counts.changed;
  if (changed > counts.extracted * WAREHOUSE_DIFF_HINT_SHARE) return undefined;
  const n = (x: number): string => x.toLocaleString('en-US');
  return (
    `this run read ${n(counts.extracted)} rows out of BigQuery to find ${n(changed)} new or changed; ` +
    'diffed in BigQuery (a source.stateDataset, README: "Diffing in BigQuery") only those rows would leave it'
  );
}

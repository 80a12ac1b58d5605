/**
 * The diff of one extracted page, shared by every StateStore: the page's distinct keys, then — once the store
 * has told which of them differ from the delivered state — which rows to stage, numbered in model order.
 * Pure: the stores do the lookups and the writes.
 */
import type { DiffMode, MappedRow, RowRejection } from '../sync/types';
import type { StagePageResult } from './types';

/** One distinct key of a page. */
export interface PageEntry {
  key: string;
  /** Rows of the page with this key, mapped or rejected (more than one across the run: a duplicate key). */
  seen: number;
  /** Of `seen`, rows that mapped (rejected rows count as seen so the key is neither new nor gone). */
  valid: number;
  /** The key's first mapped row, or null when every row with the key was rejected. */
  row: MappedRow | null;
}

/**
 * What the store found for a page's keys: the keys NOT delivered with the same hash, each with whether it was
 * delivered at all. A key absent from the map was delivered with exactly this hash (unchanged).
 */
export type DifferingKeys = ReadonlyMap<string, boolean>;

/** What a page adds to the run's seen keys, one entry per distinct key. */
export interface PlannedKey {
  key: string;
  seen: number;
  valid: number;
  /** Whether the key had a delivered hash before this run. */
  wasSynced: boolean;
  /** Staging sequence number, or null when the key is not staged (unchanged, rejected, or duplicated here). */
  pos: number | null;
  hash: string | null;
  payload: string | null;
}

export interface PagePlan {
  keys: PlannedKey[];
  result: StagePageResult;
  /** The next staging sequence number after this page. */
  nextPos: number;
}

/** The page's distinct keys (mapped rows first, in model order, then keys only rejected rows carry). */
export function summarizePage(rows: readonly MappedRow[], rejected: readonly RowRejection[]): PageEntry[] {
  const byKey = new Map<string, PageEntry>();
  for (const row of rows) {
    const entry = byKey.get(row.key);
    if (entry === undefined) byKey.set(row.key, { key: row.key, seen: 1, valid: 1, row });
    else {
      entry.seen += 1;
      entry.valid += 1;
    }
  }
  for (const r of rejected) {
    if (r.key === null) continue;
    const entry = byKey.get(r.key);
    if (entry === undefined) byKey.set(r.key, { key: r.key, seen: 1, valid: 0, row: null });
    else entry.seen += 1;
  }
  return [...byKey.values()];
}

/**
 * Plans a page: upsert stages keys never delivered or delivered with another hash; send-once stages keys never
 * delivered. A key twice on the page is left unstaged: finishExtract rejects it as a duplicate.
 */
export function planPage(
  entries: readonly PageEntry[],
  differing: DifferingKeys,
  mode: DiffMode,
  firstPos: number,
): PagePlan {
  const result: StagePageResult = { staged: 0, unchanged: 0, new: 0 };
  let nextPos = firstPos;
  const keys: PlannedKey[] = [];
  for (const { key, seen, valid, row } of entries) {
    const delivered = differing.get(key);
    const wasSynced = delivered ?? true;
    const planned: PlannedKey = { key, seen, valid, wasSynced, pos: null, hash: null, payload: null };
    keys.push(planned);
    if (row === null || seen > 1) continue;
    const stage = mode === 'upsert' ? delivered !== undefined : !wasSynced;
    if (!stage) {
      result.unchanged += 1;
      continue;
    }
    planned.pos = nextPos++;
    planned.hash = row.hash;
    planned.payload = row.payload;
    result.staged += 1;
    if (!wasSynced) result.new += 1;
  }
  return { keys, result, nextPos };
}

/**
 * The diff of one extracted page, shared by every StateStore. The stores compare the page's keys with the
 * delivered state in SQL (one set-based statement per page); this module prepares the keys and numbers the rows
 * the store decided to stage, in model order.
 *
 * What a store stages (the rule both stores' SQL implements): a key seen once on the page, with a mapped row,
 * that was never delivered — or, in upsert mode, was delivered with another hash. A key twice on the page is
 * left unstaged: finishExtract rejects it as a duplicate.
 */
import type { MappedRow, RowRejection } from '../sync/types';
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

/** Keys the store staged from a page, each with whether it had been delivered before (changed) or not (new). */
export type StagedKeys = ReadonlyMap<string, boolean>;

/** A staged row with its staging sequence number. */
export interface PositionedRow extends MappedRow {
  pos: number;
}

export interface PagePositions {
  rows: PositionedRow[];
  /** Keys of stageable entries the store did not stage: delivered with the same hash (send-once: delivered). */
  unchanged: string[];
  result: StagePageResult;
  /** The next staging sequence number after this page. */
  nextPos: number;
}

/** The page's distinct keys: mapped rows first, in model order, then keys only rejected rows carry. */
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

/** Whether an entry may be staged at all: one mapped row, and no rejected row, with that key on the page. */
export function isStageable(entry: PageEntry): entry is PageEntry & { row: MappedRow } {
  return entry.seen === 1 && entry.valid === 1 && entry.row !== null;
}

/** Numbers the staged rows in model order from `firstPos`, and counts the page. */
export function positionPage(entries: readonly PageEntry[], staged: StagedKeys, firstPos: number): PagePositions {
  const result: StagePageResult = { staged: 0, unchanged: 0, new: 0 };
  const rows: PositionedRow[] = [];
  const unchanged: string[] = [];
  let nextPos = firstPos;
  for (const entry of entries) {
    if (!isStageable(entry)) continue;
    const delivered = staged.get(entry.key);
    if (delivered === undefined) {
      unchanged.push(entry.key);
      continue;
    }
    rows.push({ key: entry.key, hash: entry.row.hash, payload: entry.row.payload, pos: nextPos++ });
    result.staged += 1;
    if (!delivered) result.new += 1;
  }
  result.unchanged = unchanged.length;
  return { rows, unchanged, result, nextPos };
}

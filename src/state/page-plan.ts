/**
 * The diff of one extracted page, shared by every StateStore. The stores compare the page's keys with the
 * delivered state in SQL (one set-based statement per page); this module prepares the keys and numbers the rows
 * the store decided to stage, in model order.
 *
 * What a store stages (the rule both stores' SQL implements): a key seen once on the page, with a mapped row,
 * that was never delivered — or, in upsert mode, was delivered with another hash. A key twice on the page is
 * left unstaged: finishExtract rejects it as a duplicate. A staged row without a payload is built then (only
 * changed rows are mapped); one its build rejects is recorded as rejected instead of staged.
 */
import type { BuiltPayload, DiffRow, MappedRow, RowRejection } from '../sync/types';
import type { StagePageResult } from './types';

/** One distinct key of a page. */
export interface PageEntry {
  key: string;
  /** Rows of the page with this key, mapped or rejected (more than one across the run: a duplicate key). */
  seen: number;
  /** Of `seen`, rows that mapped (rejected rows count as seen so the key is neither new nor gone). */
  valid: number;
  /** The key's first mapped row, or null when every row with the key was rejected. */
  row: DiffRow | null;
  /** Index of `row` in the page's rows (what `build` is called with). */
  index: number;
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
  /** Staged keys whose payload could not be built: rejected, not staged (their entries are marked invalid). */
  rejected: RowRejection[];
}

/** A page row without a payload, and nothing to build it with: a caller's mistake, never retried. */
export class MissingPayloadError extends Error {
  override readonly name = 'MissingPayloadError';
  constructor(readonly key: string) {
    super(`the staged row with key "${key}" has no payload and the page no build function`);
  }
}

/** The page's distinct keys: mapped rows first, in model order, then keys only rejected rows carry. */
export function summarizePage(rows: readonly DiffRow[], rejected: readonly RowRejection[]): PageEntry[] {
  if (rejected.length === 0 && strictlyAscending(rows)) {
    // the usual page of a model read in key order: every key once, no map needed to find repeats
    return rows.map((row, index) => ({ key: row.key, seen: 1, valid: 1, row, index }));
  }
  const byKey = new Map<string, PageEntry>();
  for (let index = 0; index < rows.length; index++) {
    const row = rows[index] as DiffRow;
    const entry = byKey.get(row.key);
    if (entry === undefined) byKey.set(row.key, { key: row.key, seen: 1, valid: 1, row, index });
    else {
      entry.seen += 1;
      entry.valid += 1;
    }
  }
  for (const r of rejected) {
    if (r.key === null) continue;
    const entry = byKey.get(r.key);
    if (entry === undefined) byKey.set(r.key, { key: r.key, seen: 1, valid: 0, row: null, index: -1 });
    else entry.seen += 1;
  }
  return [...byKey.values()];
}

/** Whether each row's key comes after the one before it (in JS order: then no key repeats). */
function strictlyAscending(rows: readonly DiffRow[]): boolean {
  for (let i = 1; i < rows.length; i++) if ((rows[i - 1] as DiffRow).key >= (rows[i] as DiffRow).key) return false;
  return true;
}

/** UTF-16 surrogates: a key with one is left out of key-order checks (JS and the databases order it differently). */
const SURROGATE = /[\ud800-\udfff]/;

/**
 * The first and last key of a page in the databases' key order (byte order of the UTF-8 text, which for text
 * without surrogates is JS's string order), or undefined for a page without keys or with a key that has a
 * surrogate (an astral character, or a lone surrogate the databases store as U+FFFD): such a page is never
 * taken as in order.
 */
export function keyRange(entries: readonly PageEntry[]): { first: string; last: string } | undefined {
  const head = entries[0];
  if (head === undefined) return undefined;
  let first = head.key;
  let last = head.key;
  for (const { key } of entries) {
    if (SURROGATE.test(key)) return undefined;
    if (key < first) first = key;
    else if (key > last) last = key;
  }
  return { first, last };
}

/**
 * Where a page stands in its run's key order, given the greatest key staged before it (`lastKey`, in the same
 * order) and whether the run was in order so far. With the source's promise of key order (`promised`), a page
 * whose keys all come after `lastKey` is in order, and its key range is returned; the run stays in order while
 * every page with keys is. A page without keys changes nothing.
 */
export function pageOrder(
  entries: readonly PageEntry[],
  run: { ordered: boolean; lastKey: string | null },
  promised: boolean,
): { ordered: boolean; lastKey: string | null; range?: { first: string; last: string } } {
  if (entries.length === 0) return { ordered: run.ordered, lastKey: run.lastKey };
  const range = promised ? keyRange(entries) : undefined;
  if (range === undefined) return { ordered: false, lastKey: run.lastKey };
  if (run.lastKey === null || range.first > run.lastKey) return { ordered: run.ordered, lastKey: range.last, range };
  return { ordered: false, lastKey: range.last > run.lastKey ? range.last : run.lastKey };
}

/** Whether an entry may be staged at all: one mapped row, and no rejected row, with that key on the page. */
export function isStageable(entry: PageEntry): entry is PageEntry & { row: DiffRow } {
  return entry.seen === 1 && entry.valid === 1 && entry.row !== null;
}

/**
 * Numbers the staged rows in model order from `firstPos`, building the payloads they lack, and counts the page.
 * An entry whose build is rejected is marked invalid (`valid` 0, no row): the store records it as rejected.
 */
export function positionPage(
  entries: readonly PageEntry[],
  staged: StagedKeys,
  firstPos: number,
  build?: (index: number) => BuiltPayload,
): PagePositions {
  const result: StagePageResult = { staged: 0, unchanged: 0, new: 0 };
  const rows: PositionedRow[] = [];
  const unchanged: string[] = [];
  const rejected: RowRejection[] = [];
  let nextPos = firstPos;
  for (const entry of entries) {
    if (!isStageable(entry)) continue;
    const row = entry.row;
    const delivered = staged.get(entry.key);
    if (delivered === undefined) {
      unchanged.push(entry.key);
      continue;
    }
    let payload = row.payload;
    let hash = row.hash;
    if (payload === undefined) {
      if (build === undefined) throw new MissingPayloadError(entry.key);
      const built = build(entry.index);
      if (!built.ok) {
        rejected.push({ key: entry.key, reason: built.reason, stage: built.stage });
        markInvalid(entry);
        continue;
      }
      payload = built.payload;
      // a row identified by its key alone (send-once) gets its fingerprint when it is built
      if (built.hash !== undefined) hash = built.hash;
    }
    rows.push({ key: entry.key, hash, payload, pos: nextPos++ });
    result.staged += 1;
    if (!delivered) result.new += 1;
  }
  result.unchanged = unchanged.length;
  return { rows, unchanged, result, nextPos, rejected };
}

/** A stageable entry whose payload could not be built: from now on it counts as a rejected row. */
function markInvalid(entry: PageEntry): void {
  entry.valid = 0;
  entry.row = null;
}

/** What a page adds to the run's counts, once its deferred payloads are built. */
export function pageTally(
  input: { rows: readonly DiffRow[]; rejected: readonly RowRejection[] },
  plan: PagePositions,
): { rows: number; rejected: number } & StagePageResult {
  return {
    rows: input.rows.length - plan.rejected.length,
    rejected: input.rejected.length + plan.rejected.length,
    ...plan.result,
  };
}

/**
 * Reads a model's pages in order while the pages after them are already on their way. A page of BigQuery results
 * is a network round trip (hundreds of milliseconds for 10,000 rows); read one at a time, the worker waits on
 * each. Results read by row index (a query's, see SourcePosition.totalRows) can be read several pages ahead:
 * the reader starts with one read ahead of the page being processed, as before, and widens the window by one page
 * (up to `maxAhead`) each time the caller has to wait for a page, so a worker that is slower than its source
 * holds no more pages than it did, and one waiting on the network reads several at once. Results chained by page
 * token are read one page ahead (the next page's token comes with the page before it).
 *
 *   const reader = new PageReader(source, position, { pageSize: 10_000 });
 *   try {
 *     for (let page = await reader.next(); page !== undefined; page = await reader.next()) stage(page);
 *   } finally {
 *     await reader.close();
 *   }
 */
import {
  isExhausted,
  pageRowsAt,
  positionAhead,
  type Source,
  type SourcePage,
  type SourcePosition,
} from '../sync/types';

/** Pages read at once, at most, while the caller processes one (a source sizes wide rows' pages: see pageRows). */
export const DEFAULT_MAX_READ_AHEAD = 4;

/** readAhead is not a whole number of pages, at least 1. */
export class ReadAheadConfigError extends Error {
  override readonly name = 'ReadAheadConfigError';
}

/** Checks a readAhead option: a whole number of pages, at least 1 (a worker option, checked when it starts). */
export function checkReadAhead(value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ReadAheadConfigError(`readAhead is ${String(value)}: give the pages to read at once, 1 or more`);
  }
  return value;
}

export interface PageReaderOptions {
  /** Rows per page (fewer where the start position's `pageRows` says so). */
  pageSize: number;
  /** Reads in flight at most (default DEFAULT_MAX_READ_AHEAD); 1 reads only the next page ahead. */
  maxAhead?: number;
}

interface Read {
  position: SourcePosition;
  page: Promise<SourcePage>;
  settled: boolean;
}

export class PageReader {
  private readonly pageSize: number;
  private readonly maxAhead: number;
  /** Reads started and not yet handed out, in page order. */
  private readonly reads: Read[] = [];
  /** Where the next read to start begins, or undefined while only the page before it can tell (a token). */
  private following: SourcePosition | undefined;
  private ahead = 1;
  private handedOut = 0;
  /** The widest the window got: pages read ahead of the caller at once (in flight, or read and not handed out). */
  private widest = 0;

  constructor(
    private readonly source: Source,
    start: SourcePosition,
    options: PageReaderOptions,
  ) {
    // a source's smaller page for wide rows (set when the model was opened) holds from the start position on
    this.pageSize = pageRowsAt(start, options.pageSize);
    this.maxAhead = checkReadAhead(options.maxAhead ?? DEFAULT_MAX_READ_AHEAD);
    this.following = isExhausted(start) ? undefined : start;
    this.fill();
  }

  /** The next page in order, or undefined once every page was handed out. A failed read throws here. */
  async next(): Promise<SourcePage | undefined> {
    const read = this.reads.shift();
    if (read === undefined) return undefined;
    // the caller waits on a read that had a page's processing to finish in: read further ahead from now on
    if (!read.settled && this.handedOut > 0 && this.ahead < this.maxAhead) this.ahead += 1;
    this.handedOut += 1;
    const page = await read.page;
    const expected = this.reads[0]?.position ?? this.following;
    if (read.position.totalRows === undefined || !samePlace(expected, page.next)) {
      // chained by token, or a page that ended elsewhere than its successor was read from: go on from where it
      // ended (reads already started for other places are dropped; they settle on their own)
      this.drop();
      this.following = isExhausted(page.next) ? undefined : page.next;
    }
    this.fill();
    return page;
  }

  /** Pages read ahead of the caller at once, at the widest so far (for logs and tests). */
  get maxAheadReached(): number {
    return this.widest;
  }

  /** Waits for the reads still in flight (after a failure, so none outlives its activity), ignoring their outcome. */
  async close(): Promise<void> {
    const pending = this.drop();
    this.following = undefined;
    await Promise.allSettled(pending.map((r) => r.page));
  }

  private fill(): void {
    while (this.reads.length < this.ahead && this.following !== undefined) {
      const position = this.following;
      const page = this.source.readPage(position, { pageSize: this.pageSize });
      const read: Read = { position, page, settled: false };
      // a failure surfaces where the page is awaited, never as an unhandled rejection
      page.then(
        () => (read.settled = true),
        () => (read.settled = true),
      );
      this.reads.push(read);
      this.widest = Math.max(this.widest, this.reads.length);
      // the page after it starts where index arithmetic says, or (by token) once this page is read
      const after = positionAhead(position, 1, this.pageSize);
      this.following = after === undefined || isExhausted(after) ? undefined : after;
    }
  }

  private drop(): Read[] {
    return this.reads.splice(0, this.reads.length);
  }
}

/** Both undefined (no page after), or positions at the same row of the same results. */
function samePlace(a: SourcePosition | undefined, b: SourcePosition): boolean {
  if (a === undefined) return isExhausted(b);
  return a.jobId === b.jobId && a.page === b.page && a.rowsRead === b.rowsRead;
}

/** PageReader: pages in order, read ahead only while the caller waits on the source, failures where they belong. */
import { setImmediate } from 'node:timers/promises';
import { PageReader, ReadAheadConfigError } from '../../src/sources/read-ahead';
import {
  isExhausted,
  type DryRunResult,
  type OpenedModel,
  type Source,
  type SourcePage,
  type SourcePosition,
} from '../../src/sync/types';

interface PendingRead {
  position: SourcePosition;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * A source of `rows` numbered rows whose reads finish only when the test says (`finishAll`, or `autoFinish`).
 * `byToken` chains pages by token instead of addressing them by index; `shortPage` makes that page one row short.
 */
class ScriptedSource implements Source {
  readonly pending: PendingRead[] = [];
  readonly started: number[] = [];
  inFlight = 0;
  maxInFlight = 0;
  autoFinish = false;

  constructor(
    readonly rows: number,
    readonly options: { byToken?: boolean; failPage?: number; shortPage?: number } = {},
  ) {}

  get start(): SourcePosition {
    return {
      jobId: 'job',
      pageToken: null,
      page: 0,
      rowsRead: 0,
      ...(this.options.byToken === true ? {} : { totalRows: this.rows }),
    };
  }

  dryRun(): Promise<DryRunResult> {
    throw new Error('not used');
  }

  open(): Promise<OpenedModel> {
    throw new Error('not used');
  }

  readPage(position: SourcePosition, { pageSize }: { pageSize: number }): Promise<SourcePage> {
    this.started.push(position.page);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const from = position.rowsRead;
    const size = position.page === this.options.shortPage ? pageSize - 1 : pageSize;
    const to = Math.min(this.rows, from + size);
    const page: SourcePage = {
      rows: Array.from({ length: to - from }, (_, i) => ({ n: from + i })),
      next: { ...position, page: position.page + 1, rowsRead: to, pageToken: to < this.rows ? String(to) : null },
    };
    return new Promise<SourcePage>((resolve, reject) => {
      const read: PendingRead = {
        position,
        resolve: () => {
          this.inFlight -= 1;
          resolve(page);
        },
        reject: (err) => {
          this.inFlight -= 1;
          reject(err);
        },
      };
      if (position.page === this.options.failPage) {
        read.reject(new Error(`page ${position.page} failed`));
        return;
      }
      if (this.autoFinish) read.resolve();
      else this.pending.push(read);
    });
  }

  /** Finishes every read started so far, and lets their callbacks run. */
  async finishAll(): Promise<void> {
    for (const read of this.pending.splice(0)) read.resolve();
    await setImmediate();
  }

  /** Finishes the oldest read in flight (a source that answers one read at a time). */
  async finishOldest(): Promise<void> {
    this.pending.shift()?.resolve();
    await setImmediate();
  }
}

/**
 * Reads every page, the source answering one read (or every read started) each time the caller asks: a source
 * slower than its reader.
 */
async function readSlowSource(source: ScriptedSource, reader: PageReader, answer: 'oldest' | 'all' = 'oldest') {
  const seen: number[] = [];
  for (;;) {
    const next = reader.next();
    await (answer === 'oldest' ? source.finishOldest() : source.finishAll());
    const page = await next;
    if (page === undefined) return seen;
    seen.push(...page.rows.map((r) => r.n as number));
  }
}

describe('PageReader', () => {
  test('a source slower than its reader: the window widens by a page each wait, up to maxAhead, pages in order', async () => {
    const source = new ScriptedSource(10 * 100);
    const reader = new PageReader(source, source.start, { pageSize: 100, maxAhead: 3 });
    const seen = await readSlowSource(source, reader);
    expect(seen).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    // pages 0..9 each started once, in order; at most 3 reads at once
    expect(source.started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(source.maxInFlight).toBe(3);
    expect(reader.maxAheadReached).toBe(3);
  });

  test("a start position with the source's pageRows (wide rows) is read in pages of that many rows, ahead too", async () => {
    const source = new ScriptedSource(3000);
    const reads: [number, number][] = [];
    const sized: Source = {
      dryRun: () => source.dryRun(),
      open: () => source.open(),
      readPage: (position, options) => {
        reads.push([position.rowsRead, options.pageSize]);
        return source.readPage(position, options);
      },
    };
    const reader = new PageReader(sized, { ...source.start, pageRows: 300 }, { pageSize: 500, maxAhead: 3 });
    const seen = await readSlowSource(source, reader);
    expect(seen).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    // ten pages of 300 rows, each read once, those ahead starting where 300-row pages end
    expect(reads).toEqual(Array.from({ length: 10 }, (_, i) => [i * 300, 300]));
    expect(source.maxInFlight).toBe(3);
  });

  test('pageRows above the reader page size changes nothing: pages of the reader size', async () => {
    const source = new ScriptedSource(1000);
    source.autoFinish = true;
    const reader = new PageReader(source, { ...source.start, pageRows: 5000 }, { pageSize: 250 });
    const sizes: number[] = [];
    for (let page = await reader.next(); page !== undefined; page = await reader.next()) sizes.push(page.rows.length);
    expect(sizes).toEqual([250, 250, 250, 250]);
  });

  test('a source that keeps up (pages ready when asked for) is read one page ahead, as before', async () => {
    const source = new ScriptedSource(10 * 100);
    source.autoFinish = true;
    const reader = new PageReader(source, source.start, { pageSize: 100, maxAhead: 4 });
    const seen: number[] = [];
    for (let page = await reader.next(); page !== undefined; page = await reader.next()) {
      seen.push(...page.rows.map((r) => r.n as number));
      // the caller's work on the page, during which the read ahead finishes
      await setImmediate();
    }
    expect(seen).toHaveLength(1000);
    expect(source.maxInFlight).toBe(1);
    expect(reader.maxAheadReached).toBe(1);
  });

  test('pages chained by token are read one ahead however long the caller waits', async () => {
    const source = new ScriptedSource(10 * 100, { byToken: true });
    const reader = new PageReader(source, source.start, { pageSize: 100, maxAhead: 4 });
    const seen = await readSlowSource(source, reader);
    expect(seen).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(source.started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(source.maxInFlight).toBe(1);
  });

  test('a page that ends short of where the next read began: reading goes on from its end, no row lost or twice', async () => {
    const source = new ScriptedSource(1000, { shortPage: 2 });
    const reader = new PageReader(source, source.start, { pageSize: 100, maxAhead: 4 });
    // (reads dropped after the short page are answered too, so none is left waiting)
    const seen = await readSlowSource(source, reader, 'all');
    expect(seen).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    // page 3 was read from where page 2 ended, again
    expect(reader.maxAheadReached).toBeGreaterThan(1);
    expect(source.started.filter((p) => p === 3)).toHaveLength(2);
  });

  test('a failed read throws at its page, after the pages before it; close waits for the reads in flight', async () => {
    const source = new ScriptedSource(1000, { failPage: 3 });
    const reader = new PageReader(source, source.start, { pageSize: 100, maxAhead: 4 });
    const seen: number[] = [];
    let failure: unknown;
    try {
      for (;;) {
        const next = reader.next();
        await source.finishAll();
        const page = await next;
        if (page === undefined) break;
        seen.push(page.next.page);
      }
    } catch (err) {
      failure = err;
    } finally {
      const closed = reader.close();
      await source.finishAll();
      await closed;
    }
    expect((failure as Error).message).toBe('page 3 failed');
    expect(seen).toEqual([1, 2, 3]);
    expect(source.inFlight).toBe(0);
    expect(await reader.next()).toBeUndefined();
  });

  test('an exhausted start reads nothing', async () => {
    const source = new ScriptedSource(0);
    expect(isExhausted(source.start)).toBe(true);
    const reader = new PageReader(source, source.start, { pageSize: 100 });
    expect(await reader.next()).toBeUndefined();
    expect(source.started).toEqual([]);
  });

  test('a readAhead that is not a whole number of pages, 1 or more, is refused, naming the option', () => {
    const source = new ScriptedSource(100);
    for (const maxAhead of [0, -1, 1.5, Number.NaN]) {
      expect(() => new PageReader(source, source.start, { pageSize: 10, maxAhead })).toThrow(ReadAheadConfigError);
    }
    expect(() => new PageReader(source, source.start, { pageSize: 10, maxAhead: 0 })).toThrow(
      'readAhead is 0: give the pages to read at once, 1 or more',
    );
    expect(source.started).toEqual([]);
  });
});

/** Rows per page for wide rows: pageRowsFor (the source's budget) and pageRowsAt (what a reader takes of it). */
import { MIN_PAGE_ROWS, PAGE_BUDGET_BYTES, pageRowsFor } from '../../../src/sources/bigquery/source';
import { pageRowsAt, type SourcePosition } from '../../../src/sync/types';

const start: SourcePosition = { jobId: 'job', pageToken: null, page: 0, rowsRead: 0, totalRows: 100_000 };

describe('pageRowsFor', () => {
  test('rows of ~190 bytes (8 short columns) keep pages of more than 10,000 rows', () => {
    expect(pageRowsFor(190)).toBe(22_075);
  });

  test('wide rows get as many to a page as PAGE_BUDGET_BYTES of JSON holds', () => {
    // 30 columns of 60 characters: ~1,500 bytes of JSON a row
    const rows = pageRowsFor(1_500) as number;
    expect(rows).toBe(2_796);
    expect(rows * 1_500).toBeLessThanOrEqual(PAGE_BUDGET_BYTES);
    expect((rows + 1) * 1_500).toBeGreaterThan(PAGE_BUDGET_BYTES);
  });

  test('a page holds MIN_PAGE_ROWS rows however wide they are', () => {
    expect(pageRowsFor(5_000_000)).toBe(MIN_PAGE_ROWS);
  });

  test('no measure (no rows, a size of 0 or not a number) sets no limit', () => {
    for (const size of [undefined, 0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(pageRowsFor(size)).toBeUndefined();
    }
  });
});

describe('pageRowsAt', () => {
  test("the reader's page size, or the source's pageRows when fewer", () => {
    expect(pageRowsAt(start, 10_000)).toBe(10_000);
    expect(pageRowsAt({ ...start, pageRows: 2_796 }, 10_000)).toBe(2_796);
    expect(pageRowsAt({ ...start, pageRows: 22_075 }, 10_000)).toBe(10_000);
    expect(pageRowsAt({ ...start, pageRows: 0 }, 10_000)).toBe(1);
  });
});

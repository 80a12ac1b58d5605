/** Source positions: when results are exhausted, and where a page ahead starts. */
import { isExhausted, positionAhead, type SourcePosition } from '../../src/sync/types';

const byToken: SourcePosition = { jobId: 'job', pageToken: null, page: 0, rowsRead: 0 };
const byIndex: SourcePosition = { ...byToken, totalRows: 25_000 };

describe('isExhausted', () => {
  test('chained by token: a null token after the first page', () => {
    expect(isExhausted(byToken)).toBe(false);
    expect(isExhausted({ ...byToken, page: 1, rowsRead: 10, pageToken: 'x' })).toBe(false);
    expect(isExhausted({ ...byToken, page: 1, rowsRead: 10 })).toBe(true);
  });

  test('read by index: every row read, whatever the token says', () => {
    expect(isExhausted(byIndex)).toBe(false);
    expect(isExhausted({ ...byIndex, page: 2, rowsRead: 20_000 })).toBe(false);
    expect(isExhausted({ ...byIndex, page: 3, rowsRead: 25_000, pageToken: 'x' })).toBe(true);
    expect(isExhausted({ ...byToken, totalRows: 0 })).toBe(true);
  });
});

describe('positionAhead', () => {
  test('read by index: whole pages ahead, the last one ending at the last row', () => {
    expect(positionAhead(byIndex, 1, 10_000)).toEqual({ ...byIndex, page: 1, rowsRead: 10_000 });
    expect(positionAhead({ ...byIndex, page: 1, rowsRead: 10_000, pageToken: 't' }, 1, 10_000)).toEqual({
      ...byIndex,
      page: 2,
      rowsRead: 20_000,
      pageToken: null,
    });
    expect(positionAhead(byIndex, 3, 10_000)).toMatchObject({ page: 3, rowsRead: 25_000 });
  });

  test('chained by token: unknown until the page before is read', () => {
    expect(positionAhead(byToken, 1, 10_000)).toBeUndefined();
  });
});

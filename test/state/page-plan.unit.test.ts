import { canonicalJson, hashText } from '../../src/diff/canonical';
import { isStageable, positionPage, summarizePage } from '../../src/state/page-plan';
import type { MappedRow } from '../../src/sync/types';

function row(key: string, plan: string): MappedRow {
  const payload = canonicalJson({ user_id: key, user_properties: { plan } });
  return { key, hash: hashText(payload), payload };
}

describe('summarizePage', () => {
  it('lists each key once, mapped rows first in model order, counting rows and mapped rows per key', () => {
    const a = row('a', 'x');
    const b = row('b', 'x');
    const entries = summarizePage(
      [a, b, row('a', 'y')],
      [
        { key: null, reason: 'user_id is NULL', stage: 'diff' },
        { key: 'c', reason: 'bad time', stage: 'validation' },
        { key: 'b', reason: 'bad time', stage: 'validation' },
      ],
    );
    expect(entries).toEqual([
      { key: 'a', seen: 2, valid: 2, row: a },
      { key: 'b', seen: 2, valid: 1, row: b },
      { key: 'c', seen: 1, valid: 0, row: null },
    ]);
    expect(entries.map(isStageable)).toEqual([false, false, false]);
    expect(summarizePage([a], []).map(isStageable)).toEqual([true]);
  });
});

describe('positionPage', () => {
  const a = row('a', 'free');
  const b = row('b', 'free');
  const c = row('c', 'free');

  it('numbers the staged rows in model order from the run position and counts new and unchanged', () => {
    const entries = summarizePage([c, a, b], []);
    // c never delivered, b delivered with another hash, a unchanged
    const plan = positionPage(
      entries,
      new Map([
        ['b', true],
        ['c', false],
      ]),
      40,
    );
    expect(plan.rows).toEqual([
      { ...c, pos: 40 },
      { ...b, pos: 41 },
    ]);
    expect(plan.unchanged).toEqual(['a']);
    expect(plan.result).toEqual({ staged: 2, unchanged: 1, new: 1 });
    expect(plan.nextPos).toBe(42);
  });

  it('never stages a key repeated on the page or carried only by rejected rows', () => {
    const entries = summarizePage([a, row('a', 'pro'), b], [{ key: 'c', reason: 'bad', stage: 'validation' }]);
    const plan = positionPage(
      entries,
      new Map([
        ['a', false],
        ['c', false],
      ]),
      0,
    );
    expect(plan.rows).toEqual([]);
    expect(plan.unchanged).toEqual(['b']);
    expect(plan.result).toEqual({ staged: 0, unchanged: 1, new: 0 });
    expect(plan.nextPos).toBe(0);
  });
});

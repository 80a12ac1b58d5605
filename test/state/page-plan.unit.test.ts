import { canonicalJson, hashText } from '../../src/diff/canonical';
import {
  MissingPayloadError,
  isStageable,
  keyRange,
  pageOrder,
  pageTally,
  positionPage,
  summarizePage,
} from '../../src/state/page-plan';
import type { BuiltPayload, DiffRow, MappedRow } from '../../src/sync/types';

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
      { key: 'a', seen: 2, valid: 2, row: a, index: 0 },
      { key: 'b', seen: 2, valid: 1, row: b, index: 1 },
      { key: 'c', seen: 1, valid: 0, row: null, index: -1 },
    ]);
    expect(entries.map(isStageable)).toEqual([false, false, false]);
    expect(summarizePage([a], []).map(isStageable)).toEqual([true]);
  });

  it('summarizes a page whose keys ascend (read in key order) as any other page, repeats included', () => {
    const noKey = [{ key: null, reason: 'user_id is NULL', stage: 'diff' as const }];
    // a rejection without a key changes no entry, and takes the general path
    const general = (rows: MappedRow[]) => summarizePage(rows, noKey);
    const ascending = ['a', 'b', 'c', 'd'].map((k) => row(k, 'x'));
    expect(summarizePage(ascending, [])).toEqual(general(ascending));
    expect(summarizePage(ascending, []).map(isStageable)).toEqual([true, true, true, true]);
    const repeated = ['a', 'b', 'b', 'c'].map((k) => row(k, 'x'));
    expect(summarizePage(repeated, [])).toEqual(general(repeated));
    expect(summarizePage(repeated, []).map((e) => e.seen)).toEqual([1, 2, 1]);
    const descending = ['b', 'a'].map((k) => row(k, 'x'));
    expect(summarizePage(descending, [])).toEqual(general(descending));
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

describe('positionPage: deferred payloads', () => {
  // rows carry only key and fingerprint; build maps rows[index] when, and only when, the row is staged
  const rows: DiffRow[] = [
    { key: 'a', hash: 'h-a' },
    { key: 'b', hash: 'h-b' },
    { key: 'c', hash: 'h-c' },
    { key: 'd', hash: 'h-d' },
  ];
  const stagedKeys = new Map([
    ['a', false],
    ['c', true],
    ['d', false],
  ]);

  it('builds the payloads of staged rows only, and files a row its build rejects as rejected, not staged', () => {
    const built: number[] = [];
    const build = (index: number): BuiltPayload => {
      built.push(index);
      const key = rows[index]?.key ?? '?';
      return key === 'd'
        ? { ok: false, key, reason: 'time from column "at": not a valid instant', stage: 'validation' }
        : { ok: true, payload: `{"user_id":"${key}"}` };
    };
    const input = { rows, rejected: [] };
    const entries = summarizePage(rows, []);
    const plan = positionPage(entries, stagedKeys, 7, build);
    expect(built).toEqual([0, 2, 3]);
    expect(plan.rows).toEqual([
      { key: 'a', hash: 'h-a', payload: '{"user_id":"a"}', pos: 7 },
      { key: 'c', hash: 'h-c', payload: '{"user_id":"c"}', pos: 8 },
    ]);
    expect(plan.unchanged).toEqual(['b']);
    expect(plan.rejected).toEqual([
      { key: 'd', reason: 'time from column "at": not a valid instant', stage: 'validation' },
    ]);
    expect(plan.result).toEqual({ staged: 2, unchanged: 1, new: 1 });
    expect(entries.find((e) => e.key === 'd')).toMatchObject({ valid: 0, row: null });
    expect(pageTally(input, plan)).toEqual({ rows: 3, rejected: 1, staged: 2, unchanged: 1, new: 1 });
  });

  it('stages a row identified by key alone with the fingerprint its build returns', () => {
    const entries = summarizePage([{ key: 'e1', hash: '' }], []);
    const plan = positionPage(entries, new Map([['e1', false]]), 0, () => ({ ok: true, payload: '{}', hash: 'fp1' }));
    expect(plan.rows).toEqual([{ key: 'e1', hash: 'fp1', payload: '{}', pos: 0 }]);
  });

  it('refuses to stage a row without a payload when the page has no build function', () => {
    expect(() => positionPage(summarizePage(rows, []), stagedKeys, 0)).toThrow(MissingPayloadError);
    // unchanged rows need no payload at all
    expect(positionPage(summarizePage([{ key: 'b', hash: 'h-b' }], []), stagedKeys, 0).unchanged).toEqual(['b']);
  });
});

describe('keyRange and pageOrder', () => {
  const page = (...keys: string[]) =>
    summarizePage(
      keys.map((k) => row(k, 'x')),
      [],
    );
  const utf8Sorted = (keys: string[]) => [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

  it('finds the first and last key in byte order of their UTF-8 text, whatever the order of the rows', () => {
    const keys = ['b', 'Z', 'é', 'a', '\u00ff', '\uffee', '10', '9'];
    const sorted = utf8Sorted(keys);
    expect(keyRange(page(...keys))).toEqual({ first: sorted[0], last: sorted[sorted.length - 1] });
    expect(keyRange(page(...keys))).toEqual({ first: '10', last: '\uffee' });
    expect(keyRange([])).toBeUndefined();
  });

  it('takes no page with a surrogate (astral or lone) as in order', () => {
    expect(keyRange(page('a', 'b\u{1f600}'))).toBeUndefined();
    expect(keyRange(page('a', 'b\ud800'))).toBeUndefined();
    expect(pageOrder(page('x', 'y\u{1f600}'), { ordered: true, lastKey: 'a' }, true)).toEqual({
      ordered: false,
      lastKey: 'a',
    });
  });

  it('keeps a run in order while each promised page starts past the keys before it', () => {
    const start = { ordered: true, lastKey: null };
    const first = pageOrder(page('c', 'a', 'b'), start, true);
    expect(first).toEqual({ ordered: true, lastKey: 'c', range: { first: 'a', last: 'c' } });
    const second = pageOrder(page('d', 'f'), { ordered: first.ordered, lastKey: first.lastKey }, true);
    expect(second).toEqual({ ordered: true, lastKey: 'f', range: { first: 'd', last: 'f' } });
    // a page that starts at the last key (a key on two pages) or before it ends the order, keeping the greatest key
    expect(pageOrder(page('f', 'g'), { ordered: true, lastKey: 'f' }, true)).toEqual({ ordered: false, lastKey: 'g' });
    expect(pageOrder(page('a', 'b'), { ordered: true, lastKey: 'f' }, true)).toEqual({ ordered: false, lastKey: 'f' });
    // a page past the keys before it in a run already out of order is still read by range
    expect(pageOrder(page('x'), { ordered: false, lastKey: 'f' }, true)).toEqual({
      ordered: false,
      lastKey: 'x',
      range: { first: 'x', last: 'x' },
    });
    // no promise: out of order; no keys: nothing changes
    expect(pageOrder(page('x'), { ordered: true, lastKey: 'f' }, false)).toEqual({ ordered: false, lastKey: 'f' });
    expect(pageOrder([], { ordered: true, lastKey: 'f' }, true)).toEqual({ ordered: true, lastKey: 'f' });
  });
});

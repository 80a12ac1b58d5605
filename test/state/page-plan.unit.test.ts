import { canonicalJson, hashText } from '../../src/diff/canonical';
import { pageKeys, planPage } from '../../src/state/page-plan';
import type { MappedRow } from '../../src/sync/types';

function row(key: string, plan: string): MappedRow {
  const payload = canonicalJson({ user_id: key, user_properties: { plan } });
  return { key, hash: hashText(payload), payload };
}

describe('planPage', () => {
  const a = row('a', 'free');
  const b = row('b', 'free');
  const c = row('c', 'free');

  it('stages new and changed keys for upsert, numbering them from the run position in row order', () => {
    const synced = new Map([
      ['a', a.hash],
      ['b', row('b', 'old').hash],
    ]);
    const plan = planPage([c, a, b], [], synced, 'upsert', 40);
    expect(plan.result).toEqual({ staged: 2, unchanged: 1, new: 1 });
    expect(plan.nextPos).toBe(42);
    expect(plan.keys).toEqual([
      { key: 'c', seen: 1, valid: 1, wasSynced: false, pos: 40, hash: c.hash, payload: c.payload },
      { key: 'a', seen: 1, valid: 1, wasSynced: true, pos: null, hash: null, payload: null },
      { key: 'b', seen: 1, valid: 1, wasSynced: true, pos: 41, hash: b.hash, payload: b.payload },
    ]);
  });

  it('stages only keys never delivered for send-once, whatever their hash', () => {
    const plan = planPage([a, b], [], new Map([['a', 'another-hash']]), 'send-once', 0);
    expect(plan.result).toEqual({ staged: 1, unchanged: 1, new: 1 });
    expect(plan.keys.map((k) => [k.key, k.pos])).toEqual([
      ['a', null],
      ['b', 0],
    ]);
  });

  it('leaves a key twice on the page unstaged and counts its rows, rejected ones included', () => {
    const plan = planPage(
      [a, row('a', 'pro'), b],
      [
        { key: 'b', reason: 'bad time', stage: 'validation' },
        { key: null, reason: 'user_id is NULL', stage: 'diff' },
      ],
      new Map(),
      'upsert',
      0,
    );
    expect(plan.result).toEqual({ staged: 0, unchanged: 0, new: 0 });
    expect(plan.nextPos).toBe(0);
    expect(plan.keys.map((k) => [k.key, k.seen, k.valid, k.pos])).toEqual([
      ['a', 2, 2, null],
      ['b', 2, 1, null],
    ]);
  });

  it('records a rejected key as seen (neither new nor gone) without staging it', () => {
    const plan = planPage(
      [],
      [{ key: 'a', reason: 'bad', stage: 'validation' }],
      new Map([['a', a.hash]]),
      'upsert',
      3,
    );
    expect(plan.keys).toEqual([{ key: 'a', seen: 1, valid: 0, wasSynced: true, pos: null, hash: null, payload: null }]);
    expect(plan.result).toEqual({ staged: 0, unchanged: 0, new: 0 });
  });
});

describe('pageKeys', () => {
  it('lists each key of mapped and rejected rows once, skipping NULL keys', () => {
    expect(
      pageKeys(
        [row('a', 'x'), row('b', 'x'), row('a', 'y')],
        [
          { key: null, reason: 'NULL', stage: 'diff' },
          { key: 'c', reason: 'bad', stage: 'validation' },
          { key: 'b', reason: 'bad', stage: 'validation' },
        ],
      ),
    ).toEqual(['a', 'b', 'c']);
  });
});

import { fingerprintHash, fingerprintText, loadFingerprintHash } from '../../src/diff/canonical';

describe('fingerprintText', () => {
  test('writes each kind of value with where it ends', () => {
    expect(fingerprintText(['ab', 1.5, -0, true, false, null])).toBe('s2:abn1.5;n0;tfz');
    expect(fingerprintText([[1, 'a'], { b: 1, a: 2 }])).toBe('j7:[1,"a"]j13:{"a":2,"b":1}');
    expect(fingerprintText([new Date('2026-01-02T03:04:05.000Z')])).toBe('j26:"2026-01-02T03:04:05.000Z"');
  });

  test('gives distinct texts to lists that JSON or plain concatenation would confuse', () => {
    const lists: unknown[][] = [
      ['ab', 'c'],
      ['a', 'bc'],
      ['abc'],
      ['1'],
      [1],
      ['null'],
      [null],
      ['true'],
      [true],
      [''],
      [],
      ['', ''],
      ['s1:a'],
      ['a', null],
      [null, 'a'],
      ['n1;'],
      [1, ''],
      [[1]],
      ['[1]'],
      [Number.NaN],
      [Number.POSITIVE_INFINITY],
      [Number.NEGATIVE_INFINITY],
      ['NaN'],
    ];
    const texts = lists.map((l) => fingerprintText(l));
    expect(new Set(texts).size).toBe(lists.length);
  });

  test('a value JSON cannot carry still gets a stable text', () => {
    expect(fingerprintText([Number.NaN])).toBe(fingerprintText([Number.NaN]));
    expect(fingerprintText([10n])).not.toBe(fingerprintText([10]));
  });
});

describe('fingerprintHash', () => {
  test('is xxHash64 as 16 hex digits, the same for the same text', async () => {
    await loadFingerprintHash();
    // xxHash64 reference values (seed 0): "" and "abc"
    expect(fingerprintHash('')).toBe('ef46db3751d8e999');
    expect(fingerprintHash('abc')).toBe('44bc2cf5ad770999');
    expect(fingerprintHash('s2:abz')).toMatch(/^[0-9a-f]{16}$/);
    expect(fingerprintHash('s2:abz')).not.toBe(fingerprintHash('s2:ab'));
  });
});

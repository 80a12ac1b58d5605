import type { PackLimits } from '../../src/amplitude/batches';
import {
  packBatches,
  packLimitsFor,
  payloadWireBytes,
  requestBody,
  requestPieces,
  rowsArray,
} from '../../src/amplitude/batches';
import type { StagedRow } from '../../src/sync/types';
import { rowsReadAsBytes } from '../support/byte-rows';

function row(key: string, payload = `{"user_id":"${key}"}`): StagedRow {
  return { key, payload };
}

const keys = (batches: StagedRow[][]): string[][] => batches.map((b) => b.map((r) => r.key));

describe('packBatches', () => {
  it('packs by count within the API limit, capped by batchSize', () => {
    const rows = Array.from({ length: 4500 }, (_, i) => row(`user-${i}`));
    expect(packBatches(rows, packLimitsFor('batch')).map((b) => b.length)).toEqual([2000, 2000, 500]);
    expect(packBatches(rows, packLimitsFor('batch', { batchSize: 1000 })).map((b) => b.length)).toEqual([
      1000, 1000, 1000, 1000, 500,
    ]);
    expect(packBatches(rows.slice(0, 2050), packLimitsFor('groupidentify')).map((b) => b.length)).toEqual([
      1024, 1024, 2,
    ]);
  });

  it('packs by bytes: the body built from the batch never exceeds maxBytes', () => {
    const limits: PackLimits = { maxItems: 100, maxBytes: 100, envelopeBytes: 20, body: 'json' };
    // Each payload is 20 bytes: 20 envelope + [ ] + n×20 + (n-1) commas ≤ 100 → 3 rows per request.
    const rows = Array.from({ length: 7 }, (_, i) => row(`k${i}`, `{"user_id":"user-${i}"}`));
    expect(rows[0]!.payload).toHaveLength(20);
    const batches = packBatches(rows, limits);
    expect(keys(batches)).toEqual([['k0', 'k1', 'k2'], ['k3', 'k4', 'k5'], ['k6']]);
    for (const b of batches) expect(limits.envelopeBytes + rowsArray(b, 'json').length).toBeLessThanOrEqual(100);
    const bigger: PackLimits = { ...limits, maxBytes: 101 };
    expect(packBatches(rows, bigger).map((b) => b.length)).toEqual([3, 3, 1]);
    // Exactly 84 bytes for 3 rows: 20 + 1 + 60 + 2 + 1.
    expect(packBatches(rows, { ...limits, maxBytes: 84 }).map((b) => b.length)).toEqual([3, 3, 1]);
    expect(packBatches(rows, { ...limits, maxBytes: 83 }).map((b) => b.length)).toEqual([2, 2, 2, 1]);
  });

  it('counts UTF-8 bytes, not characters', () => {
    const limits: PackLimits = { maxItems: 100, maxBytes: 30, envelopeBytes: 0, body: 'json' };
    const wide = row('w', '"éééééé"'); // 8 chars, 14 bytes
    expect(payloadWireBytes(wide.payload, 'json')).toBe(14);
    expect(packBatches([wide, wide, wide], limits).map((b) => b.length)).toEqual([1, 1, 1]);
  });

  it('counts form bodies URL-encoded', () => {
    const payload = '{"user_id":"user-1"}';
    expect(payloadWireBytes(payload, 'form')).toBe(encodeURIComponent(payload).length);
    // %5B + 34 + %2C + 34 + %5D = 77 bytes for two rows.
    expect(encodeURIComponent(payload)).toHaveLength(34);
    const three = [row('a', payload), row('b', payload), row('c', payload)];
    const limits: PackLimits = { maxItems: 100, maxBytes: 77, envelopeBytes: 0, body: 'form' };
    expect(packBatches(three, limits).map((b) => b.length)).toEqual([2, 1]);
    expect(packBatches(three, { ...limits, maxBytes: 76 }).map((b) => b.length)).toEqual([1, 1, 1]);
    expect(rowsArray([row('a', payload), row('b', payload)], 'form')).toBe(
      encodeURIComponent(`[${payload},${payload}]`),
    );
  });

  it('keeps order, loses no row, and lets an oversized row travel alone', () => {
    const limits: PackLimits = { maxItems: 10, maxBytes: 50, envelopeBytes: 10, body: 'json' };
    const rows = [row('a'), row('huge', `"${'x'.repeat(100)}"`), row('b'), row('c')];
    expect(keys(packBatches(rows, limits))).toEqual([['a'], ['huge'], ['b', 'c']]);
    expect(packBatches([], limits)).toEqual([]);
  });

  it('concatenates payloads as they are, without re-encoding them', () => {
    const rows = [row('a', '{"b":1,"a":2}'), row('b', '{"x":"\\u00e9"}')];
    expect(rowsArray(rows, 'json')).toBe('[{"b":1,"a":2},{"x":"\\u00e9"}]');
  });
});

/** Rows whose payloads were read as bytes, keyed k0, k1, …: see rowsReadAsBytes. */
function byteRows(payloads: string[]): StagedRow[] {
  return rowsReadAsBytes(payloads.map((payload, i) => ({ key: `k${i}`, hash: 'h', payload }))).rows;
}

describe('requestPieces', () => {
  const payloads = ['{"a":1}', '{"é":"ü"}', '{"c":[1,2]}', '{"d":"x,y"}'];

  it('takes payloads read as bytes where they are: consecutive ones of a source in one view, none copied', () => {
    const rows = byteRows(payloads);
    const pieces = requestPieces('{"events":', rows, 'json', '}');
    expect(pieces.map((p) => p.toString())).toEqual(['{"events":[', payloads.join(','), ']}']);
    // the view shares the source's memory
    expect(pieces[1]!.buffer).toBe(rows[0]!.bytes!.source.buffer);
    expect(JSON.parse(Buffer.concat(pieces).toString())).toEqual({
      events: payloads.map((p): unknown => JSON.parse(p)),
    });
  });

  it('puts a comma between the views of rows that do not follow each other (rows left out, other sources)', () => {
    const rows = byteRows(payloads);
    const other = byteRows(['{"z":0}']);
    const picked = [rows[0]!, rows[2]!, rows[3]!, other[0]!, rows[1]!];
    const body = requestBody('[', picked, 'json', ']').toString();
    expect(body).toBe(`[[${[payloads[0], payloads[2], payloads[3], '{"z":0}', payloads[1]].join(',')}]]`);
    expect(requestPieces('', picked, 'json', '').map((p) => p.toString())).toEqual([
      '[',
      payloads[0],
      ',',
      `${payloads[2]},${payloads[3]}`,
      ',',
      '{"z":0}',
      ',',
      payloads[1],
      ']',
    ]);
    expect(requestBody('', [], 'json', '').toString()).toBe('[]');
  });

  it('writes one buffer for rows with text payloads, and URL-encodes form bodies even from bytes', () => {
    const text = payloads.map((p, i) => row(`t${i}`, p));
    expect(requestPieces('x=', text, 'json', '').map((p) => p.toString())).toEqual([`x=[${payloads.join(',')}]`]);
    const form = requestPieces('api_key=k&identification=', byteRows(payloads), 'form', '');
    expect(form.map((p) => p.toString())).toEqual([
      `api_key=k&identification=${encodeURIComponent(`[${payloads.join(',')}]`)}`,
    ]);
    // one row with text among rows read as bytes: the whole body is written as text
    const mixed = [...byteRows(payloads.slice(0, 2)), row('t', '{"t":1}')];
    expect(requestPieces('', mixed, 'json', '').map((p) => p.toString())).toEqual([
      `[${payloads[0]},${payloads[1]},{"t":1}]`,
    ]);
  });

  it('packs rows read as bytes by their byte lengths', () => {
    const rows = byteRows(['"é"', '"ab"', '"c"']);
    const limits: PackLimits = { maxItems: 10, maxBytes: 10, envelopeBytes: 0, body: 'json' };
    // 8 bytes for the items: "é" (4 bytes, 3 characters), a comma and "ab" (4) make 9, which does not fit
    expect(keys(packBatches(rows, limits))).toEqual([['k0'], ['k1', 'k2']]);
  });
});

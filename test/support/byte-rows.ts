/**
 * Staged rows whose payloads were read as bytes, as the SQLite store reads a chunk: one source holding every
 * payload followed by a comma. A row decodes its payload from the bytes when asked, and `decodes` counts those
 * reads, so a test can check that a body was made from the bytes alone.
 */
import type { StagedRow } from '../../src/sync/types';

export interface RowsReadAsBytes {
  rows: StagedRow[];
  /** How many times a row's `payload` was read. */
  decodes: () => number;
}

export function rowsReadAsBytes(rows: readonly Pick<StagedRow, 'key' | 'payload'>[]): RowsReadAsBytes {
  const source = Buffer.from(rows.map((r) => r.payload).join(','));
  let decodes = 0;
  let start = 0;
  const read = rows.map(({ key, payload }): StagedRow => {
    const bytes = { source, start, end: start + Buffer.byteLength(payload) };
    start = bytes.end + 1;
    return {
      key,
      bytes,
      get payload(): string {
        decodes += 1;
        return source.toString('utf8', bytes.start, bytes.end);
      },
    };
  });
  return { rows: read, decodes: () => decodes };
}

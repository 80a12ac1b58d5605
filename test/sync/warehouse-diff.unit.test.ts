import {
  checkDiffKey,
  WarehouseDiffConfigError,
  warehouseDiffHint,
  warehouseTables,
  withUnchangedElsewhere,
} from '../../src/sync/warehouse-diff';
import type { SourceField } from '../../src/sync/types';

const field = (name: string, type: string, mode: SourceField['mode'] = 'NULLABLE'): SourceField => ({
  name,
  type,
  mode,
});

describe('warehouse diff helpers', () => {
  it("names tables per sync and run, so that no sync owns another one's tables", () => {
    const a = warehouseTables('users', 'run-1');
    const b = warehouseTables('users-eu', 'run-1');
    const c = warehouseTables('users_eu', 'run-1');
    expect(a.runTable).toMatch(/^ampsync_run_users_[0-9a-f]{10}_run_1_[0-9a-f]{10}$/);
    expect(a.snapshot).toMatch(/^ampsync_snapshot_users_/);
    // "users-eu" and "users_eu" read alike once sanitised: the hash keeps them apart
    expect(b.prefixes).not.toEqual(c.prefixes);
    for (const other of [b, c]) {
      for (const prefix of a.prefixes) {
        expect(other.runTable.startsWith(prefix)).toBe(false);
        expect(other.snapshot.startsWith(prefix)).toBe(false);
      }
    }
    expect(a.prefixes.some((p) => a.runTable.startsWith(p))).toBe(true);
    expect(a.prefixes.some((p) => a.snapshot.startsWith(p))).toBe(true);
    expect(warehouseTables('users', 'run-2').runTable).not.toBe(a.runTable);
  });

  it('accepts STRING and INT64 keys and names any other key type', () => {
    const schema = [
      field('id', 'STRING'),
      field('n', 'INT64'),
      field('at', 'TIMESTAMP'),
      field('tags', 'STRING', 'REPEATED'),
    ];
    expect(() => checkDiffKey('sync "s"', 'id', schema)).not.toThrow();
    expect(() => checkDiffKey('sync "s"', 'n', schema)).not.toThrow();
    expect(() => checkDiffKey('sync "s"', 'missing', schema)).not.toThrow();
    expect(() => checkDiffKey('sync "s"', 'at', schema)).toThrow(WarehouseDiffConfigError);
    expect(() => checkDiffKey('sync "s"', 'at', schema)).toThrow(/sync "s".*key column "at" is TIMESTAMP/);
    expect(() => checkDiffKey('sync "s"', 'tags', schema)).toThrow(/key column "tags" is ARRAY<STRING>/);
  });

  it('counts rows the warehouse left out as extracted and unchanged, never as gone', () => {
    const counts = { extracted: 10, unchanged: 2, gone: 95, new: 8 };
    expect(withUnchangedElsewhere(counts, 90)).toEqual({ extracted: 100, unchanged: 92, gone: 5, new: 8 });
    expect(withUnchangedElsewhere(counts, 0)).toBe(counts);
    expect(withUnchangedElsewhere({ extracted: 0, unchanged: 0, gone: 1 }, 3).gone).toBe(0);
  });

  it('suggests the warehouse diff to a worker-diffed sync that read a large model to find few changes', () => {
    const inWorker = { source: {} };
    const counts = { extracted: 1_000_000, new: 2_000, changed: 8_000 };
    expect(warehouseDiffHint(inWorker, counts)).toBe(
      'this run read 1,000,000 rows out of BigQuery to find 10,000 new or changed; with source.stateDataset the ' +
        'diff runs in BigQuery and only those rows leave it (README: "Diffing in BigQuery")',
    );
    // diffed in the warehouse already, a small model, or a run that changed much of it: nothing to suggest
    expect(warehouseDiffHint({ source: { stateDataset: 'ampsync_state' } }, counts)).toBeUndefined();
    expect(warehouseDiffHint(inWorker, { extracted: 99_999, new: 0, changed: 10 })).toBeUndefined();
    expect(warehouseDiffHint(inWorker, { extracted: 1_000_000, new: 0, changed: 50_001 })).toBeUndefined();
    expect(warehouseDiffHint(inWorker, { extracted: 1_000_000, new: 50_000, changed: 0 })).toBeDefined();
  });
});

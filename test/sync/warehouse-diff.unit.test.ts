import {
  checkDiffKey,
  DEFAULT_STATE_DATASET,
  isLoopbackUrl,
  stateDatasetOf,
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

  it('diffs in the warehouse by default: in the dataset named, or ampsync_state; read-only on false or an emulator', () => {
    expect(DEFAULT_STATE_DATASET).toBe('ampsync_state');
    expect(stateDatasetOf({})).toBe('ampsync_state');
    expect(stateDatasetOf({ apiEndpoint: 'https://bigquery.example.com' })).toBe('ampsync_state');
    expect(stateDatasetOf({ stateDataset: 'crm_state' })).toBe('crm_state');
    expect(stateDatasetOf({ stateDataset: false })).toBeUndefined();
    // a local emulator diffs in the worker unless told otherwise
    expect(stateDatasetOf({ apiEndpoint: 'http://127.0.0.1:9050' })).toBeUndefined();
    expect(stateDatasetOf({ apiEndpoint: 'http://localhost:9050', stateDataset: 'st' })).toBe('st');
    expect(stateDatasetOf({ apiEndpoint: 'http://127.0.0.1:9050', stateDataset: false })).toBeUndefined();
    expect(isLoopbackUrl('http://[::1]:9050')).toBe(true);
    expect(isLoopbackUrl('http://10.0.0.7:9050')).toBe(false);
    expect(isLoopbackUrl('not a url')).toBe(false);
    expect(isLoopbackUrl(undefined)).toBe(false);
  });

  it('suggests the warehouse diff to a worker-diffed sync that read a large model to find few changes', () => {
    const inWorker = { source: { stateDataset: false as const } };
    const counts = { extracted: 1_000_000, new: 2_000, changed: 8_000 };
    expect(warehouseDiffHint(inWorker, counts)).toBe(
      'this run read 1,000,000 rows out of BigQuery to find 10,000 new or changed; diffed in BigQuery (a ' +
        'source.stateDataset, README: "Diffing in BigQuery") only those rows would leave it',
    );
    expect(warehouseDiffHint({ source: { apiEndpoint: 'http://127.0.0.1:9050' } }, counts)).toBeDefined();
    // diffed in the warehouse already (by default or by name), a small model, or a run that changed much of it
    expect(warehouseDiffHint({ source: {} }, counts)).toBeUndefined();
    expect(warehouseDiffHint({ source: { stateDataset: 'ampsync_state' } }, counts)).toBeUndefined();
    expect(warehouseDiffHint(inWorker, { extracted: 99_999, new: 0, changed: 10 })).toBeUndefined();
    expect(warehouseDiffHint(inWorker, { extracted: 1_000_000, new: 0, changed: 50_001 })).toBeUndefined();
    expect(warehouseDiffHint(inWorker, { extracted: 1_000_000, new: 50_000, changed: 0 })).toBeDefined();
  });
});

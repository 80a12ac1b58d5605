/** The benchmark's two syncs (users and page-view events), shared by the end-to-end runs and the send comparison. */
import { syncSchema, type SyncConfig, type SyncConfigInput } from '../../src/config/schema';
import { benchModel, wideColumns, type BenchModelKind } from './generated-source';

/** Env var the sync's Amplitude key is resolved from. */
export const BENCH_API_KEY_ENV = 'BENCH_AMPLITUDE_KEY';

/** Where a benchmark sync reads and writes. */
export interface BenchSyncOptions {
  id: string;
  kind: BenchModelKind;
  rows: number;
  revision: number;
  /** Base URL of the Amplitude emulator. */
  amplitudeUrl: string;
  /**
   * Diff in the worker (read-only mode): sets source.stateDataset to false. Otherwise the sync names no state
   * dataset and diffs in the warehouse, ampsync's default (the generated source's stand-in for BigQuery's).
   */
  readOnly?: boolean;
  /** Users: this many more text columns, each mapped to a user property (a wide model and wide payloads). */
  wide?: number;
}

/** A sync over a generated model with ampsync's default options (so tuning a default shows in the figures). */
export function benchSync(options: BenchSyncOptions): SyncConfig {
  const common = {
    id: options.id,
    source: { project: 'bench', ...(options.readOnly === true ? { stateDataset: false as const } : {}) },
    model: benchModel({
      kind: options.kind,
      rows: options.rows,
      revision: options.revision,
      ...(options.wide !== undefined ? { wide: options.wide } : {}),
    }),
    destination: { apiKey: { env: BENCH_API_KEY_ENV }, baseUrl: options.amplitudeUrl },
  };
  const input: SyncConfigInput =
    options.kind === 'users'
      ? {
          ...common,
          object: 'users',
          key: 'user_id',
          mappings: [
            { from: 'user_id', to: 'user_id' },
            { from: 'plan', to: 'user_properties.plan' },
            { from: 'lifetime_value', to: 'user_properties.lifetime_value' },
            { from: 'trial_ends_at', to: 'user_properties.trial_ends_at' },
            { from: 'activated_on', to: 'user_properties.activated_on', op: '$setOnce' },
            { from: 'sessions_30d', to: 'user_properties.sessions_30d' },
            { from: 'email_domain', to: 'user_properties.email_domain' },
            { from: 'account_id', to: 'groups.account' },
            ...wideColumns(options.wide).map((name) => ({ from: name, to: `user_properties.${name}` })),
          ],
        }
      : {
          ...common,
          object: 'events',
          key: 'event_id',
          mappings: [
            { from: 'user_id', to: 'user_id' },
            { constant: 'Page Viewed', to: 'event_type' },
            { from: 'occurred_at', to: 'time' },
            { from: 'path', to: 'event_properties.path' },
            { from: 'referrer', to: 'event_properties.referrer' },
            { from: 'plan', to: 'event_properties.plan' },
            { from: 'duration_ms', to: 'event_properties.duration_ms' },
          ],
        };
  return syncSchema.parse(input);
}

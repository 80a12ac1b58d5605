/**
 * Temporal connection settings from the standard Temporal environment (`TEMPORAL_ADDRESS`,
 * `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, TLS variables and the `temporal.toml` profile) via envconfig.
 */
import { loadClientConnectConfig } from '@temporalio/envconfig';

export interface TemporalTarget {
  address: string;
  namespace: string;
  apiKey?: string;
  tls?: boolean | object;
}

/** Reads the Temporal profile; defaults to the local dev server at 127.0.0.1:7233, namespace "default". */
export function temporalTarget(overrides: { address?: string; namespace?: string } = {}): TemporalTarget {
  const config = loadClientConnectConfig();
  const options = config.connectionOptions;
  const target: TemporalTarget = {
    address: overrides.address ?? options.address ?? '127.0.0.1:7233',
    namespace: overrides.namespace ?? config.namespace ?? 'default',
  };
  if (options.apiKey !== undefined && typeof options.apiKey === 'string') target.apiKey = options.apiKey;
  if (options.tls !== undefined && options.tls !== null && options.tls !== false) target.tls = options.tls;
  return target;
}

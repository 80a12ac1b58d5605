/** Builds parsed SyncConfigs for the Amplitude tests. */
import type { SyncConfig, SyncConfigInput } from '../../../src/config/schema';
import { syncSchema } from '../../../src/config/schema';

type SyncOverrides = Partial<Omit<SyncConfigInput, 'options'>> & { options?: Record<string, unknown> };

/** A valid sync of `object` with the given mappings and options (parsed by the real schema). */
export function makeSync(overrides: SyncOverrides): SyncConfig {
  return syncSchema.parse({
    id: 'test-sync',
    object: 'users',
    source: { project: 'p' },
    model: { table: 'analytics.model' },
    key: 'user_id',
    mappings: [{ from: 'user_id', to: 'user_id' }],
    destination: { apiKey: { env: 'AMPLITUDE_API_KEY' } },
    ...overrides,
  });
}

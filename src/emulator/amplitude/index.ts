/**
 * A loopback emulator of Amplitude's ingestion APIs (HTTP V2, Batch, Identify, Group Identify)
 * with fault injection and state inspection, for tests, benchmarks and the demo.
 *
 *   const amplitude = await startAmplitudeEmulator({ apiKeys: ['test-key'] });
 *   await fetch(`${amplitude.url}/batch`, { method: 'POST', headers: { 'content-type': 'application/json' },
 *     body: JSON.stringify({ api_key: 'test-key', events: [{ event_type: 'Signed Up', user_id: 'user-1' }] }) });
 *   amplitude.throttle({ userIds: ['user-1'], forMs: 30_000 }); // next request for user-1 answers 429
 *   amplitude.eventCount(); // 1
 *   await amplitude.close();
 */
import { AmplitudeEmulatorServer } from './emulator';
import type { AmplitudeEmulator, AmplitudeEmulatorOptions } from './types';

/** Starts an emulator on 127.0.0.1 (ephemeral port unless `options.port`). */
export async function startAmplitudeEmulator(options: AmplitudeEmulatorOptions = {}): Promise<AmplitudeEmulator> {
  return AmplitudeEmulatorServer.start(options);
}

export { EmulatorStartError } from './emulator';
export { ADMIN_PREFIX } from './admin';
export { InvalidFaultError } from './faults';
export type {
  ByteLimitFault,
  DownFault,
  EpsLimitFault,
  FailRateFault,
  LatencyFault,
  ResetConnectionsFault,
  SilenceFault,
  ThrottleFault,
} from './faults';
export type { GroupProfile, StoredEvent, UserProfile } from './store';
export type { AmplitudeEmulator, AmplitudeEmulatorOptions, RequestRecord } from './types';
export { ENDPOINTS } from './limits';
export type { EndpointSpec } from './limits';

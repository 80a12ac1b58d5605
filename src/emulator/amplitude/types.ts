/** The Amplitude emulator's public contract. */
import type {
  ByteLimitFault,
  DownFault,
  EpsLimitFault,
  FailRateFault,
  LatencyFault,
  ResetConnectionsFault,
  SilenceFault,
  ThrottleFault,
} from './faults';
import type { GroupProfile, StoredEvent, UserProfile } from './store';

/** How to start the emulator. */
export interface AmplitudeEmulatorOptions {
  /** Port to listen on; 0 (default) picks an ephemeral port. */
  port?: number;
  host?: '127.0.0.1';
  /** Accepted API keys; default any non-empty key. */
  apiKeys?: string[];
  /** Keep every ingested event (default true); false keeps counts and dedup keys only. */
  storeEvents?: boolean;
  /** Keep user and group profiles (default: the value of storeEvents). */
  storeProfiles?: boolean;
  /** Keep each request's decompressed body in `requests()` (default: the value of storeEvents). */
  recordBodies?: boolean;
  /** Seed of the RNG behind fault rates (default 1). */
  seed?: number;
  /** Clock (ms) for upload times, the 7-day dedup window and fault durations (default Date.now). */
  now?: () => number;
}

/** One request the emulator answered (or reset), in arrival order. */
export interface RequestRecord {
  /** Arrival time, ms since the epoch. */
  readonly at: number;
  readonly method: string;
  readonly path: string;
  /** HTTP status answered; 0 when the connection was reset without a response. */
  readonly status: number;
  readonly apiKey: string | null;
  /** Events (or identifications) in the request, whatever the outcome; 0 when the body was not parsed (413, bad JSON). */
  readonly events: number;
  /** Body size after decompression. */
  readonly bytes: number;
  /** Body size on the wire. */
  readonly wireBytes: number;
  readonly gzip: boolean;
  readonly contentType: string | null;
  /** The decompressed body, when bodies are recorded. */
  readonly body?: string;
}

/** A running emulator: its address, fault injection and inspection. */
export interface AmplitudeEmulator {
  /** Base URL, e.g. `http://127.0.0.1:9700`; endpoints are `${url}/2/httpapi`, `${url}/batch`, ... */
  readonly url: string;
  readonly port: number;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;

  /** 429 for requests carrying events of these ids, for `forMs`. */
  throttle(fault: ThrottleFault): void;
  /** 400 "Events silenced for device_id" for requests carrying events of these devices. */
  silence(fault: SilenceFault): void;
  /** A share of ingestion requests answer this 5xx. */
  failRate(fault: FailRateFault): void;
  /** Every ingestion response is delayed. */
  latency(fault: LatencyFault): void;
  /** A share of ingestion requests get their socket destroyed without a response. */
  resetConnections(fault: ResetConnectionsFault): void;
  /** Lowers the 413 threshold. */
  byteLimit(fault: ByteLimitFault): void;
  /** Refuses connections for `forMs`; resolves once the listener is closed. */
  down(fault: DownFault): Promise<void>;
  /** Resolves when the emulator listens (immediately unless `down`). */
  waitUntilUp(): Promise<void>;
  /** Every ingestion request answers 403 until cleared. */
  forbidden(): void;
  /** Per-id events-per-second limit answering 429 above it. */
  epsLimit(fault: EpsLimitFault): void;
  /** Removes every fault (not the stored state). */
  clearFaults(): void;

  /** Ingested events (with `server_upload_time`) in arrival order, of one project or all; empty when storeEvents is false. Do not mutate. */
  events(apiKey?: string): readonly StoredEvent[];
  /** Ingested events, duplicates excluded. */
  eventCount(apiKey?: string): number;
  /** Events dropped as duplicates (insert_id, or event_id + time, within 7 days). */
  duplicatesDropped(apiKey?: string): number;
  /** A copy of the profile of a user_id or device_id (first project holding it when apiKey is omitted). */
  user(userIdOrDeviceId: string, apiKey?: string): UserProfile | undefined;
  /** Copies of every user profile. */
  users(apiKey?: string): UserProfile[];
  /** A copy of a group profile. */
  group(groupType: string, groupValue: string, apiKey?: string): GroupProfile | undefined;
  /** Copies of every group profile. */
  groups(apiKey?: string): GroupProfile[];
  /** API keys that have ingested something. */
  projects(): string[];
  /** The request log (the most recent ones once it passes 100,000 entries). */
  requests(): readonly RequestRecord[];
  /**
   * Resolves once no request is being handled: a request its client abandoned under a latency fault is still
   * processed (and stored) when its latency passes, so wait for this before counting what was stored or resetting.
   */
  settled(): Promise<void>;
  /** Forgets every event, profile, dedup key and logged request (faults stay). */
  reset(): void;
}

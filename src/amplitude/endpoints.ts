/**
 * Amplitude's ingestion endpoints and their limits, in one table (figures from the vendor's API pages; where a
 * limit is unconfirmed the conservative value is used). Pinned by test/amplitude/endpoints.unit.test.ts.
 */
import type { SyncConfig } from '../config/schema';

/** The ingestion APIs a sync writes through. */
export const AMPLITUDE_APIS = ['batch', 'httpv2', 'identify', 'groupidentify'] as const;
/** One of AMPLITUDE_APIS. */
export type AmplitudeApi = (typeof AMPLITUDE_APIS)[number];

/** Amplitude's data regions. */
export type AmplitudeRegion = 'us' | 'eu';

/** Ingestion host per data region. */
export const AMPLITUDE_HOSTS: Readonly<Record<AmplitudeRegion, string>> = {
  us: 'https://api2.amplitude.com',
  eu: 'https://api.eu.amplitude.com',
};

/** How an API takes its rows and how much it takes per request. */
export interface AmplitudeApiSpec {
  path: string;
  /** `json`: `{api_key, events:[...]}`; `form`: `api_key=...&identification=<JSON array>`. */
  body: 'json' | 'form';
  maxItemsPerRequest: number;
  /** Limit on the uncompressed request body. */
  maxBytesPerRequest: number;
  /** How long a throttled user/device pauses after a 429 without Retry-After. */
  throttleWaitMs: number;
}

/** A project-level 429 (no user or device named): the whole request waits this long. */
export const PROJECT_THROTTLE_WAIT_MS = 60_000;

/** Path, body format, limits and throttle wait of each API. */
export const AMPLITUDE_API_SPECS: Readonly<Record<AmplitudeApi, AmplitudeApiSpec>> = {
  // 2000 events and < 1 MB per request; a throttled user/device pauses 30 s.
  httpv2: {
    path: '/2/httpapi',
    body: 'json',
    maxItemsPerRequest: 2000,
    maxBytesPerRequest: 1_000_000,
    throttleWaitMs: 30_000,
  },
  // 2000 events and 20 MB per request; throttled ids pause ~15 s.
  batch: {
    path: '/batch',
    body: 'json',
    maxItemsPerRequest: 2000,
    maxBytesPerRequest: 20_000_000,
    throttleWaitMs: 15_000,
  },
  // Limits unconfirmed: kept at 2000 identifications and < 1 MB (form-encoded, as sent).
  identify: {
    path: '/identify',
    body: 'form',
    maxItemsPerRequest: 2000,
    maxBytesPerRequest: 1_000_000,
    throttleWaitMs: 15_000,
  },
  // 1024 identifications and 1 MB per request; throttling is per organisation, so every 429 is project-level.
  groupidentify: {
    path: '/groupidentify',
    body: 'form',
    maxItemsPerRequest: 1024,
    maxBytesPerRequest: 1_000_000,
    throttleWaitMs: PROJECT_THROTTLE_WAIT_MS,
  },
};

/** The URL an API is posted to: the region's host, or `baseUrl` (a proxy, the local emulator) in its place. */
export function endpointUrl(api: AmplitudeApi, region: AmplitudeRegion, baseUrl?: string): string {
  const root = baseUrl === undefined ? AMPLITUDE_HOSTS[region] : baseUrl.replace(/\/+$/, '');
  return `${root}${AMPLITUDE_API_SPECS[api].path}`;
}

/** The API a sync writes through: groups use Group Identify; others `options.api`, Batch by default. */
export function apiForSync(sync: Pick<SyncConfig, 'object' | 'options'>): AmplitudeApi {
  if (sync.object === 'groups') return 'groupidentify';
  return sync.options.api ?? 'batch';
}

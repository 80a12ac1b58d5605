/**
 * Amplitude's documented ingestion limits, as the emulator enforces them
 * (source: /work/shared/reference/amplitude-api.md, "Endpoints", "Limits", "Event fields").
 */

/** Which body format and processing an endpoint has. */
export type EndpointKind = 'events' | 'identify' | 'groupidentify';

/** One ingestion endpoint: its path, body format and limits. */
export interface EndpointSpec {
  readonly path: string;
  readonly kind: EndpointKind;
  /** Largest accepted body in bytes, counted after gzip decompression; larger answers 413. */
  readonly maxBodyBytes: number;
  /** Most events (or identifications) per request; more answers 413. */
  readonly maxItems: number;
  /** Events per second per id reported as `eps_threshold` on a 429. */
  readonly epsThreshold: number;
}

/** Most events per HTTP V2 or Batch request. */
export const MAX_EVENTS_PER_REQUEST = 2000;
/** HTTP V2 bodies must stay under 1 MB (decimal megabyte: the stricter reading). */
export const HTTP_V2_MAX_BODY_BYTES = 1_000_000 - 1;
/** Batch bodies may reach 20 MB (decimal megabytes: the stricter reading). */
export const BATCH_MAX_BODY_BYTES = 20_000_000;
/** Identify limits are unconfirmed; the reference says keep < 1 MB and ≤ 2000 identifications. */
export const IDENTIFY_MAX_BODY_BYTES = 1_000_000 - 1;
export const MAX_IDENTIFICATIONS_PER_REQUEST = 2000;
/** Group Identify: ≤ 1 MB, ≤ 1024 identifications, ≤ 1024 properties. */
export const GROUP_IDENTIFY_MAX_BODY_BYTES = 1_000_000;
export const MAX_GROUP_IDENTIFICATIONS_PER_REQUEST = 1024;
export const MAX_GROUP_PROPERTIES_PER_IDENTIFICATION = 1024;

/** Per user_id / device_id event rate reported on a 429 (HTTP V2 ~30/s, Batch 1000/s). */
export const HTTP_V2_EPS_THRESHOLD = 30;
export const BATCH_EPS_THRESHOLD = 1000;

/** Longer strings are truncated on ingest, not rejected. */
export const MAX_STRING_LENGTH_CHARS = 1024;
/** Deepest nesting of objects/arrays allowed in a property dict. */
export const MAX_PROPERTY_NESTING_DEPTH = 40;
/** user_id / device_id minimum length unless `options.min_id_length` lowers it. */
export const DEFAULT_MIN_ID_LENGTH = 5;
export const MAX_GROUP_TYPES_PER_EVENT = 5;
export const MAX_GROUP_VALUES_PER_TYPE = 10;
/** A repeated insert_id (or event_id + time) for the same device is dropped within this window. */
export const DEDUP_WINDOW_MS = 7 * 24 * 60 * 60 * 1000;

/** IDs Amplitude rejects as placeholders (compared case-insensitively). */
export const PLACEHOLDER_IDS: ReadonlySet<string> = new Set([
  'anonymous',
  'nil',
  'none',
  'null',
  'n/a',
  'na',
  'undefined',
  'unknown',
  '',
  '00000000-0000-0000-0000-000000000000',
  '{}',
  'lmy47d',
  '0',
  '-1',
]);

/** The emulated endpoints by path. */
export const ENDPOINTS: ReadonlyMap<string, EndpointSpec> = new Map(
  (
    [
      {
        path: '/2/httpapi',
        kind: 'events',
        maxBodyBytes: HTTP_V2_MAX_BODY_BYTES,
        maxItems: MAX_EVENTS_PER_REQUEST,
        epsThreshold: HTTP_V2_EPS_THRESHOLD,
      },
      {
        path: '/batch',
        kind: 'events',
        maxBodyBytes: BATCH_MAX_BODY_BYTES,
        maxItems: MAX_EVENTS_PER_REQUEST,
        epsThreshold: BATCH_EPS_THRESHOLD,
      },
      {
        path: '/identify',
        kind: 'identify',
        maxBodyBytes: IDENTIFY_MAX_BODY_BYTES,
        maxItems: MAX_IDENTIFICATIONS_PER_REQUEST,
        epsThreshold: HTTP_V2_EPS_THRESHOLD,
      },
      {
        path: '/groupidentify',
        kind: 'groupidentify',
        maxBodyBytes: GROUP_IDENTIFY_MAX_BODY_BYTES,
        maxItems: MAX_GROUP_IDENTIFICATIONS_PER_REQUEST,
        epsThreshold: HTTP_V2_EPS_THRESHOLD,
      },
    ] satisfies EndpointSpec[]
  ).map((spec) => [spec.path, spec]),
);

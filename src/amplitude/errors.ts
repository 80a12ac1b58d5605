/**
 * The Amplitude client's failures, classified once at the edge: activities turn them into Temporal
 * ApplicationFailures by their stable `type` (never by `instanceof`: realms differ in the sandbox and under Jest).
 */
import type { RowOutcome } from '../sync/types';

/** Stable `type` strings of the errors below. */
export type AmplitudeErrorType =
  'AmplitudeConfigError' | 'AmplitudeUnavailableError' | 'AmplitudeAbortedError' | 'MappingError';

interface SendErrorOptions {
  cause?: unknown;
  /** Rows that got an outcome before the failure; record them (Amplitude already has the delivered ones). */
  outcomes?: RowOutcome[];
}

/** Base of the errors a send throws: a stable `type`, whether a retry can help, and the rows settled before. */
export abstract class AmplitudeSendError extends Error {
  abstract readonly type: AmplitudeErrorType;
  abstract readonly retryable: boolean;
  /** Outcomes of rows settled before the failure; the other rows of the batch have none. */
  readonly outcomes: RowOutcome[];

  constructor(
    message: string,
    /** The endpoint that failed, e.g. `https://api2.amplitude.com/batch` (never carries the API key). */
    readonly endpoint: string,
    options: SendErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.outcomes = options.outcomes ?? [];
  }
}

/** Amplitude refused the request itself (bad API key, forbidden, unknown endpoint): retrying cannot help. */
export class AmplitudeConfigError extends AmplitudeSendError {
  static readonly type = 'AmplitudeConfigError';
  override readonly name = 'AmplitudeConfigError';
  readonly type = AmplitudeConfigError.type;
  readonly retryable = false;

  constructor(
    message: string,
    endpoint: string,
    /** HTTP status of the answer. */
    readonly status: number,
    options: SendErrorOptions = {},
  ) {
    super(message, endpoint, options);
  }
}

/** Amplitude stayed unreachable or answered 5xx through every attempt: retry later, after `retryAfterMs` if known. */
export class AmplitudeUnavailableError extends AmplitudeSendError {
  static readonly type = 'AmplitudeUnavailableError';
  override readonly name = 'AmplitudeUnavailableError';
  readonly type = AmplitudeUnavailableError.type;
  readonly retryable = true;

  constructor(
    message: string,
    endpoint: string,
    /** Delay Amplitude asked for (Retry-After), or undefined to use the caller's backoff. */
    readonly retryAfterMs: number | undefined,
    options: SendErrorOptions = {},
  ) {
    super(message, endpoint, options);
  }
}

/** The caller's AbortSignal fired (e.g. activity cancellation) before every row had an outcome. */
export class AmplitudeAbortedError extends AmplitudeSendError {
  static readonly type = 'AmplitudeAbortedError';
  override readonly name = 'AmplitudeAbortedError';
  readonly type = AmplitudeAbortedError.type;
  readonly retryable = false;
}

/** A sync's mappings cannot be compiled against its model (missing column, operation the target refuses). */
export class MappingError extends Error {
  static readonly type = 'MappingError';
  override readonly name = 'MappingError';
  readonly type = MappingError.type;
  readonly retryable = false;

  constructor(
    message: string,
    /** The sync whose mappings failed. */
    readonly syncId: string,
  ) {
    super(`sync "${syncId}": ${message}`);
  }
}

/**
 * The state store's failures, classified once where the database client sits: a transient database problem
 * (connection refused, serialization failure, SQLITE_BUSY) is retryable, everything else is not.
 * Activities branch on the stable `type`, never on `instanceof`.
 */

/** Stable `type` strings of the errors below. */
export type StateErrorType =
  'StateConfigError' | 'StateUnavailableError' | 'StateDatabaseError' | 'RunNotFoundError' | 'StateConflictError';

/** Base of every state store failure: a stable `type` and whether a retry can help. */
export abstract class StateError extends Error {
  abstract readonly type: StateErrorType;
  abstract readonly retryable: boolean;

  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
  }
}

/** The store cannot be opened as configured (unknown URL scheme, invalid schema name): fix the configuration. */
export class StateConfigError extends StateError {
  override readonly name = 'StateConfigError';
  readonly type = 'StateConfigError';
  readonly retryable = false;
}

/** The database is unreachable or asked to try again (connection refused, serialization failure, SQLITE_BUSY). */
export class StateUnavailableError extends StateError {
  override readonly name = 'StateUnavailableError';
  readonly type = 'StateUnavailableError';
  readonly retryable = true;
}

/** The database refused the operation for a reason a retry cannot fix (permissions, disk full, corrupt file). */
export class StateDatabaseError extends StateError {
  override readonly name = 'StateDatabaseError';
  readonly type = 'StateDatabaseError';
  readonly retryable = false;
}

/** No run with that id was begun for the sync (or its staging data was dropped by finishRun). */
export class RunNotFoundError extends StateError {
  override readonly name = 'RunNotFoundError';
  readonly type = 'RunNotFoundError';
  readonly retryable = false;

  constructor(
    readonly syncId: string,
    readonly runId: string,
  ) {
    super(`run "${runId}" of sync "${syncId}" was never begun`);
  }
}

/** A call out of order or against the run's recorded state (e.g. reading chunks before finishExtract). */
export class StateConflictError extends StateError {
  override readonly name = 'StateConflictError';
  readonly type = 'StateConflictError';
  readonly retryable = false;
}

/** SQLite result codes (primary or extended) a retry can get past. */
const SQLITE_TRANSIENT = /^SQLITE_(BUSY|LOCKED)(_|$)/;

/**
 * PostgreSQL SQLSTATEs a retry can get past: connection exceptions (class 08), serialization failure, deadlock,
 * lock not available, too many connections, server shutting down or starting.
 */
const POSTGRES_TRANSIENT_CODES = new Set(['40001', '40P01', '55P03', '53300', '57P01', '57P02', '57P03']);

/** Node socket errors a retry can get past. */
const NETWORK_TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/** pg errors without a code that mean the connection went away. */
const POSTGRES_TRANSIENT_MESSAGE = /Connection terminated|timeout exceeded when trying to connect|Connection ended/i;

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Whether a database error is worth retrying. */
export function isTransientDatabaseError(err: unknown): boolean {
  const code = codeOf(err);
  if (SQLITE_TRANSIENT.test(code)) return true;
  if (POSTGRES_TRANSIENT_CODES.has(code) || code.startsWith('08')) return true;
  if (NETWORK_TRANSIENT_CODES.has(code)) return true;
  if (err instanceof AggregateError) return err.errors.some(isTransientDatabaseError);
  return code === '' && POSTGRES_TRANSIENT_MESSAGE.test(messageOf(err));
}

/** Wraps a database client error as a StateError naming what failed (a StateError passes through). */
export function classifyDatabaseError(err: unknown, store: string, operation: string): StateError {
  if (err instanceof StateError) return err;
  const code = codeOf(err);
  const detail = `${store} state store could not ${operation}: ${messageOf(err)}${code === '' ? '' : ` (${code})`}`;
  return isTransientDatabaseError(err)
    ? new StateUnavailableError(detail, { cause: err })
    : new StateDatabaseError(detail, { cause: err });
}

/**
 * BigQuery failures, classified once at the edge into a small closed set. Each error carries a stable `type`
 * (its class name, what ApplicationFailure.type becomes) and `retryable`; messages name the cause and the model,
 * table or job, and never carry credentials.
 *
 *   SourceConfigError          the model, table, permissions or byte limit are wrong: retrying cannot help
 *   SourceUnavailableError     throttling, 5xx, timeouts, network resets: retry (after `retryAfterMs` when known)
 *   SourceResultsExpiredError  a saved position points at query results BigQuery no longer keeps: re-open
 *   SourceValueError           a cell does not have the documented REST shape of its type
 */

/** Why a model cannot run as configured. */
export type SourceConfigReason =
  'invalidQuery' | 'notFound' | 'accessDenied' | 'bytesLimitExceeded' | 'credentials' | 'invalid' | 'resourcesExceeded';

/** Why BigQuery could not answer now. */
export type SourceUnavailableReason = 'rateLimited' | 'backendError' | 'network' | 'timeout';

/** What was being done when a call failed, for the message: `query job for table "p.d.t"`. */
export interface BigQueryCallContext {
  /** The operation: "dry run", "query job", "table read", "page 3 of job ...". */
  operation: string;
  /** The model in words: `SQL model "SELECT ..."` or `table "p.d.t"`. */
  subject: string;
  /** The REST endpoint, e.g. "jobs.insert". */
  endpoint?: string;
}

/** The model, table, permissions or byte limit are wrong; not retryable. */
export class SourceConfigError extends Error {
  override readonly name = 'SourceConfigError';
  readonly type = 'SourceConfigError';
  readonly retryable = false;
  constructor(
    message: string,
    readonly reason: SourceConfigReason,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** BigQuery is throttling, failing or unreachable; retryable. */
export class SourceUnavailableError extends Error {
  override readonly name = 'SourceUnavailableError';
  readonly type = 'SourceUnavailableError';
  readonly retryable = true;
  constructor(
    message: string,
    readonly reason: SourceUnavailableReason,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A saved position's query results are gone (BigQuery keeps them about 24 h): the model must be opened again. */
export class SourceResultsExpiredError extends Error {
  override readonly name = 'SourceResultsExpiredError';
  readonly type = 'SourceResultsExpiredError';
  readonly retryable = false;
}

/** A cell that is not the documented REST shape of its column's type. */
export class SourceValueError extends Error {
  override readonly name = 'SourceValueError';
  readonly type = 'SourceValueError';
  readonly retryable = false;
  constructor(
    readonly path: string,
    readonly columnType: string,
    value: unknown,
    expected: string,
    options?: { cause?: unknown },
  ) {
    super(`column ${path} (${columnType}): expected ${expected}, got ${preview(value)}`, options);
  }
}

export type SourceError = SourceConfigError | SourceUnavailableError | SourceResultsExpiredError | SourceValueError;

function preview(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

interface GoogleErrorItem {
  reason?: string;
  message?: string;
}

interface ApiErrorLike {
  message?: unknown;
  code?: unknown;
  errors?: unknown;
  response?: { statusCode?: unknown; headers?: unknown } | undefined;
}

/** Node socket errors after which the same request may well succeed. */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ESOCKETTIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

const RETRYABLE_REASONS: Readonly<Record<string, SourceUnavailableReason>> = {
  rateLimitExceeded: 'rateLimited',
  userRateLimitExceeded: 'rateLimited',
  jobRateLimitExceeded: 'rateLimited',
  quotaExceeded: 'rateLimited',
  backendError: 'backendError',
  internalError: 'backendError',
  jobBackendError: 'backendError',
  jobInternalError: 'backendError',
  timeout: 'timeout',
};

const CONFIG_REASONS: Readonly<Record<string, SourceConfigReason>> = {
  invalidQuery: 'invalidQuery',
  notFound: 'notFound',
  accessDenied: 'accessDenied',
  forbidden: 'accessDenied',
  billingNotEnabled: 'accessDenied',
  billingTierLimitExceeded: 'bytesLimitExceeded',
  bytesBilledLimitExceeded: 'bytesLimitExceeded',
  authError: 'credentials',
  invalid: 'invalid',
  invalidUser: 'credentials',
  notImplemented: 'invalid',
  responseTooLarge: 'resourcesExceeded',
  resourcesExceeded: 'resourcesExceeded',
  resourceInUse: 'invalid',
  duplicate: 'invalid',
};

/**
 * The goccy emulator reports every query failure as `jobInternalError`; its parser/analyzer messages are
 * deterministic query errors, not backend trouble.
 */
const EMULATOR_QUERY_ERROR =
  /^failed to (parse|analyze|format|scan)|Syntax error|Unrecognized name|No matching signature/i;
const NOT_FOUND_TEXT = /not ?found/i;

/** Strips anything that looks like a credential from a message. */
export function redact(text: string): string {
  return text
    .replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi, '$1[redacted]')
    .replace(/((?:access|refresh|id)_token["'=:\s]+)[^\s"'&,]+/gi, '$1[redacted]')
    .replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, '[redacted key]')
    .replace(/("private_key"\s*:\s*")[^"]*"/g, '$1[redacted]"');
}

function asApiError(err: unknown): ApiErrorLike & { name?: unknown } {
  return typeof err === 'object' && err !== null ? err : { message: String(err) };
}

function items(err: ApiErrorLike): GoogleErrorItem[] {
  return Array.isArray(err.errors)
    ? (err.errors as unknown[]).filter((e): e is GoogleErrorItem => typeof e === 'object' && e !== null)
    : [];
}

function httpStatus(err: ApiErrorLike): number | undefined {
  if (typeof err.code === 'number') return err.code;
  const fromResponse = err.response?.statusCode;
  return typeof fromResponse === 'number' && fromResponse >= 400 ? fromResponse : undefined;
}

function retryAfterMs(err: ApiErrorLike): number | undefined {
  const headers = err.response?.headers;
  if (typeof headers !== 'object' || headers === null) return undefined;
  const value = (headers as Record<string, unknown>)['retry-after'];
  if (typeof value !== 'string') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** A copy of the vendor error holding only its message, status and reasons (no request, headers or token). */
function sanitizedCause(err: unknown, message: string): Error {
  const api = asApiError(err);
  const cause = new Error(message);
  cause.name = typeof api.name === 'string' ? api.name : 'Error';
  const extra: Record<string, unknown> = {};
  if (api.code !== undefined) extra.code = api.code;
  const list = items(api);
  if (list.length > 0)
    extra.errors = list.map((e) => ({
      reason: e.reason,
      message: e.message !== undefined ? redact(e.message) : undefined,
    }));
  return Object.assign(cause, extra);
}

/** Classifies any failure of a BigQuery call into a SourceError whose message names what failed and where. */
export function classifyBigQueryError(err: unknown, context: BigQueryCallContext): SourceError {
  if (
    err instanceof SourceConfigError ||
    err instanceof SourceUnavailableError ||
    err instanceof SourceResultsExpiredError ||
    err instanceof SourceValueError
  ) {
    return err;
  }
  const api = asApiError(err);
  const list = items(api);
  const status = httpStatus(api);
  const rawMessage = redact(typeof api.message === 'string' && api.message ? api.message : String(err));
  const reasons = list.map((e) => e.reason).filter((r): r is string => typeof r === 'string');
  const detail = [status, reasons.join(', ')].filter((x) => x !== undefined && x !== '').join(' ');
  const where = `BigQuery ${context.operation} for ${context.subject}${context.endpoint ? ` (${context.endpoint})` : ''}`;
  const describe = (what: string): string => `${where} failed: ${what}: ${rawMessage}${detail ? ` [${detail}]` : ''}`;
  const cause = sanitizedCause(err, rawMessage);

  const code = typeof api.code === 'string' ? api.code : undefined;
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return new SourceUnavailableError(describe(`network error ${code}`), 'network', undefined, { cause });
  }
  if (
    code === 'ENOENT' ||
    /Could not load the default credentials|Unable to detect a Project Id|invalid_grant|no such file/i.test(rawMessage)
  ) {
    return new SourceConfigError(describe('the credentials cannot be loaded'), 'credentials', { cause });
  }
  if (
    /socket hang up|network|ECONNRESET|timed? ?out/i.test(rawMessage) &&
    status === undefined &&
    reasons.length === 0
  ) {
    return new SourceUnavailableError(describe('network error'), 'network', undefined, { cause });
  }

  for (const reason of reasons) {
    if (reason === 'jobInternalError' && EMULATOR_QUERY_ERROR.test(rawMessage)) {
      const kind = NOT_FOUND_TEXT.test(rawMessage) ? 'notFound' : 'invalidQuery';
      return new SourceConfigError(describe(kind === 'notFound' ? 'not found' : 'invalid query'), kind, { cause });
    }
    const retry = RETRYABLE_REASONS[reason];
    if (retry !== undefined) {
      return new SourceUnavailableError(describe(retryWords(retry)), retry, retryAfterMs(api), { cause });
    }
    const config = CONFIG_REASONS[reason];
    if (config !== undefined) {
      return new SourceConfigError(describe(configWords(config)), config, { cause });
    }
  }

  if (status === 408 || status === 429 || (status !== undefined && status >= 500)) {
    const reason: SourceUnavailableReason =
      status === 429 ? 'rateLimited' : status === 408 ? 'timeout' : 'backendError';
    return new SourceUnavailableError(describe(retryWords(reason)), reason, retryAfterMs(api), { cause });
  }
  if (status === 401) return new SourceConfigError(describe('the credentials were refused'), 'credentials', { cause });
  if (status === 403) return new SourceConfigError(describe('access denied'), 'accessDenied', { cause });
  if (status === 404) return new SourceConfigError(describe('not found'), 'notFound', { cause });
  if (status !== undefined && status >= 400)
    return new SourceConfigError(describe('invalid request'), 'invalid', { cause });
  // no status, no reason: a failure below HTTP (TLS, DNS, aborted stream) is worth another try
  return new SourceUnavailableError(describe('request failed'), 'network', undefined, { cause });
}

function retryWords(reason: SourceUnavailableReason): string {
  switch (reason) {
    case 'rateLimited':
      return 'rate limited';
    case 'backendError':
      return 'backend error';
    case 'timeout':
      return 'timed out';
    case 'network':
      return 'network error';
  }
}

function configWords(reason: SourceConfigReason): string {
  switch (reason) {
    case 'invalidQuery':
      return 'invalid query';
    case 'notFound':
      return 'not found';
    case 'accessDenied':
      return 'access denied';
    case 'bytesLimitExceeded':
      return 'the query would bill more bytes than maximumBytesBilled allows';
    case 'credentials':
      return 'the credentials were refused';
    case 'invalid':
      return 'invalid request';
    case 'resourcesExceeded':
      return 'the query exceeds BigQuery resource limits; simplify it or reduce its result';
  }
}

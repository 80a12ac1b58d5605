/** Classification of BigQuery failures (the shapes the Node client produces) into the closed set of source errors. */
import {
  classifyBigQueryError,
  redact,
  SourceConfigError,
  SourceUnavailableError,
  type BigQueryCallContext,
} from '../../../src/sources/bigquery/errors';

const context: BigQueryCallContext = {
  operation: 'query job',
  subject: 'SQL model "SELECT 1"',
  endpoint: 'jobs.insert',
};

/** The client's ApiError: HTTP status, Google error items, and the response (headers). */
function apiError(
  code: number | undefined,
  reason: string,
  message: string,
  headers: Record<string, string> = {},
): Error {
  return Object.assign(new Error(message), {
    name: 'ApiError',
    code,
    errors: [{ reason, message }],
    response: { statusCode: code, headers },
  });
}

describe('classifyBigQueryError', () => {
  test.each([
    [400, 'invalidQuery', 'Syntax error: Unexpected identifier "SELEC" at [1:1]', 'invalidQuery'],
    [404, 'notFound', 'Not found: Table my-project:crm.users was not found in location US', 'notFound'],
    [404, 'notFound', 'Not found: Dataset my-project:crm was not found in location US', 'notFound'],
    [403, 'accessDenied', 'Access Denied: Table my-project:crm.users: User does not have permission', 'accessDenied'],
    [
      400,
      'bytesBilledLimitExceeded',
      'Query exceeded limit for bytes billed: 1000000. 10485760 or higher required.',
      'bytesLimitExceeded',
    ],
    [400, 'responseTooLarge', 'Response too large to return.', 'resourcesExceeded'],
    [400, 'invalid', 'Invalid table ID "bad name"', 'invalid'],
    [401, 'authError', 'Request had invalid authentication credentials.', 'credentials'],
  ])('%i %s → SourceConfigError (%s)', (code, reason, message, expected) => {
    const err = classifyBigQueryError(apiError(code, reason, message), context);
    expect(err).toBeInstanceOf(SourceConfigError);
    expect(err).toMatchObject({
      type: 'SourceConfigError',
      retryable: false,
      reason: expected,
      name: 'SourceConfigError',
    });
    expect(err.message).toContain('BigQuery query job for SQL model "SELECT 1" (jobs.insert) failed');
    expect(err.message).toContain(message);
    expect(err.message).toContain(`[${code} ${reason}]`);
  });

  test.each([
    [403, 'rateLimitExceeded', 'Exceeded rate limits: too many table update operations', 'rateLimited'],
    [403, 'quotaExceeded', 'Quota exceeded: Your project exceeded quota for concurrent queries', 'rateLimited'],
    [429, 'rateLimitExceeded', 'Too many requests', 'rateLimited'],
    [500, 'backendError', 'Backend error', 'backendError'],
    [503, 'backendError', 'The service is currently unavailable', 'backendError'],
    [500, 'internalError', 'An internal error occurred', 'backendError'],
  ])('%i %s → SourceUnavailableError (%s)', (code, reason, message, expected) => {
    const err = classifyBigQueryError(apiError(code, reason, message), context);
    expect(err).toBeInstanceOf(SourceUnavailableError);
    expect(err).toMatchObject({ type: 'SourceUnavailableError', retryable: true, reason: expected });
    expect(err.message).toContain(message);
  });

  test('a status without a reason is classified by the status', () => {
    const bare = (code: number) => Object.assign(new Error(`status ${code}`), { code, errors: [] });
    expect(classifyBigQueryError(bare(502), context)).toMatchObject({
      type: 'SourceUnavailableError',
      reason: 'backendError',
    });
    expect(classifyBigQueryError(bare(429), context)).toMatchObject({
      type: 'SourceUnavailableError',
      reason: 'rateLimited',
    });
    expect(classifyBigQueryError(bare(408), context)).toMatchObject({
      type: 'SourceUnavailableError',
      reason: 'timeout',
    });
    expect(classifyBigQueryError(bare(404), context)).toMatchObject({ type: 'SourceConfigError', reason: 'notFound' });
    expect(classifyBigQueryError(bare(403), context)).toMatchObject({
      type: 'SourceConfigError',
      reason: 'accessDenied',
    });
    expect(classifyBigQueryError(bare(400), context)).toMatchObject({ type: 'SourceConfigError', reason: 'invalid' });
  });

  test('a failed job (errors from the job status, no HTTP status) is classified by its reason', () => {
    const jobFailure = {
      errors: [{ reason: 'invalidQuery', message: 'Unrecognized name: plan at [1:8]' }],
      message: 'Unrecognized name: plan at [1:8]',
    };
    expect(classifyBigQueryError(jobFailure, context)).toMatchObject({
      type: 'SourceConfigError',
      reason: 'invalidQuery',
    });
  });

  test('Retry-After on a 429 becomes retryAfterMs', () => {
    const err = classifyBigQueryError(apiError(429, 'rateLimitExceeded', 'slow down', { 'retry-after': '7' }), context);
    expect(err).toMatchObject({ type: 'SourceUnavailableError', retryAfterMs: 7000 });
  });

  test.each(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EAI_AGAIN'])(
    'network error %s → SourceUnavailableError',
    (code) => {
      const err = classifyBigQueryError(Object.assign(new Error(`request failed, reason: ${code}`), { code }), context);
      expect(err).toMatchObject({ type: 'SourceUnavailableError', reason: 'network', retryable: true });
      expect(err.message).toContain(`network error ${code}`);
    },
  );

  test('a socket hang-up without status or code is retryable', () => {
    expect(classifyBigQueryError(new Error('socket hang up'), context)).toMatchObject({
      type: 'SourceUnavailableError',
      reason: 'network',
    });
  });

  test('missing credentials (ADC or key file) → SourceConfigError', () => {
    const adc = new Error(
      'Could not load the default credentials. Browse to https://cloud.google.com/docs/authentication',
    );
    expect(classifyBigQueryError(adc, context)).toMatchObject({ type: 'SourceConfigError', reason: 'credentials' });
    const keyFile = Object.assign(new Error("ENOENT: no such file or directory, open '/keys/sa.json'"), {
      code: 'ENOENT',
    });
    const err = classifyBigQueryError(keyFile, context);
    expect(err).toMatchObject({ type: 'SourceConfigError', reason: 'credentials' });
    expect(err.message).toContain('/keys/sa.json');
  });

  test('the goccy emulator: jobInternalError from its parser or analyzer is a query error, not backend trouble', () => {
    const syntax = {
      errors: [
        { reason: 'jobInternalError', message: 'failed to parse statements: Syntax error: Unexpected identifier' },
      ],
      message: 'failed to parse statements: Syntax error: Unexpected identifier',
    };
    expect(classifyBigQueryError(syntax, context)).toMatchObject({ type: 'SourceConfigError', reason: 'invalidQuery' });
    const missing = {
      errors: [{ reason: 'jobInternalError', message: 'failed to analyze: Table not found: crm.users [at 1:15]' }],
      message: 'failed to analyze: Table not found: crm.users [at 1:15]',
    };
    const err = classifyBigQueryError(missing, context);
    expect(err).toMatchObject({ type: 'SourceConfigError', reason: 'notFound' });
    expect(err.message).toContain('crm.users');
    const backend = {
      errors: [{ reason: 'jobInternalError', message: 'Retrying the job may solve the problem.' }],
      message: 'Retrying the job may solve the problem.',
    };
    expect(classifyBigQueryError(backend, context)).toMatchObject({
      type: 'SourceUnavailableError',
      reason: 'backendError',
    });
  });

  test('already classified errors pass through unchanged', () => {
    const config = new SourceConfigError('x', 'invalid');
    expect(classifyBigQueryError(config, context)).toBe(config);
  });

  test('no credential survives in the message or in the cause', () => {
    const leaky = Object.assign(
      new Error('401 for request with Authorization: Bearer ya29.a0AfH6SMBsecret-token and access_token=ya29.other'),
      {
        code: 401,
        errors: [{ reason: 'authError', message: 'Bearer ya29.a0AfH6SMBsecret-token rejected' }],
        response: {
          statusCode: 401,
          headers: {},
          request: { headers: { authorization: 'Bearer ya29.a0AfH6SMBsecret-token' } },
        },
      },
    );
    const err = classifyBigQueryError(leaky, context);
    const everything = JSON.stringify({
      message: err.message,
      cause: err.cause,
      causeMessage: (err.cause as Error).message,
    });
    expect(everything).not.toContain('ya29');
    expect(err.message).toContain('Bearer [redacted]');
    expect(Object.keys(err.cause as object)).not.toContain('response');
  });
});

describe('redact', () => {
  test('strips bearer tokens, OAuth tokens and private keys', () => {
    expect(redact('Authorization: Bearer abc.def-123')).toBe('Authorization: Bearer [redacted]');
    expect(redact('refresh_token=1//0gabc&x=1')).toBe('refresh_token=[redacted]&x=1');
    expect(
      redact('{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n"}'),
    ).not.toContain('MIIE');
    expect(redact('-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----')).toBe('[redacted key]');
  });
});

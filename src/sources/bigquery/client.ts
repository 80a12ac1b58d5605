/**
 * The BigQuery client for a sync's source settings: a service-account key file, Application Default Credentials,
 * or, with `apiEndpoint` (an emulator or a proxy), no credentials at all.
 *
 *   const bq = createBigQueryClient({ type: 'bigquery', project: 'ampsync-dev', apiEndpoint: 'http://127.0.0.1:9050' });
 */
import { BigQuery, type BigQueryOptions } from '@google-cloud/bigquery';
import { OAuth2Client } from 'google-auth-library';
import type { SourceConfig } from '../../config/schema';

/** Google's production API root. */
export const BIGQUERY_API_ROOT = 'https://bigquery.googleapis.com';

/** Requests the client itself retries on 429 / 5xx / network resets before the error reaches us. */
export const DEFAULT_CLIENT_MAX_RETRIES = 3;

export interface BigQueryClientOptions {
  /** In-client retries of a failed request (default 3); Temporal retries the activity beyond that. */
  maxRetries?: number;
  /** Longest pause between in-client retries, in seconds (default 64, the library's). */
  maxRetryDelaySeconds?: number;
}

/** Sent as the user agent suffix so BigQuery's audit logs show who ran a job. */
const USER_AGENT = 'ampsync/0.1.0';

/** An auth client that sends a fixed placeholder token and never looks for real credentials. */
export function anonymousAuthClient(): OAuth2Client {
  const client = new OAuth2Client();
  client.credentials = { access_token: 'anonymous' };
  return client;
}

/**
 * Creates the client. With `apiEndpoint` the client authenticates with a placeholder token, so it never probes
 * the GCE metadata server; `BIGQUERY_EMULATOR_HOST` is ignored either way (the library would otherwise let it
 * override the configured endpoint, and its documented host:port form breaks the Node client).
 */
export function createBigQueryClient(source: SourceConfig, options: BigQueryClientOptions = {}): BigQuery {
  const endpoint = (source.apiEndpoint ?? BIGQUERY_API_ROOT).replace(/\/+$/, '');
  const config: BigQueryOptions = {
    projectId: source.project,
    apiEndpoint: endpoint,
    userAgent: USER_AGENT,
    retryOptions: {
      // the library reads maxRetries 0 as "default": switch retrying off instead
      autoRetry: options.maxRetries !== 0,
      maxRetries: options.maxRetries || DEFAULT_CLIENT_MAX_RETRIES,
      ...(options.maxRetryDelaySeconds !== undefined ? { maxRetryDelay: options.maxRetryDelaySeconds } : {}),
    },
  };
  if (source.location !== undefined) config.location = source.location;
  if (source.apiEndpoint !== undefined) config.authClient = anonymousAuthClient();
  else if (source.keyFile !== undefined) config.keyFilename = source.keyFile;
  const client = new BigQuery(config);
  client.baseUrl = `${endpoint}/bigquery/v2`;
  return client;
}

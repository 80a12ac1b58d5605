/**
 * BigQuery as an ampsync source.
 *
 *   import { BigQuerySource, isExhausted } from './sources/bigquery';
 *   const source = new BigQuerySource({ type: 'bigquery', project: 'my-project', location: 'US' });
 *   const { position } = await source.open({ table: 'crm.users' });
 *   for (let p = position; !isExhausted(p); ) p = (await source.readPage(p, { pageSize: 10_000 })).next;
 */
export { createBigQueryClient, anonymousAuthClient, BIGQUERY_API_ROOT } from './client';
export type { BigQueryClientOptions } from './client';
export { convertRows, convertValue, normaliseSchema, normaliseType, rowConverter } from './convert';
export type { RawCell, RawField, RawRow, RawValue } from './convert';
export {
  classifyBigQueryError,
  SourceConfigError,
  SourceResultsExpiredError,
  SourceUnavailableError,
  SourceValueError,
} from './errors';
export type { SourceConfigReason, SourceError, SourceUnavailableReason } from './errors';
export { BigQuerySource, isExhausted, JOB_ID_PREFIX, JOB_TIMEOUT_MS } from './source';
export type { BigQuerySourceOptions, OpenOptions, SourceLogger, TableReadMode } from './source';

/**
 * Errors cross into Temporal as ApplicationFailures with a stable `type`: configuration problems are
 * non-retryable, everything transient is retried (with the server's Retry-After as the next delay).
 */
import { ApplicationFailure } from '@temporalio/common';

interface Classified {
  type?: unknown;
  retryable?: unknown;
  retryAfterMs?: unknown;
}

/** Names of error classes whose failures retrying cannot fix. */
const PERMANENT = /(Config|Secret|Mapping|Validation)Error$/;

/** Converts any thrown value into an ApplicationFailure that says whether to retry. */
export function toApplicationFailure(err: unknown): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (!(err instanceof Error)) return ApplicationFailure.create({ message: String(err), type: 'UnknownError' });
  const c = err as Error & Classified;
  const type = typeof c.type === 'string' ? c.type : err.name;
  const retryable = typeof c.retryable === 'boolean' ? c.retryable : !PERMANENT.test(type);
  const retryAfterMs = typeof c.retryAfterMs === 'number' && c.retryAfterMs > 0 ? c.retryAfterMs : undefined;
  return ApplicationFailure.create({
    message: err.message,
    type,
    nonRetryable: !retryable,
    ...(retryAfterMs !== undefined ? { nextRetryDelay: retryAfterMs } : {}),
    cause: err,
  });
}

/** Runs an activity body and rethrows its failure classified. */
export async function classified<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    throw toApplicationFailure(err);
  }
}

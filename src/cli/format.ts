/** How the CLI prints counts, sizes and failures. */
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { RunCounts } from '../sync/types';

/** `changed 12 (new 3) · delivered 11 · rejected 1 · deferred 0 · unchanged 488 · gone 2` */
export function formatCounts(c: RunCounts): string {
  return (
    `changed ${c.new + c.changed} (new ${c.new}) · delivered ${c.delivered} · rejected ${c.rejected + c.invalid}` +
    ` · deferred ${c.deferred} · unchanged ${c.unchanged} · gone ${c.gone}`
  );
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** The innermost useful message of a failure chain: `AmplitudeConfigError: Amplitude /batch answered ...`. */
export function describeFailure(err: unknown): string {
  let e: unknown = err;
  if (e instanceof WorkflowFailedError) {
    if (e.cause instanceof CancelledFailure)
      return 'the run was cancelled (delivered rows are committed; the rest is sent next run)';
    e = e.cause ?? e;
  }
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  if (e instanceof ApplicationFailure) return `${e.type ?? 'Error'}: ${e.message}`;
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * Ends the process quietly once the reader of its output has gone (`ampsync runs sync | head -3`): a write to a
 * closed pipe fails with EPIPE, which node would otherwise report as an unhandled error with a stack trace.
 */
export function exitQuietlyWhenOutputCloses(stream: NodeJS.WriteStream = process.stdout): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

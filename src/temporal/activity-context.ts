/** The current activity's context, or undefined outside an activity (e.g. a step called directly in a test). */
import { Context } from '@temporalio/activity';

export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Heartbeats of one activity spaced by at least this long (see `heartbeater`). */
export const HEARTBEAT_SPACING_MS = 200;

/**
 * A heartbeat function for a loop that makes progress often (a batch every few milliseconds): it heartbeats at most
 * once per `spacingMs`, and always when forced. Each heartbeat crosses into the SDK's native core (~0.3 ms of the
 * worker's thread), while the core sends one to the server per throttle interval (seconds) whatever the count:
 * spacing them costs the server and the cancellation they carry nothing.
 */
export function heartbeater(spacingMs = HEARTBEAT_SPACING_MS): (details: unknown, force?: boolean) => void {
  const context = activityContext();
  let last = -Infinity;
  return (details, force = false) => {
    if (context === undefined) return;
    const now = performance.now();
    if (!force && now - last < spacingMs) return;
    last = now;
    context.heartbeat(details);
  };
}

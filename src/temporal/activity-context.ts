/** The current activity's context, or undefined outside an activity (e.g. a step called directly in a test). */
import { Context } from '@temporalio/activity';

export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Endpoints of the local services for tests (started by global-setup.ts). */
import { randomUUID } from 'node:crypto';
import { endpointsFor } from '../../src/dev/services';

export const services = endpointsFor();

/** A name unique to this test process, for task queues, datasets and sync ids. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomUUID().replace(/-/g, '').slice(0, 10)}`;
}

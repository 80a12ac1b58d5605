/** Jest global setup: the integration tests need the local services; start them (or reuse running ones). */
import { startServices } from '../../src/dev/services';

export default async function globalSetup(): Promise<void> {
  await startServices({ log: (line) => process.stderr.write(`[services] ${line}\n`) });
}

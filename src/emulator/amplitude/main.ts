/**
 * Runs the Amplitude emulator until SIGINT/SIGTERM:
 *   node dist/src/emulator/amplitude/main.js --port 9700 --api-key KEY [--api-key KEY2] [--no-store-events] [--seed N]
 * Prints one line with its URL to stderr.
 */
import { parseArgs } from 'node:util';
import { startAmplitudeEmulator } from './index';

/** A command-line argument is invalid; the message names it. */
export class EmulatorArgumentError extends Error {
  override readonly name = 'EmulatorArgumentError';
}

function integer(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0) {
    throw new EmulatorArgumentError(`--${name} must be a non-negative integer, got "${value}"`);
  }
  return parsed;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      'api-key': { type: 'string', multiple: true },
      'no-store-events': { type: 'boolean' },
      seed: { type: 'string' },
    },
    strict: true,
  });
  const apiKeys = values['api-key'];
  const emulator = await startAmplitudeEmulator({
    port: integer('port', values.port, 9700),
    seed: integer('seed', values.seed, 1),
    storeEvents: values['no-store-events'] !== true,
    ...(apiKeys !== undefined ? { apiKeys } : {}),
  });
  process.stderr.write(`Amplitude emulator listening on ${emulator.url}\n`);
  const stop = (): void => {
    emulator.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`Amplitude emulator failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

/**
 * The Amplitude emulator in its own process (storeEvents: false: counts and dedup keys only), so its CPU and memory
 * are not the worker's or the benchmark's; inspected and reset over its admin API.
 */
import { request } from 'undici';
import { ADMIN_PREFIX } from '../../src/emulator/amplitude';
import { freePort, startChild, stopChild, type Child, type Launcher } from './processes';

/** The API key every benchmark sync sends with. */
export const BENCH_API_KEY = 'bench-api-key-0001';

/** What the emulator ingested since its last reset. */
export interface EmulatorCounts {
  events: number;
  duplicatesDropped: number;
  requests: number;
}

/** The admin API answered something other than 200. */
export class EmulatorAdminError extends Error {
  override readonly name = 'EmulatorAdminError';
}

/** A running emulator process. */
export interface AmplitudeProcess {
  url: string;
  child: Child;
  counts(): Promise<EmulatorCounts>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `src/emulator/amplitude/main.ts --no-store-events` on a free port. */
export async function startAmplitudeProcess(launch: Launcher): Promise<AmplitudeProcess> {
  const port = await freePort();
  const { command, args } = launch('src/emulator/amplitude/main.ts', [
    '--port',
    String(port),
    '--api-key',
    BENCH_API_KEY,
    '--no-store-events',
  ]);
  const { child } = await startChild({ name: 'Amplitude emulator', command, args, ready: /listening on (\S+)/ });
  const url = `http://127.0.0.1:${port}`;
  const admin = async (method: 'GET' | 'POST', route: string): Promise<unknown> => {
    const res = await request(`${url}${ADMIN_PREFIX}${route}`, { method });
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      throw new EmulatorAdminError(`Amplitude emulator ${method} ${ADMIN_PREFIX}${route} answered ${res.statusCode}`);
    }
    return JSON.parse(text) as unknown;
  };
  return {
    url,
    child,
    async counts() {
      const state = (await admin('GET', `state?apiKey=${BENCH_API_KEY}`)) as {
        eventCount: number;
        duplicatesDropped: number;
        requestCount: number;
      };
      return { events: state.eventCount, duplicatesDropped: state.duplicatesDropped, requests: state.requestCount };
    },
    async reset() {
      await admin('POST', 'reset');
    },
    stop: () => stopChild(child),
  };
}

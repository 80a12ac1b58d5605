/** `tsx scripts/services.ts up|down|status`: the local services for the demo and the tests. */
import { endpointsFor, serviceStatus, startServices, stopServices } from '../src/dev/services';

async function main(): Promise<void> {
  const verb = process.argv[2] ?? 'up';
  const log = (line: string): void => console.error(`[services] ${line}`);
  if (verb === 'up') {
    const e = await startServices({ log });
    console.error(
      `[services] Temporal ${e.temporalAddress} (UI ${e.temporalUiUrl}), BigQuery ${e.bigqueryEndpoint}, PostgreSQL ${e.postgresUrl}`,
    );
  } else if (verb === 'down') {
    const stopped = await stopServices({ log });
    if (stopped.length === 0) log('nothing was running');
  } else if (verb === 'status') {
    const e = endpointsFor();
    for (const [name, pid] of Object.entries(serviceStatus()))
      console.log(`${name.padEnd(9)} ${pid === undefined ? 'stopped' : `running (pid ${pid})`}`);
    console.log(`Temporal UI: ${e.temporalUiUrl}`);
  } else {
    throw new Error(`unknown verb "${verb}": use up, down or status`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

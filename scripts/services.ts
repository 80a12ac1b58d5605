/** `tsx scripts/services.ts up|down|status`: the local services for the demo and the tests (same as `ampsync dev`). */
import { exitQuietlyWhenOutputCloses } from '../src/cli/format';
import { servicesCommand } from '../src/dev/services';

exitQuietlyWhenOutputCloses();

servicesCommand(
  process.argv[2] ?? 'up',
  (line) => console.log(line),
  (line) => console.error(`[services] ${line}`),
).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

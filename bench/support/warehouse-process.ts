/**
 * The stand-in warehouse's side of a warehouse diff (generated-source.ts), in a process of its own as BigQuery's
 * work runs elsewhere: generates and fingerprints every row of a model, writes the run table and the list of rows
 * that differ from the snapshot, and prints `{"rows":N,"changed":M}`.
 *
 *   node warehouse-process.js '{"model":"bench:users?rows=1000000&revision=1","runFile":"…","snapshotFile":"…"}'
 */
import { runWarehouseJob, type WarehouseJob } from './generated-source';

const [job] = process.argv.slice(2);
if (job === undefined) {
  process.stderr.write('usage: warehouse-process.js JOB_JSON\n');
  process.exitCode = 2;
} else {
  process.stdout.write(JSON.stringify(runWarehouseJob(JSON.parse(job) as WarehouseJob)));
}

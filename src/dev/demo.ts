/**
 * The main job on the embedded default: starts the local services (Temporal dev server, BigQuery emulator,
 * the Amplitude emulator), seeds the demo dataset, runs every demo sync through a real worker, then changes a
 * few rows and runs again to show that only the changes are sent.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { BigQuery } from '@google-cloud/bigquery';
import { loadSyncsFile } from '../config/load';
import type { SyncConfig } from '../config/schema';
import { AmpsyncClient } from '../client/client';
import { startAmplitudeEmulator, type AmplitudeEmulator } from '../emulator/amplitude';
import { createBigQueryClient } from '../sources/bigquery/client';
import { syncWorkflowId } from '../temporal/names';
import { createAmpsyncWorker } from '../worker/worker';
import { formatCounts } from '../cli/format';
import { changeDemoRows, seedDemoData } from './demo-data';
import { startServices } from './services';

const DEMO_FILE = path.join(__dirname, '..', '..', 'examples', 'demo', 'ampsync.yaml');
const DEMO_API_KEY = 'demo-amplitude-key-0001';
const AMPLITUDE_PORT = Number(process.env.AMPSYNC_AMPLITUDE_PORT ?? 9700);
const TASK_QUEUE = 'ampsync-demo';

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function runAll(client: AmpsyncClient, syncs: SyncConfig[], uiBase: string): Promise<void> {
  for (const sync of syncs) {
    const started = Date.now();
    const result = await client.run(sync, { trigger: 'manual' });
    const ms = Date.now() - started;
    say(`  ✔ ${sync.id.padEnd(14)} ${formatCounts(result.counts)}  (${(ms / 1000).toFixed(1)} s)`);
    say(`    ${uiBase}/namespaces/default/workflows/${encodeURIComponent(syncWorkflowId(sync.id))}/${result.runId}`);
  }
}

function summarise(emulator: AmplitudeEmulator): void {
  const someUser = emulator.events().find((e) => typeof e.user_id === 'string')?.user_id;
  say(
    `  Amplitude emulator holds ${emulator.eventCount()} events (${emulator.duplicatesDropped()} duplicates dropped)`,
  );
  if (typeof someUser === 'string') {
    const profile = emulator.user(someUser);
    say(`  e.g. user ${someUser}: ${JSON.stringify(profile?.user_properties ?? {})}`);
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  Runtime.install({ logger: new DefaultLogger('WARN') });
  say('ampsync demo: BigQuery emulator → Temporal → Amplitude emulator\n');
  say('1. starting local services (first run installs them into ~/.cache/ampsync)');
  // the BigQuery emulator afresh each time: its memory only grows with use, and the demo seeds its data anew
  const endpoints = await startServices({
    only: ['temporal', 'bigquery'],
    restart: ['bigquery'],
    log: (l) => say(`   ${l}`),
  });
  const emulator = await startAmplitudeEmulator({ port: AMPLITUDE_PORT, apiKeys: [DEMO_API_KEY] });
  say(`   amplitude emulator: ${emulator.url}`);
  process.env.AMPSYNC_DEMO_AMPLITUDE_KEY = DEMO_API_KEY;

  say('2. seeding the demo dataset into the BigQuery emulator');
  const syncsFile = loadSyncsFile(DEMO_FILE);
  const bq: BigQuery = createBigQueryClient({
    type: 'bigquery',
    project: endpoints.bigqueryProject,
    apiEndpoint: endpoints.bigqueryEndpoint,
  });
  const seeded = await seedDemoData(bq, {});
  say(`   ${JSON.stringify(seeded)}`);

  // each demo tells the whole story: a fresh state store to go with the fresh Amplitude emulator
  const stateFile = path.resolve('.ampsync', 'demo', 'state.db');
  for (const suffix of ['', '-wal', '-shm']) fs.rmSync(stateFile + suffix, { force: true });
  const state = `sqlite:${stateFile}`;
  const worker = await createAmpsyncWorker({
    taskQueue: TASK_QUEUE,
    address: endpoints.temporalAddress,
    state,
    maxThrottleWaitMs: 5_000,
  });
  const running = worker.run();
  const client = await AmpsyncClient.connect({ address: endpoints.temporalAddress, taskQueue: TASK_QUEUE });
  try {
    say('3. first run of every sync (everything is new)');
    say('   (against the local emulator syncs run read-only, diffed in the worker; against BigQuery they diff in it)');
    await runAll(client, syncsFile.syncs, endpoints.temporalUiUrl);
    summarise(emulator);

    say('4. changing a few demo rows (3 users changed, 1 added, 2 removed), then running again');
    const changed = await changeDemoRows(bq, {});
    say(`   ${JSON.stringify(changed)}`);
    const before = emulator.eventCount();
    await runAll(client, syncsFile.syncs, endpoints.temporalUiUrl);
    say(`  Amplitude received ${emulator.eventCount() - before} more events (including $identify) in the second round`);
  } finally {
    await client.close();
    await worker.shutdown();
    await running;
    await emulator.close();
  }
  say(
    `\nDone in ${((Date.now() - started) / 1000).toFixed(0)} s. Temporal UI: ${endpoints.temporalUiUrl} (search: AmpsyncSyncId = "demo-users")`,
  );
  say(`State store: ${state}. Stop the services with: npm run services:down`);
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

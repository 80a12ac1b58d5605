/** createAmpsyncWorker against the dev server: what the worker it builds registers. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SimplePlugin } from '@temporalio/plugin';
import { createAmpsyncWorker } from '../../src/worker/worker';
import { services, uniqueName } from '../support/env';

test("plugins given in workerOptions run beside ampsync's, which keeps its activities", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-worker-'));
  const extra = new SimplePlugin({ name: 'extra', activities: { ping: () => Promise.resolve('pong') } });
  const w = await createAmpsyncWorker({
    address: services.temporalAddress,
    taskQueue: uniqueName('tq'),
    state: `sqlite:${path.join(dir, 'state.db')}`,
    payloadCodec: null,
    workerOptions: { plugins: [extra] },
  });
  const running = w.run();
  try {
    expect([...w.worker.options.activities.keys()]).toEqual(
      expect.arrayContaining(['prepareRun', 'extractAndDiff', 'sendChunk', 'finishRun', 'ping']),
    );
  } finally {
    await w.shutdown();
    await running;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

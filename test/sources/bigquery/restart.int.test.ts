/**
 * Resume across an emulator restart: page 1 is read and its position saved (as the state store would, in JSON),
 * the emulator process is stopped and started again on its database file, and a NEW source with a NEW client
 * reads the saved position: it gets the very next page.
 */
import type { NativeLoader } from './native-client';

// the real client, loaded natively (see native-client.ts)
jest.mock('@google-cloud/bigquery', () =>
  jest.requireActual<NativeLoader>('./native-client').loadNatively('@google-cloud/bigquery'),
);
jest.mock('google-auth-library', () =>
  jest.requireActual<NativeLoader>('./native-client').loadNatively('google-auth-library'),
);
jest.setTimeout(180_000);

import { createSyntheticUsers, syntheticUser } from '../../../src/dev/demo-data';
import { createBigQueryClient } from '../../../src/sources/bigquery/client';
import { BigQuerySource, isExhausted } from '../../../src/sources/bigquery/source';
import type { SourcePosition } from '../../../src/sync/types';
import { PrivateEmulator } from './support';

let emulator: PrivateEmulator;

beforeAll(async () => {
  emulator = await PrivateEmulator.start({ persistent: true });
});

afterAll(async () => {
  await emulator?.dispose();
});

test('a position saved before a restart reads the same next page after it', async () => {
  const before = createBigQueryClient(emulator.source());
  await before.createDataset('restart');
  await createSyntheticUsers(before, { dataset: 'restart', table: 'users', rows: 2500 });
  const first = new BigQuerySource(emulator.source(), { client: before });
  const opened = await first.open({ sql: 'SELECT * FROM restart.users ORDER BY user_id' });
  const page1 = await first.readPage(opened.position, { pageSize: 1000 });
  expect(page1.rows[0]).toEqual(syntheticUser(1));
  const saved = JSON.stringify(page1.next);

  await emulator.stopProcess();
  await emulator.startProcess();

  const after = new BigQuerySource(emulator.source());
  let position = JSON.parse(saved) as SourcePosition;
  const ids: unknown[] = [];
  while (!isExhausted(position)) {
    const page = await after.readPage(position, { pageSize: 1000 });
    ids.push(...page.rows.map((r) => r.user_id));
    position = page.next;
  }
  expect(ids).toEqual(Array.from({ length: 1500 }, (_, i) => syntheticUser(i + 1001).user_id));
  expect(position).toMatchObject({ page: 3, rowsRead: 2500, pageToken: null });
});

/**
 * sendChunk against a real SQLite state store and a recording sender: batches in flight are bounded by their
 * number and by their payload bytes, and every row is still delivered and committed once.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  createActivities,
  MAX_BATCHES_IN_FLIGHT,
  MAX_BYTES_IN_FLIGHT,
  type BatchSender,
} from '../../activities/sync-activities';
import { packBatches, packLimitsFor } from '../../src/amplitude/batches';
import { syncSchema, type SyncConfig } from '../../src/config/schema';
import { CHUNK_BUDGET_BYTES, MIN_CHUNK_ROWS } from '../../src/state/describe';
import { SqliteStateStore } from '../../src/state/sqlite';
import type { MappedRow, RowOutcome, StagedRow } from '../../src/sync/types';
import { deliveredOutcome } from '../../src/sync/types';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-send-chunk-'));
let store: SqliteStateStore;

beforeAll(async () => {
  store = new SqliteStateStore({ file: path.join(dir, 'state.db') });
  await store.migrate();
});

afterAll(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A sender that answers every row delivered after a few milliseconds, counting the batches in flight. */
class RecordingSender implements BatchSender {
  inFlight = 0;
  maxInFlight = 0;
  /** Payload characters of the batches in flight, at the most. */
  maxBytes = 0;
  private bytes = 0;
  /** Batches of `fullRows` rows (a chunk's last batch may hold fewer) in flight at once, at the most. */
  maxFullInFlight = 0;
  private fullInFlight = 0;
  batches: number[] = [];

  constructor(private readonly fullRows = 500) {}

  async sendBatch(rows: StagedRow[]): Promise<RowOutcome[]> {
    const bytes = rows.reduce((n, r) => n + r.payload.length, 0);
    const full = rows.length === this.fullRows ? 1 : 0;
    this.inFlight += 1;
    this.fullInFlight += full;
    this.bytes += bytes;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.maxFullInFlight = Math.max(this.maxFullInFlight, this.fullInFlight);
    this.maxBytes = Math.max(this.maxBytes, this.bytes);
    this.batches.push(rows.length);
    await delay(5);
    this.inFlight -= 1;
    this.fullInFlight -= full;
    this.bytes -= bytes;
    return rows.map(deliveredOutcome);
  }
}

function usersSync(id: string): SyncConfig {
  return syncSchema.parse({
    id,
    object: 'users',
    source: { project: 'p' },
    model: { sql: 'SELECT 1' },
    key: 'user_id',
    destination: { apiKey: { env: 'AMPLITUDE_API_KEY' } },
    mappings: [{ from: 'user_id', to: 'user_id' }],
    options: { batchSize: 500 },
  });
}

/** Stages `count` rows whose payloads are ~`bytes` long, finishes extraction, and sends every chunk in one activity. */
async function sendRows(id: string, count: number, bytes: number) {
  const sync = usersSync(id);
  const runId = 'run-1';
  await store.beginRun({ syncId: id, runId, mode: 'upsert', chunkSize: sync.options.chunkSize });
  const rows: MappedRow[] = Array.from({ length: count }, (_, i) => {
    const key = `u${String(i).padStart(6, '0')}`;
    const payload = JSON.stringify({ user_id: key, user_properties: { note: 'x'.repeat(bytes) } });
    return { key, hash: `h${i}`, payload };
  });
  await store.stagePage({
    syncId: id,
    runId,
    rows,
    rejected: [],
    cursor: { jobId: 'job', pageToken: null, page: 1, rowsRead: count },
  });
  const finished = await store.finishExtract(id, runId);
  const sender = new RecordingSender();
  const activities = createActivities({
    state: store,
    sourceFor: () => {
      throw new Error('not used');
    },
    mapperFor: () => {
      throw new Error('not used');
    },
    senderFor: () => sender,
    packBatches: (s, staged) => packBatches(staged, packLimitsFor('batch', { batchSize: s.options.batchSize })),
  });
  const result = await activities.sendChunk({ sync, runId, chunk: 0, chunks: finished.chunks });
  return { sender, result, finished, payloadBytes: Buffer.byteLength(rows[0]!.payload) };
}

describe('sendChunk', () => {
  test('batches of ordinary payloads: MAX_BATCHES_IN_FLIGHT at once, every row delivered and committed', async () => {
    const { sender, result, finished } = await sendRows('narrow', 6000, 200);
    expect(finished.chunks).toBe(1);
    expect(sender.batches).toHaveLength(12);
    expect(sender.maxInFlight).toBe(MAX_BATCHES_IN_FLIGHT);
    expect(result).toMatchObject({ attempted: 6000, delivered: 6000, requests: 12 });
    expect(result.committed).toEqual([{ chunk: 0, delivered: 6000, rejected: 0, deferred: 0, pending: 0 }]);
    expect(await store.countSynced('narrow')).toBe(6000);
  });

  test('batches of large payloads: fewer at once, at most MAX_BYTES_IN_FLIGHT of them, every row delivered', async () => {
    // 500 rows of ~4 KB: ~2 MB a batch; chunks of at most CHUNK_BUDGET_BYTES of payloads
    const { sender, result, finished, payloadBytes } = await sendRows('wide', 6000, 4000);
    expect(finished.chunks).toBe(Math.ceil(6000 / Math.floor(CHUNK_BUDGET_BYTES / payloadBytes)));
    expect(finished.chunks).toBeGreaterThan(1);
    expect(sender.maxBytes).toBeLessThanOrEqual(MAX_BYTES_IN_FLIGHT);
    expect(sender.maxInFlight).toBeGreaterThan(1);
    // full batches (~2 MB) fit the budget four at a time; a chunk's smaller last batches may go alongside them
    expect(sender.maxFullInFlight).toBeGreaterThan(1);
    expect(sender.maxFullInFlight).toBeLessThanOrEqual(Math.floor(MAX_BYTES_IN_FLIGHT / (500 * payloadBytes)));
    expect(sender.maxFullInFlight).toBeLessThan(MAX_BATCHES_IN_FLIGHT);
    expect(result).toMatchObject({ attempted: 6000, delivered: 6000 });
    expect(result.committed.map((c) => c.delivered).reduce((a, b) => a + b, 0)).toBe(6000);
    expect(await store.countSynced('wide')).toBe(6000);
  });

  test('a batch larger than MAX_BYTES_IN_FLIGHT still goes, alone', async () => {
    // payloads of ~100 KB: chunks (and batches) of MIN_CHUNK_ROWS rows, ~10 MB each
    const { sender, result, finished, payloadBytes } = await sendRows('huge', 300, 100_000);
    expect(finished.chunks).toBe(300 / MIN_CHUNK_ROWS);
    expect(MIN_CHUNK_ROWS * payloadBytes).toBeGreaterThan(MAX_BYTES_IN_FLIGHT);
    expect(sender.batches).toEqual([MIN_CHUNK_ROWS, MIN_CHUNK_ROWS, MIN_CHUNK_ROWS]);
    expect(sender.maxInFlight).toBe(1);
    expect(result).toMatchObject({ attempted: 300, delivered: 300 });
  });
});

import * as fs from 'node:fs';
import { canonicalJson, hashText } from '../src/diff/canonical';
import { SqliteStateStore } from '../src/state/sqlite';
import { PostgresStateStore } from '../src/state/postgres';
import type { StateStore } from '../src/state/types';
import type { MappedRow } from '../src/sync/types';
const N = Number(process.argv[3] ?? 100000);
const kind = process.argv[2] ?? 'sqlite';
const t: Record<string, number> = {}; const cpu: Record<string, number> = {};
async function time<T>(name: string, f: () => Promise<T>): Promise<T> { const s = performance.now(); const c = process.cpuUsage(); const r = await f(); const d = process.cpuUsage(c); cpu[name] = (cpu[name] ?? 0) + (d.user + d.system) / 1000; t[name] = (t[name] ?? 0) + performance.now() - s; return r; }
function page(from: number, to: number, v: (i: number) => number): MappedRow[] {
  const out: MappedRow[] = [];
  for (let i = from; i < to; i++) { const key = `user_${String((i * 7919993 + 12345) % N).padStart(8, '0')}`; const payload = canonicalJson({ user_id: key, user_properties: { plan: 'free', ltv: i * 1.25, country: 'DE', signup_at: '2024-03-01T12:00:00.000Z', version: v(i) } }); out.push({ key, hash: hashText(payload), payload }); }
  return out;
}
(async () => {
  fs.rmSync('/tmp/ampsync-scratch/p', { recursive: true, force: true });
  const store: StateStore = kind === 'sqlite' ? new SqliteStateStore({ file: '/tmp/ampsync-scratch/p/state.db' }) : new PostgresStateStore({ connectionString: 'postgres://ampsync@127.0.0.1:55432/ampsync', schema: 'ampsync_prof' });
  await store.migrate();
  await store.resetSync('s');
  for (const [runId, v] of [['r1', () => 1], ['r2', (i: number) => (i % 100 === 0 ? 2 : 1)]] as const) {
    (globalThis as any).T = {}; await store.discardRun("s", runId);
    await store.beginRun({ syncId: 's', runId, mode: 'upsert', chunkSize: 10000 });
    for (let p = 0; p * 10000 < N; p++) {
      const rows = page(p * 10000, Math.min(N, (p + 1) * 10000), v);
      await time(runId + ' stage', () => store.stagePage({ syncId: 's', runId, rows, rejected: [], cursor: { jobId: 'j', pageToken: 'x', page: p + 1, rowsRead: 0 } }));
    }
    const f = await time(runId + ' finishExtract', () => store.finishExtract('s', runId));
    for (let c = 0; c < f.chunks; c++) {
      const rows = await time(runId + ' readChunk', () => store.readChunk('s', runId, c));
      await time(runId + ' recordOutcomes', () => store.recordOutcomes('s', runId, rows.map((r) => ({ key: r.key, status: 'delivered' as const }))));
      await time(runId + ' commitChunk', () => store.commitChunk('s', runId, c));
    }
    await time(runId + ' finishRun', () => store.finishRun('s', runId, 'succeeded', f.counts as any));
  }
  console.log(JSON.stringify((globalThis as any).T)); for (const [k, v] of Object.entries(t)) console.log(k.padEnd(24), v.toFixed(0), 'ms wall', (cpu[k] ?? 0).toFixed(0), 'ms cpu');
  console.log('rss', process.resourceUsage().maxRSS / 1024);
  await store.close();
})();

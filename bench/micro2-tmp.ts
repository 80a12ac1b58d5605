import Database from '/work/main/node_modules/better-sqlite3';
import { canonicalJson, hashText } from '../src/diff/canonical';
import { summarizePage } from '../src/state/page-plan';
import type { MappedRow } from '../src/sync/types';
const db = new Database('/tmp/ampsync-scratch/p/state.db');
db.pragma('cache_size = -65536');
db.exec('DROP TABLE IF EXISTS synced2; CREATE TABLE synced2 (sync_no INTEGER, key TEXT, hash TEXT, PRIMARY KEY (sync_no, key)) WITHOUT ROWID; INSERT INTO synced2 SELECT 7, key, hash FROM synced ORDER BY key');
db.exec('DROP TABLE IF EXISTS synced3; CREATE TABLE synced3 (sync_id TEXT, key TEXT, hash TEXT, PRIMARY KEY (sync_id, key)) WITHOUT ROWID; INSERT INTO synced3 SELECT sync_id, key, hash FROM synced ORDER BY key');
const N = 1_000_000;
const cpu: Record<string, number> = {};
const time = <T>(n: string, f: () => T): T => { const c = process.cpuUsage(); const r = f(); const d = process.cpuUsage(c); cpu[n] = (cpu[n] ?? 0) + (d.user + d.system) / 1000; return r; };
const q1 = db.prepare(`SELECT j.key, s.key IS NOT NULL FROM json_each(?) AS j LEFT JOIN synced AS s ON s.sync_id = ? AND s.key = j.key WHERE j.value IS NULL OR s.hash IS NOT j.value`).raw();
const q2 = db.prepare(`SELECT j.key, s.key IS NOT NULL FROM json_each(?) AS j LEFT JOIN synced2 AS s ON s.sync_no = ? AND s.key = j.key WHERE j.value IS NULL OR s.hash IS NOT j.value`).raw();
const q3 = db.prepare(`SELECT j.key, s.key IS NOT NULL FROM json_each(?) AS j LEFT JOIN synced3 AS s ON s.sync_id = ? AND s.key = j.key WHERE j.value IS NULL OR s.hash IS NOT j.value`).raw();
const json = (entries: ReturnType<typeof summarizePage>) => { let out = '{'; for (let i = 0; i < entries.length; i++) { const e = entries[i]!; out += `${i === 0 ? '' : ','}${JSON.stringify(e.key)}:${e.row === null ? 'null' : JSON.stringify(e.row.hash)}`; } return out + '}'; };
for (let p = 0; p < 100; p++) {
  const rows: MappedRow[] = [];
  for (let i = p * 10000; i < (p + 1) * 10000; i++) { const key = `user_${String((i * 7919993 + 12345) % N).padStart(8, '0')}`; const payload = canonicalJson({ user_id: key, user_properties: { plan: 'free', ltv: i * 1.25, country: 'DE', signup_at: '2024-03-01T12:00:00.000Z', version: i % 100 === 0 ? 2 : 1 } }); rows.push({ key, hash: hashText(payload), payload }); }
  const entries = summarizePage(rows, []);
  const j = json(entries);
  const sorted = json([...entries].sort((a, b) => (a.key < b.key ? -1 : 1)));
  time('text sync_id (random-order insert)', () => q1.all(j, 's'));
  time('int sync_no', () => q2.all(j, 7));
  time('text sync_id packed', () => q3.all(j, 's'));
  time('text packed sorted probes', () => q3.all(sorted, 's'));
}
console.log(cpu);

import Database from '/work/main/node_modules/better-sqlite3';
import { canonicalJson, hashText } from '../src/diff/canonical';
import { planPage, summarizePage } from '../src/state/page-plan';
import type { MappedRow } from '../src/sync/types';
const db = new Database('/tmp/ampsync-scratch/p/state.db');
db.pragma('cache_size = -16384');
const N = 1_000_000;
const cpu: Record<string, number> = {};
const time = <T>(n: string, f: () => T): T => { const c = process.cpuUsage(); const r = f(); const d = process.cpuUsage(c); cpu[n] = (cpu[n] ?? 0) + (d.user + d.system) / 1000; return r; };
const q = `SELECT j.key, s.key IS NOT NULL FROM json_each(?) AS j LEFT JOIN synced AS s ON s.sync_id = ? AND s.key = j.key WHERE j.value IS NULL OR s.hash IS NOT j.value`;
console.log(db.prepare('EXPLAIN QUERY PLAN ' + q).all('{}', 's'));
const diff = db.prepare(q).raw();
db.exec('CREATE TEMP TABLE t (run_no INTEGER, page INTEGER, key TEXT, seen INTEGER, valid INTEGER, was_synced INTEGER, staged INTEGER, PRIMARY KEY (run_no, page, key)) WITHOUT ROWID');
const insU = db.prepare('INSERT INTO t SELECT 1, ?, value, 1, 1, 1, 0 FROM json_each(?)');
for (let p = 0; p < 100; p++) {
  const rows: MappedRow[] = [];
  for (let i = p * 10000; i < (p + 1) * 10000; i++) { const key = `user_${String((i * 7919993 + 12345) % N).padStart(8, '0')}`; const payload = canonicalJson({ user_id: key, user_properties: { plan: 'free', ltv: i * 1.25, country: 'DE', signup_at: '2024-03-01T12:00:00.000Z', version: i % 100 === 0 ? 2 : 1 } }); rows.push({ key, hash: hashText(payload), payload }); }
  const entries = time('summarize', () => summarizePage(rows, []));
  const json = time('json', () => { let out = '{'; for (let i = 0; i < entries.length; i++) { const e = entries[i]!; out += `${i === 0 ? '' : ','}${JSON.stringify(e.key)}:${e.row === null ? 'null' : JSON.stringify(e.row.hash)}`; } return out + '}'; });
  const m = time('differing', () => { const m = new Map<string, boolean>(); for (const [k, d] of diff.iterate(json, 's') as Iterable<[string, number]>) m.set(k, d === 1); return m; });
  const plan = time('plan', () => planPage(entries, m, 'upsert', 0));
  time('insert unchanged', () => db.transaction(() => insU.run(p, JSON.stringify(plan.keys.filter((k) => k.pos === null).map((k) => k.key))))());
}
console.log(cpu);

import Database from '/work/main/node_modules/better-sqlite3';
const db = new Database('/tmp/ampsync-scratch/p/state.db');
for (const q of [
 `SELECT @runNo, @page, j.key, 1, 1, s.key IS NOT NULL, s.key IS NULL OR (@upsert AND s.hash IS NOT j.value) FROM (SELECT key, value FROM json_each(@keys) ORDER BY key) AS j LEFT JOIN synced AS s ON s.sync_id = @syncId AND s.key = j.key`,
 'SELECT key, was_synced FROM run_seen WHERE run_no = 1 AND page = 2 AND staged = 1',
 'SELECT sum(seen) AS n FROM run_seen WHERE run_no = 3 GROUP BY key',
]) console.log(db.prepare('EXPLAIN QUERY PLAN ' + q).all({runNo:1,page:1,upsert:1,keys:'{}',syncId:'s'}).map((r: any) => r.detail));

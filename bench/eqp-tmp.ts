import Database from '/work/main/node_modules/better-sqlite3';
const db = new Database('/tmp/ampsync-scratch/p/state.db');
for (const q of [
 `WITH j AS MATERIALIZED (SELECT key, value FROM json_each(@keys) ORDER BY key) SELECT @runNo, @page, j.key, 1, 1, s.key IS NOT NULL, s.key IS NULL OR (@upsert AND s.hash IS NOT j.value) FROM j LEFT JOIN synced AS s ON s.sync_id = @syncId AND s.key = j.key`,
]) console.log(db.prepare('EXPLAIN QUERY PLAN ' + q).all({runNo:1,page:1,upsert:1,keys:'{}',syncId:'s'}).map((r: any) => r.detail));

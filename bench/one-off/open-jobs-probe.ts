/**
 * One-off measurement (not part of `npm run bench`): the membership write's open-jobs probe
 * (`openJobProbe`, src/propagation/queue.ts) on PostgreSQL as done jobs pile up with the statistics
 * of the data set's load (as in bench scenario 2), then after a fresh ANALYZE: which index it
 * probes, its heap fetches and buffers, and its time. `FORM=column` runs the probe on the plain
 * `org_id` column (the form before migration 024) for comparison.
 *
 *   node --import tsx bench/one-off/open-jobs-probe.ts
 *
 * PostgreSQL: LOCKSTEP_BENCH_PG or the default URL; a fresh schema, dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import { loadDataset, openStore } from '../lib/lockstep.ts';
import { ORG, propagationDataset, user } from '../lib/model.ts';
import { enqueueJob } from '../../src/propagation/queue.ts';

const store = await openStore('postgres', process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test');
try {
  const db = store.db;
  await loadDataset(db, propagationDataset(2000));
  const on = process.env.FORM === 'column' ? 'org_id' : "(org_id || '')";
  const q = `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT (SELECT 1 FROM jobs WHERE ${on} = '${ORG}' AND state <> 'done' LIMIT 1) AS open_jobs`;
  type Node = { 'Index Name'?: string; 'Heap Fetches'?: number; Plans?: Node[] };
  const find = (n: Node): Node | undefined => (n['Index Name'] ? n : (n.Plans ?? []).map(find).find(Boolean));
  const show = async (label: string) => {
    const r = await db.get<{ 'QUERY PLAN': [{ Plan: Node & { 'Shared Hit Blocks'?: number }; 'Execution Time': number }] }>(q);
    const p = r!['QUERY PLAN'][0];
    const ix = find(p.Plan);
    console.log(label, JSON.stringify({ index: ix?.['Index Name'] ?? 'none', heapFetches: ix?.['Heap Fetches'] ?? 0, buffers: p.Plan['Shared Hit Blocks'], ms: p['Execution Time'] }));
  };
  let total = 0;
  for (const n of [1000, 4000, 15000]) {
    await db.transaction(async (tx) => {
      for (let i = 0; i < n; i++) {
        await enqueueJob(tx, { org: ORG, scope: `subject:${user((total + i) % 2000)}x${total + i}`, direction: 'grant', priority: 1, revision: 1, now: Date.now(), newId: () => randomBytes(8).toString('hex') });
      }
    });
    await db.run("UPDATE jobs SET state = 'done', finished_at = 1 WHERE state = 'pending'");
    total += n;
    await show(`done=${total} open=0 load's statistics:`);
    await show(`done=${total} open=0 load's statistics (again):`);
  }
  await db.run('ANALYZE jobs');
  await show(`done=${total} open=0 fresh statistics:`);
} finally {
  await store.close();
}

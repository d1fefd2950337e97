/**
 * One-off measurement behind the backfill's batch shape (issue 13; not part of `npm run bench`).
 * The reconciler already inserts set-based — one `INSERT … SELECT` of the derivation per batch, the
 * checkpoint in the batch's transaction (src/propagation/reconcile.ts) — so this measures what is
 * left to choose, per engine, on a fresh database each time:
 *
 *   batches   a `group:` backfill of members × assignments through the ordinary worker, for rows
 *             per batch (`maxBatchRows`: 10k, the default, 50k, 100k) and, on PostgreSQL, with the
 *             read-model diff triggers disabled (their cost when no organization has an event stream)
 *   statement one 50k-row batch's INSERT on PostgreSQL (rolled back, repeated): as written
 *             (`ON CONFLICT DO NOTHING`), input ordered by the primary key, an anti-join instead of
 *             the conflict clause (safe under the organization lock: nobody else inserts), plain
 *             (no conflict handling: the lower bound), without the secondary index, work_mem 64 MB,
 *             the key columns in the "C" collation (byte comparisons; the server's default here is
 *             C.UTF-8, which PostgreSQL 15 compares through libc)
 *
 *   node --import tsx bench/one-off/backfill-options.ts [members] [assignments] [pgUrl]
 *   env: REPS (default 1), ENGINES (sqlite,postgres), PARTS (batches,statement)
 */
import { createWorker } from '../../src/propagation/worker.ts';
import { sql, type SqlFragment } from '../../src/storage/database.ts';
import { desired, ROW_COLUMNS } from '../../src/derivation/rule.ts';
import { parseScope, scopeFilter } from '../../src/propagation/scope.ts';
import { loadDataset, openStore, type Engine } from '../lib/lockstep.ts';
import { largeDataset, ORG, user } from '../lib/model.ts';

const members = Number(process.argv[2] ?? 300);
const assignments = Number(process.argv[3] ?? 1000);
const pgUrl = process.argv[4] ?? 'postgres://postgres@127.0.0.1:5432/test';
const reps = Number(process.env.REPS ?? 1);
const engines = (process.env.ENGINES ?? 'sqlite,postgres').split(',') as Engine[];
const parts = (process.env.PARTS ?? 'batches,statement').split(',');
const rows = members * assignments;
const out = (...cells: unknown[]) => process.stdout.write(cells.join('\t') + '\n');

const variants: Array<{ name: string; maxBatchRows: number; noTriggers?: boolean }> = [
  { name: '10k rows/batch (default)', maxBatchRows: 10_000 },
  { name: '50k rows/batch', maxBatchRows: 50_000 },
  { name: '100k rows/batch', maxBatchRows: 100_000 },
  { name: '10k, diff triggers off', maxBatchRows: 10_000, noTriggers: true },
];
if (parts.includes('batches')) {
  for (let rep = 0; rep < reps; rep++) {
    for (const engine of engines) {
      for (const v of variants) {
        if (v.noTriggers && engine !== 'postgres') continue;
        const store = await openStore(engine, pgUrl, { poolMax: 4 });
        try {
          await loadDataset(store.db, largeDataset(members, assignments), { reconcile: false });
          if (v.noTriggers) await store.db.run('ALTER TABLE effective_assignments DISABLE TRIGGER USER');
          const t0 = performance.now();
          let batches = 0;
          await createWorker({ db: store.db, batchSize: 1000, maxBatchRows: v.maxBatchRows, onEvent: (e) => void (e.type === 'batch' && batches++) }).drain();
          const s = (performance.now() - t0) / 1000;
          const n = await store.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM effective_assignments');
          if (Number(n!.n) !== rows) throw new Error(`expected ${rows} rows, found ${n!.n}`);
          out(engine, v.name, `${batches} batches`, `${s.toFixed(2)} s`, `${Math.round(rows / s).toLocaleString('en')} rows/s`);
        } finally {
          await store.close();
        }
      }
    }
  }
}

if (parts.includes('statement') && engines.includes('postgres')) {
  const store = await openStore('postgres', pgUrl, { poolMax: 2 });
  try {
    await loadDataset(store.db, largeDataset(members, assignments), { reconcile: false });
    const scope = parseScope('group:everyone');
    const batch = Math.max(1, Math.floor(50_000 / assignments));
    // A third of the subjects already reconciled: an index to insert into, as mid-backfill.
    const done = Math.floor(members / 3);
    await store.db.run(sql`INSERT INTO effective_assignments (${ROW_COLUMNS}) ${desired(sql`d.org_id = ${ORG} AND d.subject_id <= ${user(done - 1)} AND ${scopeFilter(scope, 'd')}`)} ON CONFLICT DO NOTHING`);
    await store.db.run('VACUUM ANALYZE effective_assignments');
    const sel = desired(sql`d.org_id = ${ORG} AND d.subject_id >= ${user(done)} AND d.subject_id <= ${user(done + batch - 1)} AND ${scopeFilter(scope, 'd')}`);
    const ins = sql`INSERT INTO effective_assignments (${ROW_COLUMNS})`;
    const absent = sql`NOT EXISTS (SELECT 1 FROM effective_assignments e WHERE e.org_id = x.org_id AND e.subject_id = x.subject_id AND e.resource = x.resource AND e.assignment_id = x.assignment_id)`;
    const shapes: Array<[string, SqlFragment, string?]> = [
      ['as written (ON CONFLICT DO NOTHING)', sql`${ins} ${sel} ON CONFLICT DO NOTHING`],
      ['ordered by the primary key', sql`${ins} ${sel} ORDER BY 1, 2, 5, 3 ON CONFLICT DO NOTHING`],
      ['anti-join, no conflict clause', sql`${ins} SELECT * FROM (${sel}) x WHERE ${absent}`],
      ['anti-join, ordered', sql`${ins} SELECT * FROM (${sel}) x WHERE ${absent} ORDER BY 1, 2, 5, 3`],
      ['plain (lower bound, not safe)', sql`${ins} ${sel}`],
      ['without effective_by_group', sql`${ins} ${sel} ON CONFLICT DO NOTHING`, 'DROP INDEX effective_by_group'],
      ["work_mem '64MB'", sql`${ins} ${sel} ON CONFLICT DO NOTHING`, "SET LOCAL work_mem = '64MB'"],
      ['key columns COLLATE "C"', sql`${ins} ${sel} ON CONFLICT DO NOTHING`, 'ALTER TABLE effective_assignments ' + ['org_id', 'subject_id', 'resource', 'assignment_id', 'group_id'].map((c) => `ALTER COLUMN ${c} TYPE TEXT COLLATE "C"`).join(', ')],
    ];
    for (let rep = 0; rep < Math.max(2, reps); rep++) {
      for (const [name, q, pre] of shapes) {
        await store.db
          .transaction(async (tx) => {
            if (pre) await tx.run(pre);
            const t = performance.now();
            const n = await tx.run(q);
            const ms = performance.now() - t;
            out('postgres statement', name, `${n} rows`, `${ms.toFixed(0)} ms`, `${Math.round(n / (ms / 1000)).toLocaleString('en')} rows/s`);
            throw new Error('rollback');
          })
          .catch((e: Error) => {
            if (e.message !== 'rollback') throw e;
          });
      }
    }
  } finally {
    await store.close();
  }
}

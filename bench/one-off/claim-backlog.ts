/**
 * One-off measurement (not part of `npm run bench`): how fast one worker drains a backlog of
 * single-subject jobs (test/propagation/claim-backlog.test.ts counts the claim's rows). Scenario 2's
 * data set (SUBJECTS subjects, default 2,000), every subject made a member of `team` in the source
 * tables, one pending `subject:` job each (BACKLOG, default all of them), statistics taken before the
 * backlog (as the benchmark's load does); then `worker.drain()` on PostgreSQL. Prints the drain
 * time, jobs/s, and the claims' count and time at the Database seam.
 *
 *   SUBJECTS=2000 BACKLOG=2000 node --import tsx bench/one-off/claim-backlog.ts
 */
import { randomBytes } from 'node:crypto';
import * as L from '../lib/lockstep.ts';
import * as M from '../lib/model.ts';
import { enqueueJob } from '../../src/propagation/queue.ts';
import { createWorker } from '../../src/propagation/worker.ts';
import type { Database, Sql, Statement } from '../../src/storage/database.ts';
import { compileStatement } from '../../src/storage/sql.ts';

const url = process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const N = Number(process.env.SUBJECTS ?? 2000);
const BACKLOG = Number(process.env.BACKLOG ?? N);
const store = await L.openStore('postgres', url);
try {
  await L.loadDataset(store.db, M.propagationDataset(N));
  const db = store.db;
  await db.transaction(async (tx) => {
    for (let i = 0; i < BACKLOG; i += 500) {
      const ids = Array.from({ length: Math.min(500, BACKLOG - i) }, (_, k) => M.user(i + k));
      await tx.run(`INSERT INTO memberships (org_id, group_id, subject_id) SELECT $1, 'team', s FROM unnest($2::text[]) s`, [M.ORG, ids]);
    }
    const rev = Number((await tx.get<{ revision: number }>('SELECT revision FROM organizations WHERE id = $1', [M.ORG]))!.revision);
    for (let i = 0; i < BACKLOG; i++) await enqueueJob(tx, { org: M.ORG, scope: `subject:${M.user(i)}`, direction: 'grant', priority: 1, revision: rev, now: Date.now(), newId: () => randomBytes(8).toString('hex') });
  });
  // The claims' time at the seam: the SELECT of each claim transaction.
  const claims = { n: 0, ms: 0, max: 0 };
  const seam: Database = {
    ...db,
    transaction: (fn) =>
      db.transaction((tx) =>
        fn({
          ...tx,
          all: async (s: Statement, p?: readonly unknown[]) => {
            const text = compileStatement(s as never, p).text;
            if (!text.startsWith('SELECT j.id FROM jobs j')) return tx.all(s, p);
            const t = performance.now();
            try {
              return await tx.all(s, p);
            } finally {
              const d = performance.now() - t;
              claims.n++;
              claims.ms += d;
              claims.max = Math.max(claims.max, d);
            }
          },
        } as Sql),
      ),
  };
  const t0 = performance.now();
  const rounds = await createWorker({ db: seam, batchSize: 100 }).drain();
  const s = (performance.now() - t0) / 1000;
  const left = await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM jobs WHERE state <> 'done'");
  console.log(JSON.stringify({ backlog: BACKLOG, drainS: +s.toFixed(2), jobsPerS: Math.round(BACKLOG / s), rounds, claims: claims.n, claimMs: Math.round(claims.ms), claimMaxMs: +claims.max.toFixed(1), left: Number(left!.n) }));
} finally {
  await store.close();
}

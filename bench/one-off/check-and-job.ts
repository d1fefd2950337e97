/**
 * One-off measurement (not part of `npm run bench`): the two figures the issue-9 regression was
 * quoted in, for the tree at ROOT (default: this one), so that two checkouts — say, this one and a
 * scratch worktree of an older commit — can be run in turn, in the same time window:
 *
 *   check  an in-process `minimize_latency` check, verification `always` (a member of `small`,
 *          viewer on the workspace, reading a project), sequential; min and median of N
 *   job    one single-subject reconciliation job (a member of `small` added, then removed, with every
 *          change left to a job), timed around `worker.drain()`; min and median of 2 × J
 *
 * on the core data set of scenarios 1 and 4 (quick sizes: `big` 1,000, `standing` 300).
 *
 *   node --import tsx bench/one-off/check-and-job.ts [ROOT] [N=3000] [J=100] [sqlite|postgres]
 *
 * It uses only what both old and new trees have: bench/lib (openStore, loadDataset, lockstepSystem,
 * the model) and src/propagation/worker.ts (createWorker). PostgreSQL: LOCKSTEP_BENCH_PG or the
 * default URL; a fresh schema, dropped afterwards.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = resolve(process.argv[2] ?? new URL('../..', import.meta.url).pathname);
const N = Number(process.argv[3] ?? 3000);
const J = Number(process.argv[4] ?? 100);
const engine = process.argv[5] ?? 'sqlite';
const load = (p: string) => import(pathToFileURL(`${root}/${p}`).href);

async function main() {
  const L = await load('bench/lib/lockstep.ts');
  const M = await load('bench/lib/model.ts');
  const W = await load('src/propagation/worker.ts');
  const store = await L.openStore(engine, process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test');
  try {
    await L.loadDataset(store.db, M.coreDataset(1000, 300));
    const sys = L.lockstepSystem(store, 'async+verify');
    await sys.worker.stop();
    const us = () => Number(process.hrtime.bigint()) / 1000;
    const checks: number[] = [];
    for (let i = 0; i < N + 500; i++) {
      const t0 = us();
      const r = await sys.ls.check(M.ORG, { subject: M.user(10), permission: 'project.read', resource: M.project(i % 1000), consistency: { mode: 'minimize_latency' } });
      const t1 = us();
      if (!r.allowed) throw new Error('the check denied');
      if (i >= 500) checks.push(t1 - t0);
    }
    const worker = W.createWorker({ db: store.db, batchSize: 100, verify: 'always' });
    const jobs: number[] = [];
    for (let i = 0; i < J + 20; i++) {
      const s = M.user(i % 10);
      for (const write of [() => sys.ls.addMember(M.ORG, 'small', s), () => sys.ls.removeMember(M.ORG, 'small', s)]) {
        await write();
        const t0 = us();
        const n = await worker.drain();
        const t1 = us();
        if (n !== 1) throw new Error(`expected one job, ran ${n}`);
        if (i >= 20) jobs.push(t1 - t0);
      }
    }
    const stat = (a: number[]) => {
      const s = [...a].sort((x, y) => x - y);
      return { min: Math.round(s[0]!), p50: Math.round(s[Math.floor(s.length / 2)]!) };
    };
    const c = stat(checks);
    const j = stat(jobs);
    console.log(JSON.stringify({ root, engine, checkMinUs: c.min, checkP50Us: c.p50, jobMinUs: j.min, jobP50Us: j.p50 }));
  } finally {
    await store.close();
  }
}

await main();

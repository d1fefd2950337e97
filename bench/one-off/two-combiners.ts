/**
 * One-off measurement (not part of `npm run bench`): what several group-commit combiners of ONE
 * organization — several `serve` processes, here several Lockstep instances on pools of their own
 * in one process — do to each other on PostgreSQL (docs/adr/0025-*). N instances × C closed-loop
 * clients each, every client toggling the `team` membership of subjects of its own (scenario 2's
 * data set, sync policy) for SECONDS. Prints changes/s and write p50, and what `pg_stat_activity`
 * showed of the instances' connections, sampled every 2 ms: the share of samples waiting for a lock
 * (`Lock:transactionid` / `Lock:tuple` is the organization's row, `Lock:advisory` a subject's or the
 * organization's advisory lock), active, or idle in a transaction (waiting for Node).
 *
 *   INSTANCES=2 CLIENTS=8 SECONDS=3 node --import tsx bench/one-off/two-combiners.ts
 */
import pg from 'pg';
import { createLockstep } from '../../src/app.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import { openPostgres } from '../../src/storage/postgres-engine.ts';
import * as L from '../lib/lockstep.ts';
import * as M from '../lib/model.ts';

const url = process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const instances = Number(process.env.INSTANCES ?? 2);
const clients = Number(process.env.CLIENTS ?? 8);
const seconds = Number(process.env.SECONDS ?? 3);
const store = await L.openStore('postgres', url);
try {
  await L.loadDataset(store.db, M.propagationDataset(400));
  const dbs = Array.from({ length: instances }, (_, i) => openPostgres(`${url}${url.includes('?') ? '&' : '?'}application_name=two-combiners-${i}`, { schema: store.target.schema!, max: 6 }));
  const lss = dbs.map((db) => createLockstep(db, { defaultPolicy: SYNC_POLICY }));
  const mon = new pg.Client({ connectionString: url });
  await mon.connect();
  const samples = new Map<string, number>();
  let total = 0;
  let stop = false;
  const sampler = (async () => {
    while (!stop) {
      const r = await mon.query(`SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE application_name LIKE 'two-combiners-%' AND state <> 'idle'`);
      for (const row of r.rows) {
        const k = row.state === 'active' ? (row.wait_event_type === 'Lock' ? `waiting Lock:${row.wait_event}` : 'active') : row.state;
        samples.set(k, (samples.get(k) ?? 0) + 1);
        total++;
      }
      await new Promise((res) => setTimeout(res, 2));
    }
  })();
  const lat: number[] = [];
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  // Client k of instance i owns subjects k*instances + i (mod 400), stepping by instances*clients.
  const loops = lss.flatMap((ls, i) =>
    Array.from({ length: clients }, async (_, k) => {
      const mine = Array.from({ length: 400 }, (_, s) => s).filter((s) => s % (instances * clients) === k * instances + i);
      const member = new Map<number, boolean>();
      for (let n = 0; performance.now() < deadline; n++) {
        const s = mine[n % mine.length]!;
        const t = performance.now();
        await (member.get(s) ? ls.removeMember(M.ORG, 'team', M.user(s)) : ls.addMember(M.ORG, 'team', M.user(s)));
        member.set(s, !member.get(s));
        lat.push(performance.now() - t);
      }
    }),
  );
  await Promise.all(loops);
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await sampler;
  lat.sort((a, b) => a - b);
  console.log(`${instances} instances × ${clients} clients: ${Math.round(lat.length / elapsed)} changes/s, write p50 ${lat[lat.length >> 1]!.toFixed(1)} ms, p99 ${lat[Math.floor(lat.length * 0.99)]!.toFixed(1)} ms`);
  for (const [k, v] of [...samples].sort((a, b) => b[1] - a[1])) console.log(`  ${((100 * v) / total).toFixed(1)} % ${k}`);
  await mon.end();
  await Promise.all(dbs.map((db) => db.close()));
} finally {
  await store.close();
}

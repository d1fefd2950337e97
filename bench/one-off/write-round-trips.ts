/**
 * One-off measurement (not part of `npm run bench`): what a sync membership change costs in
 * statements and time against the engine's floor (bench/lib/lockstep.ts `floorSystem`), for the
 * tree at ROOT (default: this one), so that two checkouts can be run in turn in one time window.
 *
 *   statements  per add / remove, counted at the Database seam inside the write's transaction
 *               (plus BEGIN and COMMIT: each is one round trip to PostgreSQL)
 *   latency     add and remove p50 / p99, interleaved pair by pair with the floor's, and the
 *               p50 as a multiple of the floor's
 *
 * on the core data set of scenario 1 (quick sizes: `big` 1,000, `standing` 300), group `small`
 * (3 assignments), subject user(0) for Lockstep and user(1) for the floor (its own organization).
 *
 *   node --import tsx bench/one-off/write-round-trips.ts [ROOT] [N=400] [sqlite|postgres]
 *
 * PostgreSQL: LOCKSTEP_BENCH_PG or the default URL; a fresh schema, dropped afterwards.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = resolve(process.argv[2] ?? new URL('../..', import.meta.url).pathname);
const N = Number(process.argv[3] ?? 400);
const engine = process.argv[4] ?? 'postgres';
const load = (p: string) => import(pathToFileURL(`${root}/${p}`).href);

type Sql = { all: Function; get: Function; run: Function };

async function main() {
  const L = await load('bench/lib/lockstep.ts');
  const M = await load('bench/lib/model.ts');
  const store = await L.openStore(engine, process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test');
  try {
    await L.loadDataset(store.db, M.coreDataset(1000, 300));
    // Count statements inside transactions at the seam (every call is one round trip on PostgreSQL).
    let statements = 0;
    // Time of each statement of a write by its position (LOCKSTEP_TRACE=1 prints the medians).
    const byPosition = new Map<string, number[]>();
    let label = '';
    const timed = (f: Function) => async (...a: unknown[]) => {
      const key = `${label} #${++statements}`;
      const t = performance.now();
      try {
        return await f(...a);
      } finally {
        if (!byPosition.has(key)) byPosition.set(key, []);
        byPosition.get(key)!.push(performance.now() - t);
      }
    };
    const counting = (tx: Sql): Sql => ({ ...tx, all: timed(tx.all), get: timed(tx.get), run: timed(tx.run) });
    const db = store.db;
    // Time inside the transaction's function (from after BEGIN to before COMMIT), by write.
    const inside = new Map<string, number[]>();
    const counted = {
      ...db,
      transaction: (fn: (tx: Sql) => Promise<unknown>) =>
        db.transaction(async (tx: Sql) => {
          const t = performance.now();
          try {
            return await fn(counting(tx));
          } finally {
            if (!inside.has(label)) inside.set(label, []);
            inside.get(label)!.push(performance.now() - t);
          }
        }),
    };
    const floor = await L.floorSystem(store, [M.user(1)]);
    const sys = L.lockstepSystem({ ...store, db: counted }, 'sync');
    const lat = { add: [] as number[], remove: [] as number[], floorAdd: [] as number[], floorRemove: [] as number[] };
    const stmts = { add: 0, remove: 0 };
    const ms = () => performance.now();
    for (let i = -20; i < N; i++) {
      let t = ms();
      await floor.addMember('small', M.user(1));
      const fa = ms() - t;
      t = ms();
      await floor.removeMember('small', M.user(1));
      const fr = ms() - t;
      statements = 0;
      label = 'add';
      t = ms();
      const a = await sys.addMember('small', M.user(0));
      const la = ms() - t;
      const sa = statements;
      statements = 0;
      label = 'remove';
      t = ms();
      const b = await sys.removeMember('small', M.user(0));
      const lr = ms() - t;
      const sr = statements;
      if (a.mode !== 'sync' || b.mode !== 'sync') throw new Error('expected sync writes');
      if (i < 0) continue;
      lat.floorAdd.push(fa);
      lat.floorRemove.push(fr);
      lat.add.push(la);
      lat.remove.push(lr);
      stmts.add = sa;
      stmts.remove = sr;
    }
    const q = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))]!;
    const r2 = (x: number) => Math.round(x * 100) / 100;
    console.log(
      JSON.stringify({
        root,
        engine,
        n: N,
        statementsInTx: stmts,
        addP50: r2(q(lat.add, 0.5)),
        addP99: r2(q(lat.add, 0.99)),
        removeP50: r2(q(lat.remove, 0.5)),
        removeP99: r2(q(lat.remove, 0.99)),
        floorAddP50: r2(q(lat.floorAdd, 0.5)),
        floorRemoveP50: r2(q(lat.floorRemove, 0.5)),
        addPerFloor: r2(q(lat.add, 0.5) / q(lat.floorAdd, 0.5)),
        removePerFloor: r2(q(lat.remove, 0.5) / q(lat.floorRemove, 0.5)),
      }),
    );
    if (process.env.LOCKSTEP_TRACE) {
      for (const [k, v] of byPosition) console.log(k, r2(q(v, 0.5)), 'ms p50');
      for (const [k, v] of inside) console.log(k, 'inside the transaction', r2(q(v, 0.5)), 'ms p50');
    }
    await sys.close();
  } finally {
    await store.close();
  }
}

await main();

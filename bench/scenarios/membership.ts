/**
 * Scenario 1 — membership change latency: add and remove of a subject to a group carrying 3 and
 * `big` assignments, for a subject that already holds a standing set (memberships in three groups
 * with `standing` assignments). All systems interleaved, pair by pair, so they see the same machine.
 * Beside them, each engine's floor (lib/lockstep.ts `floorSystem`): one membership row and one
 * change-log row per transaction on the same pool, the reference the "/ floor" ratios divide by.
 */
import { coreDataset, user } from '../lib/model.ts';
import type { Ctx } from '../lib/context.ts';
import { floorSystem, LOCKSTEP_CONFIGS, lockstepSystem, loadDataset, naiveSystem, openStore, type Engine, type Store } from '../lib/lockstep.ts';
import { startCasbin, startSpiceDB, CASBIN_VARIANTS } from '../lib/peers.ts';
import { notRun, type System } from '../lib/system.ts';
import { cdf, round, sleep, spread, summarize } from '../stats.ts';

export interface MembershipRow {
  system: string;
  engine: string;
  group: string;
  assignments: number;
  notRun?: string;
  add?: { p50: ReturnType<typeof spread>; p99: ReturnType<typeof spread>; max: ReturnType<typeof spread>; n: number; modes: Record<string, number> };
  remove?: MembershipRow['add'];
  /** CDF points of all runs' samples (ms) */
  cdf?: { add: Array<[number, number]>; remove: Array<[number, number]> };
}

interface Sut {
  system: string;
  engine: string;
  sys: System;
  subject: string;
}

/**
 * Waits (untimed, at most 200 ms) until no job is open on any store: the async configurations'
 * in-process workers share the event loop (SQLite's even block it), and the floor is the
 * reference — measured quiet, not behind their fan-out.
 */
async function settle(stores: Store[]): Promise<void> {
  const t0 = performance.now();
  while (performance.now() - t0 < 200) {
    let open = 0;
    for (const st of stores) open += Number((await st.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM jobs WHERE state IN ('pending', 'running')"))?.n ?? 0);
    if (open === 0) return;
    await sleep(1);
  }
}

export async function membership(ctx: Ctx): Promise<MembershipRow[]> {
  const { size } = ctx;
  const ds = coreDataset(size.big, size.standing);
  const suts: Sut[] = [];
  const failed: MembershipRow[] = [];
  const stores: Store[] = [];
  const groups = [
    ['small', 3],
    ['big', size.big],
  ] as const;
  const fail = (system: string, engine: string, e: unknown) => {
    for (const [g, a] of groups) failed.push({ system, engine, group: g, assignments: a, ...notRun(e) });
  };

  for (const engine of ['sqlite', 'postgres'] as Engine[]) {
    const names = [...LOCKSTEP_CONFIGS.map((c) => `lockstep ${c}`), 'naive rewrite', 'floor'];
    if (!ctx.engines.includes(engine)) {
      for (const n of names) fail(n, engine, 'engine not selected (--engines)');
      continue;
    }
    if (engine === 'postgres' && ctx.pgDown) {
      for (const n of names) fail(n, engine, ctx.pgDown);
      continue;
    }
    try {
      ctx.log(`membership: loading ${engine}`);
      const store = await openStore(engine, ctx.pg);
      stores.push(store);
      await loadDataset(store.db, ds);
      // The engine's floor, interleaved with the others on the same pool (its own organization).
      // First of the engine: after, an async configuration's in-process worker would still be
      // applying its fan-out and the floor would queue behind it (SQLite serializes transactions).
      suts.push({ system: 'floor', engine, sys: await floorSystem(store, [user(0)]), subject: user(0) });
      LOCKSTEP_CONFIGS.forEach((c, i) => suts.push({ system: `lockstep ${c}`, engine, sys: lockstepSystem(store, c), subject: user([0, 2, 3][i]!) }));
      suts.push({ system: 'naive rewrite', engine, sys: naiveSystem(store), subject: user(1) });
    } catch (e) {
      for (const n of names) fail(n, engine, e);
    }
  }
  try {
    suts.push({ system: 'spicedb (write)', engine: 'memdb', sys: await startSpiceDB(ds, 'fully_consistent'), subject: user(4) });
  } catch (e) {
    fail('spicedb (write)', 'memdb', e);
  }
  for (const v of CASBIN_VARIANTS) {
    try {
      suts.push({ system: `casbin ${v}`, engine: 'memory', sys: await startCasbin(ds, v), subject: user(5) });
    } catch (e) {
      fail(`casbin ${v}`, 'memory', e);
    }
  }

  const rows: MembershipRow[] = [];
  try {
    for (const [group, assignments] of groups) {
      const pairs = group === 'small' ? size.pairsSmall : size.pairsBig;
      const per = new Map<Sut, { add: number[][]; remove: number[][]; modes: Record<string, number>; err?: unknown }>();
      for (const s of suts) per.set(s, { add: [], remove: [], modes: {} });
      for (let rep = 0; rep < size.reps; rep++) {
        ctx.log(`membership: group with ${assignments} assignments, run ${rep + 1}/${size.reps}`);
        for (const s of suts) {
          per.get(s)!.add.push([]);
          per.get(s)!.remove.push([]);
        }
        const warm = Math.min(3, Math.ceil(pairs / 10));
        for (let i = -warm; i < pairs; i++) {
          for (const s of suts) {
            const r = per.get(s)!;
            if (r.err) continue;
            try {
              if (s.system === 'floor') await settle(stores);
              let t = performance.now();
              const a = await s.sys.addMember(group, s.subject);
              const addMs = performance.now() - t;
              t = performance.now();
              const b = await s.sys.removeMember(group, s.subject);
              const remMs = performance.now() - t;
              if (i < 0) continue;
              r.add[rep]!.push(addMs);
              r.remove[rep]!.push(remMs);
              for (const m of [`add:${a.mode}`, `remove:${b.mode}`]) r.modes[m] = (r.modes[m] ?? 0) + 1;
            } catch (e) {
              r.err = e;
            }
          }
        }
      }
      for (const s of suts) {
        const r = per.get(s)!;
        if (r.err) {
          rows.push({ system: s.system, engine: s.engine, group, assignments, ...notRun(r.err) });
          continue;
        }
        const agg = (runs: number[][]) => {
          const sums = runs.map((x) => summarize(x));
          return {
            p50: spread(sums.map((x) => x.p50)),
            p99: spread(sums.map((x) => x.p99)),
            max: spread(sums.map((x) => x.max)),
            n: runs.reduce((a, x) => a + x.length, 0),
            modes: r.modes,
          };
        };
        rows.push({
          system: s.system,
          engine: s.engine,
          group,
          assignments,
          add: agg(r.add),
          remove: agg(r.remove),
          cdf: { add: cdf(r.add.flat()).map(([q, v]) => [q, round(v)]), remove: cdf(r.remove.flat()).map(([q, v]) => [q, round(v)]) },
        });
      }
    }
  } finally {
    for (const s of suts) await s.sys.close().catch(() => undefined);
    for (const st of stores) await st.close().catch(() => undefined);
  }
  return [...rows, ...failed];
}

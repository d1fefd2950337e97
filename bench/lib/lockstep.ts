/**
 * Lockstep under test: opening a fresh database (SQLite in memory or in a file, PostgreSQL in a fresh
 * schema dropped afterwards), bulk-loading a data set through the source tables plus one `group:`
 * reconciliation job per group, the three configurations (sync; async with verification; async with
 * verification `never`) and the naive synchronous baseline.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { maskUrl } from '../../src/storage/postgres-engine.ts';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import type { VerifyMode, ConsistencyMode } from '../../src/domain/model.ts';
import { SYNC_POLICY, type PropagationPolicy } from '../../src/domain/propagation.ts';
import { enqueueJob } from '../../src/propagation/queue.ts';
import { createWorker, type Worker } from '../../src/propagation/worker.ts';
import type { Database, Sql } from '../../src/storage/database.ts';
import { dropSchema, openPostgres } from '../../src/storage/postgres-engine.ts';

export { dropSchema };
import { openSqlite } from '../../src/storage/sqlite-engine.ts';
import { ORG, PERMISSIONS, ROLES, project, type Dataset } from './model.ts';
import type { System, WriteOutcome } from './system.ts';

export type Engine = 'sqlite' | 'postgres';
export const LOCKSTEP_CONFIGS = ['sync', 'async+verify', 'async verify-never'] as const;
export type LockstepConfig = (typeof LOCKSTEP_CONFIGS)[number];

/** Every grant and every revocation through a job: the asynchronous design, with or without verification. */
export const ASYNC_POLICY: PropagationPolicy = {
  grant: { standard: { mode: 'async', sloMs: 2000 }, high: { mode: 'async', sloMs: 500 }, critical: { mode: 'async', sloMs: 100 } },
  revoke: { standard: { mode: 'async', sloMs: 500 }, high: { mode: 'async', sloMs: 500 }, critical: { mode: 'async', sloMs: 100 } },
  inlineBudget: 10_000,
};
export const configPolicy = (c: LockstepConfig): { policy: PropagationPolicy; verify: VerifyMode } =>
  c === 'sync' ? { policy: SYNC_POLICY, verify: 'always' } : { policy: ASYNC_POLICY, verify: c === 'async+verify' ? 'always' : 'never' };

export interface Store {
  db: Database;
  engine: Engine;
  /** what a child process opens: the SQLite file or the PostgreSQL URL, and the schema */
  target: { file?: string; url?: string; schema?: string };
  close(): Promise<void>;
}


/** Probes PostgreSQL; returns the reason it cannot be used, or null. */
export async function postgresUnavailable(url: string): Promise<string | null> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return null;
  } catch (e) {
    return `PostgreSQL unreachable at ${maskUrl(url)}: ${(e as Error).message}`;
  } finally {
    await c.end().catch(() => undefined);
  }
}

export async function openStore(engine: Engine, pgUrl: string, opts: { file?: string; poolMax?: number } = {}): Promise<Store> {
  if (engine === 'sqlite') {
    const db = openSqlite(opts.file ?? ':memory:');
    await db.migrate();
    return { db, engine, target: { file: opts.file }, close: () => db.close() };
  }
  const schema = `lockstep_bench_${randomBytes(4).toString('hex')}`;
  const db = openPostgres(pgUrl, { schema, max: opts.poolMax ?? 12 });
  try {
    await db.migrate();
  } catch (e) {
    await db.close().catch(() => undefined);
    await dropSchema(pgUrl, schema).catch(() => undefined);
    throw e;
  }
  return {
    db,
    engine,
    target: { url: pgUrl, schema },
    async close() {
      await db.close().catch(() => undefined);
      await dropSchema(pgUrl, schema);
    },
  };
}

async function insertMany(tx: Sql, table: string, cols: string[], rows: unknown[][]) {
  const per = Math.max(1, Math.floor(900 / cols.length));
  for (let i = 0; i < rows.length; i += per) {
    const chunk = rows.slice(i, i + per);
    const params: unknown[] = [];
    const values = chunk.map((r) => '(' + r.map((v) => (params.push(v), `$${params.length}`)).join(', ') + ')').join(', ');
    await tx.run(`INSERT INTO ${table} (${cols.join(', ')}) VALUES ${values}`, params);
  }
}

/**
 * Loads the data set into the source tables in one transaction and enqueues one `group:` job per
 * group carrying assignments (the read model starts empty). `reconcile` drains them with a worker
 * (otherwise the caller runs them, e.g. in a child process).
 */
export async function loadDataset(db: Database, ds: Dataset, opts: { reconcile?: boolean; batch?: number } = {}): Promise<void> {
  const ls = createLockstep(db, { defaultPolicy: SYNC_POLICY });
  await ls.putOrganization(ORG, { name: 'Bench' });
  for (const [slug, risk] of PERMISSIONS) await ls.putPermission(ORG, slug, { risk });
  for (const [slug, perms] of Object.entries(ROLES)) await ls.putRole(ORG, slug, { permissions: perms });
  await ls.putResource(ORG, 'workspace', 'ws', {});
  await db.transaction(async (tx) => {
    await insertMany(tx, 'resources', ['org_id', 'ref', 'parent'], Array.from({ length: ds.projects }, (_, i) => [ORG, project(i), 'workspace:ws']));
    await insertMany(tx, 'groups', ['org_id', 'id', 'name'], Object.keys(ds.groups).map((g) => [ORG, g, g]));
    // every group is its own ancestor in the nested-group closure (src/derivation/closure.ts)
    await insertMany(tx, 'group_closure', ['org_id', 'ancestor_id', 'descendant_id', 'paths'], Object.keys(ds.groups).map((g) => [ORG, g, g, 1]));
    await insertMany(tx, 'subjects', ['org_id', 'id', 'kind', 'active'], ds.subjects.map((s) => [ORG, s, 'user', 1]));
    await insertMany(tx, 'memberships', ['org_id', 'group_id', 'subject_id'], ds.members.map(([g, s]) => [ORG, g, s]));
    const asg: unknown[][] = [];
    for (const [g, list] of Object.entries(ds.groups)) list.forEach(([role, res], i) => asg.push([ORG, `a_${g}_${i}`, 'group', g, role, res, 0]));
    await insertMany(tx, 'assignments', ['org_id', 'id', 'principal_type', 'principal_id', 'role', 'resource', 'created_at'], asg);
    await tx.run('UPDATE organizations SET revision = revision + 1 WHERE id = $1', [ORG]);
    const rev = await tx.get<{ revision: number }>('SELECT revision FROM organizations WHERE id = $1', [ORG]);
    for (const g of Object.keys(ds.groups)) {
      if (ds.groups[g]!.length === 0) continue;
      await enqueueJob(tx, { org: ORG, scope: `group:${g}`, direction: 'grant', priority: 1, revision: Number(rev!.revision), now: Date.now(), newId: () => randomBytes(8).toString('hex') });
    }
  });
  if (db.dialect === 'postgres') await db.run('ANALYZE');
  if (opts.reconcile ?? true) await createWorker({ db, batchSize: opts.batch ?? 200 }).drain();
}

const ok = (r: { revision: number; propagation: { mode: 'sync' | 'async' } }): WriteOutcome => ({ token: r.revision, mode: r.propagation.mode });

/** A Lockstep configuration as a System; async configurations run an in-process worker. */
export function lockstepSystem(store: Store, config: LockstepConfig, consistency: ConsistencyMode = 'minimize_latency'): System & { ls: Lockstep; worker: Worker } {
  const { policy, verify } = configPolicy(config);
  const worker = createWorker({ db: store.db, batchSize: 100, pollMs: 50, verify });
  const ls = createLockstep(store.db, { defaultPolicy: policy, verify, onEnqueued: () => worker.wake() });
  if (config !== 'sync') worker.start();
  return {
    ls,
    worker,
    addMember: async (g, s) => ok(await ls.addMember(ORG, g, s)),
    removeMember: async (g, s) => ok(await ls.removeMember(ORG, g, s)),
    check: async (s, p, r) => (await ls.check(ORG, { subject: s, permission: p, resource: r, consistency: { mode: consistency } })).allowed,
    close: () => worker.stop(),
  };
}

/**
 * The naive synchronous design the write-up describes: every membership change recomputes the
 * subject's whole effective set inline and rewrites it. Checks read that read model as is.
 */
export function naiveSystem(store: Store): System {
  const db = store.db;
  const reader = createLockstep(db, { verify: 'never' });
  const rewrite = async (tx: Sql, s: string) => {
    await tx.run('DELETE FROM effective_assignments WHERE org_id = $1 AND subject_id = $2', [ORG, s]);
    await tx.run(
      `INSERT INTO effective_assignments (org_id, subject_id, assignment_id, role, resource, group_id)
       SELECT org_id, subject_id, assignment_id, role, resource, group_id FROM desired_effective_assignments d
        WHERE d.org_id = $1 AND d.subject_id = $2`,
      [ORG, s],
    );
  };
  return {
    addMember: async (g, s) => {
      await db.transaction(async (tx) => {
        await tx.run('INSERT INTO memberships (org_id, group_id, subject_id) VALUES ($1, $2, $3)', [ORG, g, s]);
        await rewrite(tx, s);
      });
      return { mode: 'sync' };
    },
    removeMember: async (g, s) => {
      await db.transaction(async (tx) => {
        await tx.run('DELETE FROM memberships WHERE org_id = $1 AND group_id = $2 AND subject_id = $3', [ORG, g, s]);
        await rewrite(tx, s);
      });
      return { mode: 'sync' };
    },
    check: async (s, p, r) => (await reader.check(ORG, { subject: s, permission: p, resource: r })).allowed,
    close: async () => {},
  };
}

/** The organization the floor writes to: its own, so its change-log rows never meet Lockstep's revisions. */
export const FLOOR_ORG = 'bench_floor';

/**
 * The floor: the smallest transaction a membership change needs — one membership row inserted (or
 * deleted), one change-log row, commit — over the same Database (pool) Lockstep uses, in an
 * organization of its own (one group, the subjects it is given). No classification, no lock, no read
 * model: what the engine charges for a durable write of this shape. Membership targets are ratios to it.
 */
export async function floorSystem(store: Store, subjects: string[]): Promise<System> {
  const db = store.db;
  const now = Date.now();
  await db.transaction(async (tx) => {
    await tx.run('INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)', [FLOOR_ORG, 'floor', now]);
    await tx.run('INSERT INTO groups (org_id, id, name) VALUES ($1, $2, $2)', [FLOOR_ORG, 'g']);
    for (const s of subjects) await tx.run("INSERT INTO subjects (org_id, id, kind, active) VALUES ($1, $2, 'user', 1)", [FLOOR_ORG, s]);
  });
  let revision = 0;
  const change = (tx: Sql, kind: string, direction: string, body: unknown) => {
    const at = Date.now();
    return tx.run(
      `INSERT INTO changes (org_id, revision, kind, direction, mode, body, decided_at, effective_at, committed_at)
       VALUES ($1, $2, $3, $4, 'sync', $5, $6, $6, $6)`,
      [FLOOR_ORG, ++revision, kind, direction, JSON.stringify(body), at],
    );
  };
  return {
    addMember: async (_g, s) => {
      await db.transaction(async (tx) => {
        await tx.run('INSERT INTO memberships (org_id, group_id, subject_id) VALUES ($1, $2, $3)', [FLOOR_ORG, 'g', s]);
        await change(tx, 'membership.add', 'grant', { group: 'g', subject: s });
      });
      return { token: revision, mode: 'sync' };
    },
    removeMember: async (_g, s) => {
      await db.transaction(async (tx) => {
        await tx.run('DELETE FROM memberships WHERE org_id = $1 AND group_id = $2 AND subject_id = $3', [FLOOR_ORG, 'g', s]);
        await change(tx, 'membership.remove', 'revoke', { group: 'g', subject: s });
      });
      return { token: revision, mode: 'sync' };
    },
    check: () => Promise.reject(new Error('the floor answers no checks')),
    close: async () => {},
  };
}

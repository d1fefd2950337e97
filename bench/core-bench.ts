/**
 * Core-engine benchmark (in-process): synchronous membership add/remove for a subject whose group
 * carries 3 and 5,000 assignments, and check latency/throughput, on SQLite and PostgreSQL. The
 * baseline, measured in the same run on the same data, is the naive synchronous design: on each
 * membership change, recompute the subject's whole effective set and rewrite it.
 *
 *   npm run bench -- [--quick] [--engines sqlite,postgres] [--pg URL]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createLockstep } from '../src/core/lockstep.ts';
import type { Lockstep } from '../src/core/types.ts';
import type { Database } from '../src/storage/database.ts';
import { openPostgres } from '../src/storage/postgres-engine.ts';
import { openSqlite } from '../src/storage/sqlite-engine.ts';
import { fmt, peakRssMb, summarize, table, time } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    engines: { type: 'string', default: 'sqlite,postgres' },
    pg: { type: 'string', default: process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test' },
  },
});
const BIG = args.quick ? 1000 : 5000;
const CHANGES = args.quick ? 200 : 1000;
const CHECKS = args.quick ? 20_000 : 100_000;
const ORG = 'bench';

async function seed(ls: Lockstep, db: Database) {
  await ls.putOrganization(ORG, { name: 'Bench' });
  for (const [p, risk] of [['project.read', 'standard'], ['project.write', 'high'], ['project.delete', 'critical']] as const) {
    await ls.putPermission(ORG, p, { risk });
  }
  await ls.putRole(ORG, 'viewer', { permissions: ['project.read'] });
  await ls.putRole(ORG, 'editor', { permissions: ['project.read', 'project.write'] });
  await ls.putRole(ORG, 'admin', { permissions: ['project.read', 'project.write', 'project.delete'] });
  await ls.putResource(ORG, 'workspace', 'ws', {});
  // Bulk-load the projects and the big group's assignments in one transaction each: set-up, not measured.
  await db.transaction(async (tx) => {
    for (let i = 0; i < BIG; i++) await tx.run("INSERT INTO resources (org_id, ref, parent) VALUES ($1, $2, 'workspace:ws')", [ORG, `project:p${i}`]);
  });
  for (const g of ['small', 'big']) await ls.putGroup(ORG, g, {});
  await ls.createAssignment(ORG, { principal: 'group:small', role: 'viewer', resource: 'workspace:ws' });
  await ls.createAssignment(ORG, { principal: 'group:small', role: 'editor', resource: 'project:p1' });
  await ls.createAssignment(ORG, { principal: 'group:small', role: 'admin', resource: 'project:p2' });
  await db.transaction(async (tx) => {
    for (let i = 0; i < BIG; i++) {
      await tx.run(
        "INSERT INTO assignments (org_id, id, principal_type, principal_id, role, resource, created_at) VALUES ($1, $2, 'group', 'big', 'editor', $3, 0)",
        [ORG, `big${i}`, `project:p${i}`],
      );
    }
  });
  for (let i = 0; i < 20; i++) await ls.putSubject(ORG, `u${i}`, { kind: 'user' });
  // Background members so the groups are not empty.
  for (let i = 10; i < 20; i++) await ls.addMember(ORG, 'small', `u${i}`);
}

/** The naive synchronous design: every membership change rewrites the subject's whole effective set. */
function naive(db: Database) {
  const rewrite = async (tx: Parameters<Parameters<Database['transaction']>[0]>[0], s: string) => {
    await tx.run('DELETE FROM effective_assignments WHERE org_id = $1 AND subject_id = $2', [ORG, s]);
    await tx.run(
      `INSERT INTO effective_assignments (org_id, subject_id, assignment_id, role, resource, group_id)
       SELECT org_id, subject_id, assignment_id, role, resource, group_id FROM desired_effective_assignments d
        WHERE d.org_id = $1 AND d.subject_id = $2`,
      [ORG, s],
    );
  };
  return {
    add: (g: string, s: string) =>
      db.transaction(async (tx) => {
        await tx.run('INSERT INTO memberships (org_id, group_id, subject_id) VALUES ($1, $2, $3)', [ORG, g, s]);
        await rewrite(tx, s);
      }),
    remove: (g: string, s: string) =>
      db.transaction(async (tx) => {
        await tx.run('DELETE FROM memberships WHERE org_id = $1 AND group_id = $2 AND subject_id = $3', [ORG, g, s]);
        await rewrite(tx, s);
      }),
  };
}

interface Row {
  engine: string;
  what: string;
  system: string;
  p50: number;
  p99: number;
  max: number;
  perSec?: number;
}

async function membership(engine: string, ls: Lockstep, db: Database, out: Row[]) {
  const base = naive(db);
  for (const [group, label] of [['small', '3 assignments'], ['big', `${BIG.toLocaleString('en')} assignments`]] as const) {
    const n = group === 'big' ? Math.max(20, CHANGES / 10) : CHANGES;
    // Interleave add/remove pairs so both see the same state; subject u0 is reused.
    const add: number[] = [];
    const rem: number[] = [];
    const nAdd: number[] = [];
    const nRem: number[] = [];
    for (let i = 0; i < n; i++) {
      add.push(...(await time(1, () => ls.addMember(ORG, group, 'u0'), 0)));
      rem.push(...(await time(1, () => ls.removeMember(ORG, group, 'u0'), 0)));
      nAdd.push(...(await time(1, () => base.add(group, 'u1'), 0)));
      nRem.push(...(await time(1, () => base.remove(group, 'u1'), 0)));
    }
    for (const [what, system, s] of [
      [`membership add, ${label}`, 'lockstep sync', add],
      [`membership add, ${label}`, 'naive rewrite', nAdd],
      [`membership remove, ${label}`, 'lockstep sync', rem],
      [`membership remove, ${label}`, 'naive rewrite', nRem],
    ] as const) {
      const sum = summarize(s.slice(Math.min(10, s.length / 10)));
      out.push({ engine, what, system, p50: sum.p50, p99: sum.p99, max: sum.max });
    }
  }
}

async function checks(engine: string, db: Database, out: Row[]) {
  await (createLockstep(db)).addMember(ORG, 'small', 'u2');
  const variants = [
    ['verify always (default)', createLockstep(db, { verify: 'always' }), 'minimize_latency'],
    ['verify never', createLockstep(db, { verify: 'never' }), 'minimize_latency'],
    ['fully_consistent', createLockstep(db), 'fully_consistent'],
  ] as const;
  for (const [system, ls, mode] of variants) {
    const n = engine === 'sqlite' ? CHECKS : CHECKS / 10;
    const req = (i: number) => ({ subject: 'u2', permission: 'project.read', resource: `project:p${Math.abs(i) % BIG}`, consistency: { mode } });
    const first = await ls.check(ORG, req(0));
    if (!first.allowed) throw new Error(`bench set-up is wrong: ${system} denied`);
    const lat = summarize(await time(n, (i) => ls.check(ORG, req(i))));
    // Throughput: SQLite is one synchronous connection, so sequential is its best case; PostgreSQL
    // gets 16 concurrent callers over the pool.
    const conc = engine === 'sqlite' ? 1 : 16;
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: conc }, async (_, w) => {
      for (let i = w; i < n; i += conc) await ls.check(ORG, req(i));
    }));
    const perSec = n / (Number(process.hrtime.bigint() - t0) / 1e9);
    out.push({ engine, what: `check (allowed via parent), concurrency ${conc}`, system, p50: lat.p50, p99: lat.p99, max: lat.max, perSec });
  }
}

async function run(engine: string): Promise<Row[]> {
  let db: Database;
  let cleanup = async () => {};
  if (engine === 'sqlite') {
    db = openSqlite(':memory:');
  } else {
    const schema = `lockstep_bench_${randomBytes(4).toString('hex')}`;
    db = openPostgres(args.pg!, { schema, max: 16 });
    cleanup = async () => {
      const c = new pg.Client({ connectionString: args.pg });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    };
  }
  try {
    await db.migrate();
    const ls = createLockstep(db);
    process.stderr.write(`[${engine}] seeding ${BIG} projects and assignments…\n`);
    await seed(ls, db);
    const out: Row[] = [];
    process.stderr.write(`[${engine}] membership changes…\n`);
    await membership(engine, ls, db, out);
    process.stderr.write(`[${engine}] checks…\n`);
    await checks(engine, db, out);
    return out;
  } finally {
    await db.close();
    await cleanup();
  }
}

const rows: Row[] = [];
for (const engine of args.engines!.split(',')) rows.push(...(await run(engine)));

console.log(`\nLockstep core benchmark — node ${process.version}, ${args.quick ? 'quick' : 'full'} mode, ${new Date().toISOString()}`);
console.log(table(
  ['engine', 'operation', 'system', 'p50', 'p99', 'max', 'ops/s', 'vs naive (p50)'],
  rows.map((r) => {
    const naiveRow = rows.find((x) => x.engine === r.engine && x.what === r.what && x.system === 'naive rewrite');
    const ratio = naiveRow && r.system !== 'naive rewrite' ? `${(naiveRow.p50 / r.p50).toFixed(1)}× faster` : '';
    return [r.engine, r.what, r.system, fmt(r.p50), fmt(r.p99), fmt(r.max), r.perSec ? Math.round(r.perSec).toLocaleString('en') : '', ratio];
  }),
));
console.log(`peak RSS: ${peakRssMb().toFixed(0)} MB`);

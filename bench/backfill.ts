/**
 * Large-group backfill: a group of M members carrying A role assignments (M × A read-model rows),
 * loaded into the source tables with the read model empty, then reconciled by a `group:` job through
 * the ordinary worker (batches + checkpoints). Then the group's role is revoked: the time until
 * checks deny, and the cleanup rate. Prints rows/s and peak RSS.
 *
 *   node --import tsx bench/backfill.ts --engine sqlite|postgres [--members 5000] [--assignments 5000] [--batch 20]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createLockstep } from '../src/core/lockstep.ts';
import { SYNC_POLICY } from '../src/domain/propagation.ts';
import type { Database } from '../src/storage/database.ts';
import { enqueueJob } from '../src/propagation/queue.ts';
import { createWorker } from '../src/propagation/worker.ts';
import { openPostgres } from '../src/storage/postgres-engine.ts';
import { openSqlite } from '../src/storage/sqlite-engine.ts';
import { peakRssMb } from './stats.ts';

const { values: a } = parseArgs({
  options: {
    engine: { type: 'string', default: 'sqlite' },
    members: { type: 'string', default: '5000' },
    assignments: { type: 'string', default: '5000' },
    batch: { type: 'string', default: '20' },
    pg: { type: 'string', default: process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test' },
    file: { type: 'string' },
  },
});
const M = Number(a.members);
const A = Number(a.assignments);
const ORG = 'big';

let db: Database;
let cleanup = async () => {};
if (a.engine === 'sqlite') {
  db = openSqlite(a.file ?? ':memory:');
} else {
  const schema = `lockstep_bench_${randomBytes(4).toString('hex')}`;
  db = openPostgres(a.pg!, { schema, max: 4 });
  cleanup = async () => {
    const c = new pg.Client({ connectionString: a.pg });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
  };
}
const log = (s: string) => process.stderr.write(`[backfill ${a.engine}] ${s}\n`);
try {
  await db.migrate();
  const ls = createLockstep(db, { defaultPolicy: SYNC_POLICY });
  await ls.putOrganization(ORG, {});
  await ls.putPermission(ORG, 'project.read', { risk: 'standard' });
  await ls.putRole(ORG, 'viewer', { permissions: ['project.read'] });
  await ls.putResource(ORG, 'workspace', 'ws', {});
  await ls.putGroup(ORG, 'everyone', {});
  log(`loading ${M} members and ${A} assignments into the source tables…`);
  const pad = (i: number) => String(i).padStart(6, '0');
  await db.transaction(async (tx) => {
    for (let i = 0; i < A; i++) await tx.run("INSERT INTO resources (org_id, ref, parent) VALUES ($1, $2, 'workspace:ws')", [ORG, `project:p${pad(i)}`]);
    for (let i = 0; i < A; i++) {
      await tx.run("INSERT INTO assignments (org_id, id, principal_type, principal_id, role, resource, created_at) VALUES ($1, $2, 'group', 'everyone', 'viewer', $3, 0)", [
        ORG,
        `a${pad(i)}`,
        `project:p${pad(i)}`,
      ]);
    }
    for (let i = 0; i < M; i++) {
      await tx.run("INSERT INTO subjects (org_id, id, kind, active) VALUES ($1, $2, 'user', 1)", [ORG, `u${pad(i)}`]);
      await tx.run("INSERT INTO memberships (org_id, group_id, subject_id) VALUES ($1, 'everyone', $2)", [ORG, `u${pad(i)}`]);
    }
    const rev = await tx.get<{ revision: number }>('SELECT revision FROM organizations WHERE id = $1', [ORG]);
    await enqueueJob(tx, { org: ORG, scope: 'group:everyone', direction: 'grant', priority: 1, revision: Number(rev!.revision), now: Date.now(), newId: () => randomBytes(8).toString('hex') });
  });
  if (db.dialect === 'postgres') await db.run('ANALYZE');
  const rows = M * A;
  log(`backfilling ${rows.toLocaleString('en')} rows in batches of ${a.batch} members…`);
  let done = 0;
  const t0 = process.hrtime.bigint();
  let lastLog = 0;
  const worker = createWorker({
    db,
    batchSize: Number(a.batch),
    onEvent: (e) => {
      if (e.type !== 'batch') return;
      done += e.added;
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      if (s - lastLog > 2) {
        lastLog = s;
        log(`${done.toLocaleString('en')} rows (${Math.round(done / s).toLocaleString('en')} rows/s), RSS ${Math.round(process.memoryUsage().rss / 1048576)} MB`);
      }
    },
  });
  await worker.drain();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const count = await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM effective_assignments WHERE org_id = $1', [ORG]);
  if (Number(count!.n) !== rows) throw new Error(`expected ${rows} rows, found ${count!.n}`);

  // Revoke the group's role: drop the permission from the role (role-level revocation) — denied at
  // commit; then the heavier case, deleting the group, whose rows are cleaned inline or by a job.
  const probe = { subject: `u${pad(M - 1)}`, permission: 'project.read', resource: `project:p${pad(A - 1)}` };
  if (!(await ls.check(ORG, probe)).allowed) throw new Error('probe not allowed after backfill');
  const tDel = process.hrtime.bigint();
  const del = await ls.deleteGroup(ORG, 'everyone');
  const commitMs = Number(process.hrtime.bigint() - tDel) / 1e6;
  const denied = !(await ls.check(ORG, probe)).allowed;
  const tClean = process.hrtime.bigint();
  await worker.drain();
  const cleanSecs = Number(process.hrtime.bigint() - tClean) / 1e9;
  const left = await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM effective_assignments WHERE org_id = $1', [ORG]);
  console.log(
    JSON.stringify({
      engine: a.engine,
      members: M,
      assignments: A,
      rows,
      batchMembers: Number(a.batch),
      backfillSeconds: +secs.toFixed(2),
      rowsPerSecond: Math.round(rows / secs),
      revoke: { propagation: del.propagation, commitMs: +commitMs.toFixed(1), deniedAtCommit: denied, cleanupSeconds: +cleanSecs.toFixed(2), cleanupRowsPerSecond: Math.round(rows / Math.max(cleanSecs, 1e-9)), rowsLeft: Number(left!.n) },
      peakRssMb: Math.round(peakRssMb()),
    }),
  );
} finally {
  await db.close();
  await cleanup();
}

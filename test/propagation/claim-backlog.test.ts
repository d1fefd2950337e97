/**
 * A worker's claim of more single-subject jobs (`claimJobs({ kind: 'subjects' })`) under a backlog,
 * on PostgreSQL: the rows its statement examines grow with the backlog, not with its square.
 *
 * A pending job is claimable only while no job of its scope is running or retrying. Asked as a
 * correlated NOT EXISTS, the planner — with the queue's statistics from when it was small, as in
 * the benchmark (ANALYZE at load, then 500 jobs/s) — ran it as an anti-join that scans every open
 * job of the organization once per pending job: at 1,500 pending jobs a claim took seconds, the
 * backlog grew while it ran, and the queue stalled (bench/one-off/propagation-one.ts TIMELINE).
 * The claim's rows examined are counted from EXPLAIN ANALYZE (actual rows plus rows removed by a
 * filter, times loops): a count of work, not a time.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { claimJobs, enqueueJob } from '../../src/propagation/queue.ts';
import type { Database, Sql, Statement } from '../../src/storage/database.ts';
import { compileStatement } from '../../src/storage/sql.ts';
import { describePostgresOnly } from '../helpers/engines.ts';

interface PlanNode {
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Join Filter'?: number;
  Plans?: PlanNode[];
}
const examined = (n: PlanNode): number =>
  ((n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0) + (n['Rows Removed by Join Filter'] ?? 0)) * (n['Actual Loops'] ?? 1) +
  (n.Plans ?? []).reduce((s, c) => s + examined(c), 0);

const ORG = 'o';
const PENDING = 600;
const RUNNING = 20;

describePostgresOnly('claiming single-subject jobs under a backlog', (engine) => {
  let db: Database;
  beforeAll(async () => {
    db = await engine.open();
    await db.run("INSERT INTO organizations (id, name, created_at) VALUES ($1, 'o', 0)", [ORG]);
    let n = 0;
    const enqueue = (tx: Sql, subject: string) =>
      enqueueJob(tx, { org: ORG, scope: `subject:${subject}`, direction: 'grant', priority: 1, revision: 1, now: ++n, newId: () => randomBytes(8).toString('hex') });
    // Statistics from a small queue: a few jobs, done.
    await db.transaction(async (tx) => {
      for (let i = 0; i < 20; i++) await enqueue(tx, `d${i}`);
    });
    await db.run("UPDATE jobs SET state = 'done', finished_at = 1");
    await db.run('ANALYZE jobs');
    // Then the backlog: jobs running (claimed by another worker) and many pending.
    await db.transaction(async (tx) => {
      for (let i = 0; i < RUNNING; i++) await enqueue(tx, `r${i}`);
    });
    await db.run("UPDATE jobs SET state = 'running', owner = 'other', lease_expires_at = $1 WHERE state = 'pending'", [Date.now() + 60_000]);
    await db.transaction(async (tx) => {
      for (let i = 0; i < PENDING; i++) await enqueue(tx, `p${String(i).padStart(4, '0')}`);
      // One pending job whose scope is running: not claimable.
      await enqueue(tx, 'r0');
    });
  });
  afterAll(async () => {
    await db?.close();
  });

  /** Runs the claim, then explains its SELECT on the queue as it stood (claimed jobs put back first). */
  async function claimAndExplain(filter: Parameters<typeof claimJobs>[1], limit: number) {
    let seen: { statement: Statement; params: readonly unknown[] } | undefined;
    const spy: Database = {
      ...db,
      transaction: (fn) =>
        db.transaction((tx) =>
          fn({
            ...tx,
            all: (s: Statement, p?: readonly unknown[]) => {
              seen ??= { statement: s, params: p ?? [] };
              return tx.all(s, p);
            },
          } as Sql),
        ),
    };
    const claimed = await claimJobs(spy, filter, 'me', Date.now(), 60_000, limit);
    await db.run("UPDATE jobs SET state = 'pending', owner = NULL, lease_expires_at = NULL, claims = 0 WHERE owner = 'me'");
    // Its row locks end with the transaction.
    const plan = await db.transaction(async (tx) => {
      const { text, params } = compileStatement(seen!.statement, seen!.params);
      const r = await tx.get<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, params);
      return r!['QUERY PLAN'][0].Plan;
    });
    if (process.env.SHOW_PLAN) console.log(JSON.stringify(plan, null, 1));
    return { scopes: claimed.map((j) => j.scope), examined: examined(plan) };
  }
  const pendingScope = (i: number) => `subject:p${String(i).padStart(4, '0')}`;

  it('more jobs of one organization: the oldest claimable, a running scope skipped, rows examined linear in the backlog', async () => {
    const { scopes, examined: rows } = await claimAndExplain({ kind: 'subjects', org: ORG }, 63);
    expect(scopes).toEqual(Array.from({ length: 63 }, (_, i) => pendingScope(i)));
    // Every open job read a handful of times at most; the quadratic plan examined PENDING × PENDING.
    expect(rows).toBeLessThan(10 * (PENDING + RUNNING));
  });

  it('the first job, from any organization: the same bound', async () => {
    const { scopes, examined: rows } = await claimAndExplain({ kind: 'any' }, 1);
    expect(scopes).toEqual([pendingScope(0)]);
    expect(rows).toBeLessThan(10 * (PENDING + RUNNING));
  });
});

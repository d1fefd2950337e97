/**
 * "Has the organization an open job?" (`openJobProbe`), which every membership write and group
 * delete asks under its locks: right on both engines, and on PostgreSQL one probe of the open jobs'
 * index however many done jobs the organization has and whatever the statistics say.
 *
 * As in bench scenario 2, the data set is loaded and analyzed while the queue is empty, then
 * thousands of jobs open and finish. On the plain column the planner took jobs_by_scope (org_id,
 * scope, state) and walked every job of the organization, done ones included (~5,000 buffers a
 * probe at 5,000 done jobs: ~2 ms; docs/adr/0027-*); the probe's buffers are counted from EXPLAIN
 * (ANALYZE, BUFFERS): work, not time.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { enqueueJob, openJobProbe } from '../../src/propagation/queue.ts';
import { sql, type Database } from '../../src/storage/database.ts';
import { compileStatement } from '../../src/storage/sql.ts';
import { describeEachEngine, describePostgresOnly } from '../helpers/engines.ts';
import { loadDataset } from '../../bench/lib/lockstep.ts';
import { ORG as BENCH_ORG, propagationDataset } from '../../bench/lib/model.ts';

const ORG = 'o';
const DONE = 5000;

interface PlanNode {
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  'Index Name'?: string;
  Plans?: PlanNode[];
}
const indexes = (n: PlanNode): string[] => [...(n['Index Name'] ? [n['Index Name']] : []), ...(n.Plans ?? []).flatMap(indexes)];

describeEachEngine('the open-jobs probe of a membership write', (engine) => {
  let db: Database;
  const probe = async (org = ORG) => (await db.get<{ open: number | null }>(sql`SELECT ${openJobProbe(org)} AS open`))?.open ?? null;
  const addJob = (id: string, org: string, state: string) =>
    db.run(
      `INSERT INTO jobs (id, org_id, scope, state, direction, priority, target_revision, run_at, created_at)
       VALUES ($1, $2, $3, $4, 'grant', 1, 1, 0, 0)`,
      [id, org, `subject:${id}`, state],
    );
  beforeAll(async () => {
    db = await engine.open();
    for (const o of [ORG, 'other']) await db.run('INSERT INTO organizations (id, name, created_at) VALUES ($1, $1, 0)', [o]);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('answers 1 while a job of the organization is open (in any open state), NULL otherwise, and only for that organization', async () => {
    expect(await probe()).toBeNull();
    await addJob('d1', ORG, 'done');
    expect(await probe()).toBeNull();
    for (const state of ['pending', 'running', 'retrying', 'failed']) {
      await addJob(`x-${state}`, 'other', state);
      expect(await probe()).toBeNull();
      expect(Number(await probe('other'))).toBe(1);
      await db.run("UPDATE jobs SET state = 'done' WHERE id = $1", [`x-${state}`]);
      await addJob(`j-${state}`, ORG, state);
      expect(Number(await probe())).toBe(1);
      await db.run("UPDATE jobs SET state = 'done' WHERE id = $1", [`j-${state}`]);
      expect(await probe()).toBeNull();
    }
  });
});

describePostgresOnly('the open-jobs probe on PostgreSQL', (engine) => {
  let db: Database;
  const probe = async (org = BENCH_ORG) => (await db.get<{ open: number | null }>(sql`SELECT ${openJobProbe(org)} AS open`))?.open ?? null;
  beforeAll(async () => {
    db = await engine.open();
    // The benchmark's data set for scenario 2, loaded (and analyzed) as the benchmark loads it.
    await loadDataset(db, propagationDataset(2000));
  });
  afterAll(async () => {
    await db?.close();
  });

  it('one probe of jobs_open with stale statistics and 5,000 done jobs, not a walk of the organization\'s jobs', async () => {
    // Statistics from the load, then thousands of jobs opened and finished in rounds, with no vacuum
    // and no analyze since.
    let n = 0;
    for (const round of [DONE / 5, DONE - DONE / 5]) {
      await db.transaction(async (tx) => {
        for (let i = 0; i < round; i++, n++) {
          await enqueueJob(tx, { org: BENCH_ORG, scope: `subject:u${n % 2000}x${n}`, direction: 'grant', priority: 1, revision: 1, now: Date.now(), newId: () => randomBytes(8).toString('hex') });
        }
      });
      await db.run("UPDATE jobs SET state = 'done', finished_at = 1 WHERE state = 'pending'");
      await probe();
    }
    const explain = async () => {
      const { text, params } = compileStatement(sql`SELECT ${openJobProbe(BENCH_ORG)} AS open`);
      const r = await db.get<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`, params);
      return r!['QUERY PLAN'][0].Plan;
    };
    // The first probe after the finishing marks the index's dead entries; the writes after it pay nothing for them.
    await explain();
    const plan = await explain();
    if (process.env.SHOW_PLAN) console.log(JSON.stringify(plan, null, 1));
    expect(indexes(plan)).toEqual(['jobs_open']);
    expect((plan['Shared Hit Blocks'] ?? 0) + (plan['Shared Read Blocks'] ?? 0)).toBeLessThan(100);
    expect(await probe()).toBeNull();
  });
});

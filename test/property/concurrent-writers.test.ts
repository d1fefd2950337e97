/**
 * Property: concurrent writers on one organization — several engines in this process, each on its
 * own pool of the same PostgreSQL schema (and each with its own group-commit combiner and worker),
 * running the lanes of a random plan at once — leave a history that test/helpers/history.ts finds
 * serial in revision order, with no stale allow, and a read model, drift audit and queue that agree
 * with the oracle (test/helpers/concurrent-run.ts). The in-process sibling of
 * test/propagation/multi-process-org.test.ts: cheaper per run, so many more runs.
 *
 * PostgreSQL only: SQLite connections in one process would wait for each other's write lock inside
 * better-sqlite3's synchronous busy handler, blocking the event loop that the holder needs to finish;
 * several SQLite writers are covered by several processes in the multi-process test.
 *
 * LOCKSTEP_PROPERTY_RUNS (default 12) and LOCKSTEP_PROPERTY_SEED replay; a failure names its seed
 * (fast-check's) and is not shrunk (an interleaving does not replay).
 */
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { createWorker, type Worker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { dropSchema, openPostgres } from '../../src/storage/postgres-engine.ts';
import { engineTarget, planArb, runLanes, settle, setUp } from '../helpers/concurrent-run.ts';
import { describePostgres, PG_URL, sleep } from '../propagation/support.ts';

const RUNS = Number(process.env.LOCKSTEP_PROPERTY_RUNS ?? 12);
const SEED = process.env.LOCKSTEP_PROPERTY_SEED ? Number(process.env.LOCKSTEP_PROPERTY_SEED) : undefined;
const WRITERS = 3;
const LANES_PER_WRITER = 2;
const STEPS = 30;

describePostgres('concurrent writers on one organization vs the oracle', () => {
  const schema = `lockstep_t_${process.ppid}_cw${randomBytes(4).toString('hex')}`;
  const dbs: Database[] = [];
  const engines: Lockstep[] = [];
  const workers: Worker[] = [];
  let run = 0;

  beforeAll(async () => {
    for (let i = 0; i < WRITERS; i++) {
      const db = openPostgres(PG_URL, { schema, max: 3 });
      if (i === 0) await db.migrate();
      dbs.push(db);
      engines.push(createLockstep(db));
      const worker = createWorker({ db, owner: `cw-${i}`, pollMs: 20, batchSize: 2 });
      workers.push(worker);
      worker.start();
    }
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await Promise.all(dbs.map((db) => db.close()));
    await dropSchema(PG_URL, schema);
  });

  it(`is serial in revision order and never allows late (${RUNS} runs of ${WRITERS} pools × ${LANES_PER_WRITER} lanes × ${STEPS} steps)`, { timeout: 300_000 }, async () => {
    let committed = 0;
    let events = 0;
    await fc.assert(
      fc.asyncProperty(planArb(WRITERS * LANES_PER_WRITER, STEPS), async (plan) => {
        const org = `cw${++run}`;
        const setup = await setUp(engines[0]!, dbs[0]!, org, plan);
        const targets = Array.from({ length: WRITERS * LANES_PER_WRITER }, (_, i) => engineTarget(engines[i % WRITERS]!, org));
        const history = await runLanes(setup, plan, targets, (i) => `w${i % WRITERS}l${Math.floor(i / WRITERS)}`);
        const settled = await settle(engines[0]!, dbs[0]!, setup, history, sleep);
        committed += settled.committed;
        events += settled.stats['delivery events'] ?? 0;
        expect(settled.violations.slice(0, 20), `organization ${org}`).toEqual([]);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    // the runs did what they are for: most steps were writes that committed
    expect(committed).toBeGreaterThan(RUNS * WRITERS * LANES_PER_WRITER * 5);
    expect(events, 'delivery events were recorded and judged').toBeGreaterThan(RUNS * 10);
  });
});

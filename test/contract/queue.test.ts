/** Queue housekeeping on both engines: done jobs past retention are pruned; receipts survive. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/core/lockstep.ts';
import { pruneDoneJobs } from '../../src/propagation/queue.ts';
import { createWorker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

describeEachEngine('job retention', (engine) => {
  let db: Database;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(() => db.close());

  it('prunes done jobs and their batch logs, leaving pending work and receipts', async () => {
    let clock = 1_000;
    const ls = createLockstep(db, { now: () => clock });
    await ls.putOrganization('q', {});
    await ls.putPermission('q', 'doc.read', { risk: 'standard' });
    await ls.putRole('q', 'reader', { permissions: ['doc.read'] });
    await ls.putResource('q', 'doc', 'd', {});
    await ls.putGroup('q', 'g', {});
    await ls.createAssignment('q', { principal: 'group:g', role: 'reader', resource: 'doc:d' });
    for (const s of ['a', 'b']) await ls.putSubject('q', s, { kind: 'user' });
    const first = await ls.addMember('q', 'g', 'a'); // async grant: a job
    await createWorker({ db, now: () => clock }).drain();
    clock += 10_000;
    await ls.addMember('q', 'g', 'b'); // a second job, left pending
    expect((await ls.listJobs({ org: 'q' })).map((j) => j.state).sort()).toEqual(['done', 'pending']);

    expect(await pruneDoneJobs(db, 5_000)).toBe(1);
    expect((await ls.listJobs({ org: 'q' })).map((j) => j.state)).toEqual(['pending']);
    expect(Number((await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM job_batches'))!.n)).toBe(0);
    const receipt = await ls.getChange('q', first.revision);
    expect(receipt).toMatchObject({ status: 'effective', job: { scope: 'subject:a', state: null } });
  });
});

/** Queue housekeeping on both engines: done jobs past retention are pruned; receipts survive; stop/resume; grouped subject jobs. */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import { pruneDoneJobs } from '../../src/propagation/queue.ts';
import { createWorker } from '../../src/propagation/worker.ts';
import type { Database, Sql } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

describeEachEngine('job retention', (engine) => {
  // A fresh database per test: each one counts jobs and batch logs, so none may see another's.
  let db: Database;
  beforeEach(async () => {
    db = await engine.open();
  });
  afterEach(() => db.close());

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

  it('a worker that stops mid-job hands it back at its checkpoint; the next one resumes', async () => {
    const ls = createLockstep(db);
    await ls.putOrganization('r', {});
    await ls.putPermission('r', 'doc.read', { risk: 'standard' });
    await ls.putRole('r', 'reader', { permissions: ['doc.read'] });
    await ls.putResource('r', 'doc', 'd', {});
    await ls.putGroup('r', 'g', {});
    for (let i = 0; i < 6; i++) {
      await ls.putSubject('r', `u${i}`, { kind: 'user' });
      await ls.addMember('r', 'g', `u${i}`);
    }
    await ls.createAssignment('r', { principal: 'group:g', role: 'reader', resource: 'doc:d' }); // async: one job, 6 members
    // Stop as the first batch commits (synchronously: on SQLite the next batch would follow at once).
    let stopped: Promise<void> | undefined;
    let first: () => void = () => undefined;
    const firstBatch = new Promise<void>((r) => (first = r));
    const a: ReturnType<typeof createWorker> = createWorker({
      db,
      batchSize: 2,
      pollMs: 10_000,
      onEvent: (e) => {
        if (e.type !== 'batch') return;
        stopped ??= a.stop();
        first();
      },
    });
    a.start();
    await firstBatch;
    await stopped;
    const [job] = await ls.listJobs({ org: 'r' });
    expect(job).toMatchObject({ state: 'retrying', owner: null, attempts: 0 });
    expect(job!.checkpoint).not.toBeNull();
    await createWorker({ db, batchSize: 2 }).drain();
    const batches = await db.all<{ owner: string; first_subject: string }>('SELECT owner, first_subject FROM job_batches WHERE job_id = $1 ORDER BY seq', [job!.id]);
    expect(batches[0]!.owner).toBe(a.owner);
    expect(new Set(batches.map((b) => b.first_subject)).size).toBe(batches.length); // nothing redone
    expect((await ls.listJobs({ org: 'r' }))[0]).toMatchObject({ state: 'done', progress: { done: 6 } });
  });

  it('runs many single-subject jobs of one organization in one claim and one transaction', async () => {
    const ls = createLockstep(db);
    await ls.putOrganization('m', {});
    await ls.putPermission('m', 'doc.read', { risk: 'standard' });
    await ls.putRole('m', 'reader', { permissions: ['doc.read'] });
    await ls.putResource('m', 'doc', 'd', {});
    await ls.putGroup('m', 'g', {});
    await ls.createAssignment('m', { principal: 'group:g', role: 'reader', resource: 'doc:d' });
    for (let i = 0; i < 20; i++) await ls.putSubject('m', `u${i}`, { kind: 'user' });
    await createWorker({ db }).drain();
    for (let i = 0; i < 20; i++) await ls.addMember('m', 'g', `u${i}`); // 20 async grants: 20 subject jobs
    expect((await ls.listJobs({ org: 'm', states: ['pending'] })).length).toBe(20);
    const w = createWorker({ db, subjectJobs: 8 });
    expect(await w.runOne()).toBe(true);
    expect((await ls.listJobs({ org: 'm', states: ['done'] })).length).toBe(8);
    await w.drain();
    expect((await ls.listJobs({ org: 'm', states: ['done'] })).length).toBe(20);
    expect((await ls.readModel('m')).length).toBe(20);
    for (const c of (await ls.listChanges('m', { direction: 'grant' })).changes) expect(c.status).toBe('effective');
  });

  it('a batch of single-subject jobs runs a fixed handful of statements and leaves each job done, logged, and its changes effective with their rows', async () => {
    const ls = createLockstep(db);
    await ls.putOrganization('n', {});
    await ls.putPermission('n', 'doc.read', { risk: 'standard' });
    await ls.putRole('n', 'reader', { permissions: ['doc.read'] });
    for (const d of ['d1', 'd2']) await ls.putResource('n', 'doc', d, {});
    await ls.putGroup('n', 'g', {});
    for (const d of ['d1', 'd2']) await ls.createAssignment('n', { principal: 'group:g', role: 'reader', resource: `doc:${d}` });
    for (let i = 0; i < 4; i++) await ls.putSubject('n', `u${i}`, { kind: 'user' });
    await createWorker({ db }).drain();
    for (let i = 0; i < 4; i++) await ls.addMember('n', 'g', `u${i}`);
    // u0 again: removed and added back, coalesced into its pending job (three changes, one job).
    await ls.removeMember('n', 'g', 'u0');
    await ls.addMember('n', 'g', 'u0');
    expect((await ls.listJobs({ org: 'n', states: ['pending'] })).length).toBe(4);

    const batches: string[][] = [];
    const rec = (tx: Sql, into: string[]): Sql => ({
      ...tx,
      all: (st, p) => (into.push(typeof st === 'string' ? st : st.parts.join('?')), tx.all(st, p)),
      get: (st, p) => (into.push(typeof st === 'string' ? st : st.parts.join('?')), tx.get(st, p)),
      run: (st, p) => (into.push(typeof st === 'string' ? st : st.parts.join('?')), tx.run(st, p)),
    });
    const watched: Database = { ...db, transaction: (fn) => db.transaction((tx) => fn(rec(tx, batches[batches.push([]) - 1]!))) };
    expect(await createWorker({ db: watched, subjectJobs: 8 }).runOne()).toBe(true);
    const batch = batches.find((b) => b.some((t) => t.includes('DELETE FROM effective_assignments')))!;
    // PostgreSQL: the locks, the fence (with whether events are recorded), the two reconciling
    // statements, and one for the batch logs, the jobs done and the carried changes effective.
    // SQLite (no lock statement, no round trips): the last one as four.
    expect(batch.length).toBe(engine.name === 'postgres' ? 5 : 7);

    const jobs = await ls.listJobs({ org: 'n' });
    const subjectJobs = jobs.filter((j) => j.scope.startsWith('subject:'));
    expect(subjectJobs.length).toBe(4);
    for (const j of subjectJobs) expect(j).toMatchObject({ state: 'done', owner: null, leaseExpiresAt: null, checkpoint: j.scope.slice(8), progress: { done: 1 }, batches: 1, rowsAdded: 2, rowsRemoved: 0 });
    const logged = await db.all<{ job_id: string; seq: number; members: number; rows_added: number }>('SELECT job_id, seq, members, rows_added FROM job_batches WHERE job_id IN (' + subjectJobs.map((_, i) => `$${i + 1}`).join(', ') + ')', subjectJobs.map((j) => j.id));
    expect(logged.map((l) => [Number(l.seq), Number(l.members), Number(l.rows_added)])).toEqual(subjectJobs.map(() => [1, 1, 2]));
    const changes = (await ls.listChanges('n', {})).changes.filter((c) => c.kind.startsWith('membership.'));
    expect(changes.length).toBe(6);
    for (const c of changes) expect(c.status).toBe('effective');
    expect((await ls.readModel('n')).length).toBe(8);
  });
});

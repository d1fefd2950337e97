/**
 * The asynchronous path's contract, step by step on both engines (docs/architecture.md, "The flows";
 * issue 4): pending grants and the consistency modes around them, sync revocations,
 * the inline budget (and the window verification closes), coalescing, revocations first, retries and
 * parking of failing jobs, the drift audit and repair, and policy validation naming the field.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { effectiveKey } from '../../src/domain/model.ts';
import { createWorker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

let orgCounter = 0;

describeEachEngine('asynchronous propagation contract', (engine) => {
  let db: Database;
  let ls: Lockstep;
  beforeAll(async () => {
    db = await engine.open();
    ls = createLockstep(db, { freshnessTimeoutMs: 50 });
  });
  afterAll(async () => {
    await db?.close();
  });

  const drain = () => createWorker({ db, batchSize: 2 }).drain();

  /**
   * An organization with doc.read (standard), doc.admin (high), doc.nuke (critical); roles viewer
   * {doc.read} and owner {all}; ws:main ⊃ doc:1; subjects alice, bob, carol, dave, erin; group eng
   * (empty) holding viewer on ws:main. Default policy.
   */
  async function seed() {
    const org = `ac${process.pid % 1000}x${++orgCounter}`;
    await ls.putOrganization(org, {});
    await ls.putPermission(org, 'doc.read', { risk: 'standard' });
    await ls.putPermission(org, 'doc.admin', { risk: 'high' });
    await ls.putPermission(org, 'doc.nuke', { risk: 'critical' });
    await ls.putRole(org, 'viewer', { permissions: ['doc.read'] });
    await ls.putRole(org, 'owner', { permissions: ['doc.read', 'doc.admin', 'doc.nuke'] });
    await ls.putResource(org, 'ws', 'main', {});
    await ls.putResource(org, 'doc', '1', { parent: 'ws:main' });
    for (const s of ['alice', 'bob', 'carol', 'dave', 'erin']) await ls.putSubject(org, s, { kind: 'user' });
    await ls.putGroup(org, 'eng', {});
    const a = await ls.createAssignment(org, { principal: 'group:eng', role: 'viewer', resource: 'ws:main' });
    expect(a.propagation.status).toBe('effective'); // nobody in the group yet: nothing to propagate
    return { org, eng: a.id };
  }
  const read = (subject: string, mode: 'minimize_latency' | 'fully_consistent' | 'at_least_as_fresh' = 'minimize_latency', revision?: number) => ({
    subject,
    permission: 'doc.read',
    resource: 'doc:1',
    consistency: revision === undefined ? { mode } : { mode, revision },
  });

  it('a standard membership grant is async and pending; checks deny, source allows, fresh reads wait then fail; a worker makes it effective', async () => {
    const { org } = await seed();
    const r = await ls.addMember(org, 'eng', 'alice');
    expect(r.changed).toBe(true);
    expect(r.propagation).toEqual({ mode: 'async', status: 'pending' });

    expect((await ls.check(org, read('alice'))).allowed).toBe(false);
    const full = await ls.check(org, read('alice', 'fully_consistent'));
    expect(full).toMatchObject({ allowed: true, evaluatedAgainst: 'source' });
    const t0 = Date.now();
    await expect(ls.check(org, read('alice', 'at_least_as_fresh', r.revision))).rejects.toMatchObject({ code: 'UNAVAILABLE', field: 'consistency.revision' });
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(45);
    expect(waited).toBeLessThan(2000);
    const pending = await ls.getChange(org, r.revision);
    expect(pending).toMatchObject({ kind: 'membership.add', direction: 'grant', tier: 'standard', mode: 'async', effectiveAt: null });
    const [job] = await ls.listJobs({ org, states: ['pending'] });
    expect(job).toMatchObject({ scope: 'subject:alice', direction: 'grant', priority: 1, targetRevision: r.revision, state: 'pending' });

    expect(await drain()).toBeGreaterThanOrEqual(1);
    expect(await ls.check(org, read('alice'))).toMatchObject({ allowed: true, evaluatedAgainst: 'read_model' });
    expect((await ls.check(org, read('alice', 'at_least_as_fresh', r.revision))).allowed).toBe(true);
    const receipt = await ls.getChange(org, r.revision);
    expect(receipt.effectiveAt).not.toBeNull();
    expect(Date.parse(receipt.effectiveAt!)).toBeGreaterThanOrEqual(Date.parse(receipt.decidedAt));
    expect(receipt.rowsAdded).toBe(1);
    expect((await ls.listJobs({ org }))[0]).toMatchObject({ state: 'done', progress: { done: 1, total: 1 } });
  });

  it('revocations are sync by default: effective at commit, no job', async () => {
    const { org } = await seed();
    await ls.addMember(org, 'eng', 'alice');
    await drain();
    expect((await ls.check(org, read('alice'))).allowed).toBe(true);
    const r = await ls.removeMember(org, 'eng', 'alice');
    expect(r.propagation).toMatchObject({ mode: 'sync', status: 'effective', effectiveAt: expect.any(String) });
    expect((await ls.check(org, read('alice'))).allowed).toBe(false);
    expect((await ls.readModel(org)).filter((x) => x.subject === 'alice')).toEqual([]);
    expect(await ls.listJobs({ org, states: ['pending', 'running', 'retrying'] })).toEqual([]);
    expect((await ls.getChange(org, r.revision)).effectiveAt).not.toBeNull();
  });

  it('a revocation over the inline budget is pending (inline_budget), denied at once with verification; without verification the window shows until the job runs', async () => {
    const { org, eng } = await seed();
    for (const s of ['alice', 'bob', 'carol']) await ls.addMember(org, 'eng', s);
    await drain();
    const budget = await ls.putPropagationPolicy(org, { inlineBudget: 1 });
    expect(budget.policy.inlineBudget).toBe(1);
    const never = createLockstep(db, { verify: 'never' });

    const r = await ls.deleteAssignment(org, eng);
    expect(r.propagation).toEqual({ mode: 'async', status: 'pending', reason: 'inline_budget' });
    const [job] = await ls.listJobs({ org, states: ['pending'] });
    expect(job).toMatchObject({ direction: 'revoke', priority: 0 });
    expect((await ls.readModel(org)).length).toBe(3); // the rows are still there…
    for (const s of ['alice', 'bob', 'carol']) {
      expect((await ls.check(org, read(s))).allowed, `${s} with verification`).toBe(false); // …and denied at once
      expect((await never.check(org, read(s))).allowed, `${s} without verification (the window)`).toBe(true);
    }
    await drain();
    expect(await ls.readModel(org)).toEqual([]);
    for (const s of ['alice', 'bob', 'carol']) expect((await never.check(org, read(s))).allowed, `${s} after the job`).toBe(false);
    expect((await ls.getChange(org, r.revision))).toMatchObject({ mode: 'async', rowsRemoved: 3, effectiveAt: expect.any(String) });
  });

  it('coalesces pending changes on one scope into one job with the highest target revision', async () => {
    const { org } = await seed();
    await ls.putGroup(org, 'ops', {});
    await ls.createAssignment(org, { principal: 'group:ops', role: 'owner', resource: 'doc:1' });
    await ls.putPropagationPolicy(org, { grant: { critical: { mode: 'async' } } });
    const r1 = await ls.addMember(org, 'eng', 'dave');
    const r2 = await ls.addMember(org, 'ops', 'dave');
    expect([r1.propagation.status, r2.propagation.status]).toEqual(['pending', 'pending']);
    const jobs = await ls.listJobs({ org, states: ['pending'] });
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ scope: 'subject:dave', targetRevision: r2.revision, direction: 'grant' });
    expect(r2.revision).toBeGreaterThan(r1.revision);
    expect(await drain()).toBe(1);
    for (const rev of [r1.revision, r2.revision]) expect((await ls.getChange(org, rev)).effectiveAt, `change ${rev}`).not.toBeNull();
    expect((await ls.readModel(org)).filter((x) => x.subject === 'dave')).toHaveLength(2);
  });

  it('claims revocation jobs before grant jobs', async () => {
    const { org } = await seed();
    await ls.addMember(org, 'eng', 'bob');
    await drain();
    await ls.putPropagationPolicy(org, { revoke: { standard: { mode: 'async' } } });
    const grant = await ls.addMember(org, 'eng', 'erin'); // enqueued first
    const revoke = await ls.removeMember(org, 'eng', 'bob');
    expect([grant.propagation.status, revoke.propagation.status]).toEqual(['pending', 'pending']);
    const claimed: string[] = [];
    await createWorker({ db, onEvent: (e) => e.type === 'claimed' && claimed.push(`${e.job.direction} ${e.job.scope}`) }).drain();
    expect(claimed).toEqual(['revoke subject:bob', 'grant subject:erin']);
  });

  /** A job whose scope no engine knows: every batch fails. */
  async function insertBogusJob(org: string, totalMembers: number | null) {
    const id = `job_bogus_${orgCounter}_${totalMembers ?? 'n'}`;
    const t = Date.now();
    await db.run(
      `INSERT INTO jobs (id, org_id, scope, state, direction, priority, target_revision, total_members, run_at, created_at)
       VALUES ($1, $2, 'bogus:x', 'pending', 'grant', 1, 1, $3, $4, $4)`,
      [id, org, totalMembers, t - 1000],
    );
    return id;
  }

  it('a failing job retries with backoff, is parked as failed after maxAttempts, and retryJob requeues it', async () => {
    const { org } = await seed();
    let t = Date.now();
    const clocked = createLockstep(db, { now: () => t });
    const retry = { maxAttempts: 3, baseMs: 100, maxMs: 100 };
    const w = createWorker({ db, now: () => t, retry });
    // a job claimed before (its member count is known) whose scope cannot be reconciled
    const id = await insertBogusJob(org, 0);
    try {
      const job = async () => (await clocked.listJobs({ org, limit: 10 })).find((j) => j.id === id)!;
      expect(await w.runOne()).toBe(true);
      let j = await job();
      expect(j).toMatchObject({ state: 'retrying', attempts: 1, owner: null, lastError: expect.stringMatching(/scope/) });
      expect(Date.parse(j.runAt)).toBeGreaterThanOrEqual(t);
      expect(Date.parse(j.runAt)).toBeLessThanOrEqual(t + 100);
      for (const attempt of [2, 3]) {
        t += 101;
        expect(await w.runOne()).toBe(true);
        j = await job();
        expect(j.attempts).toBe(attempt);
      }
      expect(j).toMatchObject({ state: 'failed', attempts: 3, lastError: expect.stringMatching(/scope/), finishedAt: expect.any(String) });
      t += 60_000;
      expect(await w.runOne()).toBe(false); // parked: never claimed again on its own
      expect((await job()).state).toBe('failed');

      const requeued = await clocked.retryJob(id);
      expect(requeued).toMatchObject({ id, state: 'retrying', attempts: 0, finishedAt: null });
      await expect(clocked.retryJob(id)).rejects.toMatchObject({ code: 'CONFLICT' });
      await expect(clocked.retryJob('job_nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect(await w.runOne()).toBe(true);
      expect(await job()).toMatchObject({ state: 'retrying', attempts: 1, claims: 4 });
    } finally {
      await db.run('DELETE FROM jobs WHERE id = $1', [id]);
    }
  });

  // Regression: claimJob used to parse the scope inside the claim transaction; an unparseable scope
  // rolled the claim back and jammed the head of the queue (a poison pill).
  it('a job with a bogus scope never claimed before also retries and parks (it does not jam the queue)', async () => {
    const { org } = await seed();
    let t = Date.now();
    const w = createWorker({ db, now: () => t, retry: { maxAttempts: 2, baseMs: 10, maxMs: 10 } });
    const id = await insertBogusJob(org, null);
    try {
      await ls.addMember(org, 'eng', 'carol'); // a healthy job behind it
      for (let i = 0; i < 6; i++) {
        await w.drain();
        t += 100;
      }
      const jobs = await ls.listJobs({ org, limit: 10 });
      expect(jobs.find((j) => j.id === id)).toMatchObject({ state: 'failed', attempts: 2 });
      expect(jobs.find((j) => j.scope === 'subject:carol')).toMatchObject({ state: 'done' });
    } finally {
      await db.run('DELETE FROM jobs WHERE id = $1', [id]);
    }
  });

  it('the drift audit counts missing and extra rows exactly; repair and a drain make it clean', async () => {
    const { org, eng } = await seed();
    await ls.putPropagationPolicy(org, { grant: { standard: { mode: 'sync' } } });
    for (const s of ['alice', 'bob', 'carol']) await ls.addMember(org, 'eng', s);
    await ls.createAssignment(org, { principal: 'subject:dave', role: 'owner', resource: 'doc:1' });
    const before = (await ls.readModel(org)).map(effectiveKey).sort();
    expect(before).toHaveLength(4);
    expect((await ls.auditDrift(org)).missing + (await ls.auditDrift(org)).extra).toBe(0);

    // corrupt the read model by hand: two rows lost, three rows nobody derives
    await db.run("DELETE FROM effective_assignments WHERE org_id = $1 AND subject_id IN ('alice', 'dave')", [org]);
    const bogus = [
      ['erin', 'ws:main', eng, 'viewer', 'eng'],
      ['carol', 'doc:1', 'asg_ghost', 'owner', null],
      ['bob', 'doc:1', eng, 'viewer', 'eng'],
    ];
    for (const [s, res, a, role, g] of bogus) {
      await db.run('INSERT INTO effective_assignments (org_id, subject_id, resource, assignment_id, role, group_id) VALUES ($1, $2, $3, $4, $5, $6)', [org, s, res, a, role, g]);
    }
    const report = await ls.auditDrift(org);
    expect(report).toMatchObject({ org, missing: 2, extra: 3, repairJob: null });
    expect(report.rows.missing.map((r) => r.subject).sort()).toEqual(['alice', 'dave']);
    expect(report.rows.extra.map((r) => r.subject).sort()).toEqual(['bob', 'carol', 'erin']);
    expect((await ls.check(org, { subject: 'carol', permission: 'doc.nuke', resource: 'doc:1', consistency: { mode: 'minimize_latency' } })).allowed).toBe(false);

    const repair = await ls.auditDrift(org, { repair: true });
    expect(repair.repairJob).toEqual(expect.any(String));
    const [job] = await ls.listJobs({ org, states: ['pending'] });
    expect(job).toMatchObject({ id: repair.repairJob, scope: `organization:${org}`, priority: 0 });
    await drain();
    expect((await ls.listJobs({ org })).find((j) => j.id === repair.repairJob)).toMatchObject({ state: 'done', lastError: null });
    const after = await ls.auditDrift(org);
    expect({ missing: after.missing, extra: after.extra }).toEqual({ missing: 0, extra: 0 });
    expect((await ls.readModel(org)).map(effectiveKey).sort()).toEqual(before);
  });

  it('the drift audit reports queued propagation as pending, not drift, and repairs only drift (issue 10)', async () => {
    const { org } = await seed();
    // owner holds a critical permission: its grant is sync, dave's row is in the read model at once.
    await ls.createAssignment(org, { principal: 'subject:dave', role: 'owner', resource: 'doc:1' });
    // Standard grants are async: two memberships leave jobs pending (no worker runs here).
    await ls.addMember(org, 'eng', 'alice');
    await ls.addMember(org, 'eng', 'bob');
    const queued = await ls.auditDrift(org, { repair: true });
    const jobs = (await ls.listJobs({ org, states: ['pending'] })).length;
    expect(jobs).toBeGreaterThan(0);
    expect(queued).toMatchObject({ missing: 0, extra: 0, pending: { missing: 2, extra: 0, jobs }, rows: { missing: [], extra: [] }, repairJob: null });

    // Real drift next to it: dave's row is lost, and no job covers dave.
    await db.run("DELETE FROM effective_assignments WHERE org_id = $1 AND subject_id = 'dave'", [org]);
    const both = await ls.auditDrift(org, { repair: true });
    expect(both).toMatchObject({ missing: 1, extra: 0, pending: { missing: 2, extra: 0, jobs } });
    expect(both.rows.missing.map((r) => r.subject)).toEqual(['dave']);
    expect(both.repairJob).toEqual(expect.any(String));
    await drain();
    expect(await ls.auditDrift(org)).toMatchObject({ missing: 0, extra: 0, pending: { missing: 0, extra: 0, jobs: 0 } });
  });

  it('putPropagationPolicy rejects bad settings naming the field, and changes nothing', async () => {
    const { org } = await seed();
    const cases: [unknown, string][] = [
      [{ grant: { high: { mode: 'later' } } }, 'policy.grant.high.mode'],
      [{ revoke: { critical: { sloMs: -1 } } }, 'policy.revoke.critical.sloMs'],
      [{ grant: { standard: { sloMs: 1.5 } } }, 'policy.grant.standard.sloMs'],
      [{ grant: { extreme: { mode: 'sync' } } }, 'policy.grant.extreme'],
      [{ grant: { high: { mode: 'sync', when: 'now' } } }, 'policy.grant.high.when'],
      [{ grant: 'sync' }, 'policy.grant'],
      [{ inlineBudget: -1 }, 'policy.inlineBudget'],
      [{ inlineBudget: '10' }, 'policy.inlineBudget'],
      [{ budget: 10 }, 'policy.budget'],
      [[], 'policy'],
      [null, 'policy'],
    ];
    for (const [body, field] of cases) {
      await expect(ls.putPropagationPolicy(org, body), JSON.stringify(body)).rejects.toMatchObject({ code: 'VALIDATION', field });
    }
    expect(await ls.getPropagationPolicy(org)).toMatchObject({ custom: false });
    const ok = await ls.putPropagationPolicy(org, { grant: { high: { mode: 'sync', sloMs: 50 } } });
    expect(ok.policy.grant.high).toEqual({ mode: 'sync', sloMs: 50 });
    expect(ok.policy.grant.standard).toEqual({ mode: 'async', sloMs: 2000 }); // left out: the default
    expect(ok.policy.revoke.standard.mode).toBe('sync');
    expect(await ls.getPropagationPolicy(org)).toMatchObject({ custom: true, policy: ok.policy });
  });
});

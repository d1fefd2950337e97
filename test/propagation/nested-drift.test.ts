/**
 * The drift audit under nested groups, on both engines: read-model rows whose nested path no longer
 * exists (a lost clean-up job after an edge was cut; a row naming a group the subject is not under)
 * are reported as extra, rows a nested path derives but the read model lacks (a lost grant job after
 * an edge was added; rows lost by hand two levels down) as missing — each exactly, by subject — and
 * the repair job plus a drain make the read model equal to what the policy derives. Meanwhile a
 * verified check never honours an extra row.
 */
import { expect, it } from 'vitest';
import type { Lockstep } from '../../src/domain/contract.ts';
import { createWorker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { lockstepSuite } from '../helpers/lockstep-suite.ts';

let orgCounter = 0;

describeEachEngine('drift audit with nested groups', (engine) => {
  let db: Database;
  let ls: Lockstep;
  lockstepSuite(engine, (made) => ({ db, ls } = made));

  const drain = () => createWorker({ db, batchSize: 2 }).drain();
  const rows = async (org: string) =>
    (await ls.readModel(org)).map((r) => `${r.subject}@${r.group ?? '-'}`).sort();
  const check = async (org: string, subject: string) =>
    (await ls.check(org, { subject, permission: 'doc.read', resource: 'doc:1', consistency: { mode: 'minimize_latency' } })).allowed;

  /**
   * top ⊃ mid ⊃ team (a, b, c), top ⊃ side (d), other (e, not under top); viewer on ws:main for top;
   * everything propagated synchronously, then every later write asynchronously (so that deleting the
   * queued job leaves the read model behind the policy — what drift is for).
   */
  async function seed() {
    const org = `nd${process.pid % 1000}x${++orgCounter}`;
    await ls.putOrganization(org, {});
    await ls.putPropagationPolicy(org, { grant: { standard: { mode: 'sync' } }, revoke: { standard: { mode: 'sync' } } });
    await ls.putPermission(org, 'doc.read', { risk: 'standard' });
    await ls.putRole(org, 'viewer', { permissions: ['doc.read'] });
    await ls.putResource(org, 'ws', 'main', {});
    await ls.putResource(org, 'doc', '1', { parent: 'ws:main' });
    for (const s of ['a', 'b', 'c', 'd', 'e']) await ls.putSubject(org, s, { kind: 'user' });
    for (const g of ['top', 'mid', 'team', 'side', 'other']) await ls.putGroup(org, g, {});
    for (const s of ['a', 'b', 'c']) await ls.addMember(org, 'team', s);
    await ls.addMember(org, 'side', 'd');
    await ls.addMember(org, 'other', 'e');
    await ls.addMember(org, 'mid', 'group:team');
    await ls.addMember(org, 'top', 'group:mid');
    await ls.addMember(org, 'top', 'group:side');
    const a = await ls.createAssignment(org, { principal: 'group:top', role: 'viewer', resource: 'ws:main' });
    expect(a.propagation.status).toBe('effective');
    expect(await rows(org)).toEqual(['a@top', 'b@top', 'c@top', 'd@top']);
    expect(await ls.auditDrift(org)).toMatchObject({ missing: 0, extra: 0 });
    await ls.putPropagationPolicy(org, {
      grant: { standard: { mode: 'async' } },
      revoke: { standard: { mode: 'async' } },
      inlineBudget: 0,
    });
    return { org, assignment: a.id };
  }
  /** The queued reconciliation jobs of `org` are lost (a bug, an operator, a restored backup). */
  const loseJobs = async (org: string) => {
    const n = await db.run("DELETE FROM jobs WHERE org_id = $1 AND state IN ('pending', 'retrying')", [org]);
    expect(n).toBeGreaterThan(0);
  };

  it('reports rows whose nested path is gone as extra, and repairs them', async () => {
    const { org, assignment } = await seed();
    // cut mid out of top: a, b, c lose their path; the revocation's clean-up job is lost
    const cut = await ls.removeMember(org, 'top', 'group:mid');
    expect(cut.propagation.mode).toBe('async');
    await loseJobs(org);
    // a row naming group top for e, who is not under top by any path
    await db.run('INSERT INTO effective_assignments (org_id, subject_id, assignment_id, role, resource, group_id) VALUES ($1, $2, $3, $4, $5, $6)', [
      org, 'e', assignment, 'viewer', 'ws:main', 'top',
    ]);
    expect(await rows(org)).toEqual(['a@top', 'b@top', 'c@top', 'd@top', 'e@top']);

    const report = await ls.auditDrift(org);
    expect(report).toMatchObject({ missing: 0, extra: 4, repairJob: null });
    expect(report.rows.extra.map((r) => `${r.subject}@${r.group}`).sort()).toEqual(['a@top', 'b@top', 'c@top', 'e@top']);
    // the extra rows are never honoured by a verified check; d's path is intact
    for (const s of ['a', 'b', 'c', 'e']) expect(await check(org, s), s).toBe(false);
    expect(await check(org, 'd')).toBe(true);

    const repair = await ls.auditDrift(org, { repair: true });
    expect(repair.repairJob).toEqual(expect.any(String));
    await drain();
    expect((await ls.listJobs({ org })).find((j) => j.id === repair.repairJob)).toMatchObject({ state: 'done', lastError: null });
    expect(await ls.auditDrift(org)).toMatchObject({ missing: 0, extra: 0 });
    expect(await rows(org)).toEqual(['d@top']);
  });

  it('reports rows a nested path derives but the read model lacks as missing, and repairs them', async () => {
    const { org } = await seed();
    // other (e) joins top two levels down, under team; the grant job is lost
    const add = await ls.addMember(org, 'team', 'group:other');
    expect(add.propagation).toEqual({ mode: 'async', status: 'pending' });
    await loseJobs(org);
    // and rows of a and d are lost by hand (one two levels down, one directly below top)
    await db.run("DELETE FROM effective_assignments WHERE org_id = $1 AND subject_id IN ('a', 'd')", [org]);
    expect(await rows(org)).toEqual(['b@top', 'c@top']);

    const report = await ls.auditDrift(org);
    expect(report).toMatchObject({ missing: 3, extra: 0 });
    expect(report.rows.missing.map((r) => `${r.subject}@${r.group}`).sort()).toEqual(['a@top', 'd@top', 'e@top']);
    // the source allows them; the read model cannot until repaired
    for (const s of ['a', 'd', 'e']) {
      expect((await ls.check(org, { subject: s, permission: 'doc.read', resource: 'doc:1', consistency: { mode: 'fully_consistent' } })).allowed, s).toBe(true);
      expect(await check(org, s), s).toBe(false);
    }

    const repair = await ls.auditDrift(org, { repair: true });
    expect(repair.repairJob).toEqual(expect.any(String));
    await drain();
    expect(await ls.auditDrift(org)).toMatchObject({ missing: 0, extra: 0 });
    expect(await rows(org)).toEqual(['a@top', 'b@top', 'c@top', 'd@top', 'e@top']);
    const via = await ls.check(org, { subject: 'e', permission: 'doc.read', resource: 'doc:1', consistency: { mode: 'minimize_latency' } });
    expect(via).toMatchObject({ allowed: true, evaluatedAgainst: 'read_model' });
    expect(via.via?.chain).toEqual(['other', 'team', 'mid', 'top']);
  });

  it('a diamond: cutting one of two paths leaves the row (not drift); cutting both makes it extra', async () => {
    const { org } = await seed();
    // a second path to top for team's subjects: team ⊂ side ⊂ top
    await ls.putPropagationPolicy(org, { grant: { standard: { mode: 'sync' } }, revoke: { standard: { mode: 'sync' } } });
    await ls.addMember(org, 'side', 'group:team');
    await ls.putPropagationPolicy(org, { grant: { standard: { mode: 'async' } }, revoke: { standard: { mode: 'async' } }, inlineBudget: 0 });
    await ls.removeMember(org, 'top', 'group:mid');
    await db.run("DELETE FROM jobs WHERE org_id = $1 AND state IN ('pending', 'retrying')", [org]);
    expect(await ls.auditDrift(org)).toMatchObject({ missing: 0, extra: 0 });
    for (const s of ['a', 'b', 'c']) expect(await check(org, s), s).toBe(true);
    await ls.removeMember(org, 'side', 'group:team');
    await loseJobs(org);
    const report = await ls.auditDrift(org);
    expect(report).toMatchObject({ missing: 0, extra: 3 });
    for (const s of ['a', 'b', 'c']) expect(await check(org, s), s).toBe(false);
    await ls.auditDrift(org, { repair: true });
    await drain();
    expect(await ls.auditDrift(org)).toMatchObject({ missing: 0, extra: 0 });
    expect(await rows(org)).toEqual(['d@top']);
  });
});

/**
 * Regression (found by the reconciler property test's edge-crash step): a group cut out of its
 * parent with the clean-up queued (subtree job), then deleted before the job ran. The job walks
 * everyone under the deleted group — nobody any more — so the group's former members kept the rows
 * the cut had made stale, after every job drained. Deleting the group must reach them itself.
 */
describeEachEngine('deleting a group whose cut-off clean-up is still queued', (engine) => {
  let db: Database;
  let ls: Lockstep;
  lockstepSuite(engine, (made) => ({ db, ls } = made));

  for (const own of [false, true]) {
    it(`leaves no stale row after draining (the deleted group ${own ? 'holds an assignment of its own: an async delete' : 'holds nothing: a sync delete'})`, async () => {
      const org = `ngd${own ? 1 : 0}x${++orgCounter}`;
      await ls.putOrganization(org, {});
      await ls.putPermission(org, 'doc.read', { risk: 'standard' });
      await ls.putRole(org, 'viewer', { permissions: ['doc.read'] });
      await ls.putResource(org, 'doc', '1', {});
      await ls.putResource(org, 'doc', '2', {});
      for (const s of ['s1', 's2']) await ls.putSubject(org, s, { kind: 'user' });
      for (const g of ['top', 'mid']) await ls.putGroup(org, g, {});
      await ls.addMember(org, 'mid', 's1');
      await ls.addMember(org, 'top', 's2');
      await ls.addMember(org, 'top', 'group:mid');
      await ls.createAssignment(org, { principal: 'group:top', role: 'viewer', resource: 'doc:1' });
      if (own) await ls.createAssignment(org, { principal: 'group:mid', role: 'viewer', resource: 'doc:2' });
      await createWorker({ db }).drain();
      expect((await ls.readModel(org)).map((r) => `${r.subject}@${r.group}`).sort()).toEqual(own ? ['s1@mid', 's1@top', 's2@top'] : ['s1@top', 's2@top']);
      await ls.putPropagationPolicy(org, { revoke: { standard: { mode: 'async' } }, inlineBudget: 0 });

      const cut = await ls.removeMember(org, 'top', 'group:mid');
      expect(cut.propagation.status).toBe('pending');
      const del = await ls.deleteGroup(org, 'mid');
      expect(del.changed).toBe(true);
      expect(await ls.check(org, { subject: 's1', permission: 'doc.read', resource: 'doc:1' })).toMatchObject({ allowed: false });
      await createWorker({ db }).drain();
      expect((await ls.readModel(org)).map((r) => `${r.subject}@${r.group}`).sort()).toEqual(['s2@top']);
      expect(await ls.auditDrift(org)).toMatchObject({ missing: 0, extra: 0 });
    });
  }
});

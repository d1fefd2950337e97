/**
 * Receipts separate enforcement from convergence: an asynchronous revocation of a verified tier is
 * enforced when its write commits (status `effective`, `enforcedAt` = the commit, lag of that) while
 * its read-model clean-up is still queued (`convergedAt` null); without verification it stays
 * `pending` until the job converges. Both engines.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import { createWorker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

describeEachEngine('receipts: enforcedAt and convergedAt', (engine) => {
  let db: Database;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(() => db.close());

  async function setup(org: string, verify: 'always' | 'never') {
    const ls = createLockstep(db, { verify });
    await ls.putOrganization(org, {});
    await ls.putPermission(org, 'doc.read', { risk: 'standard' });
    await ls.putRole(org, 'viewer', { permissions: ['doc.read'] });
    await ls.putResource(org, 'doc', '1', {});
    await ls.putSubject(org, 'alice', { kind: 'user' });
    await ls.putGroup(org, 'g', {});
    await ls.addMember(org, 'g', 'alice');
    await ls.createAssignment(org, { principal: 'group:g', role: 'viewer', resource: 'doc:1' });
    await createWorker({ db }).drain();
    await ls.putPropagationPolicy(org, { revoke: { standard: { mode: 'async', sloMs: 500 } } });
    return ls;
  }

  it('a verified asynchronous revocation is effective at commit; convergence is reported apart', async () => {
    const ls = await setup('enf1', 'always');
    const r = await ls.removeMember('enf1', 'g', 'alice');
    expect(r.propagation).toMatchObject({ mode: 'async', status: 'pending' });
    expect((await ls.check('enf1', { subject: 'alice', permission: 'doc.read', resource: 'doc:1' })).allowed).toBe(false);
    const before = await ls.getChange('enf1', r.revision);
    expect(before).toMatchObject({ status: 'effective', convergedAt: null, effectiveAt: null, sloMet: true });
    expect(Date.parse(before.enforcedAt!)).toBeGreaterThanOrEqual(Date.parse(before.decidedAt));
    expect(before.lagMs).toBe(Date.parse(before.enforcedAt!) - Date.parse(before.decidedAt));
    const slo = await ls.sloReport('enf1', 3600);
    expect(slo.rows.find((x: { direction: string }) => x.direction === 'revoke')).toMatchObject({ pending: 0 });

    await createWorker({ db }).drain();
    const after = await ls.getChange('enf1', r.revision);
    expect(after.enforcedAt).toBe(before.enforcedAt);
    expect(after.convergedAt).toEqual(expect.any(String));
    expect(after.convergenceLagMs).toBe(Date.parse(after.convergedAt!) - Date.parse(after.decidedAt));
  });

  it('without verification, a revocation is pending until the read model converges', async () => {
    const ls = await setup('enf2', 'never');
    const r = await ls.removeMember('enf2', 'g', 'alice');
    expect(await ls.getChange('enf2', r.revision)).toMatchObject({ status: 'pending', enforcedAt: null, convergedAt: null, lagMs: null });
    await createWorker({ db, verify: 'never' }).drain();
    const after = await ls.getChange('enf2', r.revision);
    expect(after.status).toBe('effective');
    expect(after.enforcedAt).toBe(after.convergedAt);
  });
});

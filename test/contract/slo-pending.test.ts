/**
 * The SLO report counts changes that are still pending at their age so far: four grants that
 * arrived in 26 ms and one stuck for 20 s give p99 20 s (a lower bound, said so), not 26 ms. Both
 * engines; the clock is injected.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import { createWorker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

describeEachEngine('SLO report: pending changes count', (engine) => {
  let db: Database;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(() => db.close());

  it('a grant pending for 20 s is the p99, flagged as a lower bound, and a breach', async () => {
    let t = Date.parse('2026-12-02T06:00:00.000Z');
    const now = () => t;
    const org = 'slo1';
    const ls = createLockstep(db, { now });
    await ls.putOrganization(org, {});
    await ls.putPermission(org, 'doc.read', { risk: 'standard' });
    await ls.putRole(org, 'viewer', { permissions: ['doc.read'] });
    await ls.putResource(org, 'doc', '1', {});
    await ls.putGroup(org, 'g', {});
    await ls.createAssignment(org, { principal: 'group:g', role: 'viewer', resource: 'doc:1' });
    for (const s of ['a', 'b', 'c', 'd', 'e']) await ls.putSubject(org, s, { kind: 'user' });
    await createWorker({ db, now }).drain();
    await ls.putPropagationPolicy(org, { grant: { standard: { mode: 'async', sloMs: 1000 } } });

    for (const s of ['a', 'b', 'c', 'd']) expect((await ls.addMember(org, 'g', s)).propagation).toMatchObject({ mode: 'async', status: 'pending' });
    t += 26;
    await createWorker({ db, now }).drain();
    const arrived = await ls.sloReport(org, 3600);
    expect(arrived.rows.find((r) => r.direction === 'grant')).toMatchObject({ count: 4, pending: 0, p99Ms: 26, lowerBound: false, oldestPendingMs: null, breaches: 0 });

    await ls.addMember(org, 'g', 'e');
    t += 20_000;
    const report = await ls.sloReport(org, 3600);
    expect(report.rows.find((r) => r.direction === 'grant')).toEqual({
      direction: 'grant', tier: 'standard', count: 5, pending: 1,
      p50Ms: 26, p99Ms: 20_000, maxMs: 20_000, lowerBound: true, oldestPendingMs: 20_000, sloMs: 1000, breaches: 1,
    });

    // Once it arrives, its real lag replaces the bound.
    t += 500;
    await createWorker({ db, now }).drain();
    expect((await ls.sloReport(org, 3600)).rows.find((r) => r.direction === 'grant')).toMatchObject({ count: 5, pending: 0, p99Ms: 20_500, lowerBound: false, oldestPendingMs: null, breaches: 1 });
  });
});

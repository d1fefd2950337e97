/**
 * Provenance verification is what makes a revocation enforceable at commit even when the read model
 * has not caught up. Here the read model is made stale on purpose — the source rows are removed
 * behind the engine's back, as an asynchronous revocation leaves it — and checks must still deny
 * wherever verification is on, and (to show the window exists) allow where it is off.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import type { VerifyMode } from '../../src/domain/model.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

describeEachEngine('provenance verification', (engine) => {
  let db: Database;
  const engines = new Map<VerifyMode, Lockstep>();
  beforeAll(async () => {
    db = await engine.open();
    for (const mode of ['always', 'high+', 'critical', 'never'] as const) engines.set(mode, createLockstep(db, { verify: mode, defaultPolicy: SYNC_POLICY }));
    const ls = engines.get('always')!;
    await ls.putOrganization('o', {});
    for (const [p, risk] of [['doc.read', 'standard'], ['doc.share', 'high'], ['doc.purge', 'critical']] as const) {
      await ls.putPermission('o', p, { risk });
    }
    await ls.putRole('o', 'owner', { permissions: ['doc.read', 'doc.share', 'doc.purge'] });
    await ls.putResource('o', 'doc', 'd', {});
    for (const s of ['m', 'a', 'x']) await ls.putSubject('o', s, { kind: 'user' });
    await ls.putGroup('o', 'g', {});
    await ls.addMember('o', 'g', 'm');
    await ls.createAssignment('o', { principal: 'group:g', role: 'owner', resource: 'doc:d' });
    await ls.createAssignment('o', { principal: 'subject:a', role: 'owner', resource: 'doc:d' });
    await ls.createAssignment('o', { principal: 'subject:x', role: 'owner', resource: 'doc:d' });
    // Stale the read model: revoke at the source only.
    await db.run("DELETE FROM memberships WHERE org_id = 'o' AND subject_id = 'm'");
    const aRow = await db.get<{ assignment_id: string }>("SELECT assignment_id FROM effective_assignments WHERE org_id = 'o' AND subject_id = 'a'");
    await db.run('DELETE FROM assignments WHERE org_id = $1 AND id = $2', ['o', aRow!.assignment_id]);
    await db.run("UPDATE subjects SET active = 0 WHERE org_id = 'o' AND id = 'x'");
  });
  afterAll(() => db.close());

  const expected: Record<VerifyMode, Record<string, boolean>> = {
    always: { 'doc.read': false, 'doc.share': false, 'doc.purge': false },
    'high+': { 'doc.read': true, 'doc.share': false, 'doc.purge': false },
    critical: { 'doc.read': true, 'doc.share': true, 'doc.purge': false },
    never: { 'doc.read': true, 'doc.share': true, 'doc.purge': true },
  };

  for (const mode of ['always', 'high+', 'critical', 'never'] as const) {
    it(`verify=${mode}: stale rows are honoured exactly for the unverified tiers`, async () => {
      const ls = engines.get(mode)!;
      for (const subject of ['m', 'a', 'x']) {
        for (const [permission, allowed] of Object.entries(expected[mode])) {
          const res = await ls.check('o', { subject, permission, resource: 'doc:d', consistency: { mode: 'minimize_latency' } });
          expect({ subject, permission, allowed: res.allowed }).toEqual({ subject, permission, allowed });
          // The source of truth always denies.
          const src = await ls.check('o', { subject, permission, resource: 'doc:d', consistency: { mode: 'fully_consistent' } });
          expect(src.allowed).toBe(false);
        }
      }
      const listing = await ls.subjectEffective('o', 'm');
      expect(listing.permissions.map((p) => p.permission).sort()).toEqual(Object.keys(expected[mode]).filter((p) => expected[mode][p]).sort());
      // Who-can is answered from the source tables, so no stale row ever shows there.
      const who = await ls.resourceAccess('o', 'doc:d', 'doc.share');
      expect(who.subjects).toEqual([]);
    });
  }
});

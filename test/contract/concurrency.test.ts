/**
 * Concurrent writes to one organization (on PostgreSQL they share group commits): each write gets
 * its own revision and change, a rejected write rolls back alone, and the read model ends exact.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

describeEachEngine('concurrent writes', (engine) => {
  let db: Database;
  let ls: Lockstep;
  beforeAll(async () => {
    db = await engine.open();
    ls = createLockstep(db, { defaultPolicy: SYNC_POLICY });
    await ls.putOrganization('c', {});
    await ls.putPermission('c', 'doc.read', { risk: 'standard' });
    await ls.putRole('c', 'reader', { permissions: ['doc.read'] });
    await ls.putResource('c', 'doc', 'd', {});
    await ls.putGroup('c', 'g', {});
    await ls.createAssignment('c', { principal: 'group:g', role: 'reader', resource: 'doc:d' });
    for (let i = 0; i < 40; i++) await ls.putSubject('c', `s${String(i).padStart(2, '0')}`, { kind: 'user' });
  });
  afterAll(() => db.close());

  it('commits each of many concurrent writes with its own revision; failures roll back alone', async () => {
    const before = (await ls.getOrganization('c')).revision;
    const ids = Array.from({ length: 40 }, (_, i) => `s${String(i).padStart(2, '0')}`);
    const results = await Promise.allSettled([
      ...ids.map((s) => ls.addMember('c', 'g', s)),
      ls.addMember('c', 'g', 'ghost'),
      ls.addMember('c', 'nogroup', 's00'),
      ...ids.slice(0, 10).map((s) => ls.removeMember('c', 'g', s)),
    ]);
    const rejected = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
    expect(rejected.map((e) => [e.code, e.field]).sort()).toEqual([
      ['NOT_FOUND', 'group'],
      ['NOT_FOUND', 'subject'],
    ]);
    const revisions = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<{ revision: number; changed: boolean }>).value);
    const changed = revisions.filter((r) => r.changed).map((r) => r.revision).sort((a, b) => a - b);
    // Every changed write has its own revision, and they are consecutive after `before`.
    expect(changed).toEqual(Array.from({ length: changed.length }, (_, i) => before + 1 + i));
    expect((await ls.getOrganization('c')).revision).toBe(before + changed.length);
    for (const r of changed) expect((await ls.getChange('c', r)).kind).toMatch(/^membership\.(add|remove)$/);
    // The read model is exactly the final memberships.
    const members = (await db.all<{ subject_id: string }>("SELECT subject_id FROM memberships WHERE org_id = 'c' ORDER BY subject_id")).map((r) => r.subject_id);
    expect((await ls.readModel('c')).map((r) => r.subject).sort()).toEqual(members);
    expect(await ls.auditDrift('c')).toMatchObject({ missing: 0, extra: 0 });
  });
});

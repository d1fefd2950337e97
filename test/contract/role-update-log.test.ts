/**
 * A role update logs what it added and removed beside the new permission set: the read model holds
 * roles, so a revoking role update removes no rows, and only the log can say what it revoked. The
 * access-history replay still reads the set. Both engines.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

describeEachEngine('role updates log their diff', (engine) => {
  let db: Database;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(() => db.close());

  it('removed and added permissions are in the change body; creation logs the set alone', async () => {
    const org = 'roles1';
    const ls = createLockstep(db);
    await ls.putOrganization(org, {});
    for (const [slug, risk] of [['doc.read', 'standard'], ['doc.share', 'high'], ['doc.delete', 'critical']] as const) await ls.putPermission(org, slug, { risk });
    const created = await ls.putRole(org, 'owner', { permissions: ['doc.read', 'doc.delete'] });
    await ls.putResource(org, 'doc', '1', {});
    await ls.putSubject(org, 'alice', { kind: 'user' });
    await ls.createAssignment(org, { principal: 'subject:alice', role: 'owner', resource: 'doc:1' });
    const before = (await ls.getChange(org, created.revision)).body;
    expect(before).toEqual({ slug: 'owner', permissions: ['doc.delete', 'doc.read'] });

    const up = await ls.putRole(org, 'owner', { permissions: ['doc.share', 'doc.read'] });
    const change = await ls.getChange(org, up.revision);
    expect(change).toMatchObject({ kind: 'role.update', direction: 'both', tier: 'critical', rowsRemoved: 0 });
    expect(change.body).toEqual({ slug: 'owner', permissions: ['doc.read', 'doc.share'], added: ['doc.share'], removed: ['doc.delete'] });

    // History replays the logged set: just before the update alice could delete, just after not.
    const at = (await ls.getChange(org, up.revision)).decidedAt;
    const after = await ls.subjectEffectiveAt(org, 'alice', at);
    expect(after.permissions.map((p) => p.permission).sort()).toEqual(['doc.read', 'doc.share']);
  });
});

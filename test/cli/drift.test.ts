/**
 * Issue 10, item 8, at the CLI: `lockstep drift` tells queued propagation (rows unfinished jobs
 * will write) from drift. Pending alone exits 0 and says "pending"; drift exits 10; --repair
 * repairs drift. Both stores.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import { EXIT } from '../../src/cli/errors.ts';
import { describeEachStore, killAll, lockstep, type Store } from './harness.ts';

describeEachStore('lockstep drift with queued propagation', (newStore) => {
  let store: Store;
  const withDb = (...args: string[]) => [...args, '--db', store.db];

  beforeAll(async () => {
    store = await newStore();
    const db = store.open();
    try {
      await db.migrate();
      const ls = createLockstep(db);
      await ls.putOrganization('dr', {});
      await ls.putPermission('dr', 'doc.read', { risk: 'standard' });
      await ls.putRole('dr', 'viewer', { permissions: ['doc.read'] });
      await ls.putResource('dr', 'doc', '1', {});
      await ls.putGroup('dr', 'eng', {});
      await ls.createAssignment('dr', { principal: 'group:eng', role: 'viewer', resource: 'doc:1' });
      // Standard grants are async and no worker runs: three rows wait in jobs.
      for (const s of ['ann', 'ben', 'cy']) {
        await ls.putSubject('dr', s, { kind: 'user' });
        await ls.addMember('dr', 'eng', s);
      }
    } finally {
      await db.close();
    }
  });
  afterAll(async () => {
    killAll();
    await store.drop();
  });

  it('pending rows are not drift: exit 0, reported apart, nothing to repair', async () => {
    const run = await lockstep(withDb('drift', '--org', 'dr'));
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/: 0 missing rows, 0 extra rows \(no drift\)\n/);
    expect(run.stdout).toMatch(/pending \(not drift\): 3 rows to add and 0 to remove by \d+ unfinished jobs/);
    const json = JSON.parse((await lockstep(withDb('drift', '--org', 'dr', '--json'))).stdout);
    expect(json.report).toMatchObject({ missing: 0, extra: 0, pending: { missing: 3, extra: 0 }, repairJob: null });
  });

  it('a row no job covers is drift: exit 10; --repair makes it clean', async () => {
    const db = store.open();
    try {
      await createLockstep(db).putSubject('dr', 'zed', { kind: 'user' });
      const asg = await db.get<{ id: string }>("SELECT id FROM assignments WHERE org_id = 'dr'");
      await db.run("INSERT INTO effective_assignments (org_id, subject_id, resource, assignment_id, role, group_id) VALUES ('dr', 'zed', 'doc:1', $1, 'viewer', NULL)", [asg!.id]);
    } finally {
      await db.close();
    }
    const found = await lockstep(withDb('drift', '--org', 'dr'));
    expect(found.code).toBe(EXIT.DRIFT);
    expect(found.stdout).toMatch(/: 0 missing rows, 1 extra rows\n/);
    expect(found.stdout).toMatch(/ {2}extra {4}zed {2}viewer on doc:1/);
    const repaired = await lockstep(withDb('drift', '--org', 'dr', '--repair'));
    expect(repaired.code).toBe(0);
    expect(repaired.stdout).toMatch(/repaired by job_\S+: now 0 missing, 0 extra/);
  });
});

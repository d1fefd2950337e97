/**
 * The storage contract: the engine's behaviour through its public interface, on every engine.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

let seq = 0;

describeEachEngine('core engine', (engine) => {
  let db: Database;
  let ls: Lockstep;
  let org: string;
  beforeAll(async () => {
    db = await engine.open();
    ls = createLockstep(db, { defaultPolicy: SYNC_POLICY });
  });
  afterAll(() => db.close());

  /** A small organization: workspace ws > project p1, p2; roles viewer/admin; group eng. */
  beforeEach(async () => {
    org = `org${++seq}`;
    await ls.putOrganization(org, { name: 'Acme' });
    await ls.putPermission(org, 'project.read', { risk: 'standard' });
    await ls.putPermission(org, 'project.delete', { risk: 'critical' });
    await ls.putRole(org, 'viewer', { permissions: ['project.read'] });
    await ls.putRole(org, 'admin', { permissions: ['project.read', 'project.delete'] });
    await ls.putResource(org, 'workspace', 'ws', {});
    await ls.putResource(org, 'project', 'p1', { parent: 'workspace:ws' });
    await ls.putResource(org, 'project', 'p2', { parent: 'workspace:ws' });
    await ls.putSubject(org, 'alice', { kind: 'user' });
    await ls.putSubject(org, 'bob', { kind: 'user' });
    await ls.putGroup(org, 'eng', { name: 'Engineering' });
  });

  const can = async (s: string, p: string, r: string, mode?: 'minimize_latency' | 'fully_consistent') =>
    (await ls.check(org, { subject: s, permission: p, resource: r, ...(mode ? { consistency: { mode } } : {}) })).allowed;

  it('grants through a group assignment on an ancestor and revokes on membership removal', async () => {
    await ls.createAssignment(org, { principal: 'group:eng', role: 'viewer', resource: 'workspace:ws' });
    expect(await can('alice', 'project.read', 'project:p1')).toBe(false);
    const add = await ls.addMember(org, 'eng', 'alice');
    expect(add.propagation).toMatchObject({ mode: 'sync', status: 'effective' });
    const res = await ls.check(org, { subject: 'alice', permission: 'project.read', resource: 'project:p1' });
    expect(res).toMatchObject({ allowed: true, revision: add.revision, evaluatedAgainst: 'read_model', verified: true });
    expect(res.via).toMatchObject({ group: 'eng', role: 'viewer', resource: 'workspace:ws' });
    expect(await can('alice', 'project.delete', 'project:p1')).toBe(false);
    const change = await ls.getChange(org, add.revision);
    expect(change).toMatchObject({ kind: 'membership.add', direction: 'grant', tier: 'standard', rowsAdded: 1, mode: 'sync' });

    const rm = await ls.removeMember(org, 'eng', 'alice');
    expect(rm.revision).toBe(add.revision + 1);
    expect(await can('alice', 'project.read', 'project:p1')).toBe(false);
    expect(await ls.getChange(org, rm.revision)).toMatchObject({ kind: 'membership.remove', direction: 'revoke', rowsRemoved: 1 });
    expect(await ls.readModel(org)).toEqual([]);
  });

  it('defaults critical permissions to fully consistent checks', async () => {
    await ls.createAssignment(org, { principal: 'subject:bob', role: 'admin', resource: 'project:p2' });
    const res = await ls.check(org, { subject: 'bob', permission: 'project.delete', resource: 'project:p2' });
    expect(res).toMatchObject({ allowed: true, evaluatedAgainst: 'source', consistency: 'fully_consistent' });
    expect(await can('bob', 'project.delete', 'project:p1')).toBe(false);
    expect(await can('bob', 'project.delete', 'project:p2', 'minimize_latency')).toBe(true);
  });

  it('deactivation revokes everything and activation restores it', async () => {
    await ls.addMember(org, 'eng', 'alice');
    await ls.createAssignment(org, { principal: 'group:eng', role: 'admin', resource: 'workspace:ws' });
    await ls.createAssignment(org, { principal: 'subject:alice', role: 'viewer', resource: 'project:p1' });
    expect((await ls.readModel(org)).length).toBe(2);
    const off = await ls.putSubject(org, 'alice', { kind: 'user', active: false });
    expect(await ls.getChange(org, off.revision)).toMatchObject({ kind: 'subject.deactivate', direction: 'revoke', tier: 'critical', rowsRemoved: 2 });
    expect(await can('alice', 'project.read', 'project:p1')).toBe(false);
    await ls.putSubject(org, 'alice', { kind: 'user', active: true });
    expect((await ls.readModel(org)).length).toBe(2);
    expect(await can('alice', 'project.delete', 'project:p2')).toBe(true);
  });

  it('assignments are idempotent on their natural key', async () => {
    const a = await ls.createAssignment(org, { principal: 'group:eng', role: 'viewer', resource: 'project:p1' });
    const b = await ls.createAssignment(org, { principal: 'group:eng', role: 'viewer', resource: 'project:p1' });
    expect(a.created).toBe(true);
    expect(b).toMatchObject({ id: a.id, created: false, changed: false, revision: a.revision });
  });

  it('deleting a resource takes its subtree, assignments and read-model rows', async () => {
    await ls.putResource(org, 'doc', 'd1', { parent: 'project:p1' });
    await ls.createAssignment(org, { principal: 'subject:alice', role: 'viewer', resource: 'doc:d1' });
    await ls.createAssignment(org, { principal: 'subject:alice', role: 'viewer', resource: 'project:p2' });
    const del = await ls.deleteResource(org, 'project', 'p1');
    expect(await ls.getChange(org, del.revision)).toMatchObject({ direction: 'revoke', rowsRemoved: 1 });
    expect((await ls.readModel(org)).map((r) => r.resource)).toEqual(['project:p2']);
    await expect(ls.putResource(org, 'doc', 'd2', { parent: 'project:p1' })).rejects.toMatchObject({ code: 'NOT_FOUND', field: 'parent' });
  });

  it('rejects cycles and chains deeper than 32, leaving nothing behind', async () => {
    await expect(ls.putResource(org, 'workspace', 'ws', { parent: 'project:p1' })).rejects.toMatchObject({ code: 'CYCLE', field: 'parent' });
    let parent = 'workspace:ws';
    for (let i = 2; i <= 32; i++) {
      await ls.putResource(org, 'folder', `f${i}`, { parent });
      parent = `folder:f${i}`;
    }
    const before = await ls.getOrganization(org);
    await expect(ls.putResource(org, 'folder', 'f33', { parent })).rejects.toMatchObject({ code: 'DEPTH_EXCEEDED', field: 'parent' });
    expect(await ls.getOrganization(org)).toEqual(before);
  });

  it('names the offending field and changes nothing on bad input', async () => {
    const before = await ls.getOrganization(org);
    await expect(ls.addMember(org, 'eng', 'nobody')).rejects.toMatchObject({ code: 'NOT_FOUND', field: 'subject' });
    await expect(ls.putRole(org, 'r', { permissions: ['project.read', 'nope.nope'] })).rejects.toMatchObject({ code: 'NOT_FOUND', field: 'permissions[1]' });
    await expect(ls.putRole(org, 'Bad Slug', { permissions: [] })).rejects.toMatchObject({ code: 'VALIDATION', field: 'slug' });
    await expect(ls.createAssignment(org, { principal: 'team:x', role: 'viewer', resource: 'project:p1' })).rejects.toMatchObject({ field: 'principal' });
    await expect(ls.putSubject(org, 'alice', { kind: 'agent' })).rejects.toMatchObject({ code: 'CONFLICT', field: 'kind' });
    await expect(ls.putSubject(org, "x'; DROP TABLE subjects; --", { kind: 'user' })).rejects.toMatchObject({ code: 'VALIDATION', field: 'id' });
    // Another organization's objects are not visible from this one.
    const other = `${org}b`;
    await ls.putOrganization(other, {});
    await expect(ls.addMember(other, 'eng', 'alice')).rejects.toMatchObject({ code: 'NOT_FOUND', field: 'group' });
    expect(await ls.getOrganization(org)).toEqual(before);
    expect(await ls.readModel(org)).toEqual([]);
  });

  it('classifies role permission changes by direction and tier', async () => {
    await ls.createAssignment(org, { principal: 'subject:alice', role: 'viewer', resource: 'project:p1' });
    const up = await ls.putRole(org, 'viewer', { permissions: ['project.read', 'project.delete'] });
    expect(await ls.getChange(org, up.revision)).toMatchObject({ kind: 'role.update', direction: 'grant', tier: 'critical' });
    expect(await can('alice', 'project.delete', 'project:p1')).toBe(true);
    const down = await ls.putRole(org, 'viewer', { permissions: ['project.delete'] });
    expect(await ls.getChange(org, down.revision)).toMatchObject({ direction: 'revoke', tier: 'standard' });
    expect(await can('alice', 'project.read', 'project:p1')).toBe(false);
  });
});

describeEachEngine('engine transactions', (engine) => {
  let db: Database;
  let ls: Lockstep;
  beforeAll(async () => {
    db = await engine.open();
    ls = createLockstep(db, { defaultPolicy: SYNC_POLICY });
  });
  afterAll(() => db.close());

  it('commits every write of a transaction together, or none of them', async () => {
    await ls.transaction(async (t) => {
      await t.putOrganization('tx', {});
      await t.putSubject('tx', 'a', { kind: 'user' });
      await t.putGroup('tx', 'g', {});
      await t.addMember('tx', 'g', 'a');
    });
    expect((await ls.getOrganization('tx')).revision).toBe(4);
    await expect(
      ls.transaction(async (t) => {
        await t.putSubject('tx', 'b', { kind: 'user' });
        await t.addMember('tx', 'g', 'b');
        await t.addMember('tx', 'g', 'nobody');
      }),
    ).rejects.toMatchObject({ code: 'NOT_FOUND', field: 'subject' });
    expect((await ls.getOrganization('tx')).revision).toBe(4);
    await expect(ls.getSubject('tx', 'b')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

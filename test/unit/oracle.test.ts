import { describe, expect, it } from 'vitest';
import { effectiveKey } from '../../src/domain/model.ts';
import {
  applyCommand,
  createOracleState,
  effectiveRows,
  oracleCheck,
  resourceAccessRows,
  subjectPermissions,
  type Command,
  type OracleState,
} from '../../src/domain/oracle.ts';

const O = 'acme';
let ids = 0;
/** Applies commands that must succeed; returns the assignment id of the last one. */
function run(state: OracleState, ...cmds: Command[]): string | undefined {
  let last: string | undefined;
  for (const c of cmds) {
    const r = applyCommand(state, c, `a${++ids}`);
    if (!r.ok) throw new Error(`${c.kind} failed: ${r.code} on ${r.field}`);
    last = r.assignmentId;
  }
  return last;
}
const fails = (state: OracleState, c: Command) => {
  const before = JSON.stringify(snapshot(state));
  const r = applyCommand(state, c, 'never');
  expect(JSON.stringify(snapshot(state))).toBe(before); // untouched on error
  return r.ok ? r : { code: r.code, field: r.field };
};
const snapshot = (s: OracleState) => [...s.orgs].map(([k, o]) => [k, o.revision, o.name, [...o.resources], [...o.assignments.keys()], [...o.subjects]]);
const allowed = (s: OracleState, subject: string, permission: string, resource: string, org = O) => {
  const r = oracleCheck(s, org, subject, permission, resource);
  if (!r.ok) throw new Error(`check failed: ${r.code} on ${r.field}`);
  return r.allowed;
};
const rowKeys = (s: OracleState, org = O) => effectiveRows(s, org).map(effectiveKey).sort();

/** acme with permissions doc.read (standard) / doc.delete (critical), roles viewer and admin, alice and bob. */
function base(): OracleState {
  const s = createOracleState();
  run(
    s,
    { kind: 'putOrganization', org: O },
    { kind: 'putPermission', org: O, slug: 'doc.read', risk: 'standard' },
    { kind: 'putPermission', org: O, slug: 'doc.delete', risk: 'critical' },
    { kind: 'putRole', org: O, slug: 'viewer', permissions: ['doc.read'] },
    { kind: 'putRole', org: O, slug: 'admin', permissions: ['doc.read', 'doc.delete', 'doc.read'] },
    { kind: 'putSubject', org: O, id: 'alice', subjectKind: 'user' },
    { kind: 'putSubject', org: O, id: 'bob', subjectKind: 'agent' },
    { kind: 'putResource', org: O, type: 'folder', id: 'root' },
    { kind: 'putResource', org: O, type: 'folder', id: 'sub', parent: 'folder:root' },
    { kind: 'putResource', org: O, type: 'doc', id: 'd1', parent: 'folder:sub' },
    { kind: 'putResource', org: O, type: 'doc', id: 'other' },
  );
  return s;
}

describe('oracle: revisions and changed', () => {
  it('counts one revision per changed write, starting at 1 for the organization', () => {
    const s = createOracleState();
    expect(applyCommand(s, { kind: 'putOrganization', org: O, name: 'Acme' })).toMatchObject({ ok: true, changed: true, revision: 1 });
    expect(applyCommand(s, { kind: 'putOrganization', org: O, name: 'Acme' })).toEqual({ ok: true, changed: false, revision: 1 });
    expect(applyCommand(s, { kind: 'putPermission', org: O, slug: 'a.b', risk: 'high' })).toMatchObject({ changed: true, revision: 2 });
    expect(applyCommand(s, { kind: 'putPermission', org: O, slug: 'a.b', risk: 'high' })).toMatchObject({ changed: false, revision: 2 });
    expect(applyCommand(s, { kind: 'putPermission', org: O, slug: 'a.b', risk: 'critical' })).toMatchObject({ changed: true, revision: 3 });
    expect(applyCommand(s, { kind: 'putRole', org: O, slug: 'r', permissions: ['a.b'] })).toMatchObject({ changed: true, revision: 4 });
    expect(applyCommand(s, { kind: 'putRole', org: O, slug: 'r', permissions: ['a.b', 'a.b'] })).toMatchObject({ changed: false, revision: 4 });
  });

  it('treats an assignment natural key as idempotent and a second membership as no change', () => {
    const s = base();
    run(s, { kind: 'putGroup', org: O, id: 'eng' });
    const a = applyCommand(s, { kind: 'createAssignment', org: O, principal: 'group:eng', role: 'viewer', resource: 'folder:root' }, 'x1');
    const b = applyCommand(s, { kind: 'createAssignment', org: O, principal: 'group:eng', role: 'viewer', resource: 'folder:root' }, 'x2');
    expect(a).toMatchObject({ ok: true, changed: true, assignmentId: 'x1', created: true });
    expect(b).toMatchObject({ ok: true, changed: false, assignmentId: 'x1', created: false });
    expect(applyCommand(s, { kind: 'addMember', org: O, group: 'eng', subject: 'alice' })).toMatchObject({ changed: true });
    expect(applyCommand(s, { kind: 'addMember', org: O, group: 'eng', subject: 'alice' })).toMatchObject({ changed: false });
    expect(applyCommand(s, { kind: 'removeMember', org: O, group: 'eng', subject: 'bob' })).toMatchObject({ ok: true, changed: false });
  });
});

describe('oracle: effective rows and checks', () => {
  it('inherits a role through parent resources, never upwards', () => {
    const s = base();
    run(s, { kind: 'createAssignment', org: O, principal: 'subject:alice', role: 'viewer', resource: 'folder:sub' });
    expect(allowed(s, 'alice', 'doc.read', 'doc:d1')).toBe(true);
    expect(allowed(s, 'alice', 'doc.read', 'folder:sub')).toBe(true);
    expect(allowed(s, 'alice', 'doc.read', 'folder:root')).toBe(false);
    expect(allowed(s, 'alice', 'doc.delete', 'doc:d1')).toBe(false);
    expect(allowed(s, 'bob', 'doc.read', 'doc:d1')).toBe(false);
    expect(allowed(s, 'nobody', 'doc.read', 'doc:d1')).toBe(false);
    expect(allowed(s, 'alice', 'doc.read', 'doc:missing')).toBe(false);
  });

  it('names the derivation nearest to the resource', () => {
    const s = base();
    run(s, { kind: 'createAssignment', org: O, principal: 'subject:alice', role: 'admin', resource: 'folder:root' });
    const near = run(s, { kind: 'createAssignment', org: O, principal: 'subject:alice', role: 'viewer', resource: 'folder:sub' });
    const r = oracleCheck(s, O, 'alice', 'doc.read', 'doc:d1');
    expect(r).toMatchObject({ ok: true, allowed: true, via: { assignment: near, resource: 'folder:sub' } });
    expect(oracleCheck(s, O, 'alice', 'doc.delete', 'doc:d1')).toMatchObject({ allowed: true, via: { resource: 'folder:root' } });
  });

  it('derives group rows per active member, one row per derivation', () => {
    const s = base();
    run(s, { kind: 'putGroup', org: O, id: 'eng' }, { kind: 'addMember', org: O, group: 'eng', subject: 'alice' }, { kind: 'addMember', org: O, group: 'eng', subject: 'bob' });
    const g = run(s, { kind: 'createAssignment', org: O, principal: 'group:eng', role: 'viewer', resource: 'folder:root' });
    const d = run(s, { kind: 'createAssignment', org: O, principal: 'subject:alice', role: 'viewer', resource: 'folder:root' });
    expect(rowKeys(s)).toEqual([`alice|${d}|viewer|folder:root|`, `alice|${g}|viewer|folder:root|eng`, `bob|${g}|viewer|folder:root|eng`].sort());
    // losing one of two sources keeps the other
    run(s, { kind: 'removeMember', org: O, group: 'eng', subject: 'alice' });
    expect(allowed(s, 'alice', 'doc.read', 'doc:d1')).toBe(true);
    run(s, { kind: 'deleteAssignment', org: O, id: d! });
    expect(allowed(s, 'alice', 'doc.read', 'doc:d1')).toBe(false);
    expect(allowed(s, 'bob', 'doc.read', 'doc:d1')).toBe(true);
    const who = resourceAccessRows(s, O, 'doc:d1', 'doc.read');
    expect(who.ok && who.rows.map((r) => r.subject)).toEqual(['bob']);
  });

  it('deactivation removes every row and reactivation restores them', () => {
    const s = base();
    run(s, { kind: 'putGroup', org: O, id: 'eng' }, { kind: 'addMember', org: O, group: 'eng', subject: 'bob' });
    run(s, { kind: 'createAssignment', org: O, principal: 'group:eng', role: 'admin', resource: 'doc:other' });
    run(s, { kind: 'createAssignment', org: O, principal: 'subject:bob', role: 'viewer', resource: 'doc:d1' });
    expect(rowKeys(s)).toHaveLength(2);
    expect(applyCommand(s, { kind: 'putSubject', org: O, id: 'bob', subjectKind: 'agent', active: false })).toMatchObject({ changed: true });
    expect(rowKeys(s)).toEqual([]);
    expect(allowed(s, 'bob', 'doc.delete', 'doc:other')).toBe(false);
    // a PUT without `active` means active
    expect(applyCommand(s, { kind: 'putSubject', org: O, id: 'bob', subjectKind: 'agent' })).toMatchObject({ changed: true });
    expect(rowKeys(s)).toHaveLength(2);
    expect(applyCommand(s, { kind: 'putSubject', org: O, id: 'bob', subjectKind: 'agent', active: true })).toMatchObject({ changed: false });
  });

  it('a role change fans out to every holder', () => {
    const s = base();
    run(s, { kind: 'createAssignment', org: O, principal: 'subject:alice', role: 'viewer', resource: 'folder:root' });
    expect(allowed(s, 'alice', 'doc.delete', 'doc:d1')).toBe(false);
    run(s, { kind: 'putRole', org: O, slug: 'viewer', permissions: ['doc.delete'] });
    expect(allowed(s, 'alice', 'doc.delete', 'doc:d1')).toBe(true);
    expect(allowed(s, 'alice', 'doc.read', 'doc:d1')).toBe(false);
  });

  it('lists what a subject can do', () => {
    const s = base();
    run(s, { kind: 'createAssignment', org: O, principal: 'subject:alice', role: 'admin', resource: 'folder:sub' });
    const r = subjectPermissions(s, O, 'alice');
    expect(r.ok && r.permissions.map((p) => `${p.permission}@${p.resource}:${p.risk}`).sort()).toEqual(['doc.delete@folder:sub:critical', 'doc.read@folder:sub:standard']);
    const none = subjectPermissions(s, O, 'nobody');
    expect(none.ok && none.permissions).toEqual([]);
  });

  it('rejects an unknown permission on a check, and bad input', () => {
    const s = base();
    expect(oracleCheck(s, O, 'alice', 'doc.write', 'doc:d1')).toEqual({ ok: false, code: 'NOT_FOUND', field: 'permission' });
    expect(oracleCheck(s, O, 'alice', 'Doc', 'doc:d1')).toEqual({ ok: false, code: 'VALIDATION', field: 'permission' });
    expect(oracleCheck(s, O, 'a b', 'doc.write', 'doc:d1')).toEqual({ ok: false, code: 'VALIDATION', field: 'subject' });
    expect(oracleCheck(s, O, 'alice', 'doc.read', 'd1')).toEqual({ ok: false, code: 'VALIDATION', field: 'resource' });
    expect(oracleCheck(s, 'ghost', 'alice', 'doc.read', 'doc:d1')).toEqual({ ok: false, code: 'NOT_FOUND', field: 'org' });
  });
});

describe('oracle: deletes cascade', () => {
  it('deleting a resource removes its subtree, their assignments and rows', () => {
    const s = base();
    const onD1 = run(s, { kind: 'createAssignment', org: O, principal: 'subject:alice', role: 'viewer', resource: 'doc:d1' });
    run(s, { kind: 'createAssignment', org: O, principal: 'subject:alice', role: 'viewer', resource: 'doc:other' });
    run(s, { kind: 'deleteResource', org: O, type: 'folder', id: 'sub' });
    expect([...s.orgs.get(O)!.resources.keys()].sort()).toEqual(['doc:other', 'folder:root']);
    expect(rowKeys(s)).toHaveLength(1);
    expect(fails(s, { kind: 'deleteAssignment', org: O, id: onD1! })).toEqual({ code: 'NOT_FOUND', field: 'id' });
    expect(fails(s, { kind: 'deleteResource', org: O, type: 'doc', id: 'd1' })).toEqual({ code: 'NOT_FOUND', field: 'resource' });
  });

  it('deleting a subject removes its memberships and direct assignments', () => {
    const s = base();
    run(s, { kind: 'putGroup', org: O, id: 'eng' }, { kind: 'addMember', org: O, group: 'eng', subject: 'alice' });
    run(s, { kind: 'createAssignment', org: O, principal: 'group:eng', role: 'viewer', resource: 'folder:root' });
    run(s, { kind: 'createAssignment', org: O, principal: 'subject:alice', role: 'admin', resource: 'folder:root' });
    run(s, { kind: 'deleteSubject', org: O, id: 'alice' });
    expect(rowKeys(s)).toEqual([]);
    expect(s.orgs.get(O)!.assignments.size).toBe(1);
    // re-creating alice does not bring anything back
    run(s, { kind: 'putSubject', org: O, id: 'alice', subjectKind: 'user' });
    expect(rowKeys(s)).toEqual([]);
  });

  it('deleting a group removes its memberships and its assignments', () => {
    const s = base();
    run(s, { kind: 'putGroup', org: O, id: 'eng' }, { kind: 'addMember', org: O, group: 'eng', subject: 'alice' });
    run(s, { kind: 'createAssignment', org: O, principal: 'group:eng', role: 'viewer', resource: 'folder:root' });
    run(s, { kind: 'deleteGroup', org: O, id: 'eng' });
    expect(s.orgs.get(O)!.assignments.size).toBe(0);
    run(s, { kind: 'putGroup', org: O, id: 'eng' });
    expect(s.orgs.get(O)!.members.get('eng')?.size ?? 0).toBe(0);
    expect(fails(s, { kind: 'deleteGroup', org: O, id: 'ops' })).toEqual({ code: 'NOT_FOUND', field: 'id' });
  });
});

describe('oracle: resource hierarchy', () => {
  it('rejects cycles and re-parents', () => {
    const s = base();
    expect(fails(s, { kind: 'putResource', org: O, type: 'folder', id: 'root', parent: 'folder:root' })).toEqual({ code: 'CYCLE', field: 'parent' });
    expect(fails(s, { kind: 'putResource', org: O, type: 'folder', id: 'root', parent: 'doc:d1' })).toEqual({ code: 'CYCLE', field: 'parent' });
    expect(fails(s, { kind: 'putResource', org: O, type: 'folder', id: 'new', parent: 'folder:nope' })).toEqual({ code: 'NOT_FOUND', field: 'parent' });
    run(s, { kind: 'createAssignment', org: O, principal: 'subject:alice', role: 'viewer', resource: 'doc:other' });
    expect(allowed(s, 'alice', 'doc.read', 'doc:d1')).toBe(false);
    expect(applyCommand(s, { kind: 'putResource', org: O, type: 'folder', id: 'sub', parent: 'doc:other' })).toMatchObject({ changed: true });
    expect(allowed(s, 'alice', 'doc.read', 'doc:d1')).toBe(true);
    expect(applyCommand(s, { kind: 'putResource', org: O, type: 'folder', id: 'sub', parent: 'doc:other' })).toMatchObject({ changed: false });
    // a PUT without a parent makes a root
    expect(applyCommand(s, { kind: 'putResource', org: O, type: 'folder', id: 'sub' })).toMatchObject({ changed: true });
    expect(allowed(s, 'alice', 'doc.read', 'doc:d1')).toBe(false);
  });

  it('allows a chain of 32 resources and rejects 33, counting the moved subtree', () => {
    const s = createOracleState();
    run(s, { kind: 'putOrganization', org: O }, { kind: 'putResource', org: O, type: 'n', id: '1' });
    for (let i = 2; i <= 32; i++) run(s, { kind: 'putResource', org: O, type: 'n', id: String(i), parent: `n:${i - 1}` });
    expect(fails(s, { kind: 'putResource', org: O, type: 'n', id: '33', parent: 'n:32' })).toEqual({ code: 'DEPTH_EXCEEDED', field: 'parent' });
    // a two-deep subtree fits under n:30 (30 + 2 = 32) but not under n:31
    run(s, { kind: 'putResource', org: O, type: 'm', id: 'a' }, { kind: 'putResource', org: O, type: 'm', id: 'b', parent: 'm:a' });
    expect(fails(s, { kind: 'putResource', org: O, type: 'm', id: 'a', parent: 'n:31' })).toEqual({ code: 'DEPTH_EXCEEDED', field: 'parent' });
    expect(applyCommand(s, { kind: 'putResource', org: O, type: 'm', id: 'a', parent: 'n:30' })).toMatchObject({ ok: true, changed: true });
    // moving n:2 under its own subtree's sibling is a cycle before it is a depth problem
    expect(fails(s, { kind: 'putResource', org: O, type: 'n', id: '2', parent: 'm:b' })).toEqual({ code: 'CYCLE', field: 'parent' });
  });
});

describe('oracle: errors name the field and change nothing', () => {
  it('validates before looking up, and looks up in field order', () => {
    const s = base();
    expect(fails(s, { kind: 'putPermission', org: 'ghost', slug: 'Bad', risk: 'high' })).toEqual({ code: 'VALIDATION', field: 'slug' });
    expect(fails(s, { kind: 'putPermission', org: 'ghost', slug: 'x.y', risk: 'high' })).toEqual({ code: 'NOT_FOUND', field: 'org' });
    expect(fails(s, { kind: 'putPermission', org: O, slug: 'x.y', risk: 'extreme' })).toEqual({ code: 'VALIDATION', field: 'risk' });
    expect(fails(s, { kind: 'putRole', org: O, slug: 'r', permissions: ['doc.read', 'nope.x'] })).toEqual({ code: 'NOT_FOUND', field: 'permissions[1]' });
    expect(fails(s, { kind: 'putRole', org: O, slug: 'r', permissions: ['nope.x', 'BAD'] })).toEqual({ code: 'VALIDATION', field: 'permissions[1]' });
    expect(fails(s, { kind: 'putSubject', org: O, id: 'alice', subjectKind: 'agent' })).toEqual({ code: 'CONFLICT', field: 'kind' });
    expect(fails(s, { kind: 'putSubject', org: O, id: 'x', subjectKind: 'robot' })).toEqual({ code: 'VALIDATION', field: 'kind' });
    expect(fails(s, { kind: 'addMember', org: O, group: 'nope', subject: 'nobody' })).toEqual({ code: 'NOT_FOUND', field: 'group' });
    run(s, { kind: 'putGroup', org: O, id: 'eng' });
    expect(fails(s, { kind: 'addMember', org: O, group: 'eng', subject: 'nobody' })).toEqual({ code: 'NOT_FOUND', field: 'subject' });
    expect(fails(s, { kind: 'removeMember', org: O, group: 'eng', subject: 'nobody' })).toEqual({ code: 'NOT_FOUND', field: 'subject' });
    expect(fails(s, { kind: 'addMember', org: O, group: 'eng', subject: 'bad id' })).toEqual({ code: 'VALIDATION', field: 'subject' });
    const a = (principal: string, role: string, resource: string) => fails(s, { kind: 'createAssignment', org: O, principal, role, resource });
    expect(a('user:alice', 'viewer', 'doc:d1')).toEqual({ code: 'VALIDATION', field: 'principal' });
    expect(a('subject:nobody', 'nope', 'Doc:d1')).toEqual({ code: 'VALIDATION', field: 'resource' });
    expect(a('subject:nobody', 'nope', 'doc:nope')).toEqual({ code: 'NOT_FOUND', field: 'principal' });
    expect(a('group:eng', 'nope', 'doc:nope')).toEqual({ code: 'NOT_FOUND', field: 'role' });
    expect(a('group:eng', 'viewer', 'doc:nope')).toEqual({ code: 'NOT_FOUND', field: 'resource' });
    expect(fails(s, { kind: 'putSubject', org: O, id: 'a b', subjectKind: 'user' })).toEqual({ code: 'VALIDATION', field: 'id' });
    expect(fails(s, { kind: 'deleteSubject', org: O, id: 'nobody' })).toEqual({ code: 'NOT_FOUND', field: 'id' });
    expect(fails(s, { kind: 'putRole', org: O, slug: 'Viewer', permissions: [] })).toEqual({ code: 'VALIDATION', field: 'slug' });
    expect(fails(s, { kind: 'deleteAssignment', org: O, id: 'a b' })).toEqual({ code: 'VALIDATION', field: 'id' });
    expect(fails(s, { kind: 'putResource', org: O, type: 'Doc', id: 'x' })).toEqual({ code: 'VALIDATION', field: 'resource' });
    expect(fails(s, { kind: 'putResource', org: O, type: 'doc', id: 'x', parent: 'nocolon' })).toEqual({ code: 'VALIDATION', field: 'parent' });
  });

  it('keeps organizations apart', () => {
    const s = base();
    run(s, { kind: 'putOrganization', org: 'globex' }, { kind: 'putSubject', org: 'globex', id: 'carol', subjectKind: 'user' });
    expect(fails(s, { kind: 'createAssignment', org: O, principal: 'subject:carol', role: 'viewer', resource: 'doc:d1' })).toEqual({ code: 'NOT_FOUND', field: 'principal' });
    expect(fails(s, { kind: 'putRole', org: 'globex', slug: 'viewer', permissions: ['doc.read'] })).toEqual({ code: 'NOT_FOUND', field: 'permissions[0]' });
    expect(s.orgs.get('globex')!.revision).toBe(2);
    expect(effectiveRows(s, 'globex')).toEqual([]);
  });
});

describe('oracle: change classification', () => {
  const change = (s: OracleState, c: Command) => {
    const r = applyCommand(s, c, `a${++ids}`);
    if (!r.ok || !r.change) throw new Error(`${c.kind}: no change`);
    const { kind, direction, tier, rowsAdded, rowsRemoved } = r.change;
    return { kind, direction, tier, rowsAdded, rowsRemoved };
  };

  it('classifies membership, assignment and subject changes by the rows they add or remove', () => {
    const s = base();
    run(s, { kind: 'putGroup', org: O, id: 'eng' });
    expect(change(s, { kind: 'createAssignment', org: O, principal: 'group:eng', role: 'admin', resource: 'folder:root' })).toEqual({ kind: 'assignment.create', direction: 'none', tier: null, rowsAdded: 0, rowsRemoved: 0 });
    expect(change(s, { kind: 'addMember', org: O, group: 'eng', subject: 'alice' })).toEqual({ kind: 'membership.add', direction: 'grant', tier: 'critical', rowsAdded: 1, rowsRemoved: 0 });
    expect(change(s, { kind: 'putSubject', org: O, id: 'alice', subjectKind: 'user', active: false })).toEqual({ kind: 'subject.deactivate', direction: 'revoke', tier: 'critical', rowsAdded: 0, rowsRemoved: 1 });
    expect(change(s, { kind: 'removeMember', org: O, group: 'eng', subject: 'alice' })).toMatchObject({ kind: 'membership.remove', direction: 'none', tier: null });
    expect(change(s, { kind: 'putSubject', org: O, id: 'carol', subjectKind: 'user' })).toMatchObject({ kind: 'subject.create', direction: 'none' });
    expect(change(s, { kind: 'deleteGroup', org: O, id: 'eng' })).toMatchObject({ kind: 'group.delete', direction: 'none' });
  });

  it('classifies a role update by the permissions added and removed, when the role is held', () => {
    const s = base();
    expect(change(s, { kind: 'putRole', org: O, slug: 'viewer', permissions: ['doc.delete'] })).toMatchObject({ kind: 'role.update', direction: 'none', tier: null });
    run(s, { kind: 'createAssignment', org: O, principal: 'subject:alice', role: 'viewer', resource: 'doc:other' });
    expect(change(s, { kind: 'putRole', org: O, slug: 'viewer', permissions: ['doc.read'] })).toEqual({ kind: 'role.update', direction: 'both', tier: 'critical', rowsAdded: 0, rowsRemoved: 0 });
    expect(change(s, { kind: 'putRole', org: O, slug: 'viewer', permissions: ['doc.read', 'doc.delete'] })).toMatchObject({ direction: 'grant', tier: 'critical' });
    expect(change(s, { kind: 'putRole', org: O, slug: 'viewer', permissions: ['doc.delete'] })).toMatchObject({ direction: 'revoke', tier: 'standard' });
  });

  it('classifies re-parenting and resource deletion by the assignments of the ancestors and subtree', () => {
    const s = base();
    expect(change(s, { kind: 'putResource', org: O, type: 'doc', id: 'x' })).toMatchObject({ kind: 'resource.create', direction: 'none' });
    run(s, { kind: 'createAssignment', org: O, principal: 'subject:bob', role: 'viewer', resource: 'folder:root' });
    expect(change(s, { kind: 'putResource', org: O, type: 'doc', id: 'd1', parent: 'doc:other' })).toMatchObject({ kind: 'resource.update', direction: 'revoke', tier: 'standard' });
    expect(change(s, { kind: 'putResource', org: O, type: 'doc', id: 'd1', parent: 'folder:root' })).toMatchObject({ direction: 'grant', tier: 'standard' });
    run(s, { kind: 'createAssignment', org: O, principal: 'subject:bob', role: 'admin', resource: 'doc:d1' });
    expect(change(s, { kind: 'deleteResource', org: O, type: 'folder', id: 'sub' })).toEqual({ kind: 'resource.delete', direction: 'revoke', tier: 'standard', rowsAdded: 0, rowsRemoved: 0 });
    expect(change(s, { kind: 'deleteResource', org: O, type: 'folder', id: 'root' })).toEqual({ kind: 'resource.delete', direction: 'revoke', tier: 'critical', rowsAdded: 0, rowsRemoved: 2 });
    expect(change(s, { kind: 'deleteResource', org: O, type: 'doc', id: 'x' })).toMatchObject({ direction: 'none', tier: null });
  });
});

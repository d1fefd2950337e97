/**
 * The oracle's nested groups and expiry (docs/semantics.md): paths, cycles and depth, diamonds,
 * deleting a group's edges both ways, expiry compared with `now`, the expiry job's commands and
 * how their change-log entries are classified.
 */
import { describe, expect, it } from 'vitest';
import { MAX_GROUP_DEPTH } from '../../src/domain/groups.ts';
import { effectiveKey } from '../../src/domain/model.ts';
import {
  applyCommand,
  createOracleState,
  dueExpiries,
  effectiveRows,
  isMembershipChain,
  oracleCheck,
  resourceAccessRows,
  shortestChain,
  type Command,
  type OracleState,
} from '../../src/domain/oracle.ts';

const O = 'acme';
const T0 = Date.parse('2026-12-01T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
let ids = 0;

function run(state: OracleState, now: number, ...cmds: Command[]): string | undefined {
  let last: string | undefined;
  for (const c of cmds) {
    const r = applyCommand(state, c, `a${++ids}`, now);
    if (!r.ok) throw new Error(`${c.kind} failed: ${r.code} on ${r.field}`);
    last = r.assignmentId;
  }
  return last;
}
const allowed = (s: OracleState, subject: string, now = T0, permission = 'doc.read', resource = 'doc:1') => {
  const r = oracleCheck(s, O, subject, permission, resource, now);
  if (!r.ok) throw new Error(`check failed: ${r.code}`);
  return r.allowed;
};
const nest = (group: string, member: string, expiresAt?: string): Command => ({ kind: 'addGroupMember', org: O, group, member, ...(expiresAt ? { expiresAt } : {}) });
const unnest = (group: string, member: string): Command => ({ kind: 'removeGroupMember', org: O, group, member });

/** acme: doc.read (standard), viewer, doc:1; alice, bob; groups org ⊃ dept ⊃ team (team holds alice). */
function base(): { s: OracleState; grant: string } {
  const s = createOracleState();
  run(
    s,
    T0,
    { kind: 'putOrganization', org: O },
    { kind: 'putPermission', org: O, slug: 'doc.read', risk: 'high' },
    { kind: 'putRole', org: O, slug: 'viewer', permissions: ['doc.read'] },
    { kind: 'putResource', org: O, type: 'doc', id: '1' },
    { kind: 'putSubject', org: O, id: 'alice', subjectKind: 'user' },
    { kind: 'putSubject', org: O, id: 'bob', subjectKind: 'user' },
    ...['org', 'dept', 'team', 'other'].map((id): Command => ({ kind: 'putGroup', org: O, id })),
    { kind: 'addMember', org: O, group: 'team', subject: 'alice' },
    nest('org', 'dept'),
    nest('dept', 'team'),
  );
  const grant = run(s, T0, { kind: 'createAssignment', org: O, principal: 'group:org', role: 'viewer', resource: 'doc:1' })!;
  return { s, grant };
}

describe('oracle: nested groups', () => {
  it('derives an assignment on the top group for a subject three levels down, with its path', () => {
    const { s, grant } = base();
    expect(allowed(s, 'alice')).toBe(true);
    expect(allowed(s, 'bob')).toBe(false);
    expect(effectiveRows(s, O).map(effectiveKey)).toEqual([`alice|${grant}|viewer|doc:1|org`]);
    expect(isMembershipChain(s, O, 'alice', ['team', 'dept', 'org'])).toBe(true);
    expect(isMembershipChain(s, O, 'alice', ['team', 'org'])).toBe(false);
    expect(shortestChain(s, O, 'alice', 'org')).toBe(3);
    const who = resourceAccessRows(s, O, 'doc:1', 'doc.read');
    expect(who.ok && who.rows.map((r) => r.subject)).toEqual(['alice']);
  });

  it('removing the mid-level edge revokes everyone below it; adding it back grants again', () => {
    const { s } = base();
    const cut = applyCommand(s, unnest('org', 'dept'), 'x', T0);
    expect(cut).toMatchObject({ ok: true, changed: true, change: { kind: 'membership.remove', direction: 'revoke', tier: 'high', rowsRemoved: 1 } });
    expect(allowed(s, 'alice')).toBe(false);
    expect(applyCommand(s, unnest('org', 'dept'), 'x', T0)).toMatchObject({ ok: true, changed: false });
    expect(applyCommand(s, nest('org', 'dept'), 'x', T0)).toMatchObject({ changed: true, change: { kind: 'membership.add', direction: 'grant', rowsAdded: 1 } });
    expect(allowed(s, 'alice')).toBe(true);
  });

  it('keeps one row through a diamond, and losing one of the two paths keeps access', () => {
    const { s } = base();
    run(s, T0, nest('org', 'other'), nest('other', 'team'));
    expect(effectiveRows(s, O)).toHaveLength(1);
    run(s, T0, unnest('dept', 'team'));
    expect(allowed(s, 'alice')).toBe(true);
    expect(isMembershipChain(s, O, 'alice', ['team', 'other', 'org'])).toBe(true);
    run(s, T0, unnest('other', 'team'));
    expect(allowed(s, 'alice')).toBe(false);
  });

  it('refuses cycles, naming the field, and leaves the state untouched', () => {
    const { s } = base();
    const rev = s.orgs.get(O)!.revision;
    expect(applyCommand(s, nest('team', 'org'), 'x', T0)).toEqual({ ok: false, code: 'GROUP_CYCLE', field: 'member' });
    expect(applyCommand(s, nest('team', 'team'), 'x', T0)).toEqual({ ok: false, code: 'GROUP_CYCLE', field: 'member' });
    expect(applyCommand(s, nest('dept', 'org'), 'x', T0)).toEqual({ ok: false, code: 'GROUP_CYCLE', field: 'member' });
    expect(s.orgs.get(O)!.revision).toBe(rev);
    expect(applyCommand(s, nest('org', 'ghost'), 'x', T0)).toEqual({ ok: false, code: 'NOT_FOUND', field: 'member' });
    expect(applyCommand(s, nest('ghost', 'org'), 'x', T0)).toEqual({ ok: false, code: 'NOT_FOUND', field: 'group' });
    expect(applyCommand(s, nest('org', 'bad id'), 'x', T0)).toEqual({ ok: false, code: 'VALIDATION', field: 'member' });
  });

  it(`bounds a chain at ${MAX_GROUP_DEPTH} groups, counting both sides of the new edge`, () => {
    const s = createOracleState();
    run(s, T0, { kind: 'putOrganization', org: O });
    const g = (i: number) => `g${i}`;
    for (let i = 0; i <= MAX_GROUP_DEPTH; i++) run(s, T0, { kind: 'putGroup', org: O, id: g(i) });
    // two halves, then the edge joining them
    const half = MAX_GROUP_DEPTH / 2;
    for (let i = 1; i < half; i++) run(s, T0, nest(g(i), g(i - 1)));
    for (let i = half + 1; i <= MAX_GROUP_DEPTH; i++) run(s, T0, nest(g(i), g(i - 1)));
    // g0..g(half-1) is `half` long, g(half)..g(MAX) is MAX-half+1: joined, one too many
    expect(applyCommand(s, nest(g(half), g(half - 1)), 'x', T0)).toEqual({ ok: false, code: 'GROUP_DEPTH_EXCEEDED', field: 'member' });
    run(s, T0, unnest(g(MAX_GROUP_DEPTH), g(MAX_GROUP_DEPTH - 1)));
    expect(applyCommand(s, nest(g(half), g(half - 1)), 'x', T0)).toMatchObject({ ok: true, changed: true });
  });

  it('deleting a group removes its edges both ways', () => {
    const { s } = base();
    run(s, T0, { kind: 'deleteGroup', org: O, id: 'dept' });
    const o = s.orgs.get(O)!;
    expect([...(o.nested.get('org') ?? [])]).toEqual([]);
    expect(o.nested.has('dept')).toBe(false);
    expect(allowed(s, 'alice')).toBe(false);
    // a group of the same name starts empty
    run(s, T0, { kind: 'putGroup', org: O, id: 'dept' }, nest('org', 'dept'));
    expect(allowed(s, 'alice')).toBe(false);
  });
});

describe('oracle: expiry', () => {
  const H = 3_600_000;

  it('denies from the instant of a membership expiry, without any job', () => {
    const { s } = base();
    run(s, T0, { kind: 'addMember', org: O, group: 'org', subject: 'bob', expiresAt: iso(T0 + H) });
    expect(allowed(s, 'bob', T0 + H - 1)).toBe(true);
    expect(allowed(s, 'bob', T0 + H)).toBe(false);
  });

  it('an expiring nested edge cuts everyone below it at its instant', () => {
    const { s } = base();
    run(s, T0, nest('dept', 'team', iso(T0 + H)));
    expect(allowed(s, 'alice', T0 + H - 1)).toBe(true);
    expect(allowed(s, 'alice', T0 + H)).toBe(false);
  });

  it('an expiring assignment; a repeated write with another expiry changes it, and no expiry removes it', () => {
    const { s } = base();
    const cmd = (expiresAt?: string): Command => ({ kind: 'createAssignment', org: O, principal: 'subject:bob', role: 'viewer', resource: 'doc:1', ...(expiresAt ? { expiresAt } : {}) });
    const a = applyCommand(s, cmd(iso(T0 + H)), 'asg-b', T0);
    expect(a).toMatchObject({ ok: true, changed: true, created: true, assignmentId: 'asg-b', change: { kind: 'assignment.create', direction: 'grant' } });
    expect(applyCommand(s, cmd(iso(T0 + H)), 'x', T0)).toMatchObject({ changed: false, assignmentId: 'asg-b' });
    expect(applyCommand(s, cmd(iso(T0 + 2 * H)), 'x', T0)).toMatchObject({ changed: true, created: false, assignmentId: 'asg-b', change: { kind: 'assignment.update', direction: 'none' } });
    expect(allowed(s, 'bob', T0 + H)).toBe(true);
    expect(allowed(s, 'bob', T0 + 2 * H)).toBe(false);
    expect(applyCommand(s, cmd(), 'x', T0)).toMatchObject({ changed: true, change: { kind: 'assignment.update' } });
    expect(allowed(s, 'bob', T0 + 100 * H)).toBe(true);
  });

  it('refuses an expiry already past or malformed, naming expiresAt', () => {
    const { s } = base();
    const add = (expiresAt: string): Command => ({ kind: 'addMember', org: O, group: 'org', subject: 'bob', expiresAt });
    expect(applyCommand(s, add(iso(T0)), 'x', T0)).toEqual({ ok: false, code: 'VALIDATION', field: 'expiresAt' });
    expect(applyCommand(s, add(iso(T0 - 1)), 'x', T0)).toEqual({ ok: false, code: 'VALIDATION', field: 'expiresAt' });
    expect(applyCommand(s, add('tomorrow'), 'x', T0)).toEqual({ ok: false, code: 'VALIDATION', field: 'expiresAt' });
    expect(applyCommand(s, add('2026-13-01T00:00:00Z'), 'x', T0)).toEqual({ ok: false, code: 'VALIDATION', field: 'expiresAt' });
    expect(applyCommand(s, add('2027-01-01T00:00:00+02:00'), 'x', T0)).toMatchObject({ ok: true, changed: true });
  });

  it('the expiry job removes due items, earliest first, each a revocation classified at its instant', () => {
    const { s, grant } = base();
    run(
      s,
      T0,
      { kind: 'addMember', org: O, group: 'org', subject: 'bob', expiresAt: iso(T0 + 2 * H) },
      nest('dept', 'team', iso(T0 + H)),
      { kind: 'createAssignment', org: O, principal: 'group:org', role: 'viewer', resource: 'doc:1', expiresAt: iso(T0 + 3 * H) },
    );
    expect(dueExpiries(s, O, T0 + H - 1)).toEqual([]);
    const due = dueExpiries(s, O, T0 + 2 * H);
    expect(due).toEqual([
      { kind: 'expireMembership', org: O, group: 'dept', member: 'group:team' },
      { kind: 'expireMembership', org: O, group: 'org', member: 'subject:bob' },
    ]);
    const first = applyCommand(s, due[0]!, 'x', T0 + 2 * H);
    expect(first).toMatchObject({ ok: true, changed: true, change: { kind: 'membership.expired', direction: 'revoke', tier: 'high', rowsRemoved: 1 } });
    expect(applyCommand(s, due[1]!, 'x', T0 + 2 * H)).toMatchObject({ changed: true, change: { kind: 'membership.expired', direction: 'revoke', rowsRemoved: 1 } });
    // applied twice, or before its instant: nothing
    expect(applyCommand(s, due[1]!, 'x', T0 + 2 * H)).toMatchObject({ ok: true, changed: false });
    expect(applyCommand(s, { kind: 'expireAssignment', org: O, id: grant }, 'x', T0 + 2 * H)).toMatchObject({ changed: false });
    expect(applyCommand(s, { kind: 'expireAssignment', org: O, id: grant }, 'x', T0 + 3 * H)).toMatchObject({ changed: true, change: { kind: 'assignment.expired', direction: 'none' } });
    expect(s.orgs.get(O)!.assignments.has(grant)).toBe(false);
  });

  it('an expired item is still a row for writes: removing it changes no access, re-adding revives it', () => {
    const { s } = base();
    run(s, T0, { kind: 'addMember', org: O, group: 'org', subject: 'bob', expiresAt: iso(T0 + H) });
    const later = T0 + 2 * H;
    expect(applyCommand(s, { kind: 'addMember', org: O, group: 'org', subject: 'bob' }, 'x', later)).toMatchObject({
      changed: true, change: { kind: 'membership.update', direction: 'grant', rowsAdded: 1 },
    });
    expect(allowed(s, 'bob', later)).toBe(true);
    run(s, later, { kind: 'addMember', org: O, group: 'other', subject: 'bob', expiresAt: iso(later + H) });
    expect(applyCommand(s, { kind: 'removeMember', org: O, group: 'other', subject: 'bob' }, 'x', later + 2 * H)).toMatchObject({
      changed: true, change: { kind: 'membership.remove', direction: 'none' },
    });
    expect(dueExpiries(s, O, later + 2 * H)).toEqual([]);
  });
});

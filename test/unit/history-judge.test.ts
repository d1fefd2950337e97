/**
 * The history judge of the concurrency suites (test/helpers/history.ts) on hand-made histories: an
 * at_least_as_fresh deny is a violation only where one derivation grants at every revision from
 * the requested one on — not where the allow only survives because a later grant replaced a
 * revoked one (the later grant may lag; the revocation is enforced at once).
 */
import { describe, expect, it } from 'vitest';
import { applyCommand, createOracleState, type Command, type OracleState } from '../../src/domain/oracle.ts';
import { judgeHistory, type CheckRecord, type WriteRecord } from '../helpers/history.ts';

const ORG = 'A';

/** A with permission p, roles r1 and r2 granting it, doc:1, subject s, and s's assignment `y` of r2 on doc:1. */
function setup(): OracleState {
  const state = createOracleState();
  const cmds: Command[] = [
    { kind: 'putOrganization', org: ORG },
    { kind: 'putPermission', org: ORG, slug: 'p', risk: 'standard' },
    { kind: 'putRole', org: ORG, slug: 'r1', permissions: ['p'] },
    { kind: 'putRole', org: ORG, slug: 'r2', permissions: ['p'] },
    { kind: 'putResource', org: ORG, type: 'doc', id: '1' },
    { kind: 'putSubject', org: ORG, id: 's', subjectKind: 'user' },
    { kind: 'createAssignment', org: ORG, principal: 'subject:s', role: 'r2', resource: 'doc:1' },
  ];
  for (const c of cmds) expect(applyCommand(state, c, 'y').ok).toBe(true);
  return state;
}

/** Revision b+1: s gets r1 on doc:1 (assignment x, the async grant); b+2: r2 no longer grants p (y's allow revoked). */
function history(requested: (base: number) => number) {
  const state = setup();
  const base = state.orgs.get(ORG)!.revision;
  const writes: WriteRecord[] = [
    { who: 'w', seq: 1, t0: 10, t1: 20, cmd: { kind: 'createAssignment', org: ORG, principal: 'subject:s', role: 'r1', resource: 'doc:1' }, answer: { ok: true, revision: base + 1, changed: true, id: 'x', created: true } },
    { who: 'w', seq: 2, t0: 30, t1: 40, cmd: { kind: 'putRole', org: ORG, slug: 'r2', permissions: [] }, answer: { ok: true, revision: base + 2, changed: true } },
  ];
  const check: CheckRecord = {
    who: 'c', seq: 1, subject: 's', permission: 'p', resource: 'doc:1', mode: 'at_least_as_fresh', requested: requested(base),
    t0: 50, t1: 60, answer: { ok: true, allowed: false, revision: base + 2 },
  };
  return judgeHistory({
    org: ORG, setup: state, setupPolicy: null, writes, checks: [check], finalRevision: base + 2,
    changeLog: [{ revision: base + 1, kind: 'assignment.create' }, { revision: base + 2, kind: 'role.update' }],
  });
}

describe('judging at_least_as_fresh denies', () => {
  it('accepts a deny at the requested revision when the allow then rests on a later grant', () => {
    // At b the allow is y's; at b+1 x's and y's; at b+2 x's alone: no one derivation throughout.
    expect(history((b) => b).violations).toEqual([]);
  });

  it('flags a deny when a derivation committed by the requested revision still grants', () => {
    // x was committed at b+1 and grants at b+1 and b+2: asked for b+1, the check must see it.
    const v = history((b) => b + 1).violations;
    expect(v).toHaveLength(1);
    expect(v[0]).toMatch(/^at_least_as_fresh denied, but assignment x \(group -\) grants at every revision/);
  });
});

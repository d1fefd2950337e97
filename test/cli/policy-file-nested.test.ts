/**
 * Policy files with nested groups (`group:` members) and time-bound memberships and assignments
 * (`expiresAt`): parsing and its problems (a cycle in the file names the edge that closes it; an
 * expiry already past names its field), and applying on both engines — the file round-trips
 * through the members and assignments listings, a second apply changes nothing, a changed expiry
 * is an update, a cycle with the store's edges is refused at the member's place and rolls back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { LockstepError } from '../../src/domain/errors.ts';
import { applyPolicyFile } from '../../src/policy-file/apply.ts';
import { parsePolicyFile } from '../../src/policy-file/parse.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { policyProblems } from './harness.ts';

const NOW = Date.UTC(2031, 0, 1);
const LATER = '2031-03-01T17:00:00.000Z';
const LATEST = '2031-06-30T00:00:00.000Z';

const problemsOf = (text: string, now = NOW) => policyProblems(text, { now });

/** acme: org ⊃ eng ⊃ platform (ann, bob) and ⊃ contractors (cat, until LATER, as is the group itself in eng). */
const file = (o: { catUntil?: string; adminUntil?: string } = {}) =>
  [
    'organizations:',
    '  acme:',
    '    propagation: { grant: { standard: { mode: sync }, high: { mode: sync } } }',
    '    permissions: { doc.read: standard, doc.admin: high }',
    '    roles: { reader: [doc.read], admin: [doc.read, doc.admin] }',
    "    resources: { 'ws:main': null, 'doc:1': 'ws:main' }",
    '    subjects:',
    '      - { id: ann, kind: user }',
    '      - { id: bob, kind: user }',
    '      - { id: cat, kind: user }',
    '    groups:',
    '      - id: org',
    "        members: ['group:eng']",
    '      - id: eng',
    '        members:',
    "          - 'group:platform'",
    `          - { member: 'group:contractors', expiresAt: '${LATER}' }`,
    '      - id: platform',
    "        members: [ann, 'subject:bob']",
    '      - id: contractors',
    '        members:',
    `          - { member: cat, expiresAt: '${o.catUntil ?? LATER}' }`,
    '    assignments:',
    "      - { principal: 'group:org', role: reader, resource: 'ws:main' }",
    `      - { principal: 'subject:bob', role: admin, resource: 'doc:1', expiresAt: '${o.adminUntil ?? LATER}' }`,
  ].join('\n');

describe('policy files: nested groups and expiry, parsing', () => {
  it('reads group: members, subject: and bare subjects, and expiresAt on members and assignments', () => {
    const f = parsePolicyFile(file(), 't.yaml', { now: NOW });
    const groups = Object.fromEntries(f.organizations[0]!.groups.map((g) => [g.id, g.members.map((m) => [m.member, m.expiresAt])]));
    expect(groups).toEqual({
      org: [['group:eng', null]],
      eng: [['group:platform', null], ['group:contractors', LATER]],
      platform: [['subject:ann', null], ['subject:bob', null]],
      contractors: [['subject:cat', LATER]],
    });
    expect(f.organizations[0]!.assignments.map((a) => a.expiresAt)).toEqual([null, LATER]);
  });

  it('a cycle among the file’s nested groups is one problem naming the edge that closes it', () => {
    const text = ['organizations:', '  o:', '    groups:', "      - { id: a, members: ['group:b'] }", "      - { id: b, members: ['group:c', x] }", "      - { id: c, members: ['group:a'] }"].join('\n');
    expect(problemsOf(text)).toEqual([
      { path: 'organizations.o.groups[2].members[0]', line: 6, message: "group 'a' in group 'c' makes a cycle of nested groups: a ⊃ b ⊃ c ⊃ a" },
    ]);
    expect(problemsOf("organizations:\n  o:\n    groups:\n      - { id: a, members: ['group:a'] }\n")).toEqual([
      { path: 'organizations.o.groups[0].members[0]', line: 4, message: "group 'a' in group 'a' makes a cycle of nested groups: a ⊃ a" },
    ]);
  });

  it('an expiresAt already past, or not RFC 3339, is a problem naming the field; so are bad member maps', () => {
    const text = [
      'organizations:',
      '  o:',
      '    groups:',
      '      - id: g',
      '        members:',
      "          - { member: ann, expiresAt: '2030-12-31T23:59:59Z' }",
      "          - { member: bob, expiresAt: 'next friday' }",
      '          - { member: cat, until: x }',
      '          - { expiresAt: 2031-02-01T00:00:00Z }',
      "          - { member: 'group:BAD ID' }",
      "          - ann",
      "          - 'subject:ann'",
      '    assignments:',
      "      - { principal: 'group:g', role: r, resource: 'doc:1', expiresAt: '2031-01-01T00:00:00Z' }",
    ].join('\n');
    expect(problemsOf(text)).toEqual([
      { path: 'organizations.o.groups[0].members[0].expiresAt', line: 6, message: expect.stringContaining('is not in the future') },
      { path: 'organizations.o.groups[0].members[1].expiresAt', line: 7, message: expect.stringContaining('RFC 3339') },
      { path: 'organizations.o.groups[0].members[2].until', line: 8, message: expect.stringContaining("unknown key 'until'") },
      { path: 'organizations.o.groups[0].members[3]', line: 9, message: "missing 'member'" },
      { path: 'organizations.o.groups[0].members[4].member', line: 10, message: expect.stringContaining('member') },
      { path: 'organizations.o.groups[0].members[6]', line: 12, message: "member 'subject:ann' is listed twice (first at organizations.o.groups[0].members[5])" },
      // an expiry at the very instant of `now` is past: it would be born revoked
      { path: 'organizations.o.assignments[0].expiresAt', line: 14, message: expect.stringContaining('is not in the future') },
    ]);
  });
});

describeEachEngine('policy files: nested groups and expiry, applied', (engine) => {
  let db: Database;
  let ls: Lockstep;
  let clock = NOW;
  beforeAll(async () => {
    db = await engine.open();
    ls = createLockstep(db, { now: () => clock });
  });
  afterAll(async () => {
    await db?.close();
  });
  const parse = (text: string) => parsePolicyFile(text, 't.yaml', { now: clock });
  /** The organization's assignments, read back through the engine (by id, from the source table). */
  const assignments = async () => {
    const ids = await db.all<{ id: string }>("SELECT id FROM assignments WHERE org_id = 'acme' ORDER BY id");
    return Promise.all(ids.map((r) => ls.getAssignment('acme', r.id)));
  };
  const allowed = async (subject: string, permission = 'doc.read') => (await ls.check('acme', { subject, permission, resource: 'doc:1' })).allowed;

  it('round-trips through the listings; a second apply changes nothing; a changed expiry is an update', async () => {
    const first = await applyPolicyFile(ls, parse(file()));
    expect(first.changed).toBe(first.writes);
    expect(first.organizations[0]!.counts.memberships).toEqual({ created: 6, updated: 0, unchanged: 0 });
    // what the file says, read back
    const members = async (g: string) => (await ls.listMembers('acme', g)).members.map((m) => [m.member, m.expiresAt]);
    expect(await members('org')).toEqual([['group:eng', null]]);
    expect(await members('eng')).toEqual([['group:contractors', LATER], ['group:platform', null]]);
    expect(await members('platform')).toEqual([['subject:ann', null], ['subject:bob', null]]);
    expect(await members('contractors')).toEqual([['subject:cat', LATER]]);
    const asg = (await assignments()).map((a) => [a.principal, a.role, a.resource, a.expiresAt]).sort();
    expect(asg).toEqual([['group:org', 'reader', 'ws:main', null], ['subject:bob', 'admin', 'doc:1', LATER]]);
    // nested access, with its chain
    const viaCat = await ls.check('acme', { subject: 'cat', permission: 'doc.read', resource: 'doc:1' });
    expect(viaCat).toMatchObject({ allowed: true, evaluatedAgainst: 'read_model' });
    expect(viaCat.via?.chain).toEqual(['contractors', 'eng', 'org']);
    expect(await allowed('ann')).toBe(true);
    expect(await allowed('bob', 'doc.admin')).toBe(true);

    const rev = (await ls.getOrganization('acme')).revision;
    const again = await applyPolicyFile(ls, parse(file()));
    expect(again.changed).toBe(0);
    expect((await ls.getOrganization('acme')).revision).toBe(rev);

    const longer = await applyPolicyFile(ls, parse(file({ catUntil: LATEST, adminUntil: LATEST })));
    expect(longer.changed).toBe(2);
    expect(longer.organizations[0]!.counts.memberships).toEqual({ created: 0, updated: 1, unchanged: 5 });
    expect(longer.organizations[0]!.counts.assignments).toEqual({ created: 0, updated: 1, unchanged: 1 });
    expect(await members('contractors')).toEqual([['subject:cat', LATEST]]);

    // from the file's instants: the nested edge eng ⊃ contractors ends at LATER, so cat loses access
    // though cat's own membership runs to LATEST; bob's admin runs to LATEST
    clock = Date.parse(LATER);
    expect(await allowed('cat')).toBe(false);
    expect(await allowed('bob', 'doc.admin')).toBe(true);
    // and a file still saying LATER for what has now passed is refused, naming the field
    await expect(async () => parse(file())).rejects.toMatchObject({ code: 'VALIDATION', field: 'organizations.acme.groups[1].members[1].expiresAt' });
    clock = NOW;
  });

  it('a file edge that closes a cycle with the store’s edges is refused at its place; nothing is applied', async () => {
    await applyPolicyFile(ls, parse(file()));
    const rev = (await ls.getOrganization('acme')).revision;
    const text = file() + "\n      - { principal: 'group:platform', role: reader, resource: 'doc:1' }" + '\n';
    // in the store: platform ⊃ team; the file now also says team ⊃ org (org ⊃ eng ⊃ platform ⊃ team ⊃ org)
    await ls.putGroup('acme', 'team', {});
    await ls.addMember('acme', 'platform', 'group:team');
    const cyclic = text.replace("      - id: org\n        members: ['group:eng']", "      - id: org\n        members: ['group:eng']\n      - id: team\n        members: ['group:org']");
    expect(cyclic).not.toBe(text);
    const err = await applyPolicyFile(ls, parse(cyclic)).then(
      () => null,
      (e: unknown) => e as LockstepError,
    );
    expect(err).toMatchObject({ code: 'GROUP_CYCLE', field: 'organizations.acme.groups[1].members[0]', meta: { line: 15, edge: { parent: 'team', child: 'org' } } });
    expect(err!.message).toContain("group 'org' in group 'team'");
    expect((await ls.getOrganization('acme')).revision).toBe(rev + 2); // the two writes above, nothing of the file
    expect((await assignments()).filter((x) => x.principal === 'group:platform')).toEqual([]);
  });

  it('an expiresAt that has passed by the time the engine writes it is refused naming its place', async () => {
    const text = file({ adminUntil: '2031-01-01T00:00:01Z' });
    const parsed = parse(text);
    clock = NOW + 1000; // the file was valid when parsed; the instant has passed when applied
    try {
      await expect(applyPolicyFile(ls, parsed)).rejects.toMatchObject({ code: 'VALIDATION', field: 'organizations.acme.assignments[1].expiresAt', meta: { line: 25 } });
    } finally {
      clock = NOW;
    }
  });
});

/**
 * `lockstep test -f policy.yaml` (issue 14, policy tests): a file's assertions — allowed / denied
 * checks, optionally after writes — run against in-memory stores; a failed assertion exits 11 with
 * a readable diff naming the check's line and, for an unexpected allow, the derivation that allowed
 * it. The shipped example carries assertions that pass. Parsing problems are reported like every
 * other policy-file problem (path and line, exit 4, nothing run).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import { EXIT } from '../../src/cli/errors.ts';
import { formatTestReport, runAssertions } from '../../src/policy-file/assertions.ts';
import { parsePolicyFile } from '../../src/policy-file/parse.ts';
import { openSqlite } from '../../src/storage/sqlite-engine.ts';
import { killAll, lockstep, policyProblems, ROOT } from './harness.ts';

const POLICY = `organizations:
  t:
    permissions: { doc.read: standard, doc.delete: critical }
    roles: { viewer: [doc.read], owner: [doc.read, doc.delete] }
    resources: { 'folder:f': null, 'doc:d': 'folder:f', 'doc:other': null }
    subjects:
      - { id: alice, kind: user }
      - { id: bob, kind: user }
    groups:
      - { id: eng, members: [alice] }
      - { id: all }
    assignments:
      - { principal: 'group:eng', role: viewer, resource: 'folder:f' }
      - { principal: 'subject:bob', role: owner, resource: 'doc:d' }
`;

const fresh = async () => {
  const db = openSqlite(':memory:');
  await db.migrate();
  const ls = createLockstep(db);
  return { lockstep: ls, close: () => ls.close() };
};
const run = (text: string) => runAssertions(parsePolicyFile(text, 't.yaml'), fresh);

const problemsOf = (text: string) => policyProblems(text);

describe('policy assertions in-process', () => {
  it('passes assertions that hold, through the hierarchy and groups', async () => {
    const r = await run(`${POLICY}assertions:
  - name: eng reads the folder's documents
    allowed: [{ subject: alice, permission: doc.read, resource: 'doc:d' }]
    denied:
      - { subject: alice, permission: doc.delete, resource: 'doc:d' }
      - { subject: alice, permission: doc.read, resource: 'doc:other' }
`);
    expect(r.passed).toBe(true);
    expect(r.assertions).toHaveLength(1);
    expect(r.assertions[0]!.checks.map((c) => c.actual)).toEqual(['allowed', 'denied', 'denied']);
  });

  it('a failed check is a diff with its line, and an unexpected allow names its derivation', async () => {
    const text = `${POLICY}assertions:
  - name: bob cannot delete
    denied:
      - { subject: bob, permission: doc.delete, resource: 'doc:d' }
  - name: alice can delete
    allowed:
      - { subject: alice, permission: doc.delete, resource: 'doc:d' }
`;
    const r = await run(text);
    expect(r.passed).toBe(false);
    expect(r.assertions.map((a) => a.passed)).toEqual([false, false]);
    const out = formatTestReport(r);
    expect(out).toContain('FAIL  bob cannot delete  (line 16)');
    expect(out).toContain("denied: bob doc.delete doc:d  (assertions[0].denied[0], line 18)");
    expect(out).toContain('- expected: denied');
    expect(out).toMatch(/\+ actual: {3}allowed via role owner on doc:d, assigned directly \(assignment /);
    expect(out).toContain('+ actual:   denied');
    expect(out).toContain('t.yaml: 2 assertions, 0 passed, 2 failed (2 checks, 2 failed)');
  });

  it('runs `after:` writes on a copy of their own: later assertions see the file as written', async () => {
    const r = await run(`${POLICY}assertions:
  - name: leaving eng revokes
    after:
      - remove_member: { group: eng, member: alice }
    denied: [{ subject: alice, permission: doc.read, resource: 'doc:d' }]
  - name: nested groups and moves
    after:
      - add_member: { group: all, member: 'group:eng' }
      - assign: { principal: 'group:all', role: owner, resource: 'doc:other' }
      - move_resource: { resource: 'doc:d', parent: null }
      - unassign: { principal: 'subject:bob', role: owner, resource: 'doc:d' }
    allowed: [{ subject: alice, permission: doc.delete, resource: 'doc:other' }]
    denied:
      - { subject: alice, permission: doc.read, resource: 'doc:d' }
      - { subject: bob, permission: doc.read, resource: 'doc:d' }
  - name: deactivation
    after: [{ deactivate: bob }]
    denied: [{ subject: bob, permission: doc.read, resource: 'doc:d' }]
  - name: untouched
    allowed:
      - { subject: alice, permission: doc.read, resource: 'doc:d' }
      - { subject: bob, permission: doc.delete, resource: 'doc:d' }
`);
    expect(r.assertions.map((a) => [a.name, a.passed])).toEqual([
      ['leaving eng revokes', true], ['nested groups and moves', true], ['deactivation', true], ['untouched', true],
    ]);
  });

  it('a write that fails fails its assertion, naming the write', async () => {
    const r = await run(`${POLICY}assertions:
  - name: bad write
    after:
      - unassign: { principal: 'subject:alice', role: owner, resource: 'doc:d' }
    denied: [{ subject: alice, permission: doc.delete, resource: 'doc:d' }]
  - name: unknown permission
    allowed: [{ subject: alice, permission: doc.nope, resource: 'doc:d' }]
`);
    expect(r.assertions.map((a) => a.passed)).toEqual([false, false]);
    const out = formatTestReport(r);
    expect(out).toContain('after: the write at line 18 failed: NOT_FOUND: no assignment of role owner to subject:alice on doc:d');
    expect(out).toMatch(/\+ actual: {3}error — NOT_FOUND: .*doc\.nope/);
  });

  it('reports problems in assertions with path and line, before running anything', () => {
    const problems = problemsOf(`${POLICY}assertions:
  - name: x
    allowed: [{ subject: alice, permission: doc.read }]
    denied: [{ subject: 'bad id', permission: doc.read, resource: 'doc:d' }]
    after:
      - rename_group: { group: eng }
  - org: nope
    allowed: []
  - name: none
`);
    expect(problems).toEqual([
      { path: 'assertions[0].allowed[0]', line: 17, message: "missing 'resource'" },
      { path: 'assertions[0].denied[0].subject', line: 18, message: expect.stringContaining('subject must be an id') },
      { path: 'assertions[0].after[0]', line: 20, message: expect.stringContaining('a write is one of add_member, remove_member') },
      { path: 'assertions[1].org', line: 21, message: "org 'nope' is not an organization of this file (t)" },
      { path: 'assertions[2]', line: 23, message: "an assertion needs 'allowed' or 'denied' checks" },
    ]);
  });
});

describe('lockstep test (the command)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lockstep-test-'));
  });
  afterAll(async () => {
    killAll();
    await rm(dir, { recursive: true, force: true });
  });

  it('examples/acme.yaml: its assertions pass (exit 0)', async () => {
    const r = await lockstep(['test', '-f', join(ROOT, 'examples/acme.yaml')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toMatch(/examples\/acme\.yaml: 5 assertions, 5 passed, 0 failed/);
    expect(r.stdout).not.toContain('FAIL');
  });

  it('a failed assertion exits 11 with the diff; --json has the same outcome', async () => {
    const file = join(dir, 'failing.yaml');
    await writeFile(file, `${POLICY}assertions:\n  - name: alice deletes\n    allowed: [{ subject: alice, permission: doc.delete, resource: 'doc:d' }]\n`);
    const r = await lockstep(['test', '-f', file]);
    expect(r.code).toBe(EXIT.ASSERTIONS_FAILED);
    expect(r.stdout).toContain('FAIL  alice deletes');
    expect(r.stdout).toContain('- expected: allowed');
    expect(r.stdout).toContain('+ actual:   denied');
    const j = await lockstep(['test', '-f', file, '--json']);
    expect(j.code).toBe(EXIT.ASSERTIONS_FAILED);
    expect(JSON.parse(j.stdout)).toMatchObject({ passed: false, assertions: [{ name: 'alice deletes', passed: false, checks: [{ expected: 'allowed', actual: 'denied' }] }] });
  });

  it('a file without assertions is a usage error; an invalid one exits 4', async () => {
    const none = join(dir, 'none.yaml');
    await writeFile(none, POLICY);
    const r = await lockstep(['test', '-f', none]);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toContain('has no assertions');
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, `${POLICY}assertions:\n  - denied: [{ subject: alice }]\n`);
    const b = await lockstep(['test', '-f', bad]);
    expect(b.code).toBe(EXIT.VALIDATION);
    expect(b.stderr).toContain("missing 'permission'");
  });
});

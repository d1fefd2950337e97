/**
 * The policy-file module in-process: parsing and its problem reports, resource ordering, counts of
 * created / updated / unchanged objects, and the progress output of a long apply.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createProgress } from '../../src/cli/progress.ts';
import { createLockstep } from '../../src/app.ts';
import { applyPolicyFile } from '../../src/policy-file/apply.ts';
import { parsePolicyFile } from '../../src/policy-file/parse.ts';
import { sortResources } from '../../src/policy-file/topo.ts';
import { openSqlite } from '../../src/storage/sqlite-engine.ts';
import { policyProblems, ROOT } from './harness.ts';

const problemsOf = (text: string) => policyProblems(text);

describe('parsePolicyFile', () => {
  it('reads examples/acme.yaml', async () => {
    const file = parsePolicyFile(await readFile(join(ROOT, 'examples/acme.yaml'), 'utf8'));
    const acme = file.organizations[0]!;
    expect(acme.id).toBe('acme');
    expect(acme.subjects.length).toBeGreaterThanOrEqual(100);
    expect(acme.subjects.filter((s) => s.kind !== 'user').map((s) => s.kind).sort()).toEqual(['agent', 'agent', 'service_account', 'service_account']);
    expect(acme.permissions.find((p) => p.slug === 'project.delete')!.risk).toBe('critical');
    expect(acme.permissions.find((p) => p.slug === 'project.export')!.risk).toBe('critical');
    expect(acme.roles.map((r) => r.slug)).toEqual(expect.arrayContaining(['viewer', 'editor', 'admin']));
    expect(file.writes).toBe(271);
  });

  it('names the path and line of every problem, in file order', () => {
    const problems = problemsOf(
      ['organizations:', '  acme:', '    colour: red', '    roles:', '      viewer: [ok.read, "NO"]', '    subjects:', '      - { id: a }', '      - { id: a, kind: user }', '      - { id: a, kind: user }'].join('\n'),
    );
    expect(problems).toEqual([
      { path: 'organizations.acme.colour', line: 3, message: expect.stringContaining("unknown key 'colour'") },
      { path: 'organizations.acme.roles.viewer[1]', line: 5, message: expect.stringContaining('permission must be a dotted slug') },
      { path: 'organizations.acme.subjects[0]', line: 7, message: "missing 'kind'" },
      { path: 'organizations.acme.subjects[2]', line: 9, message: "subject 'a' is listed twice (first at organizations.acme.subjects[1])" },
    ]);
  });

  it('reports YAML syntax errors and duplicate keys with their line', () => {
    expect(problemsOf('organizations:\n  acme: {}\n  acme: {}\n')[0]).toMatchObject({ path: 't.yaml', line: 3, message: expect.stringMatching(/^YAML: Map keys must be unique/) });
    expect(problemsOf('organizations: [\n')[0]).toMatchObject({ path: 't.yaml', message: expect.stringMatching(/^YAML: /) });
  });

  it('reports a resource cycle with its members', () => {
    const [p] = problemsOf('organizations:\n  o:\n    resources:\n      a:1: c:3\n      b:2: a:1\n      c:3: b:2\n      d:4: null\n');
    expect(p).toEqual({ path: 'organizations.o.resources["a:1"]', line: 4, message: 'resource parents form a cycle: a:1 → c:3 → b:2 → a:1' });
  });
});

describe('sortResources', () => {
  it('puts parents first, keeps file order otherwise, and leaves unknown parents to the store', () => {
    const r = (ref: string, parent: string | null) => ({ ref, parent });
    const out = sortResources([r('p:1', 'w:1'), r('x:1', 'elsewhere:1'), r('w:1', 'o:1'), r('o:1', null), r('p:2', 'w:1')]);
    expect('sorted' in out && out.sorted.map((n) => n.ref)).toEqual(['o:1', 'w:1', 'p:1', 'x:1', 'p:2']);
  });

  it('handles a long chain without recursion', () => {
    const chain = Array.from({ length: 50_000 }, (_, i) => ({ ref: `n:${i}`, parent: i === 0 ? null : `n:${i - 1}` })).reverse();
    const out = sortResources(chain);
    expect('sorted' in out && out.sorted[0]!.ref).toBe('n:0');
  });
});

describe('applyPolicyFile', () => {
  const base = (viewer: string, name = 'Org') =>
    `organizations:\n  o:\n    name: ${name}\n    permissions: { doc.read: standard, doc.write: high }\n    roles:\n      viewer: [${viewer}]\n` +
    `    resources: { 'doc:1': 'folder:1', 'folder:1': null }\n    subjects: [{ id: u1, kind: user }]\n` +
    `    groups: [{ id: g, members: [u1] }]\n    assignments: [{ principal: 'group:g', role: viewer, resource: 'folder:1' }]\n`;

  it('counts created, updated and unchanged objects; a dry run writes nothing', async () => {
    const db = openSqlite(':memory:');
    await db.migrate();
    const ls = createLockstep(db);
    const first = await applyPolicyFile(ls, parsePolicyFile(base('doc.read')));
    expect(first.changed).toBe(first.writes);
    expect(first.organizations[0]!.counts.resources).toEqual({ created: 2, updated: 0, unchanged: 0 });

    const dry = await applyPolicyFile(ls, parsePolicyFile(base('doc.read, doc.write', 'Org 2')), { dryRun: true });
    expect(dry.organizations[0]!.counts.roles).toEqual({ created: 0, updated: 1, unchanged: 0 });
    expect(dry.organizations[0]!.counts.organizations).toEqual({ created: 0, updated: 1, unchanged: 0 });
    expect(dry.organizations[0]!.revision).toBe(first.organizations[0]!.revision + 2);
    expect((await ls.getOrganization('o')).revision).toBe(first.organizations[0]!.revision);
    expect((await ls.check('o', { subject: 'u1', permission: 'doc.write', resource: 'doc:1', consistency: { mode: 'fully_consistent' } })).allowed).toBe(false);

    const real = await applyPolicyFile(ls, parsePolicyFile(base('doc.read, doc.write', 'Org 2')));
    expect(real.changed).toBe(2);
    expect((await ls.check('o', { subject: 'u1', permission: 'doc.write', resource: 'doc:1', consistency: { mode: 'fully_consistent' } })).allowed).toBe(true);
    await ls.close();
  });
});

describe('progress', () => {
  const sink = (isTTY: boolean) => {
    const lines: string[] = [];
    return { lines, stream: { isTTY, write: (s: string) => lines.push(s) } as unknown as NodeJS.WriteStream };
  };

  it('prints nothing for a small file and a line per tenth when stderr is not a terminal', () => {
    const small = sink(false);
    const p1 = createProgress(999, small.stream);
    for (let i = 1; i <= 999; i++) p1.update(i, 999);
    expect(small.lines).toEqual([]);

    const big = sink(false);
    const p2 = createProgress(2500, big.stream);
    for (let i = 1; i <= 2500; i++) p2.update(i, 2500);
    p2.stop();
    expect(big.lines).toHaveLength(10);
    expect(big.lines[0]).toBe('apply: 250/2500 writes (10%)\n');
    expect(big.lines[9]).toBe('apply: 2500/2500 writes (100%)\n');
  });
});

describe('propagation policy in a policy file', () => {
  it('is validated with its path and applied before the objects, so they propagate as it says', async () => {
    const bad = problemsOf(['organizations:', '  acme:', '    propagation:', '      grant: { high: { mode: later } }'].join('\n'));
    expect(bad).toEqual([{ path: 'organizations.acme.propagation.grant.high.mode', line: expect.any(Number), message: expect.stringContaining("'sync' or 'async'") }]);

    const text = [
      'organizations:',
      '  acme:',
      '    propagation: { grant: { standard: { mode: sync } }, inlineBudget: 500 }',
      '    permissions: { doc.read: standard }',
      '    roles: { reader: [doc.read] }',
      '    resources: { "doc:1": null }',
      '    subjects: [{ id: ann, kind: user }]',
      '    groups: [{ id: team, members: [ann] }]',
      '    assignments: [{ principal: "group:team", role: reader, resource: "doc:1" }]',
    ].join('\n');
    const db = openSqlite(':memory:');
    await db.migrate();
    const ls = createLockstep(db);
    const report = await applyPolicyFile(ls, parsePolicyFile(text));
    expect(report.pending).toBe(0); // standard grants made sync by the file's own policy
    expect(report.organizations[0]!.counts.propagation).toEqual({ created: 0, updated: 1, unchanged: 0 });
    expect(await ls.getPropagationPolicy('acme')).toMatchObject({ custom: true, policy: { grant: { standard: { mode: 'sync' } }, inlineBudget: 500 } });
    expect((await ls.check('acme', { subject: 'ann', permission: 'doc.read', resource: 'doc:1' })).allowed).toBe(true);
    const again = await applyPolicyFile(ls, parsePolicyFile(text));
    expect(again.changed).toBe(0);
    await db.close();
  });
});

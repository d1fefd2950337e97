/**
 * `lockstep apply` end to end, as a child process, on SQLite and PostgreSQL: the example applies
 * cleanly and idempotently, a file with an error applies nothing, a dry run writes nothing, and
 * `check` answers on the applied policy with its exit codes.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ApplyReport } from '../../src/policy-file/apply.ts';
import { EXIT } from '../../src/cli/errors.ts';
import { describeEachStore, killAll, lockstep, ROOT, storedSnapshot, type Store } from './harness.ts';

const ACME = join(ROOT, 'examples/acme.yaml');

describeEachStore('lockstep apply and check', (newStore) => {
  let store: Store;
  let files: string;
  const withDb = (...args: string[]) => [...args, '--db', store.db];
  const inspect = () => storedSnapshot(store);

  beforeAll(async () => {
    store = await newStore();
    files = await mkdtemp(join(tmpdir(), 'lockstep-cli-files-'));
  });
  afterAll(async () => {
    killAll();
    await store.drop();
    await rm(files, { recursive: true, force: true });
  });

  it('applies examples/acme.yaml, and a second run changes nothing', async () => {
    const first = await lockstep(withDb('apply', '-f', ACME, '--json'));
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const r1 = JSON.parse(first.stdout) as ApplyReport;
    expect(r1.dryRun).toBe(false);
    expect(r1.changed).toBe(r1.writes);
    const acme = r1.organizations[0]!;
    expect(acme.id).toBe('acme');
    expect(acme.revision).toBe(r1.writes);
    expect(acme.counts.subjects.created).toBeGreaterThanOrEqual(100);
    expect(acme.counts.assignments.created).toBeGreaterThan(10);
    expect(acme.counts.resources).toEqual({ created: 15, updated: 0, unchanged: 0 });

    const second = await lockstep(withDb('apply', '-f', ACME, '--json'));
    expect(second.code).toBe(0);
    const r2 = JSON.parse(second.stdout) as ApplyReport;
    expect(r2.changed).toBe(0);
    expect(r2.organizations[0]!.revision).toBe(acme.revision);
    for (const c of Object.values(r2.organizations[0]!.counts)) expect(c.created + c.updated).toBe(0);

    // The human report says so too.
    const third = await lockstep(withDb('apply', '-f', ACME));
    expect(third.stdout).toMatch(/271 writes, 0 changed/);
  });

  it('check: exit 0 when allowed, 3 when denied, 5 for an unknown permission', async () => {
    const allowed = await lockstep(withDb('check', '--org', 'acme', '--subject', 'amir.okafor', '--permission', 'project.delete', '--resource', 'project:api'));
    expect(allowed.code).toBe(EXIT.OK);
    expect(JSON.parse(allowed.stdout)).toMatchObject({ allowed: true, via: { role: 'admin', resource: 'workspace:platform', group: null } });

    // A contractor edits project:web through the group, but may not delete it.
    // Group grants of high permissions propagate asynchronously (nothing runs the jobs here): ask
    // the source of truth.
    const viaGroup = await lockstep(withDb('check', '--org', 'acme', '--subject', 'tomas.smith', '--permission', 'project.write', '--resource', 'project:web', '--consistency', 'fully_consistent'));
    expect(viaGroup.code).toBe(EXIT.OK);
    expect(JSON.parse(viaGroup.stdout).via.group).toBe('contractors');
    const denied = await lockstep(withDb('check', '--org', 'acme', '--subject', 'tomas.smith', '--permission', 'project.delete', '--resource', 'project:web', '--consistency', 'fully_consistent'));
    expect(denied.code).toBe(EXIT.DENIED);
    expect(JSON.parse(denied.stdout)).toMatchObject({ allowed: false, evaluatedAgainst: 'source' });

    // An offboarded (inactive) user has nothing.
    const inactive = await lockstep(withDb('check', '--org', 'acme', '--subject', 'chloe.costa', '--permission', 'project.read', '--resource', 'project:web'));
    expect(inactive.code).toBe(EXIT.DENIED);

    const unknown = await lockstep(withDb('check', '--org', 'acme', '--subject', 'tomas.smith', '--permission', 'project.nope', '--resource', 'project:web'));
    expect(unknown.code).toBe(EXIT.NOT_FOUND);
    expect(unknown.stderr).toBe("NOT_FOUND: permission 'project.nope' does not exist in this organization (permission)\n");
  });

  it('a file whose last write fails applies nothing (one transaction), and names the place', async () => {
    const before = await inspect();
    // Valid on its own, but the member 'ghost' does not exist: the engine refuses it after every
    // other write of the file has run inside the transaction.
    const broken = (await readFile(ACME, 'utf8'))
      .replace('name: Acme Corp', 'name: Acme Corporation')
      .replace('      - id: leadership\n        name: Leadership\n        members:\n', '      - id: leadership\n        name: Leadership\n        members:\n          - ghost\n');
    expect(broken).toContain('- ghost');
    const bad = join(files, 'broken.yaml');
    await writeFile(bad, broken);
    const run = await lockstep(withDb('apply', '-f', bad));
    expect(run.code).toBe(EXIT.NOT_FOUND);
    expect(run.stderr).toMatch(/^NOT_FOUND: subject 'ghost' does not exist in this organization \(organizations\.acme\.groups\[7\]\.members\[0\], line \d+\)$/m);
    expect(await inspect()).toEqual(before);
  });

  it('a structurally invalid file reports every problem and touches nothing', async () => {
    const before = await inspect();
    const bad = join(files, 'invalid.yaml');
    await writeFile(bad, 'organizations:\n  acme:\n    name: Acme\n    colour: red\n    roles:\n      viewer: [project.read, "Not A Slug"]\n');
    const run = await lockstep(withDb('apply', '-f', bad));
    expect(run.code).toBe(EXIT.VALIDATION);
    expect(run.stderr).toContain('has 2 problems');
    expect(run.stderr).toContain("organizations.acme.colour (line 4): unknown key 'colour'");
    expect(run.stderr).toContain('organizations.acme.roles.viewer[1] (line 6): permission must be a dotted slug');
    expect(await inspect()).toEqual(before);
  });

  it('--dry-run reports what would change and writes nothing', async () => {
    const before = await inspect();
    const file = join(files, 'rename.yaml');
    await writeFile(file, 'organizations:\n  acme:\n    name: Acme Corporation\n    subjects:\n      - { id: new.hire, kind: user }\n');
    const run = await lockstep(withDb('apply', '-f', file, '--dry-run', '--json'));
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as ApplyReport;
    expect(report).toMatchObject({ dryRun: true, writes: 2, changed: 2 });
    expect(report.organizations[0]!.counts.organizations).toEqual({ created: 0, updated: 1, unchanged: 0 });
    expect(report.organizations[0]!.counts.subjects).toEqual({ created: 1, updated: 0, unchanged: 0 });
    expect(await inspect()).toEqual(before);
  });

  it('a large file reports progress on stderr (a line per tenth when not a terminal)', async () => {
    const file = join(files, 'large.yaml');
    const subjects = Array.from({ length: 1099 }, (_, i) => `      - { id: bulk-${i}, kind: user }`).join('\n');
    await writeFile(file, `organizations:\n  bulk:\n    subjects:\n${subjects}\n`);
    const run = await lockstep(withDb('apply', '-f', file));
    expect(run.code).toBe(0);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(10);
    expect(lines[0]).toBe('apply: 110/1100 writes (10%)');
    expect(lines[9]).toBe('apply: 1100/1100 writes (100%)');
    expect(run.stdout).toMatch(/1100 writes, 1100 changed/);
  });
});

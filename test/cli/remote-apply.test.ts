/**
 * `lockstep apply --url`: a policy file applied by a real `lockstep serve` (POST /v1/apply), both
 * engines — one transaction on the server's database, the pending grants' jobs waited for, the same
 * report and the same problem lines (with their line numbers) as a local apply.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.ts';
import type { ApplyReport } from '../../src/policy-file/apply.ts';
import { describeEachStore, lockstep, ROOT, servedStore, storedSnapshot } from './harness.ts';

const ACME = join(ROOT, 'examples/acme.yaml');

describeEachStore('lockstep apply against a server (--url)', (newStore) => {
  const { store, url, remote } = servedStore(newStore);
  let dir = '';
  const stored = () => storedSnapshot(store());

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lockstep-apply-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('applies examples/acme.yaml and waits for the server to run the pending grants; a second run changes nothing', async () => {
    const r = await remote('apply', '-f', ACME);
    expect(r.code, r.stderr).toBe(EXIT.OK);
    expect(r.stdout).toMatch(new RegExp(`^applied ${ACME}: (\\d+) writes, \\1 changed, in `));
    expect(r.stdout).toMatch(/^organization acme: revision \d+$/m);
    expect(r.stdout).toMatch(/^propagated the pending grants: the server's workers ran their jobs$/m);
    // An asynchronous (high-risk) grant through a group, read from the read model: there once apply returned.
    const check = await remote('check', '--org', 'acme', '--subject', 'tomas.smith', '--permission', 'project.write', '--resource', 'project:web', '--consistency', 'minimize_latency');
    expect(check.code, check.stdout + check.stderr).toBe(EXIT.OK);
    expect(JSON.parse(check.stdout)).toMatchObject({ allowed: true, evaluatedAgainst: 'read_model' });
    const pending = JSON.parse((await remote('jobs', 'list', '--org', 'acme', '--state', 'pending', '--json')).stdout) as unknown[];
    expect(pending).toEqual([]);

    const again = await remote('apply', '-f', ACME, '--json');
    expect(again.code, again.stderr).toBe(EXIT.OK);
    const report = JSON.parse(again.stdout) as ApplyReport & { propagation: string };
    expect(report).toMatchObject({ changed: 0, pending: 0, dryRun: false, propagation: 'effective' });
    // the same report a local apply gives of the same file on the same store
    const local = JSON.parse((await lockstep(['apply', '-f', ACME, '--json', '--db', store().db])).stdout) as ApplyReport;
    expect(local.organizations).toEqual(report.organizations);
  });

  it('--dry-run reports the change and writes nothing', async () => {
    const file = join(dir, 'more.yaml');
    await writeFile(file, 'organizations:\n  acme:\n    name: Acme Corp\n    permissions:\n      report.read: standard\n');
    const before = await stored();
    const r = await remote('apply', '-f', file, '--dry-run', '--json');
    expect(r.code, r.stderr).toBe(EXIT.OK);
    expect(JSON.parse(r.stdout)).toMatchObject({ dryRun: true, changed: 1, organizations: [{ counts: { permissions: { created: 1 } } }] });
    expect(await stored()).toEqual(before);
  });

  it("a file with problems: exit 4 and the local command's lines, each problem at its line; nothing written", async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'organizations:\n  acme:\n    colour: red\n    roles:\n      editor: [project.read, Bad Slug]\n');
    const before = await stored();
    const r = await remote('apply', '-f', file);
    expect(r.code).toBe(EXIT.VALIDATION);
    const local = await lockstep(['apply', '-f', file, '--db', store().db]);
    expect(local.code).toBe(EXIT.VALIDATION);
    const lines = (s: string) => s.split('\n').filter((l) => l !== '' && !l.startsWith('  request id:'));
    expect(lines(r.stderr)).toEqual(lines(local.stderr));
    expect(r.stderr).toMatch(/^ {2}organizations\.acme\.colour \(line 3\): /m);
    expect(r.stderr).toMatch(/^ {2}request id: \S+$/m);
    expect(await stored()).toEqual(before);
    const missing = await remote('apply', '-f', join(dir, 'nope.yaml'));
    expect(missing.code).toBe(EXIT.VALIDATION);
    expect(missing.stderr).toMatch(/^VALIDATION: cannot read .*\(file\)$/m);
  });

  it("a write key of another organization: exit 12 naming the file's organization; of its own: applied", async () => {
    const beta = (await lockstep(['keys', 'create', '--scope', 'write', '--org', 'beta', '--db', store().db])).stdout.trim();
    const r = await lockstep(['apply', '-f', ACME, '--url', url(), '--key', beta]);
    expect(r.code).toBe(EXIT.AUTH);
    expect(r.stderr).toMatch(/^FORBIDDEN: .*\(organizations\.acme\)$/m);
    const acme = (await lockstep(['keys', 'create', '--scope', 'write', '--org', 'acme', '--db', store().db])).stdout.trim();
    const own = await lockstep(['apply', '-f', ACME, '--url', url(), '--key', acme, '--json']);
    expect(own.code, own.stderr).toBe(EXIT.OK);
    expect(JSON.parse(own.stdout)).toMatchObject({ changed: 0 });
  });
});

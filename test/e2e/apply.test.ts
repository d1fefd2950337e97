/**
 * POST /v1/apply on both engines: a policy file applied in one transaction (a refused write rolls
 * back every earlier one), idempotent, dry runs that change nothing, problems named by their place
 * and line in the file, and write keys held to their own organization.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { expectProblem, ORG, seed, startHarness, type Harness } from './harness.ts';

const ACME = readFileSync(new URL('../../examples/acme.yaml', import.meta.url), 'utf8');
const apply = (policy: string, extra: Record<string, unknown> = {}) => ({ body: { policy, source: 'test.yaml', ...extra } });

describeEachEngine('e2e: POST /v1/apply', (engine) => {
  let h: Harness;
  /** The asynchronous grants' jobs finish first: one committing mid-case would change the snapshots compared. */
  const drained = async () => {
    const busy = () => h.app.lockstep.listJobs({ states: ['pending', 'running', 'retrying'] });
    for (let i = 0; i < 2000 && (await busy()).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await busy()).toEqual([]);
  };
  beforeAll(async () => {
    h = await startHarness(engine);
    await seed(h, 'beta');
  });
  afterAll(async () => {
    await h?.close();
  });

  it('applies examples/acme.yaml in one go; a second time changes nothing; checks see it', async () => {
    const r = await h.req('POST', '/v1/apply', apply(ACME));
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ file: 'test.yaml', dryRun: false, organizations: [{ id: 'acme', revision: expect.any(Number) }] });
    expect(r.json.writes).toBeGreaterThan(100);
    expect(r.json.changed).toBe(r.json.writes);
    expect(r.json.organizations[0].counts.subjects.created).toBeGreaterThan(10);
    expect((await h.req('GET', `${ORG}/acme`)).json).toMatchObject({ name: 'Acme Corp', revision: r.json.organizations[0].revision });
    const check = await h.req('POST', `${ORG}/acme/check`, {
      body: { subject: 'amir.okafor', permission: 'project.delete', resource: 'project:api', consistency: { mode: 'fully_consistent' } },
    });
    expect(check.json).toMatchObject({ allowed: true });
    const again = await h.req('POST', '/v1/apply', apply(ACME));
    expect(again.json).toMatchObject({ writes: r.json.writes, changed: 0, pending: 0, organizations: [{ revision: r.json.organizations[0].revision }] });
  });

  it('dryRun reports what would change and writes nothing', async () => {
    await drained();
    const before = await h.snapshot('acme');
    const file = 'organizations:\n  acme:\n    name: Acme Corp\n    permissions:\n      report.read: standard\n    roles:\n      reader: [report.read]\n';
    const r = await h.req('POST', '/v1/apply', apply(file, { dryRun: true }));
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ dryRun: true, writes: 3, changed: 2 });
    expect(r.json.organizations[0].counts).toMatchObject({ permissions: { created: 1 }, roles: { created: 1 }, organizations: { unchanged: 1 } });
    expect(await h.snapshot('acme')).toEqual(before);
  });

  it('a file that does not validate: 400, every problem with its path and line, nothing written', async () => {
    await drained();
    const before = await h.snapshot('acme');
    const file = 'organizations:\n  acme:\n    colour: red\n    roles:\n      editor: [project.read, Bad Slug]\n';
    const r = await h.req('POST', '/v1/apply', apply(file));
    expectProblem(r, 400, 'VALIDATION', 'organizations.acme.colour');
    expect(r.json.errors).toEqual([
      { path: 'organizations.acme.colour', line: 3, message: expect.stringContaining("unknown key 'colour'") },
      { path: 'organizations.acme.roles.editor[1]', line: 5, message: expect.stringContaining('Bad Slug') },
    ]);
    expect(await h.snapshot('acme')).toEqual(before);
    expectProblem(await h.req('POST', '/v1/apply', apply('organizations: [')), 400, 'VALIDATION', 'test.yaml');
    expectProblem(await h.req('POST', '/v1/apply', { body: { source: 'x.yaml' } }), 400, 'VALIDATION', 'policy');
    expectProblem(await h.req('POST', '/v1/apply', { body: { policy: ACME, dryrun: true } }), 400, 'VALIDATION', 'dryrun');
    expectProblem(await h.req('POST', '/v1/apply', { body: { policy: ACME, dryRun: 'yes' } }), 400, 'VALIDATION', 'dryRun');
  });

  it('one transaction: a write the engine refuses late in the file rolls back the earlier ones (409 at its line)', async () => {
    await drained();
    const before = await h.snapshot('acme');
    // The permission and role are valid; changing amir.okafor's kind is not (CONFLICT), after them.
    const file = [
      'organizations:',
      '  acme:',
      '    name: Acme Corp',
      '    permissions:',
      '      report.read: standard',
      '    roles:',
      '      reader: [report.read]',
      '    subjects:',
      '      - { id: amir.okafor, kind: service_account }',
      '',
    ].join('\n');
    const r = await h.req('POST', '/v1/apply', apply(file));
    expectProblem(r, 409, 'CONFLICT');
    expect(r.json.field).toMatch(/^organizations\.acme\.subjects\[0\]/);
    expect(r.json.errors).toEqual([{ path: r.json.field, line: 9, message: r.json.detail }]);
    expect(await h.snapshot('acme')).toEqual(before);
  });

  it('a write key applies a file of its own organization; another organization, a new one, a rename or a check key: 403, nothing written', async () => {
    const write = await h.key('write', 'acme');
    const ok = await h.req('POST', '/v1/apply', { key: write, ...apply('organizations:\n  acme:\n    name: Acme Corp\n    permissions:\n      wiki.read: standard\n') });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json).toMatchObject({ changed: 1 });
    await drained();
    const before = [await h.snapshot('acme'), await h.snapshot('beta'), await h.snapshot('gamma')];
    const refused: [string, string][] = [
      ['organizations:\n  acme:\n    name: Acme Corp\n  beta:\n    name: Org beta\n', 'organizations.beta'],
      ['organizations:\n  gamma:\n    name: Gamma\n', 'organizations.gamma'],
      ['organizations:\n  acme:\n    name: Acme Renamed\n    permissions:\n      wiki.write: standard\n', 'organizations.acme'],
    ];
    for (const [file, field] of refused) expectProblem(await h.req('POST', '/v1/apply', { key: write, ...apply(file) }), 403, 'FORBIDDEN', field);
    expectProblem(await h.req('POST', '/v1/apply', { key: await h.key('check', 'acme'), ...apply('organizations:\n  acme:\n    name: Acme Corp\n') }), 403, 'FORBIDDEN');
    expect([await h.snapshot('acme'), await h.snapshot('beta'), await h.snapshot('gamma')]).toEqual(before);
    // An admin key may do all of it.
    expect((await h.req('POST', '/v1/apply', apply(refused[1]![0]))).status).toBe(200);
  });
});

/**
 * `lockstep serve` and `lockstep keys` as child processes: the generated admin key is printed once,
 * a key made by `keys create` authenticates against the running server until `keys revoke`, and
 * SIGTERM stops the server cleanly (exit 0).
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.ts';
import type { ApplyReport } from '../../src/policy-file/apply.ts';
import { childEnv, describeEachStore, finished, killAll, lockstep, ROOT, servingUrl, start, waitForStderr, type Store } from './harness.ts';

describeEachStore('lockstep serve and keys', (newStore) => {
  let store: Store;
  let server: ChildProcess | undefined;
  let url = '';
  let firstStart = '';
  let revision = 0;
  const withDb = (...args: string[]) => [...args, '--db', store.db];

  const check = (key: string, body: object = { subject: 'amir.okafor', permission: 'project.read', resource: 'project:api' }) =>
    fetch(`${url}/v1/organizations/acme/check`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    store = await newStore();
    const applied = await lockstep(withDb('apply', '-f', join(ROOT, 'examples/acme.yaml'), '--json'));
    expect(applied.code).toBe(0);
    revision = (JSON.parse(applied.stdout) as ApplyReport).organizations[0]!.revision;
    server = start(withDb('serve', '--port', '0'));
    let stderr = '';
    server.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    url = await servingUrl(server);
    firstStart = stderr;
  });
  afterAll(async () => {
    killAll();
    await store.drop();
  });

  it('prints a generated admin key once, in a marked block, and it works', async () => {
    const key = /ADMIN API key[\s\S]*?\n\s+(lsk_\S+)\n/.exec(firstStart)?.[1];
    expect(key).toBeDefined();
    expect(firstStart).toContain('shown ONCE');
    const res = await check(key!);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ allowed: true });
    // apply left group grants pending; serve's worker brings the read model up to the applied revision.
    const fresh = await check(key!, {
      subject: 'tomas.smith',
      permission: 'project.write',
      resource: 'project:web',
      consistency: { mode: 'at_least_as_fresh', revision },
    });
    expect(fresh.status).toBe(200);
    expect(await fresh.json()).toMatchObject({ allowed: true, evaluatedAgainst: 'read_model', via: { group: 'contractors' } });
  });

  it('keys create prints a key that authenticates until it is revoked', async () => {
    const created = await lockstep(withDb('keys', 'create', '--org', 'acme', '--scope', 'check', '--name', 'cli-test'));
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^lsk_[a-z0-9]{16}_\S+$/);
    expect(created.stderr).toMatch(/created check key [a-z0-9]{16} for organization acme; it is shown only this once/);
    expect((await check(key)).status).toBe(200);
    expect((await check(key + 'x')).status).toBe(401);

    const list = await lockstep(withDb('keys', 'list', '--org', 'acme', '--json'));
    const rows = JSON.parse(list.stdout) as { id: string; scope: string; name: string; revokedAt: string | null }[];
    const row = rows.find((r) => r.name === 'cli-test')!;
    expect(row).toMatchObject({ scope: 'check', revokedAt: null });
    // The secret is everything after lsk_<id>_ (base64url: it may itself contain '_').
    expect(list.stdout).not.toContain(key.slice('lsk_'.length + 17));

    expect((await lockstep(withDb('keys', 'revoke', row.id))).code).toBe(0);
    expect((await check(key)).status).toBe(401);
    const again = await lockstep(withDb('keys', 'revoke', row.id));
    expect(again.code).toBe(EXIT.NOT_FOUND);
    expect(again.stderr).toBe(`NOT_FOUND: no active API key with id '${row.id}' (id)\n`);
    const table = await lockstep(withDb('keys', 'list', '--all'));
    expect(table.stderr).toBe("");
    expect(table.stdout).toMatch(new RegExp(`^${row.id}\\s+check\\s+acme\\s+cli-test\\s+\\S+\\s+\\S+$`, 'm'));
  });

  it('keys create refuses a check key without --org (usage, exit 2) and an unknown scope (exit 4)', async () => {
    const noOrg = await lockstep(withDb('keys', 'create', '--scope', 'check'));
    expect(noOrg.code).toBe(EXIT.USAGE);
    expect(noOrg.stderr).toMatch(/^USAGE: a check key belongs to one organization/);
    const badScope = await lockstep(withDb('keys', 'create', '--scope', 'root', '--org', 'acme'));
    expect(badScope.code).toBe(EXIT.VALIDATION);
    expect(badScope.stderr).toMatch(/^VALIDATION: scope must be one of admin, write, check \(scope\)/);
  });

  it('stops cleanly on SIGTERM; a restart prints no new admin key', async () => {
    const done = finished(server!);
    process.kill(server!.pid!, 'SIGTERM');
    const run = await done;
    expect(run).toMatchObject({ code: 0, signal: null });
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();

    const again = start(withDb('serve', '--port', '0'));
    const stderr = finished(again);
    await waitForStderr(again, /serving on/);
    process.kill(again.pid!, 'SIGINT');
    const out = await stderr;
    expect(out.code).toBe(0);
    expect(out.stderr).not.toContain('ADMIN API key');
    expect(out.stderr).toContain('SIGINT received, stopping');
  });
});

it('serve honours LOCKSTEP_DB and reports a port in use as an error', async () => {
  const { sqliteStore } = await import('./harness.ts');
  const store = await sqliteStore();
  try {
    const first = start(['serve', '--port', '0'], childEnv({ LOCKSTEP_DB: store.db }));
    const url = await servingUrl(first);
    const port = new URL(url).port;
    const clash = await lockstep(['serve', '--port', port], childEnv({ LOCKSTEP_DB: store.db }));
    expect(clash.code).toBe(EXIT.INTERNAL);
    expect(clash.stderr).toMatch(/^INTERNAL: .*EADDRINUSE/m);
    const migrate = await lockstep(['migrate'], childEnv({ LOCKSTEP_DB: store.db }));
    expect(migrate.stdout).toBe(`sqlite ${store.db}: up to date\n`);
    const stopped = finished(first);
    process.kill(first.pid!, 'SIGTERM');
    expect((await stopped).code).toBe(0);
  } finally {
    killAll();
    await store.drop();
  }
});

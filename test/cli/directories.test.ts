/**
 * `lockstep directories create | list | rotate` as child processes against a running `serve`: the
 * token printed once opens the directory's SCIM base URL, `list` never shows it, and after `rotate`
 * the old token gets 401 at once while the new one works.
 */
import type { ChildProcess } from 'node:child_process';
import { beforeAll, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.ts';
import { acmeStore, describeEachStore, lockstep, servingUrl, start } from './harness.ts';

describeEachStore('lockstep directories', (newStore) => {
  const { withDb } = acmeStore(newStore);
  let server: ChildProcess | undefined;
  let url = '';

  beforeAll(async () => {
    server = start(withDb('serve', '--port', '0'));
    url = await servingUrl(server);
  });

  const users = (base: string, token: string) => fetch(`${base}/Users`, { headers: { authorization: `Bearer ${token}` } });

  it('create prints a token that opens the SCIM base URL; rotate stops the old one at once; list shows no token', async () => {
    const created = await lockstep(withDb('directories', 'create', '--org', 'acme', '--name', 'Okta prod', '--provider', 'okta', '--public-url', url));
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^lsd_[a-f0-9]{16}_\S{43}$/);
    const base = /SCIM base URL (\S+);/.exec(created.stderr)?.[1];
    expect(base).toMatch(new RegExp(`^${url}/scim/v2/[a-f0-9]{16}$`));
    expect((await users(base!, token)).status).toBe(200);

    const list = await lockstep(withDb('directories', 'list', '--org', 'acme', '--public-url', url, '--json'));
    const rows = JSON.parse(list.stdout) as { id: string; name: string; provider: string; scimBaseUrl: string }[];
    expect(rows).toEqual([expect.objectContaining({ name: 'Okta prod', provider: 'okta', scimBaseUrl: base })]);
    expect(list.stdout).not.toContain(token.replace(/^lsd_[a-f0-9]{16}_/, '')); // the whole secret (it may itself contain '_')
    const table = await lockstep(withDb('directories', 'list', '--org', 'acme'));
    expect(table.stdout).toMatch(new RegExp(`^${rows[0]!.id}\\s+Okta prod\\s+okta\\s+0\\s+0\\s+1\\s+0`, 'm'));

    const rotated = await lockstep(withDb('directories', 'rotate', rows[0]!.id, '--org', 'acme'));
    expect(rotated.code, rotated.stderr).toBe(0);
    const fresh = rotated.stdout.trim();
    expect(fresh).not.toBe(token);
    expect((await users(base!, token)).status).toBe(401);
    expect((await users(base!, fresh)).status).toBe(200);
  });

  it('refuses an unknown provider (exit 4) and an unknown directory (not found)', async () => {
    const bad = await lockstep(withDb('directories', 'create', '--org', 'acme', '--name', 'x', '--provider', 'ldap'));
    expect(bad.code).toBe(EXIT.VALIDATION);
    expect(bad.stderr).toMatch(/^VALIDATION: provider must be one of okta, entra, generic/);
    const missing = await lockstep(withDb('directories', 'rotate', '0123456789abcdef', '--org', 'acme'));
    expect(missing.code).toBe(EXIT.NOT_FOUND);
  });

  it('the old --url (now --public-url) is a usage error that says so, and creates nothing', async () => {
    const old = await lockstep(withDb('directories', 'create', '--org', 'acme', '--name', 'x', '--url', 'https://lockstep.example'));
    expect(old.code).toBe(EXIT.USAGE);
    expect(old.stderr).toMatch(/^USAGE: directories: --url is now --public-url/m);
    const rows = JSON.parse((await lockstep(withDb('directories', 'list', '--org', 'acme', '--json'))).stdout) as { name: string }[];
    expect(rows.map((r) => r.name)).not.toContain('x');
  });
});

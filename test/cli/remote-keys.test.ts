/**
 * `lockstep keys --url`: create, list and revoke through a real `lockstep serve` (both engines),
 * with the same output as the local commands; a check key is refused (exit 12), bad input is exit 4
 * naming the field.
 */
import { expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.ts';
import { describeEachStore, lockstep, servedStore } from './harness.ts';


describeEachStore('lockstep keys against a server (--url)', (newStore) => {
  const { store, url, remote } = servedStore(newStore);

  it('create prints the key once on stdout; list shows it (table, --json) without the secret; revoke; revoke again', async () => {
    const made = await remote('keys', 'create', '--scope', 'check', '--org', 'acme', '--name', 'web app');
    expect(made.code, made.stderr).toBe(EXIT.OK);
    const key = made.stdout.trim();
    const id = /^lsk_([a-z0-9]{16})_/.exec(key)?.[1];
    expect(id).toBeDefined();
    expect(made.stderr).toContain(`created check key ${id} for organization acme; it is shown only this once`);
    // the key works against the server (denied: acme has no such subject, but authenticated)
    const check = await lockstep(['check', '--org', 'acme', '--subject', 'x', '--permission', 'p.read', '--resource', 'doc:1', '--url', url(), '--key', key]);
    expect(check.code, check.stderr).not.toBe(EXIT.AUTH);

    const table = await remote('keys', 'list', '--org', 'acme');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+SCOPE\s+ORG\s+NAME\s+CREATED\s+REVOKED$/);
    expect(table.stdout).toMatch(new RegExp(`^${id}\\s+check\\s+acme\\s+web app\\s`, 'm'));
    expect(table.stdout).not.toContain(key.slice(21));
    const json = JSON.parse((await remote('keys', 'list', '--json')).stdout) as { id: string; scope: string; org: string | null }[];
    expect(json.find((k) => k.id === id)).toMatchObject({ scope: 'check', org: 'acme', name: 'web app', revokedAt: null });
    expect(json.some((k) => k.scope === 'admin')).toBe(true);
    // the database lists the same keys
    const local = JSON.parse((await lockstep(['keys', 'list', '--json', '--db', store().db])).stdout) as { id: string }[];
    expect(local.map((k) => k.id)).toEqual(json.map((k) => k.id));

    const revoked = await remote('keys', 'revoke', id!);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toBe(`revoked key ${id}\n`);
    const again = await remote('keys', 'revoke', id!);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^key ${id} was already revoked`));
    const refused = await lockstep(['check', '--org', 'acme', '--subject', 'x', '--permission', 'p.read', '--resource', 'doc:1', '--url', url(), '--key', key]);
    expect(refused.code).toBe(EXIT.AUTH);
    expect((JSON.parse((await remote('keys', 'list', '--all', '--json')).stdout) as { id: string; revokedAt: string | null }[]).find((k) => k.id === id)?.revokedAt).toEqual(expect.any(String));
  });

  it('--json on create gives id and key; a check or write key may not manage keys (exit 12); bad input exit 4 naming the field', async () => {
    const made = JSON.parse((await remote('keys', 'create', '--scope', 'write', '--org', 'acme', '--json')).stdout) as { id: string; key: string; scope: string; org: string };
    expect(made).toMatchObject({ scope: 'write', org: 'acme', key: expect.stringMatching(new RegExp(`^lsk_${made.id}_`)) });
    const denied = await lockstep(['keys', 'list', '--url', url(), '--key', made.key]);
    expect(denied.code).toBe(EXIT.AUTH);
    expect(denied.stderr).toMatch(/^FORBIDDEN: this route needs a admin key/m);
    const denied2 = await lockstep(['keys', 'create', '--scope', 'check', '--org', 'acme', '--url', url(), '--key', made.key]);
    expect(denied2.code).toBe(EXIT.AUTH);
    const bad = await remote('keys', 'create', '--scope', 'check', '--org', 'not an id');
    expect(bad.code).toBe(EXIT.VALIDATION);
    expect(bad.stderr).toMatch(/^VALIDATION: .*\(org\)$/m);
    const unknown = await remote('keys', 'revoke', '0000000000000000');
    expect(unknown.code).toBe(EXIT.NOT_FOUND);
    expect(unknown.stderr).toMatch(/^NOT_FOUND: .*\(id\)$/m);
  });

  it("the server's last admin key is not revoked (exit 6, CONFLICT)", async () => {
    const admins = (JSON.parse((await remote('keys', 'list', '--json')).stdout) as { id: string; scope: string }[]).filter((k) => k.scope === 'admin');
    expect(admins).toHaveLength(1);
    const r = await remote('keys', 'revoke', admins[0]!.id);
    expect(r.code).toBe(EXIT.CONFLICT);
    expect(r.stderr).toMatch(/^CONFLICT: .*last active admin key.*\(id\)$/m);
  });
});

/**
 * The CLI against a running server (`--url` / `--key`, or `$LOCKSTEP_URL` / `$LOCKSTEP_KEY`):
 * `check`, `jobs`, `drift` and `changes` as child processes talking HTTP on loopback to a real
 * `lockstep serve`, both engines. Errors keep the CLI's exit statuses; usage mistakes are 2.
 */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.ts';
import type { ApplyReport } from '../../src/policy-file/apply.ts';
import { childEnv, describeEachStore, lockstep, ROOT, SERVED_KEY, servedStore } from './harness.ts';


describeEachStore('lockstep CLI against a server (--url)', (newStore) => {
  let revision = 0;
  const { store, url, remote } = servedStore(newStore, {
    async prepare(fresh) {
      const applied = await lockstep(['apply', '-f', join(ROOT, 'examples/acme.yaml'), '--json', '--db', fresh.db]);
      expect(applied.code, applied.stderr).toBe(0);
      revision = (JSON.parse(applied.stdout) as ApplyReport).organizations[0]!.revision;
    },
  });
  const withDb = (...args: string[]) => [...args, '--db', store().db];
  const viaEnv = (args: string[], extra: Record<string, string> = {}) => lockstep(args, childEnv({ LOCKSTEP_URL: url(), LOCKSTEP_KEY: SERVED_KEY, ...extra }));

  it('check: allowed exits 0, denied 3, the answer as JSON off a terminal', async () => {
    const allowed = await remote('check', '--org', 'acme', '--subject', 'amir.okafor', '--permission', 'project.delete', '--resource', 'project:api');
    expect(allowed.code, allowed.stderr).toBe(EXIT.OK);
    expect(JSON.parse(allowed.stdout)).toMatchObject({ allowed: true, revision: expect.any(Number) });
    const fresh = await remote('check', '--org', 'acme', '--subject', 'tomas.smith', '--permission', 'project.write', '--resource', 'project:web', '--revision', String(revision));
    expect(fresh.code, fresh.stderr).toBe(EXIT.OK);
    expect(JSON.parse(fresh.stdout)).toMatchObject({ allowed: true, consistency: 'at_least_as_fresh', via: { group: 'contractors' } });
    const denied = await remote('check', '--org', 'acme', '--subject', 'tomas.smith', '--permission', 'project.delete', '--resource', 'project:web', '--json');
    expect(denied.code).toBe(EXIT.DENIED);
    expect(JSON.parse(denied.stdout)).toMatchObject({ allowed: false });
  });

  it('LOCKSTEP_URL and LOCKSTEP_KEY name the server when no flag does', async () => {
    // no --db and no LOCKSTEP_DB: a local check would open ./data/lockstep.db, where acme does not exist
    const r = await viaEnv(['check', '--org', 'acme', '--subject', 'amir.okafor', '--permission', 'project.delete', '--resource', 'project:api']);
    expect(r.code, r.stderr).toBe(EXIT.OK);
    expect(JSON.parse(r.stdout)).toMatchObject({ allowed: true });
  });

  it("the server's problem+json keeps the CLI's exit statuses: 400 → 4 naming the field, 401/403 → 12, no server → 9", async () => {
    const bad = await remote('check', '--org', 'acme', '--subject', 'amir.okafor', '--permission', 'project.delete', '--resource', 'no-colon');
    expect(bad.code).toBe(EXIT.VALIDATION);
    expect(bad.stderr).toMatch(/^VALIDATION: .*\(resource\)$/m);
    expect(bad.stderr).toMatch(/request id: \S+/);
    const stranger = await lockstep(['jobs', 'list', '--url', url(), '--key', 'lsk_nobody_nothing']);
    expect(stranger.code).toBe(EXIT.AUTH);
    expect(stranger.stderr).toMatch(/^UNAUTHENTICATED: /m);
    const made = await lockstep(withDb('keys', 'create', '--scope', 'check', '--org', 'acme'));
    const checkKey = made.stdout.trim();
    const forbidden = await lockstep(['jobs', 'retry', 'job_nope', '--url', url(), '--key', checkKey]);
    expect(forbidden.code).toBe(EXIT.AUTH);
    expect(forbidden.stderr).toMatch(/^FORBIDDEN: /m);
    const nobody = await lockstep(['jobs', 'list', '--url', 'http://127.0.0.1:9', '--key', SERVED_KEY]);
    expect(nobody.code).toBe(EXIT.UNAVAILABLE);
    expect(nobody.stderr).toMatch(/^UNAVAILABLE: no answer from http:\/\/127\.0\.0\.1:9/m);
  });

  it('usage mistakes are exit 2 and reach no store', async () => {
    const both = await lockstep(withDb('jobs', 'list', '--url', url(), '--key', SERVED_KEY));
    expect(both.code).toBe(EXIT.USAGE);
    expect(both.stderr).toContain('--url and --db name two stores');
    const keyAlone = await lockstep(withDb('jobs', 'list', '--key', SERVED_KEY));
    expect(keyAlone.code).toBe(EXIT.USAGE);
    const noKey = await lockstep(['jobs', 'list', '--url', url()]);
    expect(noKey.code).toBe(EXIT.USAGE);
    expect(noKey.stderr).toContain('--key');
    const notUrl = await lockstep(['jobs', 'list', '--url', 'localhost:7300', '--key', SERVED_KEY]);
    expect(notUrl.code).toBe(EXIT.USAGE);
  });

  it('jobs list: a table, or --json; the same jobs the database lists', async () => {
    const table = await remote('jobs', 'list', '--org', 'acme');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+STATE\s+ORG\s+SCOPE\s+DIRECTION\s+MEMBERS/);
    const json = JSON.parse((await remote('jobs', 'list', '--org', 'acme', '--json')).stdout) as { id: string; state: string }[];
    const local = JSON.parse((await lockstep(withDb('jobs', 'list', '--org', 'acme', '--json'))).stdout) as { id: string; state: string }[];
    expect(json.length).toBeGreaterThan(0);
    expect(json.map((j) => j.id).sort()).toEqual(local.map((j) => j.id).sort());
    for (const j of json) expect(table.stdout).toContain(j.id);
    const done = JSON.parse((await remote('jobs', 'list', '--org', 'acme', '--state', 'failed', '--json')).stdout) as unknown[];
    expect(done).toEqual([]);
  });

  it('drift: audits on the server; --repair follows the server-run job until the read model is whole', async () => {
    const clean = await remote('drift', '--org', 'acme');
    expect(clean.code, clean.stderr).toBe(EXIT.OK);
    expect(clean.stdout).toMatch(/organization acme at \S+: 0 missing rows, 0 extra rows/);
    // damage the read model behind the server's back
    const db = store().open();
    try {
      await db.run(`DELETE FROM effective_assignments WHERE org_id = $1 AND subject_id = $2`, ['acme', 'tomas.smith']);
    } finally {
      await db.close();
    }
    const found = await remote('drift', '--org', 'acme', '--limit', '5');
    expect(found.code).toBe(EXIT.DRIFT);
    expect(found.stdout).toMatch(/[1-9]\d* missing rows/);
    expect(found.stdout).toMatch(/^\s+missing\s+tomas\.smith\s/m);
    const repaired = await remote('drift', '--org', 'acme', '--repair', '--json');
    expect(repaired.code, repaired.stderr).toBe(EXIT.OK);
    const r = JSON.parse(repaired.stdout) as { report: { missing: number; repairJob: string }; after: { missing: number; extra: number } };
    expect(r.report.missing).toBeGreaterThan(0);
    expect(r.report.repairJob).toMatch(/^job_/);
    expect(r.after).toMatchObject({ missing: 0, extra: 0 });
  });

  it('changes: receipts newest first, a table or --json, paged with --before', async () => {
    const table = await remote('changes', '--org', 'acme', '--limit', '3');
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^REVISION\s+KIND\s+DIRECTION\s+TIER\s+MODE\s+STATUS\s+DECIDED/);
    expect(lines).toHaveLength(1 + 3 + 1);
    expect(lines.at(-1)).toMatch(/^more: --before \d+$/);
    const page = JSON.parse((await remote('changes', '--org', 'acme', '--limit', '3', '--json')).stdout) as { changes: { revision: number }[]; next: number };
    expect(page.changes.map((c) => c.revision)).toEqual([...page.changes.map((c) => c.revision)].sort((a, b) => b - a));
    const next = JSON.parse((await remote('changes', '--org', 'acme', '--limit', '3', '--before', String(page.next), '--json')).stdout) as { changes: { revision: number }[] };
    expect(Math.max(...next.changes.map((c) => c.revision))).toBeLessThan(Math.min(...page.changes.map((c) => c.revision)));
    // the database answers the same receipts
    const local = JSON.parse((await lockstep(withDb('changes', '--org', 'acme', '--limit', '3', '--json'))).stdout) as { changes: { revision: number }[] };
    expect(local.changes.map((c) => c.revision)).toEqual(page.changes.map((c) => c.revision));
    const revokes = JSON.parse((await remote('changes', '--org', 'acme', '--direction', 'revoke', '--json')).stdout) as { changes: { direction: string }[] };
    for (const c of revokes.changes) expect(['revoke', 'both']).toContain(c.direction);
    const missing = await remote('changes', '--org', 'nope');
    expect(missing.code).toBe(EXIT.NOT_FOUND);
  });
});

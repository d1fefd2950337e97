/**
 * Issue 10, item 12: the CLI's rough edges a new user met. No unhandled EPIPE when the reader of
 * stdout goes away (`| head`); `audit export --org nope` fails; a flag combination is a usage error
 * (exit 2); an organization is not "in this organization"; `worker` takes `--log-level` like `serve`.
 */
import { expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.ts';
import { acmeStore, describeEachStore, finished, lockstep, start } from './harness.ts';

describeEachStore('lockstep usability', (newStore) => {
  const { withDb } = acmeStore(newStore);

  it('stops quietly when the reader of stdout goes away (| head), with no EPIPE trace', async () => {
    for (const args of [withDb('audit', 'export'), withDb('keys', 'list')]) {
      const child = start(args);
      // Our end of the pipe closes before the CLI has written anything (it is still starting up),
      // so its first write meets a closed pipe, as `lockstep … | head -1` does once head has exited.
      child.stdout!.destroy();
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      expect(stderr, args.join(' ')).not.toMatch(/EPIPE|Unhandled|node:events/);
      expect(code, args.join(' ')).toBe(0);
    }
  });

  it('audit export of an organization that does not exist fails and says so', async () => {
    const run = await lockstep(withDb('audit', 'export', '--org', 'nope'));
    expect(run.code).toBe(EXIT.NOT_FOUND);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe("NOT_FOUND: organization 'nope' does not exist (org)\n");
    const acme = await lockstep(withDb('audit', 'export', '--org', 'acme'));
    expect(acme.code).toBe(0);
    expect(acme.stdout.split('\n').filter(Boolean).length).toBeGreaterThan(1);
  });

  it('keys create --scope admin --org acme is a usage error (exit 2), like --scope check without --org', async () => {
    const [admin, check] = await Promise.all([lockstep(withDb('keys', 'create', '--scope', 'admin', '--org', 'acme')), lockstep(withDb('keys', 'create', '--scope', 'check'))]);
    expect(admin.code).toBe(EXIT.USAGE);
    expect(admin.stderr).toBe('USAGE: an admin key spans every organization: give no --org\n');
    expect(check.code).toBe(EXIT.USAGE);
  });

  it('names a missing organization without "in this organization"', async () => {
    const run = await lockstep(withDb('drift', '--org', 'nope'));
    expect(run.code).toBe(EXIT.NOT_FOUND);
    expect(run.stderr).toBe("NOT_FOUND: organization 'nope' does not exist (org)\n");
  });

  it('worker accepts --log-level as serve does, and refuses a level that does not exist', async () => {
    // The children's environment says LOCKSTEP_LOG_LEVEL=warn: only the flag can make it log at info.
    const info = await lockstep(withDb('worker', '--drain', '--log-level', 'info'));
    expect(info.stderr).toBe('');
    expect(info.code).toBe(0);
    expect(info.stdout).toContain('"msg":"worker started"');
    const bad = await finished(start(withDb('worker', '--drain', '--log-level', 'loud')));
    expect(bad.code).toBe(EXIT.USAGE);
    expect(bad.stderr).toContain('USAGE: --log-level must be one of');
  });
});

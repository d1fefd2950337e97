/**
 * `lockstep targets add | list | replay` as child processes against a real store: the secret is
 * printed once, private URLs are refused unless LOCKSTEP_TARGETS_ALLOW_PRIVATE=1, list shows the
 * target, replay queues the recorded events after a revision.
 */
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.ts';
import { acmeStore, childEnv, lockstep, sqliteStore } from './harness.ts';

// SQLite only: each CLI run is a process start (seconds on a shared machine); the storage behind it
// runs on both engines in test/delivery/.
describe('lockstep targets [sqlite]', () => {
  const { withDb, store } = acmeStore(sqliteStore);

  it('adds, lists and replays a target', async () => {
    const refused = await lockstep(withDb('targets', 'add', '--org', 'acme', '--name', 'local', '--url', 'http://127.0.0.1:9/hook'));
    expect(refused.code).toBe(EXIT.VALIDATION);
    expect(refused.stderr).toMatch(/^VALIDATION: url must use https/);

    const added = await lockstep(withDb('targets', 'add', '--org', 'acme', '--name', 'local', '--url', 'http://127.0.0.1:9/hook', '--critical'), childEnv({ LOCKSTEP_TARGETS_ALLOW_PRIVATE: '1' }));
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/^whsec_[A-Za-z0-9+/=]{40,}\n$/);
    const id = /target (tgt_\S+)/.exec(added.stderr)![1]!;

    // a revocation after the target exists is recorded for it
    const db = store().open();
    const rev = Number((await db.get<{ revision: number }>("SELECT revision FROM organizations WHERE id = 'acme'"))!.revision);
    const member = await db.get<{ group_id: string; subject_id: string }>("SELECT group_id, subject_id FROM memberships WHERE org_id = 'acme' ORDER BY group_id, subject_id LIMIT 1");
    await db.close();
    const { createLockstep } = await import('../../src/app.ts');
    const db2 = store().open();
    await createLockstep(db2).removeMember('acme', member!.group_id, member!.subject_id);
    await db2.close();

    const listed = await lockstep(withDb('targets', 'list', '--org', 'acme', '--json'));
    expect(listed.code).toBe(0);
    const rows = JSON.parse(listed.stdout) as { id: string; state: string; critical: boolean; backlog: number }[];
    expect(rows).toEqual([expect.objectContaining({ id, state: 'active', critical: true, backlog: 1 })]);
    expect(listed.stdout).not.toContain('whsec_');

    const replay = await lockstep(withDb('targets', 'replay', id, '--org', 'acme', '--from', String(rev)));
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toBe(`queued 1 messages for ${id} (revisions after ${rev})\n`);
  });
});

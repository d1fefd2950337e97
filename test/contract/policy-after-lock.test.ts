/**
 * A write applies the propagation policy that is current when it holds the organization's lock, not
 * the one of the snapshot it took before waiting for it. Under READ COMMITTED a statement that waits
 * for a lock keeps its snapshot for every row but the locked one, so the policy must be read by a
 * later statement. PostgreSQL only: SQLite has one writer and no statement waits inside it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { SYNC_POLICY, type PropagationPolicy } from '../../src/domain/propagation.ts';
import { lockOrganization } from '../../src/policy/write.ts';
import type { Database, Sql } from '../../src/storage/database.ts';
import { lockAndReadOrganization } from '../../src/storage/locks.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { someoneWaits } from '../helpers/lock-waits.ts';
import { readerWorld } from '../helpers/lockstep-suite.ts';

const ASYNC: PropagationPolicy = { ...SYNC_POLICY, grant: { standard: { mode: 'async', sloMs: 2000 }, high: { mode: 'async', sloMs: 500 }, critical: { mode: 'async', sloMs: 100 } } };

describeEachEngine('the propagation policy a write applies', (engine) => {
  let db: Database;
  let ls: Lockstep;
  const org = 'p';
  beforeAll(async () => {
    db = await engine.open();
    ls = createLockstep(db, { defaultPolicy: SYNC_POLICY });
    await readerWorld(ls, org, ['alice']);
  });
  afterAll(() => db.close());

  if (engine.name === 'postgres') {
    // Declared on PostgreSQL alone: SQLite has one writer, so no statement waits inside another's lock.
    it('is the one a policy change committed while the write waited for the lock', async () => {
      let release!: () => void;
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => (locked = r));
      // A policy change holding the lock a write takes, as a policy write does, until told to commit.
      const change = db.transaction(async (tx) => {
        await lockOrganization(tx, org);
        await tx.run(`INSERT INTO propagation_policies (org_id, policy, updated_at) VALUES ($1, $2, $3)`, [org, JSON.stringify(ASYNC), Date.now()]);
        locked();
        await new Promise<void>((r) => (release = r));
      });
      await isLocked;
      const write = ls.addMember(org, 'g', 'alice');
      // The write is waiting for a lock (pg_stat_activity says so) before the change commits.
      await someoneWaits(db);
      release();
      await change;
      const written = await write;
      expect(written.propagation).toMatchObject({ mode: 'async', status: 'pending' });
      expect((await ls.getChange(org, written.revision)).mode).toBe('async');
    });
  }

  if (engine.name === 'postgres') {
    // The write's locks and its read of the organization are one statement (src/storage/locks.ts,
    // migrations/023_lock_and_frame.postgres.sql): the read is a statement of its own inside a
    // VOLATILE function, whose snapshot is taken after the wait. The control shows the hazard it
    // avoids: one statement that waits for the lock and reads the row reads it as before the wait.
    it('is read, with the locks in one round trip, as it is after the wait (a read in the snapshot of the lock statement is not)', async () => {
      const waitAndRead = async (read: (tx: Sql) => Promise<{ revision: number; policy: string | null } | undefined>) => {
        await db.run('DELETE FROM propagation_policies WHERE org_id = $1', [org]);
        const before = (await db.get<{ revision: number }>('SELECT revision FROM organizations WHERE id = $1', [org]))!.revision;
        let release!: () => void;
        let locked!: () => void;
        const isLocked = new Promise<void>((r) => (locked = r));
        const change = db.transaction(async (tx) => {
          await lockOrganization(tx, org);
          await tx.run('UPDATE organizations SET revision = revision + 1 WHERE id = $1', [org]);
          await tx.run(
            `INSERT INTO propagation_policies (org_id, policy, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (org_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`,
            [org, JSON.stringify(ASYNC), Date.now()],
          );
          locked();
          await new Promise<void>((r) => (release = r));
        });
        await isLocked;
        const reading = db.transaction((tx) => read(tx));
        await someoneWaits(db, 'advisory');
        release();
        await change;
        const row = await reading;
        await db.run('DELETE FROM propagation_policies WHERE org_id = $1', [org]);
        return { before, row };
      };
      const after = await waitAndRead((tx) => lockAndReadOrganization(tx, org, ['alice']));
      expect(after.row).toEqual({ revision: after.before + 1, policy: JSON.stringify(ASYNC) });
      const control = await waitAndRead((tx) =>
        tx.get<{ revision: number; policy: string | null }>(
          `SELECT o.revision, p.policy FROM organizations o LEFT JOIN propagation_policies p ON p.org_id = o.id
            WHERE o.id = $1 AND lockstep_lock($1, ARRAY['alice']) IS NOT NULL`,
          [org],
        ),
      );
      expect(control.row).toEqual({ revision: control.before, policy: null });
    });
  }

  if (engine.name === 'postgres') {
    // Group commit (PostgreSQL): writes of subjects alone reuse the first one's read of the policy
    // (src/policy/write.ts) — but not in a transaction that also holds an organization-wide write,
    // which may be the policy change itself.
    it('is the one a policy change earlier in the same shared transaction set', async () => {
      const sharing = createLockstep(db, { defaultPolicy: SYNC_POLICY });
      await sharing.putPropagationPolicy(org, SYNC_POLICY);
      for (const s of ['dave', 'erin']) await sharing.putSubject(org, s, { kind: 'user' });
      // The first write runs alone at once; the next three queue behind it and share a transaction:
      // a subject write (the first to read the policy), the policy change, a subject write.
      const lone = sharing.addMember(org, 'g', 'dave');
      const before = sharing.removeMember(org, 'g', 'dave');
      const change = sharing.putPropagationPolicy(org, ASYNC);
      const after = sharing.addMember(org, 'g', 'erin');
      await Promise.all([lone, change]);
      expect((await before).propagation.mode).toBe('sync');
      const written = await after;
      expect(written.propagation).toMatchObject({ mode: 'async', status: 'pending' });
      expect((await sharing.getChange(org, written.revision)).mode).toBe('async');
      await sharing.putPropagationPolicy(org, SYNC_POLICY);
    });
  }

  it('is the one set before it (both engines)', async () => {
    for (const [policy, subject, mode] of [[ASYNC, 'bob', 'async'], [SYNC_POLICY, 'carol', 'sync']] as const) {
      await ls.putPropagationPolicy(org, policy);
      await ls.putSubject(org, subject, { kind: 'user' });
      const written = await ls.addMember(org, 'g', subject);
      expect((await ls.getChange(org, written.revision)).mode).toBe(mode);
    }
  });
});

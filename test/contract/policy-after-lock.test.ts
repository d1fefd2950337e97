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
import type { Database } from '../../src/storage/database.ts';
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

/**
 * A write that PostgreSQL aborts as a deadlock's victim is run again (src/policy/write.ts) and
 * commits; nothing of the aborted attempt stays. The statement's error reaches the write's retry
 * loop wrapped by the storage seam (UNAVAILABLE, transient), which `isTransient` must recognize:
 * before, it read the wrapper's code, so a write was retried only for an error thrown outside a
 * statement (test/contract/write-retry.test.ts), never for a deadlock or a serialization failure.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { LockstepError } from '../../src/domain/errors.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import type { Database } from '../../src/storage/database.ts';
import { isTransient, wrapStorageError } from '../../src/storage/errors.ts';
import { lockForWrite } from '../../src/storage/locks.ts';
import { describePostgresOnly } from '../helpers/engines.ts';
import { someoneWaits } from '../helpers/lock-waits.ts';
import { readerWorld } from '../helpers/lockstep-suite.ts';

it('a transient driver error is transient raw, as a cause, and as the seam wraps it; others are not', () => {
  const deadlock = Object.assign(new Error('deadlock detected'), { code: '40P01' });
  let wrapped: unknown;
  try {
    wrapStorageError(deadlock);
  } catch (e) {
    wrapped = e;
  }
  expect(wrapped).toBeInstanceOf(LockstepError);
  expect((wrapped as LockstepError).code).toBe('UNAVAILABLE');
  expect([isTransient(deadlock), isTransient({ cause: deadlock }), isTransient(wrapped)]).toEqual([true, true, true]);
  const constraint = Object.assign(new Error('check violation'), { code: '23514' });
  expect([isTransient(constraint), isTransient(new LockstepError('INTERNAL', 'storage error', { cause: constraint })), isTransient(new LockstepError('UNAVAILABLE', 'behind'))]).toEqual([false, false, false]);
});

describePostgresOnly('a write that loses a deadlock', (engine) => {
  let db: Database;
  let ls: Lockstep;
  const org = 'dl';
  beforeAll(async () => {
    db = await engine.open();
    ls = createLockstep(db, { defaultPolicy: SYNC_POLICY, groupCommit: false });
    await readerWorld(ls, org, ['alice']);
  });
  afterAll(() => db.close());

  it('is run again and commits, as does the transaction it deadlocked with', async () => {
    const before = (await ls.getOrganization(org)).revision;
    let held!: () => void;
    const rowHeld = new Promise<void>((r) => (held = r));
    // Holds the organization's row (as a write's revision bump does), then asks for alice's lock,
    // which the write holds while it waits for that row: a cycle. This side checks for deadlocks
    // only after 30 s, so the write's check (1 s, the default) finds it and the write is aborted.
    const other = db.transaction(async (tx) => {
      await tx.run("SET LOCAL deadlock_timeout = '30s'");
      await tx.get(`SELECT revision FROM organizations WHERE id = $1${tx.forUpdate}`, [org]);
      held();
      await someoneWaits(db);
      await lockForWrite(tx, org, ['alice']);
      return 'committed';
    });
    await rowHeld;
    const write = await ls.addMember(org, 'g', 'alice');
    expect(await other).toBe('committed');
    expect(write.changed).toBe(true);
    // One revision: the aborted attempt left nothing (no revision, no change-log row, no membership twice).
    expect(write.revision).toBe(before + 1);
    expect((await ls.getOrganization(org)).revision).toBe(before + 1);
    expect((await ls.getChange(org, write.revision)).kind).toBe('membership.add');
    expect((await db.all('SELECT 1 AS x FROM memberships WHERE org_id = $1 AND subject_id = $2', [org, 'alice'])).length).toBe(1);
    expect((await ls.check(org, { subject: 'alice', permission: 'doc.read', resource: 'doc:d' })).allowed).toBe(true);
  });
});

/**
 * The write locks of docs/adr/0017-subject-locks.md on PostgreSQL: a transaction holding one
 * subject's lock (as a write or a subject batch of that subject does) lets a write on another
 * subject of the organization commit beside it, makes a write on the same subject wait, and makes an
 * organization-wide write wait; one holding the organization's lock makes every write wait. Waiting
 * is observed in pg_stat_activity, never by time. SQLite has one writer: nothing to lock.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import type { Database } from '../../src/storage/database.ts';
import { lockForWrite } from '../../src/storage/locks.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { someoneWaits } from '../helpers/lock-waits.ts';
import { readerWorld } from '../helpers/lockstep-suite.ts';

describeEachEngine('subject locks', (engine) => {
  let db: Database;
  let ls: Lockstep;
  const org = 'sl';
  beforeAll(async () => {
    db = await engine.open();
    ls = createLockstep(db, { defaultPolicy: SYNC_POLICY });
    await readerWorld(ls, org, ['s1', 's2', 's3']);
  });
  afterAll(() => db.close());

  /** A transaction holding `subjects`' locks (undefined: the organization's) until `release()`. */
  async function hold(subjects: string[] | undefined) {
    let release!: () => void;
    let held!: () => void;
    const isHeld = new Promise<void>((r) => (held = r));
    const done = db.transaction(async (tx) => {
      await lockForWrite(tx, org, subjects);
      held();
      await new Promise<void>((r) => (release = r));
    });
    await isHeld;
    return async () => (release(), await done);
  }

  /** Resolves once some statement of this database waits for an advisory lock. */
  const advisoryWait = () => someoneWaits(db, 'advisory');

  const allowed = async (s: string) => (await ls.check(org, { subject: s, permission: 'doc.read', resource: 'doc:d' })).allowed;

  if (engine.name === 'postgres') {
    // Declared on PostgreSQL alone: SQLite has one writer and takes no lock statement.
    it('a write on another subject commits while one subject is held; the same subject and the organization wait', async () => {
      const release = await hold(['s1']);
      // Another subject: commits while s1's lock is held (it would never return if it waited).
      const other = await ls.addMember(org, 'g', 's2');
      expect(other.changed).toBe(true);
      expect(await allowed('s2')).toBe(true);
      // The same subject, and an organization-wide write: both wait for the holder.
      let sameDone = false;
      let groupDone = false;
      const same = ls.addMember(org, 'g', 's1').then((r) => ((sameDone = true), r));
      await advisoryWait();
      const group = ls.putGroup(org, 'g2', {}).then((r) => ((groupDone = true), r));
      for (let i = 0; i < 20; i++) await db.get('SELECT 1 AS x');
      expect([sameDone, groupDone]).toEqual([false, false]);
      await release();
      const [s, g] = await Promise.all([same, group]);
      // Revisions stay contiguous and in commit order: s2's first, then the two that waited.
      expect([s.revision, g.revision].sort((a, b) => a - b)).toEqual([other.revision + 1, other.revision + 2]);
      expect(await allowed('s1')).toBe(true);
    });
  }

  if (engine.name === 'postgres') {
    // Declared on PostgreSQL alone: SQLite has one writer and takes no lock statement.
    it("the organization held makes a subject's write wait", async () => {
      const release = await hold(undefined);
      let done = false;
      const write = ls.removeMember(org, 'g', 's3').then((r) => ((done = true), r));
      await advisoryWait();
      for (let i = 0; i < 20; i++) await db.get('SELECT 1 AS x');
      expect(done).toBe(false);
      await release();
      expect((await write).changed).toBe(false);
    });
  }

  it('writes on many subjects at once commit with contiguous revisions and an exact read model (both engines)', async () => {
    for (let i = 0; i < 24; i++) await ls.putSubject(org, `m${i}`, { kind: 'user' });
    const before = (await ls.getOrganization(org)).revision;
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => ls.addMember(org, 'g', `m${i}`)));
    expect(results.map((r) => r.revision).sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => before + 1 + i));
    for (const r of results) expect((await ls.getChange(org, r.revision)).kind).toBe('membership.add');
    expect(await ls.auditDrift(org)).toMatchObject({ missing: 0, extra: 0 });
  });

  it('two processes\' group commits over overlapping subjects in opposite orders never deadlock (both engines)', async () => {
    // Two Lockstep instances over one database, each with its own group commit (two processes).
    const deadlocks: unknown[] = [];
    const watched: Database = {
      ...db,
      transaction: (fn) =>
        db.transaction(fn).catch((e: unknown) => {
          if ((e as { code?: string }).code === '40P01') deadlocks.push(e);
          throw e;
        }),
    };
    const a = createLockstep(watched, { defaultPolicy: SYNC_POLICY });
    const b = createLockstep(watched, { defaultPolicy: SYNC_POLICY });
    const subjects = Array.from({ length: 24 }, (_, i) => `n${i}`);
    for (const s of subjects) await ls.putSubject(org, s, { kind: 'user' });
    const before = (await ls.getOrganization(org)).revision;
    for (let round = 0; round < 3; round++) {
      const op = round % 2 === 0 ? 'addMember' : 'removeMember';
      await Promise.all([...subjects.map((s) => a[op](org, 'g', s)), ...[...subjects].reverse().map((s) => b[op](org, 'g', s))]);
    }
    expect(deadlocks).toEqual([]);
    const after = (await ls.getOrganization(org)).revision;
    // Each subject changed once per round (the other instance's same change found nothing to do).
    expect(after - before).toBe(3 * subjects.length);
    expect(await ls.auditDrift(org)).toMatchObject({ missing: 0, extra: 0 });
  });
});

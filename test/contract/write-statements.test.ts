/**
 * What a sync membership change sends inside its transaction, and that it still does all of it.
 *
 * On PostgreSQL every statement is a round trip that every write waiting for the same locks pays too
 * (issue 13). A subject added to or removed from a group takes three: the locks (the subject's, with
 * the organization's shared: docs/adr/0017-subject-locks.md) with, read after them in the same call,
 * the organization's revision and propagation policy (test/contract/policy-after-lock.test.ts); one
 * lookup (group, subject, membership, owning directory, event stream, the assignments its fan-out
 * multiplies) that also inserts or deletes the membership row, conditioned on what the command
 * refuses for; and one statement for the fan-out, the revision bump and the change log
 * (data-modifying CTEs). BEGIN goes with the first: docs/adr/0026-write-round-trips.md. SQLite
 * takes no lock (one writer) and, having no data-modifying CTEs and no round trips, runs the row
 * and the last one as four.
 * Before: nine on both engines (ADR 0013), then five on PostgreSQL.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { SYNC_POLICY, type PropagationPolicy } from '../../src/domain/propagation.ts';
import type { Database, Sql } from '../../src/storage/database.ts';
import { describeEachEngine, type TestEngine } from '../helpers/engines.ts';

/** Every change through a job. */
const ASYNC: PropagationPolicy = {
  grant: { standard: { mode: 'async', sloMs: 2000 }, high: { mode: 'async', sloMs: 500 }, critical: { mode: 'async', sloMs: 100 } },
  revoke: { standard: { mode: 'async', sloMs: 500 }, high: { mode: 'async', sloMs: 500 }, critical: { mode: 'async', sloMs: 100 } },
  inlineBudget: 10_000,
};

/** `db`, counting the statements its transactions run. */
function counting(db: Database) {
  const seen = { n: 0 };
  const wrap = (tx: Sql): Sql => ({
    ...tx,
    all: (s, p) => (seen.n++, tx.all(s, p)),
    get: (s, p) => (seen.n++, tx.get(s, p)),
    run: (s, p) => (seen.n++, tx.run(s, p)),
  });
  const wrapped: Database = { ...db, transaction: (fn) => db.transaction((tx) => fn(wrap(tx))) };
  return { db: wrapped, seen };
}

/** `db`, counting the statements of each transaction it runs, one entry per transaction in order. */
function countingPerTransaction(db: Database) {
  const perTx: number[] = [];
  const wrapped: Database = {
    ...db,
    transaction: (fn) =>
      db.transaction((tx) => {
        const i = perTx.push(0) - 1;
        return fn({
          ...tx,
          all: (st, p) => ((perTx[i]! += 1), tx.all(st, p)),
          get: (st, p) => ((perTx[i]! += 1), tx.get(st, p)),
          run: (st, p) => ((perTx[i]! += 1), tx.run(st, p)),
        });
      }),
  };
  return { db: wrapped, perTx };
}

/** A fresh store whose sync Lockstep counts its statements, with `org`, `doc.read` and the role `viewer` granting it. */
async function viewerOrg(engine: TestEngine, org: string) {
  const raw = await engine.open();
  const c = counting(raw);
  const ls = createLockstep(c.db, { defaultPolicy: SYNC_POLICY });
  await ls.putOrganization(org, {});
  await ls.putPermission(org, 'doc.read', { risk: 'standard' });
  await ls.putRole(org, 'viewer', { permissions: ['doc.read'] });
  return { raw, ls, seen: c.seen };
}

describeEachEngine('statements of a sync membership change', (engine) => {
  let raw: Database;
  let ls: Lockstep;
  let seen: { n: number };
  const org = 'o1';
  const expected = engine.name === 'postgres' ? 3 : 6;

  beforeAll(async () => {
    ({ raw, ls, seen } = await viewerOrg(engine, org));
    for (const d of ['d1', 'd2', 'd3']) await ls.putResource(org, 'doc', d, {});
    await ls.putGroup(org, 'g', {});
    await ls.putSubject(org, 'alice', { kind: 'user' });
    for (const d of ['d1', 'd2', 'd3']) await ls.createAssignment(org, { principal: 'group:g', role: 'viewer', resource: `doc:${d}` });
  });
  afterAll(async () => {
    await raw?.close();
  });

  const rows = async () => Number((await raw.get<{ n: number }>("SELECT COUNT(*) AS n FROM effective_assignments WHERE org_id = $1 AND subject_id = 'alice'", [org]))?.n);
  const lastChange = async () =>
    (await raw.get<{ kind: string; rows_added: number; rows_removed: number; revision: number }>(
      'SELECT kind, rows_added, rows_removed, revision FROM changes WHERE org_id = $1 ORDER BY revision DESC LIMIT 1',
      [org],
    ))!;

  it(`an add and a remove run ${expected} statements each, applying the fan-out and logging its counts and revision`, async () => {
    seen.n = 0;
    const added = await ls.addMember(org, 'g', 'alice');
    expect(seen.n).toBe(expected);
    expect(added.propagation).toMatchObject({ mode: 'sync', status: 'effective' });
    expect(await rows()).toBe(3);
    expect(await lastChange()).toMatchObject({ kind: 'membership.add', rows_added: 3, rows_removed: 0, revision: added.revision });
    expect((await ls.getOrganization(org)).revision).toBe(added.revision);
    expect((await ls.check(org, { subject: 'alice', permission: 'doc.read', resource: 'doc:d2' })).allowed).toBe(true);

    seen.n = 0;
    const removed = await ls.removeMember(org, 'g', 'alice');
    expect(seen.n).toBe(expected);
    expect(removed.revision).toBe(added.revision + 1);
    expect(await rows()).toBe(0);
    expect(await lastChange()).toMatchObject({ kind: 'membership.remove', rows_added: 0, rows_removed: 3, revision: removed.revision });
    expect((await ls.check(org, { subject: 'alice', permission: 'doc.read', resource: 'doc:d2' })).allowed).toBe(false);
  });

  // PostgreSQL: the membership row in the lookup, the job in the tail.
  const expectedAsync = engine.name === 'postgres' ? 3 : 6;
  it(`an async add and remove run ${expectedAsync} statements each, enqueueing the job the change log names`, async () => {
    const c = counting(raw);
    const async_ = createLockstep(c.db, { defaultPolicy: ASYNC, groupCommit: false });
    for (const op of ['add', 'remove'] as const) {
      c.seen.n = 0;
      const r = op === 'add' ? await async_.addMember(org, 'g', 'alice') : await async_.removeMember(org, 'g', 'alice');
      // PostgreSQL: the job, the revision, the change log and the NOTIFY in one statement.
      expect(c.seen.n).toBe(expectedAsync);
      expect(await raw.get('SELECT 1 AS x FROM memberships WHERE org_id = $1 AND group_id = $2 AND subject_id = $3', [org, 'g', 'alice'])).toEqual(op === 'add' ? { x: 1 } : undefined);
      expect(r.propagation).toMatchObject({ mode: 'async', status: 'pending' });
      const logged = (await raw.get<{ job_id: string; job_scope: string; revision: number }>(
        'SELECT job_id, job_scope, revision FROM changes WHERE org_id = $1 ORDER BY revision DESC LIMIT 1',
        [org],
      ))!;
      expect(logged).toMatchObject({ job_scope: 'subject:alice', revision: r.revision });
      const job = await raw.get<{ state: string; target_revision: number; scope: string }>('SELECT state, target_revision, scope FROM jobs WHERE id = $1', [logged.job_id]);
      // The remove coalesces into the add's pending job: same id, its target revision raised.
      expect(job).toMatchObject({ state: 'pending', target_revision: r.revision, scope: 'subject:alice' });
    }
    // No worker here: the add's rows never came, so the read model is as before.
    expect(await rows()).toBe(0);
    await raw.run("UPDATE jobs SET state = 'done' WHERE org_id = $1", [org]);
  });

  if (engine.name === 'postgres') {
    // Group commit (src/policy/combiner.ts) is PostgreSQL's. Three adds queued behind a lone one
    // share a transaction: its lock statement, which reads the organization once (subject locks
    // only: no policy change can commit beside them), and per write the lookup with the membership
    // row in it and the tail — no savepoint: the row is changed only when nothing refuses the
    // write after it. Before: 1 + 3 × 6 = 19 (a savepoint, its release, the organization read and
    // the membership row each write), then 2 + 3 × 2 (the organization read its own statement).
    it('three async adds sharing a transaction run 1 + 3 × 2 statements in it, and each commits its row, job and revision', async () => {
      const { db: wrapped, perTx } = countingPerTransaction(raw);
      const shared = createLockstep(wrapped, { defaultPolicy: ASYNC });
      const subjects = ['s0', 's1', 's2', 's3'];
      for (const s of subjects) await ls.putSubject(org, s, { kind: 'user' });
      perTx.length = 0;
      // The first starts a transaction of its own at once; the other three queue behind it.
      const written = await Promise.all(subjects.map((s) => shared.addMember(org, 'g', s)));
      expect(perTx).toEqual([3, 1 + 3 * 2]);
      expect(new Set(written.map((w) => w.revision)).size).toBe(4);
      for (const [i, s] of subjects.entries()) {
        expect(written[i]!.propagation).toMatchObject({ mode: 'async', status: 'pending' });
        expect(await raw.get('SELECT 1 AS x FROM memberships WHERE org_id = $1 AND group_id = $2 AND subject_id = $3', [org, 'g', s])).toEqual({ x: 1 });
        const logged = await raw.get<{ job_scope: string }>('SELECT job_scope FROM changes WHERE org_id = $1 AND revision = $2', [org, written[i]!.revision]);
        expect(logged).toEqual({ job_scope: `subject:${s}` });
      }
      for (const s of subjects) await ls.removeMember(org, 'g', s);
      await raw.run("UPDATE jobs SET state = 'done' WHERE org_id = $1", [org]);
    });

    // A subject's add inserts its row in its lookup, conditioned on everything the command refuses
    // the add for (src/policy/membership-commands.ts): a refused add changes nothing there, so it
    // rolls back alone — no savepoint, and the batch is not aborted and retried write by write, as
    // it would be were the row inserted (or the insert to fail) before the refusal.
    it('refused adds in a shared sync transaction insert nothing and leave the batch to commit the rest in 1 + 1 + 1 + 2 statements', async () => {
      const { db: wrapped, perTx } = countingPerTransaction(raw);
      const shared = createLockstep(wrapped, { defaultPolicy: SYNC_POLICY });
      for (const s of ['t0', 't1', 't2']) await ls.putSubject(org, s, { kind: 'user' });
      await ls.putGroup(org, 'owned', {});
      await raw.run(
        `INSERT INTO directories (id, org_id, name, provider, token_hash, token_created_at, created_at) VALUES ('dir1', $1, 'idp', 'generic', 'x', 0, 0)`,
        [org],
      );
      await raw.run(
        `INSERT INTO scim_resources (org_id, resource_type, id, directory_id, name_key, document, version, created_at, modified_at)
         VALUES ($1, 'Group', 'owned', 'dir1', 'owned', '{}', 1, 0, 0)`,
        [org],
      );
      perTx.length = 0;
      // The first runs alone at once; the other three queue behind it and share a transaction.
      const lone = shared.addMember(org, 'g', 't0');
      const unknown = shared.addMember(org, 'g', 'nobody');
      const owned = shared.addMember(org, 'owned', 't1');
      const added = shared.addMember(org, 'g', 't2');
      await expect(unknown).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(owned).rejects.toMatchObject({ code: 'CONFLICT' });
      expect((await lone).propagation).toMatchObject({ mode: 'sync', status: 'effective' });
      expect((await added).propagation).toMatchObject({ mode: 'sync', status: 'effective' });
      // Lone: the locks with the organization, the lookup with the row, the tail. Shared: the
      // locks with the organization; two refused lookups; a lookup with the row and its tail.
      expect(perTx).toEqual([3, 1 + 1 + 1 + 2]);
      const members = await raw.all<{ group_id: string; subject_id: string }>(
        "SELECT group_id, subject_id FROM memberships WHERE org_id = $1 AND subject_id IN ('t0', 't1', 't2', 'nobody') ORDER BY subject_id",
        [org],
      );
      expect(members).toEqual([
        { group_id: 'g', subject_id: 't0' },
        { group_id: 'g', subject_id: 't2' },
      ]);
      expect((await ls.check(org, { subject: 't2', permission: 'doc.read', resource: 'doc:d1' })).allowed).toBe(true);
      for (const s of ['t0', 't2']) await ls.removeMember(org, 'g', s);
    });
  }

  it('a write that changes nothing takes the locks with the organization and runs its lookup only, and stamps no revision', async () => {
    const before = (await ls.getOrganization(org)).revision;
    seen.n = 0;
    const r = await ls.removeMember(org, 'g', 'alice');
    expect(r.changed).toBe(false);
    // PostgreSQL: the locks and the organization's read in one statement (src/storage/locks.ts); SQLite: the read alone.
    expect(seen.n).toBe(2);
    expect((await ls.getOrganization(org)).revision).toBe(before);
  });
});

/**
 * A removal probes only the rows through the groups at and above its group when the organization has
 * no open job (its read model is in step); with one open, every group row of the subject, since a
 * pending revocation may have left a row elsewhere that no job will reach once the subject is gone.
 */
describeEachEngine('a sync removal cleans up stale rows while a job is open', (engine) => {
  let db: Database;
  const org = 'o2';
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(async () => {
    await db?.close();
  });
  const rowsVia = async (group: string) =>
    Number((await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM effective_assignments WHERE org_id = $1 AND subject_id = 'alice' AND group_id = $2", [org, group]))?.n);

  it('an async removal left a row through g2; the sync removal from g1 takes it too, and in step it leaves g2 alone', async () => {
    const sync = createLockstep(db, { defaultPolicy: SYNC_POLICY });
    const async_ = createLockstep(db, { defaultPolicy: ASYNC });
    await sync.putOrganization(org, {});
    await sync.putPermission(org, 'doc.read', { risk: 'standard' });
    await sync.putRole(org, 'viewer', { permissions: ['doc.read'] });
    for (const g of ['g1', 'g2']) {
      await sync.putResource(org, 'doc', g, {});
      await sync.putGroup(org, g, {});
      await sync.createAssignment(org, { principal: `group:${g}`, role: 'viewer', resource: `doc:${g}` });
    }
    await sync.putSubject(org, 'alice', { kind: 'user' });
    for (const g of ['g1', 'g2']) await sync.addMember(org, g, 'alice');
    expect([await rowsVia('g1'), await rowsVia('g2')]).toEqual([1, 1]);

    // In step (no open job): the removal from g1 leaves the row through g2, which is still derived.
    await sync.removeMember(org, 'g1', 'alice');
    expect([await rowsVia('g1'), await rowsVia('g2')]).toEqual([0, 1]);
    await sync.addMember(org, 'g1', 'alice');

    // The revocation from g2 goes to a job that no worker runs: its row stays, no longer derived.
    const pending = await async_.removeMember(org, 'g2', 'alice');
    expect(pending.propagation.status).toBe('pending');
    expect(await rowsVia('g2')).toBe(1);
    // The sync removal from g1 sees the open job and probes every group row of alice.
    await sync.removeMember(org, 'g1', 'alice');
    expect([await rowsVia('g1'), await rowsVia('g2')]).toEqual([0, 0]);
  });
});

/**
 * A group delete with no job open in the organization leaves its members' other group rows unread:
 * they are in step (docs/adr/0013-*), and probing them scanned the read model of every member inside
 * the delete's transaction (seconds for a large group). So its statements do not grow with its
 * members. With a job open it still probes them: test/propagation/nested-drift.test.ts.
 */
describeEachEngine('a group delete in step', (engine) => {
  let raw: Database;
  let ls: Lockstep;
  let seen: { n: number };
  const org = 'o3';
  const members = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

  beforeAll(async () => {
    ({ raw, ls, seen } = await viewerOrg(engine, org));
    for (const g of ['small', 'big', 'other']) {
      await ls.putResource(org, 'doc', g, {});
      await ls.putGroup(org, g, {});
      await ls.createAssignment(org, { principal: `group:${g}`, role: 'viewer', resource: `doc:${g}` });
    }
    // 501 members: two chunks of the stale-row probe, against one for the small group.
    for (const [group, ids] of [['small', members(1, 's')], ['big', members(501, 'b')]] as const) {
      for (const id of ids) {
        await ls.putSubject(org, id, { kind: 'user' });
        await ls.addMember(org, group, id);
        await ls.addMember(org, 'other', id);
      }
    }
  }, 120_000);
  afterAll(async () => {
    await raw?.close();
  });

  const count = async (where: string, params: unknown[]) => Number((await raw.get<{ n: number }>(`SELECT COUNT(*) AS n FROM effective_assignments WHERE org_id = $1 AND ${where}`, [org, ...params]))?.n);

  it('runs as many statements for 501 members as for one, removes the group rows and leaves the members\' other rows', async () => {
    expect(await raw.get("SELECT 1 AS x FROM jobs WHERE org_id = $1 AND state <> 'done'", [org])).toBeUndefined();
    const statements: number[] = [];
    for (const group of ['small', 'big']) {
      seen.n = 0;
      const r = await ls.deleteGroup(org, group);
      statements.push(seen.n);
      expect(r.propagation).toMatchObject({ mode: 'sync', status: 'effective' });
      expect(await count('group_id = $2', [group])).toBe(0);
    }
    expect(statements[1]).toBe(statements[0]);
    expect(await count('group_id = $2', ['other'])).toBe(502);
    expect((await ls.check(org, { subject: 'b500', permission: 'doc.read', resource: 'doc:big' })).allowed).toBe(false);
    expect((await ls.check(org, { subject: 'b500', permission: 'doc.read', resource: 'doc:other' })).allowed).toBe(true);
  });
});

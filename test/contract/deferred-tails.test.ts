/**
 * Group commit leaves the tails of subject-scoped writes to the end of the shared transaction
 * (src/policy/combiner.ts, docs/adr/0025-*), real databases:
 *  - the bodies run first, in order; a write that overlaps a waiting tail's subjects, or locks the
 *    whole organization, runs the waiting tails before its body; a refused body rolls back alone
 *    and the waiting tails still run and commit;
 *  - PostgreSQL: while a later write's body runs, the earlier writes' tails have not taken the
 *    organization's row (another connection updates it at once);
 *  - end to end, with an event stream recording: every write of many concurrent ones commits with
 *    its own revision, and its subject's delivery event carries exactly that revision.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import { createTargets } from '../../src/delivery/targets.ts';
import { notFound } from '../../src/domain/errors.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import { createCombiner, Tail } from '../../src/policy/combiner.ts';
import type { Database, Sql } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { readerWorld } from '../helpers/lockstep-suite.ts';

describeEachEngine('deferred tails', (engine) => {
  let db: Database;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(async () => {
    await db?.close();
  });

  const insert = (tx: Sql, id: string) => tx.run('INSERT INTO organizations (id, name, revision, created_at) VALUES ($1, $1, 0, 0)', [id]);

  it('runs the bodies first; an overlapping or organization-wide write runs the waiting tails first; a refused body rolls back alone', async () => {
    const combiner = createCombiner(db);
    const tag = `${engine.name}_order`;
    const log: string[] = [];
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    /** A write that logs its body and its tail, each inserting a row of its own. */
    const write = (name: string, subjects: string[] | undefined, refuse = false) =>
      combiner.submit('o', subjects, async (tx, shared) => {
        log.push(`body:${name}`);
        await insert(tx, `${tag}_${name}_body`);
        if (refuse) throw notFound('id', 'subject', name);
        return new Tail(async () => {
          log.push(`tail:${name}`);
          await insert(shared?.unguarded ?? tx, `${tag}_${name}_tail`);
          return name;
        });
      });
    // The first write holds its transaction open, so the next ones queue into one batch.
    const first = combiner.submit('o', ['x'], async () => (await gate, 'first'));
    const writes = [
      write('a1', ['a']),
      write('b', ['b']),
      write('refused', ['r'], true),
      write('a2', ['a']),
      write('org', undefined),
      write('c', ['c']),
    ];
    open();
    expect(await first).toBe('first');
    const settled = await Promise.allSettled(writes);
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : 'rejected'))).toEqual(['a1', 'b', 'rejected', 'a2', 'org', 'c']);
    expect(log).toEqual([
      'body:a1', 'body:b', 'body:refused',
      // a2 overlaps a1: the waiting tails first
      'tail:a1', 'tail:b', 'body:a2',
      // organization-wide: the waiting tail first, its own at once
      'tail:a2', 'body:org', 'tail:org',
      'body:c', 'tail:c',
    ]);
    const ids = (await db.all<{ id: string }>('SELECT id FROM organizations WHERE id LIKE $1 ORDER BY id', [`${tag}_%`])).map((r) => r.id.slice(tag.length + 1));
    expect(ids).toEqual(['a1_body', 'a1_tail', 'a2_body', 'a2_tail', 'b_body', 'b_tail', 'c_body', 'c_tail', 'org_body', 'org_tail']);
  });

  if (engine.name === 'postgres') {
    it("leaves the organization's row free while a later write's body runs", async () => {
      const combiner = createCombiner(db);
      const org = 'tails_row';
      await insert(db, org);
      let openFirst!: () => void;
      let openBody!: () => void;
      let inBody!: () => void;
      const firstGate = new Promise<void>((r) => (openFirst = r));
      const bodyGate = new Promise<void>((r) => (openBody = r));
      const bodyReached = new Promise<void>((r) => (inBody = r));
      const bump = (tx: Sql) => tx.get<{ revision: number }>('UPDATE organizations SET revision = revision + 1 WHERE id = $1 RETURNING revision', [org]);
      const first = combiner.submit(org, ['x'], async () => (await firstGate, 0));
      const a = combiner.submit(org, ['a'], async (tx, shared) => new Tail(async () => Number((await bump(shared?.unguarded ?? tx))!.revision)));
      const b = combiner.submit(org, ['b'], async (tx, shared) => {
        inBody();
        await bodyGate;
        return new Tail(async () => Number((await bump(shared?.unguarded ?? tx))!.revision));
      });
      openFirst();
      await first;
      await bodyReached;
      // a's tail (its bump) has not run: the row is free for another connection.
      const other = new pg.Client({ connectionString: process.env.LOCKSTEP_TEST_PG });
      await other.connect();
      try {
        await other.query(`SET search_path = ${(await db.get<{ s: string }>('SELECT current_schema() AS s'))!.s}`);
        await other.query("SET lock_timeout = '2s'");
        const r = await other.query('UPDATE organizations SET revision = revision + 10 WHERE id = $1 RETURNING revision', [org]);
        expect(Number(r.rows[0].revision)).toBe(10);
      } finally {
        await other.end();
      }
      openBody();
      // The tails then run in the writes' order, after what the other connection committed.
      expect([await a, await b]).toEqual([11, 12]);
    });
  }

  it('many concurrent writes with a stream recording: each subject’s event carries its write’s revision', async () => {
    const ls = createLockstep(db, { defaultPolicy: SYNC_POLICY });
    const org = 'tails_events';
    const subjects = Array.from({ length: 24 }, (_, i) => `u${String(i).padStart(2, '0')}`);
    await readerWorld(ls, org, subjects);
    await createTargets({ db, now: Date.now, allowPrivate: true }).create(org, { name: 'poller', kind: 'ssf', delivery: 'poll' });
    const before = (await ls.getOrganization(org)).revision;
    // Adds of every subject, a refused write, and removals of a few (each after its own add).
    const added = await Promise.all(subjects.map((s) => ls.addMember(org, 'g', s)));
    const mixed = await Promise.allSettled([
      ...subjects.slice(0, 6).map((s) => ls.removeMember(org, 'g', s)),
      ls.addMember(org, 'nogroup', 'u00'),
      ls.putGroup(org, 'h', {}),
    ]);
    expect(mixed.filter((r) => r.status === 'rejected').length).toBe(1);
    const revisions = [...added.map((r) => r.revision), ...mixed.flatMap((r) => (r.status === 'fulfilled' ? [r.value.revision] : []))].sort((x, y) => x - y);
    expect(revisions).toEqual(Array.from({ length: 31 }, (_, i) => before + 1 + i));
    const events = await db.all<{ revision: number; type: string; body: string }>(
      "SELECT revision, type, body FROM delivery_events WHERE org_id = $1 AND type IN ('access.granted', 'access.revoked') ORDER BY revision, seq",
      [org],
    );
    const of = (type: string) => {
      const out = new Map<string, number>();
      for (const e of events.filter((x) => x.type === type)) for (const s of (JSON.parse(e.body) as { subjects: string[] }).subjects) out.set(s, Number(e.revision));
      return out;
    };
    expect(of('access.granted')).toEqual(new Map(subjects.map((s, i) => [s, added[i]!.revision])));
    const removed = mixed.slice(0, 6).map((r) => (r as PromiseFulfilledResult<{ revision: number }>).value.revision);
    expect(of('access.revoked')).toEqual(new Map(subjects.slice(0, 6).map((s, i) => [s, removed[i]!])));
  });
});

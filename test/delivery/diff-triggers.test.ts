/**
 * The read model's delivery diff triggers exist only while an event stream exists
 * (docs/adr/0022-diff-triggers-only-with-streams.md), both engines, real databases:
 *  - a fresh store has none; the first stream's transaction creates them, and the write right after
 *    it is recorded and queued for the target; an organization without a stream records nothing;
 *  - another handle on the same store (another serve process) that wrote before the stream existed
 *    records its next write: nothing in a process remembers "no triggers";
 *  - migration 022 keeps them on a store with a stream and drops them on one without;
 *  - PostgreSQL, several connections: a write racing the first stream is either at or before the
 *    stream's since_revision or recorded, never lost; a writer of the read model in flight delays
 *    the stream's creation without deadlock, also when it then wants the stream's organization or
 *    the lock queue closes a cycle.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import { createTargets, ensureStream } from '../../src/delivery/targets.ts';
import type { Database, Sql } from '../../src/storage/database.ts';
import { DIFF_TRIGGERS, diffTriggers } from '../../src/storage/diff-triggers.ts';
import { lockForWrite } from '../../src/storage/locks.ts';
import { dropSchema, openPostgres } from '../../src/storage/postgres-engine.ts';
import { openSqlite } from '../../src/storage/sqlite-engine.ts';
import { describeEachEngine, postgresEngine, type TestEngine } from '../helpers/engines.ts';

const PG_URL = process.env.LOCKSTEP_TEST_PG ?? '';
const SUBJECTS = Array.from({ length: 8 }, (_, i) => `u${i}`);

/** An organization whose group `g` grants viewer on doc:1, synchronously, and subjects u0…u7. */
async function world(db: Database, org: string) {
  const ls = createLockstep(db);
  await ls.putOrganization(org, {});
  await ls.putPropagationPolicy(org, { grant: { standard: { mode: 'sync' } }, revoke: { standard: { mode: 'sync' } } });
  await ls.putPermission(org, 'doc.read', { risk: 'standard' });
  await ls.putRole(org, 'viewer', { permissions: ['doc.read'] });
  await ls.putResource(org, 'doc', '1', {});
  await ls.putGroup(org, 'g', {});
  await ls.createAssignment(org, { principal: 'group:g', role: 'viewer', resource: 'doc:1' });
  for (const s of SUBJECTS) await ls.putSubject(org, s, { kind: 'user' });
  return ls;
}

const addTarget = (db: Database, org: string) => createTargets({ db, now: Date.now, allowPrivate: true }).create(org, { name: 'poller', kind: 'ssf', delivery: 'poll' });

/** The subjects granted in the organization's recorded events, by revision. */
async function grants(db: Database, org: string): Promise<Map<string, number>> {
  const rows = await db.all<{ revision: number; body: string }>("SELECT revision, body FROM delivery_events WHERE org_id = $1 AND type = 'access.granted' ORDER BY revision, seq", [org]);
  const out = new Map<string, number>();
  for (const r of rows) for (const s of (JSON.parse(r.body) as { subjects: string[] }).subjects) out.set(s, Number(r.revision));
  return out;
}

const count = async (db: Sql, q: string, params: unknown[] = []) => Number((await db.get<{ n: number }>(q, params))!.n);

describeEachEngine('the diff triggers exist only with a stream', (engine) => {
  let db: Database;
  beforeEach(async () => {
    db = await engine.open();
  });
  afterEach(() => db.close());

  it('a fresh store has none; the first stream creates them; the next write is delivered', async () => {
    expect(await diffTriggers(db)).toEqual([]);
    const ls = await world(db, 'a');
    await world(db, 'quiet');
    await ls.addMember('a', 'g', 'u0');
    // No stream: nothing recorded, no event.
    expect(await count(db, 'SELECT COUNT(*) AS n FROM effective_diff')).toBe(0);

    const t = await addTarget(db, 'a');
    expect(await diffTriggers(db)).toEqual([...DIFF_TRIGGERS].sort());
    const since = Number((await db.get<{ since_revision: number }>("SELECT since_revision FROM event_streams WHERE org_id = 'a'"))!.since_revision);
    const w = await ls.addMember('a', 'g', 'u1');
    expect(w.revision).toBeGreaterThan(since);
    expect(await grants(db, 'a')).toEqual(new Map([['u1', w.revision]]));
    expect(await count(db, 'SELECT COUNT(*) AS n FROM deliveries WHERE target_id = $1 AND revision = $2', [t.id, w.revision])).toBe(1);

    // The organization without a stream still records nothing, and nothing is left in the diff.
    await createLockstep(db).addMember('quiet', 'g', 'u1');
    expect(await count(db, 'SELECT COUNT(*) AS n FROM effective_diff')).toBe(0);
    expect(await count(db, "SELECT COUNT(*) AS n FROM delivery_events WHERE org_id = 'quiet'")).toBe(0);

    // A second organization's first target finds the triggers there; a revocation is recorded too.
    await addTarget(db, 'quiet');
    expect(await diffTriggers(db)).toEqual([...DIFF_TRIGGERS].sort());
    await ls.removeMember('a', 'g', 'u1');
    expect(await count(db, "SELECT COUNT(*) AS n FROM delivery_events WHERE org_id = 'a' AND type = 'access.revoked'")).toBe(1);
  });

  it("another handle on the store (another process) records its writes once the other's stream exists", async () => {
    const two = await secondHandle(engine);
    try {
      const here = await world(two.first, 'a');
      await here.addMember('a', 'g', 'u0'); // this handle's statements are prepared before the triggers exist
      await addTarget(two.second, 'a');
      expect(await diffTriggers(two.first)).toEqual([...DIFF_TRIGGERS].sort());
      const w = await here.addMember('a', 'g', 'u1');
      expect(await grants(two.first, 'a')).toEqual(new Map([['u1', w.revision]]));
    } finally {
      await two.close();
    }
  });

  it('migration 022 keeps the triggers on a store with a stream and drops them on one without', async () => {
    for (const withStream of [true, false]) {
      const old = await engine.open({ through: 21 });
      try {
        expect(await diffTriggers(old)).toEqual([...DIFF_TRIGGERS].sort());
        await old.run("INSERT INTO organizations (id, name, revision, created_at) VALUES ('a', 'a', 0, 0)");
        if (withStream) await old.run("INSERT INTO event_streams (org_id, since_revision, created_at) VALUES ('a', 0, 0)");
        expect(await old.migrate()).toContain(22);
        expect(await diffTriggers(old)).toEqual(withStream ? [...DIFF_TRIGGERS].sort() : []);
        await old.run("INSERT INTO effective_assignments (org_id, subject_id, resource, assignment_id, role) VALUES ('a', 'u0', 'doc:1', 'x', 'viewer')");
        await old.run("DELETE FROM effective_assignments WHERE org_id = 'a'");
        expect(await old.all('SELECT subject_id, op FROM effective_diff ORDER BY op DESC')).toEqual(
          withStream ? [{ subject_id: 'u0', op: 1 }, { subject_id: 'u0', op: -1 }] : [],
        );
      } finally {
        await old.close();
      }
    }
  });
});

/** Two handles on one store, as two serve processes have: a SQLite file, or one PostgreSQL schema. */
async function secondHandle(engine: TestEngine): Promise<{ first: Database; second: Database; close(): Promise<void> }> {
  if (engine.name === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'lockstep-triggers-'));
    const first = openSqlite(join(dir, 'store.db'));
    await first.migrate();
    const second = openSqlite(join(dir, 'store.db'));
    return { first, second, close: async () => (await Promise.all([first.close(), second.close()]), rmSync(dir, { recursive: true, force: true })) };
  }
  const schema = `lockstep_t_${process.ppid}_${randomBytes(5).toString('hex')}`;
  const first = openPostgres(PG_URL, { schema });
  await first.migrate();
  const second = openPostgres(PG_URL, { schema });
  return { first, second, close: async () => (await Promise.all([first.close(), second.close()]), await dropSchema(PG_URL, schema)) };
}

/** A transaction that runs `body`, then stays open until `release()`; `pid`: its backend's. */
function heldTransaction(db: Database, body: (tx: Sql) => Promise<void>) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let ready!: (pid: number) => void;
  const pid = new Promise<number>((r) => (ready = r));
  const done = db.transaction(async (tx) => {
    await body(tx);
    ready(Number((await tx.get<{ pid: number }>('SELECT pg_backend_pid() AS pid'))!.pid));
    await gate;
  });
  return { pid, release, done };
}

/** Waits until some backend waits for `pid`'s locks. */
async function blockedBy(db: Database, pid: number) {
  for (let i = 0; i < 2000; i++) {
    if ((await count(db, 'SELECT COUNT(*) AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))', [pid])) > 0) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`nothing waited for backend ${pid}`);
}

const settledFlag = (p: Promise<unknown>) => {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  return () => done;
};

(PG_URL ? describe : describe.skip)('the first stream against concurrent writes [postgres]', () => {
  let db: Database;
  beforeEach(async () => {
    db = await postgresEngine.open();
  });
  afterEach(() => db.close());

  it('a write waiting for the stream transaction is recorded after it; one before it is not', async () => {
    const ls = await world(db, 'a');
    const before = await ls.addMember('a', 'g', 'u0');
    let since = 0;
    const stream = heldTransaction(db, async (tx) => {
      await lockForWrite(tx, 'a');
      since = Number((await tx.get<{ revision: number }>('SELECT revision FROM organizations WHERE id = $1 FOR UPDATE', ['a']))!.revision);
      await ensureStream(tx, 'a', since, 0);
    });
    const pid = await stream.pid;
    const write = ls.addMember('a', 'g', 'u1');
    await blockedBy(db, pid);
    stream.release();
    await stream.done;
    const w = await write;
    expect(before.revision).toBeLessThanOrEqual(since);
    expect(w.revision).toBeGreaterThan(since);
    expect(await grants(db, 'a')).toEqual(new Map([['u1', w.revision]]));
  });

  it('writes racing the first target are at or before since_revision, or recorded', { timeout: 60_000 }, async () => {
    for (let round = 0; round < 4; round++) {
      const fresh = await postgresEngine.open();
      try {
        const ls = await world(fresh, 'a');
        await world(fresh, 'b');
        const writes = SUBJECTS.map((s, i) => (i % 2 ? ls.addMember('b', 'g', s) : Promise.resolve(null)).then(() => ls.addMember('a', 'g', s)));
        const [target, ...written] = await Promise.all([new Promise((r) => setTimeout(r, round * 3)).then(() => addTarget(fresh, 'a')), ...writes]);
        const since = Number((await fresh.get<{ since_revision: number }>("SELECT since_revision FROM event_streams WHERE org_id = 'a'"))!.since_revision);
        const recorded = await grants(fresh, 'a');
        written.forEach((w, i) => {
          expect(recorded.get(SUBJECTS[i]!), `u${i} at ${w.revision} (since ${since})`).toBe(w.revision > since ? w.revision : undefined);
        });
        expect(await count(fresh, 'SELECT COUNT(*) AS n FROM deliveries WHERE target_id = $1', [target.id])).toBe(await count(fresh, "SELECT COUNT(*) AS n FROM delivery_events WHERE org_id = 'a'"));
        expect(await count(fresh, 'SELECT COUNT(*) AS n FROM effective_diff')).toBe(0);
      } finally {
        await fresh.close();
      }
    }
  });

  it("another organization's writer of the read model in flight delays the first stream, without deadlock", async () => {
    const ls = await world(db, 'a');
    await world(db, 'b');
    await world(db, 'c');
    const writer = heldTransaction(db, async (tx) => {
      await lockForWrite(tx, 'b', ['u0']);
      await tx.run("INSERT INTO effective_assignments (org_id, subject_id, resource, assignment_id, role) VALUES ('b', 'u0', 'doc:9', 'x', 'viewer')");
    });
    const wpid = await writer.pid;
    const target = addTarget(db, 'a');
    await blockedBy(db, wpid); // the stream's LOCK TABLE waits for the writer
    const later = createLockstep(db).addMember('c', 'g', 'u2'); // queues behind the stream's lock
    writer.release();
    await writer.done;
    await target;
    await later;
    expect(await diffTriggers(db)).toEqual([...DIFF_TRIGGERS].sort());
    const w = await ls.addMember('a', 'g', 'u3');
    expect(await grants(db, 'a')).toEqual(new Map([['u3', w.revision]]));
  });

  it('a transaction holding the read model that then wants the organization of the first stream: both commit', { timeout: 30_000 }, async () => {
    // As a policy file applied over organizations b then a: T holds the read model (ROW EXCLUSIVE,
    // b's rows) and asks for a's advisory lock, which the stream holds while it waits for T's.
    await world(db, 'a');
    await world(db, 'b');
    let go!: () => void;
    const gate = new Promise<void>((r) => (go = r));
    let pidOf!: (p: number) => void;
    const tPid = new Promise<number>((r) => (pidOf = r));
    const t = db.transaction(async (tx) => {
      await lockForWrite(tx, 'b');
      await tx.run("INSERT INTO effective_assignments (org_id, subject_id, resource, assignment_id, role) VALUES ('b', 'u0', 'doc:9', 'x', 'viewer')");
      pidOf(Number((await tx.get<{ pid: number }>('SELECT pg_backend_pid() AS pid'))!.pid));
      await gate;
      await lockForWrite(tx, 'a');
      await tx.run("INSERT INTO effective_assignments (org_id, subject_id, resource, assignment_id, role) VALUES ('a', 'u0', 'doc:9', 'x', 'viewer')");
    });
    const target = addTarget(db, 'a');
    await blockedBy(db, await tPid); // the stream waits for T's ROW EXCLUSIVE, holding a's lock
    go();
    await expect(Promise.all([t, target])).resolves.toBeDefined();
    expect(await diffTriggers(db)).toEqual([...DIFF_TRIGGERS].sort());
    // T committed before the stream (which gave up and ran again): its row of a is before since_revision.
    expect(await count(db, "SELECT COUNT(*) AS n FROM effective_diff")).toBe(0);
  });

  it('a lock-queue cycle through the stream resolves, no writer aborted', { timeout: 30_000 }, async () => {
    // W1 holds the read model (ROW EXCLUSIVE) and will want b's row; W2 holds b's row and will want
    // the read model, queued behind the stream, which waits for W1: W1 → W2 → stream → W1. The
    // stream gives up its wait first (and runs again); W2, W1 and the stream commit.
    await world(db, 'a');
    await world(db, 'b');
    let gate1!: () => void;
    const w1Gate = new Promise<void>((r) => (gate1 = r));
    let w1Pid!: (p: number) => void;
    const w1PidP = new Promise<number>((r) => (w1Pid = r));
    const w1 = db.transaction(async (tx) => {
      await lockForWrite(tx, 'b', ['u0']);
      await tx.run("INSERT INTO effective_assignments (org_id, subject_id, resource, assignment_id, role) VALUES ('b', 'u0', 'doc:9', 'x', 'viewer')");
      w1Pid(Number((await tx.get<{ pid: number }>('SELECT pg_backend_pid() AS pid'))!.pid));
      await w1Gate;
      await tx.run("UPDATE organizations SET revision = revision + 1 WHERE id = 'b'");
    });
    let gate2!: () => void;
    const w2Gate = new Promise<void>((r) => (gate2 = r));
    let w2Locked!: () => void;
    const w2LockedP = new Promise<void>((r) => (w2Locked = r));
    let w2Pid = 0;
    const w2 = db.transaction(async (tx) => {
      await lockForWrite(tx, 'b', ['u1']);
      await tx.run("UPDATE organizations SET revision = revision + 1 WHERE id = 'b'");
      w2Pid = Number((await tx.get<{ pid: number }>('SELECT pg_backend_pid() AS pid'))!.pid);
      w2Locked();
      await w2Gate;
      await tx.run("INSERT INTO effective_assignments (org_id, subject_id, resource, assignment_id, role) VALUES ('b', 'u1', 'doc:9', 'x', 'viewer')");
    });
    const pid1 = await w1PidP;
    await w2LockedP;
    const target = addTarget(db, 'a');
    await blockedBy(db, pid1); // the stream waits for W1
    gate2(); // W2's insert queues behind the stream
    const w2Done = settledFlag(w2);
    for (;;) {
      if (w2Done() || (await count(db, 'SELECT cardinality(pg_blocking_pids($1)) AS n', [w2Pid])) > 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    gate1(); // W1 wants b's row, which W2 holds
    await expect(Promise.all([w1, w2, target])).resolves.toBeDefined();
    expect(await diffTriggers(db)).toEqual([...DIFF_TRIGGERS].sort());
  });
});

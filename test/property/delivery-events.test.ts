/**
 * Properties of delivery events.
 *  - Messages (pure): expanding the messages of a change gives back exactly its entry changes; every
 *    message respects its bounds and holds one partition's subjects.
 *  - Lane order (pure): whatever the queue, a message is never delivered before an earlier-revision
 *    message that shares a subject with it (revocations overtake only grants to other subjects).
 *  - Against the oracle, both engines: random worlds and writes under a random propagation policy,
 *    with workers draining at random points; folding every recorded event, in (revision, seq) order,
 *    onto an empty set of (subject, role, resource) entries gives exactly the oracle's entries. A
 *    target that applies its events in order therefore holds what the policy grants, no more.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildMessages, expandMessage, MAX_ACCESS, MAX_PAIRS, MAX_SUBJECTS, nextInLane, partitionOf, type EntryChange } from '../../src/domain/delivery.ts';
import { createLockstep } from '../../src/app.ts';
import { applyCommand, createOracleState, effectiveRows, type Command } from '../../src/domain/oracle.ts';
import { ensureStream } from '../../src/delivery/targets.ts';
import { createWorker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { attempt, callEngine, policyArb, worldArb, writeArb } from '../helpers/oracle-commands.ts';

const entryArb = fc.record({
  subject: fc.constantFrom(...Array.from({ length: 40 }, (_, i) => `u${i}`)),
  role: fc.constantFrom('r1', 'r2', 'r3'),
  resource: fc.constantFrom(...Array.from({ length: 30 }, (_, i) => `doc:${i}`)),
  op: fc.constantFrom('revoked' as const, 'granted' as const),
});

it('messages expand to exactly the entry changes and respect their bounds', () => {
  fc.assert(
    fc.property(fc.array(entryArb, { maxLength: 400 }), fc.record({ subjects: fc.integer({ min: 1, max: 5 }), access: fc.integer({ min: 1, max: 5 }), pairs: fc.integer({ min: 1, max: 12 }) }), (raw, limits) => {
      // one op per entry, as a change produces them
      const byEntry = new Map<string, EntryChange>();
      for (const e of raw) byEntry.set(`${e.subject}|${e.role}|${e.resource}`, e);
      const changes = [...byEntry.values()];
      const msgs = buildMessages(changes, () => ({ permissions: ['p'], tier: 'standard' }), [], limits);
      const key = (e: EntryChange) => `${e.op}|${e.subject}|${e.role}|${e.resource}`;
      expect(msgs.flatMap(expandMessage).map(key).sort()).toEqual(changes.map(key).sort());
      for (const m of msgs) {
        expect(m.subjects.length).toBeLessThanOrEqual(limits.subjects);
        expect(m.access.length).toBeLessThanOrEqual(limits.access);
        expect(m.subjects.length * m.access.length).toBeLessThanOrEqual(Math.max(limits.pairs, m.access.length));
        expect(new Set(m.subjects.map((s) => partitionOf(s)))).toEqual(new Set([m.part]));
      }
      // revocations are listed before grants
      const firstGrant = msgs.findIndex((m) => m.type === 'access.granted');
      if (firstGrant >= 0) expect(msgs.slice(firstGrant).every((m) => m.type === 'access.granted')).toBe(true);
    }),
    { numRuns: 200 },
  );
  // the default bounds: a 5,000 × 5,000 product is 2,500 messages of 10,000 pairs, not 25 M requests
  expect(MAX_SUBJECTS * MAX_ACCESS).toBeGreaterThan(MAX_PAIRS);
});

it('a lane never delivers a message before an earlier-revision message sharing a subject', () => {
  const msgArb = fc.record({ priority: fc.constantFrom(0, 1), subjects: fc.subarray(['a', 'b', 'c', 'd', 'e'], { minLength: 1, maxLength: 2 }) });
  fc.assert(
    fc.property(fc.array(msgArb, { maxLength: 25 }), (raw) => {
      const queue = raw.map((m, i) => ({ ...m, revision: i + 1 }));
      const order: typeof queue = [];
      const pending = [...queue];
      while (pending.length > 0) {
        const next = nextInLane(pending)!;
        order.push(next);
        pending.splice(pending.indexOf(next), 1);
      }
      const pos = new Map(order.map((m, i) => [m, i]));
      for (const a of queue)
        for (const b of queue)
          if (a.revision < b.revision && a.subjects.some((s) => b.subjects.includes(s))) expect(pos.get(a)!).toBeLessThan(pos.get(b)!);
      // revocations first: when some revocation follows no earlier message of its subjects, one goes first
      const free = queue.filter((r) => r.priority === 0 && !queue.some((q) => q.revision < r.revision && q.subjects.some((s) => r.subjects.includes(s))));
      if (free.length > 0) expect(order[0]!.priority).toBe(0);
    }),
    { numRuns: 300 },
  );
});

describeEachEngine('recorded events against the oracle', (engine) => {
  let db: Database;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(() => db.close());

  it('folding the events in order gives the oracle’s effective entries', { timeout: 120_000 }, async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(policyArb, worldArb, fc.array(fc.tuple(writeArb, fc.boolean()), { maxLength: 25 }), async (policy, world, writes) => {
        const org = `P${run++}`;
        const rename = (c: Command): Command => ({ ...c, org });
        const ls = createLockstep(db);
        const worker = createWorker({ db, batchSize: 2 });
        const state = createOracleState();
        const ids: string[] = [];
        const apply = async (c0: Command) => {
          let c = rename(c0);
          if (c.kind === 'deleteAssignment') c = { ...c, id: ids[Number(c.id.slice(1))] ?? 'asg_none' };
          const r = await attempt(() => callEngine(ls, c));
          const id = r.ok && 'id' in r.value ? (r.value as { id: string }).id : 'none';
          const o = applyCommand(state, c, id);
          expect(r.ok, JSON.stringify(c)).toBe(o.ok);
          if (r.ok && c.kind === 'createAssignment' && !ids.includes(id)) ids.push(id);
        };
        await apply({ kind: 'putOrganization', org: 'A' });
        await db.transaction((tx) => ensureStream(tx, org, 1, Date.now()));
        await ls.putPropagationPolicy(org, policy);
        for (const c of world) await apply(c);
        for (const [c, drain] of writes) {
          await apply(c);
          if (drain) await worker.drain();
        }
        await worker.drain();
        const events = await db.all<{ type: string; body: string }>('SELECT type, body FROM delivery_events WHERE org_id = $1 ORDER BY revision, seq', [org]);
        const held = new Set<string>();
        for (const e of events) {
          if (e.type === 'subject.deprovisioned') continue;
          const b = JSON.parse(e.body) as { subjects: string[]; access: { role: string; resource: string }[] };
          for (const s of b.subjects)
            for (const a of b.access) {
              const k = `${s}|${a.role}|${a.resource}`;
              if (e.type === 'access.granted') {
                expect(held.has(k), `granted twice: ${k}`).toBe(false);
                held.add(k);
              } else {
                expect(held.has(k), `revoked but not held: ${k}`).toBe(true);
                held.delete(k);
              }
            }
        }
        const expected = new Set(effectiveRows(state, org).map((r) => `${r.subject}|${r.role}|${r.resource}`));
        expect([...held].sort()).toEqual([...expected].sort());
      }),
      { numRuns: engine.name === 'sqlite' ? 40 : 15 },
    );
  });
});

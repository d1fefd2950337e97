/**
 * Concurrent checks, which PostgreSQL answers in batches (one statement for the checks that arrive
 * while one is out, src/check/coalesce.ts) and SQLite, as the server runs them (checkSharing
 * 'turn'), back to back at the end of the event-loop turn they were made in (createTurnQueue): for random worlds — nested groups, expiring
 * memberships, inactive subjects, every tier — and random sets of checks launched at once, each with
 * its own clock, every answer equals the answer of the same check made alone (allowed, revision, via
 * and its chain, verified, consistency) and agrees with the oracle. Every write propagates inline (SYNC_POLICY), so the read model is
current when the checks run. A second property: while checks stream, a revocation
 * commits; every check started after its write answered denies.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { CheckResult, Lockstep } from '../../src/domain/contract.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import { applyCommand, createOracleState, oracleCheck, type Command } from '../../src/domain/oracle.ts';
import type { Database, Sql, Statement } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { attempt, callEngine, GROUPS, PERMS, RESOURCES, SUBJECTS, worldArb } from '../helpers/oracle-commands.ts';

const RUNS = Number(process.env.LOCKSTEP_PROPERTY_RUNS ?? 0);
const T0 = Date.UTC(2030, 0, 1);

const probe = fc.record({
  subject: fc.constantFrom(...SUBJECTS),
  permission: fc.constantFrom(...PERMS),
  resource: fc.constantFrom(...RESOURCES),
  /** The check's clock, in seconds after T0 (memberships below expire within the same range). */
  at: fc.integer({ min: 0, max: 6 }),
  mode: fc.constantFrom(undefined, 'minimize_latency' as const, 'fully_consistent' as const),
});
/** Memberships that expire at T0 + n seconds: within the checks' clocks, so some items see them live and some expired. */
const expiring = fc.array(fc.tuple(fc.constantFrom(...GROUPS), fc.constantFrom(...SUBJECTS), fc.integer({ min: 1, max: 6 })), { maxLength: 4 });

/** The read-model statement of a lone check (SQLite), told from the others by its text. */
const isReadModelCheck = (s: Statement) => typeof s === 'string' && s.includes('CROSS JOIN effective_assignments e');

/**
 * `db` with its batch statements counted (how many items each carried). SQLite: how many read-model
 * statements ran in each synchronous run of them, and how many while `launching()`.
 */
function counting(db: Database, launching: () => boolean): { db: Database; batches: number[]; duringLaunch: () => number } {
  const batches: number[] = [];
  const g = db.genericPlans;
  let duringLaunch = 0;
  if (!g) {
    let inRun = false;
    const get: Sql['get'] = (s: Statement, p?: readonly unknown[]) => {
      if (isReadModelCheck(s)) {
        if (launching()) duringLaunch++;
        if (!inRun) {
          inRun = true;
          batches.push(0);
          queueMicrotask(() => (inRun = false));
        }
        batches[batches.length - 1]!++;
      }
      return db.get(s, p);
    };
    return { db: { ...db, get }, batches, duringLaunch: () => duringLaunch };
  }
  const all: Sql['all'] = async (s: Statement, p?: readonly unknown[]) => {
    const rows = await g.all(s, p);
    batches.push(rows.length);
    return rows as never;
  };
  return { db: { ...db, genericPlans: { ...g, all } }, batches, duringLaunch: () => duringLaunch };
}

describeEachEngine('concurrent checks vs lone checks', (engine) => {
  let db: Database;
  let batches: number[];
  let duringLaunch: () => number;
  let launching = false;
  let batched: Lockstep;
  let lone: Lockstep;
  const clock = { t: T0 };
  let run = 0;
  beforeAll(async () => {
    db = await engine.open();
    const c = counting(db, () => launching);
    batches = c.batches;
    duringLaunch = c.duringLaunch;
    batched = createLockstep(c.db, { now: () => clock.t, defaultPolicy: SYNC_POLICY, checkSharing: 'turn' });
    // The same database, every check running its own statement at once.
    lone = createLockstep(db, { now: () => clock.t, defaultPolicy: SYNC_POLICY, checkSharing: 'none' });
  });
  afterAll(async () => {
    await db?.close();
  });

  const runs = RUNS || (engine.name === 'sqlite' ? 60 : 40);

  it(`a batched answer is the lone answer, and the oracle's (${runs} worlds)`, { timeout: 300_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(worldArb, expiring, fc.array(probe, { minLength: 2, maxLength: 24 }), async (world, exp, probes) => {
        const org = `cb${process.pid % 1000}x${++run}`;
        const state = createOracleState();
        clock.t = T0 - 60_000;
        const writes: Command[] = [
          { kind: 'putOrganization', org: 'A' },
          ...world,
          ...exp.map(([group, subject, s]): Command => ({ kind: 'addMember', org: 'A', group, subject, expiresAt: new Date(T0 + s * 1000).toISOString() })),
        ];
        for (const w of writes) {
          const c = { ...w, org } as Command;
          const e = await attempt(() => callEngine(batched, c));
          const o = applyCommand(state, c, e.ok && 'id' in e.value ? e.value.id : 'none');
          expect(e.ok, JSON.stringify(c)).toBe(o.ok);
        }
        const ask = (ls: Lockstep, p: (typeof probes)[number]) => {
          clock.t = T0 + p.at * 1000;
          return attempt<CheckResult>(() => ls.check(org, { subject: p.subject, permission: p.permission, resource: p.resource, ...(p.mode ? { consistency: { mode: p.mode } } : {}) }));
        };
        // Launched together: each call reads its clock before its first await.
        launching = true;
        const launched = Promise.all(probes.map((p) => ask(batched, p)));
        launching = false;
        const together = await launched;
        for (const [i, p] of probes.entries()) {
          const alone = await ask(lone, p);
          expect(together[i], `check ${JSON.stringify(p)}: batched vs alone`).toEqual(alone);
          const o = oracleCheck(state, org, p.subject, p.permission, p.resource, T0 + p.at * 1000);
          const got = together[i]!;
          expect(got.ok, `check ${JSON.stringify(p)}: ok vs oracle`).toBe(o.ok);
          if (got.ok && o.ok) expect(got.value.allowed, `check ${JSON.stringify(p)}: allowed vs oracle`).toBe(o.allowed);
        }
      }),
      { numRuns: runs, endOnFailure: false },
    );
    // The batches did carry several checks at once (not one statement per check); on SQLite, none
    // ran within the turn the checks were launched in, and those of one turn ran back to back.
    expect(Math.max(...batches)).toBeGreaterThan(1);
    expect(duringLaunch()).toBe(0);
  });

  it('a check started after a revocation committed denies, while earlier checks are still out', { timeout: 120_000 }, async () => {
    const org = `cbrev${process.pid % 1000}`;
    clock.t = T0;
    await batched.putOrganization(org, {});
    await batched.putPermission(org, 'p.a', { risk: 'standard' });
    await batched.putRole(org, 'r1', { permissions: ['p.a'] });
    await batched.putResource(org, 'doc', '1', {});
    await batched.putSubject(org, 's1', { kind: 'user' });
    await batched.putGroup(org, 'g1', {});
    await batched.createAssignment(org, { principal: 'group:g1', role: 'r1', resource: 'doc:1' });
    const req = { subject: 's1', permission: 'p.a', resource: 'doc:1' };
    for (let round = 0; round < 10; round++) {
      await batched.addMember(org, 'g1', 's1');
      expect((await batched.check(org, req)).allowed).toBe(true);
      // A stream of checks in flight across the revocation.
      let revoked = false;
      const started: Array<{ after: boolean; answer: Promise<CheckResult> }> = [];
      let stop = false;
      const stream = (async () => {
        while (!stop) {
          started.push({ after: revoked, answer: batched.check(org, req) });
          await new Promise((r) => setImmediate(r));
        }
      })();
      await new Promise((r) => setTimeout(r, 5));
      await batched.removeMember(org, 'g1', 's1');
      revoked = true;
      // A few checks started after the write answered (counted, not timed).
      while (started.filter((s) => s.after).length < 3) await new Promise((r) => setImmediate(r));
      stop = true;
      await stream;
      const after = started.filter((s) => s.after);
      expect(after.length).toBeGreaterThan(0);
      for (const s of after) expect((await s.answer).allowed, `round ${round}: a check started after the revocation answered`).toBe(false);
      await Promise.all(started.map((s) => s.answer));
    }
  });
});

/**
 * Checks through deep resource chains, up to the depth limit: the walk up the ancestors
 * (`ancestors`, src/derivation/rule.ts) reads each resource with its parent, and the batched
 * PostgreSQL statement reads the permission's tier once per item (docs/adr/0024-*). For random
 * chains of 1 to MAX_RESOURCE_DEPTH resources, random grants at random levels (to a subject, or to
 * a group it is in), random tiers and random moves of a part of the chain under another level (some
 * refused for the depth limit), checks launched together from random levels answer as alone, as
 * `fully_consistent` (the source tables) and as the oracle: allowed, and the nearest granting
 * resource.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { CheckResult, Lockstep } from '../../src/domain/contract.ts';
import { MAX_RESOURCE_DEPTH, RISK_TIERS } from '../../src/domain/model.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import { applyCommand, createOracleState, oracleCheck, type Command } from '../../src/domain/oracle.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { attempt, callEngine } from '../helpers/oracle-commands.ts';

const RUNS = Number(process.env.LOCKSTEP_PROPERTY_RUNS ?? 0);
const PERMS = ['p.a', 'p.b'];
const node = (i: number) => `node:n${i}`;

const worldArb = fc
  .record({
    length: fc.integer({ min: 1, max: MAX_RESOURCE_DEPTH }),
    tiers: fc.tuple(...PERMS.map(() => fc.constantFrom(...RISK_TIERS))),
    roles: fc.tuple(fc.subarray(PERMS, { minLength: 1 }), fc.subarray(PERMS, { minLength: 1 })),
    // [principal, role, level as a fraction of the chain]
    grants: fc.array(fc.tuple(fc.constantFrom('subject:s1', 'subject:s2', 'group:g1'), fc.constantFrom('r1', 'r2'), fc.double({ min: 0, max: 1, noNaN: true })), { minLength: 1, maxLength: 5 }),
    // a part of the chain moved under another level: [from, to] as fractions
    move: fc.option(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }))),
  })
  .map((w) => {
    const at = (f: number) => Math.min(w.length - 1, Math.floor(f * w.length));
    const writes: Command[] = [
      ...PERMS.map((slug, i): Command => ({ kind: 'putPermission', org: 'A', slug, risk: w.tiers[i]! })),
      { kind: 'putRole', org: 'A', slug: 'r1', permissions: w.roles[0] },
      { kind: 'putRole', org: 'A', slug: 'r2', permissions: w.roles[1] },
      // node:n0 is the root; node:n(i) is a child of node:n(i-1)
      ...Array.from({ length: w.length }, (_, i): Command => ({ kind: 'putResource', org: 'A', type: 'node', id: `n${i}`, parent: i === 0 ? null : node(i - 1) })),
      { kind: 'putResource', org: 'A', type: 'node', id: 'side', parent: null },
      ...['s1', 's2'].map((id): Command => ({ kind: 'putSubject', org: 'A', id, subjectKind: 'user' })),
      { kind: 'putGroup', org: 'A', id: 'g1' },
      { kind: 'addMember', org: 'A', group: 'g1', subject: 's1' },
      ...w.grants.map(([principal, role, f]): Command => ({ kind: 'createAssignment', org: 'A', principal, role, resource: node(at(f)) })),
    ];
    // Moving node:n(from) (and what is below it) under node:n(to): a cycle when to ≥ from, and
    // beyond the depth limit for some; both refused, by the engine as by the oracle.
    if (w.move) writes.push({ kind: 'putResource', org: 'A', type: 'node', id: `n${at(w.move[0])}`, parent: at(w.move[1]) === 0 ? 'node:side' : node(at(w.move[1])) });
    return { writes, length: w.length };
  });

const probe = fc.record({
  subject: fc.constantFrom('s1', 's2'),
  permission: fc.constantFrom(...PERMS),
  level: fc.double({ min: 0, max: 1, noNaN: true }),
  mode: fc.constantFrom(undefined, 'fully_consistent' as const),
});

describeEachEngine('checks through deep resource chains', (engine) => {
  let db: Database;
  let batched: Lockstep;
  let lone: Lockstep;
  let run = 0;
  beforeAll(async () => {
    db = await engine.open();
    batched = createLockstep(db, { defaultPolicy: SYNC_POLICY, checkSharing: 'turn' });
    lone = createLockstep(db, { defaultPolicy: SYNC_POLICY, checkSharing: 'none' });
  });
  afterAll(async () => {
    await db?.close();
  });

  const runs = RUNS || (engine.name === 'sqlite' ? 40 : 25);

  it(`the nearest granting ancestor, batched, alone, on the source and in the oracle agree (${runs} chains)`, { timeout: 300_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(worldArb, fc.array(probe, { minLength: 2, maxLength: 16 }), async (world, probes) => {
        const org = `ca${process.pid % 1000}x${++run}`;
        const state = createOracleState();
        for (const w of [{ kind: 'putOrganization', org: 'A' } as Command, ...world.writes]) {
          const c = { ...w, org } as Command;
          const e = await attempt(() => callEngine(batched, c));
          const o = applyCommand(state, c, e.ok && 'id' in e.value ? e.value.id : 'none');
          expect(e.ok, JSON.stringify(c)).toBe(o.ok);
        }
        const ref = (p: (typeof probes)[number]) => node(Math.min(world.length - 1, Math.floor(p.level * world.length)));
        const ask = (ls: Lockstep, p: (typeof probes)[number], mode = p.mode) =>
          attempt<CheckResult>(() => ls.check(org, { subject: p.subject, permission: p.permission, resource: ref(p), ...(mode ? { consistency: { mode } } : {}) }));
        const together = await Promise.all(probes.map((p) => ask(batched, p)));
        for (const [i, p] of probes.entries()) {
          const label = `check ${JSON.stringify({ ...p, resource: ref(p) })}`;
          expect(together[i], `${label}: batched vs alone`).toEqual(await ask(lone, p));
          const source = await ask(lone, p, 'fully_consistent');
          const o = oracleCheck(state, org, p.subject, p.permission, ref(p));
          const got = together[i]!;
          expect(got.ok, `${label}: ok vs oracle`).toBe(o.ok);
          if (!got.ok || !o.ok || !source.ok) continue;
          expect(got.value.allowed, `${label}: allowed vs oracle`).toBe(o.allowed);
          expect(got.value.via?.resource, `${label}: nearest granting resource vs oracle`).toBe(o.allowed ? o.via?.resource : undefined);
          expect(got.value.via?.resource, `${label}: nearest granting resource vs the source`).toBe(source.value.via?.resource);
        }
      }),
      { numRuns: runs, endOnFailure: false },
    );
  });
});

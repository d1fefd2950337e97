/**
 * Access history against the oracle: random policy writes, each at its own (injected) time; then, at
 * random past instants T, "what could S do at T" and "who could do P on R at T" — replayed by the
 * engine from its change log — must equal the oracle's answer on the policy as it stood at T.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { applyCommand, createOracleState, resourceAccessRows, subjectPermissions, type Command, type OracleState } from '../../src/domain/oracle.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

const SUBJECTS = ['s1', 's2', 's3'];
const GROUPS = ['g1', 'g2'];
const ROLES = ['r1', 'r2'];
const PERMS = ['p.a', 'p.b', 'p.c'];
const RESOURCES = ['doc:1', 'doc:2', 'folder:1', 'folder:2'];
const el = <T,>(xs: T[]) => fc.constantFrom(...xs);

/** Writes over a small world; invalid ones (unknown objects, cycles) happen and must be skipped alike. */
const command = (org: string): fc.Arbitrary<Command> =>
  fc.oneof(
    fc.record({ kind: fc.constant('putPermission' as const), org: fc.constant(org), slug: el(PERMS), risk: el(['standard', 'high', 'critical']) }),
    fc.record({ kind: fc.constant('putRole' as const), org: fc.constant(org), slug: el(ROLES), permissions: fc.subarray(PERMS) }),
    fc.record({ kind: fc.constant('putResource' as const), org: fc.constant(org), type: el(['doc', 'folder']), id: el(['1', '2']), parent: fc.option(el(RESOURCES), { nil: null }) }),
    fc.record({ kind: fc.constant('deleteResource' as const), org: fc.constant(org), type: el(['doc', 'folder']), id: el(['1', '2']) }),
    fc.record({ kind: fc.constant('putSubject' as const), org: fc.constant(org), id: el(SUBJECTS), subjectKind: fc.constant('user'), active: fc.boolean() }),
    fc.record({ kind: fc.constant('deleteSubject' as const), org: fc.constant(org), id: el(SUBJECTS) }),
    fc.record({ kind: fc.constant('putGroup' as const), org: fc.constant(org), id: el(GROUPS) }),
    fc.record({ kind: fc.constant('deleteGroup' as const), org: fc.constant(org), id: el(GROUPS) }),
    fc.record({ kind: fc.constant('addMember' as const), org: fc.constant(org), group: el(GROUPS), subject: el(SUBJECTS) }),
    fc.record({ kind: fc.constant('removeMember' as const), org: fc.constant(org), group: el(GROUPS), subject: el(SUBJECTS) }),
    fc.record({
      kind: fc.constant('createAssignment' as const),
      org: fc.constant(org),
      principal: el([...SUBJECTS.map((s) => `subject:${s}`), ...GROUPS.map((g) => `group:${g}`)]),
      role: el(ROLES),
      resource: el(RESOURCES),
    }),
  );

async function applyToEngine(ls: Lockstep, c: Command): Promise<string | undefined> {
  switch (c.kind) {
    case 'putPermission': return void (await ls.putPermission(c.org, c.slug, { risk: c.risk }));
    case 'putRole': return void (await ls.putRole(c.org, c.slug, { permissions: c.permissions }));
    case 'putResource': return void (await ls.putResource(c.org, c.type, c.id, { parent: c.parent ?? null }));
    case 'deleteResource': return void (await ls.deleteResource(c.org, c.type, c.id));
    case 'putSubject': return void (await ls.putSubject(c.org, c.id, { kind: c.subjectKind, ...(c.active === undefined ? {} : { active: c.active }) }));
    case 'deleteSubject': return void (await ls.deleteSubject(c.org, c.id));
    case 'putGroup': return void (await ls.putGroup(c.org, c.id, {}));
    case 'deleteGroup': return void (await ls.deleteGroup(c.org, c.id));
    case 'addMember': return void (await ls.addMember(c.org, c.group, c.subject));
    case 'removeMember': return void (await ls.removeMember(c.org, c.group, c.subject));
    case 'createAssignment': return (await ls.createAssignment(c.org, { principal: c.principal, role: c.role, resource: c.resource })).id;
    default: throw new Error(`not generated: ${c.kind}`);
  }
}

const key = (x: { permission?: string; subject?: string; resource: string; role: string; group: string | null; assignment: string }) =>
  `${x.subject ?? ''}|${x.permission ?? ''}|${x.resource}|${x.role}|${x.group ?? ''}|${x.assignment}`;

let runs = 0;

describeEachEngine('access history vs the oracle replayed to T', (engine) => {
  let db: Database;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(() => db.close());

  it('answers what S could do, and who could do P on R, at any past instant', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command('o'), { minLength: 3, maxLength: 25 }), fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), async (cmds, picks) => {
        const org = `h${++runs}`;
        let clock = 1_000_000;
        const ls = createLockstep(db, { defaultPolicy: SYNC_POLICY, now: () => clock });
        clock += 10;
        await ls.putOrganization(org, {});
        let oracle: OracleState = createOracleState();
        applyCommand(oracle, { kind: 'putOrganization', org });
        // The oracle state after each write, with the instant the write was decided at.
        const snapshots: { at: number; state: OracleState }[] = [{ at: clock, state: structuredClone(oracle) }];
        for (const raw of cmds) {
          const c = { ...raw, org } as Command;
          clock += 10;
          let id: string | undefined;
          try {
            id = await applyToEngine(ls, c);
          } catch {
            continue; // rejected by the engine: the oracle must reject it too
          }
          const next = structuredClone(oracle);
          const r = applyCommand(next, c, id);
          expect(r.ok).toBe(true);
          oracle = next;
          snapshots.push({ at: clock, state: structuredClone(oracle) });
        }
        for (const p of picks) {
          // An instant between two writes (decided_at ≤ T picks exactly the writes before it).
          const snap = snapshots[p % snapshots.length]!;
          const at = new Date(snap.at + 5).toISOString();
          for (const s of SUBJECTS) {
            // A subject that did not exist at T could do nothing: an empty answer, not an error.
            const want = subjectPermissions(snap.state, org, s);
            const got = await ls.subjectEffectiveAt(org, s, at);
            expect(got.permissions.map((x) => key({ ...x, ...x.via, subject: s })).sort()).toEqual(
              want.ok ? want.permissions.map((x) => key({ ...x.via, permission: x.permission, subject: s })).sort() : [],
            );
          }
          const target = RESOURCES[p % RESOURCES.length]!;
          const perm = PERMS[p % PERMS.length]!;
          const want = resourceAccessRows(snap.state, org, target, perm);
          const got = await ls.resourceAccessAt(org, target, perm, at);
          expect(got.subjects.map((x) => key({ ...x.via, subject: x.subject })).sort()).toEqual(want.ok ? want.rows.map((r) => key(r)).sort() : []);
        }
      }),
      { numRuns: engine.name === 'sqlite' ? 120 : 40 },
    );
  });
});

/**
 * Shared pieces for model-based tests of propagation: fast-check generators of small, mostly valid
 * worlds and policy writes over placeholder organization `A`, the dispatch of an oracle `Command` to
 * the engine, and read-model comparison helpers. The pools are small so that groups have several
 * members (jobs of several batches) and writes collide often.
 */
import fc from 'fast-check';
import type { AssignmentResult, Lockstep, WriteResult } from '../../src/domain/contract.ts';
import { isLockstepError } from '../../src/domain/errors.ts';
import { effectiveKey, RISK_TIERS, type EffectiveRow } from '../../src/domain/model.ts';
import type { Command } from '../../src/domain/oracle.ts';

export const SUBJECTS = ['s1', 's2', 's3', 's4', 's5', 's6'];
export const GROUPS = ['g1', 'g2', 'g3', 'g4'];
/**
 * Nested edges [parent, child] a world may start with: a chain g4 ⊃ g3 ⊃ g2 and a diamond
 * (g4 ⊃ g3 ⊃ g1 and g4 ⊃ g1). Writes add and remove any pair, so cycles are tried (and refused).
 */
export const NESTED: [string, string][] = [['g3', 'g1'], ['g3', 'g2'], ['g4', 'g3'], ['g4', 'g1']];
export const ROLES = ['r1', 'r2', 'r3'];
export const PERMS = ['p.a', 'p.b', 'p.c'];
/** ref → parent in the starting world (folder:1 ⊃ doc:1, doc:2; folder:2 ⊃ doc:3). */
export const RESOURCE_TREE: [string, string | null][] = [
  ['folder:1', null],
  ['folder:2', null],
  ['doc:1', 'folder:1'],
  ['doc:2', 'folder:1'],
  ['doc:3', 'folder:2'],
];
export const RESOURCES = RESOURCE_TREE.map(([r]) => r);

const tier = fc.constantFrom(...RISK_TIERS);
const subject = fc.constantFrom(...SUBJECTS);
const group = fc.constantFrom(...GROUPS);
const role = fc.constantFrom(...ROLES);
const resource = fc.constantFrom(...RESOURCES);
const edge = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...NESTED) }, { weight: 1, arbitrary: fc.tuple(group, group) });
const principal = fc.oneof({ weight: 2, arbitrary: subject.map((s) => `subject:${s}`) }, { weight: 3, arbitrary: group.map((g) => `group:${g}`) });

/** A random propagation policy: each direction × tier sync or async; sometimes a tiny inline budget. */
export const policyArb = fc.record({
  grant: fc.record({ standard: fc.record({ mode: fc.constantFrom('sync', 'async') }), high: fc.record({ mode: fc.constantFrom('sync', 'async') }), critical: fc.record({ mode: fc.constantFrom('sync', 'async') }) }),
  revoke: fc.record({ standard: fc.record({ mode: fc.constantFrom('sync', 'async') }), high: fc.record({ mode: fc.constantFrom('sync', 'async') }), critical: fc.record({ mode: fc.constantFrom('sync', 'async') }) }),
  inlineBudget: fc.oneof({ weight: 3, arbitrary: fc.constant(10_000) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 3 }) }),
});

/**
 * A populated, valid starting world for organization `A`: every permission, role and resource,
 * mostly active subjects, both groups with random members, a few assignments.
 */
export const worldArb: fc.Arbitrary<Command[]> = fc
  .record({
    tiers: fc.tuple(tier, tier, tier),
    roles: fc.tuple(...ROLES.map(() => fc.subarray(PERMS, { minLength: 1 }))),
    active: fc.tuple(...SUBJECTS.map(() => fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }))),
    members: fc.subarray(GROUPS.flatMap((g) => SUBJECTS.map((s) => `${g}/${s}`)), { minLength: 3 }),
    nested: fc.subarray(NESTED),
    assignments: fc.array(fc.tuple(principal, role, resource), { minLength: 1, maxLength: 4 }),
  })
  .map((w): Command[] => [
    ...PERMS.map((slug, i): Command => ({ kind: 'putPermission', org: 'A', slug, risk: w.tiers[i]! })),
    ...ROLES.map((slug, i): Command => ({ kind: 'putRole', org: 'A', slug, permissions: w.roles[i]! })),
    ...RESOURCE_TREE.map(([ref, parent]): Command => ({ kind: 'putResource', org: 'A', type: ref.split(':')[0]!, id: ref.split(':')[1]!, parent })),
    ...SUBJECTS.map((id, i): Command => ({ kind: 'putSubject', org: 'A', id, subjectKind: 'user', active: w.active[i]! })),
    ...GROUPS.map((id): Command => ({ kind: 'putGroup', org: 'A', id })),
    ...w.members.map((m): Command => ({ kind: 'addMember', org: 'A', group: m.split('/')[0]!, subject: m.split('/')[1]! })),
    ...w.nested.map(([group, member]): Command => ({ kind: 'addGroupMember', org: 'A', group, member })),
    ...w.assignments.map(([p, r, res]): Command => ({ kind: 'createAssignment', org: 'A', principal: p, role: r, resource: res })),
  ]);

/**
 * Policy writes on `A`, weighted towards what fans out (memberships, assignments, activation).
 * `deleteAssignment` ids are '@n': the n-th assignment id seen in the run (resolved by the caller).
 */
export const writeArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('addMember' as const), org: fc.constant('A'), group, subject }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('removeMember' as const), org: fc.constant('A'), group, subject }) },
  // nested edges: mostly the world's pairs (diamonds form and break), sometimes any pair (cycles)
  { weight: 4, arbitrary: edge.map(([g, m]): Command => ({ kind: 'addGroupMember', org: 'A', group: g, member: m })) },
  { weight: 4, arbitrary: edge.map(([g, m]): Command => ({ kind: 'removeGroupMember', org: 'A', group: g, member: m })) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('createAssignment' as const), org: fc.constant('A'), principal, role, resource }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('deleteAssignment' as const), org: fc.constant('A'), id: fc.constantFrom('@0', '@1', '@2', '@3', '@4', '@5', '@6', '@7') }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('putSubject' as const), org: fc.constant('A'), id: subject, subjectKind: fc.constant('user'), active: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deleteSubject' as const), org: fc.constant('A'), id: subject }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deleteGroup' as const), org: fc.constant('A'), id: group }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('putGroup' as const), org: fc.constant('A'), id: group }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('putRole' as const), org: fc.constant('A'), slug: role, permissions: fc.subarray(PERMS) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('putPermission' as const), org: fc.constant('A'), slug: fc.constantFrom(...PERMS), risk: tier }) },
  {
    weight: 2,
    arbitrary: fc.record({ ref: resource, parent: fc.option(resource, { nil: null }) }).map(({ ref, parent }): Command => ({
      kind: 'putResource', org: 'A', type: ref.split(':')[0]!, id: ref.split(':')[1]!, parent,
    })),
  },
  { weight: 1, arbitrary: resource.map((ref): Command => ({ kind: 'deleteResource', org: 'A', type: ref.split(':')[0]!, id: ref.split(':')[1]! })) },
);

export async function callEngine(ls: Lockstep, c: Command): Promise<WriteResult | AssignmentResult> {
  switch (c.kind) {
    case 'putOrganization': return ls.putOrganization(c.org, c.name === undefined ? {} : { name: c.name });
    case 'putPermission': return ls.putPermission(c.org, c.slug, { risk: c.risk });
    case 'putRole': return ls.putRole(c.org, c.slug, { permissions: c.permissions });
    case 'putResource': return ls.putResource(c.org, c.type, c.id, c.parent === undefined ? {} : { parent: c.parent });
    case 'deleteResource': return ls.deleteResource(c.org, c.type, c.id);
    case 'putSubject': return ls.putSubject(c.org, c.id, c.active === undefined ? { kind: c.subjectKind } : { kind: c.subjectKind, active: c.active });
    case 'deleteSubject': return ls.deleteSubject(c.org, c.id);
    case 'putGroup': return ls.putGroup(c.org, c.id, c.name === undefined ? {} : { name: c.name });
    case 'deleteGroup': return ls.deleteGroup(c.org, c.id);
    case 'addMember': return ls.addMember(c.org, c.group, c.subject, c.expiresAt === undefined ? {} : { expiresAt: c.expiresAt });
    case 'removeMember': return ls.removeMember(c.org, c.group, c.subject);
    case 'addGroupMember': return ls.addMember(c.org, c.group, `group:${c.member}`, c.expiresAt === undefined ? {} : { expiresAt: c.expiresAt });
    case 'removeGroupMember': return ls.removeMember(c.org, c.group, `group:${c.member}`);
    case 'createAssignment':
      return ls.createAssignment(c.org, { principal: c.principal, role: c.role, resource: c.resource, ...(c.expiresAt === undefined ? {} : { expiresAt: c.expiresAt }) });
    case 'deleteAssignment': return ls.deleteAssignment(c.org, c.id);
    // the expiry job's writes are not API calls: ls.expireDue() makes them
    default: throw new Error(`${c.kind} is not an engine write`);
  }
}

export type Attempt<T> = { ok: true; value: T } | { ok: false; code: string; field: string | undefined };
export async function attempt<T>(fn: () => Promise<T>): Promise<Attempt<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (isLockstepError(e)) return { ok: false, code: e.code, field: e.field };
    throw e;
  }
}

/**
 * A read-model row by natural key: subject, role, resource, the assignment's principal and the
 * group (assignment ids differ between engine and oracle only if a caller lets them).
 */
export function naturalKey(r: EffectiveRow, principalOf: (assignment: string) => string): string {
  return `${r.subject}|${r.role}|${r.resource}|${principalOf(r.assignment)}|${r.group ?? ''}`;
}

/** Sorted keys (a multiset as a sorted array: duplicates stay visible). */
export const sortedKeys = (rows: EffectiveRow[], key: (r: EffectiveRow) => string = effectiveKey) => rows.map(key).sort();

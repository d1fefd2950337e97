/**
 * The derivation module (src/derivation/rule.ts) held directly against the oracle: after a random
 * world and random writes (every change left to a job, so the read model holds stale rows),
 *  - `desired` yields exactly the oracle's rows (as a multiset), also anchored at subjects (its
 *    other join order) for each subject and for a list of them;
 *  - `desiredOnAncestors` yields, for every resource, the oracle's rows on its ancestors-or-self,
 *    with their depth — for each subject and for everyone;
 *  - `stillDerived` holds for a candidate row exactly when the oracle derives that row: candidates
 *    are the oracle's rows, every stale row the read model holds, and each row with its subject,
 *    group, role or resource swapped for another.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { Lockstep } from '../../src/domain/contract.ts';
import { ancestors, desired, desiredOnAncestors, memberGroups, stillDerived } from '../../src/derivation/rule.ts';
import { effectiveKey, type EffectiveRow } from '../../src/domain/model.ts';
import { ancestry, applyCommand, createOracleState, effectiveRows, type Command } from '../../src/domain/oracle.ts';
import { sql, type Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { lockstepSuite } from '../helpers/lockstep-suite.ts';
import { attempt, callEngine, GROUPS, RESOURCES, ROLES, SUBJECTS, worldArb, writeArb } from '../helpers/oracle-commands.ts';

const RUNS = Number(process.env.LOCKSTEP_PROPERTY_RUNS ?? 0);
const ALL_ASYNC = {
  grant: { standard: { mode: 'async' }, high: { mode: 'async' }, critical: { mode: 'async' } },
  revoke: { standard: { mode: 'async' }, high: { mode: 'async' }, critical: { mode: 'async' } },
};

type Raw = { subject_id: string; assignment_id: string; role: string; resource: string; group_id: string | null };
const toRow = (r: Raw) => ({ subject: r.subject_id, assignment: r.assignment_id, role: r.role, resource: r.resource, group: r.group_id }) as EffectiveRow;
const keys = (rows: EffectiveRow[]) => rows.map(effectiveKey).sort();

describeEachEngine('derivation rule vs oracle', (engine) => {
  let db: Database;
  let ls: Lockstep;
  let counter = 0;
  lockstepSuite(engine, (made) => ({ db, ls } = made));

  async function build(world: Command[], writes: Command[]) {
    const org = `dr${process.pid % 1000}x${++counter}`;
    const state = createOracleState();
    const ids: string[] = [];
    const apply = async (template: Command) => {
      const c = { ...template, org } as Command;
      if (c.kind === 'deleteAssignment' && c.id.startsWith('@')) c.id = ids.length ? ids[Number(c.id.slice(1)) % ids.length]! : 'asg_none';
      const e = await attempt(() => callEngine(ls, c));
      const id = e.ok && 'id' in e.value ? e.value.id : undefined;
      if (id !== undefined && !ids.includes(id)) ids.push(id);
      applyCommand(state, c, id ?? `oracle_${ids.length}`);
    };
    await apply({ kind: 'putOrganization', org });
    for (const c of world) await apply(c);
    await ls.putPropagationPolicy(org, ALL_ASYNC);
    for (const c of writes) await apply(c);
    return { org, oracle: effectiveRows(state, org), state };
  }

  it('derives exactly the oracle rows; provenance holds exactly on them', async () => {
    await fc.assert(
      fc.asyncProperty(worldArb, fc.array(writeArb, { maxLength: 25 }), async (world, writes) => {
        const { org, oracle, state } = await build(world, writes);
        const want = new Set(keys(oracle));

        // desired: the whole organization.
        const got = (await db.all<Raw>(desired(sql`d.org_id = ${org}`))).map(toRow);
        expect(keys(got)).toEqual(keys(oracle));
        // desired anchored at subjects (another join order): each subject's rows, and a list of them.
        for (const s of SUBJECTS) {
          const mine = (await db.all<Raw>(desired(sql`d.org_id = ${org} AND d.subject_id = ${s}`, undefined, 'subjects'))).map(toRow);
          expect(keys(mine), `desired of ${s}`).toEqual(keys(oracle.filter((r) => r.subject === s)));
        }
        const some = SUBJECTS.slice(0, 2);
        const ofSome = (await db.all<Raw>(desired(sql`d.org_id = ${org} AND d.subject_id IN (${sql.join(some)})`, undefined, 'subjects'))).map(toRow);
        expect(keys(ofSome)).toEqual(keys(oracle.filter((r) => some.includes(r.subject))));

        // desiredOnAncestors: every resource, for everyone and for each subject.
        const o = state.orgs.get(org)!;
        for (const ref of RESOURCES.filter((r) => o.resources.has(r))) {
          const chain = ancestry(o, ref);
          const expected = oracle.filter((r) => chain.includes(r.resource));
          // for everyone: a row per way into the assignment's group (its `member_group`), so distinct rows
          const onAnc = await db.all<Raw & { depth: number }>(sql`WITH RECURSIVE ${ancestors(org, ref)} ${desiredOnAncestors(org, 0)}`);
          expect([...new Set(keys(onAnc.map(toRow)))], `on ancestors of ${ref}`).toEqual(keys(expected));
          for (const r of onAnc) expect(Number(r.depth)).toBe(chain.indexOf(r.resource));
          for (const s of SUBJECTS) {
            const mine = await db.all<Raw>(sql`WITH RECURSIVE ${ancestors(org, ref)}, ${memberGroups(org, s, 0)} ${desiredOnAncestors(org, 0, s)}`);
            expect(keys(mine.map(toRow)), `${s} on ancestors of ${ref}`).toEqual(keys(expected.filter((r) => r.subject === s)));
          }
        }

        // stillDerived: the oracle's rows, the read model's (stale) rows, and near misses.
        const stale = (await db.all<Raw>(sql`SELECT subject_id, assignment_id, role, resource, group_id FROM effective_assignments WHERE org_id = ${org}`)).map(toRow);
        const candidates = new Map<string, EffectiveRow>();
        for (const r of [...oracle, ...stale]) {
          const variants: EffectiveRow[] = [
            r,
            ...SUBJECTS.map((subject) => ({ ...r, subject }) as EffectiveRow),
            ...[null, ...GROUPS].map((group) => ({ ...r, group }) as EffectiveRow),
            ...ROLES.map((role) => ({ ...r, role }) as EffectiveRow),
            ...RESOURCES.map((resource) => ({ ...r, resource }) as EffectiveRow),
          ];
          for (const v of variants) candidates.set(effectiveKey(v), v);
        }
        const list = [...candidates.values()];
        if (list.length === 0) return;
        const values = sql.join(list.map((c) => sql`(${org}, ${c.subject}, ${c.assignment}, ${c.role}, ${c.resource}, CAST(${c.group} AS TEXT))`));
        const derived = await db.all<Raw>(
          sql`WITH x(org_id, subject_id, assignment_id, role, resource, group_id) AS (VALUES ${values})
              SELECT subject_id, assignment_id, role, resource, group_id FROM x WHERE ${stillDerived('x')}`,
        );
        expect(keys(derived.map(toRow))).toEqual(list.filter((c) => want.has(effectiveKey(c))).map(effectiveKey).sort());
      }),
      { numRuns: RUNS || (engine.name === 'sqlite' ? 60 : 20) },
    );
  });
});

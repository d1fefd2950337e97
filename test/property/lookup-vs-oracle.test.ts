/**
 * Property: LookupResources agrees with the oracle (src/domain/oracle.ts). After a random world and
 * random policy writes (nested groups, re-parented resources, deactivated subjects, deleted
 * assignments), for every subject, permission and resource type — and no type — the pages of
 * `lookupResources` concatenate to exactly the resources on which the oracle's check allows; and
 * each item of a `checkBatch` over the same probes equals the oracle's check.
 *
 * LOCKSTEP_PROPERTY_RUNS overrides the number of runs; LOCKSTEP_PROPERTY_SEED replays a seed.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { Lockstep } from '../../src/domain/contract.ts';
import { applyCommand, createOracleState, oracleCheck, type Command } from '../../src/domain/oracle.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { lockstepSuite } from '../helpers/lockstep-suite.ts';
import { attempt, callEngine, PERMS, RESOURCES, SUBJECTS, worldArb, writeArb } from '../helpers/oracle-commands.ts';

const RUNS = Number(process.env.LOCKSTEP_PROPERTY_RUNS ?? 0);
const SEED = process.env.LOCKSTEP_PROPERTY_SEED ? Number(process.env.LOCKSTEP_PROPERTY_SEED) : undefined;
const TYPES = [undefined, 'doc', 'folder'];

describeEachEngine('property: lookupResources == the resources the oracle allows', (engine) => {
  let ls: Lockstep;
  lockstepSuite(engine, (made) => ({ ls } = made));

  let run = 0;
  it('agrees on every subject × permission × type, paged, and batch checks agree', async () => {
    await fc.assert(
      fc.asyncProperty(worldArb, fc.array(writeArb, { maxLength: 12 }), async (world, writes) => {
        const org = `lk${run++}`;
        const state = createOracleState();
        const ids: string[] = [];
        const at = (c: Command): Command => {
          const withOrg = { ...c, org } as Command;
          if (withOrg.kind === 'deleteAssignment' && withOrg.id.startsWith('@')) return { ...withOrg, id: ids[Number(withOrg.id.slice(1))] ?? 'asg_unknown' };
          return withOrg;
        };
        await ls.putOrganization(org, {});
        applyCommand(state, { kind: 'putOrganization', org });
        for (const raw of [...world, ...writes]) {
          const c = at(raw);
          const r = await attempt(() => callEngine(ls, c));
          const id = r.ok && c.kind === 'createAssignment' ? (r.value as { id: string }).id : undefined;
          if (id !== undefined) ids.push(id);
          applyCommand(state, c, id ?? 'asg_unknown');
        }
        const probes: { subject: string; permission: string; resource: string }[] = [];
        for (const subject of [...SUBJECTS, 's-unknown']) {
          for (const permission of PERMS) {
            for (const type of TYPES) {
              const expected = RESOURCES.filter((ref) => type === undefined || ref.startsWith(`${type}:`))
                .filter((ref) => {
                  const c = oracleCheck(state, org, subject, permission, ref);
                  return c.ok && c.allowed;
                })
                .sort();
              const got: string[] = [];
              let cursor: string | undefined;
              let pages = 0;
              do {
                const page = await ls.lookupResources(org, subject, { permission, limit: 2, ...(type ? { type } : {}), ...(cursor ? { cursor } : {}) });
                expect(page.resources.length).toBeLessThanOrEqual(2);
                got.push(...page.resources);
                cursor = page.next ?? undefined;
              } while (cursor !== undefined && ++pages < 20);
              expect(got, `${subject} ${permission} ${type ?? '*'}`).toEqual(expected);
            }
            for (const resource of RESOURCES) probes.push({ subject, permission, resource });
          }
        }
        for (let i = 0; i < probes.length; i += 100) {
          const batch = probes.slice(i, i + 100);
          const r = await ls.checkBatch(org, { checks: batch, consistency: { mode: 'fully_consistent' } });
          batch.forEach((p, j) => {
            const want = oracleCheck(state, org, p.subject, p.permission, p.resource);
            expect(want.ok && r.results[j]!.allowed, `${p.subject} ${p.permission} ${p.resource}`).toBe(want.ok && want.allowed);
          });
        }
      }),
      { numRuns: RUNS || 15, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
  }, 240_000);
});

/**
 * The revocation property through SCIM, on both engines:
 *
 * 1. Model-based (fast-check): random sequences of SCIM writes in both dialects — deactivations,
 *    reactivations, deletions, member adds, removals (Entra value arrays, Okta filters, remove-all)
 *    and group PUTs — are mirrored as commands on the oracle (src/domain/oracle.ts); after each
 *    one, every user's checks equal the oracle's.
 * 2. A concurrent probe: while deprovisionings and member removals are sent, checks run without
 *    pause; no check that starts after a SCIM request has answered allows what it removed — with
 *    the fan-out inline and with every fan-out handed to a job (inline budget 0).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { applyCommand, createOracleState, oracleCheck, type Command, type OracleState } from '../../src/domain/oracle.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { ORG, type Harness } from '../e2e/harness.ts';
import { startHarness } from '../e2e/harness.ts';
import { can, createDirectory, createGroup, createUsers, patch, seedOrg, type ScimClient } from './support.ts';

const USERS = 4;
const GROUPS = 2;
const PERMISSIONS = ['doc.read', 'doc.delete'];

type Op =
  | { t: 'deactivate' | 'activate'; u: number; dialect: 'okta' | 'entra' }
  | { t: 'delete'; u: number }
  | { t: 'add' | 'remove' | 'put'; g: number; us: number[]; dialect: 'okta' | 'entra' }
  | { t: 'removeAll'; g: number };

const user = fc.integer({ min: 0, max: USERS - 1 });
const grp = fc.integer({ min: 0, max: GROUPS - 1 });
const users = fc.uniqueArray(user, { minLength: 1, maxLength: USERS });
const dialect = fc.constantFrom('okta' as const, 'entra' as const);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constantFrom('deactivate' as const, 'activate' as const), u: user, dialect }),
  { weight: 1, arbitrary: fc.record({ t: fc.constant('delete' as const), u: user }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constantFrom('add' as const, 'remove' as const, 'put' as const), g: grp, us: users, dialect }) },
  fc.record({ t: fc.constant('removeAll' as const), g: grp }),
);

const SEED = (org: string): Command[] => [
  { kind: 'putOrganization', org, name: org },
  { kind: 'putPermission', org, slug: 'doc.read', risk: 'standard' },
  { kind: 'putPermission', org, slug: 'doc.delete', risk: 'critical' },
  { kind: 'putRole', org, slug: 'editor', permissions: ['doc.read', 'doc.delete'] },
  { kind: 'putResource', org, type: 'ws', id: 'main' },
  { kind: 'putResource', org, type: 'doc', id: 'readme', parent: 'ws:main' },
];

/** Applies commands the server accepted; each must be accepted by the oracle too. */
let assignments = 0;
function oracleApply(state: OracleState, cmds: Command[]) {
  for (const c of cmds) {
    const r = applyCommand(state, c, `a-oracle-${++assignments}`);
    if (!r.ok) throw new Error(`oracle refused ${JSON.stringify(c)}: ${r.code} ${r.field}`);
  }
}

describeEachEngine('scim: revocation property', (engine) => {
  let h: Harness;
  let run = 0;
  beforeAll(async () => {
    h = await startHarness(engine);
  });
  afterAll(() => h?.close());

  it('random SCIM write sequences in both dialects: every check equals the oracle after every write', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 4, maxLength: 14 }), async (ops) => {
        const org = `rev${++run}`;
        const oracle = createOracleState();
        await seedOrg(h, org);
        oracleApply(oracle, SEED(org));
        const dirs = { okta: await createDirectory(h, org, 'okta'), entra: await createDirectory(h, org, 'entra') };
        // One directory owns everything; the dialect only changes how a request is written.
        const scim = dirs.okta;
        const uids = await createUsers(scim, USERS, 4);
        for (const id of uids) oracleApply(oracle, [{ kind: 'putSubject', org, id, subjectKind: 'user', active: true }]);
        const gids: string[] = [];
        for (let g = 0; g < GROUPS; g++) {
          const id = await createGroup(scim, []);
          gids.push(id);
          const resource = g === 0 ? 'ws:main' : 'doc:readme';
          expect((await h.req('POST', `${ORG}/${org}/assignments`, { body: { principal: `group:${id}`, role: 'editor', resource } })).status).toBeLessThan(300);
          oracleApply(oracle, [{ kind: 'putGroup', org, id }, { kind: 'createAssignment', org, principal: `group:${id}`, role: 'editor', resource }]);
        }
        const deleted = new Set<number>();
        const members = gids.map(() => new Set<number>());

        for (const op of ops) {
          const send = (c: ScimClient, method: string, path: string, body?: unknown) => c.req(method, path, body);
          let r;
          if (op.t === 'deactivate' || op.t === 'activate') {
            const active = op.t === 'activate';
            const body = op.dialect === 'okta' ? patch({ op: 'replace', value: { active } }) : patch({ op: 'Replace', path: 'active', value: active ? 'True' : 'False' });
            r = await send(scim, 'PATCH', `/Users/${uids[op.u]}`, body);
            if (!deleted.has(op.u)) oracleApply(oracle, [{ kind: 'putSubject', org, id: uids[op.u]!, subjectKind: 'user', active }]);
          } else if (op.t === 'delete') {
            r = await send(scim, 'DELETE', `/Users/${uids[op.u]}`);
            if (!deleted.has(op.u)) {
              oracleApply(oracle, [{ kind: 'deleteSubject', org, id: uids[op.u]! }]);
              deleted.add(op.u);
              members.forEach((m) => m.delete(op.u));
            }
          } else if (op.t === 'removeAll') {
            r = await send(scim, 'PATCH', `/Groups/${gids[op.g]}`, patch({ op: 'remove', path: 'members' }));
            for (const u of members[op.g]!) oracleApply(oracle, [{ kind: 'removeMember', org, group: gids[op.g]!, subject: uids[u]! }]);
            members[op.g]!.clear();
          } else {
            const m = op as Extract<Op, { us: number[] }>;
            const live = m.us.filter((u) => !deleted.has(u));
            const ids = live.map((u) => ({ value: uids[u]! }));
            const path = `/Groups/${gids[m.g]}`;
            const before = new Set(members[m.g]);
            let after: Set<number>;
            if (m.t === 'add') {
              r = await send(scim, 'PATCH', path, patch({ op: m.dialect === 'okta' ? 'add' : 'Add', path: 'members', value: ids }));
              after = new Set([...before, ...live]);
            } else if (m.t === 'remove') {
              r =
                m.dialect === 'entra'
                  ? await send(scim, 'PATCH', path, patch({ op: 'Remove', path: 'members', value: ids }))
                  : await send(scim, 'PATCH', path, patch(...live.map((u) => ({ op: 'remove', path: `members[value eq "${uids[u]}"]` }))));
              after = new Set([...before].filter((u) => !live.includes(u)));
            } else {
              r = await send(scim, 'PUT', path, { displayName: `group ${m.g}`, members: ids });
              after = new Set(live);
            }
            // A PATCH of only deleted users is a 400 (no live member named), nothing changed.
            if (r.status < 300) {
              for (const u of after) if (!before.has(u)) oracleApply(oracle, [{ kind: 'addMember', org, group: gids[m.g]!, subject: uids[u]! }]);
              for (const u of before) if (!after.has(u)) oracleApply(oracle, [{ kind: 'removeMember', org, group: gids[m.g]!, subject: uids[u]! }]);
              members[m.g] = after;
            }
          }
          expect([200, 204, 400, 404]).toContain(r.status);
          for (let u = 0; u < USERS; u++) {
            for (const p of PERMISSIONS) {
              const o = oracleCheck(oracle, org, uids[u]!, p, 'doc:readme');
              const expected = o.ok ? o.allowed : false;
              expect(await can(h, org, uids[u]!, p), `${JSON.stringify(op)} → user ${u} ${p}`).toBe(expected);
            }
          }
        }
      }),
      { numRuns: 6 },
    );
  });

  for (const budget of [10_000, 0]) {
    it(`no check allows what a SCIM revocation removed once it has answered (concurrent probe, inline budget ${budget})`, async () => {
      const org = `probe${budget}`;
      await seedOrg(h, org);
      if (budget !== 10_000) expect((await h.req('PUT', `${ORG}/${org}/propagation-policy`, { body: { inlineBudget: budget } })).status).toBe(200);
      const okta = await createDirectory(h, org, 'okta');
      const ids = await createUsers(okta, 24);
      const g = await createGroup(okta, ids);
      expect((await h.req('POST', `${ORG}/${org}/assignments`, { body: { principal: `group:${g}`, role: 'editor', resource: 'ws:main' } })).status).toBeLessThan(300);
      // With budget 0 the grant is a job: wait for the worker to apply it.
      for (const s of ids) await expect.poll(() => can(h, org, s, 'doc.read'), { timeout: 10_000 }).toBe(true);

      const revokedAt = new Map<string, number>();
      const probes: { subject: string; permission: string; start: number; allowed: boolean }[] = [];
      let stop = false;
      const probe = async () => {
        let i = 0;
        while (!stop) {
          const subject = ids[i++ % ids.length]!;
          const permission = i % 2 ? 'doc.read' : 'doc.delete';
          const start = performance.now();
          const r = await h.req('POST', `${ORG}/${org}/check`, { body: { subject, permission, resource: 'doc:readme' } });
          probes.push({ subject, permission, start, allowed: r.status === 200 && r.json.allowed === true });
        }
      };
      const running = [probe(), probe(), probe()];
      // Six ways of revoking, four users each, one request after another while the probes run.
      const ways = [
        (s: string) => okta.req('PATCH', `/Users/${s}`, patch({ op: 'replace', value: { active: false } })),
        (s: string) => okta.req('PATCH', `/Users/${s}`, patch({ op: 'Replace', path: 'active', value: 'False' })),
        (s: string) => okta.req('DELETE', `/Users/${s}`),
        (s: string) => okta.req('PATCH', `/Groups/${g}`, patch({ op: 'Remove', path: 'members', value: [{ value: s }] })),
        (s: string) => okta.req('PATCH', `/Groups/${g}`, patch({ op: 'remove', path: `members[value eq "${s}"]` })),
        (s: string) => okta.req('PUT', `/Users/${s}`, { userName: `${s}@replaced.example.com`, active: false }),
      ];
      for (let i = 0; i < ids.length; i++) {
        const r = await ways[i % ways.length]!(ids[i]!);
        expect(r.status, r.text).toBeLessThan(300);
        revokedAt.set(ids[i]!, performance.now());
        await new Promise((res) => setTimeout(res, 5));
      }
      await new Promise((res) => setTimeout(res, 50));
      stop = true;
      await Promise.all(running);

      const violations = probes.filter((p) => p.allowed && p.start > revokedAt.get(p.subject)!);
      expect(violations).toEqual([]);
      // The probe could see both answers: allows before revocations, and checks after them.
      expect(probes.some((p) => p.allowed)).toBe(true);
      expect(probes.filter((p) => p.start > revokedAt.get(p.subject)!).length).toBeGreaterThan(20);
    });
  }
});

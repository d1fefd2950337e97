/**
 * Model-based test: random sequences of policy writes go to the SQL engine and to the in-memory
 * oracle (src/domain/oracle.ts); after every step the two must agree on errors (code and field),
 * `changed`, revisions, the whole read model of both organizations, and a few checks in every
 * consistency mode. Listings are compared at the end of each sequence.
 *
 * One database per engine per property; each run uses fresh organization ids (`p<run>a` …) so runs
 * (and fast-check's shrinking re-runs) never see each other's data. Commands are generated with
 * placeholder organizations A, B and Z (never created) and resolved per run.
 *
 * LOCKSTEP_PROPERTY_RUNS overrides the number of runs; LOCKSTEP_PROPERTY_SEED replays a seed.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { CheckResult, Lockstep, Via } from '../../src/domain/contract.ts';
import { isLockstepError } from '../../src/domain/errors.ts';
import { directionOf, effectiveKey, parseAssignmentId, type ConsistencyMode, type EffectiveRow } from '../../src/domain/model.ts';
import {
  ancestry,
  applyCommand,
  createOracleState,
  effectiveRows,
  grantingRows,
  isMembershipChain,
  oracleCheck,
  shortestChain,
  resourceAccessRows,
  subjectPermissions,
  type Command,
  type OracleState,
} from '../../src/domain/oracle.ts';
import { parsePolicy } from '../../src/domain/propagation.ts';
import { createWorker, type Worker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { callEngine } from '../helpers/oracle-commands.ts';

const RUNS = Number(process.env.LOCKSTEP_PROPERTY_RUNS ?? 0);
const SEED = process.env.LOCKSTEP_PROPERTY_SEED ? Number(process.env.LOCKSTEP_PROPERTY_SEED) : undefined;

// ——— pools: small, so that collisions, re-parenting and cycles are frequent ———
const SUBJECTS = ['s1', 's2', 's3', 's4'];
const GROUPS = ['g1', 'g2', 'g3'];
const ROLES = ['r1', 'r2', 'r3'];
const PERMS = ['p.a', 'p.b', 'p.c', 'p.d'];
const RESOURCES = ['doc:1', 'doc:2', 'doc:3', 'folder:1', 'folder:2', 'folder:3'];

/** Mostly valid values, sometimes malformed ones. */
const pick = (valid: string[], bad: string[] = [], badWeight = 1) =>
  bad.length ? fc.oneof({ weight: 20, arbitrary: fc.constantFrom(...valid) }, { weight: badWeight, arbitrary: fc.constantFrom(...bad) }) : fc.constantFrom(...valid);
const org = fc.oneof({ weight: 12, arbitrary: fc.constant('A') }, { weight: 4, arbitrary: fc.constant('B') }, { weight: 1, arbitrary: fc.constant('Z') }, { weight: 1, arbitrary: fc.constant('bad org') });
const subject = pick(SUBJECTS, ['s9', 'bad id', '']);
const group = pick(GROUPS, ['g9', 'g/1']);
const role = pick(ROLES, ['r9', 'Role']);
const perm = pick(PERMS, ['p.z', 'P.a', 'p..a']);
const resource = pick(RESOURCES, ['doc:9', 'Doc:1', 'doc', 'doc:']);
const optional = <T,>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 3 });

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('putOrganization' as const), org, name: optional(fc.constantFrom('X', 'Y', null)) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('putPermission' as const), org, slug: perm, risk: pick(['standard', 'high', 'critical'], ['extreme']) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('putRole' as const), org, slug: role, permissions: fc.array(perm, { maxLength: 3 }) }) },
  {
    weight: 7,
    arbitrary: fc
      .record({ org, ref: resource, parent: fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight: 3, arbitrary: resource }) })
      .map(({ org, ref, parent }) => {
        const i = ref.indexOf(':');
        return { kind: 'putResource' as const, org, type: i < 0 ? ref : ref.slice(0, i), id: i < 0 ? '' : ref.slice(i + 1), parent };
      }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deleteResource' as const), org, type: pick(['doc', 'folder'], ['Doc']), id: pick(['1', '2', '3'], ['9']) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('putSubject' as const), org, id: subject, subjectKind: pick(['user', 'agent'], ['robot']), active: optional(fc.boolean()) }, { requiredKeys: ['kind', 'org', 'id', 'subjectKind'] }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deleteSubject' as const), org, id: subject }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('putGroup' as const), org, id: group, name: optional(fc.constantFrom('G', 'H')) }, { requiredKeys: ['kind', 'org', 'id'] }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deleteGroup' as const), org, id: group }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('addMember' as const), org, group, subject }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('removeMember' as const), org, group, subject }) },
  // nested groups: any pair, so chains, diamonds and refused cycles all come up
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('addGroupMember' as const), org, group, member: group }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('removeGroupMember' as const), org, group, member: group }) },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('createAssignment' as const),
      org,
      principal: fc.oneof({ weight: 10, arbitrary: subject.map((s) => `subject:${s}`) }, { weight: 10, arbitrary: group.map((g) => `group:${g}`) }, { weight: 1, arbitrary: fc.constant('user:s1') }),
      role,
      resource,
    }),
  },
  // '@n' picks the n-th assignment id seen in this run (deleted ones and the other org's included)
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('deleteAssignment' as const), org, id: pick(['@0', '@1', '@2', '@3', '@4', '@5'], ['asg_unknown', 'a b']) }) },
);

/** A group row's `chain` is a shortest live membership path of the subject to the row's group. */
function expectChain(state: OracleState, org: string, subject: string, via: Via, where: string) {
  if (via.group === null) return expect(via.chain, where).toBeUndefined();
  expect(via.chain?.at(-1), where).toBe(via.group);
  expect(isMembershipChain(state, org, subject, via.chain ?? []), where).toBe(true);
  expect(via.chain!.length, where).toBe(shortestChain(state, org, subject, via.group));
  count(via.chain!.length > 1 ? 'via through nested groups' : 'via through a direct group');
}

const PAIRS = GROUPS.flatMap((g) => SUBJECTS.map((s) => [g, s] as const));
/**
 * A random but valid starting world for one organization, so that the random commands that follow
 * act on populated state (rows, inheritance, memberships) rather than mostly failing lookups.
 * `B` gets a sparser world, so that many names of A are unknown in B.
 */
const world = (org: 'A' | 'B') => {
  const some = <T,>(xs: readonly T[]) => (org === 'A' ? fc.constant(xs) : fc.subarray(xs as T[]));
  return fc
    .record({
      perms: some(PERMS).chain((ps) => fc.tuple(...ps.map((p) => fc.constantFrom('standard', 'high', 'critical').map((risk) => [p, risk] as const)))),
      roles: some(ROLES).chain((rs) => fc.tuple(...rs.map((r) => fc.subarray(PERMS).map((ps) => [r, ps] as const)))),
      resources: (org === 'A' ? fc.shuffledSubarray(RESOURCES, { minLength: 6 }) : fc.shuffledSubarray(RESOURCES)).chain((rs) =>
        fc.tuple(...rs.map((r, i) => fc.nat(i).map((j) => [r, j === 0 ? null : rs[j - 1]!] as const))),
      ),
      subjects: some(SUBJECTS).chain((ss) => fc.tuple(...ss.map((sid) => fc.tuple(fc.constantFrom('user', 'agent'), fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) })).map(([k, a]) => [sid, k, a] as const)))),
      groups: some(GROUPS),
      members: fc.subarray(PAIRS as unknown as (readonly [string, string])[]),
      assignments: fc.array(fc.tuple(fc.oneof(fc.constantFrom(...SUBJECTS).map((x) => `subject:${x}`), fc.constantFrom(...GROUPS).map((x) => `group:${x}`)), fc.constantFrom(...ROLES), fc.constantFrom(...RESOURCES)), { maxLength: org === 'A' ? 8 : 3 }),
    })
    .map((w): Command[] => [
      ...w.perms.map(([slug, risk]): Command => ({ kind: 'putPermission', org, slug, risk })),
      // a role may name a permission this world lacks (in B): that command then fails, as it should
      ...w.roles.map(([slug, permissions]): Command => ({ kind: 'putRole', org, slug, permissions })),
      ...w.resources.map(([ref, parent]): Command => ({ kind: 'putResource', org, type: ref.split(':')[0]!, id: ref.split(':')[1]!, parent })),
      ...w.subjects.map(([id, subjectKind, active]): Command => ({ kind: 'putSubject', org, id, subjectKind, active })),
      ...w.groups.map((id): Command => ({ kind: 'putGroup', org, id })),
      ...w.members.map(([group, subject]): Command => ({ kind: 'addMember', org, group, subject })),
      ...w.assignments.map(([principal, role, resource]): Command => ({ kind: 'createAssignment', org, principal, role, resource })),
    ]);
};

interface Probe {
  org: 'A' | 'B';
  subject: string;
  permission: string;
  resource: string;
  /** Picks a read-model row of A from before the step, to re-check right after a possible revocation. */
  row: number;
}
const probe: fc.Arbitrary<Probe> = fc.record({
  org: fc.constantFrom('A' as const, 'A' as const, 'B' as const),
  subject: pick(SUBJECTS, ['s9']),
  permission: pick(PERMS, ['p.z']),
  resource: pick(RESOURCES, ['doc:9']),
  row: fc.nat(),
});

/**
 * A check aimed at what row `p.row` of `state` grants (only rows not in `except`): its subject, a
 * permission of its role and a resource of its subtree. Aimed at the state before a write and checked
 * after it, it catches a revocation the moment it commits; aimed at the rows a write adds, a grant.
 */
function targeted(state: OracleState, org: string, p: Probe, except?: OracleState): Omit<Probe, 'org' | 'row'> | null {
  const old = new Set(except ? effectiveRows(except, org).map(effectiveKey) : []);
  const rows = effectiveRows(state, org).filter((r) => !old.has(effectiveKey(r)));
  const o = state.orgs.get(org);
  const row = rows[p.row % Math.max(rows.length, 1)];
  if (!o || !row) return null;
  const perms = [...(o.roles.get(row.role) ?? [])];
  const below = [...o.resources.keys()].filter((r) => ancestry(o, r).includes(row.resource));
  if (!perms.length) return null;
  return { subject: row.subject, permission: perms[p.row % perms.length]!, resource: below[p.row % below.length]! };
}

type Outcome = { ok: true; changed: boolean; revision: number; id?: string; created?: boolean } | { ok: false; code: string; field: string | undefined };


async function attempt<T>(fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; code: string; field: string | undefined }> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (isLockstepError(e)) return { ok: false, code: e.code, field: e.field };
    throw e;
  }
}

/** Coverage counters, printed with LOCKSTEP_PROPERTY_STATS=1 to see that runs reach interesting states. */
const stats: Record<string, number> = {};
const count = (k: string, n = 1) => void (stats[k] = (stats[k] ?? 0) + n);

const sortedKeys = (rows: EffectiveRow[]) => rows.map(effectiveKey).sort();
const viaKey = (v: Via | EffectiveRow) => `${v.assignment}|${v.group ?? ''}|${v.role}|${v.resource}`;

/** One run: its own organizations, oracle and the assignment ids the engine handed out. */
class Run {
  static counter = 0;
  readonly orgs: Record<string, string>;
  readonly state: OracleState = createOracleState();
  readonly ids: string[] = [];
  readonly log: string[] = [];

  constructor(readonly ls: Lockstep) {
    const n = `p${process.pid % 1000}x${++Run.counter}`;
    this.orgs = { A: `${n}a`, B: `${n}b`, Z: `${n}z`, 'bad org': 'bad org' };
  }

  resolve(c: Command): Command {
    const out = { ...c, org: this.orgs[c.org] ?? c.org } as Command;
    if (out.kind === 'deleteAssignment' && out.id.startsWith('@')) {
      out.id = this.ids.length ? this.ids[Number(out.id.slice(1)) % this.ids.length]! : 'asg_none';
    }
    return out;
  }

  /** Applies one write to both sides and compares the outcomes; returns what the later comparisons need. */
  async step(template: Command) {
    const c = this.resolve(template);
    const e = await attempt(() => callEngine(this.ls, c));
    const engine: Outcome = e.ok ? { ok: true, changed: e.value.changed, revision: e.value.revision, ...('id' in e.value ? { id: e.value.id, created: e.value.created } : {}) } : e;
    if (engine.ok && engine.id !== undefined && !this.ids.includes(engine.id)) this.ids.push(engine.id);
    const o = applyCommand(this.state, c, engine.ok && engine.id !== undefined ? engine.id : `oracle_${this.ids.length}`);
    const oracle: Outcome = o.ok ? { ok: true, changed: o.changed, revision: o.revision, ...(o.assignmentId !== undefined ? { id: o.assignmentId, created: o.created } : {}) } : o;
    this.log.push(`${JSON.stringify(c)} → ${JSON.stringify(e.ok ? { ...engine, propagation: e.value.propagation } : engine)}`);
    count(engine.ok ? (engine.changed ? `${c.kind} changed` : `${c.kind} unchanged`) : `${c.kind} ${engine.code}`);
    expect(engine, this.where('write outcome (ok/code/field, changed, revision, assignment id)')).toEqual(oracle);
    if (engine.ok && engine.id !== undefined) {
      // a generated id must be one the API accepts back (DELETE /assignments/{id})
      expect(() => parseAssignmentId(engine.id), this.where(`generated assignment id ${engine.id} is a valid id`)).not.toThrow();
    }
    const propagation = e.ok ? e.value.propagation : undefined;
    if (o.ok && o.change && propagation) {
      count(`${propagation.mode} ${propagation.status}`);
      // revocations are always applied inline (DESIGN: revoke, every tier → sync)
      if (o.change.revokeTier !== null && propagation.reason !== 'inline_budget') {
        expect(propagation, this.where('a revocation propagates sync')).toMatchObject({ mode: 'sync' });
      }
    }
    return { c, o, propagation };
  }

  /** The change-log entry of a changed write: kind, direction, tier and row counts (after propagation). */
  async compareChange(c: Command, o: ReturnType<typeof applyCommand>) {
    if (!o.ok || !o.change) return;
    const ch = await this.ls.getChange(c.org, o.revision);
    const { kind, direction, tier, rowsAdded, rowsRemoved } = ch;
    const { grantTier, revokeTier, ...expected } = o.change;
    // Known disagreement (see the report): a side whose roles carry no permission at all is a
    // grant/revoke for semantics.md, but the engine leaves it out. Tolerated so other bugs show.
    const has = (d: string, side: 'grant' | 'revoke') => d === side || d === 'both';
    const lenient = directionOf(has(expected.direction, 'grant') && grantTier !== null, has(expected.direction, 'revoke') && revokeTier !== null);
    if (direction === lenient && direction !== expected.direction) {
      count('known disagreement: empty-role side dropped');
      expected.direction = lenient;
    }
    expect({ kind, direction, tier, rowsAdded, rowsRemoved }, this.where(`change ${o.revision}`)).toEqual(expected);
    // called once propagation has drained: every change is effective, no earlier than decided
    expect(ch.effectiveAt, this.where(`change ${o.revision}: effectiveAt`)).not.toBeNull();
    expect(ch.lagMs, this.where(`change ${o.revision}: lagMs`)).toBeGreaterThanOrEqual(0);
    count(`change ${direction}`);
  }

  where(what: string) {
    return `${what} after:\n  ${this.log.join('\n  ')}`;
  }

  /**
   * The read model of both organizations equals the oracle's. With `before` (the oracle before a
   * write whose propagation is still pending), each row may be in its old or its new state, but rows
   * the write does not touch must be right.
   */
  async compareReadModels(before?: OracleState) {
    for (const key of ['A', 'B']) {
      const org = this.orgs[key]!;
      const keys = sortedKeys(await this.ls.readModel(org));
      count('read-model rows seen', keys.length);
      expect(new Set(keys).size, this.where(`duplicate read-model rows in ${key}`)).toBe(keys.length);
      const now = sortedKeys(effectiveRows(this.state, org));
      if (!before) {
        expect(keys, this.where(`read model of ${key}`)).toEqual(now);
        continue;
      }
      const was = new Set(sortedKeys(effectiveRows(before, org)));
      const either = new Set([...was, ...now]);
      const both = now.filter((k) => was.has(k));
      expect(keys.filter((k) => !either.has(k)), this.where(`pending: rows in ${key} that neither state has`)).toEqual([]);
      expect(both.filter((k) => !keys.includes(k)), this.where(`pending: rows in ${key} that both states have`)).toEqual([]);
    }
  }

  /**
   * A check agrees with the oracle. With `before` (a grant may still be pending), the engine may
   * deny what the write newly grants, but never allow what the policy now denies.
   */
  async compareCheck(p: Omit<Probe, 'row'>, mode: ConsistencyMode, before?: OracleState) {
    const org = this.orgs[p.org]!;
    const what = `check ${JSON.stringify({ ...p, org })} ${mode}${before ? ' (before propagation)' : ''}`;
    const revision = this.state.orgs.get(org)?.revision ?? 0;
    const consistency = mode === 'at_least_as_fresh' ? { mode, revision } : { mode };
    const e = await attempt<CheckResult>(() => this.ls.check(org, { subject: p.subject, permission: p.permission, resource: p.resource, consistency }));
    const o = oracleCheck(this.state, org, p.subject, p.permission, p.resource);
    if (!o.ok || !e.ok) {
      expect(e.ok ? { ok: true } : e, this.where(what)).toEqual(o.ok ? { ok: true } : o);
      return;
    }
    const was = before ? oracleCheck(before, org, p.subject, p.permission, p.resource) : undefined;
    if (was?.ok && !was.allowed && o.allowed && !e.value.allowed) count('check: pending grant denied');
    else expect(e.value.allowed, this.where(what)).toBe(o.allowed);
    expect(e.value.revision, this.where(`${what}: revision`)).toBe(revision);
    count(o.allowed ? 'check allowed' : 'check denied');
    if (e.value.allowed) {
      // `via` names a derivation that grants it, at the nearest level to the resource
      const granting = grantingRows(this.state, org, p.subject, p.permission, p.resource);
      expect(e.value.via, this.where(`${what}: via`)).toBeDefined();
      expect(granting.map(viaKey), this.where(`${what}: via grants`)).toContain(viaKey(e.value.via!));
      if (!before) expect(e.value.via!.resource, this.where(`${what}: via is nearest`)).toBe(granting[0]!.resource);
      expectChain(this.state, org, p.subject, e.value.via!, this.where(`${what}: via chain`));
    }
  }

  async compareListings(probes: Probe[]) {
    for (const key of ['A', 'B'] as const) {
      const org = this.orgs[key]!;
      for (const s of SUBJECTS) {
        const e = await attempt(() => this.ls.subjectEffective(org, s));
        const o = subjectPermissions(this.state, org, s);
        const what = `subjectEffective(${key}, ${s})`;
        // semantics.md is silent on listing an unknown subject: an empty list or NOT_FOUND both pass
        const known = this.state.orgs.get(org)?.subjects.has(s) === true;
        if (!known && !e.ok && e.code === 'NOT_FOUND' && o.ok && o.permissions.length === 0) continue;
        if (!o.ok || !e.ok) {
          expect(e.ok ? { ok: true } : e, this.where(what)).toEqual(o.ok ? { ok: true } : o);
          continue;
        }
        const entry = (x: { permission: string; resource: string; role: string; risk: string; via: Via | EffectiveRow }) =>
          `${x.permission}|${x.resource}|${x.role}|${x.risk}|${viaKey(x.via)}`;
        expect(e.value.permissions.map(entry).sort(), this.where(what)).toEqual(o.permissions.map(entry).sort());
        for (const x of e.value.permissions) expectChain(this.state, org, s, x.via, this.where(`${what}: chain`));
      }
    }
    for (const p of probes) {
      const org = this.orgs[p.org]!;
      const what = `resourceAccess(${p.org}, ${p.resource}, ${p.permission})`;
      const e = await attempt(() => this.ls.resourceAccess(org, p.resource, p.permission));
      const o = resourceAccessRows(this.state, org, p.resource, p.permission);
      // semantics.md is silent on an unknown resource here: an empty list or NOT_FOUND both pass
      const known = this.state.orgs.get(org)?.resources.has(p.resource) === true;
      if (!known && !e.ok && e.code === 'NOT_FOUND' && e.field === 'resource' && o.ok && o.rows.length === 0) continue;
      if (!o.ok || !e.ok) {
        expect(e.ok ? { ok: true } : e, this.where(what)).toEqual(o.ok ? { ok: true } : o);
        continue;
      }
      // the same subjects, each with a via that grants P on R or an ancestor
      expect([...new Set(e.value.subjects.map((x) => x.subject))].sort(), this.where(what)).toEqual([...new Set(o.rows.map((r) => r.subject))].sort());
      const valid = new Set(o.rows.map((r) => `${r.subject}|${viaKey(r)}`));
      for (const x of e.value.subjects) {
        expect(valid, this.where(`${what}: via of ${x.subject}`)).toContain(`${x.subject}|${viaKey(x.via)}`);
        expectChain(this.state, org, x.subject, x.via, this.where(`${what}: chain of ${x.subject}`));
      }
    }
  }
}

const MODES: ConsistencyMode[] = ['minimize_latency', 'fully_consistent', 'at_least_as_fresh'];

describeEachEngine('engine vs oracle', (engine) => {
  let db: Database;
  let ls: Lockstep;
  let stressed: Lockstep;
  let worker: Worker;
  beforeAll(async () => {
    for (const k of Object.keys(stats)) delete stats[k];
    db = await engine.open();
    ls = createLockstep(db);
    // Same database, another policy: every grant async and an inline budget of 0, so every change
    // that touches the read model goes through a job and the window before it is exercised.
    stressed = createLockstep(db, { defaultPolicy: parsePolicy({ grant: { critical: { mode: 'async' } }, inlineBudget: 0 }) });
    worker = createWorker({ db });
  });
  afterAll(async () => {
    if (process.env.LOCKSTEP_PROPERTY_STATS) console.log(engine.name, Object.entries(stats).sort());
    await db?.close();
  });

  const runs = RUNS || (engine.name === 'sqlite' ? 300 : 100);

  const property = (engineOf: () => Lockstep) =>
    fc.asyncProperty(world('A'), world('B'), fc.array(command, { minLength: 5, maxLength: 40 }), fc.array(probe, { minLength: 2, maxLength: 12 }), async (worldA, worldB, commands, probes) => {
      const run = new Run(engineOf());
      await run.step({ kind: 'putOrganization', org: 'A' });
      await run.step({ kind: 'putOrganization', org: 'B', name: 'Beta' });
      for (const c of [...worldA, ...worldB]) await run.step(c);
      await worker.drain();
      count('rows after setup', effectiveRows(run.state, run.orgs.A!).length);
      await run.compareReadModels();
      for (const [i, c] of commands.entries()) {
        const before = structuredClone(run.state);
        const { c: cmd, o, propagation } = await run.step(c);
        const p = probes[i % probes.length]!;
        // the random probe, one aimed at what the write may have revoked, one at what it may have granted
        const probesNow = [p, targeted(before, run.orgs.A!, p), targeted(run.state, run.orgs.A!, p, before)]
          .filter((q) => q !== null)
          .map((q) => ({ org: 'A' as const, ...q }));
        // the window between commit and propagation: safe, and exact where the write was applied inline
        const pending = propagation?.status === 'pending';
        await run.compareReadModels(pending ? before : undefined);
        for (const q of probesNow) {
          await run.compareCheck(q, 'fully_consistent');
          await run.compareCheck(q, 'minimize_latency', pending ? before : undefined);
        }
        if (pending) count(`drained jobs`, await worker.drain());
        await run.compareChange(cmd, o);
        if (pending) {
          await run.compareReadModels();
          for (const q of probesNow) await run.compareCheck(q, 'minimize_latency');
        }
        for (const q of probesNow) await run.compareCheck(q, 'at_least_as_fresh');
      }
      for (const p of probes) for (const mode of MODES) await run.compareCheck(p, mode);
      await run.compareListings(probes);
    });

  it(`agrees on every write, the read model, checks and listings (${runs} sequences)`, { timeout: 600_000 }, async () => {
    await fc.assert(property(() => ls), { numRuns: runs, seed: SEED, endOnFailure: false });
  });

  // Deep hierarchies: a chain n:1 > n:2 > … built to a random length around the 32 limit, then random
  // re-parenting of subtrees (moving a subtree deeper, cycles, roots) and deletes, with an assignment
  // at the top whose reach is checked at random depths.
  const deepRuns = Math.ceil(runs / 5);
  const node = fc.integer({ min: 1, max: 36 });
  const deepCommand: fc.Arbitrary<Command> = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(node, node).map(([i, j]): Command => ({ kind: 'putResource', org: 'A', type: 'n', id: String(i), parent: `n:${j}` })) },
    { weight: 1, arbitrary: node.map((i): Command => ({ kind: 'putResource', org: 'A', type: 'n', id: String(i), parent: null })) },
    { weight: 1, arbitrary: node.map((i): Command => ({ kind: 'deleteResource', org: 'A', type: 'n', id: String(i) })) },
  );
  it(`agrees on deep hierarchies: depth limit, cycles, moved subtrees (${deepRuns} sequences)`, { timeout: 600_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 28, max: 36 }), fc.array(deepCommand, { minLength: 5, maxLength: 30 }), fc.array(node, { minLength: 1, maxLength: 8 }), async (length, commands, depths) => {
        const run = new Run(ls);
        const setupCmds: Command[] = [
          { kind: 'putOrganization', org: 'A' },
          { kind: 'putOrganization', org: 'B' },
          { kind: 'putPermission', org: 'A', slug: 'p.a', risk: 'critical' },
          { kind: 'putRole', org: 'A', slug: 'r1', permissions: ['p.a'] },
          { kind: 'putSubject', org: 'A', id: 's1', subjectKind: 'user' },
          { kind: 'putResource', org: 'A', type: 'n', id: '1', parent: null },
          { kind: 'createAssignment', org: 'A', principal: 'subject:s1', role: 'r1', resource: 'n:1' },
        ];
        for (let i = 2; i <= length; i++) setupCmds.push({ kind: 'putResource', org: 'A', type: 'n', id: String(i), parent: `n:${i - 1}` });
        for (const c of [...setupCmds, ...commands]) {
          await run.step(c);
          for (const d of depths.slice(0, 2)) await run.compareCheck({ org: 'A', subject: 's1', permission: 'p.a', resource: `n:${d}` }, 'minimize_latency');
        }
        await worker.drain();
        await run.compareReadModels();
        for (const d of depths) for (const mode of MODES) await run.compareCheck({ org: 'A', subject: 's1', permission: 'p.a', resource: `n:${d}` }, mode);
        count('deep: DEPTH_EXCEEDED', run.log.filter((l) => l.includes('DEPTH_EXCEEDED')).length);
      }),
      { numRuns: deepRuns, seed: SEED, endOnFailure: false },
    );
  });

  const stressRuns = Math.ceil(runs / 2);
  it(`stays safe while every change waits for a job, then agrees (${stressRuns} sequences)`, { timeout: 600_000 }, async () => {
    await fc.assert(property(() => stressed), { numRuns: stressRuns, seed: SEED, endOnFailure: false });
  });
});

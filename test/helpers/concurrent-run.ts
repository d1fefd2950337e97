/**
 * A concurrent run against one organization, whatever carries the requests: a plan (fast-check: a
 * starting world, a propagation policy, and one sequence of steps per lane), the setup that mirrors
 * the world into the oracle, the lanes — each sending its steps one at a time to its own target (a
 * serve process over HTTP, or an engine on its own pool) and recording every answer with the
 * moments it was sent and answered — and the settling that drains the queue and judges the history
 * (test/helpers/history.ts), the read model, the drift audit, the queue and the delivery events.
 *
 * The steps are mostly membership adds and removes and direct assignments on subjects that lane i
 * shares with lanes i − 1 and i + 1 (so writers contend on the same subjects and on different ones),
 * some other writes of test/helpers/oracle-commands.ts, checks in every consistency mode (half of
 * them re-checking a tuple allowed lately, and one right after each committed removal), and
 * switches of the propagation policy (all sync, all async, random) that every writer sees.
 */
import fc from 'fast-check';
import type { Lockstep } from '../../src/domain/contract.ts';
import { effectiveKey, type EffectiveRow } from '../../src/domain/model.ts';
import { applyCommand, createOracleState, effectiveRows, type Command, type OracleState } from '../../src/domain/oracle.ts';
import { createTargets } from '../../src/delivery/targets.ts';
import type { Database } from '../../src/storage/database.ts';
import { judgeHistory, type CheckMode, type CheckRecord, type HistoryCommand, type WriteAnswer, type WriteRecord } from './history.ts';
import { attempt, callEngine, GROUPS, PERMS, policyArb, RESOURCES, ROLES, SUBJECTS, worldArb, writeArb } from './oracle-commands.ts';

const mode = (m: 'sync' | 'async') => ({ standard: { mode: m }, high: { mode: m }, critical: { mode: m } });
export const ALL_SYNC = { grant: mode('sync'), revoke: mode('sync'), inlineBudget: 10_000 };
export const ALL_ASYNC = { grant: mode('async'), revoke: mode('async'), inlineBudget: 10_000 };

/** Writes that may revoke: a committed one is followed by a re-check. */
const REVOKING = new Set(['removeMember', 'removeGroupMember', 'deleteAssignment', 'putSubject', 'deleteSubject', 'deleteGroup', 'putRole', 'putResource', 'deleteResource']);

export interface Tuple {
  subject: string;
  permission: string;
  resource: string;
}
export type Step = { write: Command } | { check: Tuple & { mode: CheckMode; recheck?: number | undefined } } | { policy: unknown };
export interface Plan {
  world: Command[];
  policy: unknown;
  lanes: Step[][];
}

/** Lane `i` mostly writes its two home subjects; lane i+1 shares one of them. */
const home = (i: number) => [SUBJECTS[i % SUBJECTS.length]!, SUBJECTS[(i + 1) % SUBJECTS.length]!];
const subjectOf = (i: number) => fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...home(i)) }, { weight: 1, arbitrary: fc.constantFrom(...SUBJECTS) });
const focused = (i: number): fc.Arbitrary<Command> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('addMember' as const), org: fc.constant('A'), group: fc.constantFrom(...GROUPS), subject: subjectOf(i) }) },
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('removeMember' as const), org: fc.constant('A'), group: fc.constantFrom(...GROUPS), subject: subjectOf(i) }) },
    {
      weight: 4,
      arbitrary: fc.record({ kind: fc.constant('createAssignment' as const), org: fc.constant('A'), principal: subjectOf(i).map((s) => `subject:${s}`), role: fc.constantFrom(...ROLES), resource: fc.constantFrom(...RESOURCES) }),
    },
    // a direct assignment of one of the lane's subjects, resolved when it is sent
    { weight: 3, arbitrary: fc.tuple(subjectOf(i), fc.nat(7)).map(([s, k]): Command => ({ kind: 'deleteAssignment', org: 'A', id: `@s:${s}:${k}` })) },
  );
const checkArb = (i: number) =>
  fc.record({
    subject: subjectOf(i),
    permission: fc.constantFrom(...PERMS),
    resource: fc.constantFrom(...RESOURCES),
    mode: fc.oneof(
      { weight: 3, arbitrary: fc.constant('minimize_latency' as const) },
      { weight: 1, arbitrary: fc.constant('fully_consistent' as const) },
      { weight: 1, arbitrary: fc.constant('at_least_as_fresh' as const) },
    ),
    // re-check a tuple some check allowed recently (the k-th latest), if any: revocations race it
    recheck: fc.option(fc.nat(15), { nil: undefined, freq: 2 }),
  });
const stepArb = (i: number): fc.Arbitrary<Step> =>
  fc.oneof(
    { weight: 10, arbitrary: focused(i).map((write) => ({ write })) },
    { weight: 4, arbitrary: writeArb.map((write) => ({ write })) },
    { weight: 7, arbitrary: checkArb(i).map((check) => ({ check })) },
    { weight: 1, arbitrary: fc.oneof(fc.constant(ALL_SYNC), fc.constant(ALL_ASYNC), policyArb).map((policy) => ({ policy })) },
  );

export const planArb = (lanes: number, steps: number): fc.Arbitrary<Plan> =>
  fc.record({
    world: worldArb,
    policy: fc.constantFrom<unknown>(ALL_SYNC, ALL_ASYNC),
    lanes: fc.tuple(...Array.from({ length: lanes }, (_, i) => fc.array(stepArb(i), { minLength: steps, maxLength: steps }))),
  });

/** Where a lane sends its steps. A write or check that failed outside the API's errors adds a `failure`. */
export interface Target {
  write(cmd: HistoryCommand): Promise<{ answer: WriteAnswer; failure?: string }>;
  check(tuple: Tuple, consistency: { mode: CheckMode; revision?: number }): Promise<{ answer: CheckRecord['answer']; failure?: string }>;
}

/** The placeholder organization `A` of the generators, as `org`. */
const resolveOrg = (c: Command, org: string): Command => ({ ...c, org: c.org === 'A' ? org : c.org }) as Command;

export interface Setup {
  org: string;
  oracle: OracleState;
  base: number;
  /** Assignment ids known so far and their principals (the setup's, then every answer's). */
  known: { id: string; principal: string }[];
  policy: unknown;
}

/**
 * Creates `org` with the plan's policy and world through `ls` (on `db`), mirrored into the oracle.
 * A polled target is registered first, so that the organization records delivery events from its
 * empty start (nothing is sent anywhere).
 */
export async function setUp(ls: Lockstep, db: Database, org: string, plan: Plan): Promise<Setup> {
  const oracle = createOracleState();
  const known: Setup['known'] = [];
  const apply = async (c: Command) => {
    const r = await callEngine(ls, c);
    const id = 'id' in r ? r.id : 'none';
    const o = applyCommand(oracle, c, id);
    if (!o.ok || o.revision !== r.revision) throw new Error(`setup ${JSON.stringify(c)}: engine ${JSON.stringify(r)}, oracle ${JSON.stringify(o)}`);
    if (c.kind === 'createAssignment' && !known.some((k) => k.id === id)) known.push({ id, principal: c.principal });
  };
  await apply({ kind: 'putOrganization', org });
  await createTargets({ db, now: Date.now, allowPrivate: false }).create(org, { name: 'history', kind: 'ssf', delivery: 'poll' });
  await ls.putPropagationPolicy(org, plan.policy);
  oracle.orgs.get(org)!.revision += 1;
  for (const c of plan.world) await apply(resolveOrg(c, org));
  return { org, oracle, base: oracle.orgs.get(org)!.revision, known, policy: plan.policy };
}

export interface History {
  writes: WriteRecord[];
  checks: CheckRecord[];
  failures: string[];
}

/** Runs lane i of the plan against `targets[i]`, all lanes at once. `who(i)` names lane i. */
export async function runLanes(setup: Setup, plan: Plan, targets: Target[], who: (i: number) => string): Promise<History> {
  const { org, base, known } = setup;
  const writes: WriteRecord[] = [];
  const checks: CheckRecord[] = [];
  const failures: string[] = [];
  const allowedRecently: Tuple[] = [];

  const resolve = (c: Command): Command => {
    const out = resolveOrg(c, org);
    if (out.kind !== 'deleteAssignment' || !out.id.startsWith('@')) return out;
    const m = /^@s:([^:]+):(\d+)$/.exec(out.id);
    const direct = m ? known.filter((k) => k.principal === `subject:${m[1]}`) : [];
    const k = Number(m ? m[2] : out.id.slice(1));
    const pool = direct.length ? direct : known;
    return { ...out, id: pool[k % pool.length]!.id };
  };

  const lane = async (i: number) => {
    const target = targets[i]!;
    const name = who(i);
    let seen = base;
    const check = async (seq: number, mode: CheckMode, of: Tuple, remember: boolean) => {
      const tuple: Tuple = { subject: of.subject, permission: of.permission, resource: of.resource };
      const requested = mode === 'at_least_as_fresh' ? seen : undefined;
      const t0 = performance.now();
      const { answer, failure } = await target.check(tuple, requested === undefined ? { mode } : { mode, revision: requested });
      const t1 = performance.now();
      if (failure) failures.push(`${name}#${seq} check ${JSON.stringify(tuple)}: ${failure}`);
      if (answer.ok && answer.allowed && remember) {
        allowedRecently.push(tuple);
        if (allowedRecently.length > 16) allowedRecently.shift();
      }
      checks.push({ who: name, seq, subject: tuple.subject, permission: tuple.permission, resource: tuple.resource, mode, t0, t1, ...(requested === undefined ? {} : { requested }), answer });
    };
    for (const [seq, step] of plan.lanes[i]!.entries()) {
      if ('check' in step) {
        const { mode, recheck } = step.check;
        const again = recheck === undefined || allowedRecently.length === 0 ? undefined : allowedRecently[allowedRecently.length - 1 - (recheck % allowedRecently.length)];
        await check(seq, mode, again ?? step.check, again === undefined);
        continue;
      }
      const cmd: HistoryCommand = 'policy' in step ? { kind: 'putPropagationPolicy', org, policy: step.policy } : resolve(step.write);
      const t0 = performance.now();
      const { answer, failure } = await target.write(cmd);
      const t1 = performance.now();
      if (failure) failures.push(`${name}#${seq} ${JSON.stringify(cmd)}: ${failure}`);
      if (answer.ok) {
        seen = Math.max(seen, answer.revision);
        if (cmd.kind === 'createAssignment' && answer.id !== undefined && !known.some((k) => k.id === answer.id)) known.push({ id: answer.id, principal: cmd.principal });
      }
      writes.push({ who: name, seq, cmd, t0, t1, answer });
      // Right after a committed removal, a tuple allowed lately — of the same subject if one was — is
      // checked again: a revocation that is late in a check shows up here.
      if (answer.ok && answer.changed && REVOKING.has(cmd.kind) && allowedRecently.length > 0) {
        const subject = 'subject' in cmd ? cmd.subject : cmd.kind === 'putSubject' || cmd.kind === 'deleteSubject' ? cmd.id : undefined;
        const tuple = [...allowedRecently].reverse().find((t) => t.subject === subject) ?? allowedRecently.at(-1)!;
        await check(seq, 'minimize_latency', tuple, false);
      }
    }
  };
  await Promise.all(targets.map((_, i) => lane(i)));
  return { writes, checks, failures };
}

/** An engine in this process as a lane's target (errors of the API are answers, others failures). */
export function engineTarget(ls: Lockstep, org: string): Target {
  return {
    async write(cmd) {
      const r = await attempt(() => (cmd.kind === 'putPropagationPolicy' ? ls.putPropagationPolicy(org, cmd.policy) : callEngine(ls, cmd))).catch((e: unknown) => ({ ok: false as const, code: `THROWN ${String(e)}`, field: undefined }));
      if (!r.ok) return { answer: { ok: false, code: r.code }, ...(r.code === 'INTERNAL' || r.code === 'UNAVAILABLE' || r.code.startsWith('THROWN') ? { failure: r.code } : {}) };
      const v = r.value;
      return {
        answer: {
          ok: true,
          revision: v.revision,
          changed: v.changed,
          status: v.propagation.status,
          ...('id' in v && cmd.kind === 'createAssignment' ? { id: v.id, created: v.created } : {}),
        },
      };
    },
    async check(tuple, consistency) {
      const r = await attempt(() => ls.check(org, { ...tuple, consistency })).catch((e: unknown) => ({ ok: false as const, code: `THROWN ${String(e)}`, field: undefined }));
      if (!r.ok) return { answer: { ok: false, code: r.code }, ...(r.code === 'UNAVAILABLE' && consistency.mode === 'at_least_as_fresh' ? {} : { failure: r.code }) };
      return { answer: { ok: true, allowed: r.value.allowed, revision: r.value.revision } };
    },
  };
}

export interface Settled {
  /** Everything wrong, as sentences (empty: the run is correct). */
  violations: string[];
  stats: Record<string, number>;
  finalRevision: number;
  committed: number;
  /** Committed writes per lane. */
  committedBy: Map<string, number>;
}

const sortedKeys = (rows: EffectiveRow[]) => rows.map(effectiveKey).sort();

/**
 * Waits (bounded) until no job of the organization is open, then judges: the history, the read
 * model against the oracle at the final revision, failed jobs, the drift audit, changes never
 * effective.
 */
export async function settle(ls: Lockstep, db: Database, setup: Setup, history: History, sleep: (ms: number) => Promise<unknown>): Promise<Settled> {
  const { org } = setup;
  for (let i = 0; ; i++) {
    const open = await ls.listJobs({ org, states: ['pending', 'running', 'retrying'], limit: 100 });
    if (open.length === 0) break;
    if (i > 3000) return { violations: [`jobs still open: ${JSON.stringify(open.slice(0, 3))}`], stats: {}, finalRevision: -1, committed: 0, committedBy: new Map() };
    await sleep(10);
  }
  const finalRevision = (await ls.getOrganization(org)).revision;
  const changeLog = (await db.all<{ revision: number; kind: string }>('SELECT revision, kind FROM changes WHERE org_id = $1 AND revision > $2 ORDER BY revision', [org, setup.base])).map((r) => ({
    revision: Number(r.revision),
    kind: r.kind,
  }));
  const verdict = judgeHistory({ org, setup: setup.oracle, setupPolicy: setup.policy, writes: history.writes, checks: history.checks, finalRevision, changeLog });
  const violations = [...history.failures.map((f) => `failed: ${f}`), ...verdict.violations];
  const rm = sortedKeys(await ls.readModel(org));
  const want = sortedKeys(effectiveRows(verdict.states.at(-1)!, org));
  const extra = rm.filter((k) => !want.includes(k));
  const missing = want.filter((k) => !rm.includes(k));
  if (new Set(rm).size !== rm.length) violations.push('the read model has a row twice');
  if (extra.length || missing.length) violations.push(`the read model after the queue drained vs the oracle at revision ${finalRevision}: extra ${JSON.stringify(extra)}, missing ${JSON.stringify(missing)}`);
  const events = await db.all<EventRow>('SELECT revision, seq, type, body FROM delivery_events WHERE org_id = $1 ORDER BY revision, seq', [org]);
  violations.push(...judgeEvents(events, await ls.readModel(org), finalRevision));
  verdict.stats['delivery events'] = events.length;
  verdict.stats['jobs of several batches'] = Number((await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM jobs WHERE org_id = $1 AND batches > 1', [org]))!.n);
  const failed = await ls.listJobs({ org, states: ['failed'], limit: 10 });
  if (failed.length) violations.push(`failed jobs: ${JSON.stringify(failed)}`);
  const drift = await ls.auditDrift(org, { limit: 5 });
  if (drift.missing || drift.extra) violations.push(`drift audit: missing ${drift.missing}, extra ${drift.extra}`);
  const notEffective = Number((await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM changes WHERE org_id = $1 AND effective_at IS NULL', [org]))!.n);
  if (notEffective) violations.push(`${notEffective} changes never effective`);
  const committedBy = new Map<string, number>();
  for (const w of history.writes) if (w.answer.ok && w.answer.changed) committedBy.set(w.who, (committedBy.get(w.who) ?? 0) + 1);
  return { violations, stats: verdict.stats, finalRevision, committed: [...committedBy.values()].reduce((a, b) => a + b, 0), committedBy };
}

interface EventRow {
  revision: number;
  seq: number;
  type: string;
  body: string;
}

/**
 * 5. The delivery events are the read model's history, per entry (subject, role, resource), in
 * (revision, seq) order: from the empty start, each entry alternates granted / revoked, and its last
 * event says whether the read model holds it in the end. Events of two transactions on one entry
 * numbered against their commit order break the alternation or the end.
 */
export function judgeEvents(events: EventRow[], readModel: EffectiveRow[], finalRevision: number): string[] {
  const out: string[] = [];
  const state = new Map<string, { held: boolean; at: string }>();
  for (const e of events) {
    if (e.type === 'subject.deprovisioned') continue;
    const granted = e.type === 'access.granted';
    if (!granted && e.type !== 'access.revoked') continue;
    if (Number(e.revision) > finalRevision) out.push(`delivery event ${e.revision}/${e.seq} after the final revision ${finalRevision}`);
    const body = JSON.parse(e.body) as { subjects: string[]; access: { role: string; resource: string }[] };
    for (const subject of body.subjects) {
      for (const a of body.access) {
        const key = `${subject}|${a.role}|${a.resource}`;
        const was = state.get(key);
        const at = `${e.type}@${e.revision}/${e.seq}`;
        if ((was?.held ?? false) === granted) out.push(`delivery events of ${key}: ${at} follows ${was?.at ?? 'the empty start'}`);
        state.set(key, { held: granted, at });
      }
    }
  }
  const held = new Set(readModel.map((r) => `${r.subject}|${r.role}|${r.resource}`));
  for (const [key, s] of state) if (s.held !== held.has(key)) out.push(`delivery events of ${key} end with ${s.at}, but the read model ${held.has(key) ? 'holds' : 'lacks'} it`);
  for (const key of held) if (!state.has(key)) out.push(`the read model holds ${key}, which no delivery event granted`);
  return out;
}

/** The history as JSON lines in send order (for a failure's report). */
export function historyLines(h: History): string {
  const items = [...h.writes.map((w) => ({ t: w.t0, line: { write: w } })), ...h.checks.map((c) => ({ t: c.t0, line: { check: c } }))].sort((a, b) => a.t - b.t);
  return items.map((x) => JSON.stringify(x.line)).join('\n') + '\n';
}

/**
 * The history of a concurrent run against one organization — every write's answer and every check's,
 * each with the moments (one monotonic clock, in the process that sent them) it was sent and
 * answered — and its verdict against the oracle (src/domain/oracle.ts). Pure: no I/O; the callers
 * (the multi-process and multi-pool tests) record, this judges. It returns violations as sentences
 * instead of asserting, so a test can print them all with its seed.
 *
 * What a correct engine's history satisfies, whatever the interleaving:
 *  1. the revisions of the writes that changed something are unique and contiguous from the setup's,
 *     and a write acknowledged before another was sent has the lower revision (real-time order);
 *  2. replaying those writes through the oracle in revision order accepts every one as a change,
 *     with the same assignment ids (the history is a serial one, in revision order); a write that
 *     changed nothing is a no-op in the oracle at the revision it answered; a rejected write is
 *     rejected, with the same code, by the oracle at some revision it could have run at;
 *  3. a check that allowed is allowed by the oracle at some revision it could have been evaluated
 *     at: no earlier than the revision it answered nor than any write acknowledged before it was
 *     sent, no later than the last write sent before it returned (a stale allow after a committed
 *     revocation fails this); a `fully_consistent` deny, and an `at_least_as_fresh` deny for a grant
 *     committed by the requested revision, are held to the same window the other way round;
 *  4. a write committed under an all-sync policy was applied inline (never `pending`).
 * The window in 3 lets an engine answer a check from a state a little newer than the revision it
 * reports (a committed-revision watermark); it assumes that state is a prefix of the revision order.
 */
import { DEFAULT_POLICY, parsePolicy } from '../../src/domain/propagation.ts';
import { applyCommand, grantingRows, oracleCheck, type Command, type OracleState } from '../../src/domain/oracle.ts';

/** A history write: an oracle command, or a propagation-policy write (which the oracle does not model). */
export type HistoryCommand = Command | { kind: 'putPropagationPolicy'; org: string; policy: unknown };

export type WriteAnswer =
  | { ok: true; revision: number; changed: boolean; id?: string; created?: boolean; status?: 'effective' | 'pending' }
  | { ok: false; code: string; httpStatus?: number };

export interface WriteRecord {
  /** Who sent it: a process and a lane in it (for the report). */
  who: string;
  seq: number;
  cmd: HistoryCommand;
  t0: number;
  t1: number;
  answer: WriteAnswer;
}

export type CheckMode = 'minimize_latency' | 'fully_consistent' | 'at_least_as_fresh';
export interface CheckRecord {
  who: string;
  seq: number;
  subject: string;
  permission: string;
  resource: string;
  mode: CheckMode;
  /** at_least_as_fresh: the revision asked for. */
  requested?: number;
  t0: number;
  t1: number;
  answer: { ok: true; allowed: boolean; revision: number } | { ok: false; code: string; httpStatus?: number };
}

export interface ChangeLogRow {
  revision: number;
  kind: string;
}

export interface Verdict {
  violations: string[];
  /** The oracle after each revision from the setup's (`states[r - base]`). */
  states: OracleState[];
  /** Kind of each committed change as the oracle classifies it, by revision. */
  kinds: Map<number, string>;
  stats: Record<string, number>;
}

export const policyText = (body: unknown) => JSON.stringify(parsePolicy(body, DEFAULT_POLICY));
const isAllSync = (text: string | null) => {
  if (text === null) return false;
  const p = JSON.parse(text) as { grant: Record<string, { mode: string }>; revoke: Record<string, { mode: string }>; inlineBudget: number };
  return [...Object.values(p.grant), ...Object.values(p.revoke)].every((r) => r.mode === 'sync') && p.inlineBudget >= 10_000;
};

export interface HistoryInput {
  org: string;
  /** The oracle after the setup, and the organization's revision then (they must agree). */
  setup: OracleState;
  /** The propagation policy in force after the setup (a body for parsePolicy), or null for none set. */
  setupPolicy: unknown;
  writes: WriteRecord[];
  checks: CheckRecord[];
  /** The organization's revision once everything settled. */
  finalRevision: number;
  /** The change log's rows after the setup's revision. */
  changeLog: ChangeLogRow[];
}

const show = (w: WriteRecord) => `${w.who}#${w.seq} ${JSON.stringify(w.cmd)} → ${JSON.stringify(w.answer)}`;
const showCheck = (c: CheckRecord) =>
  `${c.who}#${c.seq} check ${c.subject} ${c.permission} ${c.resource} ${c.mode}${c.requested === undefined ? '' : `@${c.requested}`} → ${JSON.stringify(c.answer)}`;

export function judgeHistory(input: HistoryInput): Verdict {
  const { org, writes, checks } = input;
  const violations: string[] = [];
  const stats: Record<string, number> = {};
  const count = (k: string) => void (stats[k] = (stats[k] ?? 0) + 1);
  const base = input.setup.orgs.get(org)?.revision ?? 0;
  const committed = writes.filter((w): w is WriteRecord & { answer: { ok: true; changed: true } } => w.answer.ok && w.answer.changed);

  // ——— 1. unique, contiguous revisions; real-time order ———
  const byRevision = new Map<number, WriteRecord>();
  for (const w of committed) {
    const r = w.answer.revision;
    const other = byRevision.get(r);
    if (other) violations.push(`revision ${r} answered to two writes: ${show(other)} and ${show(w)}`);
    else byRevision.set(r, w);
    if (r <= base || r > input.finalRevision) violations.push(`revision ${r} outside (${base}, ${input.finalRevision}]: ${show(w)}`);
  }
  for (let r = base + 1; r <= input.finalRevision; r++) if (!byRevision.has(r)) violations.push(`revision ${r} was committed (the organization is at ${input.finalRevision}) but answered to no write`);
  const logged = new Map(input.changeLog.map((c) => [c.revision, c.kind]));
  if (logged.size !== input.changeLog.length) violations.push('the change log has a revision twice');
  for (const r of logged.keys()) if (!byRevision.has(r)) violations.push(`the change log has revision ${r}, which no write was answered`);
  for (const r of byRevision.keys()) if (!logged.has(r)) violations.push(`revision ${r} is missing from the change log`);

  // acknowledged-before: for each moment, the highest revision of a change acknowledged before it
  const acked = committed.map((w) => [w.t1, w.answer.revision] as const).sort((a, b) => a[0] - b[0]);
  const prefixMax: number[] = [];
  acked.forEach(([, r], i) => prefixMax.push(Math.max(r, prefixMax[i - 1] ?? base)));
  const ackedBefore = (t: number) => {
    let lo = 0;
    let hi = acked.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (acked[mid]![0] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? base : prefixMax[lo - 1]!;
  };
  // sent-before: the highest revision of a change sent before a moment
  const sent = committed.map((w) => [w.t0, w.answer.revision] as const).sort((a, b) => a[0] - b[0]);
  const sentMax: number[] = [];
  sent.forEach(([, r], i) => sentMax.push(Math.max(r, sentMax[i - 1] ?? base)));
  const sentBefore = (t: number) => {
    let lo = 0;
    let hi = sent.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sent[mid]![0] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? base : sentMax[lo - 1]!;
  };
  for (const w of committed) {
    const before = ackedBefore(w.t0);
    if (w.answer.revision <= before) violations.push(`real-time order: revision ${w.answer.revision} for a write sent after revision ${before} was acknowledged: ${show(w)}`);
  }

  // ——— 2. serial replay in revision order ———
  const states: OracleState[] = [structuredClone(input.setup)];
  const policies: (string | null)[] = [input.setupPolicy === null ? null : policyText(input.setupPolicy)];
  const kinds = new Map<number, string>();
  let replayed = base;
  for (let r = base + 1; r <= input.finalRevision; r++) {
    const w = byRevision.get(r);
    if (!w) break;
    const state = structuredClone(states[states.length - 1]!);
    const answer = w.answer as Extract<WriteAnswer, { ok: true }>;
    let policy = policies[policies.length - 1]!;
    if (w.cmd.kind === 'putPropagationPolicy') {
      const text = policyText(w.cmd.policy);
      if (text === policy) violations.push(`replay: revision ${r} changed the propagation policy to the one already in force: ${show(w)}`);
      policy = text;
      state.orgs.get(org)!.revision = r;
      kinds.set(r, 'propagation_policy.update');
    } else {
      const o = applyCommand(state, w.cmd, answer.id ?? 'none');
      if (!o.ok || !o.changed) {
        violations.push(`replay: revision ${r} is ${o.ok ? 'a no-op' : `rejected (${o.code})`} in the oracle after revision ${r - 1}: ${show(w)}`);
        break;
      }
      if (o.revision !== r) violations.push(`replay: the oracle numbers ${show(w)} ${o.revision}`);
      if (w.cmd.kind === 'createAssignment' && (o.assignmentId !== answer.id || o.created !== answer.created)) {
        violations.push(`replay: revision ${r} answered assignment ${answer.id} (created ${answer.created}), the oracle ${o.assignmentId} (created ${o.created}): ${show(w)}`);
      }
      kinds.set(r, o.change!.kind);
      count(`committed ${w.cmd.kind}`);
    }
    // 4. the policy in force when it committed: the one after the revision before it
    if (isAllSync(policies[policies.length - 1]!) && answer.status === 'pending') violations.push(`revision ${r} went pending under an all-sync policy: ${show(w)}`);
    states.push(state);
    policies.push(policy);
    replayed = r;
  }
  for (const [r, kind] of kinds) if (logged.has(r) && logged.get(r) !== kind) violations.push(`change log: revision ${r} is ${logged.get(r)}, the oracle says ${kind}: ${show(byRevision.get(r)!)}`);
  const at = (r: number) => states[r - base];

  // no-ops: a no-op in the oracle at the revision answered
  for (const w of writes) {
    if (!w.answer.ok || w.answer.changed) continue;
    const r = w.answer.revision;
    count(`no-op ${w.cmd.kind}`);
    const before = ackedBefore(w.t0);
    if (r < before) violations.push(`a no-op answered revision ${r}, older than revision ${before} acknowledged before it was sent: ${show(w)}`);
    if (r < base || r > replayed) {
      if (r < base || r > input.finalRevision) violations.push(`a no-op answered revision ${r}, outside [${base}, ${input.finalRevision}]: ${show(w)}`);
      continue;
    }
    const state = structuredClone(at(r)!);
    if (w.cmd.kind === 'putPropagationPolicy') {
      if (policies[r - base] !== policyText(w.cmd.policy)) violations.push(`a policy write was a no-op at revision ${r}, where another policy was in force: ${show(w)}`);
      continue;
    }
    const o = applyCommand(state, w.cmd, w.answer.id ?? 'none');
    if (!o.ok || o.changed) violations.push(`a no-op at revision ${r} is ${o.ok ? 'a change' : `rejected (${o.code})`} in the oracle at ${r}: ${show(w)}`);
    else if (w.cmd.kind === 'createAssignment' && o.assignmentId !== w.answer.id) violations.push(`a no-op assignment answered ${w.answer.id}, the oracle has ${o.assignmentId}: ${show(w)}`);
  }

  // rejected: rejected with the same code at some revision it could have run at
  for (const w of writes) {
    if (w.answer.ok) continue;
    count(`rejected ${w.cmd.kind} ${w.answer.code}`);
    if (w.cmd.kind === 'putPropagationPolicy') {
      violations.push(`a policy write was rejected: ${show(w)}`);
      continue;
    }
    const lo = ackedBefore(w.t0);
    const hi = Math.min(sentBefore(w.t1), replayed);
    if (lo > hi) continue; // beyond where the replay stopped (already a violation)
    let matched = false;
    for (let r = lo; r <= hi && !matched; r++) {
      const o = applyCommand(structuredClone(at(r)!), w.cmd, 'none');
      matched = !o.ok && o.code === w.answer.code;
    }
    if (!matched) violations.push(`rejected with ${w.answer.code}, but the oracle does not reject it so at any revision in [${lo}, ${hi}]: ${show(w)}`);
  }

  // ——— 3. checks against the window of revisions they could have seen ———
  for (const c of checks) {
    if (!c.answer.ok) {
      if (c.answer.code === 'UNAVAILABLE' && c.mode === 'at_least_as_fresh') {
        count('check unavailable (freshness timeout)');
        continue;
      }
      violations.push(`check failed: ${showCheck(c)}`);
      continue;
    }
    const { allowed, revision } = c.answer;
    const lo = Math.max(revision, ackedBefore(c.t0));
    const hi = Math.min(Math.max(sentBefore(c.t1), revision), replayed);
    if (revision > sentBefore(c.t1)) violations.push(`check answered revision ${revision}, which no write sent before it returned had: ${showCheck(c)}`);
    if (c.requested !== undefined && revision < c.requested) violations.push(`at_least_as_fresh answered revision ${revision} < ${c.requested}: ${showCheck(c)}`);
    if (lo > hi) continue;
    const says = (r: number) => {
      const o = oracleCheck(at(r)!, org, c.subject, c.permission, c.resource);
      return o.ok ? o.allowed : null;
    };
    const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
    /** The derivations (assignment, group) that grant the check at revision `r`. */
    const granting = (r: number) => grantingRows(at(r)!, org, c.subject, c.permission, c.resource).map((g) => `assignment ${g.assignment} (group ${g.group ?? '-'})`);
    count(`check ${c.mode} ${allowed ? 'allowed' : 'denied'}`);
    if (allowed) {
      if (!range(lo, hi).some((r) => says(r) === true)) {
        const earlier = range(base, lo - 1).some((r) => says(r) === true);
        violations.push(`${earlier ? 'stale allow' : 'allow never granted'}: the oracle denies at every revision in [${lo}, ${hi}]: ${showCheck(c)}`);
      }
    } else if (c.mode === 'fully_consistent') {
      if (range(lo, hi).every((r) => says(r) === true)) violations.push(`fully_consistent denied, but the oracle allows at every revision in [${lo}, ${hi}]: ${showCheck(c)}`);
    } else if (c.mode === 'at_least_as_fresh' && c.requested !== undefined) {
      // Grants up to the requested revision must be visible; later ones may lag. So a deny is wrong
      // where one derivation grants at every revision from the requested one to the last the check
      // could have seen: committed by then and revoked by nothing after. An allow that only holds
      // because a later grant replaced a revoked one (one assignment revoked at once, another
      // granted asynchronously) may be denied meanwhile.
      const from = Math.max(c.requested, base);
      const held = from <= hi ? range(from + 1, hi).reduce((keep, r) => keep.filter((k) => granting(r).includes(k)), granting(from)) : [];
      if (held.length > 0) {
        violations.push(`at_least_as_fresh denied, but ${held[0]} grants at every revision in [${from}, ${hi}]: ${showCheck(c)}`);
      }
    }
  }
  return { violations, states, kinds, stats };
}

/**
 * The propagation policy: for each (direction × risk tier) of a change, whether its read-model
 * fan-out is applied inline (`sync`) or by a reconciliation job (`async`), and the SLO it is held
 * to. Pure: parsing, defaults and the decision.
 */
import { validation } from './errors.ts';
import { RISK_TIERS, type Direction, type RiskTier } from './model.ts';

export type PropagationMode = 'sync' | 'async';
export interface Rule {
  mode: PropagationMode;
  sloMs: number;
}
export interface PropagationPolicy {
  grant: Record<RiskTier, Rule>;
  revoke: Record<RiskTier, Rule>;
  /** Effective rows a sync change may touch inline; beyond it the fan-out goes to a priority job. */
  inlineBudget: number;
}

export const DEFAULT_POLICY: PropagationPolicy = Object.freeze({
  grant: {
    standard: { mode: 'async', sloMs: 2000 },
    high: { mode: 'async', sloMs: 500 },
    critical: { mode: 'sync', sloMs: 100 },
  },
  revoke: {
    standard: { mode: 'sync', sloMs: 100 },
    high: { mode: 'sync', sloMs: 100 },
    critical: { mode: 'sync', sloMs: 100 },
  },
  inlineBudget: 10_000,
}) as PropagationPolicy;

/** Every change propagated inline (within the inline budget): the behaviour before asynchronous propagation. */
export const SYNC_POLICY: PropagationPolicy = Object.freeze({
  grant: { standard: { mode: 'sync', sloMs: 100 }, high: { mode: 'sync', sloMs: 100 }, critical: { mode: 'sync', sloMs: 100 } },
  revoke: DEFAULT_POLICY.revoke,
  inlineBudget: DEFAULT_POLICY.inlineBudget,
}) as PropagationPolicy;

const MAX_SLO_MS = 24 * 3600 * 1000;

function parseRule(v: unknown, path: string, fallback: Rule): Rule {
  if (v === undefined) return fallback;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw validation(path, `${path} must be an object {mode, sloMs}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'mode' && k !== 'sloMs') throw validation(`${path}.${k}`, `${path}.${k} is not a known setting`);
  const mode = o.mode ?? fallback.mode;
  if (mode !== 'sync' && mode !== 'async') throw validation(`${path}.mode`, `${path}.mode must be 'sync' or 'async'`);
  const sloMs = o.sloMs ?? fallback.sloMs;
  if (typeof sloMs !== 'number' || !Number.isInteger(sloMs) || sloMs < 0 || sloMs > MAX_SLO_MS) {
    throw validation(`${path}.sloMs`, `${path}.sloMs must be an integer number of milliseconds between 0 and ${MAX_SLO_MS}`);
  }
  return { mode, sloMs };
}

/** Parses a (possibly partial) policy; what it leaves out comes from `base`. Errors name the path. */
export function parsePolicy(v: unknown, base: PropagationPolicy = DEFAULT_POLICY, path = 'policy'): PropagationPolicy {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw validation(path, `${path} must be an object`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k !== 'grant' && k !== 'revoke' && k !== 'inlineBudget') throw validation(`${path}.${k}`, `${path}.${k} is not a known setting`);
  }
  const side = (dir: 'grant' | 'revoke') => {
    const s = o[dir];
    if (s === undefined) return base[dir];
    if (typeof s !== 'object' || s === null || Array.isArray(s)) throw validation(`${path}.${dir}`, `${path}.${dir} must be an object keyed by tier`);
    for (const k of Object.keys(s)) {
      if (!RISK_TIERS.includes(k as RiskTier)) throw validation(`${path}.${dir}.${k}`, `${path}.${dir}.${k}: tiers are ${RISK_TIERS.join(', ')}`);
    }
    const rec = s as Record<string, unknown>;
    return Object.fromEntries(RISK_TIERS.map((t) => [t, parseRule(rec[t], `${path}.${dir}.${t}`, base[dir][t])])) as Record<RiskTier, Rule>;
  };
  const budget = o.inlineBudget ?? base.inlineBudget;
  if (typeof budget !== 'number' || !Number.isInteger(budget) || budget < 0 || budget > 10_000_000) {
    throw validation(`${path}.inlineBudget`, `${path}.inlineBudget must be an integer between 0 and 10000000`);
  }
  return { grant: side('grant'), revoke: side('revoke'), inlineBudget: budget };
}

export interface Decision {
  mode: PropagationMode;
  sloMs: number | null;
  /** Why the fan-out is deferred although the rule says sync. */
  reason?: 'inline_budget';
  /** Revocations (and over-budget changes) run before grants. */
  priority: number;
}

/**
 * Decides how a change's fan-out of `rows` read-model rows propagates. A change in both directions
 * follows the stricter (revocation) rule; a change that touches no rows has nothing to propagate.
 */
export function decide(policy: PropagationPolicy, direction: Direction, tier: RiskTier | null, rows: number): Decision {
  if (direction === 'none' || tier === null || rows === 0) return { mode: 'sync', sloMs: null, priority: 1 };
  const rule = direction === 'grant' ? policy.grant[tier] : policy.revoke[tier];
  const priority = direction === 'grant' ? 1 : 0;
  if (rule.mode === 'sync' && rows > policy.inlineBudget) return { mode: 'async', sloMs: rule.sloMs, reason: 'inline_budget', priority: 0 };
  return { mode: rule.mode, sloMs: rule.sloMs, priority };
}

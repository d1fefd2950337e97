/**
 * Nested groups and expiry, as pure functions: the rules the oracle evaluates and the write side
 * enforces. Pure: no I/O, no clock (the caller passes `now`).
 *
 * A group may be a member of a group (an edge child → parent). The graph is kept acyclic and its
 * longest chain of groups — a subject's direct group, then each enclosing group up to the top,
 * all counted — at most MAX_GROUP_DEPTH long.
 */
import { LockstepError, validation } from './errors.ts';
import { rfc3339Millis } from './time.ts';

/**
 * 16 levels: directories nest a handful deep in practice (the 8 the issue asks for, twice over).
 * The bound caps the work a check does to prove a membership path (one index probe per level of
 * the recursive walk up from the subject) and the closure rows an edge can add (ancestors ×
 * descendants of the edge).
 */
export const MAX_GROUP_DEPTH = 16;

/** A time-bound item is live strictly before its expiry: from that instant on it is denied. */
export const isLive = (expiresAt: number | null | undefined, now: number) => expiresAt === null || expiresAt === undefined || now < expiresAt;

/**
 * `expiresAt` of a membership or assignment: absent/null for none, else an RFC 3339 time that must
 * be after `now` (an expiry already past would be a grant that is born revoked: refused).
 */
export function parseExpiresAt(v: unknown, now: number, field = 'expiresAt'): number | null {
  if (v === undefined || v === null) return null;
  const t = rfc3339Millis(v) ?? NaN;
  if (!Number.isFinite(t)) throw validation(field, `${field} must be an RFC 3339 time such as 2026-12-04T17:00:00Z`);
  if (t <= now) throw validation(field, `${field} ${v} is not in the future (now: ${new Date(now).toISOString()})`);
  return t;
}

/** The nested-group graph as the rules need it: edges parent → children. */
export interface GroupGraph {
  childrenOf(group: string): Iterable<string>;
  parentsOf(group: string): Iterable<string>;
}

/** `group` and every group nested in it, transitively. */
export function descendantsOrSelf(g: GroupGraph, group: string): Set<string> {
  const seen = new Set([group]);
  const todo = [group];
  while (todo.length) for (const c of g.childrenOf(todo.pop()!)) if (!seen.has(c)) (seen.add(c), todo.push(c));
  return seen;
}

/** `group` and every group it is nested in, transitively. */
export function ancestorsOrSelf(g: GroupGraph, group: string): Set<string> {
  const seen = new Set([group]);
  const todo = [group];
  while (todo.length) for (const p of g.parentsOf(todo.pop()!)) if (!seen.has(p)) (seen.add(p), todo.push(p));
  return seen;
}

/** Longest chain of groups from `group` down (`down`) or up, `group` counted. The graph is acyclic. */
function longest(g: GroupGraph, group: string, down: boolean, memo = new Map<string, number>()): number {
  const known = memo.get(group);
  if (known !== undefined) return known;
  let best = 0;
  for (const next of down ? g.childrenOf(group) : g.parentsOf(group)) best = Math.max(best, longest(g, next, down, memo));
  memo.set(group, best + 1);
  return best + 1;
}

/**
 * Refuses an edge `child` → `parent` that would close a cycle (409, naming the edge) or make a chain
 * longer than MAX_GROUP_DEPTH (422). Call it only for an edge that does not exist yet.
 */
export function assertEdgeAllowed(g: GroupGraph, parent: string, child: string, field = 'member'): void {
  const edge = { parent, child };
  if (parent === child || descendantsOrSelf(g, child).has(parent)) {
    throw new LockstepError('GROUP_CYCLE', `group '${child}' in group '${parent}' would make a cycle: '${parent}' is '${child}' or nested in it`, {
      field,
      meta: { edge },
    });
  }
  const depth = longest(g, child, true) + longest(g, parent, false);
  if (depth > MAX_GROUP_DEPTH) {
    throw new LockstepError('GROUP_DEPTH_EXCEEDED', `group '${child}' in group '${parent}' would make a chain of ${depth} groups; the limit is ${MAX_GROUP_DEPTH}`, {
      field,
      meta: { edge, depth, limit: MAX_GROUP_DEPTH },
    });
  }
}

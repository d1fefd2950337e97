/**
 * The reference evaluator: docs/semantics.md implemented from scratch, in memory, as plainly as
 * possible. It is the oracle the property tests hold the SQL engine against, so it favours being
 * obviously right over being fast: the read model is recomputed from the source maps on every call.
 * Pure: no I/O, no clock; assignment ids are supplied by the caller.
 *
 * Where semantics.md leaves a detail open, the oracle takes the reading below (and the engine agrees):
 * - error fields are named as in the HTTP contract: path parameters `slug` (permission, role), `id`
 *   (subject, group, assignment), `resource` (its `{type}/{id}`); body fields by their key;
 * - a PUT is a full replacement: no `name` means null, no `parent` means a root, no `active` means active;
 * - deleting an unknown subject, group or resource is NOT_FOUND (on `id`, `id`, `resource`);
 * - a new resource naming itself as parent is NOT_FOUND on `parent` (existence is checked before cycles);
 * - nested groups and expiry follow docs/semantics.md: an expired membership or assignment derives
 *   nothing from its instant on, but stays a row (so writes still see it) until the expiry job's
 *   `expire*` command removes it; a write that re-adds it revives it (`*.update`).
 *
 * Time: the oracle has no clock. `now` (epoch ms) is an argument of every function that depends on
 * it, 0 by default (nothing ever expires at 0).
 */
import { LockstepError, notFound, type ErrorCode } from './errors.ts';
import { ancestorsOrSelf, assertEdgeAllowed, descendantsOrSelf, isLive, parseExpiresAt, type GroupGraph } from './groups.ts';
import {
  MAX_RESOURCE_DEPTH, directionOf, effectiveKey, tierOfRank, tierRank,
  parseAssignmentId, parseGroupId, parseOrgId, parsePermissionSlug, parsePrincipal, parseResourceRef, parseRiskTier,
  parseRoleSlug, parseSubjectId, parseSubjectKind, resourceRef,
} from './model.ts';
import type {
  AssignmentId, Direction, EffectiveRow, GroupId, PermissionSlug, Principal, ResourceRef, RiskTier, RoleSlug, SubjectId, SubjectKind,
} from './model.ts';

export interface OracleOrg {
  name: string | null;
  revision: number;
  permissions: Map<string, RiskTier>;
  roles: Map<string, Set<string>>;
  /** ref → parent ref (null for a root). */
  resources: Map<string, string | null>;
  subjects: Map<string, { kind: SubjectKind; active: boolean }>;
  groups: Map<string, string | null>;
  /** group → its subject members. */
  members: Map<string, Set<string>>;
  /** group → the groups nested in it (edges child → parent, stored under the parent). */
  nested: Map<string, Set<string>>;
  /** Expiry (epoch ms) of a time-bound item, keyed by `expiryKey`; absent: no expiry. */
  expiries: Map<string, number>;
  assignments: Map<string, { principal: Principal; role: RoleSlug; resource: ResourceRef }>;
}
export interface OracleState {
  orgs: Map<string, OracleOrg>;
}

export const createOracleState = (): OracleState => ({ orgs: new Map() });

/** Key of a time-bound item in `OracleOrg.expiries`. */
export const expiryKey = {
  member: (group: string, subject: string) => `m|${group}|${subject}`,
  nested: (parent: string, child: string) => `n|${parent}|${child}`,
  assignment: (id: string) => `a|${id}`,
};

/** The nested-group graph of an organization, every edge counted (live or expired: structure). */
export function groupGraph(o: OracleOrg, now?: number): GroupGraph {
  const live = (p: string, c: string) => now === undefined || isLive(o.expiries.get(expiryKey.nested(p, c)), now);
  return {
    childrenOf: (g) => [...(o.nested.get(g) ?? [])].filter((c) => live(g, c)),
    parentsOf: (g) => [...o.nested].filter(([p, cs]) => cs.has(g) && live(p, g)).map(([p]) => p),
  };
}

/** The groups `subject` is in at `now`, transitively: live memberships, then live nested edges up. */
export function groupsOf(o: OracleOrg, subject: string, now = 0): Set<string> {
  const graph = groupGraph(o, now);
  const out = new Set<string>();
  for (const [g, ms] of o.members) {
    if (ms.has(subject) && isLive(o.expiries.get(expiryKey.member(g, subject)), now)) for (const a of ancestorsOrSelf(graph, g)) out.add(a);
  }
  return out;
}

/**
 * Whether `chain` (a subject's direct group first, the assignment's group last) is a membership
 * path of `subject` at `now`: every link exists and is live.
 */
export function isMembershipChain(state: OracleState, org: string, subject: string, chain: readonly string[], now = 0): boolean {
  const o = state.orgs.get(org);
  if (!o || chain.length === 0) return false;
  const [first] = chain;
  if (!o.members.get(first!)?.has(subject) || !isLive(o.expiries.get(expiryKey.member(first!, subject)), now)) return false;
  for (let i = 1; i < chain.length; i++) {
    const [child, parent] = [chain[i - 1]!, chain[i]!];
    if (!o.nested.get(parent)?.has(child) || !isLive(o.expiries.get(expiryKey.nested(parent, child)), now)) return false;
  }
  return true;
}

/** Length of the shortest membership path from `subject` to `group` at `now` (0: none). */
export function shortestChain(state: OracleState, org: string, subject: string, group: string, now = 0): number {
  const o = state.orgs.get(org);
  if (!o) return 0;
  const graph = groupGraph(o, now);
  let level = [...o.members].filter(([g, ms]) => ms.has(subject) && isLive(o.expiries.get(expiryKey.member(g, subject)), now)).map(([g]) => g);
  const seen = new Set(level);
  for (let n = 1; level.length > 0; n++) {
    if (level.includes(group)) return n;
    level = level.flatMap((g) => [...graph.parentsOf(g)]).filter((p) => !seen.has(p) && (seen.add(p), true));
  }
  return 0;
}

/**
 * The expiry job's commands for `org` at `now`: one per membership, nested edge or assignment whose
 * expiry has passed, earliest first (ties: assignments, then memberships, by key).
 */
export function dueExpiries(state: OracleState, org: string, now: number): Command[] {
  const o = state.orgs.get(org);
  if (!o) return [];
  return [...o.expiries]
    .filter(([, at]) => at <= now)
    .sort(([ka, a], [kb, b]) => a - b || (ka < kb ? -1 : ka > kb ? 1 : 0))
    .map(([k]): Command => {
      const [t, x, y] = k.split('|') as [string, string, string];
      if (t === 'a') return { kind: 'expireAssignment', org, id: x };
      return { kind: 'expireMembership', org, group: x, member: t === 'm' ? `subject:${y}` : `group:${y}` };
    });
}

/** One command per write method of `Lockstep`, with the same arguments. */
export type Command =
  | { kind: 'putOrganization'; org: string; name?: string | null }
  | { kind: 'putPermission'; org: string; slug: string; risk: string }
  | { kind: 'putRole'; org: string; slug: string; permissions: readonly string[] }
  | { kind: 'putResource'; org: string; type: string; id: string; parent?: string | null }
  | { kind: 'deleteResource'; org: string; type: string; id: string }
  | { kind: 'putSubject'; org: string; id: string; subjectKind: string; active?: boolean }
  | { kind: 'deleteSubject'; org: string; id: string }
  | { kind: 'putGroup'; org: string; id: string; name?: string | null }
  | { kind: 'deleteGroup'; org: string; id: string }
  | { kind: 'addMember'; org: string; group: string; subject: string; expiresAt?: string | null }
  | { kind: 'removeMember'; org: string; group: string; subject: string }
  | { kind: 'addGroupMember'; org: string; group: string; member: string; expiresAt?: string | null }
  | { kind: 'removeGroupMember'; org: string; group: string; member: string }
  | { kind: 'createAssignment'; org: string; principal: string; role: string; resource: string; expiresAt?: string | null }
  | { kind: 'deleteAssignment'; org: string; id: string }
  // The expiry job's writes (not API methods): remove an item whose expiry has passed.
  | { kind: 'expireMembership'; org: string; group: string; member: string }
  | { kind: 'expireAssignment'; org: string; id: string };

/** The change-log entry a changed write commits, as far as semantics.md defines it. */
export interface OracleChange {
  kind: string;
  direction: Direction;
  tier: RiskTier | null;
  rowsAdded: number;
  rowsRemoved: number;
  /** Highest tier of the grant and revoke sides (null when a side is absent or its roles have no permission). */
  grantTier: RiskTier | null;
  revokeTier: RiskTier | null;
}

export type ApplyResult =
  | { ok: true; changed: boolean; revision: number; assignmentId?: AssignmentId; created?: boolean; change?: OracleChange }
  | { ok: false; code: ErrorCode; field: string | undefined };

function cloneOrg(o: OracleOrg): OracleOrg {
  return structuredClone(o);
}

function requireOrg(state: OracleState, org: string): OracleOrg {
  const o = state.orgs.get(org);
  if (!o) throw notFound('org', 'organization', org);
  return o;
}

/** Ancestors of `ref`, nearest first, starting with `ref` itself. */
export function ancestry(o: OracleOrg, ref: string): string[] {
  const chain: string[] = [];
  for (let r: string | null | undefined = ref; r != null && o.resources.has(r); r = o.resources.get(r)) chain.push(r);
  return chain;
}

/** Length of the longest downward chain below `ref` (0 for a leaf). */
function heightBelow(o: OracleOrg, ref: string): number {
  let h = 0;
  for (const [child, parent] of o.resources) if (parent === ref) h = Math.max(h, 1 + heightBelow(o, child));
  return h;
}

/** `ref` and all its descendants. */
function subtree(o: OracleOrg, ref: string): Set<string> {
  const out = new Set<string>();
  for (const r of o.resources.keys()) if (ancestry(o, r).includes(ref)) out.add(r);
  return out;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

/**
 * Field names follow the HTTP contract: a path parameter is named as in the path (`slug` of a
 * permission or role, `id` of a subject, group or assignment; `resource` for `{type}/{id}`), a body
 * field by its key. Validates everything, then looks things up, then mutates `o` (a private copy) and reports `changed`
 * (`updated`: an existing membership or assignment was rewritten; `expiredAt`: the expiry removed). */
function execute(state: OracleState, cmd: Command, newAssignmentId: string, now: number): Omit<Extract<ApplyResult, { ok: true }>, 'ok' | 'revision'> & { org: OracleOrg; updated?: boolean; expiredAt?: number; reach?: Reach } {
  const orgId = parseOrgId(cmd.org);
  switch (cmd.kind) {
    case 'putOrganization': {
      const name = cmd.name ?? null;
      const existing = state.orgs.get(orgId);
      if (!existing) {
        const o: OracleOrg = {
          name, revision: 0, permissions: new Map(), roles: new Map(), resources: new Map(), subjects: new Map(),
          groups: new Map(), members: new Map(), nested: new Map(), expiries: new Map(), assignments: new Map(),
        };
        return { org: o, changed: true };
      }
      const o = cloneOrg(existing);
      const changed = o.name !== name;
      o.name = name;
      return { org: o, changed };
    }
    case 'putPermission': {
      const slug = parsePermissionSlug(cmd.slug, 'slug');
      const risk = parseRiskTier(cmd.risk);
      const o = cloneOrg(requireOrg(state, orgId));
      const changed = o.permissions.get(slug) !== risk;
      o.permissions.set(slug, risk);
      return { org: o, changed };
    }
    case 'putRole': {
      const slug = parseRoleSlug(cmd.slug, 'slug');
      const perms = cmd.permissions.map((p, i) => parsePermissionSlug(p, `permissions[${i}]`));
      const o = cloneOrg(requireOrg(state, orgId));
      perms.forEach((p, i) => {
        if (!o.permissions.has(p)) throw notFound(`permissions[${i}]`, 'permission', p);
      });
      const next = new Set<string>(perms);
      const prev = o.roles.get(slug);
      o.roles.set(slug, next);
      return { org: o, changed: !prev || !sameSet(prev, next) };
    }
    case 'putResource': {
      const ref = resourceRef(cmd.type, cmd.id);
      const parent = cmd.parent == null ? null : parseResourceRef(cmd.parent, 'parent');
      const o = cloneOrg(requireOrg(state, orgId));
      if (parent !== null) {
        if (!o.resources.has(parent)) throw notFound('parent', 'resource', parent);
        if (ancestry(o, parent).includes(ref)) {
          throw new LockstepError('CYCLE', `${parent} is ${ref} or one of its descendants`, { field: 'parent' });
        }
        const length = ancestry(o, parent).length + 1 + (o.resources.has(ref) ? heightBelow(o, ref) : 0);
        if (length > MAX_RESOURCE_DEPTH) {
          throw new LockstepError('DEPTH_EXCEEDED', `chain of ${length} resources`, { field: 'parent' });
        }
      }
      const changed = !o.resources.has(ref) || o.resources.get(ref) !== parent;
      o.resources.set(ref, parent);
      return { org: o, changed };
    }
    case 'deleteResource': {
      const ref = resourceRef(cmd.type, cmd.id);
      const o = cloneOrg(requireOrg(state, orgId));
      if (!o.resources.has(ref)) throw notFound('resource', 'resource', ref);
      const gone = subtree(o, ref);
      for (const r of gone) o.resources.delete(r);
      for (const [id, a] of o.assignments) if (gone.has(a.resource)) (o.assignments.delete(id), o.expiries.delete(expiryKey.assignment(id)));
      return { org: o, changed: true };
    }
    case 'putSubject': {
      const id = parseSubjectId(cmd.id, 'id');
      const kind = parseSubjectKind(cmd.subjectKind);
      if (cmd.active !== undefined && typeof cmd.active !== 'boolean') {
        throw new LockstepError('VALIDATION', 'active must be a boolean', { field: 'active' });
      }
      const active = cmd.active ?? true;
      const o = cloneOrg(requireOrg(state, orgId));
      const prev = o.subjects.get(id);
      if (prev && prev.kind !== kind) {
        throw new LockstepError('CONFLICT', `subject ${id} is a ${prev.kind}`, { field: 'kind' });
      }
      o.subjects.set(id, { kind, active });
      return { org: o, changed: !prev || prev.active !== active };
    }
    case 'deleteSubject': {
      const id = parseSubjectId(cmd.id, 'id');
      const o = cloneOrg(requireOrg(state, orgId));
      if (!o.subjects.has(id)) throw notFound('id', 'subject', id);
      o.subjects.delete(id);
      for (const [g, m] of o.members) if (m.delete(id)) o.expiries.delete(expiryKey.member(g, id));
      for (const [aid, a] of o.assignments) {
        if (a.principal.type === 'subject' && a.principal.id === id) (o.assignments.delete(aid), o.expiries.delete(expiryKey.assignment(aid)));
      }
      return { org: o, changed: true };
    }
    case 'putGroup': {
      const id = parseGroupId(cmd.id, 'id');
      const name = cmd.name ?? null;
      const o = cloneOrg(requireOrg(state, orgId));
      const changed = !o.groups.has(id) || o.groups.get(id) !== name;
      o.groups.set(id, name);
      return { org: o, changed };
    }
    case 'deleteGroup': {
      const id = parseGroupId(cmd.id, 'id');
      const o = cloneOrg(requireOrg(state, orgId));
      if (!o.groups.has(id)) throw notFound('id', 'group', id);
      o.groups.delete(id);
      for (const s of o.members.get(id) ?? []) o.expiries.delete(expiryKey.member(id, s));
      o.members.delete(id);
      // its edges both ways
      for (const c of o.nested.get(id) ?? []) o.expiries.delete(expiryKey.nested(id, c));
      o.nested.delete(id);
      for (const [p, cs] of o.nested) if (cs.delete(id)) o.expiries.delete(expiryKey.nested(p, id));
      for (const [aid, a] of o.assignments) {
        if (a.principal.type === 'group' && a.principal.id === id) (o.assignments.delete(aid), o.expiries.delete(expiryKey.assignment(aid)));
      }
      return { org: o, changed: true };
    }
    case 'addMember':
    case 'removeMember':
    case 'addGroupMember':
    case 'removeGroupMember': {
      const nested = cmd.kind === 'addGroupMember' || cmd.kind === 'removeGroupMember';
      const add = cmd.kind === 'addMember' || cmd.kind === 'addGroupMember';
      const group = parseGroupId(cmd.group);
      const member = nested ? parseGroupId(cmd.member, 'member') : parseSubjectId(cmd.subject);
      const expiresAt = add ? parseExpiresAt((cmd as { expiresAt?: unknown }).expiresAt, now) : null;
      const o = cloneOrg(requireOrg(state, orgId));
      if (!o.groups.has(group)) throw notFound('group', 'group', group);
      if (nested ? !o.groups.has(member) : !o.subjects.has(member)) throw notFound(nested ? 'member' : 'subject', nested ? 'group' : 'subject', member);
      const sets = nested ? o.nested : o.members;
      const key = nested ? expiryKey.nested(group, member) : expiryKey.member(group, member);
      const set = sets.get(group) ?? new Set<string>();
      const had = set.has(member);
      const prev = o.expiries.get(key) ?? null;
      const reach = { group, member, nested, before: !add };
      if (!add) {
        set.delete(member);
        o.expiries.delete(key);
        // removing what had already expired revokes nothing new
        return { org: o, changed: had, ...(isLive(prev, now) ? { reach } : {}) };
      }
      if (nested && !had) assertEdgeAllowed(groupGraph(o), group, member);
      sets.set(group, set.add(member));
      if (expiresAt === null) o.expiries.delete(key);
      else o.expiries.set(key, expiresAt);
      // a new membership, or an expired one revived, reaches; a live one re-timed does not
      return { org: o, changed: !had || prev !== expiresAt, updated: had, ...(!had || !isLive(prev, now) ? { reach } : {}) };
    }
    case 'expireMembership':
    case 'expireAssignment': {
      const o = cloneOrg(requireOrg(state, orgId));
      const key =
        cmd.kind === 'expireAssignment'
          ? expiryKey.assignment(cmd.id)
          : cmd.member.startsWith('group:') ? expiryKey.nested(cmd.group, cmd.member.slice(6)) : expiryKey.member(cmd.group, cmd.member.slice(8));
      const at = o.expiries.get(key);
      if (at === undefined || at > now) return { org: o, changed: false };
      o.expiries.delete(key);
      if (cmd.kind === 'expireAssignment') o.assignments.delete(cmd.id);
      else if (cmd.member.startsWith('group:')) o.nested.get(cmd.group)!.delete(cmd.member.slice(6));
      else o.members.get(cmd.group)!.delete(cmd.member.slice(8));
      const nested = cmd.kind === 'expireMembership' && cmd.member.startsWith('group:');
      const reach = cmd.kind === 'expireMembership' ? { reach: { group: cmd.group, member: cmd.member.slice(nested ? 6 : 8), nested, before: true } } : {};
      return { org: o, changed: true, expiredAt: at, ...reach };
    }
    case 'createAssignment': {
      const principal = parsePrincipal(cmd.principal);
      const role = parseRoleSlug(cmd.role);
      const resource = parseResourceRef(cmd.resource);
      const expiresAt = parseExpiresAt(cmd.expiresAt, now);
      const o = cloneOrg(requireOrg(state, orgId));
      const known = principal.type === 'subject' ? o.subjects.has(principal.id) : o.groups.has(principal.id);
      if (!known) throw notFound('principal', principal.type, principal.id);
      if (!o.roles.has(role)) throw notFound('role', 'role', role);
      if (!o.resources.has(resource)) throw notFound('resource', 'resource', resource);
      for (const [aid, a] of o.assignments) {
        if (a.principal.type === principal.type && a.principal.id === principal.id && a.role === role && a.resource === resource) {
          // The same natural key: the same assignment; another expiry (or none) updates it.
          const key = expiryKey.assignment(aid);
          const changed = (o.expiries.get(key) ?? null) !== expiresAt;
          if (expiresAt === null) o.expiries.delete(key);
          else o.expiries.set(key, expiresAt);
          return { org: o, changed, assignmentId: aid as AssignmentId, created: false, updated: true };
        }
      }
      o.assignments.set(newAssignmentId, { principal, role, resource });
      if (expiresAt !== null) o.expiries.set(expiryKey.assignment(newAssignmentId), expiresAt);
      return { org: o, changed: true, assignmentId: newAssignmentId as AssignmentId, created: true };
    }
    case 'deleteAssignment': {
      const id = parseAssignmentId(cmd.id);
      const o = cloneOrg(requireOrg(state, orgId));
      if (!o.assignments.has(id)) throw notFound('id', 'assignment', id);
      o.assignments.delete(id);
      o.expiries.delete(expiryKey.assignment(id));
      return { org: o, changed: true };
    }
  }
}

/**
 * Applies one write at time `now`. On error the state is untouched and the error's code and field
 * are returned; on success a changed write bumps the organization's revision by exactly one.
 * `newAssignmentId` is the id a created assignment gets: pass the engine's, or any id unique in the
 * organization (the default suits commands that create no assignment).
 */
export function applyCommand(state: OracleState, cmd: Command, newAssignmentId = 'a-oracle', now = 0): ApplyResult {
  let out: ReturnType<typeof execute>;
  try {
    out = execute(state, cmd, newAssignmentId, now);
  } catch (e) {
    if (e instanceof LockstepError) return { ok: false, code: e.code, field: e.field };
    throw e;
  }
  const { org, updated, expiredAt, reach, ...rest } = out;
  if (!out.changed) return { ok: true, ...rest, revision: org.revision };
  const before = state.orgs.get(cmd.org);
  org.revision += 1;
  state.orgs.set(cmd.org, org);
  // An expiry is classified by what the item derived just before its instant (at `now` it already
  // derives nothing, yet it is the revocation of those rows that the change log records).
  const at = expiredAt === undefined ? now : expiredAt - 1;
  return { ok: true, ...rest, revision: org.revision, change: classify(before, org, cmd, at, updated === true, reach) };
}

/**
 * What a membership change reaches, structurally: the member (an active subject, or the active
 * subjects under a nested group) and the group with every group above it (before a removal, after
 * an addition). Expiry is ignored: this is the fan-out the write computes.
 */
interface Reach {
  group: string;
  member: string;
  nested: boolean;
  /** Read the graph before the change (a removal). */
  before: boolean;
}

/** The roles a membership change reaches (none if it reaches no active subject). */
function reachedRoles(o: OracleOrg, r: Reach): string[] {
  const graph = groupGraph(o);
  const active = (s: string) => o.subjects.get(s)?.active === true;
  const subjects = r.nested
    ? [...descendantsOrSelf(graph, r.member)].flatMap((g) => [...(o.members.get(g) ?? [])]).filter(active)
    : [r.member].filter(active);
  if (subjects.length === 0) return [];
  const above = ancestorsOrSelf(graph, r.group);
  return [...o.assignments.values()].filter((a) => a.principal.type === 'group' && above.has(a.principal.id)).map((a) => a.role);
}

/** Highest risk tier among the permissions of `roles` (in `o`), or null. */
function highestTier(o: OracleOrg, roles: Iterable<string>): RiskTier | null {
  let best = 0;
  for (const r of roles) for (const p of o.roles.get(r) ?? []) best = Math.max(best, tierRank(o.permissions.get(p)!));
  return tierOfRank(best);
}

/** Kind, direction and tier of a committed change, per the table in docs/semantics.md. */
function classify(before: OracleOrg | undefined, after: OracleOrg, cmd: Command, at: number, updated: boolean, reach: Reach | undefined): OracleChange {
  const was = new Map((before ? rowsOf(before, at) : []).map((r) => [effectiveKey(r), r]));
  const now = new Map(rowsOf(after, at).map((r) => [effectiveKey(r), r]));
  const added = [...now].filter(([k]) => !was.has(k)).map(([, r]) => r);
  const removed = [...was].filter(([k]) => !now.has(k)).map(([, r]) => r);
  const rows = { rowsAdded: added.length, rowsRemoved: removed.length };
  const b = before!; // only organization.create has no `before`
  const sides = (kind: string, grant: boolean, grantTier: RiskTier | null, revoke: boolean, revokeTier: RiskTier | null): OracleChange => ({
    kind, ...rows, direction: directionOf(grant, revoke), tier: tierOfRank(Math.max(tierRank0(grantTier), tierRank0(revokeTier))), grantTier, revokeTier,
  });
  /** Kinds classified by the read-model rows they add or remove. */
  const byRows = (kind: string) =>
    sides(kind, added.length > 0, highestTier(after, added.map((r) => r.role)), removed.length > 0, highestTier(b, removed.map((r) => r.role)));
  /** Kinds classified by the roles of the assignments they bring or take away. */
  const byRoles = (kind: string, granted: string[], revoked: string[]) =>
    sides(kind, granted.length > 0, highestTier(b, granted), revoked.length > 0, highestTier(b, revoked));
  const none = (kind: string) => sides(kind, false, null, false, null);
  /** Roles of the assignments on any of `refs`. */
  const rolesOn = (o: OracleOrg, refs: Iterable<string>) => {
    const set = new Set(refs);
    return [...o.assignments.values()].filter((a) => set.has(a.resource)).map((a) => a.role);
  };
  switch (cmd.kind) {
    case 'putOrganization': return none(before ? 'organization.update' : 'organization.create');
    case 'putPermission': return none(b.permissions.has(cmd.slug) ? 'permission.update' : 'permission.create');
    case 'putRole': {
      const prev = b.roles.get(cmd.slug);
      if (!prev) return none('role.create');
      const next = after.roles.get(cmd.slug)!;
      const held = [...after.assignments.values()].some((a) => a.role === cmd.slug);
      const plus = [...next].filter((p) => !prev.has(p));
      const minus = [...prev].filter((p) => !next.has(p));
      if (!held) return none('role.update');
      const top = (ps: string[]) => tierOfRank(Math.max(0, ...ps.map((p) => tierRank(after.permissions.get(p)!))));
      return sides('role.update', plus.length > 0, top(plus), minus.length > 0, top(minus));
    }
    case 'putResource': {
      const ref = `${cmd.type}:${cmd.id}`;
      if (!b.resources.has(ref)) return none('resource.create');
      const oldUp = ancestry(b, ref).slice(1);
      const newUp = ancestry(after, ref).slice(1);
      return byRoles('resource.update', rolesOn(after, newUp), rolesOn(b, oldUp));
    }
    case 'deleteResource': {
      const ref = `${cmd.type}:${cmd.id}`;
      return byRoles('resource.delete', [], rolesOn(b, [...subtree(b, ref), ...ancestry(b, ref)]));
    }
    case 'putSubject': {
      const prev = b.subjects.get(cmd.id);
      if (!prev) return none('subject.create');
      return byRows(after.subjects.get(cmd.id)!.active ? 'subject.activate' : 'subject.deactivate');
    }
    case 'deleteSubject': return byRows('subject.delete');
    case 'putGroup': return none(b.groups.has(cmd.id) ? 'group.update' : 'group.create');
    case 'deleteGroup': {
      // by reach, like a membership: everyone under the group × the assignments of it and above it
      const t = highestTier(b, reachedRoles(b, { group: cmd.id, member: cmd.id, nested: true, before: true }));
      return sides('group.delete', false, null, t !== null, t);
    }
    // Memberships are classified by reach: a subject already holding a row through another path
    // still counts as granted (the conservative reading; the row counts stay exact).
    case 'addMember':
    case 'addGroupMember': {
      const t = reach ? highestTier(after, reachedRoles(after, reach)) : null;
      return sides(updated ? 'membership.update' : 'membership.add', t !== null, t, false, null);
    }
    case 'removeMember':
    case 'removeGroupMember': {
      const t = reach ? highestTier(b, reachedRoles(b, reach)) : null;
      return sides('membership.remove', false, null, t !== null, t);
    }
    case 'createAssignment': return byRows(updated ? 'assignment.update' : 'assignment.create');
    case 'deleteAssignment': return byRows('assignment.delete');
    case 'expireMembership': {
      const t = highestTier(b, reachedRoles(b, reach!));
      return sides('membership.expired', false, null, t !== null, t);
    }
    case 'expireAssignment': return byRows('assignment.expired');
  }
}
const tierRank0 = (t: RiskTier | null) => (t === null ? 0 : tierRank(t));

/**
 * The read model of an organization at `now`, recomputed from the source maps: one row per
 * derivation, (subject, assignment) — a subject reaching a group by two paths has one row.
 */
export function effectiveRows(state: OracleState, org: string, now = 0): EffectiveRow[] {
  const o = state.orgs.get(org);
  return o ? rowsOf(o, now) : [];
}

function rowsOf(o: OracleOrg, now: number): EffectiveRow[] {
  const active = (s: string) => o.subjects.get(s)?.active === true;
  const rows: EffectiveRow[] = [];
  const groupsOfActive = new Map([...o.subjects.keys()].filter(active).map((s) => [s, groupsOf(o, s, now)]));
  for (const [id, a] of o.assignments) {
    if (!isLive(o.expiries.get(expiryKey.assignment(id)), now)) continue;
    const base = { role: a.role, resource: a.resource, assignment: id as AssignmentId };
    if (a.principal.type === 'subject') {
      if (active(a.principal.id)) rows.push({ subject: a.principal.id, ...base, group: null });
    } else {
      for (const [s, groups] of groupsOfActive) if (groups.has(a.principal.id)) rows.push({ subject: s as SubjectId, ...base, group: a.principal.id as GroupId });
    }
  }
  return rows;
}

const roleHas = (o: OracleOrg, role: string, permission: string) => o.roles.get(role)?.has(permission) === true;


export type OracleCheck = { ok: true; allowed: boolean; via?: EffectiveRow } | { ok: false; code: ErrorCode; field: string | undefined };

function guarded<T>(fn: () => T): T | { ok: false; code: ErrorCode; field: string | undefined } {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LockstepError) return { ok: false, code: e.code, field: e.field };
    throw e;
  }
}

/**
 * Effective rows of `subject` that grant `permission` on `resource` (on it or an ancestor), nearest
 * first. The first one is the derivation a check should name as `via`.
 */
export function grantingRows(state: OracleState, org: string, subject: string, permission: string, resource: string, now = 0): EffectiveRow[] {
  const o = state.orgs.get(org);
  if (!o || !o.resources.has(resource)) return [];
  const chain = ancestry(o, resource);
  return effectiveRows(state, org, now)
    .filter((r) => r.subject === subject && chain.includes(r.resource) && roleHas(o, r.role, permission))
    .sort((a, b) => chain.indexOf(a.resource) - chain.indexOf(b.resource));
}

/** check(S, P, R): allowed iff R exists and some effective row of S on R or an ancestor has P. */
export function oracleCheck(state: OracleState, org: string, subject: string, permission: string, resource: string, now = 0): OracleCheck {
  return guarded(() => {
    const orgId = parseOrgId(org);
    const s = parseSubjectId(subject);
    const p = parsePermissionSlug(permission);
    const r = parseResourceRef(resource);
    const o = requireOrg(state, orgId);
    if (!o.permissions.has(p)) throw notFound('permission', 'permission', p);
    const [via] = grantingRows(state, org, s, p, r, now);
    return via ? { ok: true as const, allowed: true, via } : { ok: true as const, allowed: false };
  });
}

export interface OraclePermission {
  permission: PermissionSlug;
  resource: ResourceRef;
  role: RoleSlug;
  risk: RiskTier;
  via: EffectiveRow;
}

/** "What can S do?": one entry per (effective row of S, permission of its role), on the row's resource. */
export function subjectPermissions(state: OracleState, org: string, subject: string, now = 0) {
  return guarded(() => {
    const orgId = parseOrgId(org);
    const s = parseSubjectId(subject, 'id');
    const o = requireOrg(state, orgId);
    const out: OraclePermission[] = [];
    for (const row of effectiveRows(state, org, now)) {
      if (row.subject !== s) continue;
      for (const p of o.roles.get(row.role) ?? []) {
        out.push({ permission: p as PermissionSlug, resource: row.resource, role: row.role, risk: o.permissions.get(p)!, via: row });
      }
    }
    return { ok: true as const, permissions: out };
  });
}

/** "Who can do P on R?": every effective row granting P on R or an ancestor, nearest first. */
export function resourceAccessRows(state: OracleState, org: string, resource: string, permission: string, now = 0) {
  return guarded(() => {
    const orgId = parseOrgId(org);
    const r = parseResourceRef(resource);
    const p = parsePermissionSlug(permission);
    const o = requireOrg(state, orgId);
    if (!o.permissions.has(p)) throw notFound('permission', 'permission', p);
    if (!o.resources.has(r)) return { ok: true as const, rows: [] as EffectiveRow[] };
    const chain = ancestry(o, r);
    const rows = effectiveRows(state, org, now)
      .filter((row) => chain.includes(row.resource) && roleHas(o, row.role, p))
      .sort((a, b) => chain.indexOf(a.resource) - chain.indexOf(b.resource));
    return { ok: true as const, rows };
  });
}

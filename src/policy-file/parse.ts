/**
 * Reads a declarative policy file (YAML) into a validated, ordered plan. Everything that can be
 * checked without the store is checked here — structure, unknown keys, identifier syntax,
 * duplicates, resource cycles within the file — and every problem is reported at once, each
 * naming its path and line. References to objects the file does not define (a parent resource, a
 * group member, a role's permission) may exist in the store; the engine checks those when applying.
 * The format is described in docs/policy-file.md.
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { LockstepError } from '../domain/errors.ts';
import {
  parseGroupId,
  parseOrgId,
  parsePermissionSlug,
  parsePrincipal,
  parseResourceRef,
  parseRiskTier,
  parseRoleSlug,
  parseSubjectId,
  parseSubjectKind,
  type RiskTier,
  type SubjectKind,
} from '../domain/model.ts';
import { formatPath, lineOf, type Path } from './path.ts';
import { DEFAULT_POLICY, parsePolicy, type PropagationPolicy } from '../domain/propagation.ts';
import { parseExpiresAt } from '../domain/groups.ts';
import { findGroupCycle, sortResources } from './topo.ts';

export interface Located {
  path: Path;
}
export interface PermissionSpec extends Located { slug: string; risk: RiskTier }
export interface RoleSpec extends Located { slug: string; permissions: string[] }
export interface ResourceSpec extends Located { ref: string; type: string; id: string; parent: string | null }
export interface SubjectSpec extends Located { id: string; kind: SubjectKind; active: boolean }
/** A member of a group: `subject:ID` or `group:ID` (a nested group), optionally until `expiresAt`. */
export interface MemberSpec extends Located { member: string; expiresAt: string | null }
export interface GroupSpec extends Located { id: string; name: string | null; members: MemberSpec[] }
export interface AssignmentSpec extends Located { principal: string; role: string; resource: string; expiresAt: string | null }

export interface OrganizationSpec extends Located {
  id: string;
  name: string | null;
  /** Replaces the organization's propagation policy when given (settings left out take the default). */
  propagation: PropagationPolicy | null;
  permissions: PermissionSpec[];
  roles: RoleSpec[];
  /** Parents before children. */
  resources: ResourceSpec[];
  subjects: SubjectSpec[];
  groups: GroupSpec[];
  assignments: AssignmentSpec[];
}

/** One check of an assertion: `subject` can (or cannot) do `permission` on `resource`. */
export interface CheckSpec extends Located { subject: string; permission: string; resource: string }
export const WRITE_OPS = ['add_member', 'remove_member', 'assign', 'unassign', 'deactivate', 'activate', 'delete_subject', 'move_resource'] as const;
export type WriteOp = (typeof WRITE_OPS)[number];
/** A write an assertion makes first (`after:`), in the file's order. */
export type WriteBody =
  | { op: 'add_member' | 'remove_member'; group: string; member: string }
  | { op: 'assign' | 'unassign'; principal: string; role: string; resource: string }
  | { op: 'deactivate' | 'activate' | 'delete_subject'; subject: string }
  | { op: 'move_resource'; resource: string; parent: string | null };
export type WriteSpec = Located & WriteBody;
/** `assertions:` — checks that must hold on the file's organizations (`lockstep test`). */
export interface AssertionSpec extends Located {
  name: string;
  org: string;
  after: WriteSpec[];
  allowed: CheckSpec[];
  denied: CheckSpec[];
}

export interface PolicyFile {
  source: string;
  organizations: OrganizationSpec[];
  /** What `lockstep test` checks; `apply` ignores them. */
  assertions: AssertionSpec[];
  /** Number of engine writes applying the file takes. */
  writes: number;
  lineOf(path: Path): number | undefined;
}

export interface Problem {
  path: string;
  line?: number;
  message: string;
}

const MAX_PROBLEMS = 50;
const ORG_KEYS = ['name', 'propagation', 'permissions', 'roles', 'resources', 'subjects', 'groups', 'assignments'];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The validation error of a file: the first problem as `field`, all of them in `meta.problems`. */
export function policyFileError(source: string, problems: Problem[]): LockstepError {
  const first = problems[0]!;
  const message = problems.length === 1 ? first.message : `${source} has ${problems.length}${problems.length >= MAX_PROBLEMS ? '+' : ''} problems`;
  return new LockstepError('VALIDATION', message, { field: first.path, meta: { file: source, line: first.line, problems } });
}

export interface ParseOptions {
  /** The clock an `expiresAt` must be after (default: now). */
  now?: number;
}

export function parsePolicyFile(text: string, source = 'policy file', opts: ParseOptions = {}): PolicyFile {
  const now = opts.now ?? Date.now();
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, uniqueKeys: true, prettyErrors: true });
  const at = (path: Path) => lineOf(doc, counter, path);
  if (doc.errors.length > 0) {
    throw policyFileError(
      source,
      doc.errors.slice(0, MAX_PROBLEMS).map((e) => ({
        path: source,
        line: e.linePos?.[0].line,
        message: `YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
      })),
    );
  }

  const problems: Problem[] = [];
  const problem = (path: Path, message: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push({ path: formatPath(path), line: at(path), message });
  };
  /** Runs a domain parser, turning its VALIDATION error into a problem at `path`. */
  function valid<T>(path: Path, parse: () => T, value?: unknown, required = false): T | undefined {
    if (required && value === undefined) return undefined; // reported as missing already
    try {
      return parse();
    } catch (e) {
      if (e instanceof LockstepError) return void problem(path, e.message);
      throw e;
    }
  }
  function keysOf(path: Path, v: unknown, allowed: string[], required: string[] = []): v is Obj {
    if (!isObj(v)) {
      problem(path, `expected a map (keys: ${allowed.join(', ')})`);
      return false;
    }
    for (const k of Object.keys(v)) if (!allowed.includes(k)) problem([...path, k], `unknown key '${k}' (allowed here: ${allowed.join(', ')})`);
    for (const k of required) if (v[k] === undefined) problem(path, `missing '${k}'`);
    return true;
  }
  const mapAt = (path: Path, v: unknown, what: string): Obj => {
    if (v === undefined || v === null) return {};
    if (!isObj(v)) return problem(path, `${what} must be a map`), {};
    return v;
  };
  const listAt = (path: Path, v: unknown, what: string): unknown[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) return problem(path, `${what} must be a list`), [];
    return v;
  };
  const stringOrNull = (path: Path, v: unknown, what: string): string | null => {
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') return problem(path, `${what} must be a string`), null;
    return v;
  };
  /** Rejects a second item with the same key, naming the first. */
  const once = <K>(seen: Map<K, Path>, key: K, path: Path, what: string) => {
    const first = seen.get(key);
    if (first) problem(path, `${what} is listed twice (first at ${formatPath(first)})`);
    else seen.set(key, path);
    return !first;
  };

  const root = doc.toJS() as unknown;
  const organizations: OrganizationSpec[] = [];
  const assertions: AssertionSpec[] = [];
  if (keysOf([], root, ['organizations', 'assertions'], ['organizations'])) {
    for (const [orgId, orgBody] of Object.entries(mapAt(['organizations'], root.organizations, 'organizations'))) {
      const op: Path = ['organizations', orgId];
      const id = valid(op, () => parseOrgId(orgId, 'organization id')) ?? orgId;
      const body = orgBody ?? {};
      if (!keysOf(op, body, ORG_KEYS)) continue;
      organizations.push({
        path: op,
        id,
        name: stringOrNull([...op, 'name'], body.name, 'name'),
        propagation: body.propagation === undefined ? null : parsePropagation([...op, 'propagation'], body.propagation),
        ...parseAccess(op, body),
        ...parseDirectory(op, body),
      });
    }
  }

  if (isObj(root) && root.assertions !== undefined) parseAssertions(root.assertions);

  function parseAssertions(v: unknown) {
    const orgIds = organizations.map((o) => o.id);
    listAt(['assertions'], v, 'assertions').forEach((a, i) => {
      const path: Path = ['assertions', i];
      if (!keysOf(path, a, ['name', 'org', 'after', 'allowed', 'denied'])) return;
      const name = stringOrNull([...path, 'name'], a.name, 'name') ?? `assertion ${i + 1}`;
      let org = orgIds.length === 1 ? orgIds[0]! : undefined;
      if (a.org !== undefined) {
        org = valid([...path, 'org'], () => parseOrgId(a.org, 'org'));
        if (org !== undefined && !orgIds.includes(org)) problem([...path, 'org'], `org '${org}' is not an organization of this file (${orgIds.join(', ')})`);
      } else if (orgIds.length !== 1) problem(path, `missing 'org' (the file has ${orgIds.length} organizations)`);
      const checks = (key: 'allowed' | 'denied'): CheckSpec[] =>
        listAt([...path, key], a[key], key).flatMap((c, j) => {
          const cp: Path = [...path, key, j];
          if (!keysOf(cp, c, ['subject', 'permission', 'resource'], ['subject', 'permission', 'resource'])) return [];
          const subject = valid([...cp, 'subject'], () => parseSubjectId(c.subject), c.subject, true);
          const permission = valid([...cp, 'permission'], () => parsePermissionSlug(c.permission), c.permission, true);
          const resource = valid([...cp, 'resource'], () => parseResourceRef(c.resource), c.resource, true);
          return subject && permission && resource ? [{ path: cp, subject, permission, resource }] : [];
        });
      const allowed = checks('allowed');
      const denied = checks('denied');
      if (a.allowed === undefined && a.denied === undefined) problem(path, "an assertion needs 'allowed' or 'denied' checks");
      const after = listAt([...path, 'after'], a.after, 'after').flatMap((w, j) => {
        const wp: Path = [...path, 'after', j];
        const ops = isObj(w) ? Object.keys(w) : [];
        if (ops.length !== 1 || !WRITE_OPS.includes(ops[0] as WriteOp)) {
          problem(wp, `a write is one of ${WRITE_OPS.join(', ')} (a map with one of these keys)`);
          return [];
        }
        const op = ops[0] as WriteOp;
        const body = (w as Obj)[op];
        const bp: Path = [...wp, op];
        const spec = parseWrite(bp, op, body);
        return spec ? [{ path: wp, ...spec } as WriteSpec] : [];
      });
      if (org !== undefined) assertions.push({ path, name, org, after, allowed, denied });
    });
  }

  function parseWrite(bp: Path, op: WriteOp, body: unknown): WriteBody | undefined {
    if (op === 'deactivate' || op === 'activate' || op === 'delete_subject') {
      const subject = valid(bp, () => parseSubjectId(body, op));
      return subject ? { op, subject } : undefined;
    }
    if (op === 'add_member' || op === 'remove_member') {
      if (!keysOf(bp, body, ['group', 'member'], ['group', 'member'])) return undefined;
      const group = valid([...bp, 'group'], () => parseGroupId(body.group), body.group, true);
      const m = body.member;
      const member =
        typeof m === 'string' && (m.startsWith('group:') || m.startsWith('subject:'))
          ? valid([...bp, 'member'], () => parsePrincipal(m, 'member'))
          : valid([...bp, 'member'], () => parseSubjectId(m, 'member'), m, true);
      return group && member ? { op, group, member: typeof member === 'string' ? member : `${member.type}:${member.id}` } : undefined;
    }
    if (op === 'assign' || op === 'unassign') {
      if (!keysOf(bp, body, ['principal', 'role', 'resource'], ['principal', 'role', 'resource'])) return undefined;
      const principal = valid([...bp, 'principal'], () => parsePrincipal(body.principal), body.principal, true);
      const role = valid([...bp, 'role'], () => parseRoleSlug(body.role), body.role, true);
      const resource = valid([...bp, 'resource'], () => parseResourceRef(body.resource), body.resource, true);
      return principal && role && resource ? { op, principal: `${principal.type}:${principal.id}`, role, resource } : undefined;
    }
    if (!keysOf(bp, body, ['resource', 'parent'], ['resource'])) return undefined;
    const resource = valid([...bp, 'resource'], () => parseResourceRef(body.resource), body.resource, true);
    const parent = body.parent === undefined || body.parent === null ? null : valid([...bp, 'parent'], () => parseResourceRef(body.parent, 'parent'));
    return resource && parent !== undefined ? { op, resource, parent } : undefined;
  }

  /** The organization's propagation policy, validated by the same parser as the HTTP route. */
  function parsePropagation(path: Path, v: unknown): PropagationPolicy | null {
    try {
      return parsePolicy(v, DEFAULT_POLICY, 'propagation');
    } catch (e) {
      if (!(e instanceof LockstepError)) throw e;
      // The parser names 'propagation.grant.high.mode'; locate it under the organization.
      const sub = (e.field ?? 'propagation').split('.').slice(1);
      problem([...path, ...sub], e.message);
      return null;
    }
  }

  function parseAccess(op: Path, body: Obj) {
    const permissions: PermissionSpec[] = [];
    for (const [slug, risk] of Object.entries(mapAt([...op, 'permissions'], body.permissions, 'permissions'))) {
      const path = [...op, 'permissions', slug];
      const ok = valid(path, () => parsePermissionSlug(slug, 'permission'));
      const tier = valid(path, () => parseRiskTier(risk, 'risk'));
      if (ok && tier) permissions.push({ path, slug, risk: tier });
    }
    const roles: RoleSpec[] = [];
    for (const [slug, perms] of Object.entries(mapAt([...op, 'roles'], body.roles, 'roles'))) {
      const path = [...op, 'roles', slug];
      valid(path, () => parseRoleSlug(slug, 'role'));
      const list = listAt(path, perms, `role '${slug}'`);
      list.forEach((p, i) => valid([...path, i], () => parsePermissionSlug(p, 'permission')));
      roles.push({ path, slug, permissions: list as string[] });
    }
    const resources: ResourceSpec[] = [];
    for (const [ref, parent] of Object.entries(mapAt([...op, 'resources'], body.resources, 'resources'))) {
      const path = [...op, 'resources', ref];
      const r = valid(path, () => parseResourceRef(ref, 'resource'));
      const p = parent === null ? null : valid(path, () => parseResourceRef(parent, 'parent'));
      if (r && p !== undefined) resources.push({ path, ref, type: ref.slice(0, ref.indexOf(':')), id: ref.slice(ref.indexOf(':') + 1), parent: p });
    }
    const sorted = sortResources(resources);
    if ('cycle' in sorted) problem(sorted.cycle[0]!.path, `resource parents form a cycle: ${[...sorted.cycle.map((r) => r.ref), sorted.cycle[0]!.ref].join(' → ')}`);

    const assignments: AssignmentSpec[] = [];
    const seen = new Map<string, Path>();
    listAt([...op, 'assignments'], body.assignments, 'assignments').forEach((a, i) => {
      const path = [...op, 'assignments', i];
      if (!keysOf(path, a, ['principal', 'role', 'resource', 'expiresAt'], ['principal', 'role', 'resource'])) return;
      const principal = valid([...path, 'principal'], () => parsePrincipal(a.principal), a.principal, true);
      const role = valid([...path, 'role'], () => parseRoleSlug(a.role), a.role, true);
      const resource = valid([...path, 'resource'], () => parseResourceRef(a.resource), a.resource, true);
      const expiresAt = expiry([...path, 'expiresAt'], a.expiresAt);
      if (!principal || !role || !resource || expiresAt === undefined) return;
      const spec = { path, principal: `${principal.type}:${principal.id}`, role, resource, expiresAt };
      if (once(seen, `${spec.principal}|${role}|${resource}`, path, 'this assignment')) assignments.push(spec);
    });
    return { permissions, roles, resources: 'sorted' in sorted ? sorted.sorted : resources, assignments };
  }

  function parseDirectory(op: Path, body: Obj) {
    const subjects: SubjectSpec[] = [];
    const seenSubjects = new Map<string, Path>();
    listAt([...op, 'subjects'], body.subjects, 'subjects').forEach((s, i) => {
      const path = [...op, 'subjects', i];
      if (!keysOf(path, s, ['id', 'kind', 'active'], ['id', 'kind'])) return;
      const id = valid([...path, 'id'], () => parseSubjectId(s.id, 'id'), s.id, true);
      const kind = valid([...path, 'kind'], () => parseSubjectKind(s.kind), s.kind, true);
      if (s.active !== undefined && typeof s.active !== 'boolean') problem([...path, 'active'], 'active must be true or false');
      if (id && kind && once(seenSubjects, id, path, `subject '${id}'`)) subjects.push({ path, id, kind, active: s.active !== false });
    });
    const groups: GroupSpec[] = [];
    const seenGroups = new Map<string, Path>();
    listAt([...op, 'groups'], body.groups, 'groups').forEach((g, i) => {
      const path = [...op, 'groups', i];
      if (!keysOf(path, g, ['id', 'name', 'members'], ['id'])) return;
      const id = valid([...path, 'id'], () => parseGroupId(g.id, 'id'), g.id, true);
      const members: MemberSpec[] = [];
      const seenMembers = new Map<string, Path>();
      listAt([...path, 'members'], g.members, 'members').forEach((m, j) => {
        const mp = [...path, 'members', j];
        // `ID` / `subject:ID` / `group:ID`, or `{ member: …, expiresAt: RFC 3339 }`
        let ref: unknown = m;
        let expiresAt: string | null | undefined = null;
        if (isObj(m)) {
          if (!keysOf(mp, m, ['member', 'expiresAt'], ['member'])) return;
          if (m.member === undefined) return;
          ref = m.member;
          expiresAt = expiry([...mp, 'expiresAt'], m.expiresAt);
        }
        const member = valid(isObj(m) ? [...mp, 'member'] : mp, () => parseMemberRef(ref));
        if (member && expiresAt !== undefined && once(seenMembers, member, mp, `member '${member}'`)) members.push({ path: mp, member, expiresAt });
      });
      const name = stringOrNull([...path, 'name'], g.name, 'name');
      if (id && once(seenGroups, id, path, `group '${id}'`)) groups.push({ path, id, name, members });
    });
    const cycle = findGroupCycle(groups.flatMap((g) => g.members.filter((m) => m.member.startsWith('group:')).map((m) => ({ parent: g.id, child: m.member.slice(6), path: m.path }))));
    if (cycle) {
      const last = cycle.at(-1)!;
      problem(last.path, `group '${last.child}' in group '${last.parent}' makes a cycle of nested groups: ${[...cycle.map((e) => e.parent), cycle[0]!.parent].join(' ⊃ ')}`);
    }
    return { subjects, groups };
  }

  /** An `expiresAt`: absent (null), or an RFC 3339 time after `now`; undefined after a problem. */
  function expiry(path: Path, v: unknown): string | null | undefined {
    if (v === undefined || v === null) return null;
    const ms = valid(path, () => parseExpiresAt(v, now, 'expiresAt'));
    return ms === undefined || ms === null ? undefined : (v as string);
  }

  if (problems.length > 0) throw policyFileError(source, problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)));
  const writes = organizations.reduce(
    (n, o) =>
      n + 1 + (o.propagation ? 1 : 0) + o.permissions.length + o.roles.length + o.resources.length + o.subjects.length + o.groups.length +
      o.groups.reduce((m, g) => m + g.members.length, 0) + o.assignments.length,
    0,
  );
  return { source, organizations, assertions, writes, lineOf: at };
}

/** `ID` or `subject:ID` is a subject, `group:ID` a nested group; normalized to `type:ID`. */
function parseMemberRef(v: unknown): string {
  if (typeof v === 'string' && v.startsWith('group:')) return `group:${parseGroupId(v.slice(6), 'member')}`;
  return `subject:${parseSubjectId(typeof v === 'string' && v.startsWith('subject:') ? v.slice(8) : v, 'member')}`;
}

export async function readPolicyFile(file: string): Promise<PolicyFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new LockstepError('VALIDATION', `cannot read ${file}: ${(e as Error).message}`, { field: 'file' });
  }
  return parsePolicyFile(text, file);
}

/**
 * The policy model: identifiers, their syntax, risk tiers and the shapes that cross the engine's
 * public surface. Pure: no I/O, no clock.
 */
import { validation } from './errors.ts';

type Brand<T, B extends string> = T & { readonly __brand: B };
export type OrgId = Brand<string, 'OrgId'>;
export type SubjectId = Brand<string, 'SubjectId'>;
export type GroupId = Brand<string, 'GroupId'>;
export type RoleSlug = Brand<string, 'RoleSlug'>;
export type PermissionSlug = Brand<string, 'PermissionSlug'>;
/** `type:id` */
export type ResourceRef = Brand<string, 'ResourceRef'>;
export type AssignmentId = Brand<string, 'AssignmentId'>;

export const SUBJECT_KINDS = ['user', 'service_account', 'agent'] as const;
export type SubjectKind = (typeof SUBJECT_KINDS)[number];

export const RISK_TIERS = ['standard', 'high', 'critical'] as const;
export type RiskTier = (typeof RISK_TIERS)[number];
/** Tiers are stored as ranks so "the highest tier" is a plain MAX() in SQL. */
export const tierRank = (t: RiskTier): number => RISK_TIERS.indexOf(t) + 1;
export const tierOfRank = (r: number | null | undefined): RiskTier | null =>
  r === null || r === undefined || r < 1 ? null : (RISK_TIERS[r - 1] ?? null);

export type Direction = 'grant' | 'revoke' | 'both' | 'none';
export const directionOf = (granted: boolean, revoked: boolean): Direction =>
  granted && revoked ? 'both' : granted ? 'grant' : revoked ? 'revoke' : 'none';

/** Which tiers get provenance verification on `minimize_latency` checks. */
export const VERIFY_MODES = ['always', 'high+', 'critical', 'never'] as const;
export type VerifyMode = (typeof VERIFY_MODES)[number];
export const verifies = (mode: VerifyMode, tier: RiskTier): boolean =>
  mode === 'always' || (mode === 'high+' && tier !== 'standard') || (mode === 'critical' && tier === 'critical');

export const MAX_RESOURCE_DEPTH = 32;

// Identifier syntax. Ids are URL path segments, so no '/', '?', '#', '%' or whitespace.
const ID = /^[A-Za-z0-9][A-Za-z0-9_.@+=~-]{0,127}$/;
const RESOURCE_TYPE = /^[a-z][a-z0-9_]{0,63}$/;
const ROLE = /^[a-z][a-z0-9_-]{0,63}$/;
const PERMISSION = /^[a-z][a-z0-9_]{0,63}(\.[a-z][a-z0-9_]{0,63}){0,4}$/;

function checked<T extends string>(re: RegExp, what: string, field: string, value: unknown): T {
  if (typeof value !== 'string' || !re.test(value)) {
    throw validation(field, `${field} must be ${what}, got ${JSON.stringify(value)?.slice(0, 80)}`);
  }
  return value as T;
}

export const parseOrgId = (v: unknown, field = 'org') => checked<OrgId>(ID, 'an id of 1-128 letters, digits or _.@+=~-', field, v);
export const parseSubjectId = (v: unknown, field = 'subject') =>
  checked<SubjectId>(ID, 'an id of 1-128 letters, digits or _.@+=~-', field, v);
export const parseGroupId = (v: unknown, field = 'group') => checked<GroupId>(ID, 'an id of 1-128 letters, digits or _.@+=~-', field, v);
export const parseRoleSlug = (v: unknown, field = 'role') =>
  checked<RoleSlug>(ROLE, 'a slug of lower-case letters, digits, _ or - (max 64)', field, v);
export const parsePermissionSlug = (v: unknown, field = 'permission') =>
  checked<PermissionSlug>(PERMISSION, 'a dotted slug such as project.delete', field, v);
export const parseAssignmentId = (v: unknown, field = 'id') => checked<AssignmentId>(ID, 'an assignment id', field, v);

export function parseResourceRef(v: unknown, field = 'resource'): ResourceRef {
  if (typeof v !== 'string') throw validation(field, `${field} must be a string 'type:id'`);
  const i = v.indexOf(':');
  if (i < 0) throw validation(field, `${field} must be 'type:id', got ${JSON.stringify(v).slice(0, 80)}`);
  return resourceRef(v.slice(0, i), v.slice(i + 1), field);
}
export function resourceRef(type: unknown, id: unknown, field = 'resource'): ResourceRef {
  checked(RESOURCE_TYPE, "a resource type of lower-case letters, digits or _ (before ':')", field, type);
  checked(ID, "a resource id of letters, digits or _.@+=~- (after ':')", field, id);
  return `${type as string}:${id as string}` as ResourceRef;
}

/**
 * Display names: optional, at most 200 characters, no NUL (PostgreSQL text cannot hold it), no
 * unpaired UTF-16 surrogate (both engines store it as U+FFFD, so the same name sent again would
 * compare unequal to what was stored and commit a new revision each time).
 */
export function parseName(v: unknown, field = 'name'): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.length > 200 || v.includes('\u0000')) {
    throw validation(field, `${field} must be a string of at most 200 characters without NUL`);
  }
  if (LONE_SURROGATE.test(v)) throw validation(field, `${field} holds an unpaired UTF-16 surrogate (not a character)`);
  return v;
}
const LONE_SURROGATE = /[\ud800-\udfff]/u;

export function parseSubjectKind(v: unknown, field = 'kind'): SubjectKind {
  if (!SUBJECT_KINDS.includes(v as SubjectKind)) throw validation(field, `${field} must be one of ${SUBJECT_KINDS.join(', ')}`);
  return v as SubjectKind;
}
export function parseRiskTier(v: unknown, field = 'risk'): RiskTier {
  if (!RISK_TIERS.includes(v as RiskTier)) throw validation(field, `${field} must be one of ${RISK_TIERS.join(', ')}`);
  return v as RiskTier;
}

export type Principal = { type: 'subject'; id: SubjectId } | { type: 'group'; id: GroupId };
export function parsePrincipal(v: unknown, field = 'principal'): Principal {
  if (typeof v === 'string') {
    if (v.startsWith('subject:')) return { type: 'subject', id: parseSubjectId(v.slice(8), field) };
    if (v.startsWith('group:')) return { type: 'group', id: parseGroupId(v.slice(6), field) };
  }
  throw validation(field, `${field} must be 'subject:ID' or 'group:ID'`);
}
export const principalString = (p: Principal) => `${p.type}:${p.id}`;

/** One read-model row: one derivation of (subject, role, resource). */
export interface EffectiveRow {
  subject: SubjectId;
  role: RoleSlug;
  resource: ResourceRef;
  assignment: AssignmentId;
  group: GroupId | null;
}

/** Canonical key of a derivation, for comparing read models regardless of order. */
export const effectiveKey = (r: EffectiveRow) => `${r.subject}|${r.assignment}|${r.role}|${r.resource}|${r.group ?? ''}`;

export const CONSISTENCY_MODES = ['minimize_latency', 'at_least_as_fresh', 'fully_consistent'] as const;
export type ConsistencyMode = (typeof CONSISTENCY_MODES)[number];

/**
 * The read side: checks and listings.
 *
 * `minimize_latency` reads candidate read-model rows for the resource and its ancestors and, where the
 * permission's tier calls for it, verifies each candidate's provenance against the source tables:
 * the assignment still exists, the membership it came through still exists, the subject is active.
 * The role→permission link is always read from the source table (the read model stores roles).
 * That is a few index probes, and it is why a revocation is enforceable the moment it commits.
 *
 * `fully_consistent` evaluates the source tables alone (the derivation rule, ../derivation/rule.ts).
 */
import { LockstepError, notFound, validation } from '../domain/errors.ts';
import {
  CONSISTENCY_MODES,
  parseOrgId,
  parsePermissionSlug,
  parseResourceRef,
  parseSubjectId,
  tierOfRank,
  verifies,
  type AssignmentId,
  type ConsistencyMode,
  type EffectiveRow,
  type GroupId,
  type OrgId,
  type PermissionSlug,
  type ResourceRef,
  type RiskTier,
  type RoleSlug,
  type SubjectId,
  type VerifyMode,
} from '../domain/model.ts';
import type { AccessEntry, CheckRequest, CheckResult, EffectivePermission, Via } from '../domain/contract.ts';
import { sql, type Sql, type SqlFragment } from '../storage/database.ts';
import { ancestors, desiredOnAncestors, stillDerived } from '../derivation/rule.ts';
import type { Metrics } from '../observability/metrics.ts';

/**
 * Where the tier of risk rank `risk` is verified (`flags[rank - 1]` is 1), read-model row `e` must
 * still be derived (provenance, ../derivation/rule.ts).
 */
const verifiedByTier = (risk: SqlFragment, flags: readonly number[]) =>
  sql`(CASE CAST(${risk} AS INTEGER) WHEN 1 THEN CAST(${flags[0]} AS INTEGER) WHEN 2 THEN CAST(${flags[1]} AS INTEGER)
     ELSE CAST(${flags[2]} AS INTEGER) END = 0 OR ${stillDerived('e')})`;

interface CheckArgs {
  org: OrgId;
  resource: ResourceRef;
  subject: SubjectId;
  permission: PermissionSlug;
}

// CROSS JOIN fixes the join order on SQLite (PostgreSQL plans it freely): ancestors first, then index
// probes. Left to itself, SQLite with ANALYZE statistics sometimes scans all of a subject's rows.
/** Read-model candidates on the resource and its ancestors, nearest first. */
const candidate = (q: CheckArgs, flags: readonly number[]) => sql`
  SELECT e.assignment_id, e.group_id, e.role, e.resource, anc.depth
    FROM anc
   CROSS JOIN effective_assignments e
   CROSS JOIN role_permissions rp
   WHERE e.org_id = ${q.org} AND e.subject_id = ${q.subject} AND e.resource = anc.ref
     AND rp.org_id = ${q.org} AND rp.role = e.role AND rp.permission = ${q.permission}
     AND ${verifiedByTier(sql`(SELECT p.risk FROM permissions p WHERE p.org_id = ${q.org} AND p.slug = ${q.permission})`, flags)}
   ORDER BY anc.depth, e.assignment_id
   LIMIT 1`;

/** The source of truth alone: the subject's derivations on the resource and its ancestors, nearest first. */
const source = (q: CheckArgs) => sql`
  SELECT x.assignment_id, x.group_id, x.role, x.resource, x.depth FROM (${desiredOnAncestors(q.org, q.subject)}) x
   CROSS JOIN role_permissions rp
   WHERE rp.org_id = ${q.org} AND rp.role = x.role AND rp.permission = ${q.permission}
   ORDER BY x.depth, x.assignment_id
   LIMIT 1`;

/**
 * One statement — one snapshot, one round trip — returns the organization's revision, the
 * permission's tier and the nearest derivation, if any.
 */
const checkStatement = (q: CheckArgs, hit: SqlFragment) => sql`
  WITH RECURSIVE ${ancestors(q.org, q.resource)}
  SELECT o.revision, p.risk, h.assignment_id, h.group_id, h.role, h.resource
    FROM organizations o
    LEFT JOIN permissions p ON p.org_id = o.id AND p.slug = ${q.permission}
    LEFT JOIN (${hit}) h ON 1 = 1
   WHERE o.id = ${q.org}`;

interface CheckRow {
  revision: number;
  risk: number | null;
  assignment_id: AssignmentId | null;
  group_id: GroupId | null;
  role: RoleSlug | null;
  resource: ResourceRef | null;
}

interface ViaRow {
  assignment_id: AssignmentId;
  group_id: GroupId | null;
  role: RoleSlug;
  resource: ResourceRef;
}
const toVia = (r: ViaRow): Via => ({ assignment: r.assignment_id, group: r.group_id, role: r.role, resource: r.resource });

export interface CheckEnv {
  db: Sql;
  verify: VerifyMode;
  freshnessTimeoutMs?: number | undefined;
  metrics?: Metrics | undefined;
}

/**
 * Changes up to $2 not yet in the read model that can concern subject $3: those carried by the
 * subject's own job scope, and conservatively every non-subject scope (group, assignment, organization).
 */
const PENDING_FOR_SUBJECT = `
  SELECT (SELECT revision FROM organizations WHERE id = $1) AS current,
         (SELECT COUNT(*) FROM changes
           WHERE org_id = $1 AND effective_at IS NULL AND revision <= $2
             AND (job_scope = $3 OR job_scope NOT LIKE 'subject:%')) AS pending`;

function verifyFlags(mode: VerifyMode): [number, number, number] {
  return [verifies(mode, 'standard') ? 1 : 0, verifies(mode, 'high') ? 1 : 0, verifies(mode, 'critical') ? 1 : 0];
}

async function orgMeta(db: Sql, org: OrgId, permission?: PermissionSlug): Promise<{ revision: number; risk: RiskTier | null }> {
  const row = permission
    ? await db.get<{ revision: number; risk: number | null }>(
        'SELECT o.revision, p.risk FROM organizations o LEFT JOIN permissions p ON p.org_id = o.id AND p.slug = $2 WHERE o.id = $1',
        [org, permission],
      )
    : await db.get<{ revision: number; risk: null }>('SELECT revision, NULL AS risk FROM organizations WHERE id = $1', [org]);
  if (!row) throw notFound('org', 'organization', org);
  return { revision: Number(row.revision), risk: tierOfRank(row.risk) };
}

export function createChecks(env: CheckEnv) {
  const { db } = env;
  const flags = verifyFlags(env.verify);
  const timeoutMs = env.freshnessTimeoutMs ?? 2000;

  /** at_least_as_fresh: wait (bounded) until the read model has applied `revision` for the subject. */
  async function waitFresh(org: OrgId, subject: SubjectId, revision: unknown): Promise<void> {
    if (typeof revision !== 'number' || !Number.isInteger(revision) || revision < 0) {
      throw validation('consistency.revision', 'at_least_as_fresh needs a non-negative integer revision');
    }
    const deadline = Date.now() + timeoutMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
      const row = await db.get<{ current: number | null; pending: number }>(PENDING_FOR_SUBJECT, [org, revision, `subject:${subject}`]);
      if (row?.current === null || row?.current === undefined) throw notFound('org', 'organization', org);
      if (revision > Number(row.current)) {
        throw new LockstepError('VALIDATION', `revision ${revision} has not been committed (current: ${row.current})`, { field: 'consistency.revision' });
      }
      if (Number(row.pending) === 0) return;
      if (Date.now() >= deadline) {
        throw new LockstepError('UNAVAILABLE', `the read model has not applied revision ${revision} for subject '${subject}' within ${timeoutMs} ms; retry, or ask for fully_consistent`, {
          field: 'consistency.revision',
          meta: { revision, timeoutMs },
        });
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  return {
    async check(orgIn: string, req: CheckRequest): Promise<CheckResult> {
      const org = parseOrgId(orgIn);
      const subject = parseSubjectId(req.subject);
      const permission = parsePermissionSlug(req.permission);
      const resource = parseResourceRef(req.resource);
      const requested = req.consistency?.mode;
      if (requested !== undefined && !CONSISTENCY_MODES.includes(requested)) {
        throw validation('consistency.mode', `consistency.mode must be one of ${CONSISTENCY_MODES.join(', ')}`);
      }
      const q: CheckArgs = { org, resource, subject, permission };
      const evaluate = async (hit: SqlFragment) => {
        const row = await db.get<CheckRow>(checkStatement(q, hit));
        if (!row) throw notFound('org', 'organization', org);
        const risk = tierOfRank(row.risk);
        if (risk === null) throw notFound('permission', 'permission', permission);
        return { row, risk, revision: Number(row.revision) };
      };
      const answer = (r: { row: CheckRow; revision: number }, mode: ConsistencyMode, source: boolean, verified: boolean): CheckResult => ({
        allowed: r.row.assignment_id !== null,
        revision: r.revision,
        evaluatedAgainst: source ? 'source' : 'read_model',
        consistency: mode,
        verified,
        ...(r.row.assignment_id !== null ? { via: toVia(r.row as ViaRow) } : {}),
      });

      const t0 = process.hrtime.bigint();
      const result = await decideCheck();
      env.metrics?.checkLatency.observe(
        { consistency: result.consistency, result: result.allowed ? 'allowed' : 'denied' },
        Number(process.hrtime.bigint() - t0) / 1e9,
      );
      return result;

      async function decideCheck(): Promise<CheckResult> {
        if (requested === 'fully_consistent') return answer(await evaluate(source(q)), requested, true, true);
        if (requested === 'at_least_as_fresh') await waitFresh(org, subject, req.consistency?.revision);
        const fast = await evaluate(candidate(q, flags));
        // Critical permissions are decided on the source unless the caller asked for something else.
        if (requested === undefined && fast.risk === 'critical') return answer(await evaluate(source(q)), 'fully_consistent', true, true);
        return answer(fast, requested ?? 'minimize_latency', false, verifies(env.verify, fast.risk));
      }
    },

    /** What a subject can do: each (permission, resource) it holds, with the derivation. */
    async subjectEffective(orgIn: string, subjectIn: string): Promise<{ revision: number; permissions: EffectivePermission[] }> {
      const org = parseOrgId(orgIn);
      const subject = parseSubjectId(subjectIn, 'id');
      const meta = await orgMeta(db, org);
      if (!(await db.get('SELECT 1 AS x FROM subjects WHERE org_id = $1 AND id = $2', [org, subject]))) throw notFound('id', 'subject', subject);
      const rows = await db.all<ViaRow & { permission: PermissionSlug; risk: number }>(
        sql`SELECT rp.permission, p.risk, e.assignment_id, e.group_id, e.role, e.resource
           FROM effective_assignments e
           JOIN role_permissions rp ON rp.org_id = e.org_id AND rp.role = e.role
           JOIN permissions p ON p.org_id = rp.org_id AND p.slug = rp.permission
          WHERE e.org_id = ${org} AND e.subject_id = ${subject} AND ${verifiedByTier(sql`p.risk`, flags)}
          ORDER BY e.resource, rp.permission, e.assignment_id`,
      );
      return {
        revision: meta.revision,
        permissions: rows.map((r) => ({ permission: r.permission, resource: r.resource, role: r.role, risk: tierOfRank(r.risk)!, via: toVia(r) })),
      };
    },

    /** The whole read model of an organization (tests, drift audit). */
    async readModel(orgIn: string): Promise<EffectiveRow[]> {
      const org = parseOrgId(orgIn);
      const rows = await db.all<{ subject_id: string; role: string; resource: string; assignment_id: string; group_id: string | null }>(
        `SELECT subject_id, role, resource, assignment_id, group_id FROM effective_assignments WHERE org_id = $1
          ORDER BY subject_id, assignment_id`,
        [org],
      );
      return rows.map((r) => ({ subject: r.subject_id, role: r.role, resource: r.resource, assignment: r.assignment_id, group: r.group_id }) as EffectiveRow);
    },

    /** Who can do P on R, through an assignment on R or any of its ancestors. */
    async resourceAccess(orgIn: string, resourceIn: string, permissionIn: string): Promise<{ revision: number; subjects: AccessEntry[] }> {
      const org = parseOrgId(orgIn);
      const resource = parseResourceRef(resourceIn);
      const permission = parsePermissionSlug(permissionIn);
      const meta = await orgMeta(db, org, permission);
      if (meta.risk === null) throw notFound('permission', 'permission', permission);
      if (!(await db.get('SELECT 1 AS x FROM resources WHERE org_id = $1 AND ref = $2', [org, resource]))) throw notFound('resource', 'resource', resource);
      // From the source of truth: the read model is keyed by subject, and a resource-keyed index on
      // it would slow every backfill (see migrations/001_core.sql); the source answer is exact.
      const rows = await db.all<ViaRow & { subject_id: SubjectId }>(
        sql`WITH RECURSIVE ${ancestors(org, resource)}
         SELECT x.subject_id, x.assignment_id, x.group_id, x.role, x.resource FROM (${desiredOnAncestors(org)}) x
         CROSS JOIN role_permissions rp
         WHERE rp.org_id = ${org} AND rp.role = x.role AND rp.permission = ${permission}
         ORDER BY x.subject_id, x.depth, x.assignment_id`,
      );
      return { revision: meta.revision, subjects: rows.map((r) => ({ subject: r.subject_id, via: toVia(r) })) };
    },
  };
}

/**
 * The read side: checks and listings.
 *
 * `minimize_latency` reads candidate read-model rows for the resource and its ancestors and, where the
 * permission's tier calls for it, verifies each candidate's provenance against the source tables:
 * the assignment still exists, the membership it came through still exists, the subject is active.
 * The role→permission link is always read from the source table (the read model stores roles).
 * That is a few index probes, and it is why a revocation is enforceable the moment it commits.
 *
 * `fully_consistent` evaluates the source tables alone (the `desired_effective_assignments` view).
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
  type GroupId,
  type OrgId,
  type PermissionSlug,
  type ResourceRef,
  type RiskTier,
  type RoleSlug,
  type SubjectId,
  type VerifyMode,
} from '../domain/model.ts';
import type { AccessEntry, CheckRequest, CheckResult, EffectivePermission, Via } from '../core/types.ts';
import type { Sql } from '../storage/database.ts';
import { ANCESTORS_CTE } from '../policy/read-model.ts';
import type { Metrics } from '../observability/metrics.ts';

/** Provenance of read-model row `e` for subject column `subj`: the source rows that justify it. */
const PROVENANCE = (subj: string) => `
      EXISTS (SELECT 1 FROM assignments a WHERE a.org_id = e.org_id AND a.id = e.assignment_id)
  AND (e.group_id IS NULL OR EXISTS (SELECT 1 FROM memberships m
        WHERE m.org_id = e.org_id AND m.group_id = e.group_id AND m.subject_id = ${subj}))
  AND EXISTS (SELECT 1 FROM subjects s WHERE s.org_id = e.org_id AND s.id = ${subj} AND s.active = 1)`;

/** Per-tier verification switch: $V1..$V3 are 1 where that tier (rank) is verified. */
const VERIFIED_BY_TIER = (riskCol: string, first: number, subj: string) =>
  `(CASE CAST(${riskCol} AS INTEGER) WHEN 1 THEN CAST($${first} AS INTEGER) WHEN 2 THEN CAST($${first + 1} AS INTEGER)
     ELSE CAST($${first + 2} AS INTEGER) END = 0 OR (${PROVENANCE(subj)}))`;

// $1 org, $2 resource, $3 subject, $4 permission, $5..$7 per-tier verification flags.
// CROSS JOIN fixes the join order on SQLite (PostgreSQL plans it freely): ancestors first, then index
// probes. Left to itself, SQLite with ANALYZE statistics sometimes scans all of a subject's rows.
// Read-model candidates on the resource and its ancestors, nearest first.
const CANDIDATE = `
  SELECT e.assignment_id, e.group_id, e.role, e.resource, anc.depth
    FROM anc
   CROSS JOIN effective_assignments e
   CROSS JOIN role_permissions rp
   WHERE e.org_id = $1 AND e.subject_id = $3 AND e.resource = anc.ref
     AND rp.org_id = $1 AND rp.role = e.role AND rp.permission = $4
     AND ${VERIFIED_BY_TIER('(SELECT p.risk FROM permissions p WHERE p.org_id = $1 AND p.slug = $4)', 5, '$3')}
   ORDER BY anc.depth, e.assignment_id
   LIMIT 1`;

// The source of truth alone: the subject's direct assignments and its groups' assignments on the
// resource and its ancestors (index probes from the subject side, bounded by ancestors × groups).
const SOURCE = `
  SELECT x.assignment_id, x.group_id, x.role, x.resource, x.depth FROM (
    SELECT a.id AS assignment_id, CAST(NULL AS TEXT) AS group_id, a.role, a.resource, anc.depth
      FROM anc CROSS JOIN assignments a
     WHERE a.org_id = $1 AND a.principal_type = 'subject' AND a.principal_id = $3 AND a.resource = anc.ref
    UNION ALL
    SELECT a.id, m.group_id, a.role, a.resource, anc.depth
      FROM memberships m CROSS JOIN anc CROSS JOIN assignments a
     WHERE m.org_id = $1 AND m.subject_id = $3
       AND a.org_id = $1 AND a.principal_type = 'group' AND a.principal_id = m.group_id AND a.resource = anc.ref
  ) x
   CROSS JOIN role_permissions rp
   CROSS JOIN subjects s
   WHERE rp.org_id = $1 AND rp.role = x.role AND rp.permission = $4
     AND s.org_id = $1 AND s.id = $3 AND s.active = 1
   ORDER BY x.depth, x.assignment_id
   LIMIT 1`;

/**
 * One statement — one snapshot, one round trip — returns the organization's revision, the
 * permission's tier and the nearest derivation, if any.
 */
const CHECK = (hit: string) => `
  WITH RECURSIVE ${ANCESTORS_CTE}
  SELECT o.revision, p.risk, h.assignment_id, h.group_id, h.role, h.resource
    FROM organizations o
    LEFT JOIN permissions p ON p.org_id = o.id AND p.slug = $4
    LEFT JOIN (${hit}) h ON 1 = 1
   WHERE o.id = $1`;
const CHECK_READ_MODEL = CHECK(CANDIDATE);
const CHECK_SOURCE = CHECK(SOURCE);

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
      const params = [org, resource, subject, permission, ...flags];
      const evaluate = async (sql: string) => {
        // The source query takes no verification flags (PostgreSQL rejects unreferenced parameters).
        const row = await db.get<CheckRow>(sql, sql === CHECK_SOURCE ? params.slice(0, 4) : params);
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
        if (requested === 'fully_consistent') return answer(await evaluate(CHECK_SOURCE), requested, true, true);
        if (requested === 'at_least_as_fresh') await waitFresh(org, subject, req.consistency?.revision);
        const fast = await evaluate(CHECK_READ_MODEL);
        // Critical permissions are decided on the source unless the caller asked for something else.
        if (requested === undefined && fast.risk === 'critical') return answer(await evaluate(CHECK_SOURCE), 'fully_consistent', true, true);
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
        `SELECT rp.permission, p.risk, e.assignment_id, e.group_id, e.role, e.resource
           FROM effective_assignments e
           JOIN role_permissions rp ON rp.org_id = e.org_id AND rp.role = e.role
           JOIN permissions p ON p.org_id = rp.org_id AND p.slug = rp.permission
          WHERE e.org_id = $1 AND e.subject_id = $2 AND ${VERIFIED_BY_TIER('p.risk', 3, '$2')}
          ORDER BY e.resource, rp.permission, e.assignment_id`,
        [org, subject, ...flags],
      );
      return {
        revision: meta.revision,
        permissions: rows.map((r) => ({ permission: r.permission, resource: r.resource, role: r.role, risk: tierOfRank(r.risk)!, via: toVia(r) })),
      };
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
        `WITH RECURSIVE ${ANCESTORS_CTE}
         SELECT x.subject_id, x.assignment_id, x.group_id, x.role, x.resource FROM (
           SELECT a.principal_id AS subject_id, a.id AS assignment_id, CAST(NULL AS TEXT) AS group_id, a.role, a.resource, anc.depth
             FROM anc CROSS JOIN assignments a
            WHERE a.org_id = $1 AND a.resource = anc.ref AND a.principal_type = 'subject'
           UNION ALL
           SELECT m.subject_id, a.id, a.principal_id, a.role, a.resource, anc.depth
             FROM anc CROSS JOIN assignments a CROSS JOIN memberships m
            WHERE a.org_id = $1 AND a.resource = anc.ref AND a.principal_type = 'group' AND m.org_id = $1 AND m.group_id = a.principal_id
         ) x
         CROSS JOIN role_permissions rp CROSS JOIN subjects s
         WHERE rp.org_id = $1 AND rp.role = x.role AND rp.permission = $3 AND s.org_id = $1 AND s.id = x.subject_id AND s.active = 1
         ORDER BY x.subject_id, x.depth, x.assignment_id`,
        [org, resource, permission],
      );
      return { revision: meta.revision, subjects: rows.map((r) => ({ subject: r.subject_id, via: toVia(r) })) };
    },
  };
}

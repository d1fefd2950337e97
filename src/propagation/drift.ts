/**
 * The drift audit: recompute an organization's read model from scratch (the derivation rule) and
 * compare it with what is materialized, row by row. Repair goes through the ordinary batch machinery:
 * an organization-scoped, priority job.
 *
 * A differing row that an unfinished job (pending, running, retrying) of the organization covers is
 * queued propagation, not drift: the job will write or delete it (an async grant of 10,000 rows is
 * "10,000 missing" until its worker gets to it). Such rows are counted apart, as `pending`; only
 * the rest is drift — what the exit status, the HTTP answer's `missing`/`extra` and repair go by.
 * "Covers" is the job scope's own predicate (scope.ts): subject:S its rows, group:G the rows through
 * G, assignment:A the rows of A, subtree:C the group-derived rows of the subjects under C,
 * organization:O every row.
 */
import type { DriftReport } from '../domain/contract.ts';
import type { EffectiveRow } from '../domain/model.ts';
import { desired } from '../derivation/rule.ts';
import { sql, type Sql, type SqlFragment } from '../storage/database.ts';

const COLS = sql`subject_id, assignment_id, role, resource, group_id`;
const desiredOf = (org: string) => desired(sql`d.org_id = ${org}`, COLS);
const actualOf = (org: string) => sql`SELECT ${COLS} FROM effective_assignments WHERE org_id = ${org}`;

type RawRow = { subject_id: string; assignment_id: string; role: string; resource: string; group_id: string | null };
const toRow = (r: RawRow) => ({ subject: r.subject_id, assignment: r.assignment_id, role: r.role, resource: r.resource, group: r.group_id }) as EffectiveRow;

const ACTIVE = sql`('pending', 'running', 'retrying')`;

/** Whether an unfinished job of `org` covers the row `x` (the job scopes' predicates, in SQL). */
const covered = (org: string) => sql`EXISTS (SELECT 1 FROM jobs j WHERE j.org_id = ${org} AND j.state IN ${ACTIVE} AND (
    j.scope = ${`organization:${org}`}
    OR j.scope = 'subject:' || x.subject_id
    OR (x.group_id IS NOT NULL AND j.scope = 'group:' || x.group_id)
    OR substr(j.scope, 1, length(x.assignment_id) + 12) = 'assignment:' || x.assignment_id || '|'
    OR (x.group_id IS NOT NULL AND substr(j.scope, 1, 8) = 'subtree:' AND EXISTS (
      SELECT 1 FROM group_closure c JOIN memberships m ON m.org_id = c.org_id AND m.group_id = c.descendant_id
       WHERE c.org_id = ${org} AND c.ancestor_id = substr(j.scope, 9) AND m.subject_id = x.subject_id))))`;

/** Reads from one snapshot (`tx` is a snapshot or a transaction): both sides and the queue agree. */
export async function auditDrift(tx: Sql, org: string, limit: number, now: number): Promise<DriftReport> {
  const pending = covered(org);
  const count = async (a: SqlFragment, b: SqlFragment, queued: boolean) =>
    Number((await tx.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM (${a} EXCEPT ${b}) x WHERE ${queued ? pending : sql`NOT ${pending}`}`))?.n ?? 0);
  const list = async (a: SqlFragment, b: SqlFragment) =>
    limit > 0
      ? (await tx.all<RawRow>(sql`SELECT * FROM (${a} EXCEPT ${b}) x WHERE NOT ${pending} ORDER BY subject_id, assignment_id LIMIT ${Math.floor(limit)}`)).map(toRow)
      : [];
  const [want, have] = [desiredOf(org), actualOf(org)];
  const jobs = Number((await tx.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM jobs WHERE org_id = ${org} AND state IN ${ACTIVE}`))?.n ?? 0);
  return {
    org,
    missing: await count(want, have, false),
    extra: await count(have, want, false),
    pending: jobs === 0 ? { missing: 0, extra: 0, jobs } : { missing: await count(want, have, true), extra: await count(have, want, true), jobs },
    rows: { missing: await list(want, have), extra: await list(have, want) },
    checkedAt: new Date(now).toISOString(),
  };
}

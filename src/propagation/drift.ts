/**
 * The drift audit: recompute an organization's read model from scratch (the derivation rule) and
 * compare it with what is materialized, row by row. Repair goes through the ordinary batch machinery:
 * an organization-scoped, priority job.
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

/** Runs inside one transaction so both sides are read from one snapshot. */
export async function auditDrift(tx: Sql, org: string, limit: number, now: number): Promise<DriftReport> {
  const count = async (a: SqlFragment, b: SqlFragment) => Number((await tx.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM (${a} EXCEPT ${b}) x`))?.n ?? 0);
  const list = async (a: SqlFragment, b: SqlFragment) =>
    limit > 0 ? (await tx.all<RawRow>(sql`SELECT * FROM (${a} EXCEPT ${b}) x ORDER BY subject_id, assignment_id LIMIT ${Math.floor(limit)}`)).map(toRow) : [];
  const [want, have] = [desiredOf(org), actualOf(org)];
  return {
    org,
    missing: await count(want, have),
    extra: await count(have, want),
    rows: { missing: await list(want, have), extra: await list(have, want) },
    checkedAt: new Date(now).toISOString(),
  };
}

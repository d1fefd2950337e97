/**
 * The drift audit: recompute an organization's read model from scratch (the desired view) and
 * compare it with what is materialized, row by row. Repair goes through the ordinary batch machinery:
 * an organization-scoped, priority job.
 */
import type { EffectiveRow } from '../domain/model.ts';
import type { Sql } from '../storage/database.ts';

const COLS = 'subject_id, assignment_id, role, resource, group_id';
const DESIRED = `SELECT ${COLS} FROM desired_effective_assignments WHERE org_id = $1`;
const ACTUAL = `SELECT ${COLS} FROM effective_assignments WHERE org_id = $1`;

export interface DriftReport {
  org: string;
  /** Rows the policy derives that the read model lacks (late grants). */
  missing: number;
  /** Rows the read model holds that the policy no longer derives (revocations not yet cleaned). */
  extra: number;
  /** Up to `limit` differing rows of each kind. */
  rows: { missing: EffectiveRow[]; extra: EffectiveRow[] };
  checkedAt: string;
}

type RawRow = { subject_id: string; assignment_id: string; role: string; resource: string; group_id: string | null };
const toRow = (r: RawRow) => ({ subject: r.subject_id, assignment: r.assignment_id, role: r.role, resource: r.resource, group: r.group_id }) as EffectiveRow;

/** Runs inside one transaction so both sides are read from one snapshot. */
export async function auditDrift(tx: Sql, org: string, limit: number, now: number): Promise<DriftReport> {
  const count = async (a: string, b: string) => Number((await tx.get<{ n: number }>(`SELECT COUNT(*) AS n FROM (${a} EXCEPT ${b}) x`, [org]))?.n ?? 0);
  const list = async (a: string, b: string) =>
    limit > 0 ? (await tx.all<RawRow>(`SELECT * FROM (${a} EXCEPT ${b}) x ORDER BY subject_id, assignment_id LIMIT ${Math.floor(limit)}`, [org])).map(toRow) : [];
  return {
    org,
    missing: await count(DESIRED, ACTUAL),
    extra: await count(ACTUAL, DESIRED),
    rows: { missing: await list(DESIRED, ACTUAL), extra: await list(ACTUAL, DESIRED) },
    checkedAt: new Date(now).toISOString(),
  };
}

/**
 * Set-based read-model maintenance. Rows are added from the derivation rule (./rule.ts) and removed
 * by scope; each helper is one statement, whatever the fan-out. Risk ranks are computed before
 * removal, from the rows themselves.
 */
import { sql, type Sql, type SqlFragment } from '../storage/database.ts';
import { desired, ROW_COLUMNS, type Anchor } from './rule.ts';

/** Inserts the desired rows matching `where` (a predicate on `d.`-qualified row columns; `anchor`: see `desired`). */
export function insertDesired(tx: Sql, where: SqlFragment, anchor?: Anchor, groups?: SqlFragment): Promise<number> {
  return tx.run(insertDesiredStatement(where, anchor, groups));
}

/**
 * The statement `insertDesired` runs (for a caller that embeds it, e.g. in a data-modifying CTE);
 * `groups`: see `desired`.
 */
export const insertDesiredStatement = (where: SqlFragment, anchor?: Anchor, groups?: SqlFragment): SqlFragment =>
  sql`INSERT INTO effective_assignments (${ROW_COLUMNS}) ${desired(where, undefined, anchor, groups)} ON CONFLICT DO NOTHING`;

/** Rows per subject, from `RETURNING subject_id`. */
const perSubject = (rows: { subject_id: string }[]) => rows.reduce((m, r) => m.set(r.subject_id, (m.get(r.subject_id) ?? 0) + 1), new Map<string, number>());

/** `insertDesired`, counting the rows it added per subject. */
export async function insertDesiredBySubject(tx: Sql, where: SqlFragment, anchor?: Anchor): Promise<Map<string, number>> {
  return perSubject(await tx.all<{ subject_id: string }>(sql`INSERT INTO effective_assignments (${ROW_COLUMNS}) ${desired(where, undefined, anchor)} ON CONFLICT DO NOTHING RETURNING subject_id`));
}

/** Number of desired rows matching `where` (`d.`-qualified): the fan-out of a change, before it is applied. */
export async function countDesired(tx: Sql, where: SqlFragment, anchor?: Anchor): Promise<number> {
  const row = await tx.get<{ n: number }>(desired(where, sql`COUNT(*) AS n`, anchor));
  return Number(row?.n ?? 0);
}

/** Active members of a group: the rows one of its assignments fans out to. */
export async function countActiveMembers(tx: Sql, org: string, group: string): Promise<number> {
  const row = await tx.get<{ n: number }>(
    `SELECT COUNT(*) AS n FROM memberships m JOIN subjects s ON s.org_id = m.org_id AND s.id = m.subject_id AND s.active = 1
      WHERE m.org_id = $1 AND m.group_id = $2`,
    [org, group],
  );
  return Number(row?.n ?? 0);
}

/**
 * Rows a group fans out to: its active members times its assignments — two index counts, rather
 * than counting the desired rows (whose plan PostgreSQL can get badly wrong on freshly loaded data).
 */
export async function countGroupRows(tx: Sql, org: string, group: string): Promise<number> {
  const a = await tx.get<{ n: number }>("SELECT COUNT(*) AS n FROM assignments WHERE org_id = $1 AND principal_type = 'group' AND principal_id = $2", [org, group]);
  const assignments = Number(a?.n ?? 0);
  return assignments === 0 ? 0 : assignments * (await countActiveMembers(tx, org, group));
}

/** Deletes the read-model rows matching `where` (unqualified column names). */
export function deleteEffective(tx: Sql, where: SqlFragment): Promise<number> {
  return tx.run(deleteEffectiveStatement(where));
}

/** The statement `deleteEffective` runs. */
export const deleteEffectiveStatement = (where: SqlFragment): SqlFragment => sql`DELETE FROM effective_assignments WHERE ${where}`;

/** `deleteEffective`, counting the rows it removed per subject. */
export async function deleteEffectiveBySubject(tx: Sql, where: SqlFragment): Promise<Map<string, number>> {
  return perSubject(await tx.all<{ subject_id: string }>(sql`DELETE FROM effective_assignments WHERE ${where} RETURNING subject_id`));
}

/** Highest permission risk among the roles of `org` that `roles` selects (a subquery or a value list). */
export async function maxRiskOfRoles(tx: Sql, org: string, roles: SqlFragment): Promise<number | null> {
  const row = await tx.get<{ r: number | null }>(
    sql`SELECT MAX(p.risk) AS r FROM role_permissions rp
       JOIN permissions p ON p.org_id = rp.org_id AND p.slug = rp.permission
      WHERE rp.org_id = ${org} AND rp.role IN (${roles})`,
  );
  return row?.r ?? null;
}

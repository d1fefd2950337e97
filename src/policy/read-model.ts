/**
 * Set-based read-model maintenance. Rows are added from the `desired_effective_assignments` view
 * (the one definition of what the read model should hold) and removed by scope; each helper is one
 * statement, whatever the fan-out. Risk ranks are computed before removal, from the rows themselves.
 */
import type { Sql } from '../storage/database.ts';

const COLUMNS = 'org_id, subject_id, assignment_id, role, resource, group_id';

/**
 * Inserts the desired rows matching `where` (a predicate on the view's columns, `d.`-qualified).
 * `WHERE` is always present: SQLite needs it to parse INSERT … SELECT … ON CONFLICT.
 */
export function insertDesired(tx: Sql, where: string, params: readonly unknown[]): Promise<number> {
  return tx.run(
    `INSERT INTO effective_assignments (${COLUMNS})
     SELECT ${COLUMNS} FROM desired_effective_assignments d WHERE ${where}
     ON CONFLICT DO NOTHING`,
    params,
  );
}

/** Number of desired rows matching `where` (`d.`-qualified): the fan-out of a change, before it is applied. */
export async function countDesired(tx: Sql, where: string, params: readonly unknown[]): Promise<number> {
  const row = await tx.get<{ n: number }>(`SELECT COUNT(*) AS n FROM desired_effective_assignments d WHERE ${where}`, params);
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
 * than counting the desired view (whose plan PostgreSQL can get badly wrong on freshly loaded data).
 */
export async function countGroupRows(tx: Sql, org: string, group: string): Promise<number> {
  const a = await tx.get<{ n: number }>("SELECT COUNT(*) AS n FROM assignments WHERE org_id = $1 AND principal_type = 'group' AND principal_id = $2", [org, group]);
  const assignments = Number(a?.n ?? 0);
  return assignments === 0 ? 0 : assignments * (await countActiveMembers(tx, org, group));
}

export function deleteEffective(tx: Sql, where: string, params: readonly unknown[]): Promise<number> {
  return tx.run(`DELETE FROM effective_assignments WHERE ${where}`, params);
}

/** Highest permission risk among the roles selected by `roleSelect` (a subquery using $1 = org). */
export async function maxRiskOfRoles(tx: Sql, roleSelect: string, params: readonly unknown[]): Promise<number | null> {
  const row = await tx.get<{ r: number | null }>(
    `SELECT MAX(p.risk) AS r FROM role_permissions rp
       JOIN permissions p ON p.org_id = rp.org_id AND p.slug = rp.permission
      WHERE rp.org_id = $1 AND rp.role IN (${roleSelect})`,
    params,
  );
  return row?.r ?? null;
}

/** Ancestors-or-self of resource $2 in org $1 as a recursive CTE named `anc(ref, depth)`. */
export const ANCESTORS_CTE = `anc(ref, depth) AS (
    SELECT r.ref, 0 FROM resources r WHERE r.org_id = $1 AND r.ref = $2
    UNION ALL
    SELECT r.parent, anc.depth + 1 FROM anc JOIN resources r ON r.org_id = $1 AND r.ref = anc.ref
     WHERE r.parent IS NOT NULL AND anc.depth < 64)`;

/** Descendants-or-self of resource $2 in org $1 as a recursive CTE named `sub(ref, depth)`. */
export const SUBTREE_CTE = `sub(ref, depth) AS (
    SELECT r.ref, 0 FROM resources r WHERE r.org_id = $1 AND r.ref = $2
    UNION ALL
    SELECT r.ref, sub.depth + 1 FROM sub JOIN resources r ON r.org_id = $1 AND r.parent = sub.ref
     WHERE sub.depth < 64)`;

/**
 * The counted closure of nested groups (`group_closure`), kept in the transaction of every write that
 * changes the graph. Each (ancestor, descendant) pair carries its number of distinct paths — 1 for a
 * group and itself — so that removing one path of a diamond keeps the pair: an edge child → parent
 * adds paths(a, parent) × paths(child, d) to every pair of the parent's ancestors a × the child's
 * descendants d, and its removal subtracts the same. The graph is acyclic (the write side refuses
 * cycles), which is what makes the counts exact. docs/adr/0012-* has the measurement behind it.
 */
import { sql, type Sql } from '../storage/database.ts';

export const addGroupToClosure = (tx: Sql, org: string, group: string) =>
  tx.run(sql`INSERT INTO group_closure (org_id, ancestor_id, descendant_id, paths) VALUES (${org}, ${group}, ${group}, 1)`);

/** A group's own pair; call after its edges are gone. */
export const removeGroupFromClosure = (tx: Sql, org: string, group: string) =>
  tx.run(sql`DELETE FROM group_closure WHERE org_id = ${org} AND ancestor_id = ${group} AND descendant_id = ${group}`);

/** Counts the paths that the new edge `child` → `parent` opens. */
export function addEdgeToClosure(tx: Sql, org: string, parent: string, child: string) {
  return tx.run(sql`INSERT INTO group_closure (org_id, ancestor_id, descendant_id, paths)
    SELECT ${org}, up.ancestor_id, down.descendant_id, up.paths * down.paths
      FROM group_closure up CROSS JOIN group_closure down
     WHERE up.org_id = ${org} AND up.descendant_id = ${parent} AND down.org_id = ${org} AND down.ancestor_id = ${child}
    ON CONFLICT (org_id, ancestor_id, descendant_id) DO UPDATE SET paths = group_closure.paths + excluded.paths`);
}

/** Uncounts the paths through the edge `child` → `parent` (call before or after deleting the edge row). */
export async function removeEdgeFromClosure(tx: Sql, org: string, parent: string, child: string) {
  // Neither (a, parent) nor (child, d) is among the pairs updated (that would need parent under
  // child: a cycle), so the subquery reads counts this statement does not change.
  await tx.run(sql`UPDATE group_closure SET paths = paths - (
      SELECT up.paths * down.paths FROM group_closure up CROSS JOIN group_closure down
       WHERE up.org_id = ${org} AND up.descendant_id = ${parent} AND up.ancestor_id = group_closure.ancestor_id
         AND down.org_id = ${org} AND down.ancestor_id = ${child} AND down.descendant_id = group_closure.descendant_id)
    WHERE org_id = ${org}
      AND ancestor_id IN (SELECT ancestor_id FROM group_closure WHERE org_id = ${org} AND descendant_id = ${parent})
      AND descendant_id IN (SELECT descendant_id FROM group_closure WHERE org_id = ${org} AND ancestor_id = ${child})`);
  await tx.run(sql`DELETE FROM group_closure WHERE org_id = ${org} AND paths <= 0`);
}

/** The organization's nested edges (small: groups, not subjects), for the rules of ../domain/groups.ts. */
export async function loadGroupEdges(tx: Sql, org: string): Promise<{ group_id: string; member_id: string; expires_at: number | null }[]> {
  return tx.all(sql`SELECT group_id, member_id, expires_at FROM group_members WHERE org_id = ${org}`);
}

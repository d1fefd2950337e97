/**
 * The derivation rule, in one place: which read-model rows (subject, role, resource, assignment,
 * group) the policy implies, and the provenance predicate that says a given row is still implied.
 * Every code path that needs either — inline propagation, the reconciler, checks and listings, the
 * drift audit (and, through the engine, access history) — takes its SQL from here.
 *
 * The rule (docs/semantics.md): an assignment to a subject derives one row for that subject; an
 * assignment to a group derives one row per member (the row names the group); only active subjects
 * hold rows. Resource inheritance is not materialized: a row on R covers R's descendants, and checks
 * walk the ancestors (`ancestors` below).
 *
 * `migrations/001_core.sql` keeps the view `desired_effective_assignments` for ad-hoc queries; no
 * code path reads it.
 */
import { MAX_RESOURCE_DEPTH } from '../domain/model.ts';
import { sql, type SqlFragment } from '../storage/database.ts';

/** A read-model row's columns, in the table's insertion order. */
export const ROW_COLUMNS = sql.raw('org_id, subject_id, assignment_id, role, resource, group_id');

/**
 * Both branches of the rule as one UNION ALL, columns `ROW_COLUMNS` plus `extra`.
 *
 * Unanchored (no `resources`), it is exactly the view: callers filter it from outside and both
 * engines push the filter into each branch. Anchored on a set of resources (a recursive CTE such as
 * `anc`), the resource join and the fixed subject go inside each branch, in a fixed join order —
 * CROSS JOIN pins SQLite's order (PostgreSQL plans freely): from the subject side when the subject is
 * known (its few memberships first), from the resources otherwise. A join to a compound subquery
 * would not be flattened by SQLite, so the anchored form is the one checks and listings use.
 */
function branches(o: {
  org?: unknown;
  subject?: unknown;
  resources?: { from: SqlFragment; ref: SqlFragment; extra: SqlFragment };
}): SqlFragment {
  const r = o.resources;
  if (!r) {
    return sql`SELECT a.org_id, a.principal_id AS subject_id, a.id AS assignment_id, a.role, a.resource, CAST(NULL AS TEXT) AS group_id
  FROM assignments a
  JOIN subjects s ON s.org_id = a.org_id AND s.id = a.principal_id AND s.active = 1
 WHERE a.principal_type = 'subject'
UNION ALL
SELECT a.org_id, m.subject_id, a.id, a.role, a.resource, m.group_id
  FROM assignments a
  JOIN memberships m ON m.org_id = a.org_id AND m.group_id = a.principal_id
  JOIN subjects s ON s.org_id = m.org_id AND s.id = m.subject_id AND s.active = 1
 WHERE a.principal_type = 'group'`;
  }
  const direct =
    o.subject === undefined
      ? sql`a.org_id = ${o.org} AND a.principal_type = 'subject'`
      : sql`a.org_id = ${o.org} AND a.principal_type = 'subject' AND a.principal_id = ${o.subject}`;
  const viaGroup =
    o.subject === undefined
      ? sql`FROM ${r.from} CROSS JOIN assignments a CROSS JOIN memberships m CROSS JOIN subjects s
     WHERE a.org_id = ${o.org} AND a.resource = ${r.ref} AND a.principal_type = 'group'
       AND m.org_id = ${o.org} AND m.group_id = a.principal_id`
      : sql`FROM memberships m CROSS JOIN ${r.from} CROSS JOIN assignments a CROSS JOIN subjects s
     WHERE m.org_id = ${o.org} AND m.subject_id = ${o.subject}
       AND a.org_id = ${o.org} AND a.principal_type = 'group' AND a.principal_id = m.group_id AND a.resource = ${r.ref}`;
  return sql`SELECT a.org_id, a.principal_id AS subject_id, a.id AS assignment_id, a.role, a.resource, CAST(NULL AS TEXT) AS group_id${r.extra}
      FROM ${r.from} CROSS JOIN assignments a CROSS JOIN subjects s
     WHERE ${direct} AND a.resource = ${r.ref}
       AND s.org_id = a.org_id AND s.id = a.principal_id AND s.active = 1
    UNION ALL
    SELECT a.org_id, m.subject_id, a.id, a.role, a.resource, m.group_id${r.extra}
      ${viaGroup}
       AND s.org_id = m.org_id AND s.id = m.subject_id AND s.active = 1`;
}

/**
 * The desired rows matching `where` (a predicate on `d.`-qualified row columns), selecting
 * `columns` (default: all of `ROW_COLUMNS`). `WHERE` is always present: SQLite needs it to parse
 * `INSERT … SELECT … ON CONFLICT`.
 */
export function desired(where: SqlFragment, columns: SqlFragment = sql`d.org_id, d.subject_id, d.assignment_id, d.role, d.resource, d.group_id`): SqlFragment {
  return sql`SELECT ${columns} FROM (${branches({})}) d WHERE ${where}`;
}

/**
 * The desired rows of `org` on the resources of the recursive CTE `anc(ref, depth)` (see
 * `ancestors`), with the CTE's depth — of one subject, or of everyone.
 */
export function desiredOnAncestors(org: unknown, subject?: unknown): SqlFragment {
  return branches({ org, subject, resources: { from: sql`anc`, ref: sql`anc.ref`, extra: sql`, anc.depth` } });
}

/**
 * Provenance: read-model row `x` (a table alias) is still derived — its assignment exists with the
 * same role, resource and principal, the subject is active, and a group row's membership exists.
 * Exact, so that a row of the same identity re-created differently is not mistaken for this one.
 */
export function stillDerived(x: string): SqlFragment {
  const r = sql.raw(x);
  return sql`EXISTS (
    SELECT 1 FROM assignments a
      JOIN subjects s ON s.org_id = a.org_id AND s.id = ${r}.subject_id AND s.active = 1
     WHERE a.org_id = ${r}.org_id AND a.id = ${r}.assignment_id AND a.role = ${r}.role AND a.resource = ${r}.resource
       AND ((a.principal_type = 'subject' AND a.principal_id = ${r}.subject_id AND ${r}.group_id IS NULL)
         OR (a.principal_type = 'group' AND a.principal_id = ${r}.group_id
             AND EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = ${r}.org_id AND m.group_id = ${r}.group_id AND m.subject_id = ${r}.subject_id))))`;
}

/** Rows of `x` the policy no longer derives: what a reconciliation deletes. */
export const notDerived = (x: string): SqlFragment => sql`NOT ${stillDerived(x)}`;

// The recursion bound is the hierarchy's depth limit: the write side never lets a chain grow past
// it, so the bound only matters as a guard should a cycle ever reach the table.
const DEPTH_BOUND = sql.raw(String(MAX_RESOURCE_DEPTH));

/** Ancestors-or-self of `ref` as a recursive CTE named `anc(ref, depth)` (after `WITH RECURSIVE`). */
export const ancestors = (org: unknown, ref: unknown): SqlFragment => sql`anc(ref, depth) AS (
    SELECT r.ref, 0 FROM resources r WHERE r.org_id = ${org} AND r.ref = ${ref}
    UNION ALL
    SELECT r.parent, anc.depth + 1 FROM anc JOIN resources r ON r.org_id = ${org} AND r.ref = anc.ref
     WHERE r.parent IS NOT NULL AND anc.depth < ${DEPTH_BOUND})`;

/** Descendants-or-self of `ref` as a recursive CTE named `sub(ref, depth)` (after `WITH RECURSIVE`). */
export const subtree = (org: unknown, ref: unknown): SqlFragment => sql`sub(ref, depth) AS (
    SELECT r.ref, 0 FROM resources r WHERE r.org_id = ${org} AND r.ref = ${ref}
    UNION ALL
    SELECT r.ref, sub.depth + 1 FROM sub JOIN resources r ON r.org_id = ${org} AND r.parent = sub.ref
     WHERE sub.depth < ${DEPTH_BOUND})`;

/**
 * The derivation rule, in one place: which read-model rows (subject, role, resource, assignment,
 * group) the policy implies, and the provenance predicate that says a given row is still implied.
 * Every code path that needs either — inline propagation, the reconciler, checks and listings, the
 * drift audit (and, through the engine, access history) — takes its SQL from here.
 *
 * The rule (docs/semantics.md): an assignment to a subject derives one row for that subject; an
 * assignment to a group derives one row per subject of the group or of any group nested in it,
 * transitively (the row names the assignment's group; a subject reaching it by several paths has one
 * row); only active subjects hold rows. Nesting is read through `group_closure`, the counted closure
 * of `group_members` kept by the edge writes (./closure.ts). Resource inheritance is not
 * materialized: a row on R covers R's descendants, and checks walk the ancestors (`ancestors`).
 *
 * Time: derivation is structural — an expired membership, edge or assignment still derives rows
 * until the expiry job deletes it. What a check honours is decided with the clock: `provenAt` and
 * the `memberGroups` walk compare every link's expiry with `now` (docs/adr/0012-*).
 *
 * `migrations/006_nested_groups.sql` keeps the view `desired_effective_assignments` for ad-hoc
 * queries; no code path reads it.
 */
import { MAX_GROUP_DEPTH } from '../domain/groups.ts';
import { MAX_RESOURCE_DEPTH } from '../domain/model.ts';
import { sql, type SqlFragment } from '../storage/database.ts';

/**
 * A time in epoch milliseconds: a value (a parameter), or an expression of the statement — the
 * batched check's per-item `q.now` (../check/check.ts).
 */
export type Instant = number | SqlFragment;

/** A read-model row's columns, in the table's insertion order. */
export const ROW_COLUMNS = sql.raw('org_id, subject_id, assignment_id, role, resource, group_id');

/** Item `x` (a table alias with `expires_at`) is live at `now`. */
export const liveAt = (x: string, now: Instant): SqlFragment => sql`(${sql.raw(x)}.expires_at IS NULL OR ${sql.raw(x)}.expires_at > ${now})`;

/** The rule's first branch: an assignment to a subject derives one row for it, if it is active. */
const DIRECT = sql`SELECT a.org_id, a.principal_id AS subject_id, a.id AS assignment_id, a.role, a.resource, CAST(NULL AS TEXT) AS group_id
  FROM assignments a
  JOIN subjects s ON s.org_id = a.org_id AND s.id = a.principal_id AND s.active = 1
 WHERE a.principal_type = 'subject'`;

/**
 * The second: an assignment to a group derives a row for every active subject of the group or of a
 * group nested in it. DISTINCT: a subject in two groups under the assignment's group (or in one by
 * two paths) is one derivation. `tables` only orders the four tables (see `desired`).
 */
const viaGroups = (tables: SqlFragment, only: SqlFragment = sql.empty) => sql`SELECT DISTINCT a.org_id, m.subject_id, a.id AS assignment_id, a.role, a.resource, a.principal_id AS group_id
  FROM ${tables}
 WHERE a.principal_type = 'group' ${only} AND c.org_id = a.org_id AND c.ancestor_id = a.principal_id
   AND m.org_id = c.org_id AND m.group_id = c.descendant_id
   AND s.org_id = m.org_id AND s.id = m.subject_id AND s.active = 1`;

/**
 * Both branches, unanchored: callers filter from outside and both engines push the filter into each
 * branch. The planner orders the group branch's joins itself (from the assignments, for a group, an
 * assignment or a whole organization) …
 */
const UNANCHORED_GROUP_TABLES = sql`assignments a, group_closure c, memberships m, subjects s`;
const UNANCHORED = sql`${DIRECT} UNION ALL ${viaGroups(UNANCHORED_GROUP_TABLES)}`;

/**
 * … except where the filter names the subjects. SQLite, without statistics, still starts from all of
 * the organization's group assignments (two equalities on an index, as many as on the subject's
 * memberships) and probes each; from the subjects' memberships up the closure to the assignments
 * is a handful of probes. CROSS JOIN pins that order on SQLite; PostgreSQL plans freely.
 */
const SUBJECTS_FIRST = sql`memberships m CROSS JOIN group_closure c CROSS JOIN assignments a CROSS JOIN subjects s`;
const FROM_SUBJECTS = sql`${DIRECT} UNION ALL ${viaGroups(SUBJECTS_FIRST)}`;

/** What a `desired` filter is anchored at: named subjects (`d.subject_id = …`, `IN (…)`), or anything else. */
export type Anchor = 'subjects' | 'other';

/**
 * The desired rows matching `where` (a predicate on `d.`-qualified row columns), selecting
 * `columns` (default: all of `ROW_COLUMNS`). `WHERE` is always present: SQLite needs it to parse
 * `INSERT … SELECT … ON CONFLICT`. `anchor: 'subjects'` when `where` names the subjects: the join
 * order changes, not the rows.
 *
 * `groups`, when `where` implies `d.group_id IN (groups)` (a subquery or a value list): the group
 * branch is narrowed to those groups' assignments inside, before its DISTINCT — the rows do not
 * change (the outer filter drops the others anyway, and every row of the direct branch, whose
 * group is NULL: that branch is left out), but PostgreSQL does not push an IN-subquery
 * filter through the DISTINCT, so without it a subject's grant derived the subject's whole set
 * (303 rows for a standing set of 300 assignments, 0.6 ms) to keep the group's 3.
 */
export function desired(
  where: SqlFragment,
  columns: SqlFragment = sql`d.org_id, d.subject_id, d.assignment_id, d.role, d.resource, d.group_id`,
  anchor: Anchor = 'other',
  groups?: SqlFragment,
): SqlFragment {
  if (groups !== undefined) {
    const only = sql`AND a.principal_id IN (${groups})`;
    const branch = anchor === 'subjects' ? viaGroups(SUBJECTS_FIRST, only) : viaGroups(UNANCHORED_GROUP_TABLES, only);
    return sql`SELECT ${columns} FROM (${branch}) d WHERE ${where}`;
  }
  return sql`SELECT ${columns} FROM (${anchor === 'subjects' ? FROM_SUBJECTS : UNANCHORED}) d WHERE ${where}`;
}

/**
 * The groups `subject` is in at `now`, transitively, as a recursive CTE named `up(g, depth, path)`
 * (after `WITH RECURSIVE`): its live memberships, then live nested edges upwards. `path` is the
 * chain from the direct group to `g`, joined by '/' (an id cannot contain one). A group reached by
 * several paths appears once per path; the depth bound caps them. CROSS JOIN: each step probes the
 * edges of the groups found (SQLite otherwise scans the organization's edges once per step).
 */
export const memberGroups = (org: unknown, subject: unknown, now: Instant): SqlFragment => sql`up(g, depth, path) AS (
    SELECT m.group_id, 1, m.group_id FROM memberships m WHERE m.org_id = ${org} AND m.subject_id = ${subject} AND ${liveAt('m', now)}
    UNION ALL
    SELECT e.group_id, up.depth + 1, up.path || '/' || e.group_id FROM up
     CROSS JOIN group_members e
     WHERE e.org_id = ${org} AND e.member_id = up.g AND ${liveAt('e', now)} AND up.depth < ${sql.raw(String(MAX_GROUP_DEPTH))})`;

/** The shortest chain (from `memberGroups`'s `up`) from the subject to group column `g`. */
export const chainTo = (g: SqlFragment): SqlFragment => sql`(SELECT up.path FROM up WHERE up.g = ${g} ORDER BY up.depth, up.path LIMIT 1)`;

/** `subject` is a live direct member of group `g` at `now`: one primary-key probe. */
const directlyIn = (org: unknown, subject: unknown, g: unknown, now: Instant): SqlFragment =>
  sql`EXISTS (SELECT 1 FROM memberships dm WHERE dm.org_id = ${org} AND dm.group_id = ${g} AND dm.subject_id = ${subject} AND ${liveAt('dm', now)})`;

/**
 * `chainTo(g)` for `subject`, with the common case first: a live direct membership is the shortest
 * chain (depth 1, the group alone), and then the walk `up` is not needed at all.
 */
export const chainAt = (org: unknown, subject: unknown, g: SqlFragment, now: Instant): SqlFragment =>
  sql`CASE WHEN ${directlyIn(org, subject, g, now)} THEN ${g} ELSE ${chainTo(g)} END`;

/**
 * The desired rows at `now` of `org` on the resources of the recursive CTE `anc(ref, parent, depth)` (see
 * `ancestors`), with the CTE's depth.
 *
 * Of one subject (`subject` given; the CTE `up` of `memberGroups` must be in scope): from the subject
 * side, its groups first, with `chain` — the path to the row's group. Of everyone: from the
 * resources, through the closure, live assignments and memberships, with `member_group` — the
 * subject's direct group on the way (the caller proves the nested part of the path: the closure
 * does not know expiry). CROSS JOIN pins SQLite's join order (PostgreSQL plans freely).
 */
export function desiredOnAncestors(org: unknown, now: Instant, subject?: unknown): SqlFragment {
  const direct = sql`SELECT a.org_id, a.principal_id AS subject_id, a.id AS assignment_id, a.role, a.resource, CAST(NULL AS TEXT) AS group_id, anc.depth,
           CAST(NULL AS TEXT) AS ${sql.raw(subject === undefined ? 'member_group' : 'chain')}
      FROM anc CROSS JOIN assignments a CROSS JOIN subjects s
     WHERE a.org_id = ${org} AND a.principal_type = 'subject' AND a.resource = anc.ref AND ${liveAt('a', now)}
       ${subject === undefined ? sql.empty : sql`AND a.principal_id = ${subject}`}
       AND s.org_id = a.org_id AND s.id = a.principal_id AND s.active = 1`;
  const viaGroup =
    subject === undefined
      ? sql`SELECT a.org_id, m.subject_id, a.id, a.role, a.resource, a.principal_id, anc.depth, m.group_id
      FROM anc CROSS JOIN assignments a CROSS JOIN group_closure c CROSS JOIN memberships m CROSS JOIN subjects s
     WHERE a.org_id = ${org} AND a.resource = anc.ref AND a.principal_type = 'group' AND ${liveAt('a', now)}
       AND c.org_id = ${org} AND c.ancestor_id = a.principal_id
       AND m.org_id = ${org} AND m.group_id = c.descendant_id AND ${liveAt('m', now)}
       AND s.org_id = m.org_id AND s.id = m.subject_id AND s.active = 1`
      : sql`SELECT a.org_id, s.id, a.id, a.role, a.resource, a.principal_id, anc.depth, ${chainTo(sql`a.principal_id`)}
      FROM (SELECT DISTINCT g FROM up) ug CROSS JOIN anc CROSS JOIN assignments a CROSS JOIN subjects s
     WHERE a.org_id = ${org} AND a.principal_type = 'group' AND a.principal_id = ug.g AND a.resource = anc.ref AND ${liveAt('a', now)}
       AND s.org_id = a.org_id AND s.id = ${subject} AND s.active = 1`;
  return sql`${direct} UNION ALL ${viaGroup}`;
}

/**
 * Group `x.group_id`'s structure still reaches subject `x.subject_id`: a membership of it (one
 * primary-key probe, the common case) or of a group nested in it.
 */
const reaches = (r: SqlFragment) => sql`(EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = ${r}.org_id AND m.group_id = ${r}.group_id AND m.subject_id = ${r}.subject_id)
   OR EXISTS (SELECT 1 FROM memberships m
      JOIN group_closure c ON c.org_id = m.org_id AND c.descendant_id = m.group_id AND c.ancestor_id = ${r}.group_id
     WHERE m.org_id = ${r}.org_id AND m.subject_id = ${r}.subject_id))`;

/**
 * Provenance: read-model row `x` (a table alias) is still derived — its assignment exists with the
 * same role, resource and principal, the subject is active, and a group row's subject is still in
 * the group (directly or through nested groups). Exact, so that a row of the same identity
 * re-created differently is not mistaken for this one. Structural (no clock): what the reconciler
 * keeps.
 */
export function stillDerived(x: string): SqlFragment {
  return derivedBy(sql.raw(x), reaches(sql.raw(x)), sql.empty);
}

/**
 * Provenance at decision time: `stillDerived`, and at `now` the assignment is live and a group row's
 * subject reaches the group by live links — the walk `up` of `memberGroups` (for this row's subject)
 * must be in scope. What a verified check honours.
 */
export function provenAt(x: string, now: Instant): SqlFragment {
  const r = sql.raw(x);
  // A live direct membership first (a probe); the walk only for a nested path.
  const inGroup = sql`(${directlyIn(sql`${r}.org_id`, sql`${r}.subject_id`, sql`${r}.group_id`, now)} OR EXISTS (SELECT 1 FROM up WHERE up.g = ${r}.group_id))`;
  return derivedBy(r, inGroup, sql`AND ${liveAt('a', now)}`);
}

/**
 * Primary-key probes, each on its own: the row's assignment (with the principal the row implies),
 * its subject, and for a group row `inGroup`.
 */
function derivedBy(r: SqlFragment, inGroup: SqlFragment, more: SqlFragment): SqlFragment {
  return sql`(EXISTS (SELECT 1 FROM assignments a
      WHERE a.org_id = ${r}.org_id AND a.id = ${r}.assignment_id AND a.role = ${r}.role AND a.resource = ${r}.resource ${more}
        AND a.principal_type = CASE WHEN ${r}.group_id IS NULL THEN 'subject' ELSE 'group' END
        AND a.principal_id = COALESCE(${r}.group_id, ${r}.subject_id))
    AND EXISTS (SELECT 1 FROM subjects s WHERE s.org_id = ${r}.org_id AND s.id = ${r}.subject_id AND s.active = 1)
    AND (${r}.group_id IS NULL OR ${inGroup}))`;
}

/** Rows of `x` the policy no longer derives: what a reconciliation deletes. */
export const notDerived = (x: string): SqlFragment => sql`NOT ${stillDerived(x)}`;

/** `group` and the groups it is nested in (ids, from the closure): whose assignments its members get. */
export const groupAncestors = (org: unknown, group: unknown): SqlFragment =>
  sql`SELECT c.ancestor_id FROM group_closure c WHERE c.org_id = ${org} AND c.descendant_id = ${group}`;

/** Subject ids in `group` or in a group nested in it (with repeats: wrap in DISTINCT or IN). */
export const subjectsUnder = (org: unknown, group: unknown): SqlFragment =>
  sql`SELECT m.subject_id FROM group_closure c JOIN memberships m ON m.org_id = c.org_id AND m.group_id = c.descendant_id
       WHERE c.org_id = ${org} AND c.ancestor_id = ${group}`;

// The recursion bound is the hierarchy's depth limit: the write side never lets a chain grow past
// it, so the bound only matters as a guard should a cycle ever reach the table.
const DEPTH_BOUND = sql.raw(String(MAX_RESOURCE_DEPTH));

/**
 * Ancestors-or-self of `ref` as a recursive CTE named `anc(ref, parent, depth)` (after `WITH
 * RECURSIVE`). Each step reads a row with its parent, so a chain of n resources is n primary-key
 * probes (reading the parent of a row found by the previous step took n + 1). The rows are the same:
 * a parent is a resource of the organization (foreign key on both engines), and the walk ends at the
 * row without one.
 */
export const ancestors = (org: unknown, ref: unknown): SqlFragment => sql`anc(ref, parent, depth) AS (
    SELECT r.ref, r.parent, 0 FROM resources r WHERE r.org_id = ${org} AND r.ref = ${ref}
    UNION ALL
    SELECT r.ref, r.parent, anc.depth + 1 FROM anc JOIN resources r ON r.org_id = ${org} AND r.ref = anc.parent
     WHERE anc.depth < ${DEPTH_BOUND})`;

/** Descendants-or-self of `ref` as a recursive CTE named `sub(ref, depth)` (after `WITH RECURSIVE`). */
export const subtree = (org: unknown, ref: unknown): SqlFragment => sql`sub(ref, depth) AS (
    SELECT r.ref, 0 FROM resources r WHERE r.org_id = ${org} AND r.ref = ${ref}
    UNION ALL
    SELECT r.ref, sub.depth + 1 FROM sub JOIN resources r ON r.org_id = ${org} AND r.parent = sub.ref
     WHERE sub.depth < ${DEPTH_BOUND})`;

/**
 * Job scopes. A scope names a slice of the read model — a predicate over effective rows — and how to
 * walk, in ascending id, the subjects that may hold rows in it.
 *
 *   subject:S                      every row of S
 *   group:G                        every row derived through G (walks G's members and the subjects
 *                                  that still hold rows through G)
 *   assignment:A|P|R               the rows of assignment A, whose principal is P and resource R
 *                                  (immutable, so carried in the key: the job still knows them after
 *                                  A is deleted); walks P, or everyone in P and the groups nested in it
 *   subtree:C                      every group-derived row of everyone in C or a group nested in C: a
 *                                  nested edge C → P added or removed (who is under C does not change
 *                                  with it, so the walk finds the same subjects afterwards)
 *   organization:O                 everything (drift repair, resource deletion, deleting a group
 *                                  that had nested edges, or whose members still hold rows a
 *                                  queued clean-up of an earlier cut would have removed)
 *
 * The read model keeps only indexes that fill in subject order (its primary key and the group
 * index); the streams and predicates are written to use them. Rows that a walk does not reach (say,
 * rows of A held by someone who has since left A's group) are always covered by that subject's own
 * pending job: whoever removed the membership either deleted the rows inline or enqueued subject:S.
 */
import { validation } from '../domain/errors.ts';
import { sql, type SqlFragment } from '../storage/database.ts';

export type Scope =
  | { kind: 'subject'; key: string; id: string }
  | { kind: 'group'; key: string; id: string }
  | { kind: 'subtree'; key: string; id: string }
  | { kind: 'assignment'; key: string; id: string; principal: { type: 'subject' | 'group'; id: string }; resource: string }
  | { kind: 'organization'; key: string; id: string };

export const assignmentScopeKey = (id: string, principal: string, resource: string) => `assignment:${id}|${principal}|${resource}`;

export function parseScope(key: string): Scope {
  const i = key.indexOf(':');
  const kind = key.slice(0, i);
  const rest = key.slice(i + 1);
  if (i > 0 && rest.length > 0) {
    if (kind === 'subject' || kind === 'group' || kind === 'subtree' || kind === 'organization') return { kind, key, id: rest };
    if (kind === 'assignment') {
      const [id, principal, resource] = rest.split('|');
      const [ptype, pid] = [principal?.slice(0, principal.indexOf(':')), principal?.slice(principal.indexOf(':') + 1)];
      if (id && resource && pid && (ptype === 'subject' || ptype === 'group')) return { kind, key, id, principal: { type: ptype, id: pid }, resource };
    }
  }
  throw validation('scope', `unknown job scope '${key}'`);
}

/** The scope's predicate on a read-model-shaped row aliased `x`. */
export function scopeFilter(s: Scope, x: string): SqlFragment {
  const r = sql.raw(x);
  switch (s.kind) {
    case 'subject':
      return sql`${r}.subject_id = ${s.id}`;
    case 'group':
      return sql`${r}.group_id = ${s.id}`;
    case 'subtree':
      return sql`${r}.group_id IS NOT NULL`;
    case 'assignment':
      // The resource lets the primary key (org, subject, resource, assignment) answer directly.
      return sql`${r}.resource = ${s.resource} AND ${r}.assignment_id = ${s.id}`;
    case 'organization':
      return sql`1 = 1`;
  }
}

/**
 * Queries returning up to `n` subject ids of `org` greater than `after`, ascending. The next batch
 * is the smallest ids of their union.
 */
export function subjectStreams(s: Scope, org: string, after: string, n: number): SqlFragment[] {
  const page = sql`ORDER BY subject_id LIMIT ${n}`;
  switch (s.kind) {
    case 'subject':
      return [sql`SELECT subject_id FROM (SELECT CAST(${s.id} AS TEXT) AS subject_id) one WHERE subject_id > ${after} ${page}`];
    case 'group':
      return [
        sql`SELECT subject_id FROM memberships WHERE org_id = ${org} AND group_id = ${s.id} AND subject_id > ${after} ${page}`,
        sql`SELECT DISTINCT subject_id FROM effective_assignments WHERE org_id = ${org} AND group_id = ${s.id} AND subject_id > ${after} ${page}`,
      ];
    case 'subtree':
      return [under(org, s.id, after, n)];
    case 'assignment':
      return s.principal.type === 'subject'
        ? subjectStreams({ kind: 'subject', key: s.key, id: s.principal.id }, org, after, n)
        : [under(org, s.principal.id, after, n)];
    case 'organization':
      return [
        sql`SELECT id AS subject_id FROM subjects WHERE org_id = ${org} AND id > ${after} ORDER BY id LIMIT ${n}`,
        sql`SELECT DISTINCT subject_id FROM effective_assignments WHERE org_id = ${org} AND subject_id > ${after} ${page}`,
      ];
  }
}

/** Subjects in `group` or a group nested in it, after `after`, ascending. */
const under = (org: string, group: string, after: string, n: number) =>
  sql`SELECT DISTINCT m.subject_id FROM group_closure c JOIN memberships m ON m.org_id = c.org_id AND m.group_id = c.descendant_id
       WHERE c.org_id = ${org} AND c.ancestor_id = ${group} AND m.subject_id > ${after} ORDER BY m.subject_id LIMIT ${n}`;

/** Roughly how many subjects the scope walks, for progress reporting. */
export function totalMembers(s: Scope, org: string): SqlFragment {
  const members = (g: string) => sql`SELECT COUNT(*) AS n FROM memberships WHERE org_id = ${org} AND group_id = ${g}`;
  const underCount = (g: string) =>
    sql`SELECT COUNT(DISTINCT m.subject_id) AS n FROM group_closure c JOIN memberships m ON m.org_id = c.org_id AND m.group_id = c.descendant_id
         WHERE c.org_id = ${org} AND c.ancestor_id = ${g}`;
  switch (s.kind) {
    case 'subject':
      return sql`SELECT 1 AS n`;
    case 'group':
      return members(s.id);
    case 'subtree':
      return underCount(s.id);
    case 'assignment':
      return s.principal.type === 'group' ? underCount(s.principal.id) : sql`SELECT 1 AS n`;
    case 'organization':
      return sql`SELECT COUNT(*) AS n FROM subjects WHERE org_id = ${org}`;
  }
}

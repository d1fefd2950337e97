/**
 * Job scopes. A scope names a slice of the read model — a predicate over effective rows — and how to
 * walk, in ascending id, the subjects that may hold rows in it.
 *
 *   subject:S                      every row of S
 *   group:G                        every row derived through G (walks G's members and the subjects
 *                                  that still hold rows through G)
 *   assignment:A|P|R               the rows of assignment A, whose principal is P and resource R
 *                                  (immutable, so carried in the key: the job still knows them after
 *                                  A is deleted); walks P, or P's members
 *   organization:O                 everything (drift repair, resource deletion)
 *
 * The read model keeps only indexes that fill in subject order (its primary key and the group
 * index); the streams and predicates are written to use them. Rows that a walk does not reach (say,
 * rows of A held by someone who has since left A's group) are always covered by that subject's own
 * pending job: whoever removed the membership either deleted the rows inline or enqueued subject:S.
 */
import { validation } from '../domain/errors.ts';

export type Scope =
  | { kind: 'subject'; key: string; id: string }
  | { kind: 'group'; key: string; id: string }
  | { kind: 'assignment'; key: string; id: string; principal: { type: 'subject' | 'group'; id: string }; resource: string }
  | { kind: 'organization'; key: string; id: string };

export const assignmentScopeKey = (id: string, principal: string, resource: string) => `assignment:${id}|${principal}|${resource}`;

export function parseScope(key: string): Scope {
  const i = key.indexOf(':');
  const kind = key.slice(0, i);
  const rest = key.slice(i + 1);
  if (i > 0 && rest.length > 0) {
    if (kind === 'subject' || kind === 'group' || kind === 'organization') return { kind, key, id: rest };
    if (kind === 'assignment') {
      const [id, principal, resource] = rest.split('|');
      const [ptype, pid] = [principal?.slice(0, principal.indexOf(':')), principal?.slice(principal.indexOf(':') + 1)];
      if (id && resource && pid && (ptype === 'subject' || ptype === 'group')) return { kind, key, id, principal: { type: ptype, id: pid }, resource };
    }
  }
  throw validation('scope', `unknown job scope '${key}'`);
}

export interface Fragment {
  sql: string;
  params: unknown[];
}

/**
 * The scope's predicate on a read-model-shaped row aliased `x`, its parameters numbered from `$next`.
 */
export function scopeFilter(s: Scope, x: string, next: number): Fragment {
  switch (s.kind) {
    case 'subject':
      return { sql: `${x}.subject_id = $${next}`, params: [s.id] };
    case 'group':
      return { sql: `${x}.group_id = $${next}`, params: [s.id] };
    case 'assignment':
      // The resource lets the primary key (org, subject, resource, assignment) answer directly.
      return { sql: `${x}.resource = $${next} AND ${x}.assignment_id = $${next + 1}`, params: [s.resource, s.id] };
    case 'organization':
      return { sql: '1 = 1', params: [] };
  }
}

/**
 * Queries returning up to $3 subject ids greater than $2, ascending ($1 org; scope parameters from
 * $4, the same for every stream of a scope). The next batch is the smallest ids of their union.
 */
export function subjectStreams(s: Scope): Fragment[] {
  const page = 'ORDER BY subject_id LIMIT $3';
  switch (s.kind) {
    case 'subject':
      return [{ sql: `SELECT subject_id FROM (SELECT CAST($4 AS TEXT) AS subject_id WHERE CAST($1 AS TEXT) IS NOT NULL) one WHERE subject_id > $2 ${page}`, params: [s.id] }];
    case 'group':
      return [
        { sql: `SELECT subject_id FROM memberships WHERE org_id = $1 AND group_id = $4 AND subject_id > $2 ${page}`, params: [s.id] },
        { sql: `SELECT DISTINCT subject_id FROM effective_assignments WHERE org_id = $1 AND group_id = $4 AND subject_id > $2 ${page}`, params: [s.id] },
      ];
    case 'assignment':
      return s.principal.type === 'subject'
        ? subjectStreams({ kind: 'subject', key: s.key, id: s.principal.id })
        : [{ sql: `SELECT subject_id FROM memberships WHERE org_id = $1 AND group_id = $4 AND subject_id > $2 ${page}`, params: [s.principal.id] }];
    case 'organization':
      return [
        { sql: `SELECT id AS subject_id FROM subjects WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3`, params: [] },
        { sql: `SELECT DISTINCT subject_id FROM effective_assignments WHERE org_id = $1 AND subject_id > $2 ${page}`, params: [] },
      ];
  }
}

/** Roughly how many subjects the scope walks, for progress reporting ($1 org). */
export function totalMembers(s: Scope): Fragment {
  const members = (g: string) => ({ sql: 'SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND group_id = $2', params: [g] });
  switch (s.kind) {
    case 'subject':
      return { sql: 'SELECT 1 AS n WHERE CAST($1 AS TEXT) IS NOT NULL', params: [] };
    case 'group':
      return members(s.id);
    case 'assignment':
      return s.principal.type === 'group' ? members(s.principal.id) : { sql: 'SELECT 1 AS n WHERE CAST($1 AS TEXT) IS NOT NULL', params: [] };
    case 'organization':
      return { sql: 'SELECT COUNT(*) AS n FROM subjects WHERE org_id = $1', params: [] };
  }
}

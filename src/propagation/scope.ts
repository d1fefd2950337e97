/**
 * Job scopes. A scope names a slice of the read model — a predicate over effective rows — and how to
 * walk the subjects that may hold rows in it, in ascending id, from two index-ordered streams: the
 * subjects that should have rows (from the source tables) and those that do (from the read model).
 */
import { validation } from '../domain/errors.ts';

export type ScopeKind = 'subject' | 'group' | 'assignment' | 'organization';
export interface Scope {
  kind: ScopeKind;
  id: string;
}

export const scopeKey = (s: Scope) => `${s.kind}:${s.id}`;

export function parseScope(key: string): Scope {
  const i = key.indexOf(':');
  const kind = key.slice(0, i) as ScopeKind;
  if (i < 0 || !['subject', 'group', 'assignment', 'organization'].includes(kind)) throw validation('scope', `unknown job scope '${key}'`);
  return { kind, id: key.slice(i + 1) };
}

/** The scope's predicate on a read-model-shaped row aliased `x`; `$2` is the scope id. */
export function scopePredicate(s: Scope, x: string): string {
  switch (s.kind) {
    case 'subject':
      return `${x}.subject_id = $2`;
    case 'group':
      return `${x}.group_id = $2`;
    case 'assignment':
      return `${x}.assignment_id = $2`;
    case 'organization':
      return '1 = 1';
  }
}

/**
 * Queries returning up to $4 subject ids greater than $3, ascending, in the scope ($1 org, $2 scope id).
 * The next batch is the smallest ids of their union.
 */
export function subjectStreams(s: Scope): string[] {
  const after = 'subject_id > $3 ORDER BY subject_id LIMIT $4';
  switch (s.kind) {
    case 'subject':
      // The one subject; $1 is referenced only so that every stream takes the same parameters.
      return [`SELECT subject_id FROM (SELECT CAST($2 AS TEXT) AS subject_id WHERE CAST($1 AS TEXT) IS NOT NULL) one WHERE ${after}`];
    case 'group':
      return [
        `SELECT subject_id FROM memberships WHERE org_id = $1 AND group_id = $2 AND ${after}`,
        `SELECT DISTINCT subject_id FROM effective_assignments WHERE org_id = $1 AND group_id = $2 AND ${after}`,
      ];
    case 'assignment':
      return [
        `SELECT subject_id FROM (
           SELECT a.principal_id AS subject_id FROM assignments a WHERE a.org_id = $1 AND a.id = $2 AND a.principal_type = 'subject'
           UNION ALL
           SELECT m.subject_id FROM assignments a JOIN memberships m ON m.org_id = a.org_id AND m.group_id = a.principal_id
            WHERE a.org_id = $1 AND a.id = $2 AND a.principal_type = 'group') s WHERE ${after}`,
        `SELECT subject_id FROM effective_assignments WHERE org_id = $1 AND assignment_id = $2 AND ${after}`,
      ];
    case 'organization':
      return [
        `SELECT id AS subject_id FROM subjects WHERE org_id = $1 AND CAST($2 AS TEXT) = $1 AND id > $3 ORDER BY id LIMIT $4`,
        `SELECT DISTINCT subject_id FROM effective_assignments WHERE org_id = $1 AND CAST($2 AS TEXT) = $1 AND ${after}`,
      ];
  }
}

/** Roughly how many subjects the scope walks, for progress reporting ($1 org, $2 scope id). */
export function totalMembersSql(s: Scope): string {
  switch (s.kind) {
    case 'subject':
      return 'SELECT 1 AS n WHERE CAST($1 AS TEXT) IS NOT NULL AND CAST($2 AS TEXT) IS NOT NULL';
    case 'group':
      return 'SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND group_id = $2';
    case 'assignment':
      return `SELECT MAX(n) AS n FROM (
        SELECT COUNT(*) AS n FROM assignments a
          LEFT JOIN memberships m ON m.org_id = a.org_id AND a.principal_type = 'group' AND m.group_id = a.principal_id
         WHERE a.org_id = $1 AND a.id = $2
        UNION ALL
        SELECT COUNT(*) FROM effective_assignments WHERE org_id = $1 AND assignment_id = $2) c`;
    case 'organization':
      return 'SELECT COUNT(*) AS n FROM subjects WHERE org_id = $1 AND CAST($2 AS TEXT) = $1';
  }
}

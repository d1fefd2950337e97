/**
 * The expiry job: finds memberships, nested edges and assignments whose `expires_at` has passed and
 * removes each with its own write — one change-log entry (`membership.expired` /
 * `assignment.expired`, a revocation decided at the instant of the expiry) and the read-model clean-up
 * its fan-out calls for, inline or by a job. Checks deny from the instant already (verification
 * compares the clock); this is the clean-up and the receipt, not the enforcement.
 *
 * Safe to run anywhere and concurrently: each removal re-reads its item under its write's locks (a
 * subject's membership: the subject's; anything else: the organization's — src/storage/locks.ts) and
 * changes nothing if someone else removed or extended it first.
 */
import { sql, type Sql } from '../storage/database.ts';
import type { WriteResult } from '../domain/contract.ts';

export interface ExpiryWrites {
  expireMembership(org: string, group: string, member: string): Promise<WriteResult>;
  expireAssignment(org: string, id: string): Promise<WriteResult>;
}

interface DueRow {
  kind: 'assignment' | 'membership';
  org_id: string;
  a: string;
  b: string | null;
  expires_at: number;
}

/** Due items, earliest first (ties: assignments, then memberships, then nested edges, by id). */
const dueItems = (now: number, limit: number, org?: string) => {
  const inOrg = (t: string) => (org === undefined ? sql.empty : sql`AND ${sql.raw(t)}.org_id = ${org}`);
  return sql`SELECT kind, org_id, a, b, expires_at FROM (
      SELECT 'assignment' AS kind, 0 AS rank, x.org_id, x.id AS a, CAST(NULL AS TEXT) AS b, x.expires_at
        FROM assignments x WHERE x.expires_at IS NOT NULL AND x.expires_at <= ${now} ${inOrg('x')}
      UNION ALL
      SELECT 'membership', 1, m.org_id, m.group_id, 'subject:' || m.subject_id, m.expires_at
        FROM memberships m WHERE m.expires_at IS NOT NULL AND m.expires_at <= ${now} ${inOrg('m')}
      UNION ALL
      SELECT 'membership', 2, e.org_id, e.group_id, 'group:' || e.member_id, e.expires_at
        FROM group_members e WHERE e.expires_at IS NOT NULL AND e.expires_at <= ${now} ${inOrg('e')}
    ) due ORDER BY expires_at, rank, org_id, a, b LIMIT ${limit}`;
};

/**
 * Removes what has expired by `now()`, at most `limit` items per pass, until none is due; returns
 * how many it removed.
 */
export async function expireDue(db: Sql, writes: ExpiryWrites, now: () => number, opts: { limit?: number; org?: string } = {}): Promise<number> {
  const limit = opts.limit ?? 500;
  let removed = 0;
  for (;;) {
    const due = await db.all<DueRow>(dueItems(now(), limit, opts.org));
    let changed = 0;
    for (const d of due) {
      const r = d.kind === 'assignment' ? await writes.expireAssignment(d.org_id, d.a) : await writes.expireMembership(d.org_id, d.a, d.b!);
      if (r.changed) changed++;
    }
    removed += changed;
    // Nothing left, or what is left is not ours to remove (someone else's pass got there first).
    if (due.length < limit || changed === 0) return removed;
  }
}

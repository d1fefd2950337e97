/** The change log as JSON lines, oldest first: the audit trail an auditor takes away. */
import type { Sql } from '../storage/database.ts';
import { toReceipt } from './receipts.ts';

/** Yields every change decided at or after `since` (all organizations unless `org`), in pages. */
export async function* exportChanges(db: Sql, opts: { org?: string; since: number; now: number; page?: number }) {
  const page = opts.page ?? 1000;
  let org = '';
  let revision = -1;
  for (;;) {
    const rows = await db.all<Parameters<typeof toReceipt>[0] & { org_id: string }>(
      `SELECT c.*, j.state AS job_state FROM changes c LEFT JOIN jobs j ON j.id = c.job_id
        WHERE ($1 = '' OR c.org_id = $1) AND c.decided_at >= $2 AND (c.org_id > $3 OR (c.org_id = $3 AND c.revision > $4))
        ORDER BY c.org_id, c.revision LIMIT $5`,
      [opts.org ?? '', opts.since, org, revision, page],
    );
    for (const r of rows) yield { org: r.org_id, ...toReceipt(r, opts.now) };
    if (rows.length < page) return;
    org = rows[rows.length - 1]!.org_id;
    revision = Number(rows[rows.length - 1]!.revision);
  }
}

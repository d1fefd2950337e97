/**
 * Waiting for a lock, observed rather than timed: PostgreSQL's pg_stat_activity shows a statement
 * of the same database waiting for one.
 */
import type { Database } from '../../src/storage/database.ts';

/** Resolves once some statement of `db`'s database waits for a lock (`event`: of that kind only, e.g. 'advisory'). */
export async function someoneWaits(db: Database, event?: string): Promise<void> {
  for (let i = 0; ; i++) {
    const row = await db.get<{ n: number }>(
      `SELECT COUNT(*) AS n FROM pg_stat_activity
        WHERE datname = current_database() AND state = 'active' AND wait_event_type = 'Lock' AND ($1::text IS NULL OR wait_event = $1)`,
      [event ?? null],
    );
    if (Number(row?.n) > 0) return;
    if (i > 2000) throw new Error(`no statement waited for ${event ? `an ${event} lock` : 'a lock'}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

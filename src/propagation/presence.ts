/**
 * Worker presence: a running worker's row in `worker_presence` (migrations/012), refreshed every
 * `PRESENCE_INTERVAL_MS` and deleted when it stops, so that /readyz can tell "workers are
 * consuming the queue" from "jobs wait and nobody takes them".
 */
import type { Sql } from '../storage/database.ts';

/** How often a worker refreshes its row. */
export const PRESENCE_INTERVAL_MS = 5000;
/** A row not refreshed for this long is a worker that is gone (killed, hung, partitioned). */
export const PRESENCE_STALE_MS = 3 * PRESENCE_INTERVAL_MS;

export async function announce(db: Sql, owner: string, now: number): Promise<void> {
  await db.run(
    `INSERT INTO worker_presence (owner, started_at, seen_at) VALUES ($1, $2, $2)
     ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at`,
    [owner, now],
  );
}

export async function withdraw(db: Sql, owner: string): Promise<void> {
  await db.run('DELETE FROM worker_presence WHERE owner = $1', [owner]);
}

/** Workers seen within `staleMs` of `now`. */
export async function liveWorkers(db: Sql, now: number, staleMs = PRESENCE_STALE_MS): Promise<number> {
  const row = await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM worker_presence WHERE seen_at > $1', [now - staleMs]);
  return Number(row?.n ?? 0);
}

/**
 * The write locks (docs/adr/0017-subject-locks.md). On PostgreSQL: transaction-scoped advisory
 * locks, taken by one statement of their own before anything the transaction reads to decide its
 * writes (under READ COMMITTED a statement's snapshot is taken before it waits; the next statement's
 * is taken after). `subjects` absent: the organization's lock, exclusive — every other write and
 * batch of the organization waits. `subjects` given: the organization's lock shared, then each
 * subject's exclusive in one global order (migrations/018_write_locks.postgres.sql), so work on
 * different subjects proceeds in parallel and nothing organization-wide runs beside it. Held to
 * commit. SQLite: nothing to take — its write transactions are already exclusive.
 */
import type { Sql } from './database.ts';

export async function lockForWrite(tx: Sql, org: string, subjects?: readonly string[]): Promise<void> {
  if (tx.dialect !== 'postgres') return;
  await tx.get('SELECT lockstep_lock($1, $2) AS n', [org, subjects === undefined ? null : [...subjects]]);
}

/** One lock set covering several (a group commit's writes): organization-wide if any is, else the union. */
export function unionOfLocks(sets: readonly (readonly string[] | undefined)[]): readonly string[] | undefined {
  if (sets.some((s) => s === undefined)) return undefined;
  return [...new Set(sets.flatMap((s) => s!))];
}

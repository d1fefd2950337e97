/**
 * The write locks (docs/adr/0017-subject-locks.md). On PostgreSQL: transaction-scoped advisory
 * locks, taken before anything the transaction reads to decide its writes (under READ COMMITTED a
 * statement's snapshot is taken before it waits; the next statement's is taken after). `subjects`
 * absent: the organization's lock, exclusive — every other write and batch of the organization
 * waits. `subjects` given: the organization's lock shared, then each subject's exclusive in one
 * global order (migrations/018_write_locks.postgres.sql), so work on different subjects proceeds in
 * parallel and nothing organization-wide runs beside it. Held to commit. SQLite: nothing to take —
 * its write transactions are already exclusive.
 */
import { opensTransaction, type Sql } from './database.ts';

export async function lockForWrite(tx: Sql, org: string, subjects?: readonly string[]): Promise<void> {
  if (tx.dialect !== 'postgres') return;
  await tx.get('SELECT lockstep_lock($1, $2) AS n', [org, subjects === undefined ? null : [...subjects]]);
}

/** A write's first statement: BEGIN goes with it (src/storage/database.ts `opensTransaction`). */
const LOCK_AND_READ = opensTransaction('SELECT revision, policy FROM lockstep_lock_frame($1, $2)');

/** The organization's revision and stored propagation policy (undefined: no organization row). */
export type OrganizationFrame = { revision: number; policy: string | null } | undefined;

/**
 * `lockForWrite`, then the organization's revision and propagation policy as they are once the locks
 * are held — one round trip on PostgreSQL (migrations/023_lock_and_frame.postgres.sql): the
 * function's read is a statement of its own inside it, with a snapshot taken after the wait, so a
 * policy change that committed while this transaction waited is the one it reads
 * (test/contract/policy-after-lock.test.ts). SQLite: no lock, the read alone.
 */
export async function lockAndReadOrganization(tx: Sql, org: string, subjects?: readonly string[]): Promise<OrganizationFrame> {
  if (tx.dialect !== 'postgres') return readOrganization(tx, org);
  return tx.get<{ revision: number; policy: string | null }>(LOCK_AND_READ, [
    org,
    subjects === undefined ? null : [...subjects],
  ]);
}

/** The organization's revision and propagation policy, read by a statement of its own (after the locks). */
export function readOrganization(tx: Sql, org: string): Promise<OrganizationFrame> {
  return tx.get<{ revision: number; policy: string | null }>(
    'SELECT o.revision, p.policy FROM organizations o LEFT JOIN propagation_policies p ON p.org_id = o.id WHERE o.id = $1',
    [org],
  );
}

/** One lock set covering several (a group commit's writes): organization-wide if any is, else the union. */
export function unionOfLocks(sets: readonly (readonly string[] | undefined)[]): readonly string[] | undefined {
  if (sets.some((s) => s === undefined)) return undefined;
  return [...new Set(sets.flatMap((s) => s!))];
}

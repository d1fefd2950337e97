/**
 * Storage errors never cross the seam raw: a driver error becomes a LockstepError with the driver's
 * error as `cause` (logged, never returned to clients).
 */
import { LockstepError } from '../domain/errors.ts';

interface DriverError {
  code?: string;
  message?: string;
}

/** PostgreSQL SQLSTATEs and SQLite codes that mean "try the transaction again". */
const TRANSIENT = new Set(['40001', '40P01', '55P03', '57P01', 'SQLITE_BUSY', 'SQLITE_LOCKED', 'ECONNRESET', 'ECONNREFUSED']);

/**
 * Whether `e` means "try the transaction again": a driver error with a transient code, raw or as
 * another error's `cause`, or the seam's wrapping of one (`UNAVAILABLE`, `meta.transient`) — which
 * is what a statement throws to the code that runs the transaction.
 */
export function isTransient(e: unknown): boolean {
  if (e instanceof LockstepError) return e.meta.transient === true;
  const code = (e as DriverError)?.code ?? (e as { cause?: DriverError })?.cause?.code;
  return code !== undefined && TRANSIENT.has(code);
}

export function wrapStorageError(e: unknown): never {
  if (e instanceof LockstepError) throw e;
  const code = (e as DriverError)?.code;
  if (code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE') {
    throw new LockstepError('CONFLICT', 'a concurrent write created the same object; retry', { cause: e });
  }
  if (isTransient(e)) throw new LockstepError('UNAVAILABLE', 'the database is busy; retry', { cause: e, meta: { transient: true } });
  throw new LockstepError('INTERNAL', 'storage error', { cause: e });
}

/**
 * Typed errors of the domain and the write side. They carry a stable `code` and the offending
 * `field`; they know nothing of HTTP. The API maps codes to statuses in one table (api/problem.ts).
 */
export type ErrorCode =
  | 'VALIDATION'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'CYCLE'
  | 'DEPTH_EXCEEDED'
  | 'GROUP_CYCLE'
  | 'GROUP_DEPTH_EXCEEDED'
  | 'UNAVAILABLE'
  | 'INTERNAL';

export class LockstepError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;
  readonly meta: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, opts: { field?: string; meta?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'LockstepError';
    this.code = code;
    this.field = opts.field;
    this.meta = Object.freeze({ ...(opts.meta ?? {}) });
  }
}

export const validation = (field: string, message: string) => new LockstepError('VALIDATION', message, { field });
export const notFound = (field: string, what: string, id: string) =>
  // An organization is not inside one: "organization 'x' does not exist", not "... in this organization".
  new LockstepError('NOT_FOUND', `${what} '${id}' does not exist${what === 'organization' ? '' : ' in this organization'}`, { field, meta: { id } });
export const conflict = (field: string, message: string) => new LockstepError('CONFLICT', message, { field });

export const isLockstepError = (e: unknown): e is LockstepError => e instanceof LockstepError;

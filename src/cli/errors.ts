/**
 * The CLI's edge: every error becomes `CODE: detail (field)` on stderr and a distinct exit status
 * per class, so scripts can branch on it. docs/cli.md lists the table; test/cli keeps them in step.
 */
import { CommanderError } from 'commander';
import { ConfigError } from '../config/config.ts';
import { LockstepError, type ErrorCode } from '../domain/errors.ts';
import { isTransient } from '../storage/errors.ts';
import { LockstepError as HttpError } from '../../packages/client/src/index.ts';

export const EXIT = {
  /** --url: the server refused the key (401) or its scope (403). */
  AUTH: 12,
  /** --url: too many failed authentications from this address (429, Retry-After). */
  RATE_LIMITED: 13,
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  DENIED: 3,
  VALIDATION: 4,
  NOT_FOUND: 5,
  CONFLICT: 6,
  CYCLE: 7,
  DEPTH_EXCEEDED: 8,
  UNAVAILABLE: 9,
  DRIFT: 10,
  ASSERTIONS_FAILED: 11,
} as const;

const BY_CODE: Record<ErrorCode, number> = {
  VALIDATION: EXIT.VALIDATION,
  NOT_FOUND: EXIT.NOT_FOUND,
  CONFLICT: EXIT.CONFLICT,
  CYCLE: EXIT.CYCLE,
  DEPTH_EXCEEDED: EXIT.DEPTH_EXCEEDED,
  // the same classes as the resource hierarchy's: a cycle, a chain too deep
  GROUP_CYCLE: EXIT.CYCLE,
  GROUP_DEPTH_EXCEEDED: EXIT.DEPTH_EXCEEDED,
  UNAVAILABLE: EXIT.UNAVAILABLE,
  INTERNAL: EXIT.INTERNAL,
};

/** A server's problem codes (--url) that are not the engine's own. */
const BY_HTTP_CODE: Record<string, number> = {
  UNAUTHENTICATED: EXIT.AUTH,
  FORBIDDEN: EXIT.AUTH,
  RATE_LIMITED: EXIT.RATE_LIMITED,
  ROUTE_NOT_FOUND: EXIT.NOT_FOUND,
  PAYLOAD_TOO_LARGE: EXIT.VALIDATION,
  URI_TOO_LONG: EXIT.VALIDATION,
  UNSUPPORTED_MEDIA_TYPE: EXIT.VALIDATION,
};

/** --url: the server did not answer at all (refused, unresolvable, reset). */
export class Unreachable extends Error {
  override readonly name = 'Unreachable';
}

/** A problem with how the command was invoked (bad flag value, missing argument). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

interface Problem {
  path: string;
  line?: number;
  message: string;
}

const where = (field: string | undefined, line: unknown) =>
  field === undefined ? '' : typeof line === 'number' ? ` (${field}, line ${line})` : ` (${field})`;

/**
 * Writes the error to `out` and returns the exit status. The operator is the reader here, so the
 * cause chain is printed too (an HTTP client never sees it; the CLI's user owns the database).
 */
export function reportError(e: unknown, out: (line: string) => void): number {
  if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.OK : EXIT.USAGE; // commander already printed it
  if (e instanceof UsageError || e instanceof ConfigError) {
    out(`USAGE: ${e.message}`);
    return EXIT.USAGE;
  }
  if (e instanceof LockstepError) {
    const problems = (e.meta.problems as Problem[] | undefined) ?? [];
    if (problems.length > 1) {
      out(`${e.code}: ${e.message}`);
      for (const p of problems) out(`  ${p.path}${p.line === undefined ? '' : ` (line ${p.line})`}: ${p.message}`);
    } else {
      out(`${e.code}: ${e.message}${where(e.field, e.meta.line)}`);
    }
    printCauses(e.cause, out);
    return BY_CODE[e.code] ?? EXIT.INTERNAL;
  }
  if (e instanceof HttpError) {
    // The server's problem+json: the same lines as an engine error (a policy file's problems with
    // their lines), and the request id to quote.
    const errors = (e.problem.errors ?? []) as { path: string; message: string; line?: number }[];
    if (errors.length > 1 && errors.some((p) => p.line !== undefined)) {
      out(`${e.code}: ${e.detail}`);
      for (const p of errors) out(`  ${p.path}${p.line === undefined ? '' : ` (line ${p.line})`}: ${p.message}`);
    } else {
      // A 429 is not retried (it answers failed authentication: retrying extends the lockout), so say when to.
      const after = e.code === 'RATE_LIMITED' && e.retryAfter !== undefined ? ` (retry after ${e.retryAfter} s; check the key)` : '';
      out(`${e.code}: ${e.detail}${where(e.field, errors.find((p) => p.path === e.field)?.line)}${after}`);
      for (const p of errors) if (p.path !== e.field) out(`  ${p.path}: ${p.message}`);
    }
    if (e.requestId !== undefined) out(`  request id: ${e.requestId}`);
    return (BY_CODE as Record<string, number>)[e.code] ?? BY_HTTP_CODE[e.code] ?? EXIT.INTERNAL;
  }
  if (e instanceof Unreachable) {
    out(`UNAVAILABLE: ${e.message}`);
    return EXIT.UNAVAILABLE;
  }
  // A driver error that escaped the storage seam unwrapped: still say "retry" when it is transient.
  if (isTransient(e)) {
    out(`UNAVAILABLE: the database is unreachable or busy; retry`);
    out(`  cause: ${(e as Error).message}`);
    return EXIT.UNAVAILABLE;
  }
  out(`INTERNAL: ${e instanceof Error ? e.message : String(e)}`);
  if (e instanceof Error) printCauses(e.cause, out);
  return EXIT.INTERNAL;
}

function printCauses(cause: unknown, out: (line: string) => void) {
  for (let c = cause, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) {
    // A re-located engine error repeats its cause's message; skip the echo.
    if (c instanceof LockstepError) continue;
    out(`  cause: ${c.message}`);
  }
}

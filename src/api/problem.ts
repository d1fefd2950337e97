/**
 * The one table from error codes to HTTP statuses, and the RFC 9457 problem+json bodies built from
 * it. Nothing else in Lockstep knows an error status. `docs/errors.md` lists the same table; a test
 * keeps the two in step.
 */
import { isLockstepError, type ErrorCode } from '../domain/errors.ts';

/** Errors that exist only at the HTTP edge (authentication, transport). */
export type ApiErrorCode = 'UNAUTHENTICATED' | 'FORBIDDEN' | 'PAYLOAD_TOO_LARGE' | 'URI_TOO_LONG' | 'UNSUPPORTED_MEDIA_TYPE' | 'ROUTE_NOT_FOUND' | 'RATE_LIMITED';
export type ProblemCode = ErrorCode | ApiErrorCode;

export const PROBLEMS: Readonly<Record<ProblemCode, { status: number; title: string }>> = Object.freeze({
  VALIDATION: { status: 400, title: 'Invalid request' },
  UNAUTHENTICATED: { status: 401, title: 'Missing or invalid API key' },
  FORBIDDEN: { status: 403, title: 'The API key may not do this' },
  NOT_FOUND: { status: 404, title: 'No such object' },
  ROUTE_NOT_FOUND: { status: 404, title: 'No such route' },
  CONFLICT: { status: 409, title: 'Conflicts with the current state' },
  GROUP_CYCLE: { status: 409, title: 'The nested groups would have a cycle' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'Request body too large' },
  URI_TOO_LONG: { status: 414, title: 'A path parameter is too long' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported content type' },
  CYCLE: { status: 422, title: 'The resource hierarchy would have a cycle' },
  RATE_LIMITED: { status: 429, title: 'Too many failed authentications' },
  DEPTH_EXCEEDED: { status: 422, title: 'The resource hierarchy would be too deep' },
  GROUP_DEPTH_EXCEEDED: { status: 422, title: 'The nested groups would be too deep' },
  INTERNAL: { status: 500, title: 'Internal error' },
  UNAVAILABLE: { status: 503, title: 'Temporarily unavailable' },
});

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

/** An error raised by the HTTP layer itself. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly field?: string,
    /** Sent as Retry-After (RATE_LIMITED). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export interface FieldError {
  path: string;
  message: string;
  /** A policy file's line (POST /v1/apply). */
  line?: number;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ProblemCode;
  detail: string;
  requestId: string;
  field?: string;
  errors?: FieldError[];
}

export const problemType = (code: ProblemCode) => `urn:lockstep:error:${code.toLowerCase().replace(/_/g, '-')}`;

export function problem(
  code: ProblemCode,
  detail: string,
  requestId: string,
  extra: { field?: string; errors?: FieldError[]; expose?: boolean } = {},
): Problem {
  const { status, title } = PROBLEMS[code];
  // A 5xx names its code and the request id, nothing more: the cause goes to the log only — unless
  // the error was written for the caller (`meta.expose`, e.g. an at_least_as_fresh timeout).
  if (status >= 500 && extra.expose !== true) return { type: problemType(code), title, status, code, detail: code, requestId };
  const p: Problem = { type: problemType(code), title, status, code, detail, requestId };
  if (extra.field !== undefined) p.field = extra.field;
  if (extra.errors !== undefined) p.errors = extra.errors;
  return p;
}

/** The subset of Ajv's error object that Fastify hands us on a schema validation failure. */
interface SchemaError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/** `/permissions/0` → `permissions[0]`, `/consistency/mode` → `consistency.mode` (the engine's field syntax). */
export function fieldPath(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (child !== undefined) parts.push(child);
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

export function schemaErrors(errors: readonly SchemaError[]): FieldError[] {
  return errors.map((e) => {
    if (e.keyword === 'additionalProperties') {
      const path = fieldPath(e.instancePath, String(e.params.additionalProperty));
      return { path, message: `unknown field '${path}'` };
    }
    if (e.keyword === 'required') {
      const path = fieldPath(e.instancePath, String(e.params.missingProperty));
      return { path, message: `'${path}' is required` };
    }
    const path = fieldPath(e.instancePath) || 'body';
    return { path, message: `${path} ${e.message ?? 'is invalid'}` };
  });
}

/**
 * A policy file's problems (each with its line), or the one located engine error of an apply, as
 * `errors`; undefined for every other error.
 */
function fileErrors(field: string | undefined, message: string, meta: Record<string, unknown>): { errors: FieldError[] } | undefined {
  const line = (v: unknown) => (typeof v === 'number' ? { line: v } : {});
  if (Array.isArray(meta.problems)) {
    return { errors: (meta.problems as { path: string; line?: unknown; message: string }[]).map((p) => ({ path: p.path, message: p.message, ...line(p.line) })) };
  }
  if (typeof meta.file === 'string' && field !== undefined) return { errors: [{ path: field, message, ...line(meta.line) }] };
  return undefined;
}

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
  message?: string;
  validation?: SchemaError[];
  validationContext?: string;
}

/** Maps anything thrown while serving a request to a problem. */
export function toProblem(err: unknown, requestId: string): Problem {
  if (isLockstepError(err)) {
    return problem(err.code, err.message, requestId, {
      ...(err.field === undefined ? {} : { field: err.field }),
      ...(fileErrors(err.field, err.message, err.meta) ?? {}),
      expose: err.meta.expose === true,
    });
  }
  if (err instanceof ApiError) return problem(err.code, err.message, requestId, err.field === undefined ? {} : { field: err.field });
  const e = (err ?? {}) as FastifyLikeError;
  if (Array.isArray(e.validation)) {
    const errors = schemaErrors(e.validation);
    const where = e.validationContext === 'querystring' ? 'query parameter' : e.validationContext === 'params' ? 'path parameter' : 'field';
    const first = errors[0];
    return problem('VALIDATION', first ? `invalid ${where}: ${first.message}` : 'invalid request', requestId, {
      ...(first ? { field: first.path } : {}),
      errors,
    });
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem('PAYLOAD_TOO_LARGE', 'the request body exceeds the size limit', requestId, { field: 'body' });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem('UNSUPPORTED_MEDIA_TYPE', 'send request bodies as application/json', requestId, { field: 'content-type' });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return problem('VALIDATION', 'the body is not valid JSON', requestId, { field: 'body', errors: [{ path: 'body', message: 'not valid JSON' }] });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problem('VALIDATION', 'the body is empty but its content type is application/json', requestId, {
        field: 'body',
        errors: [{ path: 'body', message: 'empty JSON body' }],
      });
  }
  // Other client errors Fastify raises itself (bad content length, malformed URL…): their messages
  // describe the request, not our internals.
  if (typeof e.code === 'string' && e.code.startsWith('FST_') && e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
    return e.statusCode === 413
      ? problem('PAYLOAD_TOO_LARGE', 'the request body exceeds the size limit', requestId, { field: 'body' })
      : problem('VALIDATION', e.message ?? 'bad request', requestId);
  }
  return problem('INTERNAL', 'internal error', requestId);
}

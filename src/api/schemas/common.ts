/**
 * Building blocks of the request and response schemas. The identifier patterns repeat the syntax of
 * src/domain/model.ts so that the OpenAPI document states it and bad input is refused before it
 * reaches the engine (which checks it again); test/e2e/schemas.test.ts holds the two together.
 */
import { DEFAULT_PAGE, encodeCursor, type CursorKey } from '../../domain/page.ts';
import { RFC3339_PATTERN } from '../../domain/time.ts';

export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.@+=~-]{0,127}$';
export const RESOURCE_TYPE_PATTERN = '^[a-z][a-z0-9_]{0,63}$';
export const ROLE_PATTERN = '^[a-z][a-z0-9_-]{0,63}$';
export const PERMISSION_PATTERN = '^[a-z][a-z0-9_]{0,63}(\\.[a-z][a-z0-9_]{0,63}){0,4}$';
export const RESOURCE_REF_PATTERN = '^[a-z][a-z0-9_]{0,63}:[A-Za-z0-9][A-Za-z0-9_.@+=~-]{0,127}$';
export const PRINCIPAL_PATTERN = '^(subject|group):[A-Za-z0-9][A-Za-z0-9_.@+=~-]{0,127}$';
/** A group's member: a subject id, `subject:ID`, or `group:ID` for a nested group. */
export const MEMBER_PATTERN = '^((subject|group):)?[A-Za-z0-9][A-Za-z0-9_.@+=~-]{0,127}$';

/** An id; `example` is what /docs shows (swagger-ui would otherwise invent one from the pattern). */
export const id = (description: string, example: string) => ({ type: 'string', pattern: ID_PATTERN, description, examples: [example] }) as const;
export const roleSlug = { type: 'string', pattern: ROLE_PATTERN, description: 'role slug, e.g. editor', examples: ['editor'] } as const;
export const permissionSlug = { type: 'string', pattern: PERMISSION_PATTERN, description: 'permission slug, e.g. project.delete', examples: ['project.read'] } as const;
export const resourceRef = { type: 'string', pattern: RESOURCE_REF_PATTERN, description: "resource reference 'type:id'", examples: ['project:apollo'] } as const;
export const principalRef = { type: 'string', pattern: PRINCIPAL_PATTERN, description: "'subject:ID' or 'group:ID'", examples: ['group:eng'] } as const;
// No NUL: PostgreSQL text cannot hold it (SQLite can), so both engines refuse it here alike. No lone
// surrogate (a JSON "\\ud800"): stored, it becomes U+FFFD, so a repeat of the same name would compare
// unequal and commit again. Ajv matches patterns with the `u` flag, so a pair (one code point) passes.
export const NAME_PATTERN = '^[^\\u0000\\ud800-\\udfff]*$';
export const displayName = {
  type: ['string', 'null'],
  maxLength: 256,
  pattern: NAME_PATTERN,
  description: 'display name (no NUL characters, no unpaired UTF-16 surrogates)',
  examples: ['Engineering'],
} as const;
/** An RFC 3339 time (what the domain's parseRfc3339 accepts; it also checks the calendar). */
export const rfc3339 = (description: string, example = '2026-11-29T10:50:00Z') =>
  ({ type: 'string', maxLength: 40, pattern: RFC3339_PATTERN, description, examples: [example] }) as const;

const params = (props: Record<string, unknown>) =>
  ({ type: 'object', properties: props, required: Object.keys(props), additionalProperties: false }) as const;

export const orgId = id('organization id', 'acme');
export const orgParams = params({ org: orgId });
export const slugParams = (slug: object) => params({ org: orgId, slug });
export const resourceParams = params({
  org: orgId,
  type: { type: 'string', pattern: RESOURCE_TYPE_PATTERN, description: 'resource type', examples: ['project'] },
  id: id('resource id', 'apollo'),
});
/** Example ids of each kind of object, as /docs shows them. */
export const EXAMPLE_IDS = { subject: 'alice', group: 'eng', assignment: 'asg_9fQ2xLm4Tz7RkP1c' } as const;
export const idParams = (what: keyof typeof EXAMPLE_IDS) => params({ org: orgId, id: id(`${what} id`, EXAMPLE_IDS[what]) });
export const memberParams = params({
  org: orgId,
  id: id('group id', 'eng'),
  subject: {
    type: 'string',
    pattern: MEMBER_PATTERN,
    description: "the member: a subject id (or 'subject:ID'), or 'group:ID' for a nested group",
    examples: ['alice'],
  },
});
export const expiresAt = {
  type: ['string', 'null'],
  maxLength: 40,
  pattern: RFC3339_PATTERN,
  description: 'RFC 3339 time from which this no longer grants anything (must be in the future); null or absent: no expiry',
  examples: ['2026-12-31T17:00:00Z'],
} as const;
export const revisionParams = params({
  org: orgId,
  // A string pattern rather than an integer: body coercion is off (a JSON "1" is not 1), and the
  // same validator serves path parameters.
  revision: { type: 'string', pattern: '^[1-9][0-9]{0,14}$', description: 'revision number (≥ 1)', examples: ['11'] },
});

/**
 * Query parameters of a paged listing (keyset pagination, src/domain/page.ts); `lastKey` is the sort
 * key of an entry of that listing, so the cursor /docs shows is one the listing takes.
 */
export const pageQuery = (lastKey: CursorKey) =>
  ({
    limit: { type: 'string', pattern: '^([1-9][0-9]{0,2}|1000)$', description: 'entries per page, 1–1000 (default 100)', examples: ['100'] },
    cursor: {
      type: 'string',
      minLength: 1,
      maxLength: 1024,
      pattern: '^[A-Za-z0-9_-]+$',
      description: 'the `next` of the previous page, unchanged',
      examples: [encodeCursor(lastKey)],
    },
  }) as const;
export const nextCursor = { type: ['string', 'null'], description: 'the cursor of the following page (pass it as ?cursor=); null on the last page' } as const;
/** The page parameters as the engine takes them: the HTTP default is DEFAULT_PAGE entries. */
export const pageOfQuery = (q: { limit?: string; cursor?: string }) => ({
  limit: q.limit === undefined ? DEFAULT_PAGE : Number(q.limit),
  ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
});

export const propagation = {
  type: 'object',
  required: ['mode', 'status'],
  properties: {
    mode: { type: 'string', enum: ['sync', 'async'] },
    status: { type: 'string', enum: ['effective', 'pending'] },
    effectiveAt: { type: 'string', format: 'date-time' },
    reason: { type: 'string', enum: ['inline_budget'], description: 'why a change the policy would apply inline was handed to a job' },
    targets: {
      type: 'array',
      description: 'with ?confirm=MS: each active critical target, and whether it acknowledged the change within the budget',
      items: {
        type: 'object',
        properties: { id: { type: 'string' }, name: { type: 'string' }, confirmed: { type: 'boolean' }, ackedAt: { type: ['string', 'null'], format: 'date-time' } },
      },
    },
  },
} as const;

export const writeResult = {
  type: 'object',
  required: ['revision', 'changed', 'propagation'],
  properties: {
    revision: { type: 'integer', description: 'the revision this write committed (or the current one if it changed nothing)' },
    changed: { type: 'boolean' },
    propagation,
  },
} as const;

export const via = {
  type: 'object',
  required: ['assignment', 'group', 'role', 'resource'],
  properties: {
    assignment: { type: 'string' },
    group: { type: ['string', 'null'] },
    role: { type: 'string' },
    resource: { type: 'string' },
    chain: { type: 'array', items: { type: 'string' }, description: "group rows: the groups from the subject's own up to `group`" },
  },
} as const;

export const problemSchema = {
  type: 'object',
  description: 'RFC 9457 problem details; see docs/errors.md for the codes',
  required: ['type', 'title', 'status', 'code', 'detail', 'requestId'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string' },
    detail: { type: 'string' },
    requestId: { type: 'string' },
    field: { type: 'string', description: 'the offending field, when known' },
    errors: {
      type: 'array',
      items: {
        type: 'object',
        required: ['path', 'message'],
        properties: { path: { type: 'string' }, message: { type: 'string' }, line: { type: 'integer', description: "POST /v1/apply: the policy file's line" } },
      },
    },
  },
} as const;

const problemResponse = (description: string) => ({ description, content: { 'application/problem+json': { schema: problemSchema } } });

/** The error responses every authenticated route may give (documentation only; bodies are pre-serialized). */
export const errorResponses = {
  400: problemResponse('invalid input (VALIDATION)'),
  401: problemResponse('missing or invalid API key (UNAUTHENTICATED)'),
  403: problemResponse('the key may not do this, or not in this organization (FORBIDDEN)'),
  404: problemResponse('an object named by the request does not exist (NOT_FOUND)'),
  429: problemResponse('too many failed authentications from this address; see Retry-After (RATE_LIMITED)'),
} as const;
export const writeErrorResponses = {
  ...errorResponses,
  409: problemResponse('conflicts with the current state (CONFLICT)'),
  413: problemResponse('body larger than the limit (PAYLOAD_TOO_LARGE)'),
  422: problemResponse('the resource hierarchy would have a cycle or be too deep (CYCLE, DEPTH_EXCEEDED)'),
} as const;

export const deleteHeaders = {
  'Lockstep-Revision': { type: 'integer', description: 'the revision the delete committed (or the current one)' },
  'Lockstep-Propagation': { type: 'string', description: "'effective' or 'pending'" },
} as const;

export const bearer = [{ bearer: [] }];

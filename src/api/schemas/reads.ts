/** Schemas of the read routes: check, listings and receipts. */
import { RESOURCE_TYPE_PATTERN, bearer, errorResponses, problemSchema, id, idParams, nextCursor, pageQuery, rfc3339, orgParams, permissionSlug, resourceParams, resourceRef, revisionParams, via } from './common.ts';

export const check = {
  tags: ['checks'],
  summary: 'Can this subject do this permission on this resource?',
  security: bearer,
  params: orgParams,
  body: {
    type: 'object',
    required: ['subject', 'permission', 'resource'],
    additionalProperties: false,
    properties: {
      subject: id('subject id', 'alice'),
      permission: permissionSlug,
      resource: resourceRef,
      consistency: {
        type: 'object',
        required: ['mode'],
        additionalProperties: false,
        properties: {
          mode: { type: 'string', enum: ['minimize_latency', 'at_least_as_fresh', 'fully_consistent'] },
          revision: { type: 'integer', minimum: 0, description: 'with at_least_as_fresh: the revision to wait for' },
        },
      },
    },
    examples: [{ subject: 'alice', permission: 'project.read', resource: 'project:apollo', consistency: { mode: 'at_least_as_fresh', revision: 11 } }],
  },
  response: {
    200: {
      type: 'object',
      required: ['allowed', 'revision', 'evaluatedAgainst', 'consistency', 'verified'],
      properties: {
        allowed: { type: 'boolean' },
        revision: { type: 'integer' },
        evaluatedAgainst: { type: 'string', enum: ['read_model', 'source'] },
        consistency: { type: 'string' },
        verified: { type: 'boolean', description: 'whether read-model candidates were verified against the source tables' },
        via,
      },
    },
    ...errorResponses,
    503: {
      description:
        'at_least_as_fresh: the read model had not applied the revision for this subject within LOCKSTEP_FRESHNESS_TIMEOUT_MS (UNAVAILABLE, field consistency.revision; Retry-After: 1). Retry, or ask for fully_consistent; also answered when the database is busy',
      headers: { 'Retry-After': { type: 'integer', description: 'seconds' } },
      content: { 'application/problem+json': { schema: problemSchema } },
    },
  },
};

const consistency = check.body.properties.consistency;
const checkResult = check.response[200];

export const checkBatch = {
  tags: ['checks'],
  summary: 'Many checks at one revision (1–100; the batch consistency applies to every item)',
  description:
    'Every result is evaluated in one snapshot of the database, so all carry the same `revision`. A bad item answers 400 (or 404 for an unknown permission) with `field` naming it, e.g. `checks[3].resource`; nothing is partially answered.',
  security: bearer,
  params: orgParams,
  body: {
    type: 'object',
    required: ['checks'],
    additionalProperties: false,
    properties: {
      checks: {
        type: 'array',
        minItems: 1,
        maxItems: 100,
        items: {
          type: 'object',
          required: ['subject', 'permission', 'resource'],
          additionalProperties: false,
          properties: { subject: id('subject id', 'alice'), permission: permissionSlug, resource: resourceRef },
        },
      },
      consistency,
    },
    examples: [
      {
        checks: [
          { subject: 'alice', permission: 'project.read', resource: 'project:apollo' },
          { subject: 'bob', permission: 'project.delete', resource: 'project:apollo' },
        ],
        consistency: { mode: 'fully_consistent' },
      },
    ],
  },
  response: {
    200: {
      type: 'object',
      required: ['revision', 'results'],
      properties: {
        revision: { type: 'integer', description: 'the one revision every result was evaluated at' },
        results: { type: 'array', items: checkResult, description: 'in the order of `checks`' },
      },
    },
    ...errorResponses,
    503: check.response[503],
  },
};

export const lookupResources = {
  tags: ['checks'],
  summary: 'Which resources a subject can do a permission on, through the hierarchy and nested groups (LookupResources), a page at a time (ordered by reference)',
  description:
    'A resource is listed when the subject holds the permission on it or on any ancestor, through a direct assignment or one to a group it reaches by live memberships and nested edges. Read from the source tables: exact at `revision`.',
  security: bearer,
  params: idParams('subject'),
  querystring: {
    type: 'object',
    required: ['permission'],
    additionalProperties: false,
    properties: {
      permission: permissionSlug,
      type: { type: 'string', pattern: RESOURCE_TYPE_PATTERN, description: 'only resources of this type', examples: ['project'] },
      ...pageQuery(['project:apollo']),
    },
  },
  response: {
    200: {
      type: 'object',
      required: ['revision', 'resources', 'next'],
      properties: {
        revision: { type: 'integer' },
        next: nextCursor,
        resources: { type: 'array', items: { type: 'string' }, examples: [['project:apollo', 'project:hermes']] },
      },
    },
    ...errorResponses,
  },
};

export const subjectEffective = {
  tags: ['checks'],
  summary: 'Everything a subject can do, a page at a time (ordered by resource, permission, assignment)',
  security: bearer,
  params: idParams('subject'),
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      at: rfc3339('RFC 3339 time: what the subject could do then (replayed from the change log)'),
      permission: { ...permissionSlug, description: 'only this permission' },
      resource: { ...resourceRef, description: "only entries on this resource 'type:id' (the resource the role is assigned on; descendants inherit it)" },
      ...pageQuery(['project:apollo', 'project.read', 'asg_9fQ2xLm4Tz7RkP1c']),
    },
  },
  response: {
    200: {
      type: 'object',
      required: ['revision', 'permissions', 'next'],
      properties: {
        at: { type: 'string' },
        revision: { type: 'integer' },
        next: nextCursor,
        permissions: {
          type: 'array',
          items: {
            type: 'object',
            required: ['permission', 'resource', 'role', 'risk', 'via'],
            properties: { permission: { type: 'string' }, resource: { type: 'string' }, role: { type: 'string' }, risk: { type: 'string' }, via },
          },
        },
      },
    },
    ...errorResponses,
  },
};

export const resourceAccess = {
  tags: ['checks'],
  summary: 'Who can do a permission on a resource, a page at a time (ordered by subject)',
  security: bearer,
  params: resourceParams,
  querystring: {
    type: 'object',
    required: ['permission'],
    additionalProperties: false,
    properties: {
      permission: permissionSlug,
      at: rfc3339('RFC 3339 time: who could, then (replayed from the change log)'),
      via: { type: 'string', enum: ['direct', 'group'], description: 'only direct assignments, or only through groups', examples: ['group'] },
      ...pageQuery(['alice', 1, 'asg_9fQ2xLm4Tz7RkP1c']),
    },
  },
  response: {
    200: {
      type: 'object',
      required: ['revision', 'subjects', 'next'],
      properties: {
        revision: { type: 'integer' },
        next: nextCursor,
        at: { type: 'string' },
        subjects: { type: 'array', items: { type: 'object', required: ['subject', 'via'], properties: { subject: { type: 'string' }, via } } },
      },
    },
    ...errorResponses,
  },
};


export const receipt = {
  type: 'object',
  required: ['revision', 'kind', 'direction', 'tier', 'mode', 'status', 'decidedAt', 'effectiveAt', 'lagMs', 'sloMs', 'sloMet', 'rowsAdded', 'rowsRemoved', 'job'],
  properties: {
    revision: { type: 'integer' },
    kind: { type: 'string' },
    direction: { type: 'string', enum: ['grant', 'revoke', 'both', 'none'] },
    tier: { type: ['string', 'null'] },
    mode: { type: 'string', enum: ['sync', 'async'] },
    status: { type: 'string', enum: ['effective', 'pending'] },
    actor: { type: ['string', 'null'], description: 'the API key that made the write (key:ID)' },
    requestId: { type: ['string', 'null'] },
    body: { description: 'the write as it was requested' },
    decidedAt: { type: 'string', format: 'date-time' },
    effectiveAt: { type: ['string', 'null'], format: 'date-time', description: 'when the read model reflected it (= convergedAt)' },
    enforcedAt: { type: ['string', 'null'], format: 'date-time', description: 'when checks began answering as the change says: the commit, for a revocation of a verified tier' },
    convergedAt: { type: ['string', 'null'], format: 'date-time', description: 'when the read model was applied' },
    convergenceLagMs: { type: ['number', 'null'] },
    lagMs: { type: ['number', 'null'], description: 'enforcedAt − decidedAt (what sloMet is about)' },
    sloMs: { type: ['number', 'null'] },
    sloMet: { type: ['boolean', 'null'], description: 'null while pending within the SLO, or with no SLO' },
    rowsAdded: { type: 'integer' },
    rowsRemoved: { type: 'integer' },
    job: {
      type: ['object', 'null'],
      properties: { id: { type: 'string' }, scope: { type: 'string' }, state: { type: ['string', 'null'] } },
    },
    targets: {
      type: 'array',
      description: 'per target: its deliveries of this change (first delivery, replays aside)',
      items: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          name: { type: ['string', 'null'] },
          critical: { type: 'boolean' },
          events: { type: 'integer' },
          status: { type: 'string', enum: ['acked', 'pending', 'parked', 'dropped'] },
          attempts: { type: 'integer' },
          deliveredAt: { type: ['string', 'null'], format: 'date-time' },
          ackedAt: { type: ['string', 'null'], format: 'date-time' },
        },
      },
    },
    revocationWindowMs: { type: ['number', 'null'], description: 'last critical target ack − decidedAt, once every critical target acknowledged' },
  },
} as const;

export const getChange = {
  tags: ['changes'],
  summary: 'The receipt of one committed change',
  security: bearer,
  params: revisionParams,
  response: { 200: receipt, ...errorResponses },
};

export const listChanges = {
  tags: ['changes'],
  summary: 'Receipts, newest first (the change log is append-only: there is no route that edits it)',
  security: bearer,
  params: orgParams,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      direction: { type: 'string', enum: ['grant', 'revoke', 'both', 'none'], description: 'grant and revoke include both', examples: ['revoke'] },
      since: rfc3339('RFC 3339 time: changes decided at or after it', '2026-11-29T00:00:00Z'),
      until: rfc3339('RFC 3339 time: changes decided at or before it', '2026-11-30T00:00:00Z'),
      before: { type: 'string', pattern: '^[1-9][0-9]{0,14}$', description: 'cursor: the `next` of the previous page', examples: ['120'] },
      limit: { type: 'string', pattern: '^[1-9][0-9]{0,2}$|^1000$', description: 'receipts per page, 1–1000 (default 50)', examples: ['50'] },
    },
  },
  response: {
    200: { type: 'object', required: ['changes', 'next'], properties: { changes: { type: 'array', items: receipt }, next: { type: ['integer', 'null'] } } },
    ...errorResponses,
  },
};

export const slo = {
  tags: ['changes'],
  summary: 'Propagation lag against SLO per direction × tier over a window',
  security: bearer,
  params: orgParams,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: { window: { type: 'string', pattern: '^[1-9][0-9]{0,6}$', description: 'seconds (default 3600)', examples: ['3600'] } },
  },
  response: {
    200: {
      type: 'object',
      properties: {
        from: { type: 'string' },
        to: { type: 'string' },
        windowSeconds: { type: 'integer' },
        truncated: { type: 'boolean' },
        rows: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              direction: { type: 'string' },
              tier: { type: 'string' },
              count: { type: 'integer', description: 'changes in the window, pending ones included' },
              pending: { type: 'integer', description: 'changes not yet enforced' },
              p50Ms: { type: ['number', 'null'], description: 'pending changes count at their age so far' },
              p99Ms: { type: ['number', 'null'], description: 'pending changes count at their age so far' },
              maxMs: { type: ['number', 'null'] },
              lowerBound: { type: 'boolean', description: 'true when pending changes are included: the quantiles can only grow' },
              oldestPendingMs: { type: ['number', 'null'], description: 'age of the oldest pending change (null: none)' },
              sloMs: { type: ['number', 'null'] },
              breaches: { type: 'integer' },
            },
          },
        },
      },
    },
    ...errorResponses,
  },
};

export const healthz = {
  tags: ['service'],
  summary: 'Liveness and database reachability (no key needed)',
  response: {
    200: { type: 'object', required: ['status', 'database'], properties: { status: { type: 'string' }, database: { type: 'string' } } },
    503: { description: 'the database did not answer (UNAVAILABLE)', content: { 'application/problem+json': { schema: problemSchema } } },
  },
};

export const readyz = {
  tags: ['service'],
  summary: 'Readiness (no key needed): the database answers, every migration is applied, and — when LOCKSTEP_EXPECT_WORKERS is set — that many workers heartbeat',
  response: {
    200: {
      type: 'object',
      required: ['status', 'database', 'migrations', 'workers'],
      properties: {
        status: { type: 'string', enum: ['ready'] },
        database: { type: 'string' },
        migrations: { type: 'object', required: ['applied', 'expected'], properties: { applied: { type: 'integer' }, expected: { type: 'integer' } } },
        workers: {
          type: 'object',
          required: ['expected', 'live'],
          properties: { expected: { type: 'integer', description: 'LOCKSTEP_EXPECT_WORKERS (0: not checked)' }, live: { type: 'integer', description: 'workers seen in the last 15 s' } },
        },
      },
      examples: [{ status: 'ready', database: 'postgres', migrations: { applied: 8, expected: 8 }, workers: { expected: 2, live: 2 } }],
    },
    503: {
      description: 'not ready (UNAVAILABLE): `field` is database, migrations or workers, and `detail` says what is missing',
      headers: { 'Retry-After': { type: 'integer', description: 'seconds' } },
      content: { 'application/problem+json': { schema: problemSchema } },
    },
  },
};

/** Schemas of the target, watch and SSF routes (the source of their OpenAPI description). */
import { bearer, errorResponses, id, nextCursor, orgParams, pageQuery, writeErrorResponses } from './common.ts';

const targetParams = {
  type: 'object',
  required: ['org', 'id'],
  additionalProperties: false,
  properties: { org: id('organization id', 'acme'), id: { type: 'string', pattern: '^tgt_[A-Za-z0-9_-]{1,64}$', description: 'target id', examples: ['tgt_3kPq8ZsW1xLc7NvA'] } },
} as const;

const nullableTime = { type: ['string', 'null'], format: 'date-time' } as const;

export const target = {
  type: 'object',
  required: ['id', 'name', 'kind', 'delivery', 'url', 'critical', 'state', 'backlog', 'parked', 'lagMs'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    kind: { type: 'string', enum: ['webhook', 'ssf'] },
    delivery: { type: 'string', enum: ['push', 'poll'] },
    url: { type: ['string', 'null'] },
    critical: { type: 'boolean', description: 'a critical target counts in the revocation window and in ?confirm=' },
    state: { type: 'string', enum: ['active', 'failing', 'disabled'] },
    disabledReason: { type: ['string', 'null'] },
    fromRevision: { type: 'integer', description: 'the target receives the changes of every later revision' },
    createdAt: { type: 'string', format: 'date-time' },
    backlog: { type: 'integer', description: 'deliveries not yet acknowledged' },
    parked: { type: 'integer', description: 'deliveries given up after repeated failure (a replay re-sends them)' },
    acked: { type: 'integer' },
    lagMs: {
      type: 'object',
      properties: { p50: { type: ['number', 'null'] }, p99: { type: ['number', 'null'] } },
      description: 'decided → acknowledged over the last 1,000 acknowledgements',
    },
    lastError: { type: ['string', 'null'] },
    lastErrorAt: nullableTime,
    lastAckAt: nullableTime,
    secretRotation: { type: ['object', 'null'], properties: { previousValidUntil: { type: 'string', format: 'date-time' } } },
    secret: { type: 'string', description: 'shown once: the Standard Webhooks secret (whsec_…) or the SSF poll token' },
  },
} as const;

export const createTarget = {
  tags: ['targets'],
  summary: 'Create a target: it receives every effective change committed from now on',
  security: bearer,
  params: orgParams,
  body: {
    type: 'object',
    required: ['name', 'kind'],
    additionalProperties: false,
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 256 },
      kind: { type: 'string', enum: ['webhook', 'ssf'] },
      url: { type: 'string', minLength: 1, maxLength: 2048, description: 'https; private and loopback addresses are refused unless LOCKSTEP_TARGETS_ALLOW_PRIVATE=1' },
      critical: { type: 'boolean' },
      delivery: { type: 'string', enum: ['push'], description: "'push' (the only method so far)" },
    },
    examples: [{ name: 'gateway', kind: 'webhook', url: 'https://gateway.acme.example/lockstep/events', critical: true }],
  },
  response: { 201: target, ...writeErrorResponses },
};

export const listTargets = {
  tags: ['targets'],
  summary: 'Targets with state, backlog, lag and last error, a page at a time (oldest first)',
  security: bearer,
  params: orgParams,
  querystring: { type: 'object', additionalProperties: false, properties: pageQuery([1764410000000, 'tgt_3kPq8ZsW1xLc7NvA']) },
  response: { 200: { type: 'object', required: ['targets', 'next'], properties: { targets: { type: 'array', items: target }, next: nextCursor } }, ...errorResponses },
};
export const getTarget = { tags: ['targets'], summary: 'One target', security: bearer, params: targetParams, response: { 200: target, ...errorResponses } };
export const deleteTarget = {
  tags: ['targets'],
  summary: 'Delete a target (its undelivered messages are dropped)',
  security: bearer,
  params: targetParams,
  response: { 200: { type: 'object', properties: { id: { type: 'string' }, deleted: { type: 'boolean' }, dropped: { type: 'integer' } } }, ...errorResponses },
};
export const replayTarget = {
  tags: ['targets'],
  summary: 'Re-deliver the events of every revision after fromRevision (new message ids); re-enables a disabled target',
  security: bearer,
  params: targetParams,
  body: { type: 'object', required: ['fromRevision'], additionalProperties: false, properties: { fromRevision: { type: 'integer', minimum: 0 } }, examples: [{ fromRevision: 10 }] },
  response: { 200: { type: 'object', properties: { id: { type: 'string' }, fromRevision: { type: 'integer' }, queued: { type: 'integer' } } }, ...writeErrorResponses },
};
export const rotateSecret = {
  tags: ['targets'],
  summary: 'Rotate the secret; the previous one stays valid (webhooks signed with both) for graceSeconds (default 86400)',
  security: bearer,
  params: targetParams,
  body: { type: 'object', additionalProperties: false, properties: { graceSeconds: { type: 'integer', minimum: 0, maximum: 604800 } }, examples: [{ graceSeconds: 86400 }] },
  response: { 200: target, ...writeErrorResponses },
};
export const watch = {
  tags: ['targets'],
  summary: 'Server-Sent Events of effective changes after a revision (Last-Event-ID resumes; comments are heartbeats)',
  security: bearer,
  params: orgParams,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: { after: { type: 'string', pattern: '^[0-9]{1,15}$', description: 'revision: events of later revisions only (default: from now)', examples: ['10'] } },
  },
};

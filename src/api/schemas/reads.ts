/** Schemas of the read routes: check, listings and receipts. */
import { bearer, errorResponses, problemSchema, id, idParams, orgParams, permissionSlug, resourceParams, resourceRef, revisionParams, via } from './common.ts';

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
      subject: id('subject id'),
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
  },
};

export const subjectEffective = {
  tags: ['checks'],
  summary: 'Everything a subject can do',
  security: bearer,
  params: idParams('subject'),
  response: {
    200: {
      type: 'object',
      required: ['revision', 'permissions'],
      properties: {
        revision: { type: 'integer' },
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
  summary: 'Who can do a permission on a resource',
  security: bearer,
  params: resourceParams,
  querystring: { type: 'object', required: ['permission'], additionalProperties: false, properties: { permission: permissionSlug } },
  response: {
    200: {
      type: 'object',
      required: ['revision', 'subjects'],
      properties: {
        revision: { type: 'integer' },
        subjects: { type: 'array', items: { type: 'object', required: ['subject', 'via'], properties: { subject: { type: 'string' }, via } } },
      },
    },
    ...errorResponses,
  },
};

export const getChange = {
  tags: ['changes'],
  summary: 'The receipt of one committed change',
  security: bearer,
  params: revisionParams,
  response: {
    200: {
      type: 'object',
      required: ['revision', 'kind', 'direction', 'tier', 'mode', 'decidedAt', 'effectiveAt', 'lagMs', 'rowsAdded', 'rowsRemoved'],
      properties: {
        revision: { type: 'integer' },
        kind: { type: 'string' },
        direction: { type: 'string', enum: ['grant', 'revoke', 'both', 'none'] },
        tier: { type: ['string', 'null'] },
        mode: { type: 'string', enum: ['sync', 'async'] },
        actor: { type: ['string', 'null'] },
        requestId: { type: ['string', 'null'] },
        body: { description: 'the write as it was requested' },
        decidedAt: { type: 'string', format: 'date-time' },
        effectiveAt: { type: ['string', 'null'], format: 'date-time' },
        lagMs: { type: ['number', 'null'] },
        rowsAdded: { type: 'integer' },
        rowsRemoved: { type: 'integer' },
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

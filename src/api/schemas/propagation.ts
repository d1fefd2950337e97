/** Schemas of the propagation routes: policy, jobs, drift, metrics. */
import { bearer, errorResponses, id, nextCursor, orgParams, pageQuery, writeErrorResponses, writeResult } from './common.ts';

const rule = {
  type: 'object',
  additionalProperties: false,
  properties: { mode: { type: 'string', enum: ['sync', 'async'] }, sloMs: { type: 'integer', minimum: 0, maximum: 86_400_000 } },
} as const;
const tiers = { type: 'object', additionalProperties: false, properties: { standard: rule, high: rule, critical: rule } } as const;
const policy = {
  type: 'object',
  additionalProperties: false,
  description: 'direction × tier → {mode, sloMs}; inlineBudget: effective rows a sync change may touch inline',
  properties: { grant: tiers, revoke: tiers, inlineBudget: { type: 'integer', minimum: 0, maximum: 10_000_000 } },
} as const;
const policyBody = { ...policy, examples: [{ grant: { high: { mode: 'async', sloMs: 500 }, standard: { mode: 'async', sloMs: 2000 } }, inlineBudget: 10000 }] } as const;

export const getPolicy = {
  tags: ['propagation'],
  summary: "The organization's propagation policy (custom: false means the default)",
  security: bearer,
  params: orgParams,
  response: { 200: { type: 'object', required: ['policy', 'custom'], properties: { policy, custom: { type: 'boolean' } } }, ...errorResponses },
};

export const putPolicy = {
  tags: ['propagation'],
  summary: 'Replace the propagation policy; settings left out take the default',
  security: bearer,
  params: orgParams,
  body: policyBody,
  response: { 200: { ...writeResult, required: [...writeResult.required, 'policy'], properties: { ...writeResult.properties, policy } }, ...writeErrorResponses },
};

const job = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    org: { type: 'string' },
    scope: { type: 'string' },
    state: { type: 'string', enum: ['pending', 'running', 'retrying', 'done', 'failed'] },
    direction: { type: 'string' },
    priority: { type: 'integer' },
    targetRevision: { type: 'integer' },
    checkpoint: { type: ['string', 'null'], description: 'last subject id reconciled' },
    progress: { type: 'object', properties: { done: { type: 'integer' }, total: { type: ['integer', 'null'] } } },
    batches: { type: 'integer' },
    rowsAdded: { type: 'integer' },
    rowsRemoved: { type: 'integer' },
    attempts: { type: 'integer' },
    claims: { type: 'integer' },
    owner: { type: ['string', 'null'] },
    leaseExpiresAt: { type: ['string', 'null'] },
    runAt: { type: 'string' },
    lastError: { type: ['string', 'null'] },
    createdAt: { type: 'string' },
    startedAt: { type: ['string', 'null'] },
    finishedAt: { type: ['string', 'null'] },
  },
} as const;

export const listJobs = {
  tags: ['propagation'],
  summary: 'Reconciliation jobs with checkpoint progress, a page at a time (an organization-scoped key sees its organization only)',
  security: bearer,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      org: id('organization id (admin keys; others see their own)', 'acme'),
      state: { type: 'string', enum: ['pending', 'running', 'retrying', 'done', 'failed'], examples: ['failed'] },
      ...pageQuery([4, 1, 1764410000000, 'job_wNPVLWMqxsYcwACF']),
    },
  },
  response: {
    200: {
      type: 'object',
      required: ['jobs', 'next', 'workers'],
      properties: {
        jobs: { type: 'array', items: job },
        next: nextCursor,
        workers: {
          type: ['object', 'null'],
          required: ['live', 'expected'],
          description: 'workers consuming the queue (of every organization): heartbeating in the last 15 s, and LOCKSTEP_EXPECT_WORKERS (0: not set)',
          properties: { live: { type: 'integer' }, expected: { type: 'integer' } },
        },
      },
    },
    ...errorResponses,
  },
};

export const retryJob = {
  tags: ['propagation'],
  summary: 'Put a failed job back in the queue (admin)',
  security: bearer,
  params: { type: 'object', required: ['id'], additionalProperties: false, properties: { id: { type: 'string', pattern: '^job_[A-Za-z0-9_-]{1,64}$', description: 'job id', examples: ['job_wNPVLWMqxsYcwACF'] } } },
  response: { 200: job, ...writeErrorResponses },
};

const driftRow = {
  type: 'object',
  properties: { subject: { type: 'string' }, assignment: { type: 'string' }, role: { type: 'string' }, resource: { type: 'string' }, group: { type: ['string', 'null'] } },
} as const;

export const drift = {
  tags: ['propagation'],
  summary: 'Recompute the organization from scratch and report every read-model row that differs; optionally repair',
  security: bearer,
  params: orgParams,
  body: {
    type: 'object',
    additionalProperties: false,
    properties: { repair: { type: 'boolean' }, limit: { type: 'integer', minimum: 0, maximum: 100_000 } },
    examples: [{ repair: false, limit: 100 }],
  },
  response: {
    200: {
      type: 'object',
      properties: {
        org: { type: 'string' },
        missing: { type: 'integer' },
        extra: { type: 'integer' },
        pending: {
          type: 'object',
          description: 'queued propagation, not drift: differing rows that an unfinished job (pending, running, retrying) will write or delete',
          properties: { missing: { type: 'integer' }, extra: { type: 'integer' }, jobs: { type: 'integer' } },
        },
        rows: { type: 'object', properties: { missing: { type: 'array', items: driftRow }, extra: { type: 'array', items: driftRow } } },
        checkedAt: { type: 'string' },
        repairJob: { type: ['string', 'null'] },
      },
    },
    ...writeErrorResponses,
  },
};

export const metrics = {
  tags: ['observability'],
  summary: 'Prometheus metrics (admin key)',
  security: bearer,
};

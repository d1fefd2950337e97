/** Schemas of the API key routes (admin keys only): list, create, revoke. */
import { KEY_SCOPES } from '../keys.ts';
import { bearer, errorResponses, id, ID_PATTERN, NAME_PATTERN, writeErrorResponses } from './common.ts';

const keyInfoProperties = {
  id: { type: 'string', description: 'the key id (the part after lsk_)' },
  scope: { type: 'string', enum: [...KEY_SCOPES] },
  org: { type: ['string', 'null'], description: 'the organization a check or write key belongs to; null for admin keys' },
  name: { type: ['string', 'null'] },
  origin: { type: 'string', enum: ['created', 'generated', 'env'], description: 'keys create / POST /v1/keys, the first start, or LOCKSTEP_ADMIN_KEY' },
  createdAt: { type: 'string', format: 'date-time' },
  revokedAt: { type: ['string', 'null'], format: 'date-time' },
} as const;
const keyInfo = {
  type: 'object',
  required: ['id', 'scope', 'org', 'name', 'origin', 'createdAt', 'revokedAt'],
  properties: keyInfoProperties,
} as const;

export const listKeys = {
  tags: ['keys'],
  summary: 'List API keys, oldest first (never the keys themselves: only their ids and what they may do)',
  security: bearer,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      org: { ...id('only the keys of this organization', 'acme') },
      revoked: { type: 'string', enum: ['true', 'false'], description: 'true: include revoked keys (default false)', examples: ['true'] },
    },
  },
  response: { 200: { type: 'object', required: ['keys'], properties: { keys: { type: 'array', items: keyInfo } } }, ...errorResponses },
};

export const createKey = {
  tags: ['keys'],
  summary: 'Create an API key; the answer holds the key itself, the only time it is shown',
  security: bearer,
  body: {
    type: 'object',
    required: ['scope'],
    additionalProperties: false,
    properties: {
      scope: { type: 'string', enum: [...KEY_SCOPES], description: 'admin: every organization; write, check: one (give org)' },
      org: { type: 'string', pattern: ID_PATTERN, description: 'required for write and check keys, refused for admin keys', examples: ['acme'] },
      name: { type: 'string', minLength: 1, maxLength: 256, pattern: NAME_PATTERN, description: 'a label to recognise the key by', examples: ['ci deploy'] },
    },
    examples: [{ scope: 'check', org: 'acme', name: 'web app' }],
  },
  response: {
    201: {
      description: 'created; `key` is not stored in clear and cannot be shown again',
      type: 'object',
      required: [...keyInfo.required, 'key'],
      properties: { ...keyInfoProperties, key: { type: 'string', description: 'lsk_<id>_<secret>: send it as Authorization: Bearer <key>' } },
    },
    ...writeErrorResponses,
  },
};

export const revokeKey = {
  tags: ['keys'],
  summary: 'Revoke an API key (it is refused from the next request on); revoking a revoked key changes nothing',
  security: bearer,
  params: {
    type: 'object',
    required: ['id'],
    additionalProperties: false,
    properties: { id: { type: 'string', pattern: '^[A-Za-z0-9]{1,64}$', description: 'key id, as GET /v1/keys shows it', examples: ['3f9c2a7d1e5b8c04'] } },
  },
  response: {
    200: { type: 'object', required: ['key', 'changed'], properties: { key: keyInfo, changed: { type: 'boolean', description: 'false: it was revoked already' } } },
    ...writeErrorResponses,
  },
};

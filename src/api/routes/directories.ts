/**
 * Directory administration under /v1: create (the token is shown once), list and get (counts, the
 * last request, recent errors), rotate the token, delete. Needs a write key of the organization.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { DirectoryStore } from '../../directories/directories.ts';
import { id as idSchema, NAME_PATTERN, pageOfQuery, pageQuery } from '../schemas/common.ts';

type Org = { org: string };
type WithId = Org & { id: string };

const orgParams = { type: 'object', properties: { org: idSchema('organization id', 'acme') }, required: ['org'], additionalProperties: false } as const;
const dirParams = {
  type: 'object',
  properties: { org: idSchema('organization id', 'acme'), id: { type: 'string', pattern: '^[a-f0-9]{16}$', description: 'directory id', examples: ['5f1c2a9be0d34c71'] } },
  required: ['org', 'id'],
  additionalProperties: false,
} as const;
const createBody = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200, pattern: NAME_PATTERN, examples: ['Okta production'] },
    provider: { type: 'string', enum: ['okta', 'entra', 'generic'], description: 'the identity provider; okta gets 200 with the user on PATCH' },
  },
  examples: [{ name: 'Okta production', provider: 'okta' }],
} as const;

/** The SCIM base URL of a directory as this request reached the server. */
export const scimBaseUrl = (request: FastifyRequest, id: string) => `${request.protocol}://${request.host}/scim/v2/${id}`;

export function directoryRoutes(app: FastifyInstance, directories: DirectoryStore) {
  const base = '/v1/organizations/:org/directories';
  const write = { config: { access: 'write' as const } };
  const tags = ['directories'];

  app.post<{ Params: Org; Body: { name: string; provider?: string } }>(base, { schema: { tags, params: orgParams, body: createBody }, ...write }, async (request, reply) => {
    const d = await directories.create(request.params.org, request.body);
    return reply.code(201).send({ id: d.id, name: d.name, provider: d.provider, scimBaseUrl: scimBaseUrl(request, d.id), token: d.token });
  });
  app.get<{ Params: Org; Querystring: { limit?: string; cursor?: string } }>(
    base,
    { schema: { tags, params: orgParams, querystring: { type: 'object', additionalProperties: false, properties: pageQuery([1764410000000, '5f1c2a9be0d34c71']) } }, ...write },
    async (request) => {
      const page = await directories.list(request.params.org, pageOfQuery(request.query));
      return { directories: page.directories.map((d) => ({ ...d, scimBaseUrl: scimBaseUrl(request, d.id) })), next: page.next };
    },
  );
  app.get<{ Params: WithId }>(`${base}/:id`, { schema: { tags, params: dirParams }, ...write }, async (request) => {
    const d = await directories.get(request.params.org, request.params.id);
    return { ...d, scimBaseUrl: scimBaseUrl(request, d.id) };
  });
  app.post<{ Params: WithId }>(`${base}/:id/token`, { schema: { tags, params: dirParams }, ...write }, async (request) => {
    const d = await directories.rotate(request.params.org, request.params.id);
    return { id: d.id, name: d.name, provider: d.provider, scimBaseUrl: scimBaseUrl(request, d.id), token: d.token };
  });
  app.delete<{ Params: WithId }>(`${base}/:id`, { schema: { tags, params: dirParams }, ...write }, async (request, reply) => {
    await directories.remove(request.params.org, request.params.id);
    return reply.code(204).send();
  });
}

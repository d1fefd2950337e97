/**
 * A directory's SCIM 2.0 endpoint (RFC 7644) at /scim/v2/{directory}: discovery documents, Users
 * and Groups. Authenticated by the directory's own bearer token (not an API key); answers
 * `application/scim+json` and SCIM error bodies; every write carries `Lockstep-Revision`.
 *
 * PATCH answers 204 (what Microsoft's reference server and Entra expect) unless the request asks for
 * attributes, or the directory is Okta's and the resource a User (Okta reads the user back from the
 * PATCH answer) — then 200 with the resource.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createFailureLimiter, type AuthFailureLimit } from '../auth-limit.ts';
import { DEFAULT_AUTH_FAILURE_LIMIT } from '../auth.ts';
import { isLockstepError } from '../../domain/errors.ts';
import type { Directory, DirectoryStore } from '../../directories/directories.ts';
import { etagOf, getResource, listResources, render } from '../../directories/scim-read.ts';
import type { ScimWriteResult, ScimWrites } from '../../directories/scim-write.ts';
import { ScimError, scimErrorBody, type ScimType } from '../../scim/errors.ts';
import { parseFilter } from '../../scim/filter.ts';
import { parsePatch } from '../../scim/patch.ts';
import { parsePaging, parseProjection, project, wants } from '../../scim/projection.ts';
import { CORE_URIS, LIST_SCHEMA, resourceTypes, schemaDocuments, serviceProviderConfig, type ResourceType } from '../../scim/schemas.ts';
import type { Database } from '../../storage/database.ts';
import type { Metrics } from '../../observability/metrics.ts';

export const SCIM_CONTENT_TYPE = 'application/scim+json; charset=utf-8';
/** Routes are registered under /scim/v2; PREFIX is the full route prefix (for operation labels). */
const PREFIX = '/scim/v2/:directory';
const ROUTE = '/:directory';
/** SCIM describes itself (/Schemas, /ResourceTypes, RFC 7643); the OpenAPI document covers /v1. */
const HIDDEN = { schema: { hide: true } };

declare module 'fastify' {
  interface FastifyRequest {
    directory?: Directory;
    /** The directory id of the base URL, authenticated or not. */
    scimDirectoryId?: string;
    scimStarted?: bigint;
    scimError?: { scimType: ScimType | undefined; detail: string };
    scimRevision?: number;
    /** Answered 429 by the failed-authentication limit: not logged at info, not recorded against the directory. */
    scimLimited?: boolean;
  }
}

interface Deps {
  db: Database;
  directories: DirectoryStore;
  writes: ScimWrites;
  metrics?: Metrics | undefined;
  /** Failed token authentications per client address per window (the API keys' limit, counted apart). */
  authFailureLimit?: AuthFailureLimit | undefined;
}

type Q = Record<string, unknown>;

/** Any error thrown while serving a SCIM request, as a SCIM error (status, scimType, detail). */
export function toScimError(err: unknown): { status: number; scimType?: ScimType; detail: string } {
  if (err instanceof ScimError) return { status: err.status, ...(err.scimType ? { scimType: err.scimType } : {}), detail: err.message };
  if (isLockstepError(err)) {
    switch (err.code) {
      case 'VALIDATION':
        return { status: 400, scimType: 'invalidValue', detail: err.message };
      case 'NOT_FOUND':
        return { status: 404, detail: err.message };
      case 'CONFLICT':
        // A concurrent creation of the same userName loses on the unique index.
        return { status: 409, scimType: 'uniqueness', detail: err.message };
      case 'UNAVAILABLE':
        return { status: 503, detail: 'temporarily unavailable; retry' };
      default:
        return { status: 500, detail: 'internal error' };
    }
  }
  const e = (err ?? {}) as { code?: string; statusCode?: number };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, detail: 'the request body exceeds the size limit' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, detail: 'send application/scim+json or application/json' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, scimType: 'invalidSyntax', detail: 'the body is not valid JSON' };
  }
  if (typeof e.code === 'string' && e.code.startsWith('FST_') && e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
    return { status: e.statusCode, scimType: 'invalidSyntax', detail: 'malformed request' };
  }
  return { status: 500, detail: 'internal error' };
}

function send(reply: FastifyReply, status: number, body: unknown) {
  return reply.code(status).type(SCIM_CONTENT_TYPE).send(JSON.stringify(body));
}

/** The operation label of a request: method and route below the base URL (`PATCH /Groups/{id}`). */
function operationOf(request: FastifyRequest): string {
  const url = request.routeOptions.url ?? '';
  const path = url.startsWith(PREFIX) ? url.slice(PREFIX.length).replace(/:id/, '{id}') || '/' : 'unknown';
  return `${request.method} ${path}`;
}

export function scimRoutes(app: FastifyInstance, deps: Deps) {
  const limit = deps.authFailureLimit ?? DEFAULT_AUTH_FAILURE_LIMIT;
  const failures = createFailureLimiter(limit);
  app.register(async (scim) => {
    // Clients send application/scim+json (Okta, Entra) or application/json; both are JSON.
    scim.addContentTypeParser('application/scim+json', { parseAs: 'string' }, scim.getDefaultJsonParser('error', 'error'));

    scim.addHook('onRequest', async (request, reply) => {
      request.scimStarted = process.hrtime.bigint();
      // On an unknown path there are no route params: the directory is the path's third segment.
      const dirId = (request.params as { directory?: string }).directory ?? request.url.split(/[/?]/)[3] ?? '';
      request.scimDirectoryId = dirId;
      const dir = await deps.directories.authenticate(dirId, request.headers.authorization);
      if (!dir) {
        // Failed tokens are limited per client address as API keys are (src/api/auth-limit.ts):
        // past the limit they answer 429, a valid token is still accepted.
        const f = failures.fail(request.ip);
        if (f.limited) {
          request.scimLimited = true;
          if (f.firstOver) request.log.warn({ client: request.ip, failures: f.failures, windowMs: limit.windowMs }, 'failed SCIM authentications over the limit: answering 429');
          reply.header('retry-after', String(f.retryAfterSeconds));
          throw new ScimError(429, `too many failed authentications from this address; retry in ${f.retryAfterSeconds} s`);
        }
        throw new ScimError(401, "send this directory's token as Authorization: Bearer <token>");
      }
      request.directory = dir;
    });

    scim.addHook('onResponse', async (request, reply) => {
      // A refused token is recorded too (an IdP still sending a rotated token shows in recent
      // errors), but only against a directory that exists, and not in the metrics' labels.
      const dirId = request.directory?.id ?? request.scimDirectoryId;
      // Guesses past the limit write nothing: the 401s before it are on record already.
      if (!dirId || !/^[a-f0-9]{16}$/.test(dirId) || request.scimLimited) return;
      const operation = operationOf(request);
      const seconds = Number(process.hrtime.bigint() - (request.scimStarted ?? process.hrtime.bigint())) / 1e9;
      if (request.directory) {
        deps.metrics?.scimRequests.inc({ directory: dirId, operation, status: String(reply.statusCode) });
        deps.metrics?.scimLatency.observe({ directory: dirId, operation }, seconds);
      }
      try {
        await deps.directories.record(dirId, {
          operation,
          status: reply.statusCode,
          requestId: request.id,
          ...(request.scimRevision === undefined ? {} : { revision: request.scimRevision }),
          ...(request.scimError ? { scimType: request.scimError.scimType, detail: request.scimError.detail } : {}),
        });
      } catch (err) {
        // Bookkeeping must not fail a request that has already been answered.
        request.log.warn({ err, directory: dirId }, 'could not record the SCIM request');
      }
    });

    scim.setErrorHandler((err, request, reply) => {
      const e = toScimError(err);
      if (e.status >= 500) request.log.error({ err }, 'SCIM request failed');
      else if (request.scimLimited) request.log.debug({ status: e.status }, 'SCIM request rejected');
      else request.log.info({ status: e.status, scimType: e.scimType }, 'SCIM request rejected');
      request.scimError = { scimType: e.scimType, detail: e.detail };
      if (e.status === 401) reply.header('WWW-Authenticate', 'Bearer realm="lockstep-scim"');
      return send(reply, e.status, scimErrorBody(e.status, e.detail, e.scimType));
    });
    scim.setNotFoundHandler((request, reply) => send(reply, 404, scimErrorBody(404, `no SCIM endpoint ${request.method} ${request.url.split('?')[0]}`)));

    const baseUrl = (request: FastifyRequest) => `${request.protocol}://${request.host}/scim/v2/${request.directory!.id}`;
    const dirOf = (request: FastifyRequest) => request.directory!;
    const ifMatch = (request: FastifyRequest) => {
      const h = request.headers['if-match'];
      return typeof h === 'string' ? h : undefined;
    };

    const written = (request: FastifyRequest, reply: FastifyReply, r: { revision: number; changed: boolean; propagation: { status: string } }) => {
      request.scimRevision = r.revision;
      reply.header('Lockstep-Revision', String(r.revision)).header('Lockstep-Propagation', r.propagation.status);
      const dir = request.directory!;
      // Deprovisionings and inline changes are enforced by the read model at commit (see metric help).
      if (r.changed && r.propagation.status === 'effective') deps.metrics?.scimEnforcement.observe({ directory: dir.id, direction: 'any' }, 0);
    };

    /** The resource as the write's own transaction left it (members only when the answer shows them). */
    const answer = (request: FastifyRequest, reply: FastifyReply, type: ResourceType, status: number, r: ScimWriteResult) => {
      written(request, reply, r);
      reply.header('ETag', etagOf(r.row.version)).header('Location', `${baseUrl(request)}/${type}s/${r.row.id}`);
      const resource = render(type, r.row, baseUrl(request), r.members);
      return send(reply, status, project(resource, parseProjection(request.query as Q), CORE_URIS[type]));
    };
    const writeOpts = (request: FastifyRequest, type: ResourceType) => ({
      ifMatch: ifMatch(request),
      withMembers: type === 'Group' && wants(parseProjection(request.query as Q), 'members'),
    });

    scim.get(`${ROUTE}/ServiceProviderConfig`, HIDDEN, async (request, reply) => send(reply, 200, serviceProviderConfig(baseUrl(request))));
    scim.get(`${ROUTE}/ResourceTypes`, HIDDEN, async (request, reply) => {
      const all = resourceTypes(baseUrl(request));
      return send(reply, 200, { schemas: [LIST_SCHEMA], totalResults: all.length, startIndex: 1, itemsPerPage: all.length, Resources: all });
    });
    scim.get<{ Params: { directory: string; id: string } }>(`${ROUTE}/ResourceTypes/:id`, HIDDEN, async (request, reply) => {
      const one = resourceTypes(baseUrl(request)).find((r) => r.id === request.params.id);
      if (!one) throw new ScimError(404, `no resource type '${request.params.id}'`);
      return send(reply, 200, one);
    });
    scim.get(`${ROUTE}/Schemas`, HIDDEN, async (request, reply) => {
      const all = schemaDocuments(baseUrl(request));
      return send(reply, 200, { schemas: [LIST_SCHEMA], totalResults: all.length, startIndex: 1, itemsPerPage: all.length, Resources: all });
    });
    scim.get<{ Params: { directory: string; id: string } }>(`${ROUTE}/Schemas/:id`, HIDDEN, async (request, reply) => {
      const one = schemaDocuments(baseUrl(request)).find((s) => s.id === request.params.id);
      if (!one) throw new ScimError(404, `no schema '${request.params.id}'`);
      return send(reply, 200, one);
    });

    for (const type of ['User', 'Group'] as const) {
      const path = `${ROUTE}/${type}s`;
      type WithId = { Params: { directory: string; id: string } };

      const list = async (request: FastifyRequest, reply: FastifyReply) => {
        const q = request.query as Q;
        if (q.filter !== undefined && typeof q.filter !== 'string') throw new ScimError(400, 'filter must be given once', 'invalidFilter');
        const filter = typeof q.filter === 'string' && q.filter.trim() !== '' ? parseFilter(q.filter) : null;
        const page = await listResources(deps.db, dirOf(request), type, { filter, paging: parsePaging(q), projection: parseProjection(q) }, baseUrl(request));
        return send(reply, 200, page);
      };
      // `/Users/` too: Microsoft's collection and some clients put a slash before the query.
      scim.get(path, HIDDEN, list);
      scim.get(`${path}/`, HIDDEN, list);

      scim.get<WithId>(`${path}/:id`, HIDDEN, async (request, reply) => {
        const { resource, version } = await getResource(deps.db, dirOf(request), type, request.params.id, parseProjection(request.query as Q), baseUrl(request));
        reply.header('ETag', etagOf(version));
        // RFC 7232: a matching If-None-Match on a GET is 304.
        if (request.headers['if-none-match'] === etagOf(version)) return reply.code(304).send();
        return send(reply, 200, resource);
      });

      scim.post(path, HIDDEN, async (request, reply) => {
        const dir = dirOf(request);
        const r =
          type === 'User' ? await deps.writes.createUser(dir, request.body, request.id) : await deps.writes.createGroup(dir, request.body, request.id, writeOpts(request, type));
        return answer(request, reply, type, 201, r);
      });

      scim.put<WithId>(`${path}/:id`, HIDDEN, async (request, reply) => {
        const dir = dirOf(request);
        const opts = writeOpts(request, type);
        const r =
          type === 'User'
            ? await deps.writes.replaceUser(dir, request.params.id, request.body, request.id, opts)
            : await deps.writes.replaceGroup(dir, request.params.id, request.body, request.id, opts);
        return answer(request, reply, type, 200, r);
      });

      scim.patch<WithId>(`${path}/:id`, HIDDEN, async (request, reply) => {
        const dir = dirOf(request);
        const ops = parsePatch(request.body);
        const q = request.query as Q;
        const asked = q.attributes !== undefined || q.excludedAttributes !== undefined;
        const opts = { ...writeOpts(request, type), withMembers: asked && writeOpts(request, type).withMembers };
        const r =
          type === 'User'
            ? await deps.writes.patchUser(dir, request.params.id, ops, request.id, opts)
            : await deps.writes.patchGroup(dir, request.params.id, ops, request.id, opts);
        if (asked || (dir.provider === 'okta' && type === 'User')) return answer(request, reply, type, 200, r);
        written(request, reply, r);
        return reply.code(204).header('ETag', etagOf(r.row.version)).send();
      });

      scim.delete<WithId>(`${path}/:id`, HIDDEN, async (request, reply) => {
        const dir = dirOf(request);
        const opts = { ifMatch: ifMatch(request) };
        const r = type === 'User' ? await deps.writes.deleteUser(dir, request.params.id, request.id, opts) : await deps.writes.deleteGroup(dir, request.params.id, request.id, opts);
        written(request, reply, r);
        return reply.code(204).send();
      });
    }
  }, { prefix: '/scim/v2' });
}

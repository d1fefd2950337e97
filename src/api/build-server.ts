/**
 * The HTTP server, built but not listening: the v1 routes, schema validation, authentication, the
 * OpenAPI document and docs page, health, request ids and problem+json errors.
 */
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Lockstep } from '../domain/contract.ts';
import { LockstepError, validation } from '../domain/errors.ts';
import type { Database } from '../storage/database.ts';
import { installAuth } from './auth.ts';
import type { AuthFailureLimit } from './auth-limit.ts';
import { createLogger } from './logger.ts';
import { ApiError, PROBLEM_CONTENT_TYPE, problem, toProblem, type Problem } from './problem.ts';
import { policyRoutes } from './routes/policy.ts';
import { readRoutes } from './routes/reads.ts';
import { propagationRoutes } from './routes/propagation.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { directoryRoutes } from './routes/directories.ts';
import { scimRoutes } from './routes/scim.ts';
import { keyRoutes } from './routes/keys.ts';
import { applyRoutes } from './routes/apply.ts';
import type { DirectoryStore } from '../directories/directories.ts';
import type { ScimWrites } from '../directories/scim-write.ts';
import { confirmHooks, deliveryRoutes, type WatchOptions } from './routes/delivery.ts';
import type { Delivery } from '../delivery/service.ts';
import type { Metrics } from '../observability/metrics.ts';
import { healthz, readyz } from './schemas/reads.ts';
import { liveWorkers } from '../propagation/presence.ts';
import { loadMigrations } from '../storage/migrations.ts';
import type { Tracing, TraceSpan } from '../observability/tracing.ts';

export interface ServerOptions {
  lockstep: Lockstep;
  db: Database;
  /** Defaults to a silent logger. */
  logger?: Logger;
  /** Largest request body in bytes; default 1 MiB. */
  bodyLimit?: number;
  /** Served at /metrics (admin key) when given. */
  metrics?: Metrics;
  /** Directories (SCIM ingestion): their /v1 administration and each one's /scim/v2 endpoint. */
  directories?: { store: DirectoryStore; writes: ScimWrites };
  /** Targets, watch, SSF documents and ?confirm= (absent: those routes are not served). */
  delivery?: Delivery;
  watch?: WatchOptions;
  /** Failed authentications allowed per client address and window (default: auth.ts's). */
  authFailureLimit?: AuthFailureLimit;
  /** A span per request (tracing on), the parent of the spans its handler starts. */
  tracing?: Tracing;
  /** /readyz: workers that must be heartbeating (0 or absent: not checked), and the clock. */
  readiness?: { expectWorkers: number; now?: () => number };
}

/**
 * Fastify's own per-request lines ("incoming request", "request completed", both info) at debug for
 * 401 and 429 answers, and "incoming request" at debug for all: one info line per request at most,
 * none for a failed authentication. (10k bad-key requests wrote 30k info lines.)
 */
class QuietAuthFailures extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }
  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (!error && (reply.statusCode === 401 || reply.statusCode === 429)) {
      reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed');
      return;
    }
    super.requestCompleted(error, request, reply);
  }
}

export const DEFAULT_BODY_LIMIT = 1024 * 1024;
/** Longest path parameter the router matches (ids are at most 128 characters; 414 beyond this). */
export const MAX_PARAM_LENGTH = 512;

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The body's fields are all optional and the body itself may be left out (read as `{}`; a JSON
     * `null` is a bad body, not none). The OpenAPI document then says `requestBody.required: false`.
     */
    optionalBody?: boolean;
  }
  interface FastifyRequest {
    /** The request's span (tracing on). */
    traceSpan?: TraceSpan;
  }
}

async function optionalBody(request: FastifyRequest) {
  if (request.body === undefined) request.body = {};
}

/** `/a/:b/c` as OpenAPI writes it: `/a/{b}/c`. */
const openapiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

async function refuseBody(request: FastifyRequest) {
  if (request.body !== undefined) throw validation('body', `${request.method} ${request.routeOptions.url ?? ''} takes no request body`);
}

/** A client's x-request-id is honoured when it is short and plain; otherwise we make one. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const requestIdOf = (header: string | string[] | undefined) =>
  typeof header === 'string' && SANE_REQUEST_ID.test(header) ? header : randomUUID();

function sendProblem(request: FastifyRequest, reply: FastifyReply, p: Problem) {
  if (p.code === 'UNAUTHENTICATED') reply.header('WWW-Authenticate', 'Bearer realm="lockstep"');
  // Every UNAVAILABLE is worth retrying: the database was busy, or the read model was behind.
  if (p.code === 'UNAVAILABLE') reply.header('Retry-After', '1');
  // Pre-serialized: a problem body is never reshaped by a route's response schema.
  return reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(p));
}

/** Route templates by method, split in segments: to name the path parameter a too-long URL overflows. */
type Templates = Map<string, string[][]>;
function paramAt(templates: Templates, method: string, url: string): string {
  const segments = (url.split('?')[0] ?? '').split('/');
  const longest = segments.reduce((best, seg, i) => (seg.length > (segments[best]?.length ?? 0) ? i : best), 0);
  for (const t of templates.get(method) ?? []) {
    if (t.length !== segments.length || !t[longest]?.startsWith(':')) continue;
    if (t.every((seg, i) => i === longest || seg.startsWith(':') || seg === segments[i])) return t[longest]!.slice(1);
  }
  return 'path';
}

export function buildServer(opts: ServerOptions): FastifyInstance {
  const { lockstep, db } = opts;
  const templates: Templates = new Map();
  /** `METHOD path` (OpenAPI spelling) of the routes whose body may be left out. */
  const optionalBodies = new Set<string>();
  const app = Fastify({
    loggerInstance: (opts.logger ?? createLogger('silent')) as FastifyBaseLogger,
    logController: new QuietAuthFailures(),
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    requestIdHeader: false,
    genReqId: (req) => requestIdOf(req.headers['x-request-id']),
    ajv: {
      customOptions: {
        // Unknown fields are errors, not silently dropped; a JSON "true" is not a boolean.
        removeAdditional: false,
        coerceTypes: false,
        useDefaults: false,
      },
    },
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: MAX_PARAM_LENGTH },
    // Errors the router raises before any route runs (a path parameter over MAX_PARAM_LENGTH, a
    // malformed %-escape): problems naming the parameter, never Fastify's body echoing the URL.
    frameworkErrors: (err, request, reply) => {
      reply.header('x-request-id', request.id);
      const p =
        err.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? problem('URI_TOO_LONG', `a path parameter is longer than ${MAX_PARAM_LENGTH} characters`, request.id, {
              field: paramAt(templates, request.method, request.url),
            })
          : err.code === 'FST_ERR_BAD_URL'
            ? problem('VALIDATION', 'the path is not a valid URL (a malformed %-escape)', request.id, { field: 'path' })
            : toProblem(err, request.id);
      request.log.info({ code: p.code, field: p.field }, 'request rejected');
      return sendProblem(request, reply, p);
    },
  });
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      const list = templates.get(method) ?? [];
      list.push(route.url.split('/'));
      templates.set(method, list);
      if (route.config?.optionalBody) optionalBodies.add(`${method.toLowerCase()} ${openapiPath(route.url)}`);
    }
    if (route.config?.optionalBody) route.preValidation = [optionalBody, ...[route.preValidation ?? []].flat()];
    // A /v1 write whose schema declares no body takes none: a body sent anyway is refused, not ignored.
    if (route.url.startsWith('/v1/') && !route.schema?.body && [route.method].flat().some((m) => m !== 'GET' && m !== 'HEAD')) {
      route.preValidation = [...[route.preValidation ?? []].flat(), refuseBody];
    }
    // The handler runs inside the request's span, so the write it makes is that span's child.
    const tracing = opts.tracing;
    if (tracing) {
      const handler = route.handler;
      route.handler = function traced(this: FastifyInstance, request, reply) {
        const span = request.traceSpan;
        return span ? tracing.run(span, () => handler.call(this, request, reply)) : handler.call(this, request, reply);
      };
    }
  });
  const tracing = opts.tracing;
  if (tracing) {
    app.decorateRequest('traceSpan', undefined);
    // Started as the request arrives (a request refused before its handler has one too), ended
    // with the status the client got.
    app.addHook('onRequest', async (request) => {
      if (!tracing.enabled) return;
      const route = request.routeOptions.url ?? 'unmatched';
      request.traceSpan = tracing.start(`${request.method} ${route}`, { 'http.request.method': request.method, 'http.route': route, 'lockstep.request_id': request.id });
    });
    app.addHook('onResponse', async (request, reply) => {
      request.traceSpan?.end({ 'http.response.status_code': reply.statusCode });
    });
  }
  // Only JSON bodies: without this, Fastify would parse text/plain and answer its bodies with a 400
  // from the schema instead of the documented 415.
  app.removeContentTypeParser('text/plain');

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  app.setErrorHandler(async (thrown, request, reply) => {
    // A key taken from the cache without a lookup (a check route's, docs/adr/0028-*) is confirmed
    // before any error is answered: a revoked key learns nothing, not even that its body is invalid.
    const refused = request.confirmKey ? await request.confirmKey() : null;
    const err = refused ?? thrown;
    const p = toProblem(err, request.id);
    if (err instanceof ApiError && err.retryAfterSeconds !== undefined) reply.header('Retry-After', String(err.retryAfterSeconds));
    // An error meant for the caller (an at_least_as_fresh timeout) is expected under load: a warning
    // with its text, no stack.
    if (p.status >= 500 && p.detail !== p.code) request.log.warn({ code: p.code, field: p.field, detail: p.detail }, 'request not served');
    else if (p.status >= 500) request.log.error({ err }, 'request failed');
    // Failed authentication is what a key-guessing client produces by the thousand: debug only
    // (the limiter warns once per address when it starts answering 429).
    else if (p.code === 'UNAUTHENTICATED' || p.code === 'RATE_LIMITED') request.log.debug({ code: p.code }, 'request rejected');
    else request.log.info({ code: p.code, field: p.field }, 'request rejected');
    return sendProblem(request, reply, p);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, toProblem(new ApiError('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`), request.id)),
  );

  app.register(swagger, {
    // @fastify/swagger marks every body schema's requestBody required; those of optionalBody routes are not.
    transformObject: (doc) => {
      if (!('openapiObject' in doc)) return doc.swaggerObject;
      const { openapiObject } = doc;
      for (const [path, item] of Object.entries(openapiObject.paths ?? {})) {
        for (const [method, op] of Object.entries(item as Record<string, { requestBody?: { required?: boolean } }>)) {
          if (op.requestBody && optionalBodies.has(`${method} ${path}`)) op.requestBody.required = false;
        }
      }
      return openapiObject;
    },
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Lockstep',
        version: 'v1',
        description: 'Authorization service: policy in, effective permissions out, revocations enforced at commit. Errors: docs/errors.md.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'lsk_<id>_<secret>' } } },
    },
  });
  app.register(swaggerUi, { routePrefix: '/docs' });

  // Routes live in a child plugin registered after swagger, so its onRoute hook sees them all.
  app.register(async (api) => {
    installAuth(api, db, opts.authFailureLimit);
    api.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
    api.get('/healthz', { schema: healthz }, async () => {
      try {
        await db.get('SELECT 1 AS ok');
      } catch (e) {
        throw new LockstepError('UNAVAILABLE', 'the database did not answer', { cause: e });
      }
      return { status: 'ok', database: db.dialect };
    });
    const expectWorkers = opts.readiness?.expectWorkers ?? 0;
    const clock = opts.readiness?.now ?? Date.now;
    const versions = loadMigrations(db.dialect).map((m) => m.version);
    api.get('/readyz', { schema: readyz }, async () => {
      const notReady: string[] = [];
      let migrations = { applied: 0, expected: versions.length, pending: versions };
      let workers = { expected: expectWorkers, live: 0 };
      try {
        const applied = new Set((await db.all<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
        const pending = versions.filter((v) => !applied.has(v));
        migrations = { applied: applied.size, expected: versions.length, pending };
        if (pending.length > 0) notReady.push(`migrations not applied: ${pending.join(', ')} (run lockstep migrate)`);
        if (expectWorkers > 0) {
          workers = { expected: expectWorkers, live: await liveWorkers(db, clock()) };
          if (workers.live < expectWorkers) notReady.push(`workers: ${workers.live} of ${expectWorkers} expected are heartbeating (LOCKSTEP_EXPECT_WORKERS)`);
        }
      } catch (e) {
        throw new LockstepError('UNAVAILABLE', 'not ready: the database did not answer', { cause: e, field: 'database', meta: { expose: true } });
      }
      if (notReady.length > 0) {
        throw new LockstepError('UNAVAILABLE', `not ready: ${notReady.join('; ')}`, { field: migrations.pending.length > 0 ? 'migrations' : 'workers', meta: { expose: true } });
      }
      return { status: 'ready', database: db.dialect, migrations: { applied: migrations.applied, expected: migrations.expected }, workers };
    });
    if (opts.delivery) confirmHooks(api, opts.delivery);
    policyRoutes(api, lockstep);
    readRoutes(api, lockstep, opts.delivery);
    propagationRoutes(api, lockstep, opts.metrics, opts.delivery, async () => ({ live: await liveWorkers(db, clock()), expected: expectWorkers }));
    if (opts.delivery) deliveryRoutes(api, opts.delivery, db, opts.watch);
    keyRoutes(api, db);
    applyRoutes(api, lockstep, opts.bodyLimit ?? DEFAULT_BODY_LIMIT);
    dashboardRoutes(api);
    if (opts.directories) {
      directoryRoutes(api, opts.directories.store);
      scimRoutes(api, { db, directories: opts.directories.store, writes: opts.directories.writes, metrics: opts.metrics, authFailureLimit: opts.authFailureLimit });
    }
  });
  return app;
}

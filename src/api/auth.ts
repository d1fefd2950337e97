/**
 * Authorization of API requests: every route declares in its config the least scope it needs;
 * an `onRequest` hook (before the body is read) authenticates the bearer key and checks scope and
 * organization. Routes without `access` are public (health, OpenAPI, docs).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Database } from '../storage/database.ts';
import { createFailureLimiter, type AuthFailureLimit } from './auth-limit.ts';
import { authenticate, createKeyCache, type ApiKey, type KeyScope } from './keys.ts';
import { ApiError } from './problem.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The least key scope the route needs; absent = public. */
    access?: KeyScope;
    /**
     * The route's handler has its answer's own statement read whether the key is still active
     * (`check(…, { liveKey })`): a key this process authenticated before is taken from its cache
     * without a lookup, and `request.confirmKey` is set (docs/adr/0028-*).
     */
    keyCheckedByStatement?: boolean;
  }
  interface FastifyRequest {
    apiKey?: ApiKey;
    /**
     * Set when the key came from the cache and is not yet known to be active: the handler passes its
     * id to the statement that answers, and the error handler calls this before it answers any
     * error — it looks the key up and returns the error to answer instead (401, or 429) if the
     * key is no longer active (or the store's error if the lookup failed), else null.
     */
    confirmKey?: (() => Promise<Error | null>) | undefined;
  }
}

// admin ⊃ write ⊃ check: a write key may also check and list in its organization.
const RANK: Record<KeyScope, number> = { check: 1, write: 2, admin: 3 };

/** The default limit on failed authentication per client address (docs/errors.md, README). */
export const DEFAULT_AUTH_FAILURE_LIMIT: AuthFailureLimit = { max: 20, windowMs: 60_000 };

export function installAuth(app: FastifyInstance, db: Database, limit: AuthFailureLimit = DEFAULT_AUTH_FAILURE_LIMIT) {
  const failures = createFailureLimiter(limit);
  const cache = createKeyCache();
  /** The error a failed authentication is answered with (401, or 429 over the limit). */
  const failed = (request: FastifyRequest): ApiError => {
    const f = failures.fail(request.ip);
    if (f.limited) {
      // One warning per address and window; the rest of its failures are not logged at info.
      if (f.firstOver) request.log.warn({ client: request.ip, failures: f.failures, windowMs: limit.windowMs }, 'failed authentications over the limit: answering 429');
      return new ApiError('RATE_LIMITED', `too many failed authentications from this address; retry in ${f.retryAfterSeconds} s`, undefined, f.retryAfterSeconds);
    }
    return new ApiError('UNAUTHENTICATED', 'send a valid API key as Authorization: Bearer <key>');
  };
  app.decorateRequest('apiKey', undefined);
  app.decorateRequest('confirmKey', undefined);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const access = request.routeOptions.config.access;
    if (access === undefined) return;
    const header = request.headers.authorization;
    const cached = request.routeOptions.config.keyCheckedByStatement ? cache.get(header) : undefined;
    const key = cached ?? (await authenticate(db, header));
    if (!key) throw failed(request);
    if (cached) {
      request.confirmKey = async () => {
        try {
          if (await authenticate(db, header)) return null;
        } catch (e) {
          // The store did not answer: that is the error to answer (problem+json), not an escape
          // from the error handler.
          return e instanceof Error ? e : new Error(String(e));
        }
        cache.forget(header);
        return failed(request);
      };
    } else if (request.routeOptions.config.keyCheckedByStatement) {
      cache.remember(header, key);
    }
    const org = (request.params as { org?: string } | undefined)?.org;
    if (key.scope !== 'admin' && org !== undefined && key.org !== org) {
      throw new ApiError('FORBIDDEN', 'this API key belongs to another organization', 'org');
    }
    if (RANK[key.scope] < RANK[access]) {
      throw new ApiError('FORBIDDEN', `this route needs a ${access} key; this one has scope ${key.scope}`);
    }
    request.apiKey = key;
  });
}

/** The actor recorded in the change log for a write. */
export const actorOf = (request: FastifyRequest) => (request.apiKey ? `key:${request.apiKey.id}` : undefined);

/**
 * Targets, the watch stream, the SSF discovery documents, and revoke-and-confirm (`?confirm=MS` on
 * any policy write: after the commit, wait — bounded — for the critical targets' acknowledgements
 * and report each in `propagation.targets`; an unconfirmed target never fails the write).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { notFound, validation } from '../../domain/errors.ts';
import type { Delivery } from '../../delivery/service.ts';
import { ensureStream } from '../../delivery/targets.ts';
import { withTriggerRetry } from '../../storage/diff-triggers.ts';
import { lockForWrite } from '../../storage/locks.ts';
import { SSF_EVENTS } from '../../delivery/signing.ts';
import type { Database } from '../../storage/database.ts';
import * as s from '../schemas/delivery.ts';
import { pageOfQuery } from '../schemas/common.ts';

declare module 'fastify' {
  interface FastifyRequest {
    confirmMs?: number;
  }
}

type Org = { org: string };
/** Larger than any event's seq (an INTEGER column: PostgreSQL refuses a wider parameter). */
const MAX_SEQ = 2_147_483_647;
type TargetParams = Org & { id: string };

export interface WatchOptions {
  heartbeatMs?: number;
  pollMs?: number;
}

/**
 * Registers the confirm hooks and the engine's wake-up; must run before the policy routes are
 * registered. Every route refuses a malformed `?confirm=`; the routes that may write (a method other
 * than GET and HEAD, and not a check key's route) also get the confirmation of their answer and the
 * wake-up after it. A check's route has neither: its answer carries no propagation, and reads
 * produce no events (issue 13: waking for checks ran one lane-claim transaction per check; a hook
 * that does nothing still costs each request its turn).
 */
export function confirmHooks(app: FastifyInstance, delivery: Delivery) {
  app.decorateRequest('confirmMs', undefined);
  app.addHook('preValidation', async (req) => {
    const raw = (req.query as { confirm?: unknown } | undefined)?.confirm;
    if (raw === undefined || req.method === 'GET') return;
    if (typeof raw !== 'string' || !/^\d{1,6}$/.test(raw)) throw validation('confirm', 'confirm must be a number of milliseconds');
    req.confirmMs = Math.min(Number(raw), delivery.confirmMaxMs);
  });
  const confirm = async (req: FastifyRequest, _reply: FastifyReply, payload: unknown) => {
    const org = (req.params as Partial<Org> | undefined)?.org;
    if (req.confirmMs === undefined || !org) return payload;
    const p = payload as { revision?: number; changed?: boolean; propagation?: object } | null;
    if (!p || typeof p !== 'object' || typeof p.revision !== 'number' || !p.propagation) return payload;
    const targets = p.changed ? await delivery.confirm(org, p.revision, req.confirmMs) : [];
    return { ...p, propagation: { ...p.propagation, targets } };
  };
  // A write may have produced events: wake this process's engine rather than wait for its poll.
  const wake = async (req: FastifyRequest) => {
    if (req.method !== 'GET') delivery.deliverer.wake();
  };
  app.addHook('onRoute', (route) => {
    const writes = [route.method].flat().some((m) => m !== 'GET' && m !== 'HEAD');
    if (!writes || route.config?.access === 'check') return;
    route.preSerialization = [...[route.preSerialization ?? []].flat(), confirm];
    route.onResponse = [...[route.onResponse ?? []].flat(), wake];
  });
}

export function deliveryRoutes(app: FastifyInstance, delivery: Delivery, db: Database, watchOpts: WatchOptions = {}) {
  const base = '/v1/organizations/:org';
  const write = { config: { access: 'write' as const } };
  const t = delivery.targets;

  app.post<{ Params: Org; Body: Record<string, unknown> }>(`${base}/targets`, { schema: s.createTarget, ...write }, async (req, reply) => {
    const created = await t.create(req.params.org, req.body);
    delivery.deliverer.wake();
    return reply.code(201).send(created);
  });
  app.get<{ Params: Org; Querystring: { limit?: string; cursor?: string } }>(`${base}/targets`, { schema: s.listTargets, ...write }, (req) =>
    t.list(req.params.org, pageOfQuery(req.query)),
  );
  app.get<{ Params: TargetParams }>(`${base}/targets/:id`, { schema: s.getTarget, ...write }, (req) => t.get(req.params.org, req.params.id));
  app.delete<{ Params: TargetParams }>(`${base}/targets/:id`, { schema: s.deleteTarget, ...write }, (req) => t.remove(req.params.org, req.params.id));
  app.post<{ Params: TargetParams; Body: { fromRevision?: unknown } }>(`${base}/targets/:id/replay`, { schema: s.replayTarget, ...write }, async (req) => {
    const r = await t.replay(req.params.org, req.params.id, req.body);
    delivery.deliverer.wake();
    return r;
  });
  app.post<{ Params: TargetParams; Body: { graceSeconds?: unknown } | undefined }>(
    `${base}/targets/:id/secret`,
    {
      schema: s.rotateSecret,
      ...write,
      preValidation: async (req) => {
        if (req.body === undefined || req.body === null) req.body = {};
      },
    },
    (req) => t.rotateSecret(req.params.org, req.params.id, req.body ?? {}),
  );

  // — the watch stream —
  const open = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of open) res.end();
  });
  const heartbeatMs = watchOpts.heartbeatMs ?? 15_000;
  const pollMs = watchOpts.pollMs ?? 200;
  app.get<{ Params: Org; Querystring: { after?: string } }>(`${base}/watch`, { schema: s.watch, config: { access: 'check' } }, async (req, reply) => {
    const org = req.params.org;
    const current = await withTriggerRetry(db, async (tx) => {
      await lockForWrite(tx, org);
      const row = await tx.get<{ revision: number }>(`SELECT revision FROM organizations WHERE id = $1${tx.forUpdate}`, [org]);
      if (!row) throw notFound('org', 'organization', org);
      await ensureStream(tx, org, Number(row.revision), Date.now());
      return Number(row.revision);
    });
    let cursor = { revision: req.query.after === undefined ? current : Number(req.query.after), seq: MAX_SEQ };
    const last = req.headers['last-event-id'];
    if (typeof last === 'string') {
      const m = /^(\d{1,15})\.(\d{1,9})$/.exec(last);
      if (!m) throw validation('Last-Event-ID', 'Last-Event-ID must be REVISION.SEQ as sent in an event id');
      cursor = { revision: Number(m[1]), seq: Number(m[2]) };
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': req.id });
    res.write(`retry: 1000\n: watching ${org} after revision ${cursor.revision}\n\n`);
    open.add(res);
    let closed = false;
    res.on('close', () => {
      closed = true;
      open.delete(res);
    });
    let lastWrite = Date.now();
    while (!closed) {
      const rows = await db
        .all<{ revision: number; seq: number; type: string; body: string; decided_at: number; enforced_at: number }>(
          `SELECT revision, seq, type, body, decided_at, enforced_at FROM delivery_events
            WHERE org_id = $1 AND (revision > $2 OR (revision = $2 AND seq > $3)) ORDER BY revision, seq LIMIT 500`,
          [org, cursor.revision, cursor.seq],
        )
        .catch((err: unknown) => {
          // The stream ends; the client reconnects with Last-Event-ID and loses nothing.
          req.log.warn({ err, org }, 'watch stream read failed');
          return undefined;
        });
      if (rows === undefined) break;
      for (const r of rows) {
        const data = { type: r.type, organization: org, revision: Number(r.revision), ...JSON.parse(r.body), decidedAt: new Date(Number(r.decided_at)).toISOString(), enforcedAt: new Date(Number(r.enforced_at)).toISOString() };
        res.write(`id: ${r.revision}.${r.seq}\nevent: ${r.type}\ndata: ${JSON.stringify(data)}\n\n`);
        cursor = { revision: Number(r.revision), seq: Number(r.seq) };
        lastWrite = Date.now();
      }
      if (rows.length === 500) continue;
      if (Date.now() - lastWrite >= heartbeatMs) {
        res.write(': heartbeat\n\n');
        lastWrite = Date.now();
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
    open.delete(res);
    if (!res.writableEnded) res.end();
  });

  // — SSF discovery (public) —
  app.get('/.well-known/jwks.json', { schema: { hide: true } }, () => delivery.keys.jwks());
  app.get('/.well-known/ssf-configuration', { schema: { hide: true } }, () => {
    const iss = delivery.issuer();
    return {
      spec_version: '1_0',
      issuer: iss,
      jwks_uri: `${iss}/.well-known/jwks.json`,
      delivery_methods_supported: ['urn:ietf:rfc:8935'],
      configuration_endpoint: `${iss}/v1/organizations/{org}/targets`,
      authorization_schemes: [{ spec_urn: 'urn:ietf:rfc:6750' }],
      events_supported: [SSF_EVENTS.sessionRevoked, SSF_EVENTS.tokenClaimsChange, SSF_EVENTS.verification],
    };
  });
}

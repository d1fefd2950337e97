/** Checks, listings and receipts: what `check` keys may call. */
import type { FastifyInstance } from 'fastify';
import type { CheckBatchRequest, CheckRequest, Lockstep } from '../../domain/contract.ts';
import type { Direction } from '../../domain/model.ts';
import { pageOfQuery } from '../schemas/common.ts';
import * as s from '../schemas/reads.ts';
import type { Delivery } from '../../delivery/service.ts';

type Org = { org: string };

export function readRoutes(app: FastifyInstance, lockstep: Lockstep, delivery?: Delivery) {
  const base = '/v1/organizations/:org';
  const check = { config: { access: 'check' as const } };

  // The check's own statement reads whether its key is still active (docs/adr/0028-*): a key seen
  // before costs no lookup of its own.
  app.post<{ Params: Org; Body: CheckRequest }>(`${base}/check`, { schema: s.check, config: { access: 'check', keyCheckedByStatement: true } }, (req) =>
    lockstep.check(req.params.org, req.body, req.confirmKey ? { liveKey: req.apiKey!.id } : {}),
  );
  app.post<{ Params: Org; Body: CheckBatchRequest }>(`${base}/check/batch`, { schema: s.checkBatch, ...check }, (req) => lockstep.checkBatch(req.params.org, req.body));
  type Page = { limit?: string; cursor?: string };
  app.get<{ Params: Org & { id: string }; Querystring: Page & { permission: string; type?: string } }>(
    `${base}/subjects/:id/resources`,
    { schema: s.lookupResources, ...check },
    (req) => {
      const { permission, type } = req.query;
      return lockstep.lookupResources(req.params.org, req.params.id, { ...pageOfQuery(req.query), permission, ...(type ? { type } : {}) });
    },
  );
  app.get<{ Params: Org & { id: string }; Querystring: Page & { at?: string; permission?: string; resource?: string } }>(
    `${base}/subjects/:id/effective`,
    { schema: s.subjectEffective, ...check },
    (req) => {
      const { at, permission, resource } = req.query;
      const q = { ...pageOfQuery(req.query), ...(permission ? { permission } : {}), ...(resource ? { resource } : {}) };
      return at === undefined ? lockstep.subjectEffective(req.params.org, req.params.id, q) : lockstep.subjectEffectiveAt(req.params.org, req.params.id, at, q);
    },
  );
  app.get<{ Params: Org & { type: string; id: string }; Querystring: Page & { permission: string; at?: string; via?: 'direct' | 'group' } }>(
    `${base}/resources/:type/:id/access`,
    { schema: s.resourceAccess, ...check },
    (req) => {
      const ref = `${req.params.type}:${req.params.id}`;
      const { at, permission, via } = req.query;
      const q = { ...pageOfQuery(req.query), ...(via ? { via } : {}) };
      return at === undefined
        ? lockstep.resourceAccess(req.params.org, ref, permission, q)
        : lockstep.resourceAccessAt(req.params.org, ref, permission, at, q);
    },
  );
  app.get<{ Params: Org; Querystring: { direction?: Direction; since?: string; until?: string; before?: string; limit?: string } }>(
    `${base}/changes`,
    { schema: s.listChanges, ...check },
    async (req) => {
      const q = req.query;
      const page = await lockstep.listChanges(req.params.org, {
        ...(q.direction ? { direction: q.direction } : {}),
        ...(q.since ? { since: q.since } : {}),
        ...(q.until ? { until: q.until } : {}),
        ...(q.before ? { before: Number(q.before) } : {}),
        ...(q.limit ? { limit: Number(q.limit) } : {}),
      });
      return delivery ? { ...page, changes: await delivery.withDelivery(req.params.org, page.changes) } : page;
    },
  );
  app.get<{ Params: Org; Querystring: { window?: string } }>(`${base}/slo`, { schema: s.slo, ...check }, (req) =>
    lockstep.sloReport(req.params.org, req.query.window ? Number(req.query.window) : 3600),
  );
  // The receipt, with what each target did with the change (when delivery is served).
  app.get<{ Params: Org & { revision: string } }>(`${base}/changes/:revision`, { schema: s.getChange, ...check }, async (req) => {
    const change = await lockstep.getChange(req.params.org, Number(req.params.revision));
    const d = delivery ? await delivery.changeDelivery(req.params.org, change.revision) : null;
    return { ...change, targets: d?.targets ?? [], revocationWindowMs: d?.revocationWindowMs ?? null };
  });
}

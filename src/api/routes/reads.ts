/** Checks, listings and receipts: what `check` keys may call. */
import type { FastifyInstance } from 'fastify';
import type { CheckRequest, Lockstep } from '../../core/types.ts';
import * as s from '../schemas/reads.ts';

type Org = { org: string };

export function readRoutes(app: FastifyInstance, lockstep: Lockstep) {
  const base = '/v1/organizations/:org';
  const check = { config: { access: 'check' as const } };

  app.post<{ Params: Org; Body: CheckRequest }>(`${base}/check`, { schema: s.check, ...check }, (req) => lockstep.check(req.params.org, req.body));
  app.get<{ Params: Org & { id: string } }>(`${base}/subjects/:id/effective`, { schema: s.subjectEffective, ...check }, (req) =>
    lockstep.subjectEffective(req.params.org, req.params.id),
  );
  app.get<{ Params: Org & { type: string; id: string }; Querystring: { permission: string } }>(
    `${base}/resources/:type/:id/access`,
    { schema: s.resourceAccess, ...check },
    (req) => lockstep.resourceAccess(req.params.org, `${req.params.type}:${req.params.id}`, req.query.permission),
  );
  app.get<{ Params: Org & { revision: string } }>(`${base}/changes/:revision`, { schema: s.getChange, ...check }, (req) =>
    lockstep.getChange(req.params.org, Number(req.params.revision)),
  );
}

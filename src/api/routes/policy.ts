/** The policy write routes (v1 contract) and the getters of the objects they write. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Lockstep, WriteContext, WriteResult } from '../../domain/contract.ts';
import { actorOf } from '../auth.ts';
import { pageOfQuery } from '../schemas/common.ts';
import * as s from '../schemas/policy.ts';

type Org = { org: string };
type WithId = Org & { id: string };

const ctxOf = (request: FastifyRequest): WriteContext => {
  const actor = actorOf(request);
  return actor === undefined ? { requestId: request.id } : { actor, requestId: request.id };
};

/**
 * Deletes answer 200 with the same body as every other write; the revision and propagation status
 * are repeated in headers (clients written against the earlier 204 read them there).
 */
function deleted(reply: FastifyReply, r: WriteResult) {
  return reply.code(200).header('Lockstep-Revision', String(r.revision)).header('Lockstep-Propagation', r.propagation.status).send(r);
}

export function policyRoutes(app: FastifyInstance, lockstep: Lockstep) {
  const base = '/v1/organizations/:org';
  const write = { config: { access: 'write' as const } };

  app.put<{ Params: Org; Body: { name?: string | null } }>(
    base,
    { schema: s.putOrganization, config: { access: 'admin', optionalBody: true } },
    (req) => lockstep.putOrganization(req.params.org, req.body, ctxOf(req)),
  );
  app.get<{ Params: Org }>(base, { schema: s.getOrganization, ...write }, (req) => lockstep.getOrganization(req.params.org));
  // Any key: an organization-scoped one learns its own organization (and nothing of the others).
  app.get('/v1/organizations', { schema: s.listOrganizations, config: { access: 'check' } }, async (req) => {
    const key = req.apiKey!;
    const own = key.scope === 'admin' ? undefined : (key.org ?? undefined);
    return { organizations: await lockstep.listOrganizations(own), key: { scope: key.scope, org: key.org ?? null } };
  });

  app.put<{ Params: Org & { slug: string }; Body: { risk: string } }>(`${base}/permissions/:slug`, { schema: s.putPermission, ...write }, (req) =>
    lockstep.putPermission(req.params.org, req.params.slug, req.body, ctxOf(req)),
  );
  app.put<{ Params: Org & { slug: string }; Body: { permissions: string[] } }>(`${base}/roles/:slug`, { schema: s.putRole, ...write }, (req) =>
    lockstep.putRole(req.params.org, req.params.slug, req.body, ctxOf(req)),
  );

  type ResParams = Org & { type: string; id: string };
  app.put<{ Params: ResParams; Body: { parent?: string | null } }>(
    `${base}/resources/:type/:id`,
    { schema: s.putResource, config: { access: 'write', optionalBody: true } },
    (req) => lockstep.putResource(req.params.org, req.params.type, req.params.id, req.body, ctxOf(req)),
  );
  app.delete<{ Params: ResParams }>(`${base}/resources/:type/:id`, { schema: s.deleteResource, ...write }, async (req, reply) =>
    deleted(reply, await lockstep.deleteResource(req.params.org, req.params.type, req.params.id, ctxOf(req))),
  );

  app.put<{ Params: WithId; Body: { kind: string; active?: boolean } }>(`${base}/subjects/:id`, { schema: s.putSubject, ...write }, (req) =>
    lockstep.putSubject(req.params.org, req.params.id, req.body, ctxOf(req)),
  );
  app.get<{ Params: WithId }>(`${base}/subjects/:id`, { schema: s.getSubject, ...write }, (req) => lockstep.getSubject(req.params.org, req.params.id));
  app.delete<{ Params: WithId }>(`${base}/subjects/:id`, { schema: s.deleteSubject, ...write }, async (req, reply) =>
    deleted(reply, await lockstep.deleteSubject(req.params.org, req.params.id, ctxOf(req))),
  );

  app.put<{ Params: WithId; Body: { name?: string | null } }>(
    `${base}/groups/:id`,
    { schema: s.putGroup, config: { access: 'write', optionalBody: true } },
    (req) => lockstep.putGroup(req.params.org, req.params.id, req.body, ctxOf(req)),
  );
  app.delete<{ Params: WithId }>(`${base}/groups/:id`, { schema: s.deleteGroup, ...write }, async (req, reply) =>
    deleted(reply, await lockstep.deleteGroup(req.params.org, req.params.id, ctxOf(req))),
  );
  type MemberParams = WithId & { subject: string };
  app.put<{ Params: MemberParams; Body: { expiresAt?: string | null } }>(
    `${base}/groups/:id/members/:subject`,
    { schema: s.putMember, config: { access: 'write', optionalBody: true } },
    (req) => lockstep.addMember(req.params.org, req.params.id, req.params.subject, req.body, ctxOf(req)),
  );
  app.get<{ Params: WithId; Querystring: { kind?: 'subject' | 'group'; limit?: string; cursor?: string } }>(
    `${base}/groups/:id/members`,
    { schema: s.listMembers, ...write },
    (req) => lockstep.listMembers(req.params.org, req.params.id, { ...pageOfQuery(req.query), ...(req.query.kind ? { kind: req.query.kind } : {}) }),
  );
  app.delete<{ Params: MemberParams }>(`${base}/groups/:id/members/:subject`, { schema: s.deleteMember, ...write }, async (req, reply) =>
    deleted(reply, await lockstep.removeMember(req.params.org, req.params.id, req.params.subject, ctxOf(req))),
  );

  app.post<{ Params: Org; Body: { principal: string; role: string; resource: string; expiresAt?: string | null } }>(
    `${base}/assignments`,
    { schema: s.postAssignment, ...write },
    async (req, reply) => {
      const r = await lockstep.createAssignment(req.params.org, req.body, ctxOf(req));
      return reply.code(r.created ? 201 : 200).send({ id: r.id, revision: r.revision, changed: r.changed, propagation: r.propagation });
    },
  );
  app.get<{ Params: WithId }>(`${base}/assignments/:id`, { schema: s.getAssignment, ...write }, (req) =>
    lockstep.getAssignment(req.params.org, req.params.id),
  );
  app.delete<{ Params: WithId }>(`${base}/assignments/:id`, { schema: s.deleteAssignment, ...write }, async (req, reply) =>
    deleted(reply, await lockstep.deleteAssignment(req.params.org, req.params.id, ctxOf(req))),
  );
}

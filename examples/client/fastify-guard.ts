/**
 * An application's own HTTP server that asks Lockstep before a handler runs: docs/client.md walks
 * through it, and test/client/guard-examples.test.ts runs it against a live Lockstep.
 *
 *   LOCKSTEP_URL=http://127.0.0.1:7300 LOCKSTEP_KEY=lsk_… node --import tsx examples/client/fastify-guard.ts
 */
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { createClient, LockstepError } from '@lockstep/client';

export interface GuardOptions {
  /** Lockstep's address and a key allowed to check in `org` (a `check`-scoped key is enough). */
  url: string;
  key: string;
  org: string;
}

export function buildApp(opts: GuardOptions) {
  const lockstep = createClient({ url: opts.url, key: opts.key });
  const app = Fastify();

  /**
   * A preHandler that lets the request through only when its user holds `permission` on the
   * resource `resourceOf` names. Who the user is comes from your authentication; this example
   * trusts an `x-user` header, which a real application must not.
   */
  const requires =
    (permission: string, resourceOf: (req: FastifyRequest) => string) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      const subject = req.headers['x-user'];
      if (typeof subject !== 'string') return reply.code(401).send({ error: 'sign in first' });
      try {
        const r = await lockstep.check(opts.org, { subject, permission, resource: resourceOf(req) });
        if (!r.allowed) return reply.code(403).send({ error: `${subject} may not ${permission}` });
      } catch (e) {
        // A malformed resource or subject from the request: refuse it. Anything else (Lockstep
        // unreachable, still catching up after its retries) fails closed, as a 503.
        if (e instanceof LockstepError && e.status === 400) return reply.code(403).send({ error: e.detail });
        req.log.error({ err: e }, 'authorization check failed');
        return reply.code(503).send({ error: 'authorization is unavailable; retry' });
      }
    };

  app.get<{ Params: { id: string } }>('/docs/:id', { preHandler: requires('doc.read', (req) => `doc:${(req.params as { id: string }).id}`) }, async (req) => ({
    id: req.params.id,
    body: 'the document',
  }));
  app.delete<{ Params: { id: string } }>('/docs/:id', { preHandler: requires('doc.delete', (req) => `doc:${(req.params as { id: string }).id}`) }, async (req) => ({
    deleted: req.params.id,
  }));
  return app;
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const app = buildApp({ url: process.env.LOCKSTEP_URL ?? 'http://127.0.0.1:7300', key: process.env.LOCKSTEP_KEY ?? '', org: process.env.LOCKSTEP_ORG ?? 'acme' });
  process.stdout.write(`listening on ${await app.listen({ port: 8080 })}\n`);
}

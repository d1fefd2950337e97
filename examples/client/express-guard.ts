/**
 * The Express version of fastify-guard.ts: a middleware that asks Lockstep before a handler runs.
 * docs/client.md walks through it; test/client/guard-examples.test.ts runs it against a live Lockstep.
 *
 *   LOCKSTEP_URL=http://127.0.0.1:7300 LOCKSTEP_KEY=lsk_… node --import tsx examples/client/express-guard.ts
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { createClient, LockstepError } from '@lockstep/client';

export interface GuardOptions {
  /** Lockstep's address and a key allowed to check in `org` (a `check`-scoped key is enough). */
  url: string;
  key: string;
  org: string;
}

export function buildApp(opts: GuardOptions) {
  const lockstep = createClient({ url: opts.url, key: opts.key });
  const app = express();

  /**
   * Middleware that calls `next()` only when the request's user holds `permission` on the resource
   * `resourceOf` names. Who the user is comes from your authentication; this example trusts an
   * `x-user` header, which a real application must not.
   */
  const requires =
    (permission: string, resourceOf: (req: Request) => string): RequestHandler =>
    async (req: Request, res: Response, next: NextFunction) => {
      const subject = req.header('x-user');
      if (subject === undefined) return void res.status(401).json({ error: 'sign in first' });
      try {
        const r = await lockstep.check(opts.org, { subject, permission, resource: resourceOf(req) });
        if (!r.allowed) return void res.status(403).json({ error: `${subject} may not ${permission}` });
      } catch (e) {
        // A malformed resource or subject from the request: refuse it. Anything else (Lockstep
        // unreachable, still catching up after its retries) fails closed, as a 503.
        if (e instanceof LockstepError && e.status === 400) return void res.status(403).json({ error: e.detail });
        console.error('authorization check failed', e);
        return void res.status(503).json({ error: 'authorization is unavailable; retry' });
      }
      next();
    };

  const doc = (req: Request) => `doc:${String(req.params.id)}`;
  app.get('/docs/:id', requires('doc.read', doc), (req, res) => {
    res.json({ id: req.params.id, body: 'the document' });
  });
  app.delete('/docs/:id', requires('doc.delete', doc), (req, res) => {
    res.json({ deleted: req.params.id });
  });
  return app;
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const app = buildApp({ url: process.env.LOCKSTEP_URL ?? 'http://127.0.0.1:7300', key: process.env.LOCKSTEP_KEY ?? '', org: process.env.LOCKSTEP_ORG ?? 'acme' });
  app.listen(8080, () => process.stdout.write('listening on http://127.0.0.1:8080\n'));
}

/**
 * The docs/client.md guard examples run as written — examples/client/fastify-guard.ts (a Fastify
 * `preHandler`) and examples/client/express-guard.ts (Express middleware): each application server
 * checks with a live Lockstep before a handler runs. Both engines, real HTTP on loopback, the same
 * assertions for both frameworks.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as expressGuard from '../../examples/client/express-guard.ts';
import * as fastifyGuard from '../../examples/client/fastify-guard.ts';
import type { GuardOptions } from '../../examples/client/fastify-guard.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { seed, startHarness, type Harness } from '../e2e/harness.ts';

/** A running example server: its base URL and how to stop it. */
interface Running {
  base: string;
  close: () => Promise<void>;
}

const examples: { name: string; start: (opts: GuardOptions) => Promise<Running> }[] = [
  {
    name: 'Fastify',
    async start(opts) {
      const app = fastifyGuard.buildApp(opts);
      const base = await app.listen({ host: '127.0.0.1', port: 0 });
      return { base, close: () => app.close() };
    },
  },
  {
    name: 'Express',
    async start(opts) {
      const server = await new Promise<Server>((resolve) => {
        const s = expressGuard.buildApp(opts).listen(0, '127.0.0.1', () => resolve(s));
      });
      return {
        base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () => new Promise<void>((r) => server.close(() => r())),
      };
    },
  },
];

describeEachEngine('client: the guard examples', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(engine);
    await seed(h, 'acme');
    // the seed's asynchronous grants, propagated by the server's worker
    for (let i = 0; i < 400 && (await h.req('GET', '/v1/jobs?org=acme')).json.jobs.some((j: { state: string }) => j.state !== 'done'); i++) await new Promise((r) => setTimeout(r, 25));
  });
  afterAll(() => h?.close());

  for (const example of examples) {
    describe(example.name, () => {
      let app: Running;
      beforeAll(async () => {
        app = await example.start({ url: h.url, key: await h.key('check', 'acme'), org: 'acme' });
      });
      afterAll(() => app?.close());
      const get = (method: string, path: string, user?: string) => fetch(app.base + path, { method, headers: user === undefined ? {} : { 'x-user': user } });

      it('runs the handler when Lockstep allows, refuses with 403 when it denies, 401 without a user', async () => {
        const read = await get('GET', '/docs/readme', 'alice');
        expect(read.status).toBe(200);
        expect(await read.json()).toEqual({ id: 'readme', body: 'the document' });
        // alice is a viewer: doc.read, not doc.delete
        const del = await get('DELETE', '/docs/readme', 'alice');
        expect(del.status).toBe(403);
        expect(await del.json()).toEqual({ error: 'alice may not doc.delete' });
        expect((await get('GET', '/docs/readme', 'bot')).status).toBe(403);
        expect((await get('GET', '/docs/readme')).status).toBe(401);
      });

      it('a malformed subject is refused (403, the problem detail), not passed through', async () => {
        const r = await get('GET', '/docs/readme', 'not a valid id');
        expect(r.status).toBe(403);
        expect((await r.json()).error).toMatch(/subject/);
      });

      it('Lockstep unreachable: fails closed with 503', async () => {
        // a port nothing listens on any more
        const gone = await example.start({ url: h.url, key: '', org: 'acme' });
        const port = new URL(gone.base).port;
        await gone.close();
        const unreachable = await example.start({ url: `http://127.0.0.1:${port}`, key: 'lsk_x', org: 'acme' });
        try {
          const r = await fetch(`${unreachable.base}/docs/readme`, { headers: { 'x-user': 'alice' } });
          expect(r.status).toBe(503);
        } finally {
          await unreachable.close();
        }
      });
    });
  }

  // Last: it revokes alice's membership, which the other tests rely on.
  describe('a revocation in Lockstep', () => {
    const apps: Running[] = [];
    beforeAll(async () => {
      const key = await h.key('check', 'acme');
      for (const example of examples) apps.push(await example.start({ url: h.url, key, org: 'acme' }));
    });
    afterAll(() => Promise.all(apps.map((a) => a.close())));

    it('closes the route at once in every example', async () => {
      const read = (a: Running) => fetch(`${a.base}/docs/readme`, { headers: { 'x-user': 'alice' } }).then((r) => r.status);
      expect(await Promise.all(apps.map(read))).toEqual(apps.map(() => 200));
      const r = await h.req('DELETE', '/v1/organizations/acme/groups/eng/members/alice');
      expect(r.status).toBe(200);
      expect(await Promise.all(apps.map(read))).toEqual(apps.map(() => 403));
    });
  });
});

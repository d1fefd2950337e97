/**
 * examples/client/express-guard.ts (the docs/client.md Express example) run as written: its
 * middleware checks with a live Lockstep before each handler. Both engines, real HTTP on loopback.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from '../../examples/client/express-guard.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { seed, startHarness, type Harness } from '../e2e/harness.ts';

describeEachEngine('client: the Express guard example', (engine) => {
  let h: Harness;
  let server: Server;
  let base: string;
  beforeAll(async () => {
    h = await startHarness(engine);
    await seed(h, 'acme');
    // the seed's asynchronous grants, propagated by the server's worker
    for (let i = 0; i < 400 && (await h.req('GET', '/v1/jobs?org=acme')).json.jobs.some((j: { state: string }) => j.state !== 'done'); i++) await new Promise((r) => setTimeout(r, 25));
    const app = buildApp({ url: h.url, key: await h.key('check', 'acme'), org: 'acme' });
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    await h?.close();
  });

  const get = (method: string, path: string, user?: string) => fetch(base + path, { method, headers: user === undefined ? {} : { 'x-user': user } });

  it('runs the handler when Lockstep allows, refuses with 403 when it denies, 401 without a user', async () => {
    const read = await get('GET', '/docs/readme', 'alice');
    expect(read.status).toBe(200);
    expect(await read.json()).toEqual({ id: 'readme', body: 'the document' });
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

  it('a revocation in Lockstep closes the route at once', async () => {
    expect((await get('GET', '/docs/readme', 'alice')).status).toBe(200);
    const r = await h.req('DELETE', '/v1/organizations/acme/groups/eng/members/alice');
    expect(r.status).toBe(200);
    expect((await get('GET', '/docs/readme', 'alice')).status).toBe(403);
  });

  it('Lockstep unreachable: fails closed with 503', async () => {
    // a port nothing listens on any more
    const gone = await new Promise<number>((resolve) => {
      const x = buildApp({ url: h.url, key: '', org: 'acme' }).listen(0, '127.0.0.1', () => {
        const port = (x.address() as AddressInfo).port;
        x.close(() => resolve(port));
      });
    });
    const app = buildApp({ url: `http://127.0.0.1:${gone}`, key: 'lsk_x', org: 'acme' });
    const s = await new Promise<Server>((resolve) => {
      const x = app.listen(0, '127.0.0.1', () => resolve(x));
    });
    try {
      const r = await fetch(`http://127.0.0.1:${(s.address() as AddressInfo).port}/docs/readme`, { headers: { 'x-user': 'alice' } });
      expect(r.status).toBe(503);
    } finally {
      await new Promise((r) => s.close(r));
    }
  });
});

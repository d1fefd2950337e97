/**
 * examples/client/fastify-guard.ts (the docs/client.md example) run as written: its server checks
 * with a live Lockstep before each handler. Both engines, real HTTP on loopback.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildApp } from '../../examples/client/fastify-guard.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { seed, startHarness, type Harness } from '../e2e/harness.ts';

describeEachEngine('client: the Fastify guard example', (engine) => {
  let h: Harness;
  let app: ReturnType<typeof buildApp>;
  let base: string;
  beforeAll(async () => {
    h = await startHarness(engine);
    await seed(h, 'acme');
    // the seed's asynchronous grants, propagated by the server's worker
    for (let i = 0; i < 400 && (await h.req('GET', '/v1/jobs?org=acme')).json.jobs.some((j: { state: string }) => j.state !== 'done'); i++) await new Promise((r) => setTimeout(r, 25));
    app = buildApp({ url: h.url, key: await h.key('check', 'acme'), org: 'acme' });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  const get = (method: string, path: string, user?: string) => fetch(base + path, { method, headers: user === undefined ? {} : { 'x-user': user } });

  it('runs the handler when Lockstep allows, refuses with 403 when it denies', async () => {
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

  it('a revocation in Lockstep closes the route at once', async () => {
    expect((await get('GET', '/docs/readme', 'alice')).status).toBe(200);
    const r = await h.req('DELETE', '/v1/organizations/acme/groups/eng/members/alice');
    expect(r.status).toBe(200);
    expect((await get('GET', '/docs/readme', 'alice')).status).toBe(403);
  });
});

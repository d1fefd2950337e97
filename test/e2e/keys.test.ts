/**
 * The API key routes (GET/POST /v1/keys, DELETE /v1/keys/{id}), both engines: admin keys only; the
 * key is shown once, in the creation answer, and neither listed nor logged; bad input is a
 * problem naming the field and creates nothing; the last admin key cannot be revoked over HTTP.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { ADMIN_KEY, expectProblem, ORG, seed, startHarness, type Harness } from './harness.ts';

describeEachEngine('e2e: API keys over HTTP', (engine) => {
  let h: Harness;
  const count = async () => (await h.app.db.all('SELECT id FROM api_keys')).length;
  beforeAll(async () => {
    h = await startHarness(engine);
    await seed(h, 'acme');
    await seed(h, 'beta');
  });
  afterAll(async () => {
    await h?.close();
  });

  it('an admin creates a check key: shown once, works in its organization only, listed without the secret, never logged', async () => {
    const made = await h.req('POST', '/v1/keys', { body: { scope: 'check', org: 'acme', name: 'web app' } });
    expect(made.status, made.text).toBe(201);
    expect(made.json).toMatchObject({ id: expect.stringMatching(/^[a-z0-9]{16}$/), scope: 'check', org: 'acme', name: 'web app', origin: 'created', revokedAt: null });
    const key: string = made.json.key;
    expect(key).toMatch(new RegExp(`^lsk_${made.json.id}_[A-Za-z0-9_-]{43}$`));
    const check = { subject: 'alice', permission: 'doc.read', resource: 'doc:readme' };
    expect((await h.req('POST', `${ORG}/acme/check`, { key, body: check })).json).toMatchObject({ allowed: true });
    expectProblem(await h.req('POST', `${ORG}/beta/check`, { key, body: check }), 403, 'FORBIDDEN', 'org');

    const list = await h.req('GET', '/v1/keys');
    expect(list.status).toBe(200);
    expect(list.json.keys.find((k: { id: string }) => k.id === made.json.id)).toEqual({ ...made.json, key: undefined });
    const secret = key.slice(`lsk_${made.json.id}_`.length);
    expect(list.text).not.toContain(secret);
    expect(list.text).not.toMatch(/hash/);
    // Logged at debug, every line the server wrote: the creation is there, the key is not.
    expect(h.logs.some((l) => l.includes('API key created') && l.includes(made.json.id))).toBe(true);
    expect(h.logs.join('\n')).not.toContain(secret);
  });

  it('?org= lists one organization; revoked keys only with ?revoked=true', async () => {
    const a = (await h.req('POST', '/v1/keys', { body: { scope: 'write', org: 'acme' } })).json;
    const b = (await h.req('POST', '/v1/keys', { body: { scope: 'write', org: 'beta' } })).json;
    const acme = (await h.req('GET', '/v1/keys?org=acme')).json.keys.map((k: { id: string }) => k.id);
    expect(acme).toContain(a.id);
    expect(acme).not.toContain(b.id);
    expect((await h.req('GET', '/v1/keys?org=acme')).json.keys.every((k: { org: string }) => k.org === 'acme')).toBe(true);
    const revoked = await h.req('DELETE', `/v1/keys/${a.id}`);
    expect(revoked.status, revoked.text).toBe(200);
    expect(revoked.json).toMatchObject({ changed: true, key: { id: a.id, revokedAt: expect.any(String) } });
    expect((await h.req('GET', '/v1/keys?org=acme')).json.keys.map((k: { id: string }) => k.id)).not.toContain(a.id);
    expect((await h.req('GET', '/v1/keys?org=acme&revoked=true')).json.keys.map((k: { id: string }) => k.id)).toContain(a.id);
  });

  it('revocation: the key is refused from the next request; again changes nothing; an unknown id is 404', async () => {
    const made = (await h.req('POST', '/v1/keys', { body: { scope: 'write', org: 'acme' } })).json;
    expect((await h.req('GET', `${ORG}/acme`, { key: made.key })).status).toBe(200);
    expect((await h.req('DELETE', `/v1/keys/${made.id}`)).json.changed).toBe(true);
    expectProblem(await h.req('GET', `${ORG}/acme`, { key: made.key }), 401, 'UNAUTHENTICATED');
    const again = await h.req('DELETE', `/v1/keys/${made.id}`);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ changed: false, key: { id: made.id } });
    expectProblem(await h.req('DELETE', '/v1/keys/0000000000000000'), 404, 'NOT_FOUND', 'id');
    expectProblem(await h.req('DELETE', '/v1/keys/not_an_id'), 400, 'VALIDATION', 'id');
  });

  it('bad input is 400 naming the field, and creates no key', async () => {
    const before = await count();
    const cases: [unknown, string][] = [
      [{ scope: 'admin', org: 'acme' }, 'org'],
      [{ scope: 'write' }, 'org'],
      [{ scope: 'check', org: 'acme', colour: 'red' }, 'colour'],
      [{ scope: 'owner', org: 'acme' }, 'scope'],
      [{ org: 'acme' }, 'scope'],
      [{ scope: 'check', org: 'no spaces' }, 'org'],
      [{ scope: 'check', org: 'acme', name: '' }, 'name'],
    ];
    for (const [body, field] of cases) expectProblem(await h.req('POST', '/v1/keys', { body }), 400, 'VALIDATION', field);
    expectProblem(await h.req('GET', '/v1/keys?revoked=yes'), 400, 'VALIDATION', 'revoked');
    expect(await count()).toBe(before);
  });

  it("check and write keys may not see, create or revoke keys — their own organization's neither", async () => {
    const victim = (await h.req('POST', '/v1/keys', { body: { scope: 'check', org: 'beta' } })).json;
    for (const scope of ['check', 'write'] as const) {
      const key = await h.key(scope, 'acme');
      const before = await count();
      for (const [method, path, body] of [
        ['GET', '/v1/keys'],
        ['GET', '/v1/keys?org=acme'],
        ['GET', '/v1/keys?org=beta'],
        ['POST', '/v1/keys', { scope: 'check', org: 'acme' }],
        ['POST', '/v1/keys', { scope: 'check', org: 'beta' }],
        ['POST', '/v1/keys', { scope: 'admin' }],
        ['DELETE', `/v1/keys/${victim.id}`],
      ] as [string, string, unknown?][]) {
        const r = await h.req(method, path, body === undefined ? { key } : { key, body });
        expectProblem(r, 403, 'FORBIDDEN');
        expect(r.text).not.toContain(victim.id);
      }
      expect(await count()).toBe(before);
    }
    expect((await h.req('GET', '/v1/keys?org=beta')).json.keys.map((k: { id: string }) => k.id)).toContain(victim.id);
  });

  it('the last active admin key cannot be revoked over HTTP (409 naming id); one of two can', async () => {
    const admins = async () => (await h.req('GET', '/v1/keys')).json.keys.filter((k: { scope: string }) => k.scope === 'admin');
    const env = (await admins()).find((k: { origin: string }) => k.origin === 'env');
    expect(env).toBeDefined();
    const second = (await h.req('POST', '/v1/keys', { body: { scope: 'admin', name: 'second' } })).json;
    // The second admin key revokes itself: allowed, another admin key is left.
    expect((await h.req('DELETE', `/v1/keys/${second.id}`, { key: second.key })).json.changed).toBe(true);
    expect((await admins()).map((k: { id: string }) => k.id)).toEqual([env.id]);
    expectProblem(await h.req('DELETE', `/v1/keys/${env.id}`, { key: ADMIN_KEY }), 409, 'CONFLICT', 'id');
    expect((await h.req('GET', '/v1/keys', { key: ADMIN_KEY })).status).toBe(200);
  });
});

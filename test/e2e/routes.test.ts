/** Every v1 route, answered as the contract says, on both engines. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { ORG, seed, startHarness, type Harness } from './harness.ts';

describeEachEngine('e2e: v1 routes', (engine) => {
  let h: Harness;
  let seeded: { assignment: string };
  const acme = `${ORG}/acme`;
  beforeAll(async () => {
    h = await startHarness(engine);
    seeded = await seed(h, 'acme');
  });
  afterAll(async () => {
    await h?.close();
  });

  const expectWrite = (r: { status: number; json: any }, status = 200) => {
    expect(r.status).toBe(status);
    expect(r.json).toMatchObject({ revision: expect.any(Number), changed: expect.any(Boolean) });
    expect(['sync', 'async']).toContain(r.json.propagation.mode);
    expect(['effective', 'pending']).toContain(r.json.propagation.status);
  };

  it('PUT and GET an organization; a repeated PUT changes nothing', async () => {
    const before = (await h.req('GET', acme)).json;
    expect(before).toEqual({ id: 'acme', name: 'Org acme', revision: expect.any(Number) });
    const same = await h.req('PUT', acme, { body: { name: 'Org acme' } });
    expectWrite(same);
    expect(same.json).toMatchObject({ changed: false, revision: before.revision });
    const renamed = await h.req('PUT', acme, { body: { name: 'Acme Corp' } });
    expectWrite(renamed);
    expect(renamed.json).toMatchObject({ changed: true, revision: before.revision + 1 });
    expect((await h.req('GET', acme)).json).toEqual({ id: 'acme', name: 'Acme Corp', revision: before.revision + 1 });
    // A body is optional on PUT organization.
    expectWrite(await h.req('PUT', `${ORG}/bare`));
    expect((await h.req('GET', `${ORG}/bare`)).json).toMatchObject({ id: 'bare', name: null, revision: 1 });
  });

  it('PUT permission and role, with a propagation block', async () => {
    const p = await h.req('PUT', `${acme}/permissions/doc.export`, { body: { risk: 'high' } });
    expectWrite(p);
    expect(p.json.changed).toBe(true);
    const role = await h.req('PUT', `${acme}/roles/exporter`, { body: { permissions: ['doc.export', 'doc.read', 'doc.read'] } });
    expectWrite(role);
    expect(role.json.revision).toBe(p.json.revision + 1);
  });

  it('PUT resource (create, re-parent) and DELETE it: the body of every write, the revision in a header too', async () => {
    expectWrite(await h.req('PUT', `${acme}/resources/ws/other`, { body: { parent: null } }));
    expectWrite(await h.req('PUT', `${acme}/resources/doc/tmp`, { body: { parent: 'ws:main' } }));
    const moved = await h.req('PUT', `${acme}/resources/doc/tmp`, { body: { parent: 'ws:other' } });
    expectWrite(moved);
    const del = await h.req('DELETE', `${acme}/resources/doc/tmp`);
    expectWrite(del);
    expect(del.json).toMatchObject({ revision: moved.json.revision + 1, changed: true, propagation: { status: 'effective' } });
    expect(Number(del.headers.get('lockstep-revision'))).toBe(moved.json.revision + 1);
    expect(del.headers.get('lockstep-propagation')).toBe('effective');
    const again = await h.req('PUT', `${acme}/resources/doc/tmp`);
    expectWrite(again);
  });

  it('PUT, GET, deactivate and DELETE a subject', async () => {
    expectWrite(await h.req('PUT', `${acme}/subjects/carol`, { body: { kind: 'agent' } }));
    expect((await h.req('GET', `${acme}/subjects/carol`)).json).toEqual({ id: 'carol', kind: 'agent', active: true });
    expectWrite(await h.req('PUT', `${acme}/subjects/carol`, { body: { kind: 'agent', active: false } }));
    expect((await h.req('GET', `${acme}/subjects/carol`)).json.active).toBe(false);
    const del = await h.req('DELETE', `${acme}/subjects/carol`);
    expectWrite(del);
    expect(del.json.changed).toBe(true);
    expect(Number(del.headers.get('lockstep-revision'))).toBe(del.json.revision);
    expect((await h.req('GET', `${acme}/subjects/carol`)).status).toBe(404);
  });

  it('groups and memberships: PUT, member PUT/DELETE (idempotent), group DELETE', async () => {
    expectWrite(await h.req('PUT', `${acme}/groups/ops`));
    expectWrite(await h.req('PUT', `${acme}/groups/ops`, { body: { name: 'Operations' } }));
    const add = await h.req('PUT', `${acme}/groups/ops/members/bot`);
    expectWrite(add);
    expect(add.json.changed).toBe(true);
    const again = await h.req('PUT', `${acme}/groups/ops/members/bot`);
    expect(again.json).toMatchObject({ changed: false, revision: add.json.revision });
    const rm = await h.req('DELETE', `${acme}/groups/ops/members/bot`);
    expectWrite(rm);
    expect(rm.json).toMatchObject({ changed: true, revision: add.json.revision + 1 });
    expect(Number(rm.headers.get('lockstep-revision'))).toBe(add.json.revision + 1);
    const rmAgain = await h.req('DELETE', `${acme}/groups/ops/members/bot`);
    expectWrite(rmAgain);
    expect(rmAgain.json).toMatchObject({ changed: false, revision: add.json.revision + 1 });
    expect(Number(rmAgain.headers.get('lockstep-revision'))).toBe(add.json.revision + 1);
    const del = await h.req('DELETE', `${acme}/groups/ops`);
    expectWrite(del);
    expect((await h.req('PUT', `${acme}/groups/ops/members/bot`)).status).toBe(404);
  });

  it('assignments: 201 when created, 200 with the same id when it existed, GET, DELETE 200 with a write body', async () => {
    const body = { principal: 'subject:bot', role: 'owner', resource: 'doc:readme' };
    const created = await h.req('POST', `${acme}/assignments`, { body });
    expectWrite(created, 201);
    expect(created.json.id).toEqual(expect.any(String));
    const existing = await h.req('POST', `${acme}/assignments`, { body });
    expectWrite(existing, 200);
    expect(existing.json).toMatchObject({ id: created.json.id, changed: false, revision: created.json.revision });
    expect((await h.req('GET', `${acme}/assignments/${created.json.id}`)).json).toEqual({ id: created.json.id, ...body, expiresAt: null });
    const del = await h.req('DELETE', `${acme}/assignments/${created.json.id}`);
    expectWrite(del);
    expect(del.json.revision).toBe(created.json.revision + 1);
    expect(Number(del.headers.get('lockstep-revision'))).toBe(created.json.revision + 1);
    expect((await h.req('GET', `${acme}/assignments/${created.json.id}`)).status).toBe(404);
    expect((await h.req('DELETE', `${acme}/assignments/${created.json.id}`)).status).toBe(404);
  });

  it('check: allowed with via, denied, and each consistency mode', async () => {
    const allowed = await h.req('POST', `${acme}/check`, { body: { subject: 'alice', permission: 'doc.read', resource: 'doc:readme' } });
    expect(allowed.status).toBe(200);
    expect(allowed.json).toMatchObject({
      allowed: true,
      revision: expect.any(Number),
      evaluatedAgainst: 'read_model',
      via: { assignment: seeded.assignment, group: 'eng', role: 'viewer', resource: 'ws:main' },
    });
    const denied = await h.req('POST', `${acme}/check`, { body: { subject: 'alice', permission: 'doc.delete', resource: 'doc:readme' } });
    expect(denied.json.allowed).toBe(false);
    expect(denied.json.via).toBeUndefined();
    const full = await h.req('POST', `${acme}/check`, {
      body: { subject: 'alice', permission: 'doc.read', resource: 'doc:readme', consistency: { mode: 'fully_consistent' } },
    });
    expect(full.json).toMatchObject({ allowed: true, evaluatedAgainst: 'source' });
    const fresh = await h.req('POST', `${acme}/check`, {
      body: { subject: 'alice', permission: 'doc.read', resource: 'doc:readme', consistency: { mode: 'at_least_as_fresh', revision: allowed.json.revision } },
    });
    expect(fresh.json.allowed).toBe(true);
    expect(fresh.json.revision).toBeGreaterThanOrEqual(allowed.json.revision);
  });

  it('GET subjects/{id}/effective and resources/{type}/{id}/access', async () => {
    const eff = await h.req('GET', `${acme}/subjects/alice/effective`);
    expect(eff.status).toBe(200);
    expect(eff.json.revision).toEqual(expect.any(Number));
    expect(eff.json.permissions).toContainEqual(
      expect.objectContaining({ permission: 'doc.read', resource: 'ws:main', role: 'viewer', risk: 'standard', via: expect.objectContaining({ group: 'eng' }) }),
    );
    const access = await h.req('GET', `${acme}/resources/doc/readme/access?permission=doc.read`);
    expect(access.status).toBe(200);
    expect(access.json.subjects.map((s: { subject: string }) => s.subject)).toContain('alice');
  });

  it('GET changes/{revision}: the receipt names the actor key and the request id', async () => {
    const w = await h.req('PUT', `${acme}/subjects/dave`, { body: { kind: 'user' }, headers: { 'x-request-id': 'req-receipt-1' } });
    expect(w.headers.get('x-request-id')).toBe('req-receipt-1');
    const c = await h.req('GET', `${acme}/changes/${w.json.revision}`);
    expect(c.status).toBe(200);
    expect(c.json).toMatchObject({
      revision: w.json.revision,
      kind: expect.stringMatching(/^subject\./),
      direction: 'none',
      mode: 'sync',
      requestId: 'req-receipt-1',
      actor: expect.stringMatching(/^key:/),
      decidedAt: expect.any(String),
      rowsAdded: 0,
      rowsRemoved: 0,
    });
    expect((await h.req('GET', `${acme}/changes/999999`)).status).toBe(404);
  });

  it('healthz (no key), openapi.json listing every contract path, and the docs page', async () => {
    const health = await h.req('GET', '/healthz', { key: null });
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ status: 'ok', database: engine.name });
    const doc = (await h.req('GET', '/openapi.json', { key: null })).json;
    expect(doc.openapi).toMatch(/^3\./);
    const o = '/v1/organizations/{org}';
    const want: [string, string][] = [
      [o, 'put'], [o, 'get'],
      [`${o}/permissions/{slug}`, 'put'], [`${o}/roles/{slug}`, 'put'],
      [`${o}/resources/{type}/{id}`, 'put'], [`${o}/resources/{type}/{id}`, 'delete'],
      [`${o}/subjects/{id}`, 'put'], [`${o}/subjects/{id}`, 'get'], [`${o}/subjects/{id}`, 'delete'],
      [`${o}/groups/{id}`, 'put'], [`${o}/groups/{id}`, 'delete'],
      [`${o}/groups/{id}/members/{subject}`, 'put'], [`${o}/groups/{id}/members/{subject}`, 'delete'],
      [`${o}/assignments`, 'post'], [`${o}/assignments/{id}`, 'get'], [`${o}/assignments/{id}`, 'delete'],
      [`${o}/check`, 'post'], [`${o}/subjects/{id}/effective`, 'get'], [`${o}/resources/{type}/{id}/access`, 'get'],
      [`${o}/changes/{revision}`, 'get'], ['/healthz', 'get'], ['/readyz', 'get'],
      [`${o}/check/batch`, 'post'], [`${o}/subjects/{id}/resources`, 'get'],
    ];
    for (const [path, method] of want) expect(doc.paths[path]?.[method], `${method} ${path}`).toBeDefined();
    expect(doc.paths[`${o}/roles/{slug}`].put.requestBody.content['application/json'].schema.additionalProperties).toBe(false);
    // A body the route reads as {} when absent is not required (it was, for every PUT, before the optionalBody flag).
    for (const path of [o, `${o}/resources/{type}/{id}`, `${o}/groups/{id}`, `${o}/groups/{id}/members/{subject}`]) {
      expect(doc.paths[path].put.requestBody.required, path).toBe(false);
    }
    for (const [path, method] of [[`${o}/roles/{slug}`, 'put'], [`${o}/subjects/{id}`, 'put'], [`${o}/assignments`, 'post'], [`${o}/check`, 'post']] as const) {
      expect(doc.paths[path][method].requestBody.required, path).toBe(true);
    }
    // Deletes answer the write body, with the revision repeated in headers.
    for (const path of [`${o}/resources/{type}/{id}`, `${o}/subjects/{id}`, `${o}/groups/{id}`, `${o}/groups/{id}/members/{subject}`, `${o}/assignments/{id}`]) {
      const responses = doc.paths[path].delete.responses;
      expect(responses['204'], path).toBeUndefined();
      expect(responses['200'].content['application/json'].schema.required).toEqual(['revision', 'changed', 'propagation']);
      expect(Object.keys(responses['200'].headers)).toEqual(['Lockstep-Revision', 'Lockstep-Propagation']);
    }
    const ui = await h.req('GET', '/docs', { key: null });
    expect(ui.status).toBe(200);
    expect(ui.headers.get('content-type')).toMatch(/text\/html/);
  });

  it('DELETE a group and a subject that carry assignments revokes their access', async () => {
    const g = await h.req('PUT', `${acme}/groups/temp`);
    expectWrite(g);
    await h.req('PUT', `${acme}/subjects/erin`, { body: { kind: 'user' } });
    await h.req('PUT', `${acme}/groups/temp/members/erin`);
    await h.req('POST', `${acme}/assignments`, { body: { principal: 'group:temp', role: 'owner', resource: 'ws:main' } });
    const check = () => h.req('POST', `${acme}/check`, { body: { subject: 'erin', permission: 'doc.delete', resource: 'doc:readme' } });
    expect((await check()).json.allowed).toBe(true);
    expect((await h.req('DELETE', `${acme}/groups/temp`)).status).toBe(200);
    expect((await check()).json.allowed).toBe(false);
    expect((await h.req('DELETE', `${acme}/subjects/erin`)).status).toBe(200);
    expect((await h.req('GET', `${acme}/subjects/erin/effective`)).status).toBe(404);
  });
});

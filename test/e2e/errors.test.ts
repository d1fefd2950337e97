/**
 * Every error class over HTTP, on both engines: the status, the problem+json body naming the
 * offending field, and — for every rejected write — a store left exactly as it was.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { expectProblem, expectRefusedUnchanged, ORG, seed, startHarness, type Harness, type ProblemCase } from './harness.ts';

const INJECTION = "'; DROP TABLE subjects; --";

const A = `${ORG}/acme`;
const REJECTED_WRITES: ProblemCase[] = [
  // 400: the body is not JSON, or not the right JSON
  { name: 'malformed JSON', method: 'PUT', path: `${A}/subjects/x`, opts: { raw: '{"kind": ' }, status: 400, code: 'VALIDATION', field: 'body' },
  { name: 'empty JSON body', method: 'PUT', path: `${A}/permissions/a.b`, opts: { raw: '' }, status: 400, code: 'VALIDATION', field: 'body' },
  { name: 'a JSON array body', method: 'PUT', path: `${A}/subjects/x`, opts: { body: [{ kind: 'user' }] }, status: 400, code: 'VALIDATION', field: 'body' },
  { name: 'risk as a number', method: 'PUT', path: `${A}/permissions/a.b`, opts: { body: { risk: 1 } }, status: 400, code: 'VALIDATION', field: 'risk' },
  { name: 'risk not in the enum', method: 'PUT', path: `${A}/permissions/a.b`, opts: { body: { risk: 'extreme' } }, status: 400, code: 'VALIDATION', field: 'risk' },
  { name: 'active as a string', method: 'PUT', path: `${A}/subjects/alice`, opts: { body: { kind: 'user', active: 'false' } }, status: 400, code: 'VALIDATION', field: 'active' },
  { name: 'permissions as a string', method: 'PUT', path: `${A}/roles/viewer`, opts: { body: { permissions: 'doc.read' } }, status: 400, code: 'VALIDATION', field: 'permissions' },
  { name: 'a bad slug inside the list', method: 'PUT', path: `${A}/roles/viewer`, opts: { body: { permissions: ['doc.read', 'Doc Read!'] } }, status: 400, code: 'VALIDATION', field: 'permissions[1]' },
  { name: 'an unknown top-level field', method: 'PUT', path: `${A}/subjects/alice`, opts: { body: { kind: 'user', admin: true } }, status: 400, code: 'VALIDATION', field: 'admin' },
  { name: '__proto__ in the body', method: 'PUT', path: `${A}/subjects/zed`, opts: { raw: '{"kind":"user","__proto__":{"active":false}}' }, status: 400, code: 'VALIDATION' },
  { name: 'a missing required field', method: 'POST', path: `${A}/assignments`, opts: { body: { principal: 'subject:alice', resource: 'ws:main' } }, status: 400, code: 'VALIDATION', field: 'role' },
  { name: 'a principal of the wrong kind', method: 'POST', path: `${A}/assignments`, opts: { body: { principal: 'user:alice', role: 'viewer', resource: 'ws:main' } }, status: 400, code: 'VALIDATION', field: 'principal' },
  { name: 'a resource without type', method: 'POST', path: `${A}/assignments`, opts: { body: { principal: 'subject:alice', role: 'viewer', resource: 'main' } }, status: 400, code: 'VALIDATION', field: 'resource' },
  { name: 'a parent that is not type:id', method: 'PUT', path: `${A}/resources/doc/x`, opts: { body: { parent: INJECTION } }, status: 400, code: 'VALIDATION', field: 'parent' },
  { name: 'a bad role slug in the path', method: 'PUT', path: `${A}/roles/Bad%20Role`, opts: { body: { permissions: [] } }, status: 400, code: 'VALIDATION', field: 'slug' },
  { name: 'a bad resource type in the path', method: 'PUT', path: `${A}/resources/Doc/1`, opts: {}, status: 400, code: 'VALIDATION', field: 'type' },
  { name: 'an injection-looking subject id', method: 'PUT', path: `${A}/subjects/${encodeURIComponent(INJECTION)}`, opts: { body: { kind: 'user' } }, status: 400, code: 'VALIDATION', field: 'id' },
  { name: 'a non-ASCII subject id', method: 'PUT', path: `${A}/subjects/${encodeURIComponent('álice')}`, opts: { body: { kind: 'user' } }, status: 400, code: 'VALIDATION', field: 'id' },
  { name: 'a bad organization id', method: 'PUT', path: `${ORG}/${encodeURIComponent('ac me')}/subjects/x`, opts: { body: { kind: 'user' } }, status: 400, code: 'VALIDATION', field: 'org' },
  { name: 'a 129-character id', method: 'PUT', path: `${A}/groups/${'g'.repeat(129)}`, opts: {}, status: 400, code: 'VALIDATION', field: 'id' },
  { name: 'a NUL character in a name', method: 'PUT', path: `${A}/groups/eng`, opts: { body: { name: 'a\u0000b' } }, status: 400, code: 'VALIDATION', field: 'name' },
  { name: 'a name longer than 256', method: 'PUT', path: `${A}/groups/eng`, opts: { body: { name: 'n'.repeat(257) } }, status: 400, code: 'VALIDATION', field: 'name' },
  // 404: unknown objects, including objects of another organization
  { name: 'an unknown role', method: 'POST', path: `${A}/assignments`, opts: { body: { principal: 'subject:alice', role: 'ghost', resource: 'ws:main' } }, status: 404, code: 'NOT_FOUND', field: 'role' },
  { name: 'an unknown principal', method: 'POST', path: `${A}/assignments`, opts: { body: { principal: 'group:ghosts', role: 'viewer', resource: 'ws:main' } }, status: 404, code: 'NOT_FOUND', field: 'principal' },
  { name: "another organization's role", method: 'POST', path: `${A}/assignments`, opts: { body: { principal: 'subject:alice', role: 'betarole', resource: 'ws:main' } }, status: 404, code: 'NOT_FOUND', field: 'role' },
  { name: "another organization's resource as parent", method: 'PUT', path: `${A}/resources/doc/x`, opts: { body: { parent: 'ws:beta' } }, status: 404, code: 'NOT_FOUND', field: 'parent' },
  { name: 'an unknown permission in a role', method: 'PUT', path: `${A}/roles/viewer`, opts: { body: { permissions: ['doc.read', 'doc.nope'] } }, status: 404, code: 'NOT_FOUND', field: 'permissions[1]' },
  { name: 'a member that does not exist', method: 'PUT', path: `${A}/groups/eng/members/ghost`, status: 404, code: 'NOT_FOUND', field: 'subject' },
  { name: 'a write to an unknown organization', method: 'PUT', path: `${ORG}/nowhere/subjects/x`, opts: { body: { kind: 'user' } }, status: 404, code: 'NOT_FOUND', field: 'org' },
  { name: 'deleting an unknown assignment', method: 'DELETE', path: `${A}/assignments/asg_nope`, status: 404, code: 'NOT_FOUND', field: 'id' },
  // 409, 422
  { name: "changing a subject's kind", method: 'PUT', path: `${A}/subjects/alice`, opts: { body: { kind: 'agent' } }, status: 409, code: 'CONFLICT', field: 'kind' },
  { name: 'a resource as its own parent', method: 'PUT', path: `${A}/resources/ws/main`, opts: { body: { parent: 'ws:main' } }, status: 422, code: 'CYCLE', field: 'parent' },
  { name: 'a descendant as parent', method: 'PUT', path: `${A}/resources/ws/main`, opts: { body: { parent: 'doc:readme' } }, status: 422, code: 'CYCLE', field: 'parent' },
  { name: 'a chain deeper than 32', method: 'PUT', path: `${A}/resources/chain/c32`, opts: { body: { parent: 'chain:c31' } }, status: 422, code: 'DEPTH_EXCEEDED', field: 'parent' },
  // transport
  { name: 'a body over 1 MiB', method: 'PUT', path: `${A}/groups/eng`, opts: { body: { name: 'x'.repeat(1024 * 1024 + 10) } }, status: 413, code: 'PAYLOAD_TOO_LARGE' },
  { name: 'an XML body', method: 'PUT', path: `${A}/subjects/x`, opts: { raw: '<kind>user</kind>', headers: { 'content-type': 'application/xml' } }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
];

describeEachEngine('e2e: errors', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(engine);
    await seed(h, 'acme');
    await h.req('PUT', `${ORG}/beta`);
    await h.req('PUT', `${ORG}/beta/permissions/b.read`, { body: { risk: 'standard' } });
    await h.req('PUT', `${ORG}/beta/roles/betarole`, { body: { permissions: ['b.read'] } });
    await h.req('PUT', `${ORG}/beta/resources/ws/beta`);
    // A chain of 32 resources, the deepest allowed.
    let parent: string | null = null;
    for (let i = 0; i < 32; i++) {
      const r = await h.req('PUT', `${A}/resources/chain/c${i}`, { body: { parent } });
      expect(r.status, r.text).toBe(200);
      parent = `chain:c${i}`;
    }
  });
  afterAll(async () => {
    await h?.close();
  });

  for (const c of REJECTED_WRITES) {
    it(`${c.method} with ${c.name} → ${c.status} ${c.code}, store unchanged`, async () => {
      const r = await expectRefusedUnchanged(h, 'acme', c);
      if (c.code === 'VALIDATION' && r.json.errors) {
        expect(r.json.errors[0]).toEqual({ path: r.json.field, message: expect.any(String) });
      }
    });
  }

  it('validation problems list every path with a message', async () => {
    const r = await h.req('POST', `${A}/check`, { body: { subject: 'alice', permission: 'doc.read', resource: 'doc:readme', consistency: { mode: 'minimize_latency', extra: 1 } } });
    expectProblem(r, 400, 'VALIDATION', 'consistency.extra');
    expect(r.json.errors).toEqual([{ path: 'consistency.extra', message: "unknown field 'consistency.extra'" }]);
    const wrongType = await h.req('POST', `${A}/check`, { body: { subject: 'alice', permission: 'doc.read', resource: 'doc:readme', consistency: { mode: 'at_least_as_fresh', revision: '3' } } });
    expectProblem(wrongType, 400, 'VALIDATION', 'consistency.revision');
    // who-can pages with limit and cursor (test/e2e/pagination.test.ts); an unknown parameter is refused
    const q = await h.req('GET', `${A}/resources/doc/readme/access?permission=doc.read&offset=3`);
    expectProblem(q, 400, 'VALIDATION', 'offset');
    const missingQ = await h.req('GET', `${A}/resources/doc/readme/access`);
    expectProblem(missingQ, 400, 'VALIDATION', 'permission');
    expectProblem(await h.req('GET', `${A}/changes/0`), 400, 'VALIDATION', 'revision');
    expectProblem(await h.req('GET', `${A}/changes/abc`), 400, 'VALIDATION', 'revision');
  });

  it('read-side 404s name the field', async () => {
    expectProblem(await h.req('POST', `${A}/check`, { body: { subject: 'alice', permission: 'doc.nope', resource: 'doc:readme' } }), 404, 'NOT_FOUND', 'permission');
    expectProblem(await h.req('GET', `${A}/subjects/ghost`), 404, 'NOT_FOUND', 'id');
    expectProblem(await h.req('GET', `${A}/subjects/ghost/effective`), 404, 'NOT_FOUND', 'id');
    expectProblem(await h.req('GET', `${A}/resources/doc/ghost/access?permission=doc.read`), 404, 'NOT_FOUND', 'resource');
    expectProblem(await h.req('GET', `${A}/changes/999999`), 404, 'NOT_FOUND', 'revision');
    expectProblem(await h.req('GET', `${ORG}/nowhere`), 404, 'NOT_FOUND', 'org');
    expectProblem(await h.req('GET', '/v1/nothing-here', { key: null }), 404, 'ROUTE_NOT_FOUND');
    expectProblem(await h.req('PATCH', `${A}/subjects/alice`, { body: {} }), 404, 'ROUTE_NOT_FOUND');
  });

  it('a check of another organization\'s subject is denied, not an error', async () => {
    await h.req('PUT', `${ORG}/beta/subjects/mallory`, { body: { kind: 'user' } });
    const r = await h.req('POST', `${A}/check`, { body: { subject: 'mallory', permission: 'doc.read', resource: 'doc:readme' } });
    expect(r.status).toBe(200);
    expect(r.json.allowed).toBe(false);
  });

  it('unicode and injection-looking text in free-text fields is stored verbatim and harms nothing', async () => {
    const name = `${INJECTION} 工程 🚀 \u202e "quoted" \\ back`;
    const r = await h.req('PUT', `${A}/groups/eng`, { body: { name } });
    expect(r.status).toBe(200);
    const org = await h.req('PUT', `${ORG}/acme`, { body: { name } });
    expect(org.status).toBe(200);
    expect((await h.req('GET', `${ORG}/acme`)).json.name).toBe(name);
    // The subjects table is intact and alice still has her access.
    expect((await h.req('GET', `${A}/subjects/alice`)).json).toEqual({ id: 'alice', kind: 'user', active: true });
    const check = await h.req('POST', `${A}/check`, { body: { subject: 'alice', permission: 'doc.read', resource: 'doc:readme' } });
    expect(check.json.allowed).toBe(true);
    const receipt = await h.req('GET', `${A}/changes/${org.json.revision}`);
    expect(JSON.stringify(receipt.json.body)).toContain('🚀');
  });

  it('request ids: a sane x-request-id is honoured, anything else replaced, and every log line of a request carries it', async () => {
    const mine = await h.req('PUT', `${A}/subjects/alice`, { body: { kind: 'agent' }, headers: { 'x-request-id': 'trace-abc.123' } });
    expect(mine.json.requestId).toBe('trace-abc.123');
    const lines = h.logs.map((l) => JSON.parse(l)).filter((l) => l.reqId === 'trace-abc.123');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.some((l) => l.code === 'CONFLICT')).toBe(true);
    const odd = await h.req('GET', `${ORG}/nowhere`, { headers: { 'x-request-id': 'has spaces and \u00e9' } });
    expect(odd.json.requestId).not.toContain(' ');
    const long = await h.req('GET', `${ORG}/nowhere`, { headers: { 'x-request-id': 'a'.repeat(200) } });
    expect(long.json.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });
});

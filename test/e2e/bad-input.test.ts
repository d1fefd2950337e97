/**
 * Bad input that used to slip past the problem contract (issue 10, item 6), on both engines: each
 * answer is problem+json naming the field, echoes nothing of the URL, and leaves the store as it was.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { expectProblem, expectRefusedUnchanged, ORG, seed, startHarness, type Harness, type ProblemCase } from './harness.ts';

const A = `${ORG}/acme`;
const LONG = 'x'.repeat(600);

type Case = ProblemCase & { field: string };

const CASES: Case[] = [
  // a path parameter over the router's limit: 414, naming it, not Fastify's body echoing the URL
  { name: 'a subject id of 600 characters', method: 'GET', path: `${A}/subjects/${LONG}`, status: 414, code: 'URI_TOO_LONG', field: 'id' },
  { name: 'a member of 600 characters', method: 'PUT', path: `${A}/groups/eng/members/${LONG}`, status: 414, code: 'URI_TOO_LONG', field: 'subject' },
  { name: 'an organization id of 600 characters', method: 'PUT', path: `${ORG}/${LONG}/groups/g`, status: 414, code: 'URI_TOO_LONG', field: 'org' },
  { name: 'a malformed %-escape', method: 'GET', path: `${A}/subjects/%E0%A4%A`, status: 400, code: 'VALIDATION', field: 'path' },
  // transport errors name the field or header
  { name: 'a body over the limit', method: 'PUT', path: `${A}/groups/eng`, opts: { body: { name: 'x'.repeat(1024 * 1024 + 10) } }, status: 413, code: 'PAYLOAD_TOO_LARGE', field: 'body' },
  { name: 'an XML body', method: 'PUT', path: `${A}/subjects/x`, opts: { raw: '<kind>user</kind>', headers: { 'content-type': 'application/xml' } }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', field: 'content-type' },
  { name: 'a text/plain body', method: 'PUT', path: `${A}/subjects/x`, opts: { raw: '{"kind":"user"}', headers: { 'content-type': 'text/plain' } }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', field: 'content-type' },
  { name: 'a text/plain member body', method: 'PUT', path: `${A}/groups/eng/members/bot`, opts: { raw: 'hello', headers: { 'content-type': 'text/plain' } }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', field: 'content-type' },
  // PUT …/members/{subject} takes {expiresAt} and nothing else
  { name: 'an unknown field on a membership', method: 'PUT', path: `${A}/groups/eng/members/bot`, opts: { body: { role: 'admin' } }, status: 400, code: 'VALIDATION', field: 'role' },
  { name: 'a JSON null membership body', method: 'PUT', path: `${A}/groups/eng/members/bot`, opts: { raw: 'null' }, status: 400, code: 'VALIDATION', field: 'body' },
  { name: 'a JSON string membership body', method: 'PUT', path: `${A}/groups/eng/members/bot`, opts: { body: 'admin' }, status: 400, code: 'VALIDATION', field: 'body' },
  { name: 'a JSON array membership body', method: 'PUT', path: `${A}/groups/eng/members/bot`, opts: { body: [] }, status: 400, code: 'VALIDATION', field: 'body' },
  { name: 'an expiresAt that is not RFC 3339', method: 'PUT', path: `${A}/groups/eng/members/bot`, opts: { body: { expiresAt: 'next week' } }, status: 400, code: 'VALIDATION', field: 'expiresAt' },
  { name: 'an expiresAt on February 31st', method: 'PUT', path: `${A}/groups/eng/members/bot`, opts: { body: { expiresAt: '2099-02-31T00:00:00Z' } }, status: 400, code: 'VALIDATION', field: 'expiresAt' },
  // a body on a route that takes none is refused, not ignored
  { name: 'a body on a DELETE', method: 'DELETE', path: `${A}/groups/eng/members/alice`, opts: { body: { force: true } }, status: 400, code: 'VALIDATION', field: 'body' },
  // lone surrogates in names
  { name: 'a group name with a lone high surrogate', method: 'PUT', path: `${A}/groups/eng`, opts: { raw: '{"name":"Eng\\ud800"}' }, status: 400, code: 'VALIDATION', field: 'name' },
  { name: 'an organization name with a lone low surrogate', method: 'PUT', path: A, opts: { raw: '{"name":"\\udc00Acme"}' }, status: 400, code: 'VALIDATION', field: 'name' },
];

const BAD_TIMES = ['1', '2026', '2026-11-29', 'Nov 29 2026', '2026-11-29 10:00:00Z', '2026-02-30T00:00:00Z', '2026-11-29T24:00:00Z', '2026-11-29T10:00:00+25:00', '2026-11-29T10:00:00'];

describeEachEngine('e2e: bad input answers a problem naming the field', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    // No worker: the seed's asynchronous grant stays queued, so snapshots compare a still store.
    h = await startHarness(engine, { workers: 0 });
    await seed(h, 'acme');
  });
  afterAll(async () => {
    await h?.close();
  });

  for (const c of CASES) {
    it(`${c.name}: ${c.status} ${c.code} naming ${c.field}, nothing changed`, async () => {
      const r = await expectRefusedUnchanged(h, 'acme', c);
      expect(r.text).not.toContain(LONG.slice(0, 100));
    });
  }

  it('a membership with a future expiresAt still works, and a bare PUT still adds', async () => {
    const r = await h.req('PUT', `${A}/groups/eng/members/bot`, { body: { expiresAt: '2099-01-01T00:00:00Z' } });
    expect(r.status, r.text).toBe(200);
    expect(r.json.changed).toBe(true);
    const members = (await h.req('GET', `${A}/groups/eng/members`)).json.members;
    expect(members).toContainEqual({ member: 'subject:bot', expiresAt: '2099-01-01T00:00:00.000Z' });
    expect((await h.req('DELETE', `${A}/groups/eng/members/bot`)).status).toBe(200);
    expect((await h.req('PUT', `${A}/groups/eng/members/bot`)).json.changed).toBe(true);
  });

  it('a name with a surrogate pair (an emoji) is a name; repeating it commits nothing', async () => {
    const first = await h.req('PUT', `${A}/groups/emoji`, { body: { name: 'Rocket \u{1F680}' } });
    expect(first.status, first.text).toBe(200);
    const again = await h.req('PUT', `${A}/groups/emoji`, { body: { name: 'Rocket \u{1F680}' } });
    expect(again.json).toMatchObject({ changed: false, revision: first.json.revision });
  });

  for (const t of BAD_TIMES) {
    it(`'${t}' is not an RFC 3339 time for ?at, since or until`, async () => {
      const q = encodeURIComponent(t);
      expectProblem(await h.req('GET', `${A}/subjects/alice/effective?at=${q}`), 400, 'VALIDATION', 'at');
      expectProblem(await h.req('GET', `${A}/resources/doc/readme/access?permission=doc.read&at=${q}`), 400, 'VALIDATION', 'at');
      expectProblem(await h.req('GET', `${A}/changes?since=${q}`), 400, 'VALIDATION', 'since');
      expectProblem(await h.req('GET', `${A}/changes?until=${q}`), 400, 'VALIDATION', 'until');
    });
  }

  it('RFC 3339 times with an offset or fraction are accepted', async () => {
    for (const t of ['2026-11-29T10:00:00Z', '2026-11-29T10:00:00.123456+01:00', '2026-11-29t10:00:00z']) {
      const q = encodeURIComponent(t);
      expect((await h.req('GET', `${A}/changes?since=${q}`)).status).toBe(200);
      expect((await h.req('GET', `${A}/subjects/alice/effective?at=${q}`)).status).toBe(200);
    }
  });
});

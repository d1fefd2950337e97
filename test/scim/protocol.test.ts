/**
 * The SCIM protocol as Lockstep serves it, on both engines: discovery, filters, paging, projection,
 * ETags, errors and bad input (each a SCIM 400 that changes nothing), tokens, the /v1 read-only rule,
 * large groups as one revision, and two identity-provider requests on one group at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { ADMIN_KEY, ORG, expectProblem, type Harness } from '../e2e/harness.ts';
import { createDirectory, createGroup, createUser, createUsers, expectScimError, grantGroup, membersOf, patch, startScim, can, type ScimClient } from './support.ts';

type List = { totalResults: number; startIndex: number; itemsPerPage: number; Resources: { id: string; userName?: string }[] };

describeEachEngine('scim: protocol', (engine) => {
  let h: Harness;
  let scim: ScimClient;
  const org = 'proto';
  const snapshot = async () => ({
    core: await h.snapshot(org),
    scim: await h.app.db.all('SELECT * FROM scim_resources WHERE org_id = $1 ORDER BY resource_type, id', [org]),
  });
  beforeAll(async () => {
    ({ h, scim } = await startScim(engine, org, 'generic'));
  });
  afterAll(() => h?.close());

  it('serves ServiceProviderConfig, ResourceTypes and Schemas', async () => {
    const spc = await scim.req('GET', '/ServiceProviderConfig');
    expect(spc.status).toBe(200);
    expect(spc.headers.get('content-type')).toMatch(/^application\/scim\+json/);
    expect(spc.json).toMatchObject({ patch: { supported: true }, filter: { supported: true }, etag: { supported: true }, bulk: { supported: false } });
    const rt = (await scim.req('GET', '/ResourceTypes')).json as { Resources: { id: string; endpoint: string }[] };
    expect(rt.Resources.map((r) => [r.id, r.endpoint])).toEqual([['User', '/Users'], ['Group', '/Groups']]);
    const schemas = (await scim.req('GET', '/Schemas')).json as { Resources: { id: string }[] };
    expect(schemas.Resources.map((s) => s.id)).toEqual([
      'urn:ietf:params:scim:schemas:core:2.0:User',
      'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User',
      'urn:ietf:params:scim:schemas:core:2.0:Group',
    ]);
    expect((await scim.req('GET', '/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group')).status).toBe(200);
  });

  describe('filters', () => {
    let ids: Record<string, string>;
    beforeAll(async () => {
      ids = {
        ann: await createUser(scim, { userName: 'Ann.Filter@Example.com', displayName: 'Ann', title: 'Engineer', externalId: 'ext-ann' }),
        bob: await createUser(scim, { userName: 'bob.filter@example.org', displayName: 'Bob', externalId: 'ext-bob', emails: [{ value: 'bob@example.org', type: 'work' }] }),
        cid: await createUser(scim, { userName: 'cid.filter@example.com', displayName: 'Cid', title: 'Manager' }),
      };
    });
    const hits = async (filter: string) => {
      const r = await scim.req('GET', `/Users?filter=${encodeURIComponent(filter)}`);
      expect(r.status, r.text).toBe(200);
      return (r.json as List).Resources.map((x) => x.id).filter((id) => Object.values(ids).includes(id)).sort();
    };
    const of = (...names: string[]) => names.map((n) => ids[n]!).sort();

    it('eq on userName is case-insensitive, attribute and operator names too', async () => {
      expect(await hits('userName eq "ann.filter@example.com"')).toEqual(of('ann'));
      expect(await hits('USERNAME EQ "ANN.FILTER@EXAMPLE.COM"')).toEqual(of('ann'));
      expect(await hits('externalId eq "ext-bob"')).toEqual(of('bob'));
      expect(await hits('externalId eq "EXT-BOB"')).toEqual([]); // externalId is case-exact
    });
    it('ne, co, sw, ew, pr', async () => {
      expect(await hits('userName co "filter" and userName ne "bob.filter@example.org"')).toEqual(of('ann', 'cid'));
      expect(await hits('userName sw "CID"')).toEqual(of('cid'));
      expect(await hits('userName ew ".org"')).toEqual(of('bob'));
      expect(await hits('userName co "filter" and title pr')).toEqual(of('ann', 'cid'));
    });
    it('and, or, not and parentheses with the RFC precedence', async () => {
      expect(await hits('userName co "filter" and (title eq "engineer" or title eq "manager")')).toEqual(of('ann', 'cid'));
      expect(await hits('displayName eq "Ann" or displayName eq "Bob" and title pr')).toEqual(of('ann'));
      expect(await hits('userName co "filter" and not (title pr)')).toEqual(of('bob'));
      expect(await hits('emails[type eq "work" and value ew ".org"]')).toEqual(of('bob'));
    });
    it('gt/ge/lt/le on meta.created and meta.lastModified compare instants', async () => {
      const ann = (await scim.req('GET', `/Users/${ids.ann}`)).json as { meta: { created: string; lastModified: string } };
      const created = new Date(ann.meta.created);
      const inOtherZone = new Date(created.getTime()).toISOString().replace('Z', '+00:00');
      expect(await hits(`userName co "filter" and meta.created ge "${inOtherZone}"`)).toEqual(of('ann', 'bob', 'cid'));
      expect(await hits(`userName co "filter" and meta.created lt "${inOtherZone}"`)).toEqual([]);
      expect(await hits(`userName co "filter" and meta.lastModified gt "2015-10-10T14:38:21.8617979-07:00"`)).toEqual(of('ann', 'bob', 'cid'));
      expect(await hits(`userName co "filter" and meta.created le "2015-10-10T14:38:21-07:00"`)).toEqual([]);
    });
    it('a malformed filter is a 400 invalidFilter', async () => {
      for (const f of ['userName eq', 'userName zz "a"', '(userName eq "a"', 'active gt true', 'userName eq "a" and', 'meta.created gt "not a date"']) {
        expectScimError(await scim.req('GET', `/Users?filter=${encodeURIComponent(f)}`), 400, 'invalidFilter');
      }
    });
  });

  it('pages in a stable creation order while users are added between pages', async () => {
    const dir = await createDirectory(h, org, 'generic', 'paging');
    const made: string[] = [];
    for (let i = 0; i < 17; i++) made.push(await createUser(dir));
    const seen: string[] = [];
    for (let start = 1; ; start += 5) {
      const page = (await dir.req('GET', `/Users?startIndex=${start}&count=5`)).json as List;
      expect(page.startIndex).toBe(start);
      expect(page.itemsPerPage).toBe(page.Resources.length);
      seen.push(...page.Resources.map((r) => r.id));
      if (start === 6) made.push(await createUser(dir)); // a new user lands at the end
      if (page.Resources.length < 5) break;
    }
    expect(seen).toEqual(made);
    const total = (await dir.req('GET', '/Users?count=0')).json as List;
    expect(total).toMatchObject({ totalResults: 18, itemsPerPage: 0, Resources: [] });
    // startIndex below 1 is 1; count is capped at maxResults (200).
    expect(((await dir.req('GET', '/Users?startIndex=0&count=1')).json as List).Resources[0]!.id).toBe(made[0]);
    expectScimError(await dir.req('GET', '/Users?count=many'), 400, 'invalidValue');
  });

  it('attributes and excludedAttributes', async () => {
    const u = await createUser(scim, { title: 'Projected', nickName: 'proj' });
    const only = (await scim.req('GET', `/Users/${u}?attributes=userName,name.givenName`)).json as Record<string, unknown>;
    expect(Object.keys(only).sort()).toEqual(['id', 'name', 'schemas', 'userName']);
    expect(Object.keys(only.name as object)).toEqual(['givenName']);
    const without = (await scim.req('GET', `/Users/${u}?excludedAttributes=emails,title`)).json as Record<string, unknown>;
    expect(without).not.toHaveProperty('emails');
    expect(without).not.toHaveProperty('title');
    expect(without).toMatchObject({ id: u, nickName: 'proj' });
  });

  it('userName is unique case-insensitively within a directory, not across directories; externalId is kept', async () => {
    const u = await createUser(scim, { userName: 'Unique.Person@example.com', externalId: 'idp-77' });
    const again = await scim.req('POST', '/Users', { userName: 'unique.person@EXAMPLE.com' });
    expectScimError(again, 409, 'uniqueness');
    expect((await scim.req('GET', `/Users/${u}`)).json).toMatchObject({ externalId: 'idp-77' });
    const other = await createDirectory(h, org, 'generic', 'second');
    expect((await other.req('POST', '/Users', { userName: 'unique.person@example.com' })).status).toBe(201);
  });

  it('ETag and If-Match: a stale version is a 412 and changes nothing; the current one applies', async () => {
    const u = await createUser(scim);
    const got = await scim.req('GET', `/Users/${u}`);
    const etag = got.headers.get('etag')!;
    expect(etag).toMatch(/^W\/"\d+"$/);
    const ok = await scim.req('PATCH', `/Users/${u}`, patch({ op: 'replace', path: 'title', value: 'v2' }), { 'if-match': etag });
    expect(ok.status, ok.text).toBe(204);
    expect(ok.headers.get('etag')).not.toBe(etag);
    const before = await snapshot();
    expectScimError(await scim.req('PATCH', `/Users/${u}`, patch({ op: 'replace', path: 'title', value: 'v3' }), { 'if-match': etag }), 412);
    expectScimError(await scim.req('DELETE', `/Users/${u}`, undefined, { 'if-match': etag }), 412);
    expect(await snapshot()).toEqual(before);
    expect((await scim.req('GET', `/Users/${u}`, undefined, { 'if-none-match': ok.headers.get('etag')! })).status).toBe(304);
  });

  it('every malformed PATCH is a SCIM 400 and changes nothing', async () => {
    const u = await createUser(scim);
    const g = await createGroup(scim, [u]);
    await grantGroup(h, org, g);
    const before = await snapshot();
    const badUser: [unknown, string][] = [
      [{ Operations: [{ op: 'replace', path: 'title', value: 'x' }] }, 'invalidSyntax'], // no schemas
      [{ schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'] }, 'invalidSyntax'], // no Operations
      [patch(), 'invalidSyntax'],
      [patch({ op: 'frobnicate', path: 'title', value: 'x' }), 'invalidSyntax'],
      [patch({ op: 'replace', path: 'nosuch', value: 'x' }), 'invalidPath'],
      [patch({ op: 'replace', path: 'emails[type eq', value: 'x' }), 'invalidPath'],
      [patch({ op: 'replace', path: 'title' }), 'invalidValue'], // no value
      [patch({ op: 'remove' }), 'noTarget'],
      [patch({ op: 'remove', path: 'userName' }), 'invalidValue'], // required
      [patch({ op: 'replace', path: 'active', value: 'maybe' }), 'invalidValue'],
      [patch({ op: 'replace', value: 'not an object' }), 'invalidValue'],
      // A good operation followed by a bad one: the whole request is refused.
      [patch({ op: 'replace', path: 'active', value: false }, { op: 'replace', path: 'nosuch', value: 1 }), 'invalidPath'],
      ['{"schemas": [', 'invalidSyntax'], // not JSON
    ];
    for (const [body, scimType] of badUser) expectScimError(await scim.req('PATCH', `/Users/${u}`, body), 400, scimType);
    const badGroup: [unknown, string][] = [
      [patch({ op: 'add', path: 'members', value: 'string id 1' }), 'invalidValue'],
      [patch({ op: 'add', path: 'members', value: [{ display: 'no value' }] }), 'invalidValue'],
      [patch({ op: 'add', path: 'members', value: [{ value: 'not-a-user' }] }), 'invalidValue'],
      [patch({ op: 'remove', path: 'displayName' }), 'mutability'],
      [patch({ op: 'replace', path: 'displayName', value: 7 }), 'invalidValue'],
      [patch({ op: 'add', path: 'owners', value: [] }), 'invalidPath'],
      [patch({ op: 'add', path: 'members[value eq "x"]', value: [] }), 'invalidPath'],
      [patch({ op: 'remove', path: 'members[value eq' }), 'invalidPath'],
      [patch({ op: 'remove', path: 'members', value: [{ value: u }] }, { op: 'add', path: 'members', value: 'junk' }), 'invalidValue'],
    ];
    for (const [body, scimType] of badGroup) expectScimError(await scim.req('PATCH', `/Groups/${g}`, body), 400, scimType);
    expect(await snapshot()).toEqual(before);
    expect(await can(h, org, u)).toBe(true);
    // Unknown ids and resources are 404s.
    expectScimError(await scim.req('PATCH', `/Users/00000000-0000-0000-0000-000000000000`, patch({ op: 'replace', path: 'title', value: 'x' })), 404);
    expectScimError(await scim.req('GET', '/Widgets'), 404);
  });

  it('bad POST and PUT bodies are SCIM 400s; unknown attributes are dropped', async () => {
    expectScimError(await scim.req('POST', '/Users', { displayName: 'no userName' }), 400, 'invalidValue');
    expectScimError(await scim.req('POST', '/Users', { userName: 'x@example.com', emails: 'not a list' }), 400, 'invalidValue');
    expectScimError(await scim.req('POST', '/Groups', { members: [] }), 400, 'invalidValue');
    expectScimError(await scim.req('POST', '/Users', '[1,'), 400, 'invalidSyntax');
    const r = await scim.req('POST', '/Users', { userName: 'dropped@example.com', adreses: [{ country: 'x' }], password: 'hunter2' });
    expect(r.status).toBe(201);
    expect(r.text).not.toContain('adreses');
    expect(r.text).not.toContain('hunter2');
    expect(JSON.stringify(await h.app.db.all('SELECT document FROM scim_resources'))).not.toContain('hunter2');
  });

  it('a body over the limit is a SCIM 413', async () => {
    const big = { userName: 'big@example.com', title: 'x'.repeat(1024 * 1024 + 10) };
    expectScimError(await scim.req('POST', '/Users', big), 413);
  });

  it('a rotated or deleted directory token gets 401 at once; the directory shows counts, the last request and errors', async () => {
    const dir = await createDirectory(h, org, 'okta', 'rotating');
    await createUser(dir);
    const old = dir.token;
    const rotated = await h.req('POST', `${ORG}/${org}/directories/${dir.id}/token`);
    expect(rotated.status).toBe(200);
    expect(rotated.json.token).not.toBe(old);
    expectScimError(await dir.req('GET', '/Users'), 401);
    dir.token = rotated.json.token;
    expect((await dir.req('GET', '/Users')).status).toBe(200);
    await dir.req('GET', '/Users?filter=bad%20filter');
    // The bookkeeping is written just after each answer.
    await expect.poll(async () => (await h.req('GET', `${ORG}/${org}/directories/${dir.id}`)).json.counts.requests).toBe(4);
    const info = await h.req('GET', `${ORG}/${org}/directories/${dir.id}`);
    expect(info.json).toMatchObject({
      id: dir.id,
      provider: 'okta',
      counts: { users: 1, groups: 0, errors: 2, requests: 4 },
      lastRequest: { operation: 'GET /Users', status: 400 },
      recentErrors: [{ status: 400, operation: 'GET /Users' }, { status: 401 }],
    });
    expect(JSON.stringify(info.json)).not.toContain(dir.token);
    const list = await h.req('GET', `${ORG}/${org}/directories`);
    expect(list.json.directories.map((d: { id: string }) => d.id)).toContain(dir.id);
    expect((await h.req('DELETE', `${ORG}/${org}/directories/${dir.id}`)).status).toBe(204);
    expectScimError(await dir.req('GET', '/Users'), 401);
    expect((await h.req('GET', `${ORG}/${org}/directories/${dir.id}`)).status).toBe(404);
  });

  it('concurrent requests are each counted, and each refused one is in the recent errors (their bookkeeping shares transactions)', async () => {
    const dir = await createDirectory(h, org, 'entra', 'concurrent');
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => dir.req('GET', i % 3 === 0 ? '/Users?filter=bad%20filter' : '/Users')));
    expect(answers.map((r) => r.status).sort()).toEqual([...Array(8).fill(200), ...Array(4).fill(400)]);
    await expect.poll(async () => (await h.req('GET', `${ORG}/${org}/directories/${dir.id}`)).json.counts.requests).toBe(12);
    const info = await h.req('GET', `${ORG}/${org}/directories/${dir.id}`);
    expect(info.json.counts).toMatchObject({ requests: 12, errors: 4 });
    expect(info.json.recentErrors).toHaveLength(4);
    expect(info.json.recentErrors.every((e: { status: number; operation: string }) => e.status === 400 && e.operation === 'GET /Users')).toBe(true);
  });

  it('per-directory metrics: requests by operation and status, latency, and enforcement at commit', async () => {
    const dir = await createDirectory(h, org, 'okta', 'metrics');
    const u = await createUser(dir);
    await dir.req('PATCH', `/Users/${u}`, patch({ op: 'replace', value: { active: false } }));
    await dir.req('GET', '/Users?filter=nonsense');
    const text = await (await fetch(`${h.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text();
    const line = (re: RegExp) => text.split('\n').find((l) => re.test(l));
    expect(line(new RegExp(`^lockstep_scim_requests_total\\{directory="${dir.id}",operation="POST /Users",status="201"\\} 1$`))).toBeDefined();
    expect(line(new RegExp(`^lockstep_scim_requests_total\\{directory="${dir.id}",operation="PATCH /Users/\\{id\\}",status="200"\\} 1$`))).toBeDefined();
    expect(line(new RegExp(`^lockstep_scim_requests_total\\{directory="${dir.id}",operation="GET /Users",status="400"\\} 1$`))).toBeDefined();
    expect(line(new RegExp(`^lockstep_scim_request_seconds_count\\{directory="${dir.id}",operation="PATCH /Users/\\{id\\}"\\} 1$`))).toBeDefined();
    // The deprovisioning (and the creation) enforced at commit: observed in the 0 bucket.
    expect(line(new RegExp(`^lockstep_scim_enforcement_seconds_bucket\\{le="0",directory="${dir.id}",direction="any"\\} 2$`))).toBeDefined();
  });

  it('a directory token is not an API key, and an API key does not open a SCIM endpoint', async () => {
    expectProblem(await h.req('GET', `${ORG}/${org}/subjects/x`, { key: scim.token }), 401, 'UNAUTHENTICATED');
    const r = await fetch(`${scim.base}/Users`, { headers: { authorization: `Bearer ${await h.key('write', org)}` } });
    expect(r.status).toBe(401);
  });

  it('directory-owned subjects and groups are read-only through /v1 (409 naming the directory); assignments are ordinary policy', async () => {
    const u = await createUser(scim);
    const g = await createGroup(scim, [u]);
    await h.req('PUT', `${ORG}/${org}/subjects/plain`, { body: { kind: 'user' } });
    const before = await snapshot();
    for (const [method, path, body] of [
      ['PUT', `/subjects/${u}`, { kind: 'user', active: false }],
      ['DELETE', `/subjects/${u}`, undefined],
      ['PUT', `/groups/${g}`, { name: 'x' }],
      ['DELETE', `/groups/${g}`, undefined],
      ['PUT', `/groups/${g}/members/plain`, undefined],
      ['DELETE', `/groups/${g}/members/${u}`, undefined],
    ] as const) {
      const r = await h.req(method, `${ORG}/${org}${path}`, body === undefined ? {} : { body });
      expectProblem(r, 409, 'CONFLICT');
      expect(r.json.detail).toContain(scim.id);
    }
    expect(await snapshot()).toEqual(before);
    await grantGroup(h, org, g);
    expect(await can(h, org, u)).toBe(true);
  });

  // Hundreds here; the benchmark's directory scenario replaces 5,000 and removes 1,000 at once.
  it('a Group PUT replacing hundreds of members is one transaction, one revision, one bounded change entry', async () => {
    const dir = await createDirectory(h, org, 'entra', 'bulk');
    const users = await createUsers(dir, 300);
    const g = await createGroup(dir, users.slice(0, 150));
    await grantGroup(h, org, g);
    const rev0 = (await h.req('GET', `${ORG}/${org}`)).json.revision as number;
    const put = await dir.req('PUT', `/Groups/${g}?excludedAttributes=members`, { displayName: 'bulk', members: users.slice(100).map((value) => ({ value })) });
    expect(put.status, put.text).toBe(200);
    const rev = Number(put.headers.get('lockstep-revision'));
    expect(rev).toBe(rev0 + 1);
    const change = (await h.req('GET', `${ORG}/${org}/changes/${rev}`)).json;
    expect(change).toMatchObject({ kind: 'scim.group.members', direction: 'both', actor: `directory:${dir.id}` });
    const body = (await h.app.db.get<{ body: string }>('SELECT body FROM changes WHERE org_id = $1 AND revision = $2', [org, rev]))!.body;
    const logged = JSON.parse(body);
    expect(logged).toMatchObject({ group: g, addedCount: 150, removedCount: 100, truncated: true });
    expect(logged.added).toHaveLength(100);
    expect(logged.removed).toEqual(users.slice(0, 100).sort());
    expect(await membersOf(dir, g)).toEqual(users.slice(100).sort());
    expect([await can(h, org, users[0]!), await can(h, org, users[299]!)]).toEqual([false, true]);
  });

  it('two identity-provider requests on one group at once lose nothing', async () => {
    const dir = await createDirectory(h, org, 'okta', 'concurrent');
    const users = await createUsers(dir, 40);
    const g = await createGroup(dir, users.slice(0, 10));
    await grantGroup(h, org, g);
    // Rounds of concurrent PATCHes: two adds of different members, an add beside a remove.
    for (let round = 0; round < 5; round++) {
      const a = users.slice(10 + round * 6, 13 + round * 6);
      const b = users.slice(13 + round * 6, 16 + round * 6);
      const gone = users[round]!;
      const rs = await Promise.all([
        dir.req('PATCH', `/Groups/${g}`, patch({ op: 'add', path: 'members', value: a.map((value) => ({ value })) })),
        dir.req('PATCH', `/Groups/${g}`, patch({ op: 'add', path: 'members', value: b.map((value) => ({ value })) })),
        dir.req('PATCH', `/Groups/${g}`, patch({ op: 'remove', path: `members[value eq "${gone}"]` })),
      ]);
      expect(rs.map((r) => r.status)).toEqual([204, 204, 204]);
      const revs = rs.map((r) => Number(r.headers.get('lockstep-revision')));
      expect(new Set(revs).size).toBe(3);
    }
    const expected = [...users.slice(5, 10), ...users.slice(10, 40)].sort();
    expect(await membersOf(dir, g)).toEqual(expected);
    for (const s of [users[0]!, users[4]!]) expect(await can(h, org, s)).toBe(false);
    for (const s of [users[5]!, users[39]!]) expect(await can(h, org, s)).toBe(true);
  });
});

/**
 * Microsoft's SCIM reference Postman collection (test/conformance/ms-scim-postman/, unmodified), run
 * with newman against a Lockstep server started here, on both engines. Every assertion must pass.
 *
 * The collection targets Microsoft's reference server; these adjustments are applied in memory:
 *
 * 1. The "Get Token" folder is dropped: it fetches a token from the reference server's own `/Token`
 *    endpoint. The test creates a directory through /v1 and hands newman its token as `{{token}}`.
 * 2. `/serviceConfiguration` (the reference server's name) is `/ServiceProviderConfig` (RFC 7644 §4).
 * 3. Each request's URL is its `raw` string: one structured URL ("Get empty Users") spells the path
 *    `users` in lower case where its raw URL says `Users`; SCIM paths are case-sensitive here.
 * 4. "Group patch add member" and "Group patch add member2" add `"value": "string id 1"` — a string
 *    where RFC 7644 wants member objects, naming no user. The reference server ignores it and answers
 *    204; Lockstep refuses a malformed PATCH with a SCIM 400 (invalidValue) and changes nothing, so
 *    these two assertions expect 400.
 * 5. "Get group by id" (twice) looks for the text "new User", the `displayName` the PATCH put in its
 *    member object. The reference server stores a member's display as sent; Lockstep shows the
 *    member user's own display name, so the assertions look for the member's id instead (present
 *    after the add, absent after "Patch remove all users") — the same membership fact.
 *
 * Nothing else is changed: filters written without quotes (`userName sw O`) are accepted as the
 * reference server accepts them, and the trailing-slash `/Users/?filter=…` is served.
 */
import { readFileSync } from 'node:fs';
import newman from 'newman';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { ORG, startHarness, type Harness } from '../e2e/harness.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const COLLECTION = new URL('./ms-scim-postman/PostmanCollection.json', import.meta.url);

function* requests(items: Json[]): Generator<Json> {
  for (const it of items) {
    if (Array.isArray(it.item)) yield* requests(it.item);
    else yield it;
  }
}

function replaceInTest(item: Json, from: string, to: string) {
  let hits = 0;
  for (const ev of item.event ?? []) {
    if (ev.listen !== 'test') continue;
    ev.script.exec = ev.script.exec.map((line: string) => {
      if (!line.includes(from)) return line;
      hits++;
      return line.split(from).join(to);
    });
  }
  if (hits === 0) throw new Error(`adjustment did not apply to '${item.name}': '${from}' not found`);
}

export function adjustedCollection(): Json {
  const c = JSON.parse(readFileSync(COLLECTION, 'utf8')) as Json;
  // 1. No token folder.
  c.item = c.item.filter((f: Json) => f.name !== 'Get Token');
  for (const it of requests(c.item)) {
    // 3. The raw URL, with 2. the RFC's name for the configuration endpoint.
    it.request.url = String(it.request.url.raw ?? it.request.url).replace('/serviceConfiguration', '/ServiceProviderConfig');
    // 4. A malformed member value is a 400.
    if (it.name === 'Group patch add member' || it.name === 'Group patch add member2') {
      replaceInTest(it, 'Status code is 204', 'Status code is 400');
      replaceInTest(it, 'have.status(204)', 'have.status(400)');
    }
    // 5. The member is found by its id.
    if (it.name === 'Get group by id') replaceInTest(it, 'include("new User")', 'include(pm.environment.get("id4"))');
  }
  return c;
}

function run(collection: Json, vars: Record<string, string>): Promise<newman.NewmanRunSummary> {
  return new Promise((resolve, reject) => {
    newman.run(
      {
        collection,
        environment: { values: Object.entries(vars).map(([key, value]) => ({ key, value, enabled: true })) } as never,
        reporters: [],
        timeoutRequest: 10_000,
      },
      (err, summary) => (err ? reject(err) : resolve(summary)),
    );
  });
}

describeEachEngine('conformance: Microsoft SCIM reference Postman collection (newman)', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(engine);
  });
  afterAll(() => h?.close());

  it('passes every assertion of the collection', async () => {
    expect((await h.req('PUT', `${ORG}/ms`, { body: { name: 'Postman' } })).status).toBe(200);
    const dir = await h.req('POST', `${ORG}/ms/directories`, { body: { name: 'Entra (Postman)', provider: 'entra' } });
    expect(dir.status, dir.text).toBe(201);
    const base = new URL(dir.json.scimBaseUrl as string);
    const summary = await run(adjustedCollection(), {
      Protocol: base.protocol.replace(':', ''),
      Server: base.hostname,
      Port: `:${base.port}`,
      Api: base.pathname.slice(1),
      token: dir.json.token,
    });
    const failures = summary.run.failures.map((f) => `${f.source?.name ?? '?'}: ${f.error.name} ${f.error.message}`);
    expect(failures).toEqual([]);
    // 78 requests and 107 assertions once the token folder is gone (SOURCE.md); all of them ran.
    expect(summary.run.stats.requests.total).toBe(78);
    expect(summary.run.stats.assertions.total).toBe(107);
    expect(summary.run.stats.assertions.failed).toBe(0);
    // The collection cleans up after itself; the directory saw every request.
    await expect.poll(async () => (await h.req('GET', `${ORG}/ms/directories/${dir.json.id}`)).json.counts).toMatchObject({ users: 0, groups: 0, requests: 78 });
  });
});

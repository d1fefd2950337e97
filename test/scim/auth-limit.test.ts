/**
 * Failed SCIM token authentications are limited per client address, as API keys are: past the
 * limit a wrong token answers a SCIM 429 with Retry-After, writes nothing to the directory's
 * record, and is logged at debug only (one warning when the limit starts to answer); the right
 * token is still accepted from the same address.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { ORG, startHarness, type Harness } from '../e2e/harness.ts';
import { createDirectory, ERROR_SCHEMA, seedOrg, type ScimClient } from './support.ts';

const LIMIT = 3;

describeEachEngine('scim: failed token authentication is limited per address', (engine) => {
  let h: Harness;
  let dir: ScimClient;
  const org = 'scim-limit';
  beforeAll(async () => {
    h = await startHarness(engine, { authFailureLimit: LIMIT, authFailureWindowMs: 600_000, logLevel: 'debug' });
    await seedOrg(h, org);
    dir = await createDirectory(h, org, 'okta', 'guessed');
  });
  afterAll(async () => {
    await h?.close();
  });

  it('past the limit a wrong token gets 429 with Retry-After; the right one still works; guesses past the limit are not recorded', async () => {
    const right = dir.token;
    // The directory's own id with a wrong secret: the guess an attacker who knows the base URL makes.
    const wrong = right.slice(0, -4) + (right.endsWith('aaaa') ? 'bbbb' : 'aaaa');
    const statuses: number[] = [];
    const ids: string[] = [];
    for (let i = 0; i < LIMIT + 4; i++) {
      dir.token = wrong;
      const id = `scim-guess-${i}`;
      ids.push(id);
      const r = await dir.req('GET', '/Users', undefined, { 'x-request-id': id });
      statuses.push(r.status);
      expect(r.json).toMatchObject({ schemas: [ERROR_SCHEMA], status: String(r.status) });
      if (r.status === 429) {
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(r.headers.get('content-type')).toContain('application/scim+json');
      }
    }
    expect(statuses).toEqual([...Array(LIMIT).fill(401), ...Array(4).fill(429)]);

    dir.token = right;
    expect((await dir.req('GET', '/Users')).status).toBe(200);

    // The directory records the 401s and the accepted request, not the 429s.
    await expect.poll(async () => (await h.req('GET', `${ORG}/${org}/directories/${dir.id}`)).json.counts.requests).toBe(LIMIT + 1);
    const info = await h.req('GET', `${ORG}/${org}/directories/${dir.id}`);
    expect(info.json.counts).toMatchObject({ requests: LIMIT + 1, errors: LIMIT });
    expect(info.json.recentErrors.map((e: { status: number }) => e.status)).toEqual(Array(LIMIT).fill(401));

    // Past the limit: one warning, the rest at debug; no line carries the token.
    const lines = h.logs.map((l) => JSON.parse(l) as { level: number; reqId?: string; msg: string });
    const limited = lines.filter((l) => l.reqId !== undefined && ids.slice(LIMIT).includes(l.reqId));
    expect(limited.filter((l) => l.level >= 30)).toEqual([
      expect.objectContaining({ level: 40, reqId: `scim-guess-${LIMIT}`, msg: 'failed SCIM authentications over the limit: answering 429' }),
    ]);
    expect(h.logs.join('\n')).not.toContain(wrong.slice(-20));
    expect(h.logs.join('\n')).not.toContain(right.slice(-20));
  });

  it('the API keys count their failures apart: a valid key works, a bad key still answers 401', async () => {
    expect((await h.req('GET', `${ORG}/${org}/directories/${dir.id}`)).status).toBe(200);
    expect((await h.req('GET', `${ORG}/${org}/directories/${dir.id}`, { key: 'not-a-key-at-all' })).status).toBe(401);
  });
});

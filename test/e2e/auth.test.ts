/**
 * API keys over HTTP, on both engines: 401 for missing or bad keys, 403 for the wrong scope or
 * organization (with nothing changed), and the key store itself (hashing, revocation, the admin key).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { authenticate, createKey, ensureAdminKey, revokeKey } from '../../src/api/keys.ts';
import { LockstepError } from '../../src/domain/errors.ts';
import { createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { ADMIN_KEY, expectProblem, ORG, seed, startHarness, type Harness } from './harness.ts';

type Need = 'admin' | 'write' | 'check';
const routes = (org: string, assignment: string): [Need, string, string, unknown?][] => {
  const o = `${ORG}/${org}`;
  return [
    ['admin', 'PUT', o, { name: `Org ${org}` }],
    ['write', 'GET', o],
    ['write', 'PUT', `${o}/permissions/doc.read`, { risk: 'standard' }],
    ['write', 'PUT', `${o}/roles/viewer`, { permissions: ['doc.read'] }],
    ['write', 'PUT', `${o}/resources/ws/main`, {}],
    ['write', 'DELETE', `${o}/resources/ws/ghost`],
    ['write', 'PUT', `${o}/subjects/alice`, { kind: 'user' }],
    ['write', 'GET', `${o}/subjects/alice`],
    ['write', 'DELETE', `${o}/subjects/ghost`],
    ['write', 'PUT', `${o}/groups/eng`, { name: 'Engineering' }],
    ['write', 'DELETE', `${o}/groups/ghost`],
    ['write', 'PUT', `${o}/groups/eng/members/alice`],
    ['write', 'DELETE', `${o}/groups/eng/members/bot`],
    ['write', 'POST', `${o}/assignments`, { principal: 'group:eng', role: 'viewer', resource: 'ws:main' }],
    ['write', 'GET', `${o}/assignments/${assignment}`],
    ['write', 'DELETE', `${o}/assignments/asg_none`],
    ['check', 'POST', `${o}/check`, { subject: 'alice', permission: 'doc.read', resource: 'doc:readme' }],
    ['check', 'GET', `${o}/subjects/alice/effective`],
    ['check', 'GET', `${o}/resources/doc/readme/access?permission=doc.read`],
    ['check', 'GET', `${o}/changes/1`],
  ];
};
const RANK: Record<Need, number> = { check: 1, write: 2, admin: 3 };

describeEachEngine('e2e: API keys, scopes and organization isolation', (engine) => {
  let h: Harness;
  const keys: Record<string, string> = {};
  const asg: Record<string, string> = {};
  beforeAll(async () => {
    h = await startHarness(engine);
    asg.acme = (await seed(h, 'acme')).assignment;
    asg.beta = (await seed(h, 'beta')).assignment;
    keys.checkA = await h.key('check', 'acme');
    keys.writeA = await h.key('write', 'acme');
    keys.admin = await h.key('admin');
    // The seed's asynchronous grant jobs finish first: a job committing mid-case would change the
    // snapshots that "a refused request changed nothing" compares (seen on a loaded machine).
    for (let i = 0; i < 1000 && (await h.app.lockstep.listJobs({ states: ['pending', 'running', 'retrying'] })).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await h.app.lockstep.listJobs({ states: ['pending', 'running', 'retrying'] })).toEqual([]);
  });
  afterAll(async () => {
    await h?.close();
  });

  const cases: [string, Need, string][] = [
    ['checkA', 'check', 'acme'],
    ['writeA', 'write', 'acme'],
    ['admin', 'admin', ''],
  ];
  for (const [keyName, scope, home] of cases) {
    for (const org of ['acme', 'beta']) {
      it(`a ${scope} key${home ? ` of ${home}` : ''} on ${org}: allowed exactly where its scope and organization reach`, async () => {
        for (const [need, method, path, body] of routes(org, asg[org]!)) {
          const allowed = RANK[scope] >= RANK[need] && (scope === 'admin' || org === home);
          const before = allowed ? undefined : [await h.snapshot('acme'), await h.snapshot('beta')];
          const r = await h.req(method, path, body === undefined ? { key: keys[keyName]! } : { key: keys[keyName]!, body });
          if (allowed) {
            expect([200, 201, 204, 404], `${method} ${path}: ${r.text}`).toContain(r.status);
          } else {
            expectProblem(r, 403, 'FORBIDDEN');
            expect([await h.snapshot('acme'), await h.snapshot('beta')], `${method} ${path}`).toEqual(before);
          }
        }
      });
    }
  }

  it('a key for an organization that does not exist yet works once an admin creates it', async () => {
    const k = await h.key('write', 'gamma');
    expectProblem(await h.req('PUT', `${ORG}/gamma`, { key: k }), 403, 'FORBIDDEN');
    expect((await h.req('PUT', `${ORG}/gamma`)).status).toBe(200);
    expect((await h.req('PUT', `${ORG}/gamma/subjects/x`, { key: k, body: { kind: 'user' } })).status).toBe(200);
  });

  it('missing, malformed, unknown, wrong and revoked keys are 401 with WWW-Authenticate, before any validation', async () => {
    const real = await createKey(h.app.db, { scope: 'write', org: 'acme' });
    const other = await createKey(h.app.db, { scope: 'write', org: 'acme' });
    const forged = `${real.key.slice(0, 21)}${other.key.slice(21)}`; // real id, another key's secret
    const revoked = await createKey(h.app.db, { scope: 'admin' });
    expect(await revokeKey(h.app.db, revoked.id)).toBe(true);
    expect(await revokeKey(h.app.db, revoked.id)).toBe(false);
    const before = await h.snapshot('acme');
    const attempts: { headers?: Record<string, string>; key?: string | null }[] = [
      { key: null },
      { key: null, headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } },
      { key: null, headers: { authorization: 'Bearer' } },
      { key: 'not-a-key' },
      { key: 'lsk_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
      { key: forged },
      { key: revoked.key },
      { key: ADMIN_KEY.slice(0, -1) },
      { key: `${ADMIN_KEY}x` },
    ];
    for (const a of attempts) {
      // A malformed body and an unknown organization: authentication comes first.
      const r = await h.req('PUT', `${ORG}/nowhere/subjects/x`, { ...a, raw: '{not json' });
      expectProblem(r, 401, 'UNAUTHENTICATED');
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    expect(await h.snapshot('acme')).toEqual(before);
    expect((await h.req('GET', `${ORG}/acme`, { key: real.key })).status).toBe(200);
    expect((await h.req('GET', `${ORG}/acme`, { key: null, headers: { authorization: `bearer   ${real.key}` } })).status).toBe(200);
  });

  it('keys are stored only as SHA-256 hashes and never appear in the logs', async () => {
    const rows = await h.app.db.all<{ hash: string }>('SELECT hash FROM api_keys');
    const all = [ADMIN_KEY, ...Object.values(keys)];
    for (const row of rows) {
      expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
      for (const k of all) expect(row.hash).not.toContain(k);
    }
    expect(h.logs.length).toBeGreaterThan(10);
    const text = h.logs.join('\n');
    for (const k of all) expect(text).not.toContain(k.slice(-20));
    expect(text).not.toMatch(/Bearer /i);
  });

  it('createKey refuses an org-scoped key without an org and an admin key with one', async () => {
    await expect(createKey(h.app.db, { scope: 'check' })).rejects.toMatchObject({ code: 'VALIDATION', field: 'org' });
    await expect(createKey(h.app.db, { scope: 'admin', org: 'acme' })).rejects.toMatchObject({ code: 'VALIDATION', field: 'org' });
    await expect(createKey(h.app.db, { scope: 'root' as 'admin' })).rejects.toMatchObject({ code: 'VALIDATION', field: 'scope' });
    const k = await createKey(h.app.db, { scope: 'check', org: 'acme', name: 'ci' });
    expect(k.key).toMatch(/^lsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(await authenticate(h.app.db, `Bearer ${k.key}`)).toEqual({ id: k.id, scope: 'check', org: 'acme', name: 'ci' });
  });
});

describeEachEngine('e2e: the admin key on first start', (engine) => {
  it('is generated once when none is configured, taken from LOCKSTEP_ADMIN_KEY otherwise, and validated', async () => {
    const db = await engine.open();
    try {
      const first = await ensureAdminKey(db, undefined);
      expect(first.generated).toMatch(/^lsk_/);
      expect((await authenticate(db, `Bearer ${first.generated}`))?.scope).toBe('admin');
      expect(await ensureAdminKey(db, undefined)).toEqual({});

      const operator = 'operator-chosen-admin-key-of-enough-length-42';
      expect(await ensureAdminKey(db, operator)).toEqual({});
      expect(await ensureAdminKey(db, operator)).toEqual({});
      expect((await authenticate(db, `Bearer ${operator}`))?.scope).toBe('admin');

      await expect(ensureAdminKey(db, 'short')).rejects.toBeInstanceOf(LockstepError);
      await expect(ensureAdminKey(db, 'x'.repeat(40) + ' y')).rejects.toMatchObject({ field: 'LOCKSTEP_ADMIN_KEY' });
      const checkKey = await createKey(db, { scope: 'check', org: 'acme' });
      await expect(ensureAdminKey(db, checkKey.key)).rejects.toMatchObject({ field: 'LOCKSTEP_ADMIN_KEY' });
      const row = await db.get<{ id: string }>("SELECT id FROM api_keys WHERE name = 'LOCKSTEP_ADMIN_KEY'");
      await revokeKey(db, row!.id);
      await expect(ensureAdminKey(db, operator)).rejects.toMatchObject({ field: 'LOCKSTEP_ADMIN_KEY' });
      expect(await authenticate(db, `Bearer ${operator}`)).toBeNull();
    } finally {
      await db.close();
    }
  });
});

describeEachEngine('e2e: rotating LOCKSTEP_ADMIN_KEY', (engine) => {
  it('a restart with K2 revokes K1 (the previous environment key) and leaves created and generated keys alone', async () => {
    const db = await engine.open();
    try {
      const generated = (await ensureAdminKey(db, undefined)).generated!;
      const created = await createKey(db, { scope: 'admin', name: 'break-glass' });
      const k1 = 'first-operator-admin-key-of-enough-length-0001';
      const k2 = 'second-operator-admin-key-of-enough-length-0002';
      expect(await ensureAdminKey(db, k1)).toEqual({});
      const k1Id = (await authenticate(db, `Bearer ${k1}`))!.id;
      // The restart with the new key: K1 is revoked in the same step that registers K2.
      expect(await ensureAdminKey(db, k2)).toEqual({ revoked: [k1Id] });
      expect(await authenticate(db, `Bearer ${k1}`)).toBeNull();
      expect((await authenticate(db, `Bearer ${k2}`))?.scope).toBe('admin');
      expect((await authenticate(db, `Bearer ${created.key}`))?.scope).toBe('admin');
      expect((await authenticate(db, `Bearer ${generated}`))?.scope).toBe('admin');
      // Restarting with K2 again changes nothing; going back to K1 is refused (it is revoked).
      expect(await ensureAdminKey(db, k2)).toEqual({});
      await expect(ensureAdminKey(db, k1)).rejects.toMatchObject({ field: 'LOCKSTEP_ADMIN_KEY' });
      const active = await db.all<{ name: string }>("SELECT name FROM api_keys WHERE origin = 'env' AND revoked_at IS NULL");
      expect(active).toEqual([{ name: 'LOCKSTEP_ADMIN_KEY' }]);
    } finally {
      await db.close();
    }
  });

  it('an app restarted with K2 answers 401 to K1 and 200 to K2', async () => {
    const k1 = 'first-operator-admin-key-of-enough-length-0001';
    const k2 = 'second-operator-admin-key-of-enough-length-0002';
    const db = await engine.open();
    // Two apps over one store, one after the other (the database is handed over, not closed).
    const handOver = { ...db, close: async () => undefined };
    try {
      for (const [key, gone] of [[k1, undefined], [k2, k1]] as const) {
        const app = createApp(loadConfig({ db: 'unused', port: 0, logLevel: 'silent', adminKey: key, workers: 0, delivery: false }, {}), { database: handOver });
        const { url } = await app.start();
        try {
          const ask = (k: string) => fetch(`${url}/v1/jobs`, { headers: { authorization: `Bearer ${k}` } }).then((r) => r.status);
          expect(await ask(key)).toBe(200);
          if (gone !== undefined) expect(await ask(gone)).toBe(401);
        } finally {
          await app.stop();
        }
      }
    } finally {
      await db.close();
    }
  });
});


describeEachEngine('e2e: failed authentication is limited and quiet (issue 10)', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(engine, { authFailureLimit: 5, authFailureWindowMs: 600_000, logLevel: 'debug' });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('after the limit, bad keys answer 429 problem+json with Retry-After; good keys still work; 401s log nothing at info', async () => {
    const bad = 'lsk_0123456789abcdef_' + 'x'.repeat(43);
    const statuses: number[] = [];
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await h.req('GET', '/v1/jobs', { key: i % 2 === 0 ? bad : 'not-a-key-at-all', headers: { 'x-request-id': `guess-${i}` } });
      statuses.push(r.status);
      ids.push(`guess-${i}`);
      if (r.status === 429) {
        expectProblem(r, 429, 'RATE_LIMITED');
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      }
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    // A valid key from the same address is not locked out by the failures.
    expect((await h.req('GET', '/v1/jobs')).status).toBe(200);
    expect((await h.req('GET', '/v1/jobs', { key: null })).status).toBe(429);
    const lines = h.logs.map((l) => JSON.parse(l) as { level: number; reqId?: string; msg: string });
    const ofGuesses = lines.filter((l) => l.reqId !== undefined && ids.includes(l.reqId));
    // Every line of the 12 attempts is at debug, but one warning when the limit began to answer.
    expect(ofGuesses.filter((l) => l.level >= 30)).toEqual([expect.objectContaining({ level: 40, reqId: 'guess-5', msg: 'failed authentications over the limit: answering 429' })]);
    expect(ofGuesses.length).toBeGreaterThan(12);
  });
});

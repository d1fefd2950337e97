/**
 * The check route takes a key it has authenticated before from the server's cache and has the
 * check's own statement read whether the key is still active (docs/adr/0028-*): one statement per
 * check, and a key revoked after it was cached is refused at once — by every consistency mode, by
 * concurrent (batched) checks, and before any other error is answered — on both engines.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createKey, revokeKey } from '../../src/api/keys.ts';
import type { Sql } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { expectProblem, ORG, seed, startHarness, type Harness } from './harness.ts';

const CHECK = { subject: 'alice', permission: 'doc.read', resource: 'doc:readme' };
const CRITICAL = { subject: 'alice', permission: 'doc.delete', resource: 'doc:readme' };

/** Counts the statements run outside transactions on `sql` (where checks run) while `fn` runs. */
async function statementsOf(sqls: Sql[], fn: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const restore: (() => void)[] = [];
  for (const s of sqls) {
    const target = s as unknown as Record<'get' | 'all' | 'run', (...a: unknown[]) => Promise<unknown>>;
    for (const m of ['get', 'all', 'run'] as const) {
      const original = target[m];
      target[m] = (...a: unknown[]) => {
        const st = a[0] as string | { text?: string };
        seen.push(typeof st === 'string' ? st : String((st as { text?: string }).text ?? st));
        return original.apply(s, a);
      };
      restore.push(() => {
        target[m] = original;
      });
    }
  }
  try {
    await fn();
  } finally {
    for (const r of restore) r();
  }
  return seen;
}

describeEachEngine('e2e: a check route confirms its key in the check statement', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    // The refusals here are many: no limit on failed authentications (0 turns it off).
    h = await startHarness(engine, { authFailureLimit: 0 });
    await seed(h, 'acme');
    await seed(h, 'beta');
  });
  afterAll(async () => {
    await h?.close();
  });
  const check = (key: string, body: unknown = CHECK, org = 'acme') => h.req('POST', `${ORG}/${org}/check`, { key, body });
  const dbs = () => [h.app.db, ...(h.app.db.genericPlans ? [h.app.db.genericPlans] : [])];

  it('a key seen before costs no lookup of its own: one statement per check, which reads the key', async () => {
    const { key } = await createKey(h.app.db, { scope: 'check', org: 'acme' });
    // The first request looks the key up (and caches it).
    const first = await statementsOf(dbs(), async () => expect((await check(key)).status).toBe(200));
    expect(first.filter((s) => /FROM api_keys/.test(s) && !/key_live/.test(s))).toHaveLength(1);
    const later = await statementsOf(dbs(), async () => {
      for (let i = 0; i < 3; i++) expect((await check(key)).status).toBe(200);
    });
    expect(later).toHaveLength(3);
    for (const s of later) expect(s).toMatch(/key_live/);
    // Other routes still look the key up every time.
    const other = await statementsOf(dbs(), async () => expect((await h.req('GET', `${ORG}/acme/subjects/alice/effective`, { key })).status).toBe(200));
    expect(other.filter((s) => /FROM api_keys/.test(s))).toHaveLength(1);
  });

  it('a cached key revoked behind the server is refused at once, in every consistency mode', async () => {
    const { key, id } = await createKey(h.app.db, { scope: 'check', org: 'acme' });
    const modes = [
      CHECK,
      { ...CHECK, consistency: { mode: 'minimize_latency' } },
      { ...CHECK, consistency: { mode: 'fully_consistent' } },
      { ...CHECK, consistency: { mode: 'at_least_as_fresh', revision: 1 } },
      CRITICAL,
    ];
    for (const body of modes) expect((await check(key, body)).status, JSON.stringify(body)).toBe(200);
    // Revoked through the store, as another process (or the keys CLI) would: the server is not told.
    expect(await revokeKey(h.app.db, id)).toBe(true);
    for (const body of modes) {
      const r = await check(key, body);
      expectProblem(r, 401, 'UNAUTHENTICATED');
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(r.json.allowed).toBeUndefined();
    }
  });

  it('concurrent checks of a revoked cached key (one batched statement on PostgreSQL) are all refused; other keys in the batch are answered', async () => {
    const revoked = await createKey(h.app.db, { scope: 'check', org: 'acme' });
    const live = await createKey(h.app.db, { scope: 'check', org: 'acme' });
    expect((await check(revoked.key)).status).toBe(200);
    expect((await check(live.key)).status).toBe(200);
    expect(await revokeKey(h.app.db, revoked.id)).toBe(true);
    const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => check(i % 2 === 0 ? revoked.key : live.key)));
    answers.forEach((r, i) => {
      if (i % 2 === 0) expectProblem(r, 401, 'UNAUTHENTICATED');
      else expect(r.status, r.text).toBe(200);
    });
    expect(answers.filter((r) => r.status === 200).every((r) => r.json.allowed === true)).toBe(true);
  });

  it('a revoked cached key learns nothing from other errors: bad bodies, unknown organizations and permissions, other organizations are all 401', async () => {
    const { key, id } = await createKey(h.app.db, { scope: 'check', org: 'acme' });
    expect((await check(key)).status).toBe(200);
    // While the key is active, those requests get their own answers.
    const cases = [
      { body: { subject: 'alice' }, status: 400 },
      { body: { ...CHECK, permission: 'no.such' }, status: 404 },
      { body: { ...CHECK, consistency: { mode: 'at_least_as_fresh', revision: 10_000_000 } }, status: 400 },
      { body: CHECK, org: 'beta', status: 403 },
    ];
    for (const c of cases) expect((await check(key, c.body, c.org)).status, JSON.stringify(c)).toBe(c.status);
    const raw = await h.req('POST', `${ORG}/acme/check`, { key, raw: '{not json' });
    expect(raw.status).toBe(400);
    const admin = await createKey(h.app.db, { scope: 'admin' });
    expect((await check(admin.key, CHECK, 'nowhere')).status).toBe(404);
    expect(await revokeKey(h.app.db, id)).toBe(true);
    expect(await revokeKey(h.app.db, admin.id)).toBe(true);
    for (const c of cases) expectProblem(await check(key, c.body, c.org), 401, 'UNAUTHENTICATED');
    expectProblem(await h.req('POST', `${ORG}/acme/check`, { key, raw: '{not json' }), 401, 'UNAUTHENTICATED');
    expectProblem(await check(admin.key, CHECK, 'nowhere'), 401, 'UNAUTHENTICATED');
    // Forgotten once refused: the next request takes the lookup, and is refused there.
    const after = await statementsOf(dbs(), async () => expectProblem(await check(key), 401, 'UNAUTHENTICATED'));
    expect(after.some((s) => /FROM api_keys/.test(s) && !/key_live/.test(s))).toBe(true);
  });

  it('when the key\'s confirmation itself fails (the store broke), the error is still a problem+json', async () => {
    const broken = await startHarness(engine, { authFailureLimit: 0 });
    try {
      await seed(broken, 'acme');
      const { key } = await createKey(broken.app.db, { scope: 'check', org: 'acme' });
      expect((await broken.req('POST', `${ORG}/acme/check`, { key, body: CHECK })).status).toBe(200);
      // Both the check's statement and the confirming lookup fail from here on.
      await broken.app.db.run('ALTER TABLE api_keys RENAME TO api_keys_gone');
      const r = await broken.req('POST', `${ORG}/acme/check`, { key, body: CHECK });
      expect(r.status).toBeGreaterThanOrEqual(500);
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(r.json.allowed).toBeUndefined();
    } finally {
      await broken.close();
    }
  });
});

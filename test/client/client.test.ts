/**
 * The typed client against a live server (real HTTP on loopback), both engines: read-your-writes
 * through the revision a write answered, problem+json as LockstepError, the bounded retry of 503
 * freshness answers after Retry-After, and the pagination helper.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createClient, data, LockstepError, pages, type RetryEvent } from '@lockstep/client';
import { createWorker } from '../../src/propagation/worker.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { ADMIN_KEY, seed, startHarness, type Harness } from '../e2e/harness.ts';

describeEachEngine('client: against a live server', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(engine);
    await seed(h, 'acme');
  });
  afterAll(() => h?.close());

  it('carries the revision of a write into the next check: at_least_as_fresh, allowed', async () => {
    const ls = createClient({ url: h.url, key: ADMIN_KEY });
    expect(ls.revision('acme')).toBeUndefined();
    // bot joins eng (viewer on ws:main: doc.read, a standard permission, so asynchronous)
    const w = await data(ls.api.PUT('/v1/organizations/{org}/groups/{id}/members/{subject}', { params: { path: { org: 'acme', id: 'eng', subject: 'bot' } } }));
    expect(w.propagation.mode).toBe('async');
    expect(ls.revision('acme')).toBe(w.revision);
    const r = await ls.check('acme', { subject: 'bot', permission: 'doc.read', resource: 'doc:readme' });
    expect(r).toMatchObject({ allowed: true, consistency: 'at_least_as_fresh' });
    expect(r.revision).toBeGreaterThanOrEqual(w.revision);
    // a delete's revision comes from its Lockstep-Revision header, and is carried too
    const d = await data(ls.api.DELETE('/v1/organizations/{org}/groups/{id}/members/{subject}', { params: { path: { org: 'acme', id: 'eng', subject: 'bot' } } }));
    expect(ls.revision('acme')).toBe(d.revision);
    expect(d.revision).toBeGreaterThan(w.revision);
    expect(await ls.check('acme', { subject: 'bot', permission: 'doc.read', resource: 'doc:readme' })).toMatchObject({ allowed: false });
    // an explicit consistency is the caller's: left alone
    expect((await ls.check('acme', { subject: 'alice', permission: 'doc.read', resource: 'doc:readme', consistency: { mode: 'fully_consistent' } })).consistency).toBe('fully_consistent');
  });

  it('a 400 is a LockstepError naming the field, and the write changed nothing', async () => {
    const ls = createClient({ url: h.url, key: ADMIN_KEY });
    const before = await h.snapshot('acme');
    const e = await ls.api
      .PUT('/v1/organizations/{org}/subjects/{id}', { params: { path: { org: 'acme', id: 'carol' } }, body: { kind: 'user', colour: 'red' } as never })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LockstepError);
    expect(e).toMatchObject({ status: 400, code: 'VALIDATION', field: 'colour', type: 'urn:lockstep:error:validation' });
    expect((e as LockstepError).requestId).toEqual(expect.any(String));
    expect((e as LockstepError).detail).toContain('colour');
    expect(await h.snapshot('acme')).toEqual(before);
    const bad = await ls.check('acme', { subject: 'alice', permission: 'doc.read', resource: 'no-colon' }).catch((x: unknown) => x);
    expect(bad).toMatchObject({ status: 400, code: 'VALIDATION', field: 'resource' });
  });

  it('401 and 404 are typed errors too', async () => {
    const anon = createClient({ url: h.url, key: 'lsk_nope_nope' });
    await expect(anon.api.GET('/v1/jobs')).rejects.toMatchObject({ name: 'LockstepError', status: 401, code: 'UNAUTHENTICATED' });
    const ls = createClient({ url: h.url, key: ADMIN_KEY });
    await expect(ls.api.GET('/v1/organizations/{org}/changes/{revision}', { params: { path: { org: 'acme', revision: 999999 as never } } })).rejects.toMatchObject({ status: expect.any(Number), code: expect.stringMatching(/NOT_FOUND|VALIDATION/) });
  });

  it('pages() walks a cursor listing to its end', async () => {
    const ls = createClient({ url: h.url, key: ADMIN_KEY });
    for (const s of ['m1', 'm2', 'm3']) {
      await ls.api.PUT('/v1/organizations/{org}/subjects/{id}', { params: { path: { org: 'acme', id: s } }, body: { kind: 'user' } });
      await ls.api.PUT('/v1/organizations/{org}/groups/{id}/members/{subject}', { params: { path: { org: 'acme', id: 'eng', subject: s } } });
    }
    const seen: string[] = [];
    let n = 0;
    for await (const page of pages((cursor: string | undefined) =>
      data(ls.api.GET('/v1/organizations/{org}/groups/{id}/members', { params: { path: { org: 'acme', id: 'eng' }, query: { limit: '1', ...(cursor ? { cursor } : {}) } } })),
    )) {
      n++;
      seen.push(...page.members.map((m) => m.member));
    }
    expect(seen.sort()).toEqual(['subject:alice', 'subject:m1', 'subject:m2', 'subject:m3']);
    expect(n).toBeGreaterThanOrEqual(4);
  });
});

describeEachEngine('client: retry of 503 freshness answers', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    // no worker: an asynchronous grant stays pending until the test runs one
    h = await startHarness(engine, { workers: 0, freshnessTimeoutMs: 50 });
    await seed(h, 'acme');
  });
  afterAll(() => h?.close());

  it('retries after Retry-After (capped) and answers once the read model caught up', async () => {
    const retries: RetryEvent[] = [];
    const ls = createClient({
      url: h.url,
      key: ADMIN_KEY,
      retry: {
        attempts: 3,
        maxDelayMs: 20,
        onRetry: async (e) => {
          retries.push(e);
          await createWorker({ db: h.app.db }).drain(); // the read model catches up while the client waits
        },
      },
    });
    await ls.api.PUT('/v1/organizations/{org}/groups/{id}/members/{subject}', { params: { path: { org: 'acme', id: 'eng', subject: 'bot' } } });
    const r = await ls.check('acme', { subject: 'bot', permission: 'doc.read', resource: 'doc:readme' });
    expect(r).toMatchObject({ allowed: true, consistency: 'at_least_as_fresh' });
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatchObject({ attempt: 1, retryAfterMs: 1000, delayMs: 20, problem: { status: 503, code: 'UNAVAILABLE', field: 'consistency.revision' } });
  });

  it('gives up after the bounded attempts with the 503 as a LockstepError; writes are not retried', async () => {
    const retries: RetryEvent[] = [];
    const ls = createClient({ url: h.url, key: ADMIN_KEY, retry: { attempts: 2, maxDelayMs: 5, onRetry: (e) => void retries.push(e) } });
    await ls.api.DELETE('/v1/organizations/{org}/groups/{id}/members/{subject}', { params: { path: { org: 'acme', id: 'eng', subject: 'bot' } } });
    await ls.api.PUT('/v1/organizations/{org}/subjects/{id}', { params: { path: { org: 'acme', id: 'late' } }, body: { kind: 'user' } });
    await ls.api.PUT('/v1/organizations/{org}/groups/{id}/members/{subject}', { params: { path: { org: 'acme', id: 'eng', subject: 'late' } } });
    const e = await ls.check('acme', { subject: 'late', permission: 'doc.read', resource: 'doc:readme' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LockstepError);
    expect(e).toMatchObject({ status: 503, code: 'UNAVAILABLE', field: 'consistency.revision', retryAfter: 1 });
    expect(retries.map((r) => r.attempt)).toEqual([1]);
  });
});

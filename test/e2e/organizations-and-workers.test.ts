/**
 * Two answers the dashboard builds on: GET /v1/organizations (an admin key sees every organization,
 * any other key its own and nothing of the rest) and the `workers` beside GET /v1/jobs (how many
 * workers heartbeat, so "jobs wait and nobody takes them" is visible). SQLite and PostgreSQL.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createWorker } from '../../src/propagation/worker.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { expectProblem, seed, startHarness, type Harness } from './harness.ts';

describeEachEngine('GET /v1/organizations and the workers of /v1/jobs', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(engine, { workers: 0, expectWorkers: 2 });
    await seed(h, 'acme');
    await seed(h, 'beta');
  });
  afterAll(() => h?.close());

  it('an admin key lists every organization; a scoped key only its own, and says whose it is', async () => {
    const all = await h.req('GET', '/v1/organizations');
    expect(all.status, all.text).toBe(200);
    expect(all.json).toEqual({
      organizations: [
        { id: 'acme', name: 'Org acme', revision: expect.any(Number) },
        { id: 'beta', name: 'Org beta', revision: expect.any(Number) },
      ],
      key: { scope: 'admin', org: null },
    });
    for (const scope of ['write', 'check'] as const) {
      const own = await h.req('GET', '/v1/organizations', { key: await h.key(scope, 'beta') });
      expect(own.status, own.text).toBe(200);
      expect(own.json).toEqual({ organizations: [{ id: 'beta', name: 'Org beta', revision: expect.any(Number) }], key: { scope, org: 'beta' } });
    }
    expectProblem(await h.req('GET', '/v1/organizations', { key: null }), 401, 'UNAUTHENTICATED');
  });

  it('/v1/jobs says how many workers heartbeat and how many are expected', async () => {
    const key = await h.key('write', 'acme');
    expect((await h.req('GET', '/v1/jobs', { key })).json.workers).toEqual({ live: 0, expected: 2 });
    const worker = createWorker({ db: h.app.db, pollMs: 50 });
    worker.start();
    try {
      await expect.poll(async () => (await h.req('GET', '/v1/jobs', { key })).json.workers, { timeout: 10_000 }).toEqual({ live: 1, expected: 2 });
    } finally {
      await worker.stop();
    }
    expect((await h.req('GET', '/v1/jobs', { key })).json.workers).toEqual({ live: 0, expected: 2 });
  });
});

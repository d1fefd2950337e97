/**
 * /readyz beside /healthz (issue 14, operations), on both engines, with no key: ready when the
 * database answers and every migration is applied; with LOCKSTEP_EXPECT_WORKERS, only while that
 * many workers heartbeat (their rows in worker_presence, migrations/012). Not ready is a 503
 * problem whose field and detail name what is missing. And the startup summary line.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createWorker, type Worker } from '../../src/propagation/worker.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { expectProblem, startHarness, type Harness } from './harness.ts';

describeEachEngine('e2e: /readyz', (engine) => {
  let h: Harness;
  let plain: Harness;
  beforeAll(async () => {
    [h, plain] = await Promise.all([startHarness(engine, { workers: 0, expectWorkers: 2 }), startHarness(engine)]);
  });
  afterAll(() => Promise.all([h.close(), plain.close()]));

  it('is ready with no key when migrations are applied and no workers are expected', async () => {
    const r = await plain.req('GET', '/readyz', { key: null });
    expect(r.status, r.text).toBe(200);
    expect(r.json).toMatchObject({ status: 'ready', database: engine.name, workers: { expected: 0 } });
    expect(r.json.migrations.applied).toBe(r.json.migrations.expected);
    expect(r.json.migrations.expected).toBeGreaterThanOrEqual(7);
  });

  it('waits for the expected workers: 503 naming them, ready while they heartbeat, not once they stop', async () => {
    let r = await h.req('GET', '/readyz', { key: null });
    expectProblem(r, 503, 'UNAVAILABLE', 'workers');
    expect(r.json.detail).toContain('0 of 2');
    expect(r.headers.get('retry-after')).toBe('1');
    // /healthz is only liveness: up all the same
    expect((await h.req('GET', '/healthz', { key: null })).status).toBe(200);

    const workers: Worker[] = [0, 1].map(() => createWorker({ db: h.app.db, presenceMs: 100, pollMs: 50, onError: () => undefined }));
    workers[0]!.start();
    await expect.poll(async () => (await h.req('GET', '/readyz', { key: null })).json.detail, { timeout: 5000 }).toContain('1 of 2');
    workers[1]!.start();
    await expect.poll(async () => (await h.req('GET', '/readyz', { key: null })).status, { timeout: 5000 }).toBe(200);
    r = await h.req('GET', '/readyz', { key: null });
    expect(r.json.workers).toEqual({ expected: 2, live: 2 });

    await workers[1]!.stop(); // a stopping worker withdraws its row at once
    r = await h.req('GET', '/readyz', { key: null });
    expectProblem(r, 503, 'UNAVAILABLE', 'workers');
    expect(r.json.detail).toContain('1 of 2');
    await workers[0]!.stop();
  });

  it('a worker that stops heartbeating (killed) stops counting once its row is stale', async () => {
    // a row last seen long ago is a worker that is gone
    await h.app.db.run('INSERT INTO worker_presence (owner, started_at, seen_at) VALUES ($1, $2, $2), ($3, $2, $2)', ['ghost-1', Date.now() - 60_000, 'ghost-2']);
    const r = await h.req('GET', '/readyz', { key: null });
    expectProblem(r, 503, 'UNAVAILABLE', 'workers');
    expect(r.json.detail).toContain('0 of 2');
  });

  it('names the migrations not applied', async () => {
    const last = await plain.app.db.get<{ version: number; name: string; applied_at: number }>('SELECT version, name, applied_at FROM schema_migrations ORDER BY version DESC LIMIT 1');
    await plain.app.db.run('DELETE FROM schema_migrations WHERE version = $1', [last!.version]);
    try {
      const r = await plain.req('GET', '/readyz', { key: null });
      expectProblem(r, 503, 'UNAVAILABLE', 'migrations');
      expect(r.json.detail).toContain(`migrations not applied: ${Number(last!.version)}`);
    } finally {
      await plain.app.db.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [last!.version, last!.name, last!.applied_at]);
    }
    expect((await plain.req('GET', '/readyz', { key: null })).status).toBe(200);
  });

  it('logs one structured startup summary: engine, masked database, address, migrations, propagation', () => {
    const line = plain.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'lockstep listening');
    expect(line).toMatchObject({
      url: plain.url,
      engine: engine.name,
      database: expect.stringContaining(engine.name === 'sqlite' ? 'sqlite' : 'postgres'),
      migrations: { current: expect.any(Number), count: expect.any(Number) },
      propagation: { inProcessWorkers: 1, mode: 'in-process workers', expectWorkers: 0 },
      delivery: true,
    });
    if (engine.name === 'postgres') expect(line.database).not.toMatch(/:\/\/[^@/]*:[^@/]*@/);
    const other = h.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'lockstep listening');
    expect(other.propagation).toMatchObject({ inProcessWorkers: 0, mode: 'external workers (lockstep worker)', expectWorkers: 2 });
  });
});

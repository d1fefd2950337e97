/**
 * Issue 10, item 1: access history (`…/effective?at=`, `…/access?at=`) replays the organization's
 * log; on the event loop, replays of a large organization stalled every request. The server runs
 * them in worker threads, a bounded number at a time: a cheap request answers while replays run,
 * and replays beyond the bound answer 503 UNAVAILABLE with Retry-After. Ordering, not wall-clock,
 * is asserted. Both engines.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { appendLargeLog } from '../../bench/lib/history-log.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { ORG, startHarness, type Harness } from './harness.ts';

/** Log entries per replay: enough that a replay outlasts many cheap requests on any machine. */
const SUBJECTS = 15_000;

describeEachEngine('e2e: access history off the event loop', (engine) => {
  let h: Harness;
  const o = `${ORG}/hist`;
  let at = '';

  beforeAll(async () => {
    // One replay at a time, one waiting: the third concurrent replay is refused.
    h = await startHarness(engine, { historyWorkers: 1, historyQueue: 1, workers: 0 });
    const put = async (path: string, body: unknown) => expect((await h.req('PUT', `${o}${path}`, { body })).status).toBeLessThan(300);
    await put('', {});
    await put('/permissions/doc.read', { risk: 'critical' });
    await put('/roles/viewer', { permissions: ['doc.read'] });
    await put('/resources/doc/1', {});
    await put('/groups/g', {});
    expect((await h.req('POST', `${o}/assignments`, { body: { principal: 'group:g', role: 'viewer', resource: 'doc:1' } })).status).toBe(201);
    await appendLargeLog(h.app.db, 'hist', SUBJECTS, Date.now());
    at = new Date(Date.now() + 1000).toISOString();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a cheap request answers while replays run; the replays then answer correctly', async () => {
    const order: string[] = [];
    const replays = [1, 2].map((i) =>
      h.req('GET', `${o}/subjects/s${i}/effective?at=${at}`).then((r) => {
        order.push(`replay ${i}`);
        return r;
      }),
    );
    // Health checks, one after another, until the first replay answers. Some must answer while a
    // replay is in its worker with its whole log (nothing left for this thread to do): on the event
    // loop, a replay answered before any request that arrived during it.
    let duringReplay = 0;
    while (order.length === 0) {
      expect((await h.req('GET', '/healthz', { key: null })).status).toBe(200);
      if (order.length > 0) break;
      if (h.app.history.stats().replaying > 0) duringReplay++;
    }
    const answers = await Promise.all(replays);
    expect(duringReplay).toBeGreaterThanOrEqual(1);
    for (const r of answers) {
      expect(r.status, r.text).toBe(200);
      expect(r.json.revision).toBeGreaterThanOrEqual(2 * SUBJECTS);
      expect(r.json.permissions).toEqual([expect.objectContaining({ permission: 'doc.read', resource: 'doc:1' })]);
    }
  });

  it('replays beyond the bound answer 503 with Retry-After at once; the admitted ones complete', async () => {
    const order: string[] = [];
    const ask = (i: number) =>
      h.req('GET', `${o}/resources/doc/1/access?permission=doc.read&at=${at}`, { headers: { 'x-request-id': `replay-${i}` } }).then((r) => {
        order.push(`${i}:${r.status}`);
        return r;
      });
    const running = ask(1);
    const queued = ask(2);
    // Once the first two are admitted (one replaying, one waiting), a third is refused.
    while (h.app.history.stats().queued < 1) await new Promise((r) => setImmediate(r));
    expect(h.app.history.stats().running).toBe(1);
    const refused = await ask(3);
    expect(refused.status, refused.text).toBe(503);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused.json).toMatchObject({ code: 'UNAVAILABLE', field: 'at', detail: expect.stringContaining('access history is busy') });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    const [a, b] = await Promise.all([running, queued]);
    // The refusal came back before either admitted replay finished.
    expect(order[0]).toBe('3:503');
    for (const r of [a, b]) {
      expect(r.status, r.text).toBe(200);
      // Listings are pages (the query crosses to the worker with the question).
      expect(r.json.subjects).toHaveLength(100);
      expect(r.json.next).toEqual(expect.any(String));
    }
  });
});

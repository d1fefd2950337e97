/**
 * An `at_least_as_fresh` check whose revision the read model has not applied in time (no worker
 * runs here): a 503 problem that says what to do, with Retry-After, logged as a warning without a
 * stack; documented in the OpenAPI for /check. Both engines.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { expectProblem, ORG, startHarness, type Harness } from './harness.ts';

describeEachEngine('e2e: at_least_as_fresh timeout', (engine) => {
  let h: Harness;
  const o = `${ORG}/fresh`;
  beforeAll(async () => {
    h = await startHarness(engine, { workers: 0, freshnessTimeoutMs: 50 });
    const ok = async (method: string, path: string, body?: unknown) => {
      const r = await h.req(method, `${o}${path}`, body === undefined ? {} : { body });
      expect(r.status, r.text).toBeLessThan(300);
      return r;
    };
    await ok('PUT', '', {});
    await ok('PUT', '/permissions/doc.read', { risk: 'standard' });
    await ok('PUT', '/roles/reader', { permissions: ['doc.read'] });
    await ok('PUT', '/resources/doc/d1', {});
    await ok('PUT', '/groups/team', {});
    await ok('PUT', '/subjects/ann', { kind: 'user' });
    await ok('POST', '/assignments', { principal: 'group:team', role: 'reader', resource: 'doc:d1' });
  });
  afterAll(() => h.close());

  it('answers 503 with the useful detail, Retry-After, and a warning in the log', async () => {
    const add = await h.req('PUT', `${o}/groups/team/members/ann`);
    expect(add.json.propagation).toEqual({ mode: 'async', status: 'pending' });
    const r = await h.req('POST', `${o}/check`, {
      body: { subject: 'ann', permission: 'doc.read', resource: 'doc:d1', consistency: { mode: 'at_least_as_fresh', revision: add.json.revision } },
    });
    expectProblem(r, 503, 'UNAVAILABLE', 'consistency.revision');
    expect(r.json.detail).toMatch(/retry, or ask for fully_consistent/);
    expect(r.json.detail).toContain(`revision ${add.json.revision}`);
    expect(r.headers.get('retry-after')).toBe('1');
    const lines = h.logs.filter((l) => l.includes(r.json.requestId)).map((l) => JSON.parse(l));
    const line = lines.find((l) => l.code === 'UNAVAILABLE');
    expect(line).toMatchObject({ level: 40, field: 'consistency.revision', detail: r.json.detail });
    expect(lines.some((l) => l.level >= 50)).toBe(false);
    expect(JSON.stringify(lines)).not.toContain('stack');
    // fully_consistent answers at once, as the detail says.
    const full = await h.req('POST', `${o}/check`, {
      body: { subject: 'ann', permission: 'doc.read', resource: 'doc:d1', consistency: { mode: 'fully_consistent' } },
    });
    expect(full.json).toMatchObject({ allowed: true, evaluatedAgainst: 'source' });
  });

  it('the OpenAPI document lists the 503 of /check', async () => {
    const doc = (await h.req('GET', '/openapi.json')).json;
    const responses = doc.paths['/v1/organizations/{org}/check'].post.responses;
    expect(responses['503'].description).toMatch(/at_least_as_fresh.*fully_consistent/s);
    expect(responses['503'].content['application/problem+json']).toBeDefined();
    expect(responses['503'].headers['Retry-After']).toBeDefined();
  });
});

/**
 * The delivery engine is woken after requests that may have written (a write may have produced
 * events), and not after reads a check key may call — POST /check and /check/batch among them:
 * each wake runs a lane-claim transaction, which a check must not pay for (issue 13).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { waitFor } from '../helpers/receivers.ts';
import type { Harness } from '../e2e/harness.ts';
import { deliveryHarness, ORG, seedSettled } from './support.ts';
import { createDirectory } from '../scim/support.ts';

describeEachEngine('delivery wake-ups', (engine) => {
  let h: Harness;
  let wakes = 0;
  beforeAll(async () => {
    h = await deliveryHarness(engine);
    await seedSettled(h, 'w1');
    const d = h.app.delivery.deliverer;
    const wake = d.wake.bind(d);
    d.wake = () => {
      wakes++;
      wake();
    };
  });
  afterAll(() => h.close());

  it('checks, batch checks and listings do not wake it; a write does', async () => {
    wakes = 0;
    const check = { subject: 'alice', permission: 'doc.read', resource: 'doc:readme' };
    for (let i = 0; i < 3; i++) {
      const r = await h.req('POST', `${ORG}/w1/check`, { body: check });
      expect(r.status, r.text).toBe(200);
      expect(r.json.allowed).toBe(true);
    }
    const b = await h.req('POST', `${ORG}/w1/check/batch`, { body: { checks: [check, { ...check, subject: 'bot' }] } });
    expect(b.status, b.text).toBe(200);
    expect((await h.req('GET', `${ORG}/w1/subjects/alice/effective`)).status).toBe(200);
    // One more round trip: every response above has finished (its onResponse hook has run).
    expect((await h.req('GET', '/healthz', { key: null })).status).toBe(200);
    expect(wakes).toBe(0);

    const w = await h.req('PUT', `${ORG}/w1/groups/eng/members/bot`);
    expect(w.status, w.text).toBeLessThan(300);
    expect(await waitFor(() => wakes > 0)).toBe(true);
  });

  it('a SCIM write wakes it too (its routes are registered in a plugin of their own); a SCIM read does not', async () => {
    const dir = await createDirectory(h, 'w1', 'generic');
    expect((await dir.req('GET', '/Users')).status).toBe(200);
    expect((await h.req('GET', '/healthz', { key: null })).status).toBe(200);
    wakes = 0;
    expect((await dir.req('GET', '/Groups')).status).toBe(200);
    expect((await h.req('GET', '/healthz', { key: null })).status).toBe(200);
    expect(wakes).toBe(0);
    const u = await dir.req('POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'carol@example.com', externalId: 'carol' });
    expect(u.status, u.text).toBe(201);
    expect(await waitFor(() => wakes > 0)).toBe(true);
  });
});

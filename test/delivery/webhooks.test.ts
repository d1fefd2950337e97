/**
 * Webhook delivery end to end, both engines: real receivers on loopback verify every request with
 * the reference implementation (`standardwebhooks`) and record arrival order.
 */
import { expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { waitFor } from '../helpers/receivers.ts';
import { expandMessage } from '../../src/domain/delivery.ts';
import type { Harness } from '../e2e/harness.ts';
import { addTarget, deliverySuite, ORG, seedSettled } from './support.ts';

describeEachEngine('webhook delivery', (engine) => {
  let h: Harness;
  const receiver = deliverySuite(engine, (made) => (h = made));

  it('delivers every change as signed, acknowledged messages, in per-subject order', async () => {
    const org = 'w1';
    await seedSettled(h, org);
    const rx = await receiver();
    const t = await addTarget(h, org, { name: 'app', kind: 'webhook', url: rx.url, critical: true });
    expect(t.secret).toMatch(/^whsec_/);
    rx.secrets = [t.secret];
    for (const s of ['bob', 'carol', 'dave']) await h.req('PUT', `${ORG}/${org}/subjects/${s}`, { body: { kind: 'user' } });
    const revs: number[] = [];
    // each subject joins, leaves and joins again
    for (const op of ['PUT', 'DELETE', 'PUT'])
      for (const s of ['bob', 'carol', 'dave']) revs.push((await h.req(op, `${ORG}/${org}/groups/eng/members/${s}`)).status);
    const last = await h.req('DELETE', `${ORG}/${org}/groups/eng/members/alice`);
    expect(last.status).toBe(200);
    expect(await waitFor(() => rx.acked().length >= 10)).toBe(true);
    expect(rx.received.every((r) => r.verified)).toBe(true);
    // per subject, the sequence is grant, revoke, grant (alice: one revoke), in revision order
    const seen = new Map<string, { type: string; revision: number }[]>();
    for (const r of rx.acked()) {
      const p = r.payload;
      for (const s of p.data!.subjects) seen.set(s, [...(seen.get(s) ?? []), { type: p.type!, revision: p.data!.revision }]);
      expect(p.data!.access).toEqual([{ role: 'viewer', resource: 'ws:main', permissions: ['doc.read'], tier: 'standard' }]);
    }
    for (const s of ['bob', 'carol', 'dave']) expect(seen.get(s)!.map((e) => e.type)).toEqual(['access.granted', 'access.revoked', 'access.granted']);
    for (const [, evs] of seen) expect(evs.map((e) => e.revision)).toEqual([...evs.map((e) => e.revision)].sort((a, b) => a - b));
    expect(seen.get('alice')!.map((e) => e.type)).toEqual(['access.revoked']);
    // the receipt shows the target's acknowledgement and the revocation window
    const revision = Number(last.headers.get('lockstep-revision'));
    const receipt = (await h.req('GET', `${ORG}/${org}/changes/${revision}`)).json;
    expect(receipt.targets).toEqual([expect.objectContaining({ id: t.id, critical: true, status: 'acked', events: 1, attempts: 1 })]);
    expect(receipt.enforcedAt).toBe(receipt.convergedAt);
    expect(receipt.revocationWindowMs).toBe(Date.parse(receipt.targets[0].ackedAt) - Date.parse(receipt.decidedAt));
    const listed = (await h.req('GET', `${ORG}/${org}/targets/${t.id}`)).json;
    expect(listed).toMatchObject({ state: 'active', backlog: 0, parked: 0, acked: 10, lastError: null });
    expect(listed.lagMs.p50).toBeGreaterThanOrEqual(0);
    expect(listed).not.toHaveProperty('secret');
    // per-target metrics: acknowledged deliveries, lag, backlog and disabled, read at scrape time
    const metrics = (await h.req('GET', '/metrics')).text;
    expect(metrics).toContain(`lockstep_target_deliveries_total{target="${t.id}",outcome="acked"} 10`);
    expect(metrics).toContain(`lockstep_target_backlog{target="${t.id}"} 0`);
    expect(metrics).toContain(`lockstep_target_disabled{target="${t.id}"} 0`);
    expect(metrics).toMatch(new RegExp(`lockstep_target_lag_seconds_count\\{target="${t.id}",type="access.revoked"\\} 4`));
  });

  it('stable webhook-id across retries: a failing, timing-out, then recovering receiver gets every message', async () => {
    const org = 'w2';
    await seedSettled(h, org);
    const rx = await receiver({ behave: (n) => (n <= 2 ? 500 : n <= 4 ? 'hang' : 200) });
    const t = await addTarget(h, org, { name: 'flaky', kind: 'webhook', url: rx.url });
    rx.secrets = [t.secret];
    const r = await h.req('DELETE', `${ORG}/${org}/groups/eng/members/alice`);
    expect(await waitFor(() => rx.acked().length === 1)).toBe(true);
    expect(rx.received.length).toBe(5);
    expect(new Set(rx.received.map((x) => x.headers['webhook-id'])).size).toBe(1);
    const receipt = (await h.req('GET', `${ORG}/${org}/changes/${r.headers.get('lockstep-revision')}`)).json;
    expect(receipt.targets[0]).toMatchObject({ status: 'acked', attempts: 5 });
    const tg = (await h.req('GET', `${ORG}/${org}/targets/${t.id}`)).json;
    expect(tg).toMatchObject({ state: 'active', backlog: 0, lastError: expect.stringMatching(/timeout/) });
  });

  it('a 410 disables the target; later changes are not sent to it', async () => {
    const org = 'w3';
    await seedSettled(h, org);
    const rx = await receiver({ behave: () => 410 });
    const t = await addTarget(h, org, { name: 'gone', kind: 'webhook', url: rx.url });
    rx.secrets = [t.secret];
    await h.req('DELETE', `${ORG}/${org}/groups/eng/members/alice`);
    expect(await waitFor(async () => (await h.req('GET', `${ORG}/${org}/targets/${t.id}`)).json.state === 'disabled')).toBe(true);
    await h.req('PUT', `${ORG}/${org}/groups/eng/members/alice`);
    await new Promise((r) => setTimeout(r, 200));
    expect(rx.received.length).toBe(1);
    expect((await h.req('GET', `${ORG}/${org}/targets/${t.id}`)).json).toMatchObject({ state: 'disabled', backlog: 0, disabledReason: expect.stringMatching(/410/) });
  });

  it('a failing target does not slow a healthy one', async () => {
    const org = 'w4';
    await seedSettled(h, org);
    const down = await receiver({ behave: () => 'hang' });
    const ok = await receiver();
    const td = await addTarget(h, org, { name: 'down', kind: 'webhook', url: down.url });
    const to = await addTarget(h, org, { name: 'ok', kind: 'webhook', url: ok.url });
    down.secrets = [td.secret];
    ok.secrets = [to.secret];
    const subjects = Array.from({ length: 24 }, (_, i) => `s${i}`);
    for (const s of subjects) await h.req('PUT', `${ORG}/${org}/subjects/${s}`, { body: { kind: 'user' } });
    for (const s of subjects) await h.req('PUT', `${ORG}/${org}/groups/eng/members/${s}`);
    for (const s of subjects) await h.req('DELETE', `${ORG}/${org}/groups/eng/members/${s}`);
    // 48 messages for the healthy target, all acknowledged while the other has acknowledged none
    expect(await waitFor(() => ok.acked().length === 48)).toBe(true);
    expect(down.acked().length).toBe(0);
    // the receiver has answered the 48th request before the deliverer records its acknowledgement:
    // wait for the record, then require it whole
    const healthyStatus = async () => (await h.req('GET', `${ORG}/${org}/targets/${to.id}`)).json;
    await waitFor(async () => (await healthyStatus()).acked === 48);
    expect(await healthyStatus()).toMatchObject({ state: 'active', backlog: 0, acked: 48 });
    // the hanging one times out, is shown failing, and still holds all of its backlog
    expect(await waitFor(async () => (await h.req('GET', `${ORG}/${org}/targets/${td.id}`)).json.state === 'failing')).toBe(true);
    const failing = (await h.req('GET', `${ORG}/${org}/targets/${td.id}`)).json;
    expect(failing).toMatchObject({ backlog: 48, acked: 0, lastError: expect.stringMatching(/timeout/) });
  });

  it('rotating the secret signs with both during the grace period, and only the new one after', async () => {
    const org = 'w5';
    await seedSettled(h, org);
    const oldOnly = await receiver();
    const t = await addTarget(h, org, { name: 'rot', kind: 'webhook', url: oldOnly.url });
    oldOnly.secrets = [t.secret];
    const rotated = await h.req('POST', `${ORG}/${org}/targets/${t.id}/secret`, { body: { graceSeconds: 3600 } });
    expect(rotated.status).toBe(200);
    expect(rotated.json.secret).not.toBe(t.secret);
    expect(rotated.json.secretRotation.previousValidUntil).toEqual(expect.any(String));
    await h.req('DELETE', `${ORG}/${org}/groups/eng/members/alice`);
    expect(await waitFor(() => oldOnly.acked().length === 1)).toBe(true);
    expect(oldOnly.received[0]!.headers['webhook-signature']!.split(' ')).toHaveLength(2);
    // and the new secret alone verifies the same request
    oldOnly.secrets = [rotated.json.secret];
    await h.req('PUT', `${ORG}/${org}/groups/eng/members/alice`);
    expect(await waitFor(() => oldOnly.acked().length === 2)).toBe(true);
    // no grace: the old secret stops at once
    const again = await h.req('POST', `${ORG}/${org}/targets/${t.id}/secret`, { body: { graceSeconds: 0 } });
    oldOnly.secrets = [rotated.json.secret];
    await h.req('DELETE', `${ORG}/${org}/groups/eng/members/alice`);
    expect(await waitFor(() => oldOnly.received.length >= 3)).toBe(true);
    expect(oldOnly.received[2]!.verified).toBe(false);
    expect(oldOnly.received[2]!.headers['webhook-signature']!.split(' ')).toHaveLength(1);
    expect(again.json.secretRotation).toBeNull();
  });

  it('replay from a revision re-delivers exactly the events after it, as new messages', async () => {
    const org = 'w6';
    await seedSettled(h, org);
    const rx = await receiver();
    const t = await addTarget(h, org, { name: 'rp', kind: 'webhook', url: rx.url });
    rx.secrets = [t.secret];
    const revs: number[] = [];
    for (const op of ['DELETE', 'PUT', 'DELETE', 'PUT']) {
      const w = await h.req(op, `${ORG}/${org}/groups/eng/members/alice`);
      revs.push(w.json?.revision ?? Number(w.headers.get('lockstep-revision')));
    }
    expect(await waitFor(() => rx.acked().length === 4)).toBe(true);
    const before = rx.received.length;
    const r = await h.req('POST', `${ORG}/${org}/targets/${t.id}/replay`, { body: { fromRevision: revs[1] } });
    expect(r.json).toMatchObject({ id: t.id, fromRevision: revs[1], queued: 2 });
    expect(await waitFor(() => rx.acked().length === 6)).toBe(true);
    const replayed = rx.received.slice(before);
    expect(replayed.map((x) => x.payload.data!.revision)).toEqual(revs.slice(2));
    expect(replayed.every((x) => /_g1$/.test(x.headers['webhook-id']!))).toBe(true);
    const bad = await h.req('POST', `${ORG}/${org}/targets/${t.id}/replay`, { body: { fromRevision: -1 } });
    expect(bad.status).toBe(400);
    void expandMessage;
  });
});

/**
 * SSF push (SETs verified with jose against the published JWKS), revoke-and-confirm, the watch
 * stream, revocations before grants, and target validation — both engines.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEachEngine, sqliteEngine } from '../helpers/engines.ts';
import { waitFor } from '../helpers/receivers.ts';
import { expectProblem, startHarness, type Harness } from '../e2e/harness.ts';
import { SSF_EVENTS } from '../../src/delivery/signing.ts';
import { addTarget, deliverySuite, ORG, seedSettled } from './support.ts';

describeEachEngine('SSF, confirm and watch', (engine) => {
  let h: Harness;
  const receiver = deliverySuite(engine, (made) => (h = made));

  it('pushes SETs signed ES256 with the published key: token-claims-change, and session-revoked on deprovisioning', async () => {
    const org = 's1';
    await seedSettled(h, org);
    const conf = await h.req('GET', '/.well-known/ssf-configuration', { key: null });
    expect(conf.status).toBe(200);
    expect(conf.json).toMatchObject({ issuer: h.url, jwks_uri: `${h.url}/.well-known/jwks.json`, delivery_methods_supported: ['urn:ietf:rfc:8935'] });
    const rx = await receiver({ kind: 'ssf', jwksUrl: conf.json.jwks_uri });
    await addTarget(h, org, { name: 'idp', kind: 'ssf', url: rx.url });
    await h.req('DELETE', `${ORG}/${org}/groups/eng/members/alice`);
    await h.req('PUT', `${ORG}/${org}/groups/eng/members/alice`);
    await h.req('PUT', `${ORG}/${org}/subjects/alice`, { body: { kind: 'user', active: false } });
    expect(await waitFor(() => rx.acked().length === 4)).toBe(true);
    expect(rx.received.every((r) => r.verified)).toBe(true);
    const events = rx.acked().map((r) => r.payload);
    for (const p of events) expect(p).toMatchObject({ iss: h.url, aud: rx.url, sub_id: { format: 'opaque', id: 'alice' }, jti: expect.any(String), txn: expect.any(String) });
    expect(events.map((p) => Object.keys(p.events as object)[0])).toEqual([
      SSF_EVENTS.tokenClaimsChange,
      SSF_EVENTS.tokenClaimsChange,
      SSF_EVENTS.sessionRevoked,
      SSF_EVENTS.tokenClaimsChange,
    ]);
    const claims = (p: (typeof events)[number]) => (p.events as Record<string, { claims: { lockstep_access: Record<string, unknown> } }>)[SSF_EVENTS.tokenClaimsChange]!.claims.lockstep_access;
    expect(claims(events[0]!)).toEqual({ revoked: [{ role: 'viewer', resource: 'ws:main', permissions: ['doc.read'], tier: 'standard' }] });
    expect(Object.keys(claims(events[1]!))).toEqual(['granted']);
    expect(Object.keys(claims(events[3]!))).toEqual(['revoked']);
    expect(new Set(events.map((p) => p.jti)).size).toBe(4);
  });

  it('?confirm=MS answers confirmed with the ack time inside the budget, and unconfirmed without failing when the target is down', async () => {
    const org = 's2';
    await seedSettled(h, org);
    const up = await receiver();
    const t = await addTarget(h, org, { name: 'gateway', kind: 'webhook', url: up.url, critical: true });
    up.secrets = [t.secret];
    const t0 = Date.now();
    const r = await h.req('DELETE', `${ORG}/${org}/groups/eng/members/alice?confirm=3000`);
    const answered = Date.now();
    expect(r.status).toBe(200);
    expect(r.json.propagation.targets).toEqual([{ id: t.id, name: 'gateway', confirmed: true, ackedAt: expect.any(String) }]);
    const acked = Date.parse(r.json.propagation.targets[0].ackedAt);
    expect(acked).toBeGreaterThanOrEqual(t0 - 5);
    expect(acked).toBeLessThanOrEqual(answered + 5);
    expect(up.acked()).toHaveLength(1);

    // the target goes down (hangs): the write commits and is enforced, the answer says unconfirmed
    up.behave = () => 'hang';
    const w = await h.req('PUT', `${ORG}/${org}/groups/eng/members/alice?confirm=300`);
    expect(w.status).toBe(200);
    expect(w.json.changed).toBe(true);
    expect(w.json.propagation.targets).toEqual([{ id: t.id, name: 'gateway', confirmed: false, ackedAt: null }]);
    const off = await h.req('DELETE', `${ORG}/${org}/groups/eng/members/alice?confirm=300`);
    expect(off.status).toBe(200);
    expect(off.json.propagation.targets[0].confirmed).toBe(false);
    const check = await h.req('POST', `${ORG}/${org}/check`, { body: { subject: 'alice', permission: 'doc.read', resource: 'doc:readme' } });
    expect(check.json.allowed).toBe(false);
    expectProblem(await h.req('DELETE', `${ORG}/${org}/groups/eng/members/alice?confirm=soon`), 400, 'VALIDATION', 'confirm');
    // the unconfirmed deliveries are still queued for it (deleting the target drops them)
    expect((await h.req('GET', `${ORG}/${org}/targets/${t.id}`)).json.backlog).toBe(2);
    expect((await h.req('DELETE', `${ORG}/${org}/targets/${t.id}`)).json).toMatchObject({ deleted: true, dropped: 2 });
  });

  it('watch streams events as SSE, resumes after Last-Event-ID, and sends heartbeats', async () => {
    const org = 's3';
    await seedSettled(h, org);
    const { revision } = (await h.req('GET', `${ORG}/${org}`)).json;
    const ctl = new AbortController();
    const res = await fetch(`${h.url}${ORG}/${org}/watch?after=${revision}`, { headers: { authorization: 'Bearer test-admin-key-0123456789abcdefghijklmnopqrstuvwxyz' }, signal: ctl.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    const read = async (until: (t: string) => boolean) => {
      while (!until(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
    };
    await h.req('DELETE', `${ORG}/${org}/groups/eng/members/alice`);
    await h.req('PUT', `${ORG}/${org}/groups/eng/members/alice`);
    await read((t) => (t.match(/^event: /gm) ?? []).length >= 2 && t.includes(': heartbeat'));
    ctl.abort();
    const frames = text.split('\n\n').filter((f) => f.startsWith('id: '));
    expect(frames.map((f) => /^event: (.*)$/m.exec(f)![1])).toEqual(['access.revoked', 'access.granted']);
    const firstId = /^id: (.*)$/m.exec(frames[0]!)![1]!;
    expect(JSON.parse(/^data: (.*)$/m.exec(frames[0]!)![1]!)).toMatchObject({ type: 'access.revoked', organization: org, revision: revision + 1, subjects: ['alice'] });
    // resume after the first: only the second comes again
    const ctl2 = new AbortController();
    const res2 = await fetch(`${h.url}${ORG}/${org}/watch`, { headers: { authorization: 'Bearer test-admin-key-0123456789abcdefghijklmnopqrstuvwxyz', 'last-event-id': firstId }, signal: ctl2.signal });
    const r2 = res2.body!.getReader();
    let t2 = '';
    while (!/^event: /m.test(t2)) t2 += new TextDecoder().decode((await r2.read()).value);
    ctl2.abort();
    expect(/^event: (.*)$/m.exec(t2)![1]).toBe('access.granted');
    expectProblem(await h.req('GET', `${ORG}/${org}/watch`, { headers: { 'last-event-id': 'x' } }), 400, 'VALIDATION', 'Last-Event-ID');
  });

  it('revocations go before grants queued at the same time', async () => {
    const org = 's4';
    await seedSettled(h, org);
    const subjects = Array.from({ length: 6 }, (_, i) => `r${i}`);
    const grants = Array.from({ length: 6 }, (_, i) => `g${i}`);
    for (const s of [...subjects, ...grants]) await h.req('PUT', `${ORG}/${org}/subjects/${s}`, { body: { kind: 'user' } });
    for (const s of subjects) await h.req('PUT', `${ORG}/${org}/groups/eng/members/${s}`);
    // the target cannot be reached while the changes queue: grants first, then revocations
    const rx = await receiver({ behave: () => 503 });
    await h.app.delivery.deliverer.stop();
    const t = await addTarget(h, org, { name: 'order', kind: 'webhook', url: rx.url });
    rx.secrets = [t.secret];
    for (const s of grants) await h.req('PUT', `${ORG}/${org}/groups/eng/members/${s}`);
    for (const s of subjects) await h.req('DELETE', `${ORG}/${org}/groups/eng/members/${s}`);
    rx.behave = () => 200;
    // one lane at a time, so arrival order is the engine's choice
    const { createDeliverer } = await import('../../src/delivery/deliverer.ts');
    const one = createDeliverer({ db: h.app.db, keys: h.app.delivery.keys, issuer: () => h.url, allowPrivate: true, concurrency: 1, perTarget: 1 });
    await one.drain();
    h.app.delivery.deliverer.start();
    const types = rx.acked().map((r) => r.payload.type);
    expect(types).toHaveLength(12);
    expect(types.lastIndexOf('access.revoked')).toBeLessThan(types.indexOf('access.granted'));
  });
});

describe('target validation', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(sqliteEngine);
    await seedSettled(h, 'v');
  });
  afterAll(() => h.close());

  it('refuses private, loopback and link-local URLs and plain http outside LOCKSTEP_TARGETS_ALLOW_PRIVATE, and bad fields; nothing is created', async () => {
    for (const url of ['https://127.0.0.1/h', 'https://10.1.2.3/h', 'https://169.254.169.254/latest', 'https://[::1]/h', 'https://[fe80::1]/h', 'https://localhost/h', 'http://93.184.216.34/h', 'https://user:pw@93.184.216.34/']) {
      expectProblem(await h.req('POST', `${ORG}/v/targets`, { body: { name: 'x', kind: 'webhook', url } }), 400, 'VALIDATION', 'url');
    }
    expectProblem(await h.req('POST', `${ORG}/v/targets`, { body: { name: 'x', kind: 'carrier-pigeon', url: 'https://93.184.216.34/' } }), 400, 'VALIDATION');
    expectProblem(await h.req('POST', `${ORG}/v/targets`, { body: { name: 'x', kind: 'webhook', url: 'https://93.184.216.34/', extra: 1 } }), 400, 'VALIDATION');
    expect((await h.req('GET', `${ORG}/v/targets`)).json.targets).toEqual([]);
    const ok = await h.req('POST', `${ORG}/v/targets`, { body: { name: 'public', kind: 'webhook', url: 'https://93.184.216.34/hook' } });
    expect(ok.status).toBe(201);
    const other = await h.key('write', 'elsewhere');
    expectProblem(await h.req('GET', `${ORG}/v/targets/${ok.json.id}`, { key: other }), 403, 'FORBIDDEN');
    expectProblem(await h.req('GET', `${ORG}/v/targets/${ok.json.id}`, { key: null }), 401, 'UNAUTHENTICATED');
    expect((await h.req('DELETE', `${ORG}/v/targets/${ok.json.id}`)).json).toMatchObject({ deleted: true });
    expectProblem(await h.req('GET', `${ORG}/v/targets/${ok.json.id}`), 404, 'NOT_FOUND', 'id');
  });
});

/**
 * OpenTelemetry tracing (ADR 0016), both engines: one asynchronous grant written over HTTP gives one
 * trace — the request's span, the policy write inside it, the reconciliation batch that carried the
 * write's job (run later, by the worker), and the delivery of the batch's event to a target — each
 * the parent of the next, across the two hops through the database (jobs.trace_parent,
 * delivery_events.trace_parent).
 */
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTracing, type Tracing } from '../../src/observability/tracing.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { startReceiver, waitFor, type Receiver } from '../helpers/receivers.ts';
import { ORG, seed, startHarness, type Harness } from '../e2e/harness.ts';
import { addTarget, QUICK } from '../delivery/support.ts';

describeEachEngine('tracing: request → write → job batch → delivery', (engine) => {
  let h: Harness;
  let rx: Receiver;
  let tracing: Tracing;
  const exporter = new InMemorySpanExporter();
  beforeAll(async () => {
    tracing = await createTracing({ exporter });
    h = await startHarness(engine, { targetsAllowPrivate: true }, { tracing, delivery: QUICK });
    await seed(h, 'acme');
    for (let i = 0; i < 500 && (await h.app.lockstep.listJobs({ org: 'acme', states: ['pending', 'running', 'retrying'] })).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    rx = await startReceiver();
    const t = await addTarget(h, 'acme', { name: 'app', kind: 'webhook', url: rx.url });
    rx.secrets = [t.secret];
  });
  afterAll(async () => {
    await h?.close();
    await rx?.close();
    await tracing?.shutdown();
  });

  const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
  const idOf = (s: ReadableSpan) => s.spanContext().spanId;

  it('one trace, each span the parent of the next', async () => {
    exporter.reset();
    // bot joins eng (viewer of ws:main, doc.read is standard): an asynchronous grant
    const w = await h.req('PUT', `${ORG}/acme/groups/eng/members/bot`);
    expect(w.status, w.text).toBe(200);
    expect(w.json.propagation.status).toBe('pending');
    expect(await waitFor(() => rx.acked().some((r) => r.payload.data?.subjects.includes('bot')))).toBe(true);
    expect(await waitFor(() => exporter.getFinishedSpans().some((s) => s.name === 'lockstep.delivery.send'))).toBe(true);

    const spans = exporter.getFinishedSpans();
    const http = spans.find((s) => s.name === 'PUT /v1/organizations/:org/groups/:id/members/:subject');
    expect(http, spans.map((s) => s.name).join(', ')).toBeDefined();
    expect(parentOf(http!)).toBeUndefined();
    expect(http!.attributes).toMatchObject({ 'http.response.status_code': 200, 'http.request.method': 'PUT' });

    const write = spans.find((s) => s.name === 'lockstep.write' && parentOf(s) === idOf(http!));
    expect(write).toBeDefined();
    expect(write!.attributes).toMatchObject({ 'lockstep.org': 'acme', 'lockstep.propagation.status': 'pending', 'lockstep.revision': w.json.revision });

    const batch = spans.find((s) => s.name === 'lockstep.job.batch' && parentOf(s) === idOf(write!));
    expect(batch, spans.map((s) => `${s.name}<-${parentOf(s)}`).join(', ')).toBeDefined();
    expect(String(batch!.attributes['lockstep.job.id'])).toMatch(/^job_/);

    const delivery = spans.find((s) => s.name === 'lockstep.delivery.send' && parentOf(s) === idOf(batch!));
    expect(delivery).toBeDefined();
    expect(delivery!.attributes).toMatchObject({ 'lockstep.delivery.outcome': 'acked', 'lockstep.org': 'acme' });

    for (const s of [write!, batch!, delivery!]) expect(s.spanContext().traceId).toBe(http!.spanContext().traceId);
  });

  it('a synchronous write: its delivery is the write span\'s child; a refused request is a span with its status', async () => {
    exporter.reset();
    const w = await h.req('DELETE', `${ORG}/acme/groups/eng/members/bot`); // a revocation: synchronous
    expect(w.json.propagation.status).toBe('effective');
    expect(await waitFor(() => exporter.getFinishedSpans().some((s) => s.name === 'lockstep.delivery.send'))).toBe(true);
    const spans = exporter.getFinishedSpans();
    const write = spans.find((s) => s.name === 'lockstep.write')!;
    expect(write.attributes['lockstep.propagation.mode']).toBe('sync');
    expect(spans.find((s) => s.name === 'lockstep.delivery.send' && parentOf(s) === idOf(write))).toBeDefined();

    const bad = await h.req('PUT', `${ORG}/acme/roles/viewer`, { body: { permissions: ['Not A Slug'] } });
    expect(bad.status).toBe(400);
    expect(await waitFor(() => exporter.getFinishedSpans().some((s) => s.name === 'PUT /v1/organizations/:org/roles/:slug'))).toBe(true);
    expect(exporter.getFinishedSpans().find((s) => s.name === 'PUT /v1/organizations/:org/roles/:slug')!.attributes['http.response.status_code']).toBe(400);
  });
});

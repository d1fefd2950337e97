/**
 * An error the delivery engine survives is logged with the lane it concerns (target, partition), and
 * the lane is taken over once its lease lapses. The failure is real: a trigger refuses the lane's
 * release on a fresh database (test/helpers/faults.ts), both engines.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../../src/api/logger.ts';
import { logDeliveryEvent } from '../../src/app.ts';
import { createDeliverer } from '../../src/delivery/deliverer.ts';
import type { Harness } from '../e2e/harness.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { fault } from '../helpers/faults.ts';
import { startReceiver, type Receiver } from '../helpers/receivers.ts';
import { addTarget, deliveryHarness, ORG, seedSettled } from './support.ts';

interface LogLine {
  msg: string;
  level: number;
  lane?: { target: string; part: number };
  err?: unknown;
}

describeEachEngine('delivery engine errors', (engine) => {
  let h: Harness;
  let rx: Receiver;
  beforeAll(async () => {
    h = await deliveryHarness(engine);
    rx = await startReceiver();
  });
  afterAll(async () => {
    await rx?.close();
    await h?.close();
  });

  it('a lane whose release fails is logged with its target and partition; after the lease another engine delivers on it', async () => {
    const org = 'de';
    await seedSettled(h, org);
    const t = await addTarget(h, org, { name: 'receiver', kind: 'webhook', url: rx.url });
    rx.secrets = [t.secret];
    await h.app.delivery.deliverer.stop(); // only the engines below deliver
    await h.req('PUT', `${ORG}/${org}/subjects/bob`, { body: { kind: 'user' } });
    expect((await h.req('PUT', `${ORG}/${org}/groups/eng/members/bob`)).status).toBe(200);

    const lines: LogLine[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as LogLine);
        done();
      },
    });
    const onEvent = logDeliveryEvent(createLogger('debug', sink));
    const engineOpts = { db: h.app.db, keys: h.app.delivery.keys, issuer: () => h.url, allowPrivate: true, onEvent };
    const heal = await fault(h.app.db, 'lane_release', 'delivery_lanes', 'UPDATE', 'OLD.owner IS NOT NULL AND NEW.owner IS NULL');
    try {
      await createDeliverer(engineOpts).drain();
    } finally {
      await heal();
    }
    expect(rx.acked().map((r) => r.payload.type)).toEqual(['access.granted']);
    const errors = lines.filter((l) => l.msg === 'delivery engine error');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.lane).toEqual({ target: t.id, part: expect.any(Number) });
    expect(JSON.stringify(errors[0]!.err)).toContain('forced failure: lane_release');

    // The lane is still leased to the first engine; once the lease lapses, the next one takes it.
    expect((await h.req('DELETE', `${ORG}/${org}/groups/eng/members/bob`)).status).toBe(200);
    await createDeliverer(engineOpts).drain();
    expect(rx.acked()).toHaveLength(1);
    await createDeliverer({ ...engineOpts, now: () => Date.now() + 120_000 }).drain();
    expect(rx.acked().map((r) => r.payload.type)).toEqual(['access.granted', 'access.revoked']);
    h.app.delivery.deliverer.start();
  });
});

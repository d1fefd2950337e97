/**
 * SIGKILL of the delivering process mid-batch (PostgreSQL, real processes): a delivery process
 * (test/helpers/delivery-process.ts) sends 90 messages to a slow receiver; it is killed after about
 * twenty acknowledgements; a fresh process takes the lanes over when the leases lapse and finishes.
 * Nothing is lost: every message is acknowledged, duplicates carry the same webhook-id and the same
 * bytes, and per subject the first arrivals keep revision order.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import { createTargets } from '../../src/delivery/targets.ts';
import { startReceiver, waitFor, type Receiver } from '../helpers/receivers.ts';
import { describePostgres, freshPostgres, killAllWorkers, spawnWorker, stopWorker, type FreshDb } from '../propagation/support.ts';

const SCRIPT = fileURLToPath(new URL('../helpers/delivery-process.ts', import.meta.url));
const ORG = 'dcrash';

describePostgres('a delivery process killed mid-batch loses nothing', () => {
  let f: FreshDb;
  let rx: Receiver;
  beforeAll(async () => {
    f = await freshPostgres();
    rx = await startReceiver({ delayMs: 15 });
  });
  afterAll(async () => {
    await killAllWorkers();
    await rx.close();
    await f.close();
  });

  it('redelivers after SIGKILL with the same webhook-id; every message acknowledged', { timeout: 60_000 }, async () => {
    const ls = createLockstep(f.db);
    await ls.putOrganization(ORG, {});
    await ls.putPropagationPolicy(ORG, { grant: { standard: { mode: 'sync' } } });
    await ls.putPermission(ORG, 'doc.read', { risk: 'standard' });
    await ls.putRole(ORG, 'viewer', { permissions: ['doc.read'] });
    await ls.putResource(ORG, 'doc', '1', {});
    await ls.putGroup(ORG, 'g', {});
    await ls.createAssignment(ORG, { principal: 'group:g', role: 'viewer', resource: 'doc:1' });
    const subjects = Array.from({ length: 60 }, (_, i) => `u${String(i).padStart(2, '0')}`);
    for (const s of subjects) await ls.putSubject(ORG, s, { kind: 'user' });
    const t = await createTargets({ db: f.db, now: Date.now, allowPrivate: true }).create(ORG, { name: 'slow', kind: 'webhook', url: rx.url });
    rx.secrets = [t.secret];
    for (const s of subjects) await ls.addMember(ORG, 'g', s);
    for (const s of subjects.slice(0, 30)) await ls.removeMember(ORG, 'g', s);
    const total = Number((await f.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM deliveries'))!.n);
    expect(total).toBe(90);

    const first = spawnWorker(f.schema, { leaseMs: 1000, pollMs: 50 }, SCRIPT);
    await first.waitFor((e) => e.type === 'ready');
    expect(await waitFor(() => rx.acked().length >= 20, 20_000)).toBe(true);
    process.kill(first.pid, 'SIGKILL');
    const { signal } = await first.exited;
    expect(signal).toBe('SIGKILL');
    const pendingAfterKill = Number((await f.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM deliveries WHERE state = 'pending'"))!.n);
    expect(pendingAfterKill).toBeGreaterThan(0);
    // the dead process still owns lanes until their leases lapse
    expect(Number((await f.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM delivery_lanes WHERE owner IS NOT NULL'))!.n)).toBeGreaterThan(0);

    const second = spawnWorker(f.schema, { leaseMs: 1000, pollMs: 50 }, SCRIPT);
    expect(
      await waitFor(async () => Number((await f.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM deliveries WHERE state = 'acked'"))!.n) === 90, 30_000),
    ).toBe(true);
    await stopWorker(second);

    const ids = new Map<string, string>();
    for (const r of rx.acked()) {
      const id = r.headers['webhook-id']!;
      if (ids.has(id)) expect(r.body, `duplicate ${id} has the same bytes`).toBe(ids.get(id));
      ids.set(id, r.body);
    }
    expect(ids.size).toBe(90);
    expect(rx.received.every((r) => r.verified)).toBe(true);
    // per subject: the first arrival of each message in revision order (grant, then revoke)
    const firstSeen = new Map<string, number[]>();
    const seenIds = new Set<string>();
    for (const r of rx.acked()) {
      if (seenIds.has(r.headers['webhook-id']!)) continue;
      seenIds.add(r.headers['webhook-id']!);
      for (const s of r.payload.data!.subjects) firstSeen.set(s, [...(firstSeen.get(s) ?? []), r.payload.data!.revision]);
    }
    for (const s of subjects.slice(0, 30)) {
      const revs = firstSeen.get(s)!;
      expect(revs, s).toHaveLength(2);
      expect(revs[0]!, s).toBeLessThan(revs[1]!);
    }
    // the crash cost at most the messages in flight when it struck (4 lanes)
    expect(rx.acked().length - 90).toBeLessThanOrEqual(8);
  });
});

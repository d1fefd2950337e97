/** Shared set-up of the delivery tests: a harness with private targets allowed and quick retries. */
import { afterAll, beforeAll } from 'vitest';
import type { TestEngine } from '../helpers/engines.ts';
import { startReceiver, type Receiver } from '../helpers/receivers.ts';
import { ORG, seed, startHarness, type Harness } from '../e2e/harness.ts';
import type { Config } from '../../src/config/config.ts';
import type { DelivererOptions } from '../../src/delivery/deliverer.ts';

export const QUICK: Partial<DelivererOptions> = { pollMs: 20, retry: { maxAttempts: 6, baseMs: 30, maxMs: 200 }, timeoutMs: 400, leaseMs: 2000 };

export async function deliveryHarness(engine: TestEngine, config: Partial<Config> = {}, engineOpts: Partial<DelivererOptions> = {}): Promise<Harness> {
  return startHarness(engine, { targetsAllowPrivate: true, ...config }, { delivery: { ...QUICK, ...engineOpts }, watch: { heartbeatMs: 100, pollMs: 20 } });
}

/**
 * The set-up of one delivery suite: a `deliveryHarness` made before the suite's tests (handed to
 * `use`), and a `receiver` maker whose receivers close with the harness after them.
 */
export function deliverySuite(engine: TestEngine, use: (h: Harness) => void): (o?: Parameters<typeof startReceiver>[0]) => Promise<Receiver> {
  let h: Harness | undefined;
  const receivers: Receiver[] = [];
  beforeAll(async () => {
    h = await deliveryHarness(engine);
    use(h);
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all(receivers.map((r) => r.close()));
  });
  return async (o) => {
    const r = await startReceiver(o);
    receivers.push(r);
    return r;
  };
}

export async function addTarget(h: Harness, org: string, body: Record<string, unknown>) {
  const r = await h.req('POST', `${ORG}/${org}/targets`, { body });
  if (r.status !== 201) throw new Error(`target: ${r.status} ${r.text}`);
  return r.json as { id: string; secret: string; state: string };
}

/**
 * The e2e seed, settled: its asynchronous grant job done, and grants made synchronous from then on,
 * so each write's events are its own (an asynchronous grant's events come from its job's batch).
 */
export async function seedSettled(h: Harness, org: string) {
  const r = await seed(h, org);
  const put = await h.req('PUT', `${ORG}/${org}/propagation-policy`, { body: { grant: { standard: { mode: 'sync' }, high: { mode: 'sync' } } } });
  if (put.status !== 200) throw new Error(`policy: ${put.status} ${put.text}`);
  for (let i = 0; i < 500; i++) {
    if ((await h.app.lockstep.listJobs({ org, states: ['pending', 'running', 'retrying'] })).length === 0) return r;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error('seed jobs did not finish');
}

export { ORG, seed };

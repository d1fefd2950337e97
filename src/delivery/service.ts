/**
 * The delivery side, composed: targets, the signing key, the delivery engine, receipts' delivery
 * part, revoke-and-confirm and the scrape-time target gauges. `app.ts` creates one per process.
 */
import type { Database } from '../storage/database.ts';
import type { Metrics } from '../observability/metrics.ts';
import { createDeliverer, type DelivererOptions, type DeliveryEvent } from './deliverer.ts';
import { createKeyStore } from './signing.ts';
import { changeDelivery, confirmChange, deliveryOfChanges, revocationWindow } from './status.ts';
import { createTargets } from './targets.ts';
import type { Lookup } from './url-guard.ts';

import type { Tracing } from '../observability/tracing.ts';

export interface DeliveryOptions {
  db: Database;
  now?: () => number;
  allowPrivate: boolean;
  issuer: () => string;
  confirmMaxMs: number;
  timeoutMs: number;
  metrics?: Metrics | undefined;
  lookup?: Lookup;
  onEvent?: (e: DeliveryEvent) => void;
  engine?: Partial<DelivererOptions>;
  tracing?: Tracing | undefined;
}

export function createDelivery(o: DeliveryOptions) {
  const now = o.now ?? Date.now;
  const keys = createKeyStore(o.db, now);
  const targets = createTargets({ db: o.db, now, allowPrivate: o.allowPrivate, ...(o.lookup ? { lookup: o.lookup } : {}) });
  const deliverer = createDeliverer({
    db: o.db,
    keys,
    issuer: o.issuer,
    allowPrivate: o.allowPrivate,
    now,
    timeoutMs: o.timeoutMs,
    metrics: o.metrics,
    tracing: o.tracing,
    ...(o.lookup ? { lookup: o.lookup } : {}),
    ...(o.onEvent ? { onEvent: o.onEvent } : {}),
    ...o.engine,
  });
  return {
    keys,
    targets,
    deliverer,
    issuer: o.issuer,
    confirmMaxMs: o.confirmMaxMs,
    changeDelivery: (org: string, revision: number) => changeDelivery(o.db, org, revision),
    /** A page of receipts with their targets and revocation windows (one query). */
    async withDelivery<C extends { revision: number; job: { id: string } | null; direction: string; decidedAt: string; convergedAt: string | null }>(org: string, changes: C[]) {
      const map = await deliveryOfChanges(o.db, org, changes.map((c) => ({ revision: c.revision, jobId: c.job?.id ?? null })));
      return changes.map((c) => {
        const targets = map.get(c.revision) ?? [];
        return { ...c, targets, revocationWindowMs: revocationWindow({ direction: c.direction, decidedAt: Date.parse(c.decidedAt), converged: c.convergedAt !== null }, targets) };
      });
    },
    confirm: (org: string, revision: number, budgetMs: number) => confirmChange(o.db, org, revision, Math.min(budgetMs, o.confirmMaxMs), () => deliverer.wake()),
    /** Per-target backlog, parked and disabled gauges, read at scrape time. */
    async refreshMetrics() {
      if (!o.metrics) return;
      const rows = await o.db.all<{ id: string; state: string; backlog: number | null; parked: number | null }>(
        `SELECT t.id, t.state,
                (SELECT COUNT(*) FROM deliveries d WHERE d.target_id = t.id AND d.state = 'pending') AS backlog,
                (SELECT COUNT(*) FROM deliveries d WHERE d.target_id = t.id AND d.state = 'parked') AS parked
           FROM targets t`,
      );
      for (const r of rows) {
        o.metrics.targetBacklog.set({ target: r.id }, Number(r.backlog ?? 0));
        o.metrics.targetParked.set({ target: r.id }, Number(r.parked ?? 0));
        o.metrics.targetDisabled.set({ target: r.id }, r.state === 'disabled' ? 1 : 0);
      }
    },
  };
}
export type Delivery = ReturnType<typeof createDelivery>;

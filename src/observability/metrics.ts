/**
 * Every Prometheus metric Lockstep exports, declared once with its help text. One registry per app
 * (tests run several apps in one process); `/metrics` serves it with the default process metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LAG = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300];

export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'lockstep_' });
  const registers = [registry];
  return {
    registry,
    membershipChange: new Histogram({
      name: 'lockstep_membership_change_seconds',
      help: 'Latency of membership add/remove writes, from the start of the call to its commit',
      labelNames: ['direction', 'mode'] as const,
      buckets: LATENCY,
      registers,
    }),
    propagationLag: new Histogram({
      name: 'lockstep_propagation_lag_seconds',
      help: 'Time from a change being decided to its read-model rows being effective',
      labelNames: ['direction', 'tier'] as const,
      buckets: LAG,
      registers,
    }),
    revocationWindow: new Histogram({
      name: 'lockstep_revocation_window_seconds',
      help: 'How long a revoked permission could still be allowed by a read-model check: 0 where provenance verification covers the tier, else the read-model lag',
      labelNames: ['tier'] as const,
      buckets: [0, ...LAG],
      registers,
    }),
    checkLatency: new Histogram({
      name: 'lockstep_check_seconds',
      help: 'Latency of checks by consistency mode and result',
      labelNames: ['consistency', 'result'] as const,
      buckets: LATENCY,
      registers,
    }),
    jobs: new Gauge({ name: 'lockstep_jobs', help: 'Reconciliation jobs by state', labelNames: ['state'] as const, registers }),
    jobOldestAge: new Gauge({
      name: 'lockstep_job_oldest_age_seconds',
      help: 'Age of the oldest job not yet done (pending, running or retrying); 0 when the queue is empty — a lagging queue grows this, an idle one keeps it at 0',
      registers,
    }),
    reconcileRows: new Counter({ name: 'lockstep_reconcile_rows_total', help: 'Read-model rows written by reconciliation batches', labelNames: ['op'] as const, registers }),
    reconcileBatch: new Histogram({ name: 'lockstep_reconcile_batch_seconds', help: 'Duration of one reconciliation batch transaction', buckets: LAG, registers }),
    lockWait: new Histogram({
      name: 'lockstep_lock_wait_seconds',
      help: "Time spent waiting for an organization's write lock (policy writes and reconciliation batches)",
      buckets: LATENCY,
      registers,
    }),
    txRetries: new Counter({ name: 'lockstep_tx_retries_total', help: 'Transactions retried after a transient error (deadlock, serialization failure, busy, lost connection)', labelNames: ['operation'] as const, registers }),
    driftRows: new Gauge({ name: 'lockstep_drift_rows', help: 'Rows that differed between the read model and the policy at the last drift audit', labelNames: ['org', 'kind'] as const, registers }),
    sloBreaches: new Counter({ name: 'lockstep_slo_breaches_total', help: 'Changes that became effective later than their SLO', labelNames: ['direction', 'tier'] as const, registers }),
    scimRequests: new Counter({
      name: 'lockstep_scim_requests_total',
      help: 'SCIM requests by directory, operation (e.g. "PATCH /Groups/{id}") and HTTP status',
      labelNames: ['directory', 'operation', 'status'] as const,
      registers,
    }),
    scimLatency: new Histogram({
      name: 'lockstep_scim_request_seconds',
      help: 'Latency of SCIM requests, from arrival to the answer (writes: including their commit)',
      labelNames: ['directory', 'operation'] as const,
      buckets: LATENCY,
      registers,
    }),
    scimEnforcement: new Histogram({
      name: 'lockstep_scim_enforcement_seconds',
      help: 'Time from a SCIM write committing to the read model enforcing it: 0 for deprovisionings (their rows are removed in the commit) and for changes applied inline; changes handed to a job are measured by lockstep_propagation_lag_seconds (their revocations are still enforced at commit by provenance verification)',
      labelNames: ['directory', 'direction'] as const,
      buckets: [0, ...LAG],
      registers,
    }),
    targetDeliveries: new Counter({
      name: 'lockstep_target_deliveries_total',
      help: 'Delivery attempts to targets by outcome: acked, failed (will retry), parked (gave up), gone (410: target disabled)',
      labelNames: ['target', 'outcome'] as const,
      registers,
    }),
    targetLag: new Histogram({
      name: 'lockstep_target_lag_seconds',
      help: 'End-to-end delivery lag: from a change being decided to the target acknowledging its event',
      labelNames: ['target', 'type'] as const,
      buckets: LAG,
      registers,
    }),
    targetBacklog: new Gauge({ name: 'lockstep_target_backlog', help: 'Deliveries not yet acknowledged, per target (read at scrape time)', labelNames: ['target'] as const, registers }),
    targetParked: new Gauge({ name: 'lockstep_target_parked', help: 'Deliveries parked after repeated failure, per target (read at scrape time)', labelNames: ['target'] as const, registers }),
    targetDisabled: new Gauge({ name: 'lockstep_target_disabled', help: '1 when a target is disabled (a 410, or by hand), else 0 (read at scrape time)', labelNames: ['target'] as const, registers }),
    jobFailures: new Counter({ name: 'lockstep_job_failures_total', help: 'Reconciliation batch failures, by outcome (retrying or parked as failed)', labelNames: ['outcome'] as const, registers }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * The propagation service: the job queue as operators see it (listing, retrying a parked job, the
 * queue gauges) and the drift audit with its optional repair job.
 */
import type { DriftReport, Job, QueueStats } from '../domain/contract.ts';
import type { JobState } from '../domain/contract.ts';
import { notFound } from '../domain/errors.ts';
import { parseOrgId } from '../domain/model.ts';
import { DEFAULT_PAGE, pageLimit } from '../domain/page.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Database } from '../storage/database.ts';
import { auditDrift } from './drift.ts';
import { lockForWrite } from '../storage/locks.ts';
import { enqueueJob, listJobs, queueStats, retryJob, type JobRow } from './queue.ts';

export interface PropagationEnv {
  db: Database;
  now: () => number;
  newId: () => string;
  metrics?: Metrics | undefined;
  /** Called when a job became claimable (wakes an in-process worker). */
  onEnqueued?: (() => void) | undefined;
}

const isoOrNull = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function toJob(r: JobRow): Job {
  return {
    id: r.id,
    org: r.org_id,
    scope: r.scope,
    state: r.state,
    direction: r.direction,
    priority: r.priority,
    targetRevision: r.target_revision,
    checkpoint: r.checkpoint,
    progress: { done: r.done_members, total: r.total_members },
    batches: r.batches,
    rowsAdded: r.rows_added,
    rowsRemoved: r.rows_removed,
    attempts: r.attempts,
    claims: r.claims,
    owner: r.owner,
    leaseExpiresAt: isoOrNull(r.lease_expires_at),
    runAt: new Date(r.run_at).toISOString(),
    lastError: r.last_error,
    createdAt: new Date(r.created_at).toISOString(),
    startedAt: isoOrNull(r.started_at),
    finishedAt: isoOrNull(r.finished_at),
  };
}

export function createPropagationService(env: PropagationEnv) {
  const { db, now } = env;
  return {
    async listJobs(o: { org?: string; states?: readonly JobState[]; limit?: number } = {}): Promise<Job[]> {
      return (await listJobs(db, o)).rows.map(toJob);
    },

    async listJobsPage(o: { org?: string; states?: readonly JobState[]; limit?: number; cursor?: string } = {}): Promise<{ jobs: Job[]; next: string | null }> {
      const page = await listJobs(db, { ...o, limit: pageLimit(o.limit ?? DEFAULT_PAGE) ?? DEFAULT_PAGE });
      return { jobs: page.rows.map(toJob), next: page.next };
    },

    async retryJob(id: string): Promise<Job> {
      const job = toJob(await retryJob(db, id, now()));
      env.onEnqueued?.();
      return job;
    },

    queueStats(): Promise<QueueStats> {
      return queueStats(db, now());
    },

    async auditDrift(orgIn: string, o: { repair?: boolean; limit?: number } = {}): Promise<DriftReport & { repairJob: string | null }> {
      const org = parseOrgId(orgIn);
      // Read from a snapshot, outside any write transaction: on SQLite a write transaction is the
      // process's only one, and an audit of a large organization held every other organization's
      // writes behind it (issue 10). Only a repair writes, in a short transaction of its own.
      const { r, revision } = await db.snapshot(async (tx) => {
        const cur = await tx.get<{ revision: number }>('SELECT revision FROM organizations WHERE id = $1', [org]);
        if (!cur) throw notFound('org', 'organization', org);
        return { r: await auditDrift(tx, org, o.limit ?? 100, now()), revision: Number(cur.revision) };
      });
      // Pending rows are left to their jobs: only drift is repaired.
      const repairJob =
        o.repair && r.missing + r.extra > 0
          ? await db.transaction(async (tx) => {
              // Jobs are enqueued under the write locks (a removal's "no open job" read relies on
              // it: docs/adr/0013-*, point 4); an organization job under the organization's.
              await lockForWrite(tx, org);
              return enqueueJob(tx, { org, scope: `organization:${org}`, direction: 'both', priority: 0, revision, now: now(), newId: env.newId });
            })
          : null;
      const report = { ...r, repairJob };
      env.metrics?.driftRows.set({ org, kind: 'missing' }, report.missing);
      env.metrics?.driftRows.set({ org, kind: 'extra' }, report.extra);
      if (report.repairJob) env.onEnqueued?.();
      return report;
    },
  };
}

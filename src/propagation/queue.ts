/**
 * The job queue lives in the database. Enqueueing happens inside the policy write's transaction (the
 * outbox); claiming takes one job with FOR UPDATE SKIP LOCKED on PostgreSQL so any number of workers
 * can share the queue; a lease with heartbeat keeps one owner per job, and every batch re-checks the
 * owner inside its own transaction (fencing), so a worker that lost its lease cannot commit.
 */
import { JOB_STATES, type JobState, type QueueStats } from '../domain/contract.ts';
import { LockstepError } from '../domain/errors.ts';
import type { Direction } from '../domain/model.ts';
import { sql, type Database, type Sql } from '../storage/database.ts';
import { parseScope, totalMembers } from './scope.ts';


/** The channel a commit that enqueued a job signals (PostgreSQL NOTIFY), so workers elsewhere wake. */
export const JOBS_CHANNEL = 'lockstep_jobs';

export interface JobRow {
  id: string;
  org_id: string;
  scope: string;
  state: JobState;
  direction: Direction;
  priority: number;
  target_revision: number;
  checkpoint: string | null;
  done_members: number;
  total_members: number | null;
  batches: number;
  rows_added: number;
  rows_removed: number;
  attempts: number;
  claims: number;
  owner: string | null;
  lease_expires_at: number | null;
  run_at: number;
  last_error: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

export interface EnqueueSpec {
  org: string;
  scope: string;
  direction: Direction;
  priority: number;
  revision: number;
  now: number;
  newId: () => string;
}

/**
 * Adds a job for `scope`, or coalesces into the scope's pending job: the target revision rises, the
 * priority takes the more urgent, a grant meeting a revocation becomes `both`. A job already running
 * for the scope is left alone — its finished batches predate this change — and the new pending job
 * waits for it.
 */
export async function enqueueJob(tx: Sql, s: EnqueueSpec): Promise<string> {
  const row = await tx.get<{ id: string }>(
    `INSERT INTO jobs (id, org_id, scope, state, direction, priority, target_revision, run_at, created_at)
     VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $7)
     ON CONFLICT (org_id, scope) WHERE state = 'pending' DO UPDATE SET
       target_revision = CASE WHEN excluded.target_revision > jobs.target_revision THEN excluded.target_revision ELSE jobs.target_revision END,
       priority = CASE WHEN excluded.priority < jobs.priority THEN excluded.priority ELSE jobs.priority END,
       direction = CASE WHEN jobs.direction = excluded.direction THEN jobs.direction ELSE 'both' END
     RETURNING id`,
    ['job_' + s.newId(), s.org, s.scope, s.direction, s.priority, s.revision, s.now],
  );
  return row!.id;
}

export class LeaseLost extends LockstepError {
  constructor(jobId: string) {
    super('CONFLICT', `job ${jobId} is no longer owned by this worker`, { meta: { jobId } });
  }
}

/**
 * Claims the most urgent claimable job: a pending one whose scope has no running or retrying job,
 * a running one whose lease expired (take-over), or a retrying one whose backoff elapsed.
 * Revocations (priority 0) first, then the oldest.
 */
export async function claimJob(db: Database, owner: string, now: number, leaseMs: number): Promise<JobRow | undefined> {
  return db.transaction(async (tx) => {
    const pick = await tx.get<{ id: string }>(
      `SELECT j.id FROM jobs j
        WHERE (j.state = 'pending' AND NOT EXISTS (
                 SELECT 1 FROM jobs r WHERE r.org_id = j.org_id AND r.scope = j.scope AND r.state IN ('running', 'retrying')))
           OR (j.state = 'running' AND j.lease_expires_at < $1)
           OR (j.state = 'retrying' AND j.run_at <= $1)
        ORDER BY j.priority, j.created_at, j.id
        LIMIT 1${tx.skipLocked}`,
      [now],
    );
    if (!pick) return undefined;
    const job = await tx.get<JobRow>(
      `UPDATE jobs SET state = 'running', owner = $2, lease_expires_at = $3, claims = claims + 1,
              started_at = COALESCE(started_at, $4)
        WHERE id = $1 RETURNING *`,
      [pick.id, owner, now + leaseMs, now],
    );
    if (job && job.total_members === null) {
      // A scope that does not parse is claimed all the same: its first batch fails, and the job
      // retries and parks like any other failing job instead of blocking the queue's head.
      const scope = (() => {
        try {
          return parseScope(job.scope);
        } catch {
          return undefined;
        }
      })();
      if (scope) {
        const n = await tx.get<{ n: number }>(totalMembers(scope, job.org_id));
        await tx.run('UPDATE jobs SET total_members = $2 WHERE id = $1', [job.id, Number(n?.n ?? 0)]);
        job.total_members = Number(n?.n ?? 0);
      }
    }
    return job ? normalize(job) : undefined;
  });
}

/**
 * Claims up to `limit` more pending single-subject jobs of `org` (each scope with nothing running):
 * membership changes arrive as many small jobs, and running them together costs one commit.
 */
export async function claimSubjectJobs(db: Database, org: string, owner: string, now: number, leaseMs: number, limit: number): Promise<JobRow[]> {
  if (limit <= 0) return [];
  return db.transaction(async (tx) => {
    const ids = (
      await tx.all<{ id: string }>(
        `SELECT j.id FROM jobs j
          WHERE j.org_id = $1 AND j.state = 'pending' AND j.scope LIKE 'subject:%'
            AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.org_id = j.org_id AND r.scope = j.scope AND r.state IN ('running', 'retrying'))
          ORDER BY j.priority, j.created_at, j.id
          LIMIT $2${tx.skipLocked}`,
        [org, limit],
      )
    ).map((r) => r.id);
    if (ids.length === 0) return [];
    const rows = await tx.all<JobRow>(
      sql`UPDATE jobs SET state = 'running', owner = ${owner}, lease_expires_at = ${now + leaseMs}, claims = claims + 1,
              started_at = COALESCE(started_at, ${now}), total_members = 1
        WHERE id IN (${sql.join(ids)}) RETURNING *`,
    );
    return rows.map(normalize);
  });
}

/** Extends the lease if this worker still owns the job; false means it was taken over. */
export async function heartbeat(db: Database, jobId: string, owner: string, now: number, leaseMs: number): Promise<boolean> {
  const n = await db.run(`UPDATE jobs SET lease_expires_at = $3 WHERE id = $1 AND owner = $2 AND state = 'running'`, [jobId, owner, now + leaseMs]);
  return n === 1;
}

export interface RetryPolicy {
  maxAttempts: number;
  baseMs: number;
  maxMs: number;
}
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 8, baseMs: 100, maxMs: 30_000 };

/** Exponential backoff with full jitter, capped. */
export const backoffMs = (attempt: number, p: RetryPolicy, rand = Math.random) => Math.round(rand() * Math.min(p.maxMs, p.baseMs * 2 ** attempt));

/**
 * Records a failed batch: the job waits out a backoff in `retrying` (and resumes at its checkpoint),
 * or after `maxAttempts` is parked as `failed` with its last error. Returns the new state.
 */
export async function failJob(db: Database, jobId: string, owner: string, error: string, now: number, p: RetryPolicy): Promise<JobState | null> {
  return db.transaction(async (tx) => {
    const job = await tx.get<{ attempts: number; owner: string | null; state: JobState }>(`SELECT attempts, owner, state FROM jobs WHERE id = $1${tx.forUpdate}`, [jobId]);
    if (!job || job.owner !== owner || job.state !== 'running') return null;
    const attempts = Number(job.attempts) + 1;
    const state: JobState = attempts >= p.maxAttempts ? 'failed' : 'retrying';
    await tx.run(
      `UPDATE jobs SET state = $2, attempts = $3, owner = NULL, lease_expires_at = NULL, run_at = $4, last_error = $5,
              finished_at = CASE WHEN $2 = 'failed' THEN $6 ELSE finished_at END
        WHERE id = $1`,
      [jobId, state, attempts, now + backoffMs(attempts, p), error.slice(0, 2000), now],
    );
    return state;
  });
}

/**
 * Hands an unfinished job back without counting an attempt (a worker stopping gracefully): it is
 * claimable at once and resumes at its checkpoint, instead of waiting for the lease to lapse.
 */
export async function releaseJob(db: Database, jobId: string, owner: string, now: number): Promise<boolean> {
  const n = await db.run(
    `UPDATE jobs SET state = 'retrying', owner = NULL, lease_expires_at = NULL, run_at = $3 WHERE id = $1 AND owner = $2 AND state = 'running'`,
    [jobId, owner, now],
  );
  return n === 1;
}

/** Puts a failed job back in the queue (`lockstep jobs retry ID`); it resumes at its checkpoint. */
export async function retryJob(db: Database, jobId: string, now: number): Promise<JobRow> {
  const row = await db.get<JobRow>(
    `UPDATE jobs SET state = 'retrying', attempts = 0, run_at = $2, finished_at = NULL WHERE id = $1 AND state = 'failed' RETURNING *`,
    [jobId, now],
  );
  if (!row) {
    const exists = await db.get<{ state: string }>('SELECT state FROM jobs WHERE id = $1', [jobId]);
    if (!exists) throw new LockstepError('NOT_FOUND', `job '${jobId}' does not exist`, { field: 'id' });
    throw new LockstepError('CONFLICT', `job '${jobId}' is ${exists.state}; only failed jobs can be retried`, { field: 'id' });
  }
  return normalize(row);
}

/**
 * Deletes done jobs (and their batch logs) finished before `before`, at most `limit` per call.
 * Receipts keep naming the job and its scope; only its state and progress are forgotten.
 */
export async function pruneDoneJobs(db: Database, before: number, limit = 1000): Promise<number> {
  return db.transaction(async (tx) => {
    const ids = (await tx.all<{ id: string }>(`SELECT id FROM jobs WHERE state = 'done' AND finished_at < $1 ORDER BY finished_at LIMIT $2`, [before, limit])).map(
      (r) => r.id,
    );
    if (ids.length === 0) return 0;
    await tx.run(sql`DELETE FROM job_batches WHERE job_id IN (${sql.join(ids)})`);
    return tx.run(sql`DELETE FROM jobs WHERE id IN (${sql.join(ids)})`);
  });
}

export async function listJobs(db: Sql, opts: { org?: string; states?: readonly JobState[]; limit?: number } = {}): Promise<JobRow[]> {
  const states = opts.states ?? JOB_STATES;
  const org = opts.org ? sql`org_id = ${opts.org} AND ` : sql``;
  const rows = await db.all<JobRow>(
    sql`SELECT * FROM jobs WHERE ${org}state IN (${sql.join(states)})
      ORDER BY CASE state WHEN 'running' THEN 0 WHEN 'retrying' THEN 1 WHEN 'pending' THEN 2 WHEN 'failed' THEN 3 ELSE 4 END,
               priority, created_at DESC, id
      LIMIT ${opts.limit ?? 100}`,
  );
  return rows.map(normalize);
}

export async function queueStats(db: Sql, now: number): Promise<QueueStats> {
  const rows = await db.all<{ state: JobState; n: number; oldest: number | null }>(
    `SELECT state, COUNT(*) AS n, MIN(created_at) AS oldest FROM jobs GROUP BY state`,
  );
  const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
  let oldest = Infinity;
  for (const r of rows) {
    counts[r.state] = Number(r.n);
    if (r.state !== 'done' && r.state !== 'failed' && r.oldest !== null) oldest = Math.min(oldest, Number(r.oldest));
  }
  return { counts, oldestAgeMs: oldest === Infinity ? 0 : Math.max(0, now - oldest) };
}

const NUMERIC = ['priority', 'target_revision', 'done_members', 'total_members', 'batches', 'rows_added', 'rows_removed', 'attempts', 'claims', 'lease_expires_at', 'run_at', 'created_at', 'started_at', 'finished_at'] as const;
function normalize(r: JobRow): JobRow {
  const out = { ...r } as Record<string, unknown>;
  for (const k of NUMERIC) if (out[k] !== null && out[k] !== undefined) out[k] = Number(out[k]);
  return out as unknown as JobRow;
}

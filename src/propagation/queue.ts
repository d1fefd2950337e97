/**
 * The job queue lives in the database. Enqueueing happens inside the policy write's transaction (the
 * outbox); claiming takes one job with FOR UPDATE SKIP LOCKED on PostgreSQL so any number of workers
 * can share the queue; a lease with heartbeat keeps one owner per job, and every batch re-checks the
 * owner inside its own transaction (fencing), so a worker that lost its lease cannot commit.
 */
import { JOB_STATES, type JobState, type QueueStats } from '../domain/contract.ts';
import { LockstepError } from '../domain/errors.ts';
import type { Direction } from '../domain/model.ts';
import { sql, type Database, type Sql, type SqlFragment } from '../storage/database.ts';
import { keyAfter } from '../storage/keyset.ts';
import { decodeCursor, pageOf } from '../domain/page.ts';
import { parseScope, totalMembers } from './scope.ts';


/** The channel a commit that enqueued a job signals (PostgreSQL NOTIFY), so workers elsewhere wake. */
export const JOBS_CHANNEL = 'lockstep_jobs';

/**
 * 1 if organization `org` has an open job (pending, running, retrying or failed), else NULL — as a
 * scalar subquery. On the expression `org_id || ''`, which only the partial index jobs_open holds
 * (migrations/024_open_jobs_probe.sql): the planner cannot take another index of `jobs` for it,
 * whatever its statistics say (docs/adr/0027-open-jobs-probe.md).
 */
export const openJobProbe = (org: string): SqlFragment => sql`(SELECT 1 FROM jobs WHERE (org_id || '') = ${org} AND state <> 'done' LIMIT 1)`;

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
  /** The enqueuing write's span, as a W3C traceparent (tracing on; the first write of a coalesced job). */
  trace_parent?: string | null;
}

export interface EnqueueSpec {
  org: string;
  scope: string;
  direction: Direction;
  priority: number;
  /** The change's revision (a fragment: taken in the same statement, src/policy/write.ts). */
  revision: number | SqlFragment;
  now: number;
  newId: () => string;
  /** The write's span (tracing on): the job's batches become its children. */
  traceParent?: string | undefined;
}

/**
 * Adds a job for `scope`, or coalesces into the scope's pending job: the target revision rises, the
 * priority takes the more urgent, a grant meeting a revocation becomes `both`. A job already running
 * for the scope is left alone — its finished batches predate this change — and the new pending job
 * waits for it.
 */
export async function enqueueJob(tx: Sql, s: EnqueueSpec): Promise<string> {
  const row = await tx.get<{ id: string }>(enqueueStatement(s));
  return row!.id;
}

/** The statement `enqueueJob` runs, returning the job's `id` (for a caller that embeds it in a data-modifying CTE). */
export function enqueueStatement(s: EnqueueSpec): SqlFragment {
  return sql`INSERT INTO jobs (id, org_id, scope, state, direction, priority, target_revision, run_at, created_at, trace_parent)
     VALUES (${sql.join(['job_' + s.newId(), s.org, s.scope])}, 'pending', ${sql.join([s.direction, s.priority, s.revision, s.now, s.now, s.traceParent ?? null])})
     ON CONFLICT (org_id, scope) WHERE state = 'pending' DO UPDATE SET
       trace_parent = COALESCE(jobs.trace_parent, excluded.trace_parent),
       target_revision = CASE WHEN excluded.target_revision > jobs.target_revision THEN excluded.target_revision ELSE jobs.target_revision END,
       priority = CASE WHEN excluded.priority < jobs.priority THEN excluded.priority ELSE jobs.priority END,
       direction = CASE WHEN jobs.direction = excluded.direction THEN jobs.direction ELSE 'both' END
     RETURNING id`;
}

export class LeaseLost extends LockstepError {
  constructor(jobId: string) {
    super('CONFLICT', `job ${jobId} is no longer owned by this worker`, { meta: { jobId } });
  }
}

/**
 * The job transitions, one function each — claim, checkpoint, finish, fail, release — written for N
 * jobs and used with N = 1 as well (a single job's batch is the same statement shape as 64
 * single-subject jobs run together). Each takes the transaction it runs in, or opens its own.
 */

/** Which jobs a claim may take. */
export type ClaimFilter =
  /** The most urgent claimable jobs anywhere: pending ones whose scope has nothing running, running ones
   * whose lease expired (take-over), retrying ones whose backoff elapsed. */
  | { kind: 'any' }
  /** More pending single-subject jobs of one organization, to run together in one transaction. */
  | { kind: 'subjects'; org: string };

/**
 * Claims up to `limit` jobs (SKIP LOCKED on PostgreSQL: concurrent claimers take different jobs),
 * revocations (priority 0) first, then the oldest, and returns them in that order. A job's total is
 * counted on its first claim.
 */
export async function claimJobs(db: Database, filter: ClaimFilter, owner: string, now: number, leaseMs: number, limit: number): Promise<JobRow[]> {
  if (limit <= 0) return [];
  if (!Number.isSafeInteger(limit)) throw new Error(`claim limit must be an integer, got ${limit}`);
  // The limit as a literal: SQLite plans `LIMIT ?` several times slower on the queue's OR of states
  // (measured in the bench's worker job figure). A handful of values (1, the group size) are used.
  const top = sql.raw(String(limit));
  return db.transaction(async (tx) => {
    const idle = sql`NOT EXISTS (SELECT 1 FROM jobs r WHERE r.org_id = j.org_id AND r.scope = j.scope AND r.state IN ('running', 'retrying'))`;
    // One organization: its busy scopes read once (PostgreSQL hashes the list), not once per pending
    // job — as a correlated NOT EXISTS the planner, on statistics from a small queue, scanned every
    // open job of the organization for each pending one, and a backlog of 1,500 took seconds to
    // claim from (test/propagation/claim-backlog.test.ts). A scope is never NULL: NOT IN is NOT EXISTS.
    const idleIn = (org: string) => sql`j.scope NOT IN (SELECT r.scope FROM jobs r WHERE r.org_id = ${org} AND r.state IN ('running', 'retrying'))`;
    const claimable =
      filter.kind === 'any'
        ? sql`(j.state = 'pending' AND ${idle}) OR (j.state = 'running' AND j.lease_expires_at < ${now}) OR (j.state = 'retrying' AND j.run_at <= ${now})`
        : sql`j.org_id = ${filter.org} AND j.state = 'pending' AND j.scope LIKE 'subject:%' AND ${idleIn(filter.org)}`;
    const ids = (
      await tx.all<{ id: string }>(sql`SELECT j.id FROM jobs j WHERE ${claimable} ORDER BY j.priority, j.created_at, j.id LIMIT ${top}${sql.raw(tx.skipLocked)}`)
    ).map((r) => r.id);
    if (ids.length === 0) return [];
    const rows = await tx.all<JobRow>(
      sql`UPDATE jobs SET state = 'running', owner = ${owner}, lease_expires_at = ${now + leaseMs}, claims = claims + 1,
              started_at = COALESCE(started_at, ${now}),
              total_members = COALESCE(total_members, CASE WHEN scope LIKE 'subject:%' THEN 1 END)
        WHERE id IN (${sql.join(ids)}) RETURNING *`,
    );
    for (const job of rows) {
      if (job.total_members !== null) continue;
      // A scope that does not parse is claimed all the same: its first batch fails, and the job
      // retries and parks like any other failing job instead of blocking the queue's head.
      const scope = tryParseScope(job.scope);
      if (!scope) continue;
      const n = Number((await tx.get<{ n: number }>(totalMembers(scope, job.org_id)))?.n ?? 0);
      await tx.run('UPDATE jobs SET total_members = $2 WHERE id = $1', [job.id, n]);
      job.total_members = n;
    }
    const order = new Map(ids.map((id, i) => [id, i]));
    return rows.map(normalize).sort((x, y) => order.get(x.id)! - order.get(y.id)!);
  });
}

function tryParseScope(key: string) {
  try {
    return parseScope(key);
  } catch {
    return undefined;
  }
}

/**
 * The jobs of `ids` this worker still owns and that are still running, locked (FOR UPDATE) for the
 * rest of `tx`: the fence every batch passes before it writes.
 */
export async function fenceJobs(tx: Sql, ids: readonly string[], owner: string): Promise<Map<string, JobRow>> {
  const rows = await tx.all<JobRow>(sql`SELECT * FROM jobs WHERE id IN (${sql.join(ids)}) AND owner = ${owner} AND state = 'running'${sql.raw(tx.forUpdate)}`);
  return new Map(rows.map((r) => [r.id, normalize(r)]));
}

/**
 * `fenceJobs` for jobs of one organization, also reading whether it records delivery events (in the
 * same statement: one round trip fewer for the batch). Read under the batch's write locks, so it
 * holds to commit: streams start under the organization's lock, exclusive.
 */
export async function fenceJobsOf(tx: Sql, org: string, ids: readonly string[], owner: string): Promise<{ owned: Map<string, JobRow>; recording: boolean | undefined }> {
  const rows = await tx.all<JobRow & { recording: number | null }>(
    sql`SELECT j.*, (SELECT 1 FROM event_streams s WHERE s.org_id = ${org} LIMIT 1) AS recording
          FROM jobs j WHERE j.id IN (${sql.join(ids)}) AND j.owner = ${owner} AND j.state = 'running'${sql.raw(tx.forUpdate)}`,
  );
  // No row, no answer: the batch records nothing then anyway.
  const recording = rows.length === 0 ? undefined : rows[0]!.recording !== null;
  return { owned: new Map(rows.map(({ recording: _r, ...r }) => [r.id, normalize(r as JobRow)])), recording };
}

/** One committed batch of a job: the subjects it covered and the rows it changed. */
export interface BatchEntry {
  job: JobRow;
  first: string;
  last: string;
  members: number;
  added: number;
  removed: number;
  startedAt: number;
}

/**
 * Checkpoints batches inside their transaction: a batch-log row each (seq after whatever an earlier
 * owner committed), and each job's checkpoint, progress and row counts advanced, its lease renewed.
 * Returns the jobs as they now stand.
 */
export async function checkpointJobs(tx: Sql, entries: readonly BatchEntry[], owner: string, now: number, leaseMs: number): Promise<JobRow[]> {
  if (entries.length === 0) return [];
  await tx.run(batchLog(entries, owner, now));
  await tx.run(sql`UPDATE jobs SET ${advanced(entries)}, lease_expires_at = ${now + leaseMs} WHERE id IN (${sql.join(entries.map((e) => e.job.id))})`);
  return entries.map((e) => ({
    ...e.job,
    checkpoint: e.last,
    done_members: e.job.done_members + e.members,
    batches: e.job.batches + 1,
    rows_added: e.job.rows_added + e.added,
    rows_removed: e.job.rows_removed + e.removed,
    lease_expires_at: now + leaseMs,
  }));
}

/** The batch-log rows of `entries` (seq after whatever an earlier owner committed). */
function batchLog(entries: readonly BatchEntry[], owner: string, now: number): SqlFragment {
  const tuples = entries.map(
    (e) => sql`(${sql.join([e.job.id, Number(e.job.batches) + 1, owner, e.first, e.last, e.members, e.added, e.removed, e.startedAt, now])})`,
  );
  return sql`INSERT INTO job_batches (job_id, seq, owner, first_subject, last_subject, members, rows_added, rows_removed, started_at, committed_at)
       VALUES ${sql.join(tuples)}`;
}

/** The assignments that advance each job of `entries` by its batch: checkpoint, progress, batch count, row counts. */
function advanced(entries: readonly BatchEntry[]): SqlFragment {
  const byId = (value: (e: BatchEntry) => unknown, type: string) =>
    sql`CASE id ${sql.join(entries.map((e) => sql`WHEN ${e.job.id} THEN CAST(${value(e)} AS ${sql.raw(type)})`), sql` `)} END`;
  return sql`checkpoint = ${byId((e) => e.last, 'TEXT')}, done_members = done_members + ${byId((e) => e.members, 'BIGINT')},
            batches = batches + 1, rows_added = rows_added + ${byId((e) => e.added, 'BIGINT')},
            rows_removed = rows_removed + ${byId((e) => e.removed, 'BIGINT')}`;
}

/** A change a finished job carried, as the propagation metrics need it. */
export interface CarriedChange {
  revision: number;
  direction: Direction;
  tier: number | null;
  decided_at: number;
  slo_ms: number | null;
}

/**
 * Marks jobs of one organization done and every change they carried (each job's scope, up to its
 * target revision) effective; the change that created a job gets the job's row counts. Returns the
 * changes that became effective.
 */
export async function finishJobs(tx: Sql, jobs: readonly JobRow[], now: number): Promise<CarriedChange[]> {
  if (jobs.length === 0) return [];
  await tx.run(sql`UPDATE jobs SET ${finished(now)} WHERE id IN (${sql.join(jobs.map((j) => j.id))})`);
  return tx.all<CarriedChange>(carriedEffective(jobs, now));
}

/** The assignments that mark a job done. */
const finished = (now: number) => sql`state = 'done', owner = NULL, lease_expires_at = NULL, finished_at = ${now}`;

/**
 * Marks effective every change `jobs` (of one organization) carried — each job's scope, up to its
 * target revision — the change that created a job getting the job's row counts; returns them.
 */
function carriedEffective(jobs: readonly JobRow[], now: number): SqlFragment {
  const org = jobs[0]!.org_id;
  const target = sql`CASE job_scope ${sql.join(jobs.map((j) => sql`WHEN ${j.scope} THEN CAST(${Number(j.target_revision)} AS BIGINT)`), sql` `)} END`;
  const rowsOf = (column: 'rows_added' | 'rows_removed') =>
    sql`CASE job_id ${sql.join(jobs.map((j) => sql`WHEN ${j.id} THEN CAST(${Number(j[column])} AS BIGINT)`), sql` `)} ELSE ${sql.raw(column)} END`;
  return sql`UPDATE changes SET effective_at = ${now}, rows_added = ${rowsOf('rows_added')}, rows_removed = ${rowsOf('rows_removed')}
      WHERE org_id = ${org} AND effective_at IS NULL AND job_scope IN (${sql.join(jobs.map((j) => j.scope))}) AND revision <= ${target}
      RETURNING revision, direction, tier, decided_at, slo_ms`;
}

/**
 * Checkpoints and finishes jobs whose whole work was one batch (single-subject jobs run together):
 * `checkpointJobs` then `finishJobs`, the same rows. On PostgreSQL one statement (data-modifying
 * CTEs: the batch logs, the jobs advanced and done, the carried changes effective — none reads what
 * another writes; the row counts come from `entries`); on SQLite, whose statements cost no round
 * trip, the two in turn. Returns the changes that became effective.
 */
export async function completeJobs(tx: Sql, entries: readonly BatchEntry[], owner: string, now: number, leaseMs: number): Promise<CarriedChange[]> {
  if (entries.length === 0) return [];
  if (tx.dialect !== 'postgres') return finishJobs(tx, await checkpointJobs(tx, entries, owner, now, leaseMs), now);
  const totals = entries.map((e) => ({ ...e.job, rows_added: e.job.rows_added + e.added, rows_removed: e.job.rows_removed + e.removed }));
  return tx.all<CarriedChange>(
    sql`WITH logged AS (${batchLog(entries, owner, now)}),
             done AS (UPDATE jobs SET ${advanced(entries)}, ${finished(now)} WHERE id IN (${sql.join(entries.map((e) => e.job.id))}))
        ${carriedEffective(totals, now)}`,
  );
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
 * Records failed batches: each job this worker still owns waits out a backoff in `retrying` (and
 * resumes at its checkpoint), or after `maxAttempts` is parked as `failed` with its last error.
 * Returns each job's new state (null: no longer this worker's, nothing recorded).
 */
export async function failJobs(
  db: Database,
  failures: readonly { id: string; error: string }[],
  owner: string,
  now: number,
  p: RetryPolicy,
): Promise<Map<string, JobState | null>> {
  const states = new Map<string, JobState | null>(failures.map((f) => [f.id, null]));
  if (failures.length === 0) return states;
  await db.transaction(async (tx) => {
    const owned = await fenceJobs(tx, failures.map((f) => f.id), owner);
    const rows = failures
      .filter((f) => owned.has(f.id))
      .map((f) => {
        const attempts = Number(owned.get(f.id)!.attempts) + 1;
        const state: JobState = attempts >= p.maxAttempts ? 'failed' : 'retrying';
        states.set(f.id, state);
        return { ...f, attempts, state, runAt: now + backoffMs(attempts, p) };
      });
    if (rows.length === 0) return;
    const byId = (value: (r: (typeof rows)[number]) => unknown, type: string) =>
      sql`CASE id ${sql.join(rows.map((r) => sql`WHEN ${r.id} THEN CAST(${value(r)} AS ${sql.raw(type)})`), sql` `)} END`;
    await tx.run(
      sql`UPDATE jobs SET state = ${byId((r) => r.state, 'TEXT')}, attempts = ${byId((r) => r.attempts, 'BIGINT')}, owner = NULL,
              lease_expires_at = NULL, run_at = ${byId((r) => r.runAt, 'BIGINT')}, last_error = ${byId((r) => r.error.slice(0, 2000), 'TEXT')},
              finished_at = CASE WHEN ${byId((r) => r.state, 'TEXT')} = 'failed' THEN CAST(${now} AS BIGINT) ELSE finished_at END
        WHERE id IN (${sql.join(rows.map((r) => r.id))})`,
    );
  });
  return states;
}

/**
 * Hands unfinished jobs back without counting an attempt (a worker stopping gracefully): claimable
 * at once, resuming at their checkpoints, instead of waiting for the lease to lapse. Returns the ids
 * released (those this worker still owned).
 */
export async function releaseJobs(db: Database, ids: readonly string[], owner: string, now: number): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.all<{ id: string }>(
    sql`UPDATE jobs SET state = 'retrying', owner = NULL, lease_expires_at = NULL, run_at = ${now}
      WHERE id IN (${sql.join(ids)}) AND owner = ${owner} AND state = 'running' RETURNING id`,
  );
  return new Set(rows.map((r) => r.id));
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

const STATE_RANK: Record<string, number> = { running: 0, retrying: 1, pending: 2, failed: 3, done: 4 };
const stateRank = sql`CASE state WHEN 'running' THEN 0 WHEN 'retrying' THEN 1 WHEN 'pending' THEN 2 WHEN 'failed' THEN 3 ELSE 4 END`;

/** A page of jobs in listing order (state rank, priority, newest first, id) after `cursor`. */
export async function listJobs(
  db: Sql,
  opts: { org?: string; states?: readonly JobState[]; limit?: number; cursor?: string } = {},
): Promise<{ rows: JobRow[]; next: string | null }> {
  const states = opts.states ?? JOB_STATES;
  const limit = opts.limit ?? 100;
  const after = opts.cursor === undefined ? undefined : decodeCursor(opts.cursor, ['n', 'n', 'n', 's']);
  const org = opts.org ? sql`org_id = ${opts.org} AND ` : sql``;
  const rows = await db.all<JobRow>(
    sql`SELECT * FROM jobs WHERE ${org}state IN (${sql.join(states)})
      ${after === undefined ? sql.empty : sql`AND ${keyAfter([stateRank, sql`priority`, { expr: sql`created_at`, desc: true }, sql`id`], after)}`}
      ORDER BY ${stateRank}, priority, created_at DESC, id
      LIMIT ${limit + 1}`,
  );
  const page = pageOf(rows.map(normalize), limit, (j) => [STATE_RANK[j.state] ?? 4, Number(j.priority), Number(j.created_at), j.id]);
  return { rows: page.items, next: page.next };
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

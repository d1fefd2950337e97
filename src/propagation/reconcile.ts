/**
 * One reconciliation batch: under its write locks (the organization's, or a subject job's subject's
 * with the organization's shared: src/storage/locks.ts), and only while this worker still
 * owns the job, take the next `batchSize` subjects of the job's scope after its checkpoint, make
 * their read-model rows in the scope equal to what the policy derives (delete what is not derived,
 * insert what is missing — two set-based statements), and advance the checkpoint, all in one
 * transaction. Re-running a batch changes nothing; a crash resumes at the last committed checkpoint.
 * The last batch also marks the changes the job carried as effective.
 */
import { tierOfRank, verifies, type VerifyMode } from '../domain/model.ts';
import { sql, type Database, type Sql } from '../storage/database.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Tracing } from '../observability/tracing.ts';
import { deleteEffective, deleteEffectiveBySubject, insertDesired, insertDesiredBySubject } from '../derivation/read-model.ts';
import { notDerived } from '../derivation/rule.ts';
import { checkpointJobs, completeJobs, fenceJobs, fenceJobsOf, finishJobs, LeaseLost, type CarriedChange, type JobRow } from './queue.ts';
import { recordEvents } from '../delivery/record-events.ts';
import { parseScope, scopeFilter, subjectStreams, type Scope } from './scope.ts';
import { lockForWrite } from '../storage/locks.ts';

/** The scope of a job, or undefined when it does not parse (its batch fails after the organization's lock). */
function tryScope(key: string): Scope | undefined {
  try {
    return parseScope(key);
  } catch {
    return undefined;
  }
}

/**
 * The next subjects of the scope after `after`, ascending: the smallest `n` of the streams' union.
 * The union and its order are computed by the database, in the same collation as the range
 * predicates of the batch (PostgreSQL's collation need not agree with JavaScript's sort).
 */
export async function nextSubjects(tx: Sql, org: string, scope: Scope, after: string, n: number): Promise<string[]> {
  const union = sql.join(
    subjectStreams(scope, org, after, n).map((q, i) => sql`SELECT subject_id FROM (${q}) ${sql.raw(`s${i}`)}`),
    sql` UNION `,
  );
  const rows = await tx.all<{ subject_id: string }>(sql`SELECT subject_id FROM (${union}) u ORDER BY subject_id LIMIT ${n}`);
  return rows.map((r) => r.subject_id);
}

/** Reconciles subjects [first, last] of the scope; returns rows removed and added. */
export async function reconcileRange(tx: Sql, org: string, scope: Scope, first: string, last: string) {
  const removed = await deleteEffective(
    tx,
    sql`org_id = ${org} AND subject_id >= ${first} AND subject_id <= ${last} AND ${scopeFilter(scope, 'effective_assignments')}
        AND ${notDerived('effective_assignments')}`,
  );
  const added = await insertDesired(tx, sql`d.org_id = ${org} AND d.subject_id >= ${first} AND d.subject_id <= ${last} AND ${scopeFilter(scope, 'd')}`, scope.kind === 'subject' ? 'subjects' : 'other');
  return { removed, added };
}

/** Reconciles every row of the given subjects; returns the rows removed and added per subject. */
export async function reconcileSubjects(tx: Sql, org: string, subjects: readonly string[]) {
  const these = sql.join(subjects);
  const removed = await deleteEffectiveBySubject(tx, sql`org_id = ${org} AND subject_id IN (${these}) AND ${notDerived('effective_assignments')}`);
  const added = await insertDesiredBySubject(tx, sql`d.org_id = ${org} AND d.subject_id IN (${these})`, 'subjects');
  return { removed, added };
}

export interface BatchEnv {
  db: Database;
  now: () => number;
  metrics?: Metrics | undefined;
  verify: VerifyMode;
  /** A span per batch transaction, a child of the enqueuing write's (tracing on). */
  tracing?: Tracing | undefined;
}

export interface BatchResult {
  finished: boolean;
  members: number;
  added: number;
  removed: number;
}

/**
 * Subjects in the next batch: at most `batchSize`, and few enough that the batch writes about
 * `maxRows` rows — a batch holds its organization's write lock, so a group with thousands of
 * assignments moves a few members at a time instead of stalling writes behind a huge batch.
 */
async function batchMembers(tx: Sql, org: string, scope: Scope, batchSize: number, maxRows: number): Promise<number> {
  if (scope.kind !== 'group') return batchSize; // one row per member (assignment), or one subject, or unknown (organization)
  const row = await tx.get<{ n: number }>(
    "SELECT COUNT(*) AS n FROM assignments WHERE org_id = $1 AND principal_type = 'group' AND principal_id = $2",
    [org, scope.id],
  );
  return Math.max(1, Math.min(batchSize, Math.floor(maxRows / Math.max(1, Number(row?.n ?? 0)))));
}

/** One batch of one job inside `tx` (which holds the batch's locks), fenced by ownership. */
async function applyBatch(env: BatchEnv, tx: Sql, jobId: string, owner: string, batchSize: number, leaseMs: number, maxRows: number, traceParent: string | undefined): Promise<BatchResult> {
  const started = env.now();
  const cur = (await fenceJobs(tx, [jobId], owner)).get(jobId);
  if (!cur) throw new LeaseLost(jobId);

  const scope = parseScope(cur.scope);
  const size = maxRows === Infinity ? batchSize : await batchMembers(tx, cur.org_id, scope, batchSize, maxRows);
  const subjects = await nextSubjects(tx, cur.org_id, scope, cur.checkpoint ?? '', size);
  let job = cur;
  let added = 0;
  let removed = 0;
  if (subjects.length > 0) {
    const first = subjects[0]!;
    const last = subjects[subjects.length - 1]!;
    ({ added, removed } = await reconcileRange(tx, cur.org_id, scope, first, last));
    await recordBatchEvents(env, tx, cur, undefined, traceParent);
    job = (await checkpointJobs(tx, [{ job: cur, first, last, members: subjects.length, added, removed, startedAt: started }], owner, env.now(), leaseMs))[0]!;
  }
  const finished = subjects.length < size;
  if (finished) recordLags(env, await finishJobs(tx, [job], env.now()), env.now());
  return { finished, members: subjects.length, added, removed };
}

/**
 * The batch's read-model diff becomes delivery events in the batch's transaction. Decided at the
 * job's creation (its first carried change); enforced then too where checks verify, which is when
 * the policy write committed.
 */
function recordBatchEvents(env: BatchEnv, tx: Sql, job: JobRow, jobOf: ReadonlyMap<string, string> | undefined, traceParent: string | undefined, recording?: boolean) {
  return recordEvents(tx, {
    ...(recording === undefined ? {} : { recording }),
    org: job.org_id,
    decidedAt: Number(job.created_at),
    enforcedAt: Number(job.created_at),
    now: env.now(),
    jobId: job.id,
    ...(jobOf ? { jobOf } : {}),
    traceParent,
  });
}

/**
 * `run` inside a batch span (tracing on): a child of the first job's enqueuing write, since a batch
 * of subject jobs may carry several writes' jobs (each job id is an attribute).
 */
function traced<T>(env: BatchEnv, jobs: JobRow[], run: (traceParent: string | undefined) => Promise<T>): Promise<T> {
  if (!env.tracing?.enabled) return run(undefined);
  const first = jobs[0]!;
  const attrs = { 'lockstep.org': first.org_id, 'lockstep.job.id': jobs.map((j) => j.id).join(','), 'lockstep.job.scope': first.scope, 'lockstep.job.count': jobs.length };
  return env.tracing.trace('lockstep.job.batch', attrs, (span) => run(span.traceparent), first.trace_parent ?? null);
}

/**
 * The batch's write locks (src/storage/locks.ts): a subject job's (or several's) batch reconciles
 * only those subjects' rows, and locks them with the organization shared, so it runs beside writes
 * and batches of other subjects; any other scope's batch locks the organization.
 */
async function lockOrganization(env: BatchEnv, tx: Sql, org: string, subjects?: readonly string[]) {
  const lockStart = process.hrtime.bigint();
  await lockForWrite(tx, org, subjects);
  env.metrics?.lockWait.observe(Number(process.hrtime.bigint() - lockStart) / 1e9);
}

function observe(env: BatchEnv, t0: bigint, results: BatchResult[]) {
  env.metrics?.reconcileBatch.observe(Number(process.hrtime.bigint() - t0) / 1e9);
  env.metrics?.reconcileRows.inc({ op: 'insert' }, results.reduce((n, r) => n + r.added, 0));
  env.metrics?.reconcileRows.inc({ op: 'delete' }, results.reduce((n, r) => n + r.removed, 0));
}

export async function runBatch(env: BatchEnv, job: JobRow, owner: string, batchSize: number, leaseMs: number, maxRows = Infinity): Promise<BatchResult> {
  const t0 = process.hrtime.bigint();
  const result = await traced(env, [job], (traceParent) =>
    env.db.transaction(async (tx) => {
      const scope = tryScope(job.scope);
      await lockOrganization(env, tx, job.org_id, scope?.kind === 'subject' ? [scope.id] : undefined);
      return applyBatch(env, tx, job.id, owner, batchSize, leaseMs, maxRows, traceParent);
    }),
  );
  observe(env, t0, [result]);
  return result;
}

/**
 * Runs whole single-subject jobs of one organization together, set-based: one transaction, one
 * lock, and a fixed handful of statements whatever the number of jobs — the reconciliation covers
 * every subject at once (RETURNING says which rows were whose), then the same checkpoint and finish
 * transitions a single job's batch uses, for all the jobs in one statement each. Jobs this worker
 * no longer owns are left out and reported as lost.
 */
export async function runSubjectJobs(env: BatchEnv, jobs: JobRow[], owner: string, leaseMs: number): Promise<(BatchResult | 'lost')[]> {
  const t0 = process.hrtime.bigint();
  const org = jobs[0]!.org_id;
  const results = await traced(env, jobs, (traceParent) => env.db.transaction(async (tx) => {
    await lockOrganization(env, tx, org, jobs.map((j) => parseScope(j.scope).id));
    const now = env.now();
    const { owned, recording } = await fenceJobsOf(tx, org, jobs.map((j) => j.id), owner);
    const live = jobs.filter((j) => owned.has(j.id)).map((j) => ({ job: owned.get(j.id)!, subject: parseScope(j.scope).id }));
    if (live.length === 0) return jobs.map(() => 'lost' as const);

    const { added, removed } = await reconcileSubjects(tx, org, live.map((l) => l.subject));
    await recordBatchEvents(env, tx, live[0]!.job, new Map(live.map((l) => [l.subject, l.job.id])), traceParent, recording);
    const rowsOf = (subject: string) => ({ added: added.get(subject) ?? 0, removed: removed.get(subject) ?? 0 });
    const entries = live.map((l) => ({ job: l.job, first: l.subject, last: l.subject, members: 1, ...rowsOf(l.subject), startedAt: now }));
    recordLags(env, await completeJobs(tx, entries, owner, now, leaseMs), now);
    return jobs.map((j) => {
      const l = live.find((x) => x.job.id === j.id);
      return l ? { finished: true, members: 1, ...rowsOf(l.subject) } : ('lost' as const);
    });
  }));
  observe(env, t0, results.filter((r): r is BatchResult => r !== 'lost'));
  return results;
}

/** Propagation lag, revocation window and SLO breaches of changes that just became effective. */
function recordLags(env: BatchEnv, carried: CarriedChange[], now: number) {
  const m = env.metrics;
  if (!m) return;
  for (const c of carried) {
    const tier = tierOfRank(c.tier) ?? 'standard';
    const lag = (now - Number(c.decided_at)) / 1000;
    m.propagationLag.observe({ direction: c.direction, tier }, lag);
    if (c.direction === 'revoke' || c.direction === 'both') m.revocationWindow.observe({ tier }, verifies(env.verify, tier) ? 0 : lag);
    if (c.slo_ms !== null && now - Number(c.decided_at) > Number(c.slo_ms)) m.sloBreaches.inc({ direction: c.direction, tier });
  }
}

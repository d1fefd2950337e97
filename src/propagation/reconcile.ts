/**
 * One reconciliation batch: under the organization's write lock, and only while this worker still
 * owns the job, take the next `batchSize` subjects of the job's scope after its checkpoint, make
 * their read-model rows in the scope equal to what the policy derives (delete what is not derived,
 * insert what is missing — two set-based statements), and advance the checkpoint, all in one
 * transaction. Re-running a batch changes nothing; a crash resumes at the last committed checkpoint.
 * The last batch also marks the changes the job carried as effective.
 */
import { tierOfRank, verifies, type Direction, type VerifyMode } from '../domain/model.ts';
import { sql, type Database, type Sql, type SqlFragment } from '../storage/database.ts';
import type { Metrics } from '../observability/metrics.ts';
import { insertDesired } from '../derivation/read-model.ts';
import { desired, notDerived, ROW_COLUMNS } from '../derivation/rule.ts';
import { LeaseLost, type JobRow } from './queue.ts';
import { parseScope, scopeFilter, subjectStreams, type Scope } from './scope.ts';

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
  const removed = await tx.run(
    sql`DELETE FROM effective_assignments
      WHERE org_id = ${org} AND subject_id >= ${first} AND subject_id <= ${last} AND ${scopeFilter(scope, 'effective_assignments')}
        AND ${notDerived('effective_assignments')}`,
  );
  const added = await insertDesired(tx, sql`d.org_id = ${org} AND d.subject_id >= ${first} AND d.subject_id <= ${last} AND ${scopeFilter(scope, 'd')}`);
  return { removed, added };
}

export interface BatchEnv {
  db: Database;
  now: () => number;
  metrics?: Metrics | undefined;
  verify: VerifyMode;
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

/** One batch of one job inside `tx` (which holds the organization's lock), fenced by ownership. */
async function applyBatch(env: BatchEnv, tx: Sql, jobId: string, owner: string, batchSize: number, leaseMs: number, maxRows: number): Promise<BatchResult> {
  const started = env.now();
  const cur = await tx.get<JobRow>(`SELECT * FROM jobs WHERE id = $1${tx.forUpdate}`, [jobId]);
  if (!cur || cur.state !== 'running' || cur.owner !== owner) throw new LeaseLost(jobId);

  const scope = parseScope(cur.scope);
  const size = maxRows === Infinity ? batchSize : await batchMembers(tx, cur.org_id, scope, batchSize, maxRows);
  const subjects = await nextSubjects(tx, cur.org_id, scope, cur.checkpoint ?? '', size);
  let added = 0;
  let removed = 0;
  if (subjects.length > 0) {
    const first = subjects[0]!;
    const last = subjects[subjects.length - 1]!;
    ({ added, removed } = await reconcileRange(tx, cur.org_id, scope, first, last));
    const seq = Number(cur.batches) + 1;
    await tx.run(
      `INSERT INTO job_batches (job_id, seq, owner, first_subject, last_subject, members, rows_added, rows_removed, started_at, committed_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [cur.id, seq, owner, first, last, subjects.length, added, removed, started, env.now()],
    );
    await tx.run(
      `UPDATE jobs SET checkpoint = $2, done_members = done_members + $3, batches = $4, rows_added = rows_added + $5,
              rows_removed = rows_removed + $6, lease_expires_at = $7 WHERE id = $1`,
      [cur.id, last, subjects.length, seq, added, removed, env.now() + leaseMs],
    );
  }
  const finished = subjects.length < size;
  if (finished) await finishJob(env, tx, { ...cur, rows_added: Number(cur.rows_added) + added, rows_removed: Number(cur.rows_removed) + removed });
  return { finished, members: subjects.length, added, removed };
}

async function lockOrganization(env: BatchEnv, tx: Sql, org: string) {
  const lockStart = process.hrtime.bigint();
  await tx.get(`SELECT revision FROM organizations WHERE id = $1${tx.forUpdate}`, [org]);
  env.metrics?.lockWait.observe(Number(process.hrtime.bigint() - lockStart) / 1e9);
}

function observe(env: BatchEnv, t0: bigint, results: BatchResult[]) {
  env.metrics?.reconcileBatch.observe(Number(process.hrtime.bigint() - t0) / 1e9);
  env.metrics?.reconcileRows.inc({ op: 'insert' }, results.reduce((n, r) => n + r.added, 0));
  env.metrics?.reconcileRows.inc({ op: 'delete' }, results.reduce((n, r) => n + r.removed, 0));
}

export async function runBatch(env: BatchEnv, job: JobRow, owner: string, batchSize: number, leaseMs: number, maxRows = Infinity): Promise<BatchResult> {
  const t0 = process.hrtime.bigint();
  const result = await env.db.transaction(async (tx) => {
    await lockOrganization(env, tx, job.org_id);
    return applyBatch(env, tx, job.id, owner, batchSize, leaseMs, maxRows);
  });
  observe(env, t0, [result]);
  return result;
}

/**
 * Runs whole single-subject jobs of one organization together, set-based: one transaction, one
 * lock, and a fixed handful of statements whatever the number of jobs — the delete and insert cover
 * every subject at once (RETURNING says which rows were whose), then the jobs, their batch logs and
 * the changes they carried are closed in one statement each. Jobs this worker no longer owns are
 * left out and reported as lost.
 */
export async function runSubjectJobs(env: BatchEnv, jobs: JobRow[], owner: string): Promise<(BatchResult | 'lost')[]> {
  const t0 = process.hrtime.bigint();
  const org = jobs[0]!.org_id;
  const results = await env.db.transaction(async (tx) => {
    await lockOrganization(env, tx, org);
    const now = env.now();
    const ids = jobs.map((j) => j.id);
    const owned = await tx.all<JobRow>(
      sql`SELECT * FROM jobs WHERE id IN (${sql.join(ids)}) AND owner = ${owner} AND state = 'running'${sql.raw(tx.forUpdate)}`,
    );
    const mine = new Map(owned.map((j) => [j.id, j]));
    const live = jobs.filter((j) => mine.has(j.id)).map((j) => ({ job: mine.get(j.id)!, subject: parseScope(j.scope).id }));
    if (live.length === 0) return jobs.map(() => 'lost' as const);
    const inSubjects = sql.join(live.map((l) => l.subject));

    const removedRows = await tx.all<{ subject_id: string }>(
      sql`DELETE FROM effective_assignments WHERE org_id = ${org} AND subject_id IN (${inSubjects}) AND ${notDerived('effective_assignments')}
       RETURNING subject_id`,
    );
    const addedRows = await tx.all<{ subject_id: string }>(
      sql`INSERT INTO effective_assignments (${ROW_COLUMNS}) ${desired(sql`d.org_id = ${org} AND d.subject_id IN (${inSubjects})`)}
       ON CONFLICT DO NOTHING RETURNING subject_id`,
    );
    const count = (rows: { subject_id: string }[]) => rows.reduce((m, r) => m.set(r.subject_id, (m.get(r.subject_id) ?? 0) + 1), new Map<string, number>());
    const added = count(addedRows);
    const removed = count(removedRows);

    // Close the jobs: one batch each (seq after whatever a crashed owner committed), done.
    const rowsOf = (l: (typeof live)[number]) => ({ a: added.get(l.subject) ?? 0, r: removed.get(l.subject) ?? 0 });
    const tuples = live.map((l) => {
      const { a: ad, r: rm } = rowsOf(l);
      return sql`(${sql.join([l.job.id, Number(l.job.batches) + 1, owner, l.subject, l.subject, 1, ad, rm, now, now])})`;
    });
    await tx.run(
      sql`INSERT INTO job_batches (job_id, seq, owner, first_subject, last_subject, members, rows_added, rows_removed, started_at, committed_at)
       VALUES ${sql.join(tuples)}`,
    );
    const rowsAdded = caseOf(sql`id`, live.map((l) => [l.job.id, rowsOf(l).a]));
    const rowsRemoved = caseOf(sql`id`, live.map((l) => [l.job.id, rowsOf(l).r]));
    await tx.run(
      sql`UPDATE jobs SET state = 'done', owner = NULL, lease_expires_at = NULL, finished_at = ${now}, checkpoint = SUBSTR(scope, 9),
              done_members = 1, batches = batches + 1,
              rows_added = rows_added + ${rowsAdded}, rows_removed = rows_removed + ${rowsRemoved}
        WHERE id IN (${sql.join(live.map((l) => l.job.id))})`,
    );

    // The changes each job carried: its scope, up to its target revision.
    const target = new Map(live.map((l) => [l.job.scope, Number(l.job.target_revision)]));
    const pending = await tx.all<{ revision: number; direction: Direction; tier: number | null; decided_at: number; slo_ms: number | null; job_scope: string }>(
      sql`SELECT revision, direction, tier, decided_at, slo_ms, job_scope FROM changes
        WHERE org_id = ${org} AND effective_at IS NULL AND job_scope IN (${sql.join(live.map((l) => l.job.scope))})`,
    );
    const carried = pending.filter((c) => Number(c.revision) <= target.get(c.job_scope)!);
    if (carried.length > 0) {
      // Each job's rows go on the change that created it (as a single job's finish does).
      const chAdded = caseOf(sql`job_id`, live.map((l) => [l.job.id, rowsOf(l).a]), sql`rows_added`);
      const chRemoved = caseOf(sql`job_id`, live.map((l) => [l.job.id, rowsOf(l).r]), sql`rows_removed`);
      await tx.run(
        sql`UPDATE changes SET effective_at = ${now}, rows_added = ${chAdded}, rows_removed = ${chRemoved}
          WHERE org_id = ${org} AND revision IN (${sql.join(carried.map((c) => Number(c.revision)))})`,
      );
      recordLags(env, carried, now);
    }
    return jobs.map((j) => {
      const l = live.find((x) => x.job.id === j.id);
      if (!l) return 'lost' as const;
      const { a: ad, r: rm } = rowsOf(l);
      return { finished: true, members: 1, added: ad, removed: rm };
    });
  });
  observe(env, t0, results.filter((r): r is BatchResult => r !== 'lost'));
  return results;
}

/** `CASE column WHEN key THEN value … ELSE fallback END`. */
function caseOf(column: SqlFragment, pairs: [string, number][], fallback: SqlFragment = sql`NULL`): SqlFragment {
  const whens = sql.join(
    pairs.map(([k, v]) => sql`WHEN ${k} THEN CAST(${v} AS BIGINT)`),
    sql` `,
  );
  return sql`CASE ${column} ${whens} ELSE ${fallback} END`;
}

/** Marks the job done and every change it carried (its scope, up to its target revision) effective. */
async function finishJob(env: BatchEnv, tx: Sql, job: JobRow) {
  const now = env.now();
  await tx.run(`UPDATE jobs SET state = 'done', owner = NULL, lease_expires_at = NULL, finished_at = $2 WHERE id = $1`, [job.id, now]);
  const carried = await tx.all<{ revision: number; direction: Direction; tier: number | null; decided_at: number; slo_ms: number | null }>(
    `SELECT revision, direction, tier, decided_at, slo_ms FROM changes
      WHERE org_id = $1 AND job_scope = $2 AND revision <= $3 AND effective_at IS NULL`,
    [job.org_id, job.scope, job.target_revision],
  );
  if (carried.length === 0) return;
  await tx.run(
    `UPDATE changes SET effective_at = $4,
            rows_added = CASE WHEN job_id = $5 THEN $6 ELSE rows_added END,
            rows_removed = CASE WHEN job_id = $5 THEN $7 ELSE rows_removed END
      WHERE org_id = $1 AND job_scope = $2 AND revision <= $3 AND effective_at IS NULL`,
    [job.org_id, job.scope, job.target_revision, now, job.id, Number(job.rows_added), Number(job.rows_removed)],
  );
  recordLags(env, carried, now);
}

/** Propagation lag, revocation window and SLO breaches of changes that just became effective. */
function recordLags(env: BatchEnv, carried: { direction: Direction; tier: number | null; decided_at: number; slo_ms: number | null }[], now: number) {
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

/**
 * The frame every policy write runs in: one transaction that locks the organization's row (so writes
 * to one organization apply one at a time and each sees the last one's read model), applies the
 * command's source-table changes, classifies the change (direction × tier), and propagates its
 * read-model fan-out as the organization's propagation policy says: inline in this transaction
 * (`sync`), or by a reconciliation job enqueued in this same transaction (`async`: the transactional
 * outbox — the policy write and its job commit together or not at all). Then, if anything changed,
 * it stamps the next revision and appends the change-log entry. A command that throws leaves nothing.
 *
 * Commands only return data (`Outcome`): the frame calls a command once per attempt and carries out
 * everything else itself, so there is no callback into the command and no state between attempts.
 */
import { notFound } from '../domain/errors.ts';
import { directionOf, tierOfRank, type OrgId } from '../domain/model.ts';
import { decide, parsePolicy, type PropagationPolicy } from '../domain/propagation.ts';
import type { WriteContext, WriteResult } from '../domain/contract.ts';
import { sql, type Database, type Sql, type SqlFragment } from '../storage/database.ts';
import { applyFanout, fanoutAsCte, type Fanout } from '../derivation/fanout.ts';
import { isTransient } from '../storage/errors.ts';
import { lockAndReadOrganization, lockForWrite, readOrganization, type OrganizationFrame } from '../storage/locks.ts';
import type { Metrics } from '../observability/metrics.ts';
import { enqueueStatement, JOBS_CHANNEL } from '../propagation/queue.ts';
import { recordEvents } from '../delivery/record-events.ts';
import { settle, Tail, type Combiner, type SharedTransaction, type Staged } from './combiner.ts';
import type { Tracing } from '../observability/tracing.ts';

/**
 * What a command did, as data: the frame carries it out (propagation, revision, change log) and
 * returns `output` to the caller. A command is run once per attempt and keeps no state between
 * attempts, so a retried write answers for the attempt that committed.
 */
export interface Outcome<O = undefined> {
  changed: boolean;
  /** The change-log kind, where it depends on what the command found (`role.create` / `role.update`). */
  kind?: string;
  /** The change-log body, where it depends on what the command found (a SCIM group write's member diff). */
  body?: unknown;
  /** Highest risk rank among what the change grants / revokes (null: nothing). */
  grantRank?: number | null;
  revokeRank?: number | null;
  fanout?: Fanout;
  /** What the command answers beyond the write result (an assignment's id, whether it was created). */
  output?: O;
  /** When the change was decided, if not at the write (an expiry: its instant). */
  decidedAt?: number;
  /** Whether the organization records delivery events, if the command read it (saves the frame a round trip). */
  recording?: boolean;
}

export const NO_CHANGE: Outcome = { changed: false };

/**
 * What the frame offers a command besides its transaction. `unguarded` runs a statement that may
 * change rows without a shared transaction's savepoint (src/policy/combiner.ts): for a change the
 * command has conditioned, in the statement itself, on everything it would refuse the write for —
 * so that a write that changed something there is not refused after. `changed` tells, from the
 * statement's answer, whether it changed anything; should the write be refused after it did, a
 * shared transaction aborts and every write in it is retried alone (a lone write rolls back).
 */
export interface CommandFrame {
  unguarded<T>(statement: SqlFragment, changed: (row: T | undefined) => boolean): Promise<T | undefined>;
}

export type Command<O = undefined> = (tx: Sql, frame: CommandFrame) => Promise<Outcome<O>>;

export interface WriteEnv {
  db: Database;
  now: () => number;
  newId: () => string;
  metrics?: Metrics | undefined;
  /** Called after a commit that enqueued a job, so an in-process worker wakes at once. */
  onEnqueued?: (() => void) | undefined;
  /** The policy of organizations that have not set one. */
  defaultPolicy: PropagationPolicy;
  /** Group commit of concurrent writes (PostgreSQL); absent: one transaction per write. */
  combiner?: Combiner | undefined;
  /** Spans of writes (off: absent or NO_TRACING). */
  tracing?: Tracing | undefined;
  /**
   * Every write locks its whole organization (its `subjects` ignored): writes joined into one
   * caller's transaction (`transaction(fn)`, a policy file's apply), whose later writes could
   * otherwise ask for locks after an earlier one took the organization's row (a lock-order cycle).
   */
  wholeOrganization?: boolean | undefined;
}

export interface WriteSpec {
  org: OrgId;
  /** The change-log kind, unless the command's outcome names one. */
  kind: string;
  body: unknown;
  ctx: WriteContext | undefined;
  /** Organization creation is the one write that may find no organization row. */
  mayCreateOrg?: boolean;
  /**
   * The subjects whose rows alone the write changes and whose state alone it reads besides what
   * organization-wide writes change (a subject's membership): it locks them, and the organization
   * shared. Absent: the write locks the whole organization (src/storage/locks.ts).
   */
  subjects?: readonly string[];
}

const MAX_TX_ATTEMPTS = 5;

/** A committed write: its result, and the outcome of the attempt that committed. */
export type Written<O> = WriteResult & { outcome: Outcome<O> };

export async function runWrite<O = undefined>(env: WriteEnv, spec: WriteSpec, command: Command<O>): Promise<Written<O>> {
  if (!env.tracing?.enabled) return attemptWrite(env, spec, command, undefined);
  // The span is started here, in the caller's context (a request's), and handed down explicitly:
  // with group commit, writeOnce runs in whichever caller's context leads the shared transaction.
  return env.tracing.trace('lockstep.write', { 'lockstep.org': spec.org, 'lockstep.change.kind': spec.kind }, async (span) => {
    const written = await attemptWrite(env, spec, command, span.traceparent);
    span.setAttributes({
      'lockstep.revision': written.revision,
      'lockstep.changed': written.changed,
      'lockstep.propagation.mode': written.propagation.mode,
      'lockstep.propagation.status': written.propagation.status,
    });
    return written;
  });
}

async function attemptWrite<O>(env: WriteEnv, spec: WriteSpec, command: Command<O>, traceParent: string | undefined): Promise<Written<O>> {
  for (let attempt = 1; ; attempt++) {
    try {
      const once = (tx: Sql, shared?: SharedTransaction) => writeOnce(env, spec, tx, command, traceParent, shared);
      const result = await (env.combiner
        ? env.combiner.submit(spec.org, lockSet(env, spec), once)
        : env.db.transaction(async (tx) => settle(await once(tx))));
      if (result.propagation.status === 'pending') env.onEnqueued?.();
      return result;
    } catch (e) {
      // Deadlocks, serialization failures and lost connections are retried; nothing was committed
      // (or, for a lost acknowledgement, the next attempt finds what was and answers for that).
      if (!isTransient(e) || attempt >= MAX_TX_ATTEMPTS) throw e;
      env.metrics?.txRetries.inc({ operation: 'write' });
      await new Promise((r) => setTimeout(r, 5 * 2 ** attempt * Math.random()));
    }
  }
}

/**
 * The organization's revision and propagation policy for a write of a shared transaction. The
 * transaction read them with its locks (src/storage/locks.ts `lockAndReadOrganization`: after the
 * wait), before any of its writes ran, which serves its first write.
 *
 * In a shared transaction that holds subject locks only (the organization's shared), it serves every
 * write: the policy is changed only by organization-wide writes, which take the organization's lock
 * exclusive and so cannot commit before this transaction does, and none of its own writes is one.
 * The revision it holds may be older than the transaction's own tails (which take theirs from the
 * organization row, not from this read); it is only what a write that changes nothing answers, and
 * it is no older than any commit before the write was submitted (the read comes after the
 * transaction's lock, which comes after every write in it was queued). In an organization-wide one,
 * every later write reads its own (an earlier one may have changed the policy).
 */
async function frameRow(tx: Sql, org: string, shared: SharedTransaction): Promise<OrganizationFrame> {
  if (shared.locks !== undefined) return shared.frame;
  const key = `frame-served:${org}`;
  if (!shared.memo.has(key)) {
    shared.memo.set(key, true);
    return shared.frame;
  }
  return readOrganization(tx, org);
}

/**
 * One attempt in `tx`: the locks (unless taken) with the organization's revision and policy, the
 * command and the decision; then the tail — the fan-out or the job, the revision, the change log and
 * the delivery events — as a `Tail` its caller runs, in the same transaction.
 */
async function writeOnce<O>(env: WriteEnv, spec: WriteSpec, tx: Sql, command: Command<O>, traceParent: string | undefined, shared: SharedTransaction | undefined): Promise<Staged<Written<O>>> {
  const decidedAt = env.now();
  const lockStart = process.hrtime.bigint();
  // The locks and, read after them in the same round trip, the organization's revision and policy.
  // A group commit took the union of its writes' locks already (in one order: no deadlock), and
  // read the organization with them.
  const row = shared ? await frameRow(tx, spec.org, shared) : await lockAndReadOrganization(tx, spec.org, lockSet(env, spec));
  env.metrics?.lockWait.observe(Number(process.hrtime.bigint() - lockStart) / 1e9);
  if (!row && !spec.mayCreateOrg) throw notFound('org', 'organization', spec.org);
  const current = Number(row?.revision ?? 0);
  const frame: CommandFrame = {
    unguarded: shared
      ? async <T,>(statement: SqlFragment, changed: (row: T | undefined) => boolean) => {
          const answer = await shared.tentative.get<T>(statement);
          if (changed(answer)) shared.changedUnguarded();
          return answer;
        }
      : <T,>(statement: SqlFragment) => tx.get<T>(statement),
  };
  const outcome = await command(tx, frame);
  // The frame's own statements from here on refuse nothing (a shared transaction runs them without
  // a savepoint of their own: src/policy/combiner.ts).
  const own = shared?.unguarded ?? tx;
  if (!outcome.changed) return { revision: current, changed: false, propagation: { mode: 'sync', status: 'effective' }, outcome };

  // PostgreSQL: the revision is taken by the tail's bump (the last statement, which locks the
  // organization's row to commit: revisions are contiguous and in commit order while writes on
  // different subjects run side by side). SQLite: one writer at a time, the next one is known.
  const postgres = tx.dialect === 'postgres';
  const bumped = sql`(SELECT revision FROM bump)`;
  const revisionValue: SqlFragment | number = postgres ? bumped : current + 1;
  const grantRank = outcome.grantRank ?? 0;
  const revokeRank = outcome.revokeRank ?? 0;
  const direction = directionOf(grantRank > 0, revokeRank > 0);
  const rank = Math.max(grantRank, revokeRank);
  const tier = tierOfRank(rank);
  const fanout = outcome.fanout;
  const policy = row?.policy ? parsePolicy(JSON.parse(row.policy), env.defaultPolicy) : env.defaultPolicy;
  const decision = decide(policy, direction, tier, fanout?.rows ?? 0);

  // The tail: everything from here on runs when the transaction's combiner says (at once, or after
  // the other writes' bodies of a group commit: src/policy/combiner.ts), still in this transaction.
  // It reads nothing a later write of another subject changes (docs/adr/0025-*).
  return new Tail(async () => {
    const inline = fanout && decision.mode === 'sync' ? fanout : null;
    // The transactional outbox: a job for the fan-out, committed with the write (or coalesced into its
    // scope's pending one).
    const enqueue = fanout && !inline ? enqueueStatement({ org: spec.org, scope: fanout.scope, direction, priority: decision.priority, revision: revisionValue, now: env.now(), newId: env.newId, traceParent }) : null;
    // PostgreSQL: the inline fan-out (when it is one statement) or the enqueue runs as a data-modifying
    // CTE of the change-log INSERT below — one round trip for the write's tail, not two or three.
    // Otherwise they run here, first.
    const cte = inline && tx.dialect === 'postgres' ? fanoutAsCte(inline) : null;
    const fuseJob = enqueue !== null && tx.dialect === 'postgres';
    let added = 0;
    let removed = 0;
    let jobId: string | null = null;
    if (inline && !cte) ({ added, removed } = await applyFanout(own, inline));
    if (enqueue && !fuseJob) {
      jobId = (await own.get<{ id: string }>(enqueue))!.id;
      // Wake workers in other processes when this commits (PostgreSQL NOTIFY is transactional).
      if (env.db.notifySql) await own.get(env.db.notifySql, [JOBS_CHANNEL, spec.org]);
    }
    const effectiveAt = enqueue === null ? env.now() : null;
    const committedAt = effectiveAt ?? env.now();
    const kind = outcome.kind ?? spec.kind;
    const logChange = (rowsAdded: SqlFragment | number, rowsRemoved: SqlFragment | number, job: SqlFragment | string | null) =>
      sql`INSERT INTO changes (org_id, revision, kind, direction, tier, mode, actor, request_id, body, decided_at, effective_at,
                               rows_added, rows_removed, slo_ms, job_scope, job_id, committed_at)
          VALUES (${sql.join([
            spec.org,
            revisionValue,
            kind,
            direction,
            tier === null ? null : rank,
            decision.mode,
            spec.ctx?.actor ?? null,
            spec.ctx?.requestId ?? null,
            JSON.stringify(outcome.body ?? spec.body ?? null),
            outcome.decidedAt ?? decidedAt,
            effectiveAt,
          ])}, ${rowsAdded}, ${rowsRemoved}, ${sql.join([decision.sloMs, enqueue === null ? null : fanout!.scope])}, ${job}, ${committedAt})`;
    const bump = postgres
      ? sql`UPDATE organizations SET revision = revision + 1 WHERE id = ${spec.org} RETURNING revision`
      : sql`UPDATE organizations SET revision = ${current + 1} WHERE id = ${spec.org}`;
    let revision = current + 1;
    const returned = (r: { revision: number } | undefined) => {
      if (!r) throw new Error(`organization '${spec.org}' has no row to take a revision from`);
      revision = Number(r.revision);
    };
    if (cte) {
      // The fan-out, the revision and the change log in one statement. Its parts share one snapshot,
      // and none reads what another writes (the fan-out reads the source rows, written before it).
      const count = sql`(SELECT COUNT(*) FROM fanout_rows)`;
      returned(
        await own.get<{ revision: number }>(
          sql`WITH bump AS (${bump}), fanout_rows AS (${cte.body})
              ${logChange(cte.counts === 'added' ? count : 0, cte.counts === 'removed' ? count : 0, null)} RETURNING revision`,
        ),
      );
    } else if (fuseJob) {
      // The job, the revision, the change log naming the job, and the NOTIFY that wakes workers in
      // other processes when this commits (transactional): one statement.
      returned(
        await own.get<{ revision: number }>(
          sql`WITH bump AS (${bump}), job AS (${enqueue!})
              ${logChange(added, removed, sql`(SELECT id FROM job)`)} RETURNING revision, pg_notify(${JOBS_CHANNEL}, ${spec.org}) AS notified`,
        ),
      );
    } else if (postgres) {
      returned(await own.get<{ revision: number }>(sql`WITH bump AS (${bump}) ${logChange(added, removed, jobId)} RETURNING revision`));
    } else {
      // SQLite has no data-modifying CTEs; its statements cost no round trip.
      await own.run(bump);
      await own.run(logChange(added, removed, jobId));
    }
    // Delivery events of this change, from its read-model diff, in this transaction (the outbox).
    await recordEvents(own, {
      org: spec.org,
      revision,
      kind,
      body: outcome.body ?? spec.body,
      decidedAt,
      enforcedAt: committedAt,
      now: committedAt,
      traceParent,
      ...(outcome.recording === undefined ? {} : { recording: outcome.recording }),
    });
    return {
      revision,
      changed: true,
      propagation:
        effectiveAt === null
          ? { mode: 'async', status: 'pending', ...(decision.reason ? { reason: decision.reason } : {}) }
          : { mode: 'sync', status: 'effective', effectiveAt: new Date(effectiveAt).toISOString() },
      outcome,
    };
  });
}

/** The subjects a write locks (undefined: the whole organization). */
const lockSet = (env: WriteEnv, spec: WriteSpec) => (env.wholeOrganization ? undefined : spec.subjects);

/** Takes the lock an organization-wide write of `org` takes first and holds to commit (every write and batch of the organization waits for it). */
export async function lockOrganization(tx: Sql, org: string): Promise<void> {
  await lockForWrite(tx, org);
}

/** The write result alone (what the API answers). */
export const resultOf = <O,>({ outcome: _outcome, ...result }: Written<O>): WriteResult => result;

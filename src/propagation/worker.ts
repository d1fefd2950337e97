/**
 * The worker loop: claim a job, run its batches (heartbeating the lease), record failures with
 * backoff, repeat; sleep when the queue is empty until woken (in-process enqueue, or LISTEN/NOTIFY
 * on PostgreSQL) or the poll interval elapses. `serve` runs one in-process; `lockstep worker` runs
 * them as separate processes sharing a PostgreSQL queue.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { VerifyMode } from '../domain/model.ts';
import type { Database } from '../storage/database.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Tracing } from '../observability/tracing.ts';
import { announce, PRESENCE_INTERVAL_MS, withdraw } from './presence.ts';
import { claimJobs, DEFAULT_RETRY, failJobs, heartbeat, JOBS_CHANNEL, LeaseLost, pruneDoneJobs, releaseJobs, type JobRow, type RetryPolicy } from './queue.ts';
import { runBatch, runSubjectJobs } from './reconcile.ts';
import { pollLoop } from '../runtime/poll-loop.ts';


export interface WorkerOptions {
  db: Database;
  owner?: string;
  /** Subjects per batch. */
  batchSize?: number;
  /** Rows a batch should write at most (fewer subjects per batch for groups with many assignments). */
  maxBatchRows?: number;
  /** Single-subject jobs of one organization run together in one transaction, up to this many (1: alone). */
  subjectJobs?: number;
  leaseMs?: number;
  pollMs?: number;
  retry?: RetryPolicy;
  verify?: VerifyMode;
  now?: () => number;
  metrics?: Metrics | undefined;
  /** Batch spans (tracing on): children of the writes that enqueued the jobs. */
  tracing?: Tracing | undefined;
  onEvent?: (e: WorkerEvent) => void;
  /**
   * An error the loop survived (claiming, heartbeating, recording a failure, releasing, pruning,
   * listening), with the job it concerned if any. Default: a line on stderr.
   */
  onError?: (e: WorkerError) => void;
  /** Done jobs are deleted this long after they finish (default 24 h; 0 keeps them). */
  retentionMs?: number;
  /** How often a started worker refreshes its presence row (./presence.ts; /readyz counts them). */
  presenceMs?: number;
}

export type WorkerEvent =
  | { type: 'claimed'; job: JobRow }
  | { type: 'batch'; job: JobRow; members: number; added: number; removed: number }
  | { type: 'done'; job: JobRow }
  | { type: 'failed'; job: JobRow; error: unknown; state: string | null }
  | { type: 'lost'; job: JobRow }
  | { type: 'released'; job: JobRow };

export interface WorkerError {
  during: 'claim' | 'heartbeat' | 'fail' | 'release' | 'prune' | 'listen' | 'presence';
  /** The job it concerned (null: none, e.g. a claim that could not reach the database). */
  jobId: string | null;
  error: unknown;
}

const stderrError = (e: WorkerError) => process.stderr.write(`lockstep worker: ${e.during} failed${e.jobId ? ` for job ${e.jobId}` : ''}: ${errorText(e.error)}\n`);

export interface Worker {
  readonly owner: string;
  /** Claims and runs one job to its end (done, failed or lost). False when nothing was claimable. */
  runOne(): Promise<boolean>;
  /** Runs jobs until none is claimable. */
  drain(): Promise<number>;
  /** Starts the background loop. */
  start(): void;
  /** Wakes a sleeping loop (a job was just enqueued). */
  wake(): void;
  /** Stops the loop after the current batch. */
  stop(): Promise<void>;
}

/** The slice of a pino logger the worker's log lines need. */
export interface LogSink {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Job lifecycle at info, each batch at debug, failures with their error; errors the loop survived with the job id. */
export function logTo(logger: LogSink): Pick<WorkerOptions, 'onEvent' | 'onError'> {
  return {
    onEvent: (e) => {
      const job = { id: e.job.id, scope: e.job.scope, org: e.job.org_id };
      if (e.type === 'batch') logger.debug({ job, members: e.members, added: e.added, removed: e.removed }, 'reconcile batch');
      else if (e.type === 'failed') logger.warn({ job, err: e.error, state: e.state }, 'reconcile batch failed');
      else logger.info({ job }, `job ${e.type}`);
    },
    onError: (e) => logger.error({ ...(e.jobId ? { job: { id: e.jobId } } : {}), err: e.error, during: e.during }, `worker ${e.during} failed`),
  };
}

export const newOwnerId = () => `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;

export function createWorker(opts: WorkerOptions): Worker {
  const owner = opts.owner ?? newOwnerId();
  const batchSize = opts.batchSize ?? 100;
  const maxBatchRows = opts.maxBatchRows ?? 10_000;
  const subjectJobs = opts.subjectJobs ?? 64;
  const leaseMs = opts.leaseMs ?? 15_000;
  const pollMs = opts.pollMs ?? 1000;
  const retry = opts.retry ?? DEFAULT_RETRY;
  const now = opts.now ?? Date.now;
  const env = { db: opts.db, now, metrics: opts.metrics, verify: opts.verify ?? 'always', tracing: opts.tracing };
  const emit = opts.onEvent ?? (() => undefined);
  const report = opts.onError ?? stderrError;

  let unlisten: Promise<() => Promise<void>> | undefined;
  const presenceMs = opts.presenceMs ?? PRESENCE_INTERVAL_MS;
  let presenceTimer: NodeJS.Timeout | undefined;
  let presence: Promise<unknown> = Promise.resolve();
  const beatPresence = () => {
    presence = announce(opts.db, owner, now()).catch((error) => report({ during: 'presence', jobId: null, error }));
  };
  const retentionMs = opts.retentionMs ?? 24 * 3600 * 1000;
  let lastPrune = 0;
  /** At most once a minute, while idle: done jobs past retention go (the queue table stays small). */
  async function pruneIfDue() {
    if (retentionMs <= 0 || now() - lastPrune < 60_000) return;
    lastPrune = now();
    await pruneDoneJobs(opts.db, now() - retentionMs).catch((error) => report({ during: 'prune', jobId: null, error }));
  }

  /**
   * Records failed batches (each job retries on its own). If even that fails, the jobs stay
   * `running` until their leases lapse and another claim takes them over; the error is reported.
   */
  async function fail(jobs: JobRow[], e: unknown) {
    let states: Map<string, string | null>;
    try {
      states = await failJobs(opts.db, jobs.map((j) => ({ id: j.id, error: errorText(e) })), owner, now(), retry);
    } catch (error) {
      for (const job of jobs) report({ during: 'fail', jobId: job.id, error });
      states = new Map();
    }
    for (const job of jobs) {
      const state = states.get(job.id) ?? null;
      opts.metrics?.jobFailures.inc({ outcome: state ?? 'lost' });
      emit({ type: 'failed', job, error: e, state });
    }
  }

  /** A single-subject job takes up to `subjectJobs - 1` more of its organization's along. */
  async function runSubjectGroup(first: JobRow): Promise<boolean> {
    let more: JobRow[] = [];
    try {
      more = await claimJobs(opts.db, { kind: 'subjects', org: first.org_id }, owner, now(), leaseMs, subjectJobs - 1);
    } catch (error) {
      // The first job is claimed already: it runs alone.
      report({ during: 'claim', jobId: first.id, error });
    }
    const jobs = [first, ...more];
    for (const j of more) emit({ type: 'claimed', job: j });
    try {
      const results = await runSubjectJobs(env, jobs, owner, leaseMs);
      results.forEach((r, i) => {
        const job = jobs[i]!;
        if (r === 'lost') return emit({ type: 'lost', job });
        emit({ type: 'batch', job, ...r });
        emit({ type: 'done', job });
      });
    } catch (e) {
      // The shared transaction rolled back: each job records the failure and retries on its own.
      await fail(jobs, e);
    }
    return true;
  }

  async function runOne(): Promise<boolean> {
    const [job] = await claimJobs(opts.db, { kind: 'any' }, owner, now(), leaseMs, 1);
    if (!job) return false;
    emit({ type: 'claimed', job });
    if (subjectJobs > 1 && job.scope.startsWith('subject:') && job.checkpoint === null) return runSubjectGroup(job);
    let lost = false;
    const beat = setInterval(() => {
      // A heartbeat that fails leaves the lease to run on; the next batch's fence decides.
      heartbeat(opts.db, job.id, owner, now(), leaseMs).then(
        (ok) => (lost ||= !ok),
        (error) => report({ during: 'heartbeat', jobId: job.id, error }),
      );
    }, Math.max(50, leaseMs / 3));
    beat.unref?.();
    try {
      for (;;) {
        if (lost) throw new LeaseLost(job.id);
        const r = await runBatch(env, job, owner, batchSize, leaseMs, maxBatchRows);
        emit({ type: 'batch', job, ...r });
        if (r.finished) {
          emit({ type: 'done', job });
          return true;
        }
        if (poller.state === 'stopping') {
          // Stopping: hand the rest to the next owner now rather than when the lease lapses.
          try {
            await releaseJobs(opts.db, [job.id], owner, now());
          } catch (error) {
            // Not handed back: the lease lapses and another worker takes it over at its checkpoint.
            report({ during: 'release', jobId: job.id, error });
          }
          emit({ type: 'released', job });
          return true;
        }
      }
    } catch (e) {
      if (e instanceof LeaseLost) {
        emit({ type: 'lost', job });
        return true;
      }
      await fail([job], e);
      return true;
    } finally {
      clearInterval(beat);
    }
  }

  // Claiming failed (database unreachable, …): report, back off for the poll interval, retry.
  const poller = pollLoop({ pollMs, step: runOne, onError: (error) => report({ during: 'claim', jobId: null, error }), whenIdle: pruneIfDue });

  const worker: Worker = {
    owner,
    runOne,
    async drain() {
      let n = 0;
      while (await runOne()) n++;
      return n;
    },
    start() {
      if (poller.state === 'running') return;
      // Other processes' enqueues arrive as notifications (PostgreSQL); a lost listener only means
      // waiting for the poll interval.
      unlisten = opts.db.listen(JOBS_CHANNEL, () => worker.wake()).catch((error) => {
        report({ during: 'listen', jobId: null, error });
        return async () => undefined;
      });
      poller.start();
      beatPresence();
      presenceTimer = setInterval(beatPresence, presenceMs);
      presenceTimer.unref();
    },
    wake: () => poller.wake(),
    async stop() {
      const started = presenceTimer !== undefined;
      clearInterval(presenceTimer);
      presenceTimer = undefined;
      await poller.stop();
      await presence;
      if (started) await withdraw(opts.db, owner).catch((error) => report({ during: 'presence', jobId: null, error }));
      await (await unlisten)?.();
      unlisten = undefined;
    },
  };
  return worker;
}

function errorText(e: unknown): string {
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const cause = err?.cause?.message ? ` (cause: ${err.cause.code ?? ''} ${err.cause.message})` : '';
  return `${err?.code ?? 'ERROR'}: ${err?.message ?? String(e)}${cause}`;
}

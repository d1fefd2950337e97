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
import { claimJob, claimSubjectJobs, DEFAULT_RETRY, failJob, heartbeat, JOBS_CHANNEL, LeaseLost, pruneDoneJobs, releaseJob, type JobRow, type RetryPolicy } from './queue.ts';
import { runBatch, runSubjectJobs } from './reconcile.ts';


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
  onEvent?: (e: WorkerEvent) => void;
  /** Done jobs are deleted this long after they finish (default 24 h; 0 keeps them). */
  retentionMs?: number;
}

export type WorkerEvent =
  | { type: 'claimed'; job: JobRow }
  | { type: 'batch'; job: JobRow; members: number; added: number; removed: number }
  | { type: 'done'; job: JobRow }
  | { type: 'failed'; job: JobRow; error: unknown; state: string | null }
  | { type: 'lost'; job: JobRow }
  | { type: 'released'; job: JobRow };

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
  const env = { db: opts.db, now, metrics: opts.metrics, verify: opts.verify ?? 'always' };
  const emit = opts.onEvent ?? (() => undefined);

  let running = false;
  let loop: Promise<void> | undefined;
  let wakeUp: (() => void) | undefined;
  let woken = false;
  let unlisten: Promise<() => Promise<void>> | undefined;
  const retentionMs = opts.retentionMs ?? 24 * 3600 * 1000;
  let lastPrune = 0;
  /** At most once a minute, while idle: done jobs past retention go (the queue table stays small). */
  async function pruneIfDue() {
    if (retentionMs <= 0 || now() - lastPrune < 60_000) return;
    lastPrune = now();
    await pruneDoneJobs(opts.db, now() - retentionMs).catch(() => 0);
  }

  /** A single-subject job takes up to `subjectJobs - 1` more of its organization's along. */
  async function runSubjectGroup(first: JobRow): Promise<boolean> {
    const jobs = [first, ...(await claimSubjectJobs(opts.db, first.org_id, owner, now(), leaseMs, subjectJobs - 1))];
    for (const j of jobs.slice(1)) emit({ type: 'claimed', job: j });
    try {
      const results = await runSubjectJobs(env, jobs, owner);
      results.forEach((r, i) => {
        const job = jobs[i]!;
        if (r === 'lost') return emit({ type: 'lost', job });
        emit({ type: 'batch', job, ...r });
        emit({ type: 'done', job });
      });
    } catch (e) {
      // The shared transaction rolled back: each job records the failure and retries on its own.
      for (const job of jobs) {
        const state = await failJob(opts.db, job.id, owner, errorText(e), now(), retry).catch(() => null);
        opts.metrics?.jobFailures.inc({ outcome: state ?? 'lost' });
        emit({ type: 'failed', job, error: e, state });
      }
    }
    return true;
  }

  async function runOne(): Promise<boolean> {
    const job = await claimJob(opts.db, owner, now(), leaseMs);
    if (!job) return false;
    emit({ type: 'claimed', job });
    if (subjectJobs > 1 && job.scope.startsWith('subject:') && job.checkpoint === null) return runSubjectGroup(job);
    let lost = false;
    const beat = setInterval(() => {
      heartbeat(opts.db, job.id, owner, now(), leaseMs).then(
        (ok) => (lost ||= !ok),
        () => undefined,
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
        if (!running && loop) {
          // Stopping: hand the rest to the next owner now rather than when the lease lapses.
          await releaseJob(opts.db, job.id, owner, now()).catch(() => false);
          emit({ type: 'released', job });
          return true;
        }
      }
    } catch (e) {
      if (e instanceof LeaseLost) {
        emit({ type: 'lost', job });
        return true;
      }
      const state = await failJob(opts.db, job.id, owner, errorText(e), now(), retry).catch(() => null);
      opts.metrics?.jobFailures.inc({ outcome: state ?? 'lost' });
      emit({ type: 'failed', job, error: e, state });
      return true;
    } finally {
      clearInterval(beat);
    }
  }

  const worker: Worker = {
    owner,
    runOne,
    async drain() {
      let n = 0;
      while (await runOne()) n++;
      return n;
    },
    start() {
      if (running) return;
      running = true;
      // Other processes' enqueues arrive as notifications (PostgreSQL); a lost listener only means
      // waiting for the poll interval.
      unlisten = opts.db.listen(JOBS_CHANNEL, () => worker.wake()).catch(() => async () => undefined);
      loop = (async () => {
        while (running) {
          let worked = false;
          try {
            worked = await runOne();
          } catch {
            // Claiming failed (database unreachable, …): back off and try again.
            worked = false;
          }
          if (worked || !running) continue;
          await pruneIfDue();
          if (woken) {
            woken = false;
            continue;
          }
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, pollMs);
            wakeUp = () => {
              clearTimeout(t);
              resolve();
            };
          });
          wakeUp = undefined;
          woken = false;
        }
      })();
    },
    wake() {
      woken = true;
      wakeUp?.();
    },
    async stop() {
      running = false;
      wakeUp?.();
      await loop;
      loop = undefined;
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

/**
 * Access-history replays in worker threads, a bounded number at a time. A replay is CPU-bound and
 * synchronous (the whole log up to T through an in-memory SQLite engine): on the event loop, three
 * concurrent replays of a 160k-row organization stalled every other request for 2.3–2.6 s. Here the
 * main thread only reads the log, a page at a time (yielding between pages), and posts the pages to
 * a worker, which replays them and answers the question. At most `size` replays run; up to `queue`
 * more wait; beyond that a request is refused at once with UNAVAILABLE (503, Retry-After) rather
 * than piling up work nobody will wait for. docs/adr/0005-access-history-off-the-event-loop.md.
 */
import { Worker } from 'node:worker_threads';
import { LockstepError, type ErrorCode } from '../domain/errors.ts';
import type { Sql } from '../storage/database.ts';
import { changePages, type HistoryQuestion, type HistoryRunner } from './history.ts';

export interface HistoryPoolOptions {
  /** The worker's TypeScript entry (the composition root supplies it: it builds the replay engine). */
  entry: URL;
  /** Replays at once (worker threads). */
  size: number;
  /** Replays that may wait for a worker; more are refused. */
  queue: number;
  /** Seconds a refused caller is told to wait (Retry-After). */
  retryAfterSeconds?: number;
}

/** Messages between the pool and a worker (one replay at a time per worker). */
export type ToWorker =
  | { type: 'start'; org: string; at: number; question: HistoryQuestion }
  | { type: 'rows'; rows: { revision: number; kind: string; body: string; decided_at: number }[] }
  | { type: 'end' };
export type FromWorker =
  | { type: 'done'; revision: number; result: unknown }
  | { type: 'error'; code?: ErrorCode; message: string; field?: string };

const BOOT = new URL('../../bin/ts-worker.js', import.meta.url);

interface Slot {
  worker: Worker;
  busy: boolean;
}

export interface HistoryPoolStats {
  /** Replays holding a worker (reading the log or replaying it). */
  running: number;
  /** Replays whose whole log is with their worker: this thread waits for nothing but the answer. */
  replaying: number;
  /** Replays waiting for a worker. */
  queued: number;
}

export type HistoryPool = HistoryRunner & { stats(): HistoryPoolStats };

export function createHistoryPool(opts: HistoryPoolOptions): HistoryPool {
  const slots: Slot[] = [];
  const waiting: Array<(slot: Slot) => void> = [];
  let running = 0;
  let replaying = 0;
  let closed = false;

  const spawn = (): Slot => {
    // The boot file registers tsx in the thread (module hooks are not inherited), then loads `entry`.
    const worker = new Worker(BOOT, { workerData: { entry: opts.entry.href } });
    worker.unref();
    const slot = { worker, busy: false };
    worker.on('exit', () => {
      const i = slots.indexOf(slot);
      if (i >= 0) slots.splice(i, 1);
    });
    slots.push(slot);
    return slot;
  };

  const acquire = (): Promise<Slot> => {
    if (closed) return Promise.reject(new LockstepError('UNAVAILABLE', 'the server is stopping'));
    const idle = slots.find((s) => !s.busy);
    if (idle || slots.length < opts.size) {
      const slot = idle ?? spawn();
      slot.busy = true;
      running++;
      return Promise.resolve(slot);
    }
    if (waiting.length >= opts.queue) {
      return Promise.reject(
        new LockstepError('UNAVAILABLE', `access history is busy (${running} replays running, ${waiting.length} waiting); retry in a moment`, {
          field: 'at',
          meta: { expose: true, retryAfterSeconds: opts.retryAfterSeconds ?? 1 },
        }),
      );
    }
    return new Promise((resolve) => waiting.push(resolve));
  };

  const release = (slot: Slot) => {
    const next = waiting.shift();
    if (next && slots.includes(slot)) return next(slot); // handed over: still busy, still running
    slot.busy = false;
    running--;
    if (next) {
      // The slot's worker died: start another for the waiting replay.
      const fresh = spawn();
      fresh.busy = true;
      running++;
      next(fresh);
    }
  };

  async function run(source: Sql, org: string, at: number, question: HistoryQuestion) {
    const slot = await acquire();
    try {
      const answer = new Promise<FromWorker>((resolve, reject) => {
        const onMessage = (m: FromWorker) => (cleanup(), resolve(m));
        const onError = (e: Error) => (cleanup(), reject(new LockstepError('INTERNAL', 'an access-history worker failed', { cause: e })));
        const onExit = (code: number) => (cleanup(), reject(new LockstepError('INTERNAL', `an access-history worker exited (${code})`)));
        const cleanup = () => {
          slot.worker.off('message', onMessage);
          slot.worker.off('error', onError);
          slot.worker.off('exit', onExit);
        };
        slot.worker.on('message', onMessage);
        slot.worker.on('error', onError);
        slot.worker.on('exit', onExit);
      });
      answer.catch(() => undefined); // awaited below; a failure while we still read is not unhandled
      const post = (m: ToWorker) => slot.worker.postMessage(m);
      post({ type: 'start', org, at, question });
      for await (const rows of changePages(source, org, at)) {
        post({ type: 'rows', rows });
        // Let requests in between pages: reading the log is the one part left on this thread.
        await new Promise((r) => setImmediate(r));
      }
      post({ type: 'end' });
      replaying++;
      const m = await answer.finally(() => replaying--);
      if (m.type === 'error') {
        throw m.code ? new LockstepError(m.code, m.message, m.field === undefined ? {} : { field: m.field }) : new LockstepError('INTERNAL', m.message);
      }
      return { revision: m.revision, result: m.result };
    } catch (e) {
      // A worker that may be mid-replay is not reused.
      if (!(e instanceof LockstepError && e.code !== 'INTERNAL')) {
        const i = slots.indexOf(slot);
        if (i >= 0) slots.splice(i, 1);
        await slot.worker.terminate().catch(() => undefined);
      }
      throw e;
    } finally {
      release(slot);
    }
  }

  return {
    run,
    stats: () => ({ running, replaying, queued: waiting.length }),
    async close() {
      closed = true;
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}

/**
 * Coalescing of concurrent calls into batches (DataLoader's idea, without its timer): a call made
 * while fewer than `maxInFlight` batches are out starts a batch at once — a lone call waits for
 * nothing; calls made while the batches are out queue, and the next batch takes every queued call
 * (up to `maxSize`) as soon as one comes back. Under load a batch is as large as what arrived
 * during one round trip; at rest every batch is a single call.
 *
 * A call never joins a batch that has already started: what that batch reads was fixed before the
 * call was made, which is what keeps a batched check's answer as fresh as a lone one (docs/adr/0018-*).
 */

export interface CoalesceOptions {
  /** The most calls in one batch. */
  maxSize: number;
  /** The most batches out at once. */
  maxInFlight: number;
}

interface Pending<I, R> {
  item: I;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

/**
 * `run` answers a batch of items with one result per item, in order, or throws for all of them.
 * Returns the function that submits one item.
 */
export function createCoalescer<I, R>(run: (items: I[]) => Promise<R[]>, opts: CoalesceOptions): (item: I) => Promise<R> {
  const queue: Pending<I, R>[] = [];
  let inFlight = 0;

  function dispatch(): void {
    while (inFlight < opts.maxInFlight && queue.length > 0) {
      const batch = queue.splice(0, opts.maxSize);
      inFlight++;
      let out: Promise<R[]>;
      try {
        out = run(batch.map((p) => p.item));
      } catch (e) {
        out = Promise.reject(e);
      }
      out.then(
        (results) => {
          // The next batch first, then the answers: the database works on it while this process
          // serializes these.
          inFlight--;
          dispatch();
          if (results.length !== batch.length) {
            const err = new Error(`a batch of ${batch.length} calls returned ${results.length} results`);
            for (const p of batch) p.reject(err);
            return;
          }
          batch.forEach((p, i) => p.resolve(results[i]!));
        },
        (e: unknown) => {
          inFlight--;
          dispatch();
          for (const p of batch) p.reject(e);
        },
      );
    }
  }

  return (item) =>
    new Promise<R>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      dispatch();
    });
}

/**
 * The calls made during one turn of the event loop, run back to back at its end (`setImmediate`),
 * each with its own answer or error: for work that has no round trip to share but costs less run in
 * a row than spread among other work — SQLite's checks, whose statement, run between two HTTP
 * requests' worth of other code, finds the processor's caches cold (docs/adr/0021-*). A call made
 * while a turn's calls run waits for the next turn; `run` is called for each call after it was made,
 * never before.
 */
export function createTurnQueue<I, R>(run: (item: I) => Promise<R>): (item: I) => Promise<R> {
  let queue: Pending<I, R>[] = [];
  const flush = () => {
    const turn = queue;
    queue = [];
    for (const p of turn) {
      try {
        run(p.item).then(p.resolve, p.reject);
      } catch (e) {
        p.reject(e);
      }
    }
  };
  return (item) =>
    new Promise<R>((resolve, reject) => {
      if (queue.push({ item, resolve, reject }) === 1) setImmediate(flush);
    });
}

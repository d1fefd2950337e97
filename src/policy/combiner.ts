/**
 * Group commit for policy writes on PostgreSQL. Writes to one organization are serialized on its row
 * lock, held to commit, so one organization's write rate is bounded by commit latency (the WAL
 * flush). The combiner lets the writes that queue up in this process while a transaction is in
 * flight share the next one: each runs under its own SAVEPOINT (a write that fails rolls back alone
 * and rejects alone), and one COMMIT — one flush — acknowledges them all. A lone write pays two
 * extra round trips (SAVEPOINT, RELEASE); a busy organization pays one flush per batch.
 */
import { LockstepError } from '../domain/errors.ts';
import { ScimError } from '../scim/errors.ts';
import type { Database, Sql } from '../storage/database.ts';
import { lockForWrite, unionOfLocks } from '../storage/locks.ts';

interface Pending<T> {
  /** The write's lock set (src/storage/locks.ts): its subjects, or undefined for the organization. */
  subjects: readonly string[] | undefined;
  run: (tx: Sql, locked?: boolean) => Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

export interface Combiner {
  /** `run` is told `locked` when the shared transaction took its locks already. */
  submit<T>(org: string, subjects: readonly string[] | undefined, run: (tx: Sql, locked?: boolean) => Promise<T>): Promise<T>;
}

/** An answer about the write itself (a 4xx: /v1's or SCIM's), not about the transaction it shares. */
const rejected = (e: unknown) =>
  (e instanceof LockstepError && e.code !== 'INTERNAL' && e.code !== 'UNAVAILABLE') || (e instanceof ScimError && e.status < 500);

export function createCombiner(db: Database, maxBatch = 64): Combiner {
  const queues = new Map<string, Pending<unknown>[]>();
  const busy = new Set<string>();

  async function drain(org: string): Promise<void> {
    busy.add(org);
    try {
      for (;;) {
        const queue = queues.get(org) ?? [];
        if (queue.length === 0) return;
        const batch = queue.splice(0, maxBatch);
        await runBatch(org, batch);
      }
    } finally {
      busy.delete(org);
      queues.delete(org);
    }
  }

  async function runBatch(org: string, batch: Pending<unknown>[]) {
    if (batch.length === 1) {
      // Nothing to share: a plain transaction, no savepoints.
      const [p] = batch;
      await db.transaction((tx) => p!.run(tx)).then(p!.resolve, p!.reject);
      return;
    }
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      await db.transaction(async (tx) => {
        // Every write's locks up front, in the one order every transaction takes them: taken one
        // write at a time they would come unsorted, and a later write's lock could wait for a
        // transaction that waits for this one's (docs/adr/0017-subject-locks.md).
        await lockForWrite(tx, org, unionOfLocks(batch.map((p) => p.subjects)));
        for (const p of batch) {
          await tx.run('SAVEPOINT lockstep_write');
          try {
            const value = await p.run(tx, true);
            await tx.run('RELEASE SAVEPOINT lockstep_write');
            outcomes.push({ ok: true, value });
          } catch (error) {
            // A rejected write (bad input, unknown object…) rolls back alone; anything else (a
            // lost connection, a deadlock) aborts the batch and every write in it is retried alone.
            if (!rejected(error)) throw error;
            await tx.run('ROLLBACK TO SAVEPOINT lockstep_write');
            outcomes.push({ ok: false, error });
          }
        }
      });
    } catch {
      for (const p of batch) await db.transaction((tx) => p.run(tx)).then(p.resolve, p.reject);
      return;
    }
    batch.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve(o.value);
      else p.reject(o.error);
    });
  }

  return {
    submit<T>(org: string, subjects: readonly string[] | undefined, run: (tx: Sql, locked?: boolean) => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        let queue = queues.get(org);
        if (!queue) queues.set(org, (queue = []));
        queue.push({ subjects, run, resolve, reject } as Pending<unknown>);
        if (!busy.has(org)) void drain(org);
      });
    },
  };
}

/**
 * Group commit for policy writes on PostgreSQL. Writes to one organization are serialized on its row
 * lock, held to commit, so one organization's write rate is bounded by commit latency (the WAL
 * flush). The combiner lets the writes that queue up in this process while a transaction is in
 * flight share the next one: each runs under its own SAVEPOINT (a write that fails rolls back alone
 * and rejects alone), and one COMMIT — one flush — acknowledges them all. A write in a shared
 * transaction pays one extra round trip (its SAVEPOINT); a busy organization pays one flush per batch.
 *
 * A write's savepoint is taken just before the first statement of its that changes something
 * (every statement but a SELECT), so a write that only reads before it is refused needs none. The
 * frame's own statements after its command (src/policy/write.ts: the tail) run on
 * `shared.unguarded`, without one; so does a command's change conditioned, in its own statement, on
 * everything the command refuses for (`shared.tentative`, reported by `changedUnguarded`): a
 * membership change, whose lookup also writes its row, runs two statements in a shared transaction,
 * not six (docs/adr/0026-write-round-trips.md). Should a write be refused after
 * an unguarded change (or after a statement that failed with no savepoint to return to), nothing can
 * undo it alone: the batch aborts, and every write in it is retried in a transaction of its own.
 *
 * The savepoints are nested, not released: `ROLLBACK TO SAVEPOINT` of a name goes back to the most
 * recent savepoint of that name — the refused write's own, as a write that took none is never rolled
 * back to one — and a RELEASE per write would be one more round trip under the locks for nothing (a
 * released subtransaction's XID stays the top-level transaction's either way, so nesting keeps no
 * more of them).
 *
 * A write may leave its tail (a `Tail`: the statements that take the organization's row, which is
 * then held to COMMIT) to the end of the shared transaction. The tails of subject-scoped writes run
 * after every body of the batch, so the row is held for the tails alone, not from the first write's
 * tail on — the bodies of another process's batch run meanwhile (docs/adr/0025-*). A write that
 * overlaps a waiting tail's subjects, or locks the whole organization, runs those tails first: it
 * sees everything the writes before it did, as alone.
 */
import { LockstepError } from '../domain/errors.ts';
import { ScimError } from '../scim/errors.ts';
import { SqlFragment, type Database, type Sql, type Statement } from '../storage/database.ts';
import { lockAndReadOrganization, unionOfLocks, type OrganizationFrame } from '../storage/locks.ts';

/**
 * What a write running in a shared transaction is told: the transaction took its locks already (the
 * union of its writes'), and a scratch space its writes share (what one write read that the next
 * may reuse: see src/policy/write.ts).
 */
export interface SharedTransaction {
  /** The union lock set the transaction holds (src/storage/locks.ts): subjects, or undefined for the organization's exclusive lock. */
  readonly locks: readonly string[] | undefined;
  readonly memo: Map<string, unknown>;
  /**
   * The transaction without the savepoint guard, for the statements a write runs once nothing can
   * refuse it any more (its tail). A change run here while the write has no savepoint is tracked: a
   * refusal after it aborts the batch instead of committing it.
   */
  readonly unguarded: Sql;
  /**
   * The transaction without the guard and without tracking: for a statement whose change, if it
   * made one, the write reports with `changedUnguarded` (a command's change conditioned in SQL on
   * everything it refuses on: src/policy/write.ts `CommandFrame`). A failure on it is tracked.
   */
  readonly tentative: Sql;
  /** Reports a change made on `tentative`: as one made on `unguarded`, a refusal after it aborts the batch. */
  changedUnguarded(): void;
  /**
   * The organization's revision and policy as read with the transaction's locks, before any of its
   * writes ran (src/storage/locks.ts `lockAndReadOrganization`).
   */
  readonly frame: OrganizationFrame;
}

/** Whether a statement only reads: its text starts with SELECT (a data-modifying CTE starts with WITH). */
export function onlyReads(statement: Statement): boolean {
  let s: Statement = statement;
  while (typeof s !== 'string') {
    const head = s.parts[0] ?? '';
    const nested = s.values[0];
    if (head.trim() !== '' || !(nested instanceof SqlFragment)) return /^\s*select\b/i.test(head);
    s = nested;
  }
  return /^\s*select\b/i.test(s);
}

/** One write's state in a shared transaction: whether it took its savepoint, and whether it did anything no savepoint covers. */
interface WriteState {
  savepoint: boolean;
  bare: boolean;
}

/** `tx` as one write of a shared transaction sees it: `before` runs ahead of each statement; a failure with no savepoint is bare. */
function watched(tx: Sql, w: WriteState, before: (st: Statement) => Promise<void> | void): Sql {
  const wrap =
    <R>(f: (st: Statement, params?: readonly unknown[]) => Promise<R>) =>
    async (st: Statement, params?: readonly unknown[]): Promise<R> => {
      await before(st);
      try {
        return await f(st, params);
      } catch (e) {
        // PostgreSQL aborts the transaction at a failed statement: only a savepoint gets it back.
        if (!w.savepoint) w.bare = true;
        throw e;
      }
    };
  return { ...tx, get: wrap((st, p) => tx.get(st, p)), all: wrap((st, p) => tx.all(st, p)), run: wrap((st, p) => tx.run(st, p)) } as Sql;
}

/** What a write leaves to the end of its transaction: its tail (src/policy/write.ts). */
export class Tail<T> {
  constructor(readonly finish: () => Promise<T>) {}
}

/** A write's result, or its tail still to run. */
export type Staged<T> = T | Tail<T>;

/** `staged`'s result, its tail run now if it has one. */
export const settle = async <T>(staged: Staged<T>): Promise<T> => (staged instanceof Tail ? staged.finish() : staged);

type Run<T> = (tx: Sql, shared?: SharedTransaction) => Promise<Staged<T>>;

interface Pending<T> {
  /** The write's lock set (src/storage/locks.ts): its subjects, or undefined for the organization. */
  subjects: readonly string[] | undefined;
  run: Run<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

export interface Combiner {
  /** `run` is handed `shared` when it runs in a shared transaction, which took its locks already. */
  submit<T>(org: string, subjects: readonly string[] | undefined, run: Run<T>): Promise<T>;
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

  /** One write in a transaction of its own, its tail run at once. */
  const alone = (p: Pending<unknown>) => db.transaction(async (tx) => settle(await p.run(tx))).then(p.resolve, p.reject);

  async function runBatch(org: string, batch: Pending<unknown>[]) {
    // Nothing to share: a plain transaction, no savepoints.
    if (batch.length === 1) return alone(batch[0]!);
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      await db.transaction(async (tx) => {
        // Every write's locks up front, in the one order every transaction takes them: taken one
        // write at a time they would come unsorted, and a later write's lock could wait for a
        // transaction that waits for this one's (docs/adr/0017-subject-locks.md).
        const locks = unionOfLocks(batch.map((p) => p.subjects));
        const memo = new Map<string, unknown>();
        // The organization's revision and policy come with the locks, in the same round trip.
        const frame = await lockAndReadOrganization(tx, org, locks);
        // Tails left to the end, in the order of their writes, and the subjects their writes lock.
        let waiting: { i: number; tail: Tail<unknown> }[] = [];
        const held = new Set<string>();
        const runTails = async () => {
          for (const { i, tail } of waiting) outcomes[i] = { ok: true, value: await tail.finish() };
          waiting = [];
          held.clear();
        };
        for (const [i, p] of batch.entries()) {
          const subjects = p.subjects;
          if (subjects === undefined || subjects.some((s) => held.has(s))) await runTails();
          const w: WriteState = { savepoint: false, bare: false };
          const guarded = watched(tx, w, async (st) => {
            if (w.savepoint || onlyReads(st)) return;
            await tx.run('SAVEPOINT lockstep_write');
            w.savepoint = true;
          });
          const unguarded = watched(tx, w, (st) => {
            if (!w.savepoint && !onlyReads(st)) w.bare = true;
          });
          const tentative = watched(tx, w, () => undefined);
          const changedUnguarded = () => {
            if (!w.savepoint) w.bare = true;
          };
          try {
            const staged = await p.run(guarded, { locks, memo, unguarded, tentative, changedUnguarded, frame });
            // An organization-wide write's tail runs at once (every later write would have to
            // wait for it anyway).
            const value = subjects === undefined ? await settle(staged) : staged;
            if (value instanceof Tail) {
              waiting.push({ i, tail: value });
              for (const s of subjects!) held.add(s);
            } else outcomes[i] = { ok: true, value };
          } catch (error) {
            // A rejected write (bad input, unknown object…) rolls back alone; anything else (a
            // lost connection, a deadlock) aborts the batch and every write in it is retried alone,
            // and so does a rejected one that changed something no savepoint covers — or a tail
            // that fails, whose write's body is past rolling back.
            if (!rejected(error) || w.bare) throw error;
            if (w.savepoint) await tx.run('ROLLBACK TO SAVEPOINT lockstep_write');
            outcomes[i] = { ok: false, error };
          }
        }
        await runTails();
      });
    } catch {
      for (const p of batch) await alone(p);
      return;
    }
    batch.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve(o.value);
      else p.reject(o.error);
    });
  }

  return {
    submit<T>(org: string, subjects: readonly string[] | undefined, run: Run<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        let queue = queues.get(org);
        if (!queue) queues.set(org, (queue = []));
        queue.push({ subjects, run, resolve, reject } as Pending<unknown>);
        if (!busy.has(org)) void drain(org);
      });
    },
  };
}

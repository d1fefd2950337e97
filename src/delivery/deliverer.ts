/**
 * The delivery engine, on the queue discipline of reconciliation jobs: the outbox (deliveries) is
 * in the database, work is claimed in lanes — one lane per (target, subject partition), one owner
 * per lane (lease, FOR UPDATE SKIP LOCKED on PostgreSQL) — so per-subject order holds across any
 * number of processes, and a process that dies mid-lane loses nothing: its lease lapses and the
 * next owner re-sends the unacknowledged message with the same webhook-id / jti (at least once).
 *
 * Revocations first: lanes with a pending revocation are claimed before lanes with only grants,
 * and inside a lane a revocation overtakes grants that do not concern its subjects (nextInLane).
 * A failed attempt backs the lane off (exponential, jittered); after `maxAttempts` the message is
 * parked (counted, visible, re-sent by a replay) and the lane moves on. A 410 disables the target.
 * A slow target never delays another: at most `perTarget` of its lanes are in flight in this
 * process, each attempt is bounded by `timeoutMs`, and the other slots keep serving other targets.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { deliveryBackoffMs, nextInLane, type EventType } from '../domain/delivery.ts';
import { sql, type Database } from '../storage/database.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { KeyStore } from './signing.ts';
import { sendMessage, type OutMessage, type Outcome } from './send.ts';
import type { TargetRow } from './targets.ts';
import type { Lookup } from './url-guard.ts';
import { pollLoop } from '../runtime/poll-loop.ts';
import type { Tracing } from '../observability/tracing.ts';

export interface DeliveryRetry {
  maxAttempts: number;
  baseMs: number;
  maxMs: number;
}
export const DEFAULT_DELIVERY_RETRY: DeliveryRetry = { maxAttempts: 10, baseMs: 250, maxMs: 60_000 };

export interface DelivererOptions {
  db: Database;
  keys: KeyStore;
  issuer: () => string;
  allowPrivate: boolean;
  lookup?: Lookup;
  owner?: string;
  now?: () => number;
  /** Lanes in flight at once in this process. */
  concurrency?: number;
  /** Lanes of one target in flight at once in this process. */
  perTarget?: number;
  timeoutMs?: number;
  leaseMs?: number;
  pollMs?: number;
  /** Messages one lane claim delivers before the lane is handed back (fairness). */
  messagesPerClaim?: number;
  retry?: DeliveryRetry;
  metrics?: Metrics | undefined;
  onEvent?: (e: DeliveryEvent) => void;
  /** A span per delivery attempt, a child of the span that recorded the event (tracing on). */
  tracing?: Tracing | undefined;
}

export type DeliveryEvent =
  | { type: 'sent'; target: string; revision: number; seq: number; outcome: Outcome; ms: number }
  | { type: 'parked' | 'disabled' | 'lost'; target: string; revision?: number; seq?: number }
  /** An error the engine survived; `target` and `part` name the lane it concerned, if any. */
  | { type: 'error'; error: unknown; target?: string; part?: number };

export interface Deliverer {
  readonly owner: string;
  start(): void;
  wake(): void;
  stop(): Promise<void>;
  /** Runs until nothing is due (tests): lanes in backoff are not waited for. */
  drain(): Promise<void>;
}

interface PendingRow {
  revision: number;
  seq: number;
  generation: number;
  priority: number;
  attempts: number;
  type: EventType;
  subjects: string;
  body: string;
  decided_at: number;
  enforced_at: number;
  created_at: number;
  trace_parent: string | null;
}

export function createDeliverer(o: DelivererOptions): Deliverer {
  const db = o.db;
  const owner = o.owner ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const now = o.now ?? Date.now;
  const concurrency = o.concurrency ?? 16;
  const perTarget = o.perTarget ?? 4;
  const timeoutMs = o.timeoutMs ?? 5000;
  const leaseMs = o.leaseMs ?? Math.max(10_000, timeoutMs * 3);
  const pollMs = o.pollMs ?? 250;
  const perClaim = o.messagesPerClaim ?? 100;
  const retry = o.retry ?? DEFAULT_DELIVERY_RETRY;
  const emit = o.onEvent ?? (() => undefined);
  const sendEnv = { keys: o.keys, issuer: o.issuer, allowPrivate: o.allowPrivate, lookup: o.lookup, timeoutMs, now };
  const lockLane = db.dialect === 'postgres' ? ' FOR UPDATE OF l SKIP LOCKED' : '';

  const inflight = new Map<string, number>(); // target → lanes in flight here
  let active = 0;
  /** Lanes may be claimed: the loop runs, or `drain` does. */
  let running = false;
  const lanes = new Set<Promise<void>>();

  async function claimLane(): Promise<{ target: string; part: number } | undefined> {
    const full = [...inflight].filter(([, n]) => n >= perTarget).map(([t]) => t);
    const t = now();
    return db.transaction(async (tx) => {
      const notIn = full.length ? sql`AND l.target_id NOT IN (${sql.join(full)})` : sql.empty;
      const pick = await tx.get<{ target_id: string; part: number }>(
        sql`SELECT l.target_id, l.part FROM delivery_lanes l JOIN targets t ON t.id = l.target_id
             WHERE t.state = 'active' AND t.delivery = 'push' AND l.run_at <= ${t} AND (l.owner IS NULL OR l.lease_expires_at < ${t}) ${notIn}
               AND EXISTS (SELECT 1 FROM deliveries d WHERE d.target_id = l.target_id AND d.part = l.part AND d.state = 'pending')
             ORDER BY (SELECT MIN(d.priority) FROM deliveries d WHERE d.target_id = l.target_id AND d.part = l.part AND d.state = 'pending'),
                      l.run_at, l.target_id, l.part
             LIMIT 1${sql.raw(lockLane)}`,
      );
      if (!pick) return undefined;
      await tx.run('UPDATE delivery_lanes SET owner = $3, lease_expires_at = $4 WHERE target_id = $1 AND part = $2', [pick.target_id, pick.part, owner, t + leaseMs]);
      return { target: pick.target_id, part: Number(pick.part) };
    });
  }

  const OWNS = 'EXISTS (SELECT 1 FROM delivery_lanes l WHERE l.target_id = $1 AND l.part = $2 AND l.owner = $3)';

  async function release(target: string, part: number, runAt?: number) {
    const backoff = runAt === undefined ? sql.empty : sql`, run_at = ${runAt}`;
    await db.run(sql`UPDATE delivery_lanes SET owner = NULL, lease_expires_at = NULL${backoff} WHERE target_id = ${target} AND part = ${part} AND owner = ${owner}`);
  }

  const PENDING = `SELECT d.revision, d.seq, d.generation, d.priority, d.attempts, e.type, e.subjects, e.body, e.decided_at, e.enforced_at, e.created_at, e.trace_parent
                     FROM deliveries d JOIN delivery_events e ON e.org_id = d.org_id AND e.revision = d.revision AND e.seq = d.seq
                    WHERE d.target_id = $1 AND d.part = $2 AND d.state = 'pending'
                    ORDER BY d.revision, d.seq, d.generation LIMIT 200`;
  type Pending = Omit<PendingRow, 'subjects'> & { subjects: string[] };

  /**
   * Delivers a claimed lane's messages one at a time, up to `perClaim`. The lane's pending rows are
   * read once and consumed in memory (re-read when exhausted); each acknowledgement is one fenced
   * UPDATE, the target's health is written once at the end, the lease renewed as it goes.
   */
  async function runLane(target: string, part: number) {
    let backoffUntil: number | undefined;
    let acked = 0;
    let lastAck = 0;
    let leaseRenewedAt = now();
    try {
      const t = await db.get<TargetRow>("SELECT * FROM targets WHERE id = $1 AND state = 'active'", [target]);
      if (!t) return;
      let cache: Pending[] = [];
      let checkedOtherLanes = false;
      for (let n = 0; n < perClaim && running; n++) {
        if (cache.length === 0) {
          cache = (await db.all<PendingRow>(PENDING, [target, part])).map((r) => ({ ...r, revision: Number(r.revision), priority: Number(r.priority), subjects: JSON.parse(r.subjects) as string[] }));
          if (cache.length === 0) return;
        }
        const next = nextInLane(cache)!;
        // Revocations first across the target's lanes too: a lane that is down to grants hands
        // itself back while another lane of the target still holds a revocation.
        if (next.priority > 0 && n > 0 && !checkedOtherLanes) {
          checkedOtherLanes = true;
          const other = await db.get("SELECT 1 AS x FROM deliveries WHERE target_id = $1 AND part <> $2 AND state = 'pending' AND priority = 0 LIMIT 1", [target, part]);
          if (other) return;
        }
        const body = JSON.parse(next.body) as Pick<OutMessage, 'subjects' | 'access'>;
        const m: OutMessage = {
          org: t.org_id,
          revision: next.revision,
          seq: Number(next.seq),
          generation: Number(next.generation),
          type: next.type,
          subjects: body.subjects,
          access: body.access,
          decidedAt: Number(next.decided_at),
          enforcedAt: Number(next.enforced_at),
          createdAt: Number(next.created_at),
        };
        const sentAt = now();
        const span = o.tracing?.enabled
          ? o.tracing.start('lockstep.delivery.send', { 'lockstep.org': m.org, 'lockstep.target': target, 'lockstep.revision': m.revision, 'lockstep.event.seq': m.seq, 'lockstep.event.type': m.type }, next.trace_parent)
          : undefined;
        const outcome = await sendMessage(t, m, sendEnv);
        span?.end({ 'lockstep.delivery.outcome': outcome.kind });
        const doneAt = now();
        emit({ type: 'sent', target, revision: m.revision, seq: m.seq, outcome, ms: doneAt - sentAt });
        const key = [target, part, owner, m.revision, m.seq, m.generation];
        if (outcome.kind === 'acked') {
          const n1 = await db.run(
            `UPDATE deliveries SET state = 'acked', attempts = attempts + 1, delivered_at = $7, acked_at = $8, last_error = NULL
              WHERE target_id = $1 AND part = $2 AND revision = $4 AND seq = $5 AND generation = $6 AND state = 'pending' AND ${OWNS}`,
            [...key, sentAt, doneAt],
          );
          o.metrics?.targetDeliveries.inc({ target, outcome: 'acked' });
          o.metrics?.targetLag.observe({ target, type: m.type }, (doneAt - m.decidedAt) / 1000);
          if (n1 === 0) {
            emit({ type: 'lost', target, revision: m.revision, seq: m.seq });
            return;
          }
          acked++;
          lastAck = doneAt;
          cache.splice(cache.indexOf(next), 1);
          if (doneAt - leaseRenewedAt > leaseMs / 3) {
            leaseRenewedAt = doneAt;
            await db.run('UPDATE delivery_lanes SET lease_expires_at = $4 WHERE target_id = $1 AND part = $2 AND owner = $3', [target, part, owner, doneAt + leaseMs]);
          }
          continue;
        }
        if (outcome.kind === 'gone') {
          await db.transaction(async (tx) => {
            await tx.run(
              "UPDATE targets SET state = 'disabled', disabled_at = $2, disabled_reason = $3, last_error = $3, last_error_at = $2 WHERE id = $1",
              [target, doneAt, 'the target answered 410 Gone'],
            );
            await tx.run("UPDATE deliveries SET state = 'dropped', last_error = 'target disabled (410)' WHERE target_id = $1 AND state = 'pending'", [target]);
          });
          o.metrics?.targetDeliveries.inc({ target, outcome: 'gone' });
          emit({ type: 'disabled', target });
          return;
        }
        const attempts = Number(next.attempts) + 1;
        const parked = attempts >= retry.maxAttempts;
        await db.transaction(async (tx) => {
          await tx.run(
            `UPDATE deliveries SET attempts = $7, delivered_at = $8, last_error = $9, state = $10
              WHERE target_id = $1 AND part = $2 AND revision = $4 AND seq = $5 AND generation = $6 AND state = 'pending' AND ${OWNS}`,
            [...key, attempts, sentAt, outcome.error, parked ? 'parked' : 'pending'],
          );
          await tx.run('UPDATE targets SET consecutive_failures = consecutive_failures + 1, last_error = $2, last_error_at = $3 WHERE id = $1', [target, outcome.error, doneAt]);
        });
        o.metrics?.targetDeliveries.inc({ target, outcome: parked ? 'parked' : 'failed' });
        if (parked) {
          emit({ type: 'parked', target, revision: m.revision, seq: m.seq });
          cache.splice(cache.indexOf(next), 1);
          continue;
        }
        backoffUntil = doneAt + deliveryBackoffMs(attempts, retry.baseMs, retry.maxMs);
        return;
      }
    } finally {
      // Healthy again unless the claim ended on a failure (written by that failure's transaction).
      if (acked > 0 && backoffUntil === undefined) await db.run('UPDATE targets SET consecutive_failures = 0, last_ack_at = $2 WHERE id = $1', [target, lastAck]).catch((error) => emit({ type: 'error', error, target, part }));
      await release(target, part, backoffUntil).catch((error) => emit({ type: 'error', error, target, part }));
    }
  }

  /** Claims lanes while slots are free; returns how many were started. */
  async function fill(): Promise<number> {
    let started = 0;
    while (running && active < concurrency) {
      const lane = await claimLane();
      if (!lane) break;
      started++;
      active++;
      inflight.set(lane.target, (inflight.get(lane.target) ?? 0) + 1);
      const p: Promise<void> = runLane(lane.target, lane.part)
        .catch((error) => emit({ type: 'error', error, target: lane.target, part: lane.part }))
        .finally(() => {
          active--;
          const n = (inflight.get(lane.target) ?? 1) - 1;
          if (n <= 0) inflight.delete(lane.target);
          else inflight.set(lane.target, n);
          lanes.delete(p);
          d.wake();
        });
      lanes.add(p);
    }
    return started;
  }

  // Lanes that finish wake the loop, so between claims it sleeps until then or the poll interval.
  const poller = pollLoop({
    pollMs,
    step: async () => {
      await fill();
      return false;
    },
    onError: (error) => emit({ type: 'error', error }),
  });

  const d: Deliverer = {
    owner,
    start() {
      if (running) return;
      running = true;
      poller.start();
    },
    wake: () => poller.wake(),
    async stop() {
      running = false;
      await poller.stop();
      await Promise.all([...lanes]);
    },
    async drain() {
      const wasRunning = running;
      running = true;
      try {
        for (;;) {
          const started = await fill();
          if (started === 0 && lanes.size === 0) return;
          if (lanes.size > 0) await Promise.race([...lanes]);
        }
      } finally {
        running = wasRunning;
      }
    },
  };
  return d;
}

/**
 * What the targets did with a change: per target, its deliveries' state, attempts and times, for
 * the receipt; and revoke-and-confirm, which waits (bounded) for the critical targets' acks.
 *
 * A change's events are those it produced at commit (revision = the change, no job) plus those the
 * batches of its reconciliation job produced (job_id = its job). Only the first delivery counts
 * (generation 0); replays are re-sends, not the change's delivery.
 */
import { sql, type Sql } from '../storage/database.ts';

export interface TargetDelivery {
  id: string;
  name: string | null;
  critical: boolean;
  events: number;
  status: 'acked' | 'pending' | 'parked' | 'dropped';
  attempts: number;
  deliveredAt: string | null;
  ackedAt: string | null;
}

export interface ChangeDelivery {
  targets: TargetDelivery[];
  /** max(ack) − decidedAt over the critical targets, once all of them acknowledged (revocations). */
  revocationWindowMs: number | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

interface Agg {
  revision: number;
  job_id: string | null;
  target_id: string;
  name: string | null;
  critical: number | null;
  events: number;
  acked: number;
  parked: number;
  dropped: number;
  attempts: number;
  delivered: number | null;
  acked_at: number | null;
}

function toTargetDelivery(rows: Agg[]): TargetDelivery[] {
  const byTarget = new Map<string, Agg[]>();
  for (const r of rows) byTarget.set(r.target_id, [...(byTarget.get(r.target_id) ?? []), r]);
  return [...byTarget.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, rs]) => {
      const sum = (f: (r: Agg) => number | null) => rs.reduce((n, r) => n + Number(f(r) ?? 0), 0);
      const max = (f: (r: Agg) => number | null) => rs.reduce<number | null>((m, r) => (f(r) === null ? m : Math.max(m ?? -Infinity, Number(f(r)))), null);
      const events = sum((r) => r.events);
      const acked = sum((r) => r.acked);
      const status = acked === events ? 'acked' : sum((r) => r.parked) > 0 ? 'parked' : sum((r) => r.dropped) > 0 ? 'dropped' : 'pending';
      return {
        id,
        name: rs[0]!.name,
        critical: Number(rs[0]!.critical ?? 0) === 1,
        events,
        status,
        attempts: sum((r) => r.attempts),
        deliveredAt: iso(max((r) => r.delivered)),
        ackedAt: status === 'acked' ? iso(max((r) => r.acked_at)) : null,
      };
    });
}

/**
 * Per change of `changes` (revision and job), what each target did with its events: one query for
 * the whole page, grouped by the event's revision, job and target.
 */
export async function deliveryOfChanges(db: Sql, org: string, changes: readonly { revision: number; jobId: string | null }[]): Promise<Map<number, TargetDelivery[]>> {
  const out = new Map<number, TargetDelivery[]>(changes.map((c) => [c.revision, []]));
  if (changes.length === 0) return out;
  const jobs = [...new Set(changes.map((c) => c.jobId).filter((j): j is string => j !== null))];
  const byJob = jobs.length ? sql` OR e.job_id IN (${sql.join(jobs)})` : sql.empty;
  const rows = await db.all<Agg>(
    sql`SELECT e.revision, e.job_id, d.target_id, t.name, t.critical, COUNT(*) AS events,
               SUM(CASE WHEN d.state = 'acked' THEN 1 ELSE 0 END) AS acked,
               SUM(CASE WHEN d.state = 'parked' THEN 1 ELSE 0 END) AS parked,
               SUM(CASE WHEN d.state = 'dropped' THEN 1 ELSE 0 END) AS dropped,
               SUM(d.attempts) AS attempts, MAX(d.delivered_at) AS delivered, MAX(d.acked_at) AS acked_at
          FROM deliveries d
          JOIN delivery_events e ON e.org_id = d.org_id AND e.revision = d.revision AND e.seq = d.seq
          LEFT JOIN targets t ON t.id = d.target_id
         WHERE d.org_id = ${org} AND d.generation = 0
           AND ((e.job_id IS NULL AND e.revision IN (${sql.join(changes.map((c) => c.revision))}))${byJob})
         GROUP BY e.revision, e.job_id, d.target_id, t.name, t.critical`,
  );
  for (const c of changes) {
    const mine = rows.filter((r) => (r.job_id === null && Number(r.revision) === c.revision) || (c.jobId !== null && r.job_id === c.jobId));
    out.set(c.revision, toTargetDelivery(mine));
  }
  return out;
}

export async function deliveryOfChange(db: Sql, org: string, revision: number, jobId: string | null): Promise<TargetDelivery[]> {
  return (await deliveryOfChanges(db, org, [{ revision, jobId }])).get(revision)!;
}

/** The revocation window of a change from its targets' deliveries (null until complete). */
export function revocationWindow(c: { direction: string; decidedAt: number; converged: boolean }, targets: readonly TargetDelivery[]): number | null {
  const critical = targets.filter((t) => t.critical);
  const revokes = c.direction === 'revoke' || c.direction === 'both';
  if (!revokes || !c.converged || critical.length === 0 || !critical.every((t) => t.status === 'acked')) return null;
  return Math.max(...critical.map((t) => Date.parse(t.ackedAt!))) - c.decidedAt;
}

interface ChangeHead {
  job_id: string | null;
  decided_at: number;
  effective_at: number | null;
  direction: string;
}

/**
 * The change's delivery, and its revocation window: the last critical target's ack minus the
 * decision, once the read model converged (no batch left to produce events) and every critical
 * target that got events acknowledged them all.
 */
export async function changeDelivery(db: Sql, org: string, revision: number): Promise<ChangeDelivery | null> {
  const c = await db.get<ChangeHead>('SELECT job_id, decided_at, effective_at, direction FROM changes WHERE org_id = $1 AND revision = $2', [org, revision]);
  if (!c) return null;
  const targets = await deliveryOfChange(db, org, revision, c.job_id);
  return { targets, revocationWindowMs: revocationWindow({ direction: c.direction, decidedAt: Number(c.decided_at), converged: c.effective_at !== null }, targets) };
}

export interface Confirmation {
  id: string;
  name: string;
  confirmed: boolean;
  ackedAt: string | null;
}

/**
 * Waits up to `budgetMs` for every active critical target to acknowledge the change's events
 * (a target that was sent nothing — the change revoked nothing it holds — is confirmed at once,
 * once the change converged). Never throws for an unconfirmed target: the write is committed.
 */
export async function confirmChange(db: Sql, org: string, revision: number, budgetMs: number, wake: () => void, pollMs = 10): Promise<Confirmation[]> {
  const deadline = Date.now() + budgetMs;
  const criticals = await db.all<{ id: string; name: string }>(
    "SELECT id, name FROM targets WHERE org_id = $1 AND critical = 1 AND state = 'active' AND from_revision < $2 ORDER BY created_at, id",
    [org, revision],
  );
  for (;;) {
    wake();
    const c = await db.get<ChangeHead>('SELECT job_id, decided_at, effective_at, direction FROM changes WHERE org_id = $1 AND revision = $2', [org, revision]);
    const delivered = c ? await deliveryOfChange(db, org, revision, c.job_id) : [];
    const result = criticals.map((t) => {
      const d = delivered.find((x) => x.id === t.id);
      const confirmed = c?.effective_at !== null && c !== undefined && (d === undefined || d.status === 'acked');
      return { id: t.id, name: t.name, confirmed, ackedAt: d?.ackedAt ?? null };
    });
    if (result.every((r) => r.confirmed) || Date.now() >= deadline) return result;
    await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(1, deadline - Date.now()))));
  }
}

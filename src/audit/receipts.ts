/**
 * Receipts and the SLO report, read from the change log: when each change was decided, when it
 * became effective in the read model, its lag against its SLO, and the job that carried it.
 */
import { notFound } from '../domain/errors.ts';
import { parseRfc3339 } from '../domain/time.ts';
import { tierOfRank, verifies, type Direction, type RiskTier, type VerifyMode } from '../domain/model.ts';
import { sql, type Sql } from '../storage/database.ts';
import type { Change, ChangeQuery, SloRow } from '../domain/contract.ts';

interface ChangeRow {
  revision: number;
  kind: string;
  direction: Direction;
  tier: number | null;
  mode: 'sync' | 'async';
  actor: string | null;
  request_id: string | null;
  body: string;
  decided_at: number;
  effective_at: number | null;
  rows_added: number;
  rows_removed: number;
  slo_ms: number | null;
  job_scope: string | null;
  job_id: string | null;
  job_state: string | null;
  committed_at: number | null;
}

/**
 * When checks began answering as the change says. A revocation of a tier that provenance
 * verification covers is enforced when its policy write commits, whatever the read model does
 * later; anything else (grants, unverified tiers) is enforced once the read model has it.
 */
export function enforcedAtOf(r: Pick<ChangeRow, 'direction' | 'tier' | 'committed_at' | 'decided_at' | 'effective_at'>, verify: VerifyMode): number | null {
  const committed = r.committed_at === null ? Number(r.decided_at) : Number(r.committed_at);
  if (r.direction === 'none') return committed;
  if (r.direction === 'grant') return r.effective_at === null ? null : Number(r.effective_at);
  const tier = tierOfRank(r.tier) ?? 'standard';
  if (verifies(verify, tier)) return committed;
  return r.effective_at === null ? null : Number(r.effective_at);
}

const SELECT = `SELECT c.*, j.state AS job_state FROM changes c LEFT JOIN jobs j ON j.id = c.job_id`;

export function toReceipt(r: ChangeRow, now: number, verify: VerifyMode = 'always'): Change {
  const decided = Number(r.decided_at);
  const effective = r.effective_at === null ? null : Number(r.effective_at);
  const enforced = enforcedAtOf(r, verify);
  // The SLO of a change is about enforcement (what checks answer); convergence has its own figure.
  const lagMs = enforced === null ? null : Math.max(0, enforced - decided);
  const slo = r.slo_ms === null ? null : Number(r.slo_ms);
  // Met: effective within the SLO. Missed: effective late, or still pending past it. Unknown: pending within it.
  const sloMet = slo === null ? null : lagMs !== null ? lagMs <= slo : now - decided > slo ? false : null;
  return {
    revision: Number(r.revision),
    kind: r.kind,
    direction: r.direction,
    tier: tierOfRank(r.tier),
    mode: r.mode,
    status: enforced === null ? 'pending' : 'effective',
    actor: r.actor,
    requestId: r.request_id,
    body: JSON.parse(r.body),
    decidedAt: new Date(decided).toISOString(),
    effectiveAt: effective === null ? null : new Date(effective).toISOString(),
    enforcedAt: enforced === null ? null : new Date(enforced).toISOString(),
    convergedAt: effective === null ? null : new Date(effective).toISOString(),
    convergenceLagMs: effective === null ? null : effective - decided,
    lagMs,
    sloMs: slo,
    sloMet,
    rowsAdded: Number(r.rows_added),
    rowsRemoved: Number(r.rows_removed),
    job: r.job_id === null ? null : { id: r.job_id, scope: r.job_scope!, state: r.job_state },
  };
}

export async function getReceipt(db: Sql, org: string, revision: number, now: number, verify: VerifyMode = 'always'): Promise<Change> {
  const row = await db.get<ChangeRow>(`${SELECT} WHERE c.org_id = $1 AND c.revision = $2`, [org, revision]);
  if (!row) throw notFound('revision', 'change', String(revision));
  return toReceipt(row, now, verify);
}

const parseTime = (v: string | undefined, field: string) => (v === undefined ? undefined : parseRfc3339(v, field));

/** Newest first; `next` is the cursor for the following page (null on the last). */
export async function listReceipts(db: Sql, org: string, q: ChangeQuery, now: number, verify: VerifyMode = 'always'): Promise<{ changes: Change[]; next: number | null }> {
  const limit = Math.min(Math.max(q.limit ?? 50, 1), 1000);
  const since = parseTime(q.since, 'since') ?? 0;
  const until = parseTime(q.until, 'until') ?? Number.MAX_SAFE_INTEGER;
  const dirs = q.direction === undefined ? ['grant', 'revoke', 'both', 'none'] : q.direction === 'revoke' ? ['revoke', 'both'] : q.direction === 'grant' ? ['grant', 'both'] : [q.direction];
  const rows = await db.all<ChangeRow>(
    sql`${sql.raw(SELECT)} WHERE c.org_id = ${org} AND c.revision < ${q.before ?? Number.MAX_SAFE_INTEGER}
        AND c.decided_at >= ${since} AND c.decided_at <= ${until} AND c.direction IN (${sql.join(dirs)})
      ORDER BY c.revision DESC LIMIT ${limit + 1}`,
  );
  const page = rows.slice(0, limit).map((r) => toReceipt(r, now, verify));
  return { changes: page, next: rows.length > limit ? page[page.length - 1]!.revision : null };
}

/** The window's changes at most this many are read (newest first); the report says if it was cut. */
const SLO_SAMPLE_CAP = 200_000;

/**
 * Per direction × tier: lags are enforcement lags (enforcedAtOf), as on the receipts. A change still
 * pending counts with its age so far — its lag will be at least that — so a change stuck for 20 s
 * raises p99 instead of leaving it at the 26 ms of the changes that did arrive; `lowerBound` says
 * the figures include such ages (they can only grow), `oldestPendingMs` is the largest of them.
 */
export async function sloReport(db: Sql, org: string, windowSeconds: number, now: number, verify: VerifyMode = 'always') {
  const from = now - windowSeconds * 1000;
  const rows = await db.all<{ direction: Direction; tier: number; decided_at: number; effective_at: number | null; committed_at: number | null; slo_ms: number | null }>(
    `SELECT direction, tier, decided_at, effective_at, committed_at, slo_ms FROM changes
      WHERE org_id = $1 AND decided_at >= $2 AND direction <> 'none' AND tier IS NOT NULL
      ORDER BY revision DESC LIMIT $3`,
    [org, from, SLO_SAMPLE_CAP + 1],
  );
  type Group = { direction: Direction; tier: RiskTier; lags: number[]; pending: number; oldestPending: number | null; breaches: number; slo: number | null };
  const groups = new Map<string, Group>();
  for (const r of rows.slice(0, SLO_SAMPLE_CAP)) {
    const tier = tierOfRank(r.tier)!;
    const key = `${r.direction}|${tier}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { direction: r.direction, tier, lags: [], pending: 0, oldestPending: null, breaches: 0, slo: null }));
    const slo = r.slo_ms === null ? null : Number(r.slo_ms);
    g.slo = g.slo ?? slo;
    const enforced = enforcedAtOf(r, verify);
    const age = Math.max(0, now - Number(r.decided_at));
    const lag = enforced === null ? age : Math.max(0, enforced - Number(r.decided_at));
    if (enforced === null) {
      g.pending++;
      g.oldestPending = Math.max(g.oldestPending ?? 0, age);
    }
    g.lags.push(lag);
    if (slo !== null && lag > slo) g.breaches++;
  }
  const q = (s: number[], p: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! : null);
  const out: SloRow[] = [...groups.values()]
    .map((g) => {
      const s = g.lags.sort((x, y) => x - y);
      return {
        direction: g.direction, tier: g.tier, count: s.length, pending: g.pending,
        p50Ms: q(s, 0.5), p99Ms: q(s, 0.99), maxMs: s.length ? s[s.length - 1]! : null,
        lowerBound: g.pending > 0, oldestPendingMs: g.oldestPending, sloMs: g.slo, breaches: g.breaches,
      };
    })
    .sort((x, y) => x.direction.localeCompare(y.direction) || x.tier.localeCompare(y.tier));
  return { from: new Date(from).toISOString(), to: new Date(now).toISOString(), windowSeconds, truncated: rows.length > SLO_SAMPLE_CAP, rows: out };
}

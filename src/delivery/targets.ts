/**
 * Targets of an organization: the systems that receive its effective changes. Creating one starts
 * the organization's event stream (if it had none) and the target's lanes, in one transaction under
 * the organization's lock, exclusive (src/storage/locks.ts), so the target receives every change committed after it and none before.
 */
import { randomBytes } from 'node:crypto';
import { LockstepError, notFound, validation } from '../domain/errors.ts';
import { PARTITIONS } from '../domain/delivery.ts';
import { parseName, parseOrgId } from '../domain/model.ts';
import { sql, type Database, type Sql } from '../storage/database.ts';
import { ensureDiffTriggers, withTriggerRetry } from '../storage/diff-triggers.ts';
import { lockForWrite } from '../storage/locks.ts';
import { keyAfter } from '../storage/keyset.ts';
import { decodeCursor, pageLimit, pageOf, type PageQuery } from '../domain/page.ts';
import { newPollToken, newWebhookSecret } from './signing.ts';
import { checkTargetUrl, type Lookup } from './url-guard.ts';

export const TARGET_KINDS = ['webhook', 'ssf'] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];
/** Longest grace period of a rotated secret. */
export const MAX_GRACE_SECONDS = 7 * 24 * 3600;
export const DEFAULT_GRACE_SECONDS = 24 * 3600;
/** A target that failed this many times in a row is shown as failing. */
export const FAILING_AFTER = 1;

export interface TargetRow {
  org_id: string;
  id: string;
  name: string;
  kind: TargetKind;
  delivery: 'push' | 'poll';
  url: string | null;
  critical: number;
  state: 'active' | 'disabled';
  secret: string;
  previous_secret: string | null;
  previous_until: number | null;
  from_revision: number;
  created_at: number;
  disabled_at: number | null;
  disabled_reason: string | null;
  consecutive_failures: number;
  last_error: string | null;
  last_error_at: number | null;
  last_ack_at: number | null;
}

export interface Target {
  id: string;
  name: string;
  kind: TargetKind;
  delivery: 'push' | 'poll';
  url: string | null;
  critical: boolean;
  state: 'active' | 'failing' | 'disabled';
  disabledReason: string | null;
  fromRevision: number;
  createdAt: string;
  backlog: number;
  parked: number;
  acked: number;
  lagMs: { p50: number | null; p99: number | null };
  lastError: string | null;
  lastErrorAt: string | null;
  lastAckAt: string | null;
  secretRotation: { previousValidUntil: string } | null;
}

export interface TargetEnv {
  db: Database;
  now: () => number;
  allowPrivate: boolean;
  lookup?: Lookup;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());
const newTargetId = () => `tgt_${randomBytes(9).toString('base64url')}`;
const LAG_SAMPLE = 1000;

export function parseTargetId(v: unknown, field = 'id'): string {
  if (typeof v !== 'string' || !/^tgt_[A-Za-z0-9_-]{1,64}$/.test(v)) throw validation(field, `${field} must be a target id (tgt_…)`);
  return v;
}

async function getRow(db: Sql, org: string, id: string): Promise<TargetRow> {
  const row = await db.get<TargetRow>('SELECT * FROM targets WHERE org_id = $1 AND id = $2', [org, id]);
  if (!row) throw notFound('id', 'target', id);
  return row;
}

/** Valid secrets of a target now: the current one, and the previous one during its grace period. */
export function validSecrets(t: Pick<TargetRow, 'secret' | 'previous_secret' | 'previous_until'>, now: number): string[] {
  return t.previous_secret && t.previous_until !== null && Number(t.previous_until) > now ? [t.secret, t.previous_secret] : [t.secret];
}

async function describe(db: Sql, t: TargetRow, now: number): Promise<Target> {
  const counts = await db.get<{ backlog: number; parked: number; acked: number }>(
    `SELECT SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS backlog, SUM(CASE WHEN state = 'parked' THEN 1 ELSE 0 END) AS parked,
            SUM(CASE WHEN state = 'acked' THEN 1 ELSE 0 END) AS acked
       FROM deliveries WHERE target_id = $1`,
    [t.id],
  );
  // Delivery lag (event decided → target acknowledged) over the most recent acknowledgements.
  const lags = (
    await db.all<{ lag: number }>(
      `SELECT d.acked_at - e.decided_at AS lag FROM deliveries d JOIN delivery_events e ON e.org_id = d.org_id AND e.revision = d.revision AND e.seq = d.seq
        WHERE d.target_id = $1 AND d.state = 'acked' ORDER BY d.acked_at DESC LIMIT ${LAG_SAMPLE}`,
      [t.id],
    )
  )
    .map((r) => Number(r.lag))
    .sort((a, b) => a - b);
  const q = (p: number) => (lags.length ? lags[Math.min(lags.length - 1, Math.ceil(p * lags.length) - 1)]! : null);
  const state = t.state === 'disabled' ? 'disabled' : Number(t.consecutive_failures) >= FAILING_AFTER ? 'failing' : 'active';
  return {
    id: t.id,
    name: t.name,
    kind: t.kind,
    delivery: t.delivery,
    url: t.url,
    critical: Number(t.critical) === 1,
    state,
    disabledReason: t.disabled_reason,
    fromRevision: Number(t.from_revision),
    createdAt: iso(t.created_at)!,
    backlog: Number(counts?.backlog ?? 0),
    parked: Number(counts?.parked ?? 0),
    acked: Number(counts?.acked ?? 0),
    lagMs: { p50: q(0.5), p99: q(0.99) },
    lastError: t.last_error,
    lastErrorAt: iso(t.last_error_at),
    lastAckAt: iso(t.last_ack_at),
    secretRotation: t.previous_secret && t.previous_until !== null && Number(t.previous_until) > now ? { previousValidUntil: iso(t.previous_until)! } : null,
  };
}

function parseBool(v: unknown, field: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw validation(field, `${field} must be a boolean`);
  return v;
}

/**
 * Starts recording the organization's events (idempotent); called under the organization's lock,
 * exclusive (src/storage/locks.ts). The store's first stream creates the read model's diff triggers
 * in this transaction: run it with `withTriggerRetry` (docs/adr/0022-diff-triggers-only-with-streams.md).
 */
export async function ensureStream(tx: Sql, org: string, revision: number, now: number) {
  await tx.run('INSERT INTO event_streams (org_id, since_revision, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [org, revision, now]);
  await ensureDiffTriggers(tx);
}

export function createTargets(env: TargetEnv) {
  const { db, now } = env;

  async function lockOrg(tx: Sql, org: string): Promise<number> {
    // Organization-wide: no write or batch that decided (without a stream) to record nothing is in
    // flight while a stream starts (docs/adr/0017-subject-locks.md).
    await lockForWrite(tx, org);
    const row = await tx.get<{ revision: number }>(`SELECT revision FROM organizations WHERE id = $1${tx.forUpdate}`, [org]);
    if (!row) throw notFound('org', 'organization', org);
    return Number(row.revision);
  }

  return {
    async create(orgIn: string, body: { name?: unknown; kind?: unknown; url?: unknown; critical?: unknown; delivery?: unknown }): Promise<Target & { secret: string }> {
      const org = parseOrgId(orgIn);
      const name = parseName(body.name);
      if (name === null) throw validation('name', 'name is required');
      if (!TARGET_KINDS.includes(body.kind as TargetKind)) throw validation('kind', `kind must be one of ${TARGET_KINDS.join(', ')}`);
      const kind = body.kind as TargetKind;
      const delivery = body.delivery ?? 'push';
      if (delivery !== 'push' && delivery !== 'poll') throw validation('delivery', "delivery must be 'push' or 'poll'");
      if (delivery === 'poll' && kind !== 'ssf') throw validation('delivery', 'only ssf targets can be polled (RFC 8936)');
      if (delivery === 'poll' && body.url !== undefined) throw validation('url', 'a polled target has no url');
      const url = delivery === 'push' ? (await checkTargetUrl(body.url, env)).toString() : null;
      const critical = parseBool(body.critical, 'critical');
      const id = newTargetId();
      const secret = kind === 'webhook' ? newWebhookSecret() : newPollToken();
      const t = now();
      await withTriggerRetry(db, async (tx) => {
        const revision = await lockOrg(tx, org);
        await tx.run(
          `INSERT INTO targets (org_id, id, name, kind, delivery, url, critical, state, secret, from_revision, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, $10)`,
          [org, id, name, kind, delivery, url, critical ? 1 : 0, secret, revision, t],
        );
        for (let p = 0; p < PARTITIONS; p++) await tx.run('INSERT INTO delivery_lanes (target_id, part, run_at) VALUES ($1, $2, 0)', [id, p]);
        await ensureStream(tx, org, revision, t);
      });
      return { ...(await describe(db, await getRow(db, org, id), now())), secret };
    },

    /** Oldest first; paged when `q.limit` is given (`next`: the cursor of the following page). */
    async list(orgIn: string, q: PageQuery = {}): Promise<{ targets: Target[]; next: string | null }> {
      const org = parseOrgId(orgIn);
      const limit = pageLimit(q.limit);
      const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor, ['n', 's']);
      if (!(await db.get('SELECT 1 AS x FROM organizations WHERE id = $1', [org]))) throw notFound('org', 'organization', org);
      const rows = await db.all<TargetRow>(
        sql`SELECT * FROM targets WHERE org_id = ${org} ${after === undefined ? sql.empty : sql`AND ${keyAfter([sql`created_at`, sql`id`], after)}`}
             ORDER BY created_at, id ${limit === undefined ? sql.empty : sql`LIMIT ${limit + 1}`}`,
      );
      const page = pageOf(rows, limit, (r) => [Number(r.created_at), r.id]);
      return { targets: await Promise.all(page.items.map((r) => describe(db, r, now()))), next: page.next };
    },

    async get(orgIn: string, idIn: string): Promise<Target> {
      const org = parseOrgId(orgIn);
      return describe(db, await getRow(db, org, parseTargetId(idIn)), now());
    },

    async remove(orgIn: string, idIn: string): Promise<{ id: string; deleted: true; dropped: number }> {
      const org = parseOrgId(orgIn);
      const id = parseTargetId(idIn);
      const dropped = await db.transaction(async (tx) => {
        await getRow(tx, org, id);
        const n = await tx.run("UPDATE deliveries SET state = 'dropped' WHERE target_id = $1 AND state = 'pending'", [id]);
        await tx.run('DELETE FROM delivery_lanes WHERE target_id = $1', [id]);
        await tx.run('DELETE FROM targets WHERE org_id = $1 AND id = $2', [org, id]);
        return n;
      });
      return { id, deleted: true, dropped };
    },

    /** New secret; the previous one stays valid (webhooks are signed with both) for the grace period. */
    async rotateSecret(orgIn: string, idIn: string, body: { graceSeconds?: unknown } = {}): Promise<Target & { secret: string }> {
      const org = parseOrgId(orgIn);
      const id = parseTargetId(idIn);
      const grace = body.graceSeconds ?? DEFAULT_GRACE_SECONDS;
      if (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 0 || grace > MAX_GRACE_SECONDS) {
        throw validation('graceSeconds', `graceSeconds must be an integer 0-${MAX_GRACE_SECONDS}`);
      }
      const t = await getRow(db, org, id);
      const secret = t.kind === 'webhook' ? newWebhookSecret() : newPollToken();
      await db.run('UPDATE targets SET secret = $3, previous_secret = $4, previous_until = $5 WHERE org_id = $1 AND id = $2', [
        org,
        id,
        secret,
        grace > 0 ? t.secret : null,
        grace > 0 ? now() + grace * 1000 : null,
      ]);
      return { ...(await describe(db, await getRow(db, org, id), now())), secret };
    },

    /**
     * Re-delivers every recorded event of a revision after `fromRevision` as new messages (a new
     * generation: new webhook-id / jti, so a receiver that deduplicates still processes them).
     * A disabled target is re-enabled by a replay.
     */
    async replay(orgIn: string, idIn: string, body: { fromRevision?: unknown }): Promise<{ id: string; fromRevision: number; queued: number }> {
      const org = parseOrgId(orgIn);
      const id = parseTargetId(idIn);
      const from = body.fromRevision;
      if (typeof from !== 'number' || !Number.isInteger(from) || from < 0) throw validation('fromRevision', 'fromRevision must be a non-negative integer');
      const queued = await db.transaction(async (tx) => {
        await lockOrg(tx, org);
        const t = await getRow(tx, org, id);
        if (t.delivery === 'poll' && t.state === 'disabled') throw new LockstepError('CONFLICT', 'a disabled polled target cannot be replayed', { field: 'id' });
        await tx.run("UPDATE targets SET state = 'active', disabled_at = NULL, disabled_reason = NULL, consecutive_failures = 0 WHERE id = $1", [id]);
        await tx.run('UPDATE delivery_lanes SET run_at = 0 WHERE target_id = $1', [id]);
        return tx.run(
          `INSERT INTO deliveries (target_id, org_id, revision, seq, generation, part, priority, state, attempts, created_at)
           SELECT $1, e.org_id, e.revision, e.seq,
                  (SELECT COALESCE(MAX(d.generation), -1) + 1 FROM deliveries d WHERE d.target_id = $1 AND d.revision = e.revision AND d.seq = e.seq),
                  e.part, CASE WHEN e.type = 'access.granted' THEN 1 ELSE 0 END, 'pending', 0, $4
             FROM delivery_events e WHERE e.org_id = $2 AND e.revision > $3`,
          [id, org, from, now()],
        );
      });
      return { id, fromRevision: from, queued };
    },

    getRow: (org: string, id: string) => getRow(db, parseOrgId(org), parseTargetId(id)),
  };
}
export type Targets = ReturnType<typeof createTargets>;

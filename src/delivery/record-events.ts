/**
 * Turns the current transaction's read-model diff into delivery events and outbox rows, inside that
 * same transaction: a policy write's (sync fan-out) or a reconciliation batch's (async). Nothing is
 * lost: the events, their deliveries and the read-model change commit together or not at all.
 *
 * The diff comes from triggers on effective_assignments (one row per derivation inserted or
 * deleted). An entry (subject, role, resource) is revoked when it had a derivation before the
 * transaction and has none after; granted the other way round. "Before" is counted, not guessed:
 * derivations now − inserted + deleted. So losing one of two sources of an entry sends nothing.
 *
 * `revision` orders events: a write's own revision, or for a batch the organization's current
 * revision (read locking the organization's row to commit, the row a write's revision bump locks),
 * so a lane's (revision, seq) order is commit order and the target sees the read model's history
 * in the order it happened.
 */
import { buildMessages, type EntryChange } from '../domain/delivery.ts';
import { tierOfRank } from '../domain/model.ts';
import { sql, type Sql } from '../storage/database.ts';

export interface RecordSpec {
  org: string;
  /** The write's revision; omitted for a batch (the organization's current revision is used). */
  revision?: number;
  kind?: string;
  body?: unknown;
  decidedAt: number;
  enforcedAt: number;
  now: number;
  jobId?: string | null;
  /** Several jobs in one batch transaction: each subject's events name the job that carried it. */
  jobOf?: ReadonlyMap<string, string>;
  /** The span that recorded them (a write's or a batch's): each delivery becomes its child. */
  traceParent?: string | undefined;
  /**
   * Whether the organization records events, where the caller read it already in this transaction
   * under its write locks (streams start under the organization's, exclusive: src/delivery/targets.ts `ensureStream`).
   */
  recording?: boolean;
}

/** Change kinds that deprovision a subject (body.id names it): /v1 and SCIM (docs/directories.md). */
const DEPROVISIONING = new Set(['subject.deactivate', 'subject.delete', 'scim.user.deprovision', 'scim.user.delete']);

export function deprovisionedBy(kind: string | undefined, body: unknown): string[] {
  if (!kind || !DEPROVISIONING.has(kind)) return [];
  const id = (body as { id?: unknown } | null)?.id;
  return typeof id === 'string' ? [id] : [];
}

/** Returns the number of events written (0 when the organization records none). */
export async function recordEvents(tx: Sql, s: RecordSpec): Promise<number> {
  if (s.recording === false) return 0;
  if (s.recording === undefined && !(await tx.get('SELECT 1 AS x FROM event_streams WHERE org_id = $1', [s.org]))) return 0;
  const diff = await tx.all<{ subject_id: string; role: string; resource: string; net: number; now_n: number }>(
    `SELECT d.subject_id, d.role, d.resource, SUM(d.op) AS net,
            (SELECT COUNT(*) FROM effective_assignments e
              WHERE e.org_id = d.org_id AND e.subject_id = d.subject_id AND e.resource = d.resource AND e.role = d.role) AS now_n
       FROM effective_diff d WHERE d.org_id = $1
      GROUP BY d.org_id, d.subject_id, d.role, d.resource`,
    [s.org],
  );
  if (diff.length > 0) await tx.run('DELETE FROM effective_diff WHERE org_id = $1', [s.org]);
  const changes: EntryChange[] = [];
  for (const d of diff) {
    const now = Number(d.now_n);
    const before = now - Number(d.net);
    if (before > 0 && now === 0) changes.push({ subject: d.subject_id, role: d.role, resource: d.resource, op: 'revoked' });
    else if (before === 0 && now > 0) changes.push({ subject: d.subject_id, role: d.role, resource: d.resource, op: 'granted' });
  }
  const deprovisioned = deprovisionedBy(s.kind, s.body);
  if (changes.length === 0 && deprovisioned.length === 0) return 0;

  const roles = [...new Set(changes.map((c) => c.role))];
  const info = new Map<string, { permissions: string[]; tier: string | null }>(roles.map((r) => [r, { permissions: [], tier: null }]));
  if (roles.length > 0) {
    const rows = await tx.all<{ role: string; permission: string; risk: number }>(
      sql`SELECT rp.role, rp.permission, p.risk FROM role_permissions rp JOIN permissions p ON p.org_id = rp.org_id AND p.slug = rp.permission
           WHERE rp.org_id = ${s.org} AND rp.role IN (${sql.join(roles)}) ORDER BY rp.role, rp.permission`,
    );
    const rank = new Map<string, number>();
    for (const r of rows) {
      info.get(r.role)!.permissions.push(r.permission);
      rank.set(r.role, Math.max(rank.get(r.role) ?? 0, Number(r.risk)));
    }
    for (const [role, rk] of rank) info.get(role)!.tier = tierOfRank(rk);
  }
  // Grouped in place: copying the group's list on every change made a 90k-row clean-up quadratic.
  const byJob = new Map<string | null, EntryChange[]>();
  for (const c of changes) {
    const j = s.jobOf?.get(c.subject) ?? s.jobId ?? null;
    const list = byJob.get(j);
    if (list) list.push(c);
    else byJob.set(j, [c]);
  }
  if (byJob.size === 0) byJob.set(s.jobId ?? null, []);
  const messages = [...byJob].flatMap(([job, cs], i) =>
    buildMessages(cs, (r) => info.get(r)!, i === 0 ? deprovisioned : []).map((m) => ({ ...m, job })),
  );

  // A batch's events take the organization's current revision, read locking its row to commit (as a
  // write's revision bump does): batches of different subjects run side by side, and the row orders
  // their numbering as their commits — no two number after the same MAX(seq), none before one that
  // committed first. The MAX(seq) below is a later statement: it sees what the previous holder committed.
  const revision =
    s.revision ?? Number((await tx.get<{ revision: number }>(`SELECT revision FROM organizations WHERE id = $1${tx.forUpdate}`, [s.org]))?.revision ?? 0);
  const last = await tx.get<{ n: number | null }>('SELECT MAX(seq) AS n FROM delivery_events WHERE org_id = $1 AND revision = $2', [s.org, revision]);
  const firstSeq = Number(last?.n ?? 0) + 1;
  // Multi-row inserts of at most 200 events (12 parameters each: well under both engines' limits).
  for (let i = 0; i < messages.length; i += 200) {
    const slice = messages.slice(i, i + 200);
    const tuples = slice.map(
      (m, j) =>
        sql`(${sql.join([s.org, revision, firstSeq + i + j, m.type, m.part, JSON.stringify(m.subjects), JSON.stringify({ subjects: m.subjects, access: m.access }), s.decidedAt, s.enforcedAt, m.job, s.now, s.traceParent ?? null])})`,
    );
    await tx.run(
      sql`INSERT INTO delivery_events (org_id, revision, seq, type, part, subjects, body, decided_at, enforced_at, job_id, created_at, trace_parent) VALUES ${sql.join(tuples)}`,
    );
  }
  // The outbox: every active target of the organization gets every new event, in this transaction.
  await tx.run(
    `INSERT INTO deliveries (target_id, org_id, revision, seq, generation, part, priority, state, attempts, created_at)
     SELECT t.id, e.org_id, e.revision, e.seq, 0, e.part, CASE WHEN e.type = 'access.granted' THEN 1 ELSE 0 END, 'pending', 0, $4
       FROM targets t JOIN delivery_events e ON e.org_id = t.org_id
      WHERE t.org_id = $1 AND t.state = 'active' AND e.revision = $2 AND e.seq >= $3`,
    [s.org, revision, firstSeq, s.now],
  );
  return messages.length;
}

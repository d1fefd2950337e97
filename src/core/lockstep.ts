/**
 * The core engine: composes the write side (policy/), the read side (check/) and the storage seam.
 * `createLockstep(db)` is what the HTTP API, the CLI and the tests drive.
 */
import { randomBytes } from 'node:crypto';
import { LockstepError, notFound } from '../domain/errors.ts';
import { parseAssignmentId, parseOrgId, parseSubjectId, type EffectiveRow } from '../domain/model.ts';
import { createChecks } from '../check/check.ts';
import { createCombiner } from '../policy/combiner.ts';
import { DEFAULT_POLICY, parsePolicy } from '../domain/propagation.ts';
import { NO_CHANGE, runWrite } from '../policy/write.ts';
import { auditDrift } from '../propagation/drift.ts';
import { getReceipt, listReceipts, sloReport } from '../audit/receipts.ts';
import { atTime, parseAt, REPLAY_POLICY } from '../audit/history.ts';
import { enqueueJob, listJobs, retryJob, type JobRow } from '../propagation/queue.ts';
import { createAccessCommands } from '../policy/access-commands.ts';
import { createDirectoryCommands } from '../policy/directory-commands.ts';
import type { Database, Sql } from '../storage/database.ts';
import type { Assignment, Job, Lockstep, LockstepOptions, Organization, Subject } from './types.ts';

/** Turns a NOT_FOUND into `empty` (malformed input still fails). */
const emptyIfMissing =
  <T,>(empty: T) =>
  (e: unknown): T => {
    if (e instanceof LockstepError && e.code === 'NOT_FOUND') return empty;
    throw e;
  };

const isoOrNull = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
function toJob(r: JobRow): Job {
  return {
    id: r.id,
    org: r.org_id,
    scope: r.scope,
    state: r.state,
    direction: r.direction,
    priority: r.priority,
    targetRevision: r.target_revision,
    checkpoint: r.checkpoint,
    progress: { done: r.done_members, total: r.total_members },
    batches: r.batches,
    rowsAdded: r.rows_added,
    rowsRemoved: r.rows_removed,
    attempts: r.attempts,
    claims: r.claims,
    owner: r.owner,
    leaseExpiresAt: isoOrNull(r.lease_expires_at),
    runAt: new Date(r.run_at).toISOString(),
    lastError: r.last_error,
    createdAt: new Date(r.created_at).toISOString(),
    startedAt: isoOrNull(r.started_at),
    finishedAt: isoOrNull(r.finished_at),
  };
}

const nested = new WeakSet<Database>();

/** A Database whose transactions join the open transaction `tx` instead of starting their own. */
function joined(db: Database, tx: Sql): Database {
  const j: Database = {
    ...tx,
    description: db.description,
    notifySql: db.notifySql,
    listen: (channel, fn) => db.listen(channel, fn),
    transaction: (fn) => fn(tx),
    migrate: () => Promise.reject(new Error('cannot migrate inside a transaction')),
    close: () => Promise.resolve(),
  };
  nested.add(j);
  return j;
}

const defaultId = () => randomBytes(12).toString('base64url');

export function createLockstep(db: Database, opts: LockstepOptions = {}): Lockstep {
  const now = opts.now ?? Date.now;
  // Group commit where a commit costs a WAL flush and writes arrive concurrently (PostgreSQL); an
  // engine inside an outer transaction (`transaction()`) writes straight into it.
  const combiner = db.dialect === 'postgres' && !nested.has(db) && opts.groupCommit !== false ? createCombiner(db) : undefined;
  const env = { db, now, newId: opts.newId ?? defaultId, metrics: opts.metrics, onEnqueued: opts.onEnqueued, defaultPolicy: opts.defaultPolicy ?? DEFAULT_POLICY, combiner };
  const access = createAccessCommands(env);
  const directory = createDirectoryCommands(env);
  const checks = createChecks({ db, verify: opts.verify ?? 'always', freshnessTimeoutMs: opts.freshnessTimeoutMs, metrics: opts.metrics });

  const requireOrg = async (org: string) => {
    if (!(await db.get('SELECT 1 AS x FROM organizations WHERE id = $1', [org]))) throw notFound('org', 'organization', org);
  };
  const replayEngine = (scratch: Database, newId: () => string) => createLockstep(scratch, { defaultPolicy: REPLAY_POLICY, newId });

  return {
    ...access,
    ...directory,
    ...checks,

    async getOrganization(orgIn) {
      const org = parseOrgId(orgIn);
      const row = await db.get<Organization>('SELECT id, name, revision FROM organizations WHERE id = $1', [org]);
      if (!row) throw notFound('org', 'organization', org);
      return { id: row.id, name: row.name, revision: Number(row.revision) };
    },

    async getSubject(orgIn, idIn) {
      const org = parseOrgId(orgIn);
      const id = parseSubjectId(idIn, 'id');
      const row = await db.get<{ id: Subject['id']; kind: Subject['kind']; active: number }>(
        'SELECT id, kind, active FROM subjects WHERE org_id = $1 AND id = $2',
        [org, id],
      );
      if (!row) throw notFound('id', 'subject', id);
      return { id: row.id, kind: row.kind, active: row.active === 1 };
    },

    async getAssignment(orgIn, idIn) {
      const org = parseOrgId(orgIn);
      const id = parseAssignmentId(idIn);
      const row = await db.get<{ id: Assignment['id']; principal_type: string; principal_id: string; role: Assignment['role']; resource: Assignment['resource'] }>(
        'SELECT id, principal_type, principal_id, role, resource FROM assignments WHERE org_id = $1 AND id = $2',
        [org, id],
      );
      if (!row) throw notFound('id', 'assignment', id);
      return { id: row.id, principal: `${row.principal_type}:${row.principal_id}`, role: row.role, resource: row.resource };
    },

    async getChange(orgIn, revision) {
      return getReceipt(db, parseOrgId(orgIn), revision, now());
    },

    async listChanges(orgIn, q = {}) {
      const org = parseOrgId(orgIn);
      await requireOrg(org);
      return listReceipts(db, org, q, now());
    },

    async sloReport(orgIn, windowSeconds) {
      const org = parseOrgId(orgIn);
      await requireOrg(org);
      return sloReport(db, org, windowSeconds, now());
    },

    async subjectEffectiveAt(orgIn, subject, at) {
      const org = parseOrgId(orgIn);
      const t = parseAt(at);
      await requireOrg(org);
      // A subject that did not exist at T could do nothing then.
      const r = await atTime(db, replayEngine, org, t, (h) => h.subjectEffective(org, subject).catch(emptyIfMissing({ revision: 0, permissions: [] })));
      return { revision: r.revision, at: new Date(t).toISOString(), permissions: r.result?.permissions ?? [] };
    },

    async resourceAccessAt(orgIn, resource, permission, at) {
      const org = parseOrgId(orgIn);
      const t = parseAt(at);
      await requireOrg(org);
      // Nobody could do a permission that did not exist at T on a resource that did not exist at T.
      const r = await atTime(db, replayEngine, org, t, (h) => h.resourceAccess(org, resource, permission).catch(emptyIfMissing({ revision: 0, subjects: [] })));
      return { revision: r.revision, at: new Date(t).toISOString(), subjects: r.result?.subjects ?? [] };
    },

    async readModel(orgIn) {
      const org = parseOrgId(orgIn);
      const rows = await db.all<{ subject_id: string; role: string; resource: string; assignment_id: string; group_id: string | null }>(
        `SELECT subject_id, role, resource, assignment_id, group_id FROM effective_assignments WHERE org_id = $1
          ORDER BY subject_id, assignment_id`,
        [org],
      );
      return rows.map((r) => ({ subject: r.subject_id, role: r.role, resource: r.resource, assignment: r.assignment_id, group: r.group_id }) as EffectiveRow);
    },

    async getPropagationPolicy(orgIn) {
      const org = parseOrgId(orgIn);
      const row = await db.get<{ policy: string | null; id: string }>(
        'SELECT o.id, p.policy FROM organizations o LEFT JOIN propagation_policies p ON p.org_id = o.id WHERE o.id = $1',
        [org],
      );
      if (!row) throw notFound('org', 'organization', org);
      return row.policy === null ? { policy: env.defaultPolicy, custom: false } : { policy: parsePolicy(JSON.parse(row.policy), env.defaultPolicy), custom: true };
    },

    async putPropagationPolicy(orgIn, body, ctx) {
      const org = parseOrgId(orgIn);
      const policy = parsePolicy(body, env.defaultPolicy);
      const text = JSON.stringify(policy);
      const result = await runWrite(env, { org, kind: 'propagation_policy.update', body: policy, ctx }, async (tx) => {
        const cur = await tx.get<{ policy: string }>('SELECT policy FROM propagation_policies WHERE org_id = $1', [org]);
        if (cur?.policy === text) return NO_CHANGE;
        await tx.run(
          `INSERT INTO propagation_policies (org_id, policy, updated_at) VALUES ($1, $2, $3)
           ON CONFLICT (org_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`,
          [org, text, now()],
        );
        return { changed: true };
      });
      const { effect: _effect, ...rest } = result;
      return { ...rest, policy };
    },

    async listJobs(o = {}) {
      return (await listJobs(db, o)).map(toJob);
    },

    async retryJob(id) {
      const job = toJob(await retryJob(db, id, now()));
      opts.onEnqueued?.();
      return job;
    },

    async auditDrift(orgIn, o = {}) {
      const org = parseOrgId(orgIn);
      const report = await db.transaction(async (tx) => {
        const cur = await tx.get<{ revision: number }>(`SELECT revision FROM organizations WHERE id = $1${tx.forUpdate}`, [org]);
        if (!cur) throw notFound('org', 'organization', org);
        const r = await auditDrift(tx, org, o.limit ?? 100, now());
        const repairJob =
          o.repair && r.missing + r.extra > 0
            ? await enqueueJob(tx, { org, scope: `organization:${org}`, direction: 'both', priority: 0, revision: Number(cur.revision), now: now(), newId: env.newId })
            : null;
        return { ...r, repairJob };
      });
      opts.metrics?.driftRows.set({ org, kind: 'missing' }, report.missing);
      opts.metrics?.driftRows.set({ org, kind: 'extra' }, report.extra);
      if (report.repairJob) opts.onEnqueued?.();
      return report;
    },

    transaction: (fn) => db.transaction((tx) => fn(createLockstep(joined(db, tx), opts))),

    close: () => db.close(),
  };
}

/**
 * The core engine: composes the write side (policy/), the read side (check/) and the storage seam.
 * `createLockstep(db)` is what the HTTP API, the CLI and the tests drive.
 */
import { randomBytes } from 'node:crypto';
import { notFound } from '../domain/errors.ts';
import { parseAssignmentId, parseOrgId, parseSubjectId, tierOfRank, type EffectiveRow, type Direction } from '../domain/model.ts';
import { createChecks } from '../check/check.ts';
import { DEFAULT_POLICY } from '../domain/propagation.ts';
import { createAccessCommands } from '../policy/access-commands.ts';
import { createDirectoryCommands } from '../policy/directory-commands.ts';
import type { Database, Sql } from '../storage/database.ts';
import type { Assignment, Change, Lockstep, LockstepOptions, Organization, Subject } from './types.ts';

/** A Database whose transactions join the open transaction `tx` instead of starting their own. */
function joined(db: Database, tx: Sql): Database {
  return {
    ...tx,
    description: db.description,
    transaction: (fn) => fn(tx),
    migrate: () => Promise.reject(new Error('cannot migrate inside a transaction')),
    close: () => Promise.resolve(),
  };
}

const defaultId = () => randomBytes(12).toString('base64url');
const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

export function createLockstep(db: Database, opts: LockstepOptions = {}): Lockstep {
  const now = opts.now ?? Date.now;
  const env = { db, now, newId: opts.newId ?? defaultId, metrics: opts.metrics, onEnqueued: opts.onEnqueued, defaultPolicy: opts.defaultPolicy ?? DEFAULT_POLICY };
  const access = createAccessCommands(env);
  const directory = createDirectoryCommands(env);
  const checks = createChecks({ db, verify: opts.verify ?? 'always', freshnessTimeoutMs: opts.freshnessTimeoutMs, metrics: opts.metrics });

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
      const org = parseOrgId(orgIn);
      const row = await db.get<{
        revision: number; kind: string; direction: Direction; tier: number | null; mode: 'sync' | 'async'; actor: string | null;
        request_id: string | null; body: string; decided_at: number; effective_at: number | null; rows_added: number; rows_removed: number;
      }>('SELECT * FROM changes WHERE org_id = $1 AND revision = $2', [org, revision]);
      if (!row) throw notFound('revision', 'change', String(revision));
      const change: Change = {
        revision: Number(row.revision),
        kind: row.kind,
        direction: row.direction,
        tier: tierOfRank(row.tier),
        mode: row.mode,
        actor: row.actor,
        requestId: row.request_id,
        body: JSON.parse(row.body),
        decidedAt: iso(row.decided_at)!,
        effectiveAt: iso(row.effective_at),
        lagMs: row.effective_at === null ? null : Number(row.effective_at) - Number(row.decided_at),
        rowsAdded: Number(row.rows_added),
        rowsRemoved: Number(row.rows_removed),
      };
      return change;
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

    transaction: (fn) => db.transaction((tx) => fn(createLockstep(joined(db, tx), opts))),

    close: () => db.close(),
  };
}

/**
 * The write side of a directory's SCIM endpoint, mapped onto Lockstep's policy writes: a SCIM User
 * is a subject (kind user) with the same id, a Group is a group, its members are memberships.
 *
 * Every SCIM write is one policy write (`runWrite`): one transaction holding the organization's
 * lock, one revision, one change-log entry with actor `directory:{id}` and the request id. A Group
 * PUT or PATCH — whatever the number of members it adds and removes — is one statement per set
 * (ids passed as one JSON parameter), one revision and one entry listing the ids (bounded) with counts;
 * its read-model fan-out goes by the organization's propagation policy (inline, or a `group:` job
 * beyond the inline budget), and removals are enforced at commit by provenance verification.
 *
 * Deprovisioning (`active: false` or DELETE) is a critical revocation: the subject's read-model rows
 * are deleted in the same transaction whatever the propagation policy or verification mode, so no
 * check honours them once the SCIM request has its answer.
 */
import { randomUUID } from 'node:crypto';
import { LockstepError } from '../domain/errors.ts';
import type { WriteContext, WriteResult } from '../domain/contract.ts';
import { badRequest, ScimError } from '../scim/errors.ts';
import { memberIds, patchGroup, patchUser, type GroupState, type PatchOperation } from '../scim/patch.ts';
import { parseUser } from '../scim/schemas.ts';
import { sql, type Sql } from '../storage/database.ts';
import { countDesired, deleteEffective, maxRiskOfRoles } from '../derivation/read-model.ts';
import { desired, groupAncestors, notDerived } from '../derivation/rule.ts';
import { NO_CHANGE, resultOf, runWrite, type Outcome, type WriteEnv } from '../policy/write.ts';
import { deleteGroupOutcome } from '../policy/directory-commands.ts';
import { addGroupToClosure } from '../derivation/closure.ts';
import type { Directory } from './directories.ts';
import { idsFrom } from './id-lists.ts';
import { etagOf, loadMembers, loadRow, type Member, type ScimRow } from './scim-read.ts';

/** Member ids listed in a change-log entry; the counts are always complete. */
export const LOGGED_MEMBER_IDS = 100;
const CRITICAL = 3;
const subjectRoles = (org: string, subject: string) => desired(sql`d.org_id = ${org} AND d.subject_id = ${subject}`, sql`d.role`, 'subjects');

export interface ScimWriteResult extends WriteResult {
  row: ScimRow;
  members?: Member[];
}

export interface WriteOptions {
  ifMatch?: string | undefined;
  /** Load the group's members into the result (the response shows them). */
  withMembers?: boolean;
}

/** RFC 7232 If-Match: `*`, or a list of entity tags one of which is the current version. */
function checkIfMatch(ifMatch: string | undefined, version: number) {
  if (ifMatch === undefined) return;
  const tags = ifMatch.split(',').map((t) => t.trim());
  const current = etagOf(version);
  if (tags.includes('*') || tags.some((t) => t === current || t === current.slice(2))) return;
  throw new ScimError(412, `the resource is at version ${current}, not ${ifMatch}`);
}

function checkText(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.trim() === '') throw badRequest('invalidValue', `${what} must be a non-empty string`);
  if (v.includes('\u0000') || v.length > 1024) throw badRequest('invalidValue', `${what} must be at most 1024 characters without NUL`);
  return v;
}

/** A User body split into the stored document and the subject's active flag. */
function userParts(attrs: Record<string, unknown>): { doc: Record<string, unknown>; active: boolean | undefined; userName: string } {
  const { active, ...doc } = attrs;
  const userName = checkText(doc.userName, 'userName');
  if (doc.externalId !== undefined) checkText(doc.externalId, 'externalId');
  return { doc, active: typeof active === 'boolean' ? active : undefined, userName };
}

interface GroupBody {
  displayName: string;
  externalId: string | null;
  members: string[];
}

export function parseGroup(body: unknown): GroupBody {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('invalidSyntax', 'the body must be a JSON object');
  const b = body as Record<string, unknown>;
  const get = (k: string) => b[Object.keys(b).find((x) => x.toLowerCase() === k) ?? ''];
  const displayName = checkText(get('displayname'), 'displayName');
  const ext = get('externalid');
  const externalId = ext === undefined || ext === null ? null : checkText(ext, 'externalId');
  const members = get('members');
  return { displayName, externalId, members: members === undefined || members === null ? [] : memberIds(Array.isArray(members) ? members : [members], 'members') };
}

const sorted = (s: Iterable<string>) => [...s].sort();

export function createScimWrites(env: WriteEnv) {
  const ctxOf = (dir: Directory, requestId: string): WriteContext => ({ actor: `directory:${dir.id}`, requestId });

  async function requireRow(tx: Sql, dir: Directory, type: 'User' | 'Group', id: string): Promise<ScimRow> {
    const row = await loadRow(tx, dir, type, id);
    if (!row) throw new ScimError(404, `${type} '${id}' not found`);
    return row;
  }

  async function assertUniqueUserName(tx: Sql, dir: Directory, key: string, self: string | null) {
    const other = await tx.get<{ id: string }>("SELECT id FROM scim_resources WHERE directory_id = $1 AND resource_type = 'User' AND name_key = $2", [dir.id, key]);
    if (other && other.id !== self) throw new ScimError(409, `userName is already taken in this directory (by ${other.id})`, 'uniqueness');
  }

  /**
   * The subject's deprovisioning: critical, and its read-model rows deleted here, in this
   * transaction, whatever the propagation policy or verification mode (the count goes in the body).
   */
  async function deprovision(tx: Sql, org: string, id: string): Promise<{ rank: number; removedAtCommit: number }> {
    return { rank: CRITICAL, removedAtCommit: await deleteEffective(tx, sql`org_id = ${org} AND subject_id = ${id}`) };
  }

  async function reactivate(tx: Sql, org: string, id: string): Promise<Pick<Outcome, 'grantRank' | 'fanout'>> {
    const rows = await countDesired(tx, sql`d.org_id = ${org} AND d.subject_id = ${id}`, 'subjects');
    return {
      grantRank: rows > 0 ? await maxRiskOfRoles(tx, org, subjectRoles(org, id)) : null,
      fanout: { scope: `subject:${id}`, rows, add: [sql`d.org_id = ${org} AND d.subject_id = ${id}`], anchor: 'subjects' },
    };
  }

  /** Writes a User's next state (a new user when `existing` is absent): the outcome, with its kind and body. */
  async function writeUser(
    tx: Sql,
    dir: Directory,
    id: string,
    next: { doc: Record<string, unknown>; active: boolean; userName: string },
    existing: ScimRow | undefined,
  ): Promise<Outcome> {
    const t = env.now();
    const key = next.userName.toLowerCase();
    const text = JSON.stringify(next.doc);
    const ext = typeof next.doc.externalId === 'string' ? next.doc.externalId : null;
    const body = { directory: dir.id, id, userName: next.userName, active: next.active };
    if (!existing) {
      await assertUniqueUserName(tx, dir, key, null);
      if (await tx.get('SELECT 1 AS x FROM subjects WHERE org_id = $1 AND id = $2', [dir.org, id])) throw new ScimError(409, `a subject '${id}' already exists`, 'uniqueness');
      await tx.run('INSERT INTO subjects (org_id, id, kind, active) VALUES ($1, $2, $3, $4)', [dir.org, id, 'user', next.active ? 1 : 0]);
      await tx.run(
        `INSERT INTO scim_resources (org_id, resource_type, id, directory_id, name_key, external_id, document, version, created_at, modified_at)
         VALUES ($1, 'User', $2, $3, $4, $5, $6, 1, $7, $7)`,
        [dir.org, id, dir.id, key, ext, text, t],
      );
      return { changed: true, kind: 'scim.user.create', body };
    }
    const wasActive = Number(existing.active) === 1;
    if (text === existing.document && wasActive === next.active) return NO_CHANGE;
    if (key !== existing.name_key) await assertUniqueUserName(tx, dir, key, id);
    await tx.run(
      `UPDATE scim_resources SET name_key = $3, external_id = $4, document = $5, version = version + 1, modified_at = $6
        WHERE org_id = $1 AND resource_type = 'User' AND id = $2`,
      [dir.org, id, key, ext, text, Math.max(t, Number(existing.modified_at))],
    );
    if (wasActive === next.active) return { changed: true, kind: 'scim.user.update', body };
    await tx.run('UPDATE subjects SET active = $3 WHERE org_id = $1 AND id = $2', [dir.org, id, next.active ? 1 : 0]);
    if (next.active) return { changed: true, kind: 'scim.user.reactivate', body, ...(await reactivate(tx, dir.org, id)) };
    const d = await deprovision(tx, dir.org, id);
    return { changed: true, kind: 'scim.user.deprovision', body: { ...body, rowsRemovedAtCommit: d.removedAtCommit }, revokeRank: d.rank };
  }

  /**
   * Runs one SCIM write as a policy write, answering the resource row as this transaction left it
   * (and the group's members when the answer shows them).
   */
  async function scimWrite(dir: Directory, requestId: string, type: 'User' | 'Group', id: string, opts: WriteOptions, command: (tx: Sql) => Promise<Outcome>): Promise<ScimWriteResult> {
    const written = await runWrite<{ row: ScimRow | undefined; members: Member[] | undefined }>(
      env,
      { org: dir.org, kind: `scim.${type.toLowerCase()}.update`, body: { directory: dir.id, id }, ctx: ctxOf(dir, requestId) },
      async (tx) => {
        const outcome = await command(tx);
        const row = await loadRow(tx, dir, type, id);
        const members = type === 'Group' && opts.withMembers && row ? (await loadMembers(tx, dir.org, [id])).get(id) : undefined;
        return { ...outcome, output: { row, members } };
      },
    );
    const out = written.outcome.output!;
    return { ...resultOf(written), row: out.row!, ...(out.members ? { members: out.members } : {}) };
  }

  /** Membership diff of a group and its fan-out; one statement per set, whatever their sizes. */
  async function writeMembers(tx: Sql, dir: Directory, group: string, added: string[], removed: string[]): Promise<Pick<Outcome, 'grantRank' | 'revokeRank' | 'fanout'>> {
    const org = dir.org;
    if (added.length > 0) {
      const missing = await tx.get<{ v: string }>(
        sql`SELECT x.v FROM (${idsFrom(tx, added)}) x WHERE NOT EXISTS (
           SELECT 1 FROM scim_resources u WHERE u.org_id = ${org} AND u.resource_type = 'User' AND u.directory_id = ${dir.id} AND u.id = x.v) LIMIT 1`,
      );
      if (missing) throw badRequest('invalidValue', `member '${missing.v}' is not a user of this directory`);
    }
    const active = async (ids: string[]) =>
      ids.length === 0
        ? 0
        : Number(
            (await tx.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM subjects WHERE org_id = ${org} AND active = 1 AND id IN (${idsFrom(tx, ids)})`))?.n ?? 0,
          );
    const above = groupAncestors(org, group);
    const assignments = Number(
      (await tx.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM assignments WHERE org_id = ${org} AND principal_type = 'group' AND principal_id IN (${above})`))?.n ?? 0,
    );
    const activeAdded = assignments > 0 ? await active(added) : 0;
    const activeRemoved = assignments > 0 ? await active(removed) : 0;
    if (removed.length > 0) {
      await tx.run(sql`DELETE FROM memberships WHERE org_id = ${org} AND group_id = ${group} AND subject_id IN (${idsFrom(tx, removed)})`);
    }
    if (added.length > 0) {
      // WHERE: SQLite needs it to parse INSERT … SELECT … ON CONFLICT.
      await tx.run(
        sql`INSERT INTO memberships (org_id, group_id, subject_id) SELECT CAST(${org} AS TEXT), CAST(${group} AS TEXT), x.v FROM (${idsFrom(tx, added)}) x WHERE x.v IS NOT NULL
         ON CONFLICT DO NOTHING`,
      );
    }
    const rows = assignments * (activeAdded + activeRemoved);
    if (rows === 0) return {};
    const rank = await maxRiskOfRoles(tx, org, sql`SELECT a.role FROM assignments a WHERE a.org_id = ${org} AND a.principal_type = 'group' AND a.principal_id IN (${above})`);
    return {
      grantRank: activeAdded > 0 ? rank : null,
      revokeRank: activeRemoved > 0 ? rank : null,
      fanout: {
        scope: `group:${group}`,
        rows,
        // the group and every /v1 group that nests it; a row another path still derives stays
        ...(removed.length
          ? { remove: [sql`org_id = ${org} AND group_id IN (${above}) AND subject_id IN (${idsFrom(tx, removed)}) AND ${notDerived('effective_assignments')}`] }
          : {}),
        ...(added.length ? { add: [sql`d.org_id = ${org} AND d.group_id IN (${above}) AND d.subject_id IN (${idsFrom(tx, added)})`], anchor: 'subjects' as const } : {}),
      },
    };
  }

  async function writeGroup(tx: Sql, dir: Directory, id: string, next: GroupState, existing: { row: ScimRow; members: Set<string> } | undefined): Promise<Outcome> {
    const t = env.now();
    const doc = { displayName: next.displayName, ...(next.externalId === null ? {} : { externalId: next.externalId }) };
    const text = JSON.stringify(doc);
    const before = existing?.members ?? new Set<string>();
    const added = sorted([...next.members].filter((m) => !before.has(m)));
    const removed = sorted([...before].filter((m) => !next.members.has(m)));
    const name = next.displayName.slice(0, 200);
    const body = {
      directory: dir.id,
      group: id,
      displayName: next.displayName,
      added: added.slice(0, LOGGED_MEMBER_IDS),
      removed: removed.slice(0, LOGGED_MEMBER_IDS),
      addedCount: added.length,
      removedCount: removed.length,
      truncated: added.length > LOGGED_MEMBER_IDS || removed.length > LOGGED_MEMBER_IDS,
    };
    if (!existing) {
      if (await tx.get('SELECT 1 AS x FROM groups WHERE org_id = $1 AND id = $2', [dir.org, id])) throw new ScimError(409, `a group '${id}' already exists`, 'uniqueness');
      await tx.run('INSERT INTO groups (org_id, id, name) VALUES ($1, $2, $3)', [dir.org, id, name]);
      await addGroupToClosure(tx, dir.org, id);
      await tx.run(
        `INSERT INTO scim_resources (org_id, resource_type, id, directory_id, name_key, external_id, document, version, created_at, modified_at)
         VALUES ($1, 'Group', $2, $3, $4, $5, $6, 1, $7, $7)`,
        [dir.org, id, dir.id, next.displayName.toLowerCase(), next.externalId, text, t],
      );
      return { changed: true, kind: 'scim.group.create', body, ...(await writeMembers(tx, dir, id, added, [])) };
    }
    if (text === existing.row.document && added.length === 0 && removed.length === 0) return NO_CHANGE;
    await tx.run(
      `UPDATE scim_resources SET name_key = $3, external_id = $4, document = $5, version = version + 1, modified_at = $6
        WHERE org_id = $1 AND resource_type = 'Group' AND id = $2`,
      [dir.org, id, next.displayName.toLowerCase(), next.externalId, text, Math.max(t, Number(existing.row.modified_at))],
    );
    if (text !== existing.row.document) await tx.run('UPDATE groups SET name = $3 WHERE org_id = $1 AND id = $2', [dir.org, id, name]);
    if (added.length === 0 && removed.length === 0) return { changed: true, kind: 'scim.group.update', body };
    return { changed: true, kind: 'scim.group.members', body, ...(await writeMembers(tx, dir, id, added, removed)) };
  }

  async function groupState(tx: Sql, dir: Directory, id: string, ifMatch: string | undefined) {
    const row = await requireRow(tx, dir, 'Group', id);
    checkIfMatch(ifMatch, row.version);
    const members = await tx.all<{ subject_id: string }>('SELECT subject_id FROM memberships WHERE org_id = $1 AND group_id = $2', [dir.org, id]);
    const doc = JSON.parse(row.document) as { displayName: string; externalId?: string };
    const state: GroupState = { displayName: doc.displayName, externalId: doc.externalId ?? null, members: new Set(members.map((m) => m.subject_id)) };
    return { row, state };
  }

  return {
    createUser(dir: Directory, body: unknown, requestId: string): Promise<ScimWriteResult> {
      const parts = userParts(parseUser(body));
      const id = randomUUID();
      return scimWrite(dir, requestId, 'User', id, {}, (tx) => writeUser(tx, dir, id, { ...parts, active: parts.active ?? true }, undefined));
    },

    /** PUT: replaces the attributes; an absent `active` keeps the current state (never re-activates by omission). */
    replaceUser(dir: Directory, id: string, body: unknown, requestId: string, opts: WriteOptions = {}): Promise<ScimWriteResult> {
      const parts = userParts(parseUser(body));
      return scimWrite(dir, requestId, 'User', id, opts, async (tx) => {
        const row = await requireRow(tx, dir, 'User', id);
        checkIfMatch(opts.ifMatch, row.version);
        return writeUser(tx, dir, id, { ...parts, active: parts.active ?? Number(row.active) === 1 }, row);
      });
    },

    patchUser(dir: Directory, id: string, ops: PatchOperation[], requestId: string, opts: WriteOptions = {}): Promise<ScimWriteResult> {
      return scimWrite(dir, requestId, 'User', id, opts, async (tx) => {
        const row = await requireRow(tx, dir, 'User', id);
        checkIfMatch(opts.ifMatch, row.version);
        const wasActive = Number(row.active) === 1;
        const patched = await patchUser(id, { ...(JSON.parse(row.document) as Record<string, unknown>), active: wasActive }, ops);
        if (patched === null) return NO_CHANGE;
        const parts = userParts(patched);
        return writeUser(tx, dir, id, { ...parts, active: parts.active ?? wasActive }, row);
      });
    },

    async deleteUser(dir: Directory, id: string, requestId: string, opts: WriteOptions = {}): Promise<WriteResult> {
      const result = await runWrite(env, { org: dir.org, kind: 'scim.user.delete', body: { directory: dir.id, id }, ctx: ctxOf(dir, requestId) }, async (tx) => {
        const row = await requireRow(tx, dir, 'User', id);
        checkIfMatch(opts.ifMatch, row.version);
        const d = await deprovision(tx, dir.org, id);
        await tx.run('DELETE FROM memberships WHERE org_id = $1 AND subject_id = $2', [dir.org, id]);
        await tx.run("DELETE FROM assignments WHERE org_id = $1 AND principal_type = 'subject' AND principal_id = $2", [dir.org, id]);
        await tx.run("DELETE FROM scim_resources WHERE org_id = $1 AND resource_type = 'User' AND id = $2", [dir.org, id]);
        await tx.run('DELETE FROM subjects WHERE org_id = $1 AND id = $2', [dir.org, id]);
        return { changed: true, revokeRank: d.rank, body: { directory: dir.id, id, rowsRemovedAtCommit: d.removedAtCommit } };
      });
      return resultOf(result);
    },

    createGroup(dir: Directory, body: unknown, requestId: string, opts: WriteOptions = {}): Promise<ScimWriteResult> {
      const g = parseGroup(body);
      const id = randomUUID();
      const next: GroupState = { displayName: g.displayName, externalId: g.externalId, members: new Set(g.members) };
      return scimWrite(dir, requestId, 'Group', id, opts, (tx) => writeGroup(tx, dir, id, next, undefined));
    },

    /** PUT: replaces displayName, externalId and the member list (absent members: none). */
    replaceGroup(dir: Directory, id: string, body: unknown, requestId: string, opts: WriteOptions = {}): Promise<ScimWriteResult> {
      const g = parseGroup(body);
      const next: GroupState = { displayName: g.displayName, externalId: g.externalId, members: new Set(g.members) };
      return scimWrite(dir, requestId, 'Group', id, opts, async (tx) => {
        const { row, state } = await groupState(tx, dir, id, opts.ifMatch);
        return writeGroup(tx, dir, id, next, { row, members: state.members });
      });
    },

    patchGroup(dir: Directory, id: string, ops: PatchOperation[], requestId: string, opts: WriteOptions = {}): Promise<ScimWriteResult> {
      return scimWrite(dir, requestId, 'Group', id, opts, async (tx) => {
        const { row, state } = await groupState(tx, dir, id, opts.ifMatch);
        return writeGroup(tx, dir, id, patchGroup(state, ops), { row, members: state.members });
      });
    },

    async deleteGroup(dir: Directory, id: string, requestId: string, opts: WriteOptions = {}): Promise<WriteResult> {
      const result = await runWrite(env, { org: dir.org, kind: 'scim.group.delete', body: { directory: dir.id, group: id }, ctx: ctxOf(dir, requestId) }, async (tx): Promise<Outcome> => {
        const row = await requireRow(tx, dir, 'Group', id);
        checkIfMatch(opts.ifMatch, row.version);
        // the same deletion as /v1's (a /v1 group may have nested this one: its edges go too)
        return deleteGroupOutcome(tx, dir.org, id, () => tx.run("DELETE FROM scim_resources WHERE org_id = $1 AND resource_type = 'Group' AND id = $2", [dir.org, id]));
      });
      return resultOf(result);
    },
  };
}

export type ScimWrites = ReturnType<typeof createScimWrites>;

/** A storage conflict (a concurrent creation of the same userName) is SCIM's uniqueness error. */
export function isUniquenessConflict(e: unknown): boolean {
  return e instanceof LockstepError && e.code === 'CONFLICT';
}

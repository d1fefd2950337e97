/**
 * Directory writes: subjects, groups and memberships. Each validates its input, changes the source
 * rows and the read model in the frame's transaction, and reports its effect for the change log.
 */
import { conflict, notFound } from '../domain/errors.ts';
import { parseGroupId, parseOrgId, parseSubjectId, parseSubjectKind, type GroupId, type OrgId, type SubjectId } from '../domain/model.ts';
import type { WriteContext, WriteResult } from '../core/types.ts';
import type { Sql } from '../storage/database.ts';
import { deleteEffective, insertDesired, maxRiskOfEffective, maxRiskOfRoles } from './read-model.ts';
import { NO_CHANGE, runWrite, type WriteEnv } from './write.ts';

async function requireSubject(tx: Sql, org: OrgId, id: SubjectId, field = 'subject') {
  const row = await tx.get<{ kind: string; active: number }>('SELECT kind, active FROM subjects WHERE org_id = $1 AND id = $2', [org, id]);
  if (!row) throw notFound(field, 'subject', id);
  return row;
}
async function requireGroup(tx: Sql, org: OrgId, id: GroupId, field = 'group') {
  const row = await tx.get<{ name: string | null }>('SELECT name FROM groups WHERE org_id = $1 AND id = $2', [org, id]);
  if (!row) throw notFound(field, 'group', id);
  return row;
}

export function createDirectoryCommands(env: WriteEnv) {
  return {
    async putSubject(orgIn: string, idIn: string, body: { kind: string; active?: boolean }, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const id = parseSubjectId(idIn, 'id');
      const kind = parseSubjectKind(body.kind);
      const active = body.active ?? true;
      let kindName = 'subject.create';
      return runWrite(env, { org, kind: () => kindName, body: { id, kind, active }, ctx }, async (tx) => {
        const existing = await tx.get<{ kind: string; active: number }>('SELECT kind, active FROM subjects WHERE org_id = $1 AND id = $2', [org, id]);
        if (!existing) {
          await tx.run('INSERT INTO subjects (org_id, id, kind, active) VALUES ($1, $2, $3, $4)', [org, id, kind, active ? 1 : 0]);
          return { changed: true };
        }
        if (existing.kind !== kind) throw conflict('kind', `subject '${id}' exists with kind '${existing.kind}'; kind cannot change`);
        if (Boolean(existing.active) === active) return NO_CHANGE;
        await tx.run('UPDATE subjects SET active = $3 WHERE org_id = $1 AND id = $2', [org, id, active ? 1 : 0]);
        if (active) {
          kindName = 'subject.activate';
          const rowsAdded = await insertDesired(tx, 'd.org_id = $1 AND d.subject_id = $2', [org, id]);
          const grantRank = rowsAdded > 0 ? await maxRiskOfEffective(tx, 'e.subject_id = $2', [org, id]) : null;
          return { changed: true, rowsAdded, grantRank };
        }
        kindName = 'subject.deactivate';
        const revokeRank = await maxRiskOfEffective(tx, 'e.subject_id = $2', [org, id]);
        const rowsRemoved = await deleteEffective(tx, 'org_id = $1 AND subject_id = $2', [org, id]);
        return { changed: true, rowsRemoved, revokeRank };
      });
    },

    async deleteSubject(orgIn: string, idIn: string, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const id = parseSubjectId(idIn, 'id');
      return runWrite(env, { org, kind: 'subject.delete', body: { id }, ctx }, async (tx) => {
        await requireSubject(tx, org, id, 'id');
        const revokeRank = await maxRiskOfEffective(tx, 'e.subject_id = $2', [org, id]);
        const rowsRemoved = await deleteEffective(tx, 'org_id = $1 AND subject_id = $2', [org, id]);
        await tx.run('DELETE FROM memberships WHERE org_id = $1 AND subject_id = $2', [org, id]);
        await tx.run("DELETE FROM assignments WHERE org_id = $1 AND principal_type = 'subject' AND principal_id = $2", [org, id]);
        await tx.run('DELETE FROM subjects WHERE org_id = $1 AND id = $2', [org, id]);
        return { changed: true, rowsRemoved, revokeRank };
      });
    },

    async putGroup(orgIn: string, idIn: string, body: { name?: string | null }, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const id = parseGroupId(idIn, 'id');
      const name = body.name ?? null;
      let kindName = 'group.create';
      return runWrite(env, { org, kind: () => kindName, body: { id, name }, ctx }, async (tx) => {
        const existing = await tx.get<{ name: string | null }>('SELECT name FROM groups WHERE org_id = $1 AND id = $2', [org, id]);
        if (!existing) {
          await tx.run('INSERT INTO groups (org_id, id, name) VALUES ($1, $2, $3)', [org, id, name]);
          return { changed: true };
        }
        if (existing.name === name) return NO_CHANGE;
        kindName = 'group.update';
        await tx.run('UPDATE groups SET name = $3 WHERE org_id = $1 AND id = $2', [org, id, name]);
        return { changed: true };
      });
    },

    async deleteGroup(orgIn: string, idIn: string, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const id = parseGroupId(idIn, 'id');
      return runWrite(env, { org, kind: 'group.delete', body: { id }, ctx }, async (tx) => {
        await requireGroup(tx, org, id, 'id');
        const revokeRank = await maxRiskOfEffective(tx, 'e.group_id = $2', [org, id]);
        const rowsRemoved = await deleteEffective(tx, 'org_id = $1 AND group_id = $2', [org, id]);
        await tx.run("DELETE FROM assignments WHERE org_id = $1 AND principal_type = 'group' AND principal_id = $2", [org, id]);
        await tx.run('DELETE FROM memberships WHERE org_id = $1 AND group_id = $2', [org, id]);
        await tx.run('DELETE FROM groups WHERE org_id = $1 AND id = $2', [org, id]);
        return { changed: true, rowsRemoved, revokeRank };
      });
    },

    async addMember(orgIn: string, groupIn: string, subjectIn: string, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const group = parseGroupId(groupIn);
      const subject = parseSubjectId(subjectIn);
      return runWrite(env, { org, kind: 'membership.add', body: { group, subject }, ctx }, async (tx) => {
        await requireGroup(tx, org, group);
        await requireSubject(tx, org, subject);
        const added = await tx.run('INSERT INTO memberships (org_id, group_id, subject_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [
          org,
          group,
          subject,
        ]);
        if (added === 0) return NO_CHANGE;
        const rowsAdded = await insertDesired(tx, 'd.org_id = $1 AND d.subject_id = $2 AND d.group_id = $3', [org, subject, group]);
        const grantRank =
          rowsAdded > 0
            ? await maxRiskOfRoles(tx, "SELECT a.role FROM assignments a WHERE a.org_id = $1 AND a.principal_type = 'group' AND a.principal_id = $2", [
                org,
                group,
              ])
            : null;
        return { changed: true, rowsAdded, grantRank };
      });
    },

    async removeMember(orgIn: string, groupIn: string, subjectIn: string, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const group = parseGroupId(groupIn);
      const subject = parseSubjectId(subjectIn);
      return runWrite(env, { org, kind: 'membership.remove', body: { group, subject }, ctx }, async (tx) => {
        await requireGroup(tx, org, group);
        await requireSubject(tx, org, subject);
        const removed = await tx.run('DELETE FROM memberships WHERE org_id = $1 AND group_id = $2 AND subject_id = $3', [org, group, subject]);
        if (removed === 0) return NO_CHANGE;
        const revokeRank = await maxRiskOfEffective(tx, 'e.subject_id = $2 AND e.group_id = $3', [org, subject, group]);
        const rowsRemoved = await deleteEffective(tx, 'org_id = $1 AND subject_id = $2 AND group_id = $3', [org, subject, group]);
        return { changed: true, rowsRemoved, revokeRank };
      });
    },
  };
}

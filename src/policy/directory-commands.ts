/**
 * Directory writes: subjects, groups and memberships. Each validates its input, changes the source
 * rows, classifies the change from the source (direction, highest tier, rows it fans out to) and
 * hands the frame an inline fan-out that the propagation policy may run now or defer to a job.
 */
import { conflict, notFound } from '../domain/errors.ts';
import { parseGroupId, parseName, parseOrgId, parseSubjectId, parseSubjectKind, type GroupId, type OrgId, type SubjectId } from '../domain/model.ts';
import type { WriteContext, WriteResult } from '../domain/contract.ts';
import { sql, type Sql } from '../storage/database.ts';
import { countDesired, countGroupRows, maxRiskOfRoles } from '../derivation/read-model.ts';
import { desired } from '../derivation/rule.ts';
import { NO_CHANGE, resultOf, runWrite, type Outcome, type WriteEnv } from './write.ts';
import { assertNotDirectoryOwned } from './directory-ownership.ts';

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

const groupRoles = (org: OrgId, group: GroupId) => sql`SELECT a.role FROM assignments a WHERE a.org_id = ${org} AND a.principal_type = 'group' AND a.principal_id = ${group}`;
const subjectRoles = (org: OrgId, subject: SubjectId) => desired(sql`d.org_id = ${org} AND d.subject_id = ${subject}`, sql`d.role`);

/** A member's fan-out through a group: one row per group assignment, and their highest tier. */
async function groupFanout(tx: Sql, org: OrgId, group: GroupId): Promise<{ rows: number; rank: number | null }> {
  const row = await tx.get<{ n: number; r: number | null }>(
    sql`SELECT (SELECT COUNT(*) FROM assignments WHERE org_id = ${org} AND principal_type = 'group' AND principal_id = ${group}) AS n,
            (SELECT MAX(p.risk) FROM role_permissions rp JOIN permissions p ON p.org_id = rp.org_id AND p.slug = rp.permission
              WHERE rp.org_id = ${org} AND rp.role IN (${groupRoles(org, group)})) AS r`,
  );
  const rows = Number(row?.n ?? 0);
  return { rows, rank: rows > 0 ? (row?.r ?? null) : null };
}

/** Everything a subject's rows derive from: what (de)activating or deleting it fans out to. */
async function subjectFanout(tx: Sql, org: OrgId, id: SubjectId) {
  const rows = await countDesired(tx, sql`d.org_id = ${org} AND d.subject_id = ${id}`);
  return { rows, rank: rows > 0 ? await maxRiskOfRoles(tx, org, subjectRoles(org, id)) : null };
}

/** All of a subject's read-model rows. */
const subjectRows = (org: OrgId, id: SubjectId) => sql`org_id = ${org} AND subject_id = ${id}`;

export function createDirectoryCommands(env: WriteEnv) {
  return {
    async putSubject(orgIn: string, idIn: string, body: { kind: string; active?: boolean }, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const id = parseSubjectId(idIn, 'id');
      const kind = parseSubjectKind(body.kind);
      const active = body.active ?? true;
      const written = await runWrite(env, { org, kind: 'subject.create', body: { id, kind, active }, ctx }, async (tx): Promise<Outcome> => {
        await assertNotDirectoryOwned(tx, org, 'User', id);
        const existing = await tx.get<{ kind: string; active: number }>('SELECT kind, active FROM subjects WHERE org_id = $1 AND id = $2', [org, id]);
        if (!existing) {
          await tx.run('INSERT INTO subjects (org_id, id, kind, active) VALUES ($1, $2, $3, $4)', [org, id, kind, active ? 1 : 0]);
          return { changed: true };
        }
        if (existing.kind !== kind) throw conflict('kind', `subject '${id}' exists with kind '${existing.kind}'; kind cannot change`);
        if (Boolean(existing.active) === active) return NO_CHANGE;
        if (active) {
          await tx.run('UPDATE subjects SET active = 1 WHERE org_id = $1 AND id = $2', [org, id]);
          const f = await subjectFanout(tx, org, id);
          return {
            changed: true,
            kind: 'subject.activate',
            grantRank: f.rank,
            fanout: { scope: `subject:${id}`, rows: f.rows, add: [sql`d.org_id = ${org} AND d.subject_id = ${id}`] },
          };
        }
        const f = await subjectFanout(tx, org, id);
        await tx.run('UPDATE subjects SET active = 0 WHERE org_id = $1 AND id = $2', [org, id]);
        return { changed: true, kind: 'subject.deactivate', revokeRank: f.rank, fanout: { scope: `subject:${id}`, rows: f.rows, remove: [subjectRows(org, id)] } };
      });
      return resultOf(written);
    },

    async deleteSubject(orgIn: string, idIn: string, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const id = parseSubjectId(idIn, 'id');
      const written = await runWrite(env, { org, kind: 'subject.delete', body: { id }, ctx }, async (tx): Promise<Outcome> => {
        await requireSubject(tx, org, id, 'id');
        await assertNotDirectoryOwned(tx, org, 'User', id);
        const f = await subjectFanout(tx, org, id);
        await tx.run('DELETE FROM memberships WHERE org_id = $1 AND subject_id = $2', [org, id]);
        await tx.run("DELETE FROM assignments WHERE org_id = $1 AND principal_type = 'subject' AND principal_id = $2", [org, id]);
        await tx.run('DELETE FROM subjects WHERE org_id = $1 AND id = $2', [org, id]);
        return { changed: true, revokeRank: f.rank, fanout: { scope: `subject:${id}`, rows: f.rows, remove: [subjectRows(org, id)] } };
      });
      return resultOf(written);
    },

    async putGroup(orgIn: string, idIn: string, body: { name?: string | null }, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const id = parseGroupId(idIn, 'id');
      const name = parseName(body.name);
      const written = await runWrite(env, { org, kind: 'group.create', body: { id, name }, ctx }, async (tx) => {
        await assertNotDirectoryOwned(tx, org, 'Group', id);
        const existing = await tx.get<{ name: string | null }>('SELECT name FROM groups WHERE org_id = $1 AND id = $2', [org, id]);
        if (!existing) {
          await tx.run('INSERT INTO groups (org_id, id, name) VALUES ($1, $2, $3)', [org, id, name]);
          return { changed: true };
        }
        if (existing.name === name) return NO_CHANGE;
        await tx.run('UPDATE groups SET name = $3 WHERE org_id = $1 AND id = $2', [org, id, name]);
        return { changed: true, kind: 'group.update' };
      });
      return resultOf(written);
    },

    async deleteGroup(orgIn: string, idIn: string, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const id = parseGroupId(idIn, 'id');
      const written = await runWrite(env, { org, kind: 'group.delete', body: { id }, ctx }, async (tx): Promise<Outcome> => {
        await requireGroup(tx, org, id, 'id');
        await assertNotDirectoryOwned(tx, org, 'Group', id);
        const rows = await countGroupRows(tx, org, id);
        const revokeRank = rows > 0 ? await maxRiskOfRoles(tx, org, groupRoles(org, id)) : null;
        await tx.run("DELETE FROM assignments WHERE org_id = $1 AND principal_type = 'group' AND principal_id = $2", [org, id]);
        await tx.run('DELETE FROM memberships WHERE org_id = $1 AND group_id = $2', [org, id]);
        await tx.run('DELETE FROM groups WHERE org_id = $1 AND id = $2', [org, id]);
        return {
          changed: true,
          revokeRank,
          fanout: { scope: `group:${id}`, rows, remove: [sql`org_id = ${org} AND group_id = ${id}`] },
        };
      });
      return resultOf(written);
    },

    async addMember(orgIn: string, groupIn: string, subjectIn: string, ctx?: WriteContext): Promise<WriteResult> {
      return changeMembership(orgIn, groupIn, subjectIn, 'add', ctx);
    },

    async removeMember(orgIn: string, groupIn: string, subjectIn: string, ctx?: WriteContext): Promise<WriteResult> {
      return changeMembership(orgIn, groupIn, subjectIn, 'remove', ctx);
    },
  };

  /**
   * A membership change fans out to the subject's rows through the group: one per group assignment
   * (if the subject is active). Its job scope is the subject, so changes to one subject coalesce.
   */
  async function changeMembership(orgIn: string, groupIn: string, subjectIn: string, op: 'add' | 'remove', ctx?: WriteContext) {
    const org = parseOrgId(orgIn);
    const group = parseGroupId(groupIn);
    const subject = parseSubjectId(subjectIn);
    const started = process.hrtime.bigint();
    const written = await runWrite(env, { org, kind: `membership.${op}`, body: { group, subject }, ctx }, async (tx): Promise<Outcome> => {
      // Both lookups in one round trip (this is the hot path); the group is reported first.
      // The group's owning directory too: a directory-owned group's members change only through SCIM.
      const found = await tx.get<{ g: number | null; active: number | null; owner: string | null }>(
        `SELECT (SELECT 1 FROM groups WHERE org_id = $1 AND id = $2) AS g, (SELECT active FROM subjects WHERE org_id = $1 AND id = $3) AS active,
                (SELECT directory_id FROM scim_resources WHERE org_id = $1 AND resource_type = 'Group' AND id = $2) AS owner`,
        [org, group, subject],
      );
      if (found?.g === null || found?.g === undefined) throw notFound('group', 'group', group);
      if (found.active === null || found.active === undefined) throw notFound('subject', 'subject', subject);
      if (found.owner !== null && found.owner !== undefined) await assertNotDirectoryOwned(tx, org, 'Group', group, 'group');
      const changed =
        op === 'add'
          ? await tx.run('INSERT INTO memberships (org_id, group_id, subject_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [org, group, subject])
          : await tx.run('DELETE FROM memberships WHERE org_id = $1 AND group_id = $2 AND subject_id = $3', [org, group, subject]);
      if (changed === 0) return NO_CHANGE;
      const fan = Number(found.active) === 1 ? await groupFanout(tx, org, group) : { rows: 0, rank: null };
      const { rows, rank } = fan;
      return {
        changed: true,
        ...(op === 'add' ? { grantRank: rank } : { revokeRank: rank }),
        fanout:
          op === 'add'
            ? { scope: `subject:${subject}`, rows, add: [sql`d.org_id = ${org} AND d.subject_id = ${subject} AND d.group_id = ${group}`] }
            : { scope: `subject:${subject}`, rows, remove: [sql`org_id = ${org} AND subject_id = ${subject} AND group_id = ${group}`] },
      };
    });
    const result = resultOf(written);
    if (result.changed && env.metrics) {
      const direction = op === 'add' ? 'grant' : 'revoke';
      env.metrics.membershipChange.observe({ direction, mode: result.propagation.mode }, Number(process.hrtime.bigint() - started) / 1e9);
    }
    return result;
  }
}

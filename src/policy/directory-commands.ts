/**
 * Directory writes: subjects, groups and memberships. Each validates its input, changes the source
 * rows, classifies the change from the source (direction, highest tier, rows it fans out to) and
 * hands the frame an inline fan-out that the propagation policy may run now or defer to a job.
 */
import { conflict, notFound } from '../domain/errors.ts';
import { parseGroupId, parseName, parseOrgId, parseSubjectId, parseSubjectKind, type GroupId, type OrgId, type SubjectId } from '../domain/model.ts';
import type { WriteContext, WriteResult } from '../domain/contract.ts';
import { sql, type Sql, type SqlFragment } from '../storage/database.ts';
import { openJobProbe } from '../propagation/queue.ts';
import { countDesired, countGroupRows, maxRiskOfRoles } from '../derivation/read-model.ts';
import { desired, groupAncestors, notDerived, subjectsUnder } from '../derivation/rule.ts';
import { addGroupToClosure, loadGroupEdges, removeEdgeFromClosure, removeGroupFromClosure } from '../derivation/closure.ts';
import { countSubjectsUnder, createMembershipCommands } from './membership-commands.ts';
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
const subjectRoles = (org: OrgId, subject: SubjectId) => desired(sql`d.org_id = ${org} AND d.subject_id = ${subject}`, sql`d.role`, 'subjects');

/** Everything a subject's rows derive from: what (de)activating or deleting it fans out to. */
async function subjectFanout(tx: Sql, org: OrgId, id: SubjectId) {
  const rows = await countDesired(tx, sql`d.org_id = ${org} AND d.subject_id = ${id}`, 'subjects');
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
            fanout: { scope: `subject:${id}`, rows: f.rows, add: [sql`d.org_id = ${org} AND d.subject_id = ${id}`], anchor: 'subjects' },
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
          await addGroupToClosure(tx, org, id);
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
        return deleteGroupOutcome(tx, org, id);
      });
      return resultOf(written);
    },

    ...createMembershipCommands(env),
  };
}

/**
 * Predicates (in chunks of 500 subjects) on the group rows of `subjects` that are not through `group`
 * and no longer derived, with how many rows each matches now; none when there are none.
 */
async function staleGroupRows(tx: Sql, org: string, group: string, subjects: string[]): Promise<{ where: SqlFragment; n: number }[]> {
  const out: { where: SqlFragment; n: number }[] = [];
  for (let i = 0; i < subjects.length; i += 500) {
    const where = sql`org_id = ${org} AND subject_id IN (${sql.join(subjects.slice(i, i + 500))}) AND group_id IS NOT NULL AND group_id <> ${group} AND ${notDerived('effective_assignments')}`;
    const n = Number((await tx.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM effective_assignments WHERE ${where}`))?.n ?? 0);
    if (n > 0) out.push({ where, n });
  }
  return out;
}

/** The group's assignments, memberships and nested edges both ways (uncounted from the closure), then the group. */
async function deleteGroupRows(tx: Sql, org: string, id: string, edges: { group_id: string; member_id: string }[], also?: () => Promise<unknown>) {
  await tx.run("DELETE FROM assignments WHERE org_id = $1 AND principal_type = 'group' AND principal_id = $2", [org, id]);
  await tx.run('DELETE FROM memberships WHERE org_id = $1 AND group_id = $2', [org, id]);
  for (const e of edges) {
    await removeEdgeFromClosure(tx, org, e.group_id, e.member_id);
    await tx.run(sql`DELETE FROM group_members WHERE org_id = ${org} AND group_id = ${e.group_id} AND member_id = ${e.member_id}`);
  }
  await removeGroupFromClosure(tx, org, id);
  await also?.();
  await tx.run('DELETE FROM groups WHERE org_id = $1 AND id = $2', [org, id]);
}

/**
 * Deletes a group (its assignments, memberships, nested edges both ways, then the group; `also` runs
 * just before the group row goes) and describes the revocation: flat, what it granted its members;
 * nested, what it and every group above it granted everyone under it. Shared with SCIM's delete.
 */
export async function deleteGroupOutcome(tx: Sql, orgIn: string, idIn: string, also?: () => Promise<unknown>): Promise<Outcome> {
  const [org, id] = [orgIn as OrgId, idIn as GroupId];
  const edges = (await loadGroupEdges(tx, org)).filter((e) => e.group_id === id || e.member_id === id);
  if (edges.length === 0) {
    const rows = await countGroupRows(tx, org, id);
    const revokeRank = rows > 0 ? await maxRiskOfRoles(tx, org, groupRoles(org, id)) : null;
    // A member may still hold rows through groups the group was cut out of whose clean-up job is
    // still queued: that job walks everyone under the group — nobody, once it is gone. Such rows are
    // no longer derived; they go with this change (and then only an organization-wide pass finds
    // their subjects, as for a nested group). With no job open (read under the organization's
    // exclusive lock, under which jobs open and finish: docs/adr/0013-*) the read model is in step
    // and there are none, so the members' other rows are not read at all: probing them scans the
    // read model of every member, inside the delete's transaction.
    const open = Boolean((await tx.get<{ x: number | null }>(sql`SELECT ${openJobProbe(org)} AS x`))?.x);
    const members = open ? (await tx.all<{ subject_id: string }>('SELECT subject_id FROM memberships WHERE org_id = $1 AND group_id = $2', [org, id])).map((r) => r.subject_id) : [];
    await deleteGroupRows(tx, org, id, [], also);
    const stale = await staleGroupRows(tx, org, id, members);
    if (stale.length === 0) return { changed: true, revokeRank, fanout: { scope: `group:${id}`, rows, remove: [sql`org_id = ${org} AND group_id = ${id}`] } };
    return { changed: true, revokeRank, fanout: { scope: `organization:${org}`, rows: rows + stale.reduce((n, p) => n + p.n, 0), remove: [sql`org_id = ${org} AND group_id = ${id}`, ...stale.map((p) => p.where)] } };
  }
  // Nested: everyone under the group loses what it and every group above it granted (unless
  // another path remains). Counted, and the subjects listed, before the edges go: afterwards
  // nothing leads from the group to them.
  const above = (await tx.all<{ ancestor_id: string }>(groupAncestors(org, id))).map((r) => r.ancestor_id);
  const groups = sql.join(above);
  const onAbove = sql`SELECT a.role FROM assignments a WHERE a.org_id = ${org} AND a.principal_type = 'group' AND a.principal_id IN (${groups})`;
  const n = Number((await tx.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM (${onAbove}) x`))?.n ?? 0);
  const rows = n === 0 ? 0 : n * (await countSubjectsUnder(tx, org, id));
  const revokeRank = rows > 0 ? await maxRiskOfRoles(tx, org, onAbove) : null;
  const under = (await tx.all<{ subject_id: string }>(sql`SELECT DISTINCT subject_id FROM (${subjectsUnder(org, id)}) u`)).map((r) => r.subject_id);
  await deleteGroupRows(tx, org, id, edges, also);
  // Every group row of those subjects that is no longer derived (see membership-commands.ts), in chunks.
  const remove = [sql`org_id = ${org} AND group_id = ${id}`];
  for (let i = 0; i < under.length; i += 500) {
    remove.push(sql`org_id = ${org} AND subject_id IN (${sql.join(under.slice(i, i + 500))}) AND group_id IS NOT NULL AND ${notDerived('effective_assignments')}`);
  }
  // As a job: the group's memberships are gone, so only an organization-wide pass finds its subjects.
  return { changed: true, revokeRank, fanout: { scope: `organization:${org}`, rows, remove } };
}

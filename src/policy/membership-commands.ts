/**
 * Membership writes: a subject in a group, or a group nested in a group (`group:ID`), optionally
 * until `expiresAt`; and the expiry job's removal of one that expired. Each changes the source rows
 * (and, for a nested edge, the counted closure) and hands the frame its fan-out:
 *
 *   subject S in g   S's rows through g and every group above g        scope subject:S
 *   group c in p     the rows of everyone under c through p and above   scope subtree:c
 *
 * An existing membership written again with another expiry is `membership.update` (no fan-out, or a
 * grant if it had expired and is revived); the expiry job's removal is `membership.expired`, decided
 * at the instant of the expiry.
 */
import { notFound, validation } from '../domain/errors.ts';
import { assertEdgeAllowed, isLive, parseExpiresAt } from '../domain/groups.ts';
import { parseGroupId, parseOrgId, parseSubjectId, type GroupId, type OrgId, type SubjectId } from '../domain/model.ts';
import type { GroupMember, MemberQuery, WriteContext, WriteResult } from '../domain/contract.ts';
import { decodeCursor, pageLimit, pageOf } from '../domain/page.ts';
import { sql, type Sql, type SqlFragment } from '../storage/database.ts';
import { openJobProbe } from '../propagation/queue.ts';
import { groupAncestors, notDerived, subjectsUnder } from '../derivation/rule.ts';
import { addEdgeToClosure, loadGroupEdges, removeEdgeFromClosure } from '../derivation/closure.ts';
import { NO_CHANGE, resultOf, runWrite, type Outcome, type WriteEnv } from './write.ts';
import { ownerColumns, ownerValue, refuseOwned } from './directory-ownership.ts';

export type Member = { type: 'subject'; id: SubjectId } | { type: 'group'; id: GroupId };

/** `group:ID` is a nested group (errors on `member`); `subject:ID` or a bare id is a subject. */
export function parseMember(v: unknown): Member {
  if (typeof v === 'string' && v.startsWith('group:')) return { type: 'group', id: parseGroupId(v.slice(6), 'member') };
  return { type: 'subject', id: parseSubjectId(typeof v === 'string' && v.startsWith('subject:') ? v.slice(8) : v) };
}
export const memberString = (m: Member) => `${m.type}:${m.id}`;

const EXPIRY_ACTOR = 'lockstep:expiry';

/** Assignments of the groups `groups` selects: how many (`n`), and the highest risk of their roles (`r`), as two columns. */
const assignmentColumns = (org: OrgId, groups: SqlFragment): SqlFragment =>
  sql`(SELECT COUNT(*) FROM assignments WHERE org_id = ${org} AND principal_type = 'group' AND principal_id IN (${groups})) AS n,
      (SELECT MAX(p.risk) FROM role_permissions rp JOIN permissions p ON p.org_id = rp.org_id AND p.slug = rp.permission
        WHERE rp.org_id = ${org} AND rp.role IN (
          SELECT a.role FROM assignments a WHERE a.org_id = ${org} AND a.principal_type = 'group' AND a.principal_id IN (${groups}))) AS r`;

type Assignments = { n: number; rank: number | null };
const assignmentsFrom = (row: { n?: number | null; r?: number | null } | undefined): Assignments => {
  const n = Number(row?.n ?? 0);
  return { n, rank: n > 0 ? (row?.r ?? null) : null };
};

/** Assignments of the groups `groups` selects: how many, and the highest risk of their roles (one round trip). */
async function assignmentsOf(tx: Sql, org: OrgId, groups: SqlFragment): Promise<Assignments> {
  return assignmentsFrom(await tx.get<{ n: number; r: number | null }>(sql`SELECT ${assignmentColumns(org, groups)}`));
}

/** Active subjects in `group` or a group nested in it. */
export async function countSubjectsUnder(tx: Sql, org: OrgId, group: string): Promise<number> {
  const row = await tx.get<{ n: number }>(
    sql`SELECT COUNT(*) AS n FROM subjects s WHERE s.org_id = ${org} AND s.active = 1 AND s.id IN (${subjectsUnder(org, group)})`,
  );
  return Number(row?.n ?? 0);
}

type Op = 'add' | 'remove' | 'expire';

export function createMembershipCommands(env: WriteEnv) {
  return {
    addMember: (org: string, group: string, member: string, body: { expiresAt?: string | null } = {}, ctx?: WriteContext) =>
      changeMembership(org, group, member, 'add', body.expiresAt, ctx),
    removeMember: (org: string, group: string, member: string, ctx?: WriteContext) => changeMembership(org, group, member, 'remove', undefined, ctx),
    /** The expiry job's write: removes the membership if its expiry has passed (else changes nothing). */
    expireMembership: (org: string, group: string, member: string) => changeMembership(org, group, member, 'expire', undefined, { actor: EXPIRY_ACTOR }),
    /** Members of a group, both kinds, with their expiry. */
    async listMembers(orgIn: string, groupIn: string, q: MemberQuery = {}): Promise<{ members: GroupMember[]; next: string | null }> {
      const org = parseOrgId(orgIn);
      const group = parseGroupId(groupIn, 'id');
      if (q.kind !== undefined && q.kind !== 'subject' && q.kind !== 'group') throw validation('kind', "kind must be 'subject' or 'group'");
      const limit = pageLimit(q.limit);
      const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor, ['s'])[0];
      if (!(await env.db.get(sql`SELECT 1 AS x FROM groups WHERE org_id = ${org} AND id = ${group}`))) throw notFound('id', 'group', group);
      const subjects = sql`SELECT 'subject:' || subject_id AS member, expires_at FROM memberships WHERE org_id = ${org} AND group_id = ${group}`;
      const groups = sql`SELECT 'group:' || member_id AS member, expires_at FROM group_members WHERE org_id = ${org} AND group_id = ${group}`;
      const both = q.kind === 'subject' ? subjects : q.kind === 'group' ? groups : sql`${subjects} UNION ALL ${groups}`;
      const rows = await env.db.all<{ member: string; expires_at: number | null }>(
        sql`SELECT member, expires_at FROM (${both}) m ${after === undefined ? sql.empty : sql`WHERE member > ${after}`}
            ORDER BY member ${limit === undefined ? sql.empty : sql`LIMIT ${limit + 1}`}`,
      );
      const page = pageOf(rows, limit, (r) => [r.member]);
      return { members: page.items.map((r) => ({ member: r.member, expiresAt: r.expires_at === null ? null : new Date(Number(r.expires_at)).toISOString() })), next: page.next };
    },
  };

  async function changeMembership(orgIn: string, groupIn: string, memberIn: string, op: Op, expiresIn: unknown, ctx?: WriteContext): Promise<WriteResult> {
    const org = parseOrgId(orgIn);
    const group = parseGroupId(groupIn);
    const member = parseMember(memberIn);
    const expiresAt = op === 'add' ? parseExpiresAt(expiresIn, env.now()) : null;
    const kind = op === 'add' ? 'membership.add' : op === 'remove' ? 'membership.remove' : 'membership.expired';
    const body = { group, member: memberString(member), ...(op === 'add' ? { expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString() } : {}) };
    const started = process.hrtime.bigint();
    // A subject's membership changes only that subject's rows: it locks the subject (and the
    // organization shared); a nested edge changes the rows of every member below it: the organization.
    const subjects = member.type === 'subject' ? [member.id] : undefined;
    const written = await runWrite(env, { org, kind, body, ctx, ...(subjects ? { subjects } : {}) }, async (tx, frame): Promise<Outcome> => {
      const now = env.now();
      // Every lookup in one round trip (this is the hot path, and its locks are held):
      // the group and the member (the group is reported first), the membership, the directory that
      // owns the group, whether the organization records events and, for a subject, the assignments
      // its fan-out multiplies — of the group and the groups above it, which the change leaves as
      // they are. (A nested edge changes the groups above its member: it reads them as it goes.)
      const common = sql`(SELECT 1 FROM groups WHERE org_id = ${org} AND id = ${group}) AS g, ${ownerColumns(org, 'Group', group)},
                         (SELECT 1 FROM event_streams WHERE org_id = ${org}) AS stream,
                         ${openJobProbe(org)} AS open_jobs`;
      type Found = {
        g: number | null;
        m: number | null;
        exp: number | null;
        present: number | null;
        owner_id: string | null;
        owner_name: string | null;
        stream: number | null;
        open_jobs: number | null;
        n?: number | null;
        r?: number | null;
        changed_row?: number | null;
      };
      const columns =
        member.type === 'subject'
          ? sql`${common}, ${assignmentColumns(org, groupAncestors(org, group))},
                (SELECT active FROM subjects WHERE org_id = ${org} AND id = ${member.id}) AS m,
                (SELECT 1 FROM memberships WHERE org_id = ${org} AND group_id = ${group} AND subject_id = ${member.id}) AS present,
                (SELECT expires_at FROM memberships WHERE org_id = ${org} AND group_id = ${group} AND subject_id = ${member.id}) AS exp`
          : sql`${common},
                (SELECT 1 FROM groups WHERE org_id = ${org} AND id = ${member.id}) AS m,
                (SELECT 1 FROM group_members WHERE org_id = ${org} AND group_id = ${group} AND member_id = ${member.id}) AS present,
                (SELECT expires_at FROM group_members WHERE org_id = ${org} AND group_id = ${group} AND member_id = ${member.id}) AS exp`;
      // PostgreSQL, a subject's membership: the row is inserted or deleted by the lookup itself, a
      // data-modifying CTE whose condition is everything the command refuses the change for or does
      // instead — for an add, the group and the subject exist, no directory owns the group, the row
      // is absent; for a removal, the row is present (so are its group and subject: foreign keys),
      // no directory owns the group (a removal) or its expiry has passed (the expiry job's) — read
      // in the lookup's snapshot, the one its columns are read in. So the row changes exactly when
      // the command below decides to change it, with nothing after that refuses the write
      // (docs/adr/0026-*), and the tail's fan-out, a later statement, reads the source as changed.
      // The row is written only by holders of the subject's lock and organization-wide writes,
      // which cannot run beside this one. SQLite (no round trips, no data-modifying CTEs) changes
      // the row by a statement of its own below.
      const sourceHere = member.type === 'subject' && tx.dialect === 'postgres';
      const sourceChange = (): SqlFragment => {
        const theRow = sql`org_id = ${org} AND group_id = ${group} AND subject_id = ${member.id}`;
        const unowned = sql`${ownerValue(org, 'Group', group)} IS NULL`;
        return op === 'add'
          ? sql`INSERT INTO memberships (org_id, group_id, subject_id, expires_at)
                SELECT ${org}::text, ${group}::text, ${member.id}::text, ${expiresAt}::bigint
                 WHERE EXISTS (SELECT 1 FROM groups WHERE org_id = ${org} AND id = ${group})
                   AND EXISTS (SELECT 1 FROM subjects WHERE org_id = ${org} AND id = ${member.id})
                   AND NOT EXISTS (SELECT 1 FROM memberships WHERE ${theRow}) AND ${unowned}`
          : op === 'remove'
            ? sql`DELETE FROM memberships WHERE ${theRow} AND ${unowned}`
            : sql`DELETE FROM memberships WHERE ${theRow} AND expires_at <= ${now}`;
      };
      const found = sourceHere
        ? await frame.unguarded<Found>(
            sql`WITH changed AS (${sourceChange()} RETURNING 1) SELECT ${columns}, (SELECT COUNT(*) FROM changed) AS changed_row`,
            (row) => Number(row?.changed_row ?? 0) > 0,
          )
        : await tx.get<Found>(sql`SELECT ${columns}`);
      if (found?.g === null || found?.g === undefined) throw notFound('group', 'group', group);
      if (found.m === null || found.m === undefined) throw notFound(member.type === 'subject' ? 'subject' : 'member', member.type, member.id);
      // A directory-owned group's members change only through its directory (the expiry job is not a /v1 write).
      if (op !== 'expire') refuseOwned('Group', group, found.owner_id ? { id: found.owner_id, name: found.owner_name ?? '' } : null, 'group');
      const recording = found.stream !== null && found.stream !== undefined;
      const known = member.type === 'subject' ? assignmentsFrom(found) : undefined;
      const inSync = found.open_jobs === null || found.open_jobs === undefined;
      const present = found.present !== null && found.present !== undefined;
      const prevExpiry = found.exp === null || found.exp === undefined ? null : Number(found.exp);
      const active = member.type === 'group' || Number(found.m) === 1;
      // What the command decides below, for the row (G, S), against what the lookup did: they
      // agree by construction; should they not, nothing of the write may commit.
      if (sourceHere) {
        const decided = op === 'add' ? !present : op === 'remove' ? present : present && prevExpiry !== null && prevExpiry <= now;
        if (decided !== Number(found.changed_row ?? 0) > 0) throw new Error(`membership (${group}, ${member.id}): the lookup's ${op} disagrees with what it read`);
      }

      if (op === 'add') {
        if (present && prevExpiry === expiresAt) return NO_CHANGE;
        if (present) {
          await (member.type === 'subject'
            ? tx.run(sql`UPDATE memberships SET expires_at = ${expiresAt} WHERE org_id = ${org} AND group_id = ${group} AND subject_id = ${member.id}`)
            : tx.run(sql`UPDATE group_members SET expires_at = ${expiresAt} WHERE org_id = ${org} AND group_id = ${group} AND member_id = ${member.id}`));
          // A live membership's rows are unchanged; an expired one comes back (its rows may still
          // be in the read model, or may have been cleaned: the fan-out restores them either way).
          if (isLive(prevExpiry, now)) return { changed: true, kind: 'membership.update', recording };
        } else if (member.type === 'subject') {
          // PostgreSQL: inserted by the lookup. SQLite: here.
          if (!sourceHere) await tx.run(sql`INSERT INTO memberships (org_id, group_id, subject_id, expires_at) VALUES (${org}, ${group}, ${member.id}, ${expiresAt})`);
        } else {
          const edges = await loadGroupEdges(tx, org);
          assertEdgeAllowed(graphOf(edges), group, member.id);
          await tx.run(sql`INSERT INTO group_members (org_id, group_id, member_id, expires_at) VALUES (${org}, ${group}, ${member.id}, ${expiresAt})`);
          await addEdgeToClosure(tx, org, group, member.id);
        }
        const kindNow = present ? 'membership.update' : 'membership.add';
        return { ...(active ? await fanout(tx, org, member, 'grant', groupAncestors(org, group), known) : { changed: true }), kind: kindNow, recording };
      }

      if (!present) return NO_CHANGE;
      if (op === 'expire' && (prevExpiry === null || prevExpiry > now)) return NO_CHANGE;
      // A subject's removal leaves the groups above unchanged; an edge's changes them: read them first.
      const above = member.type === 'subject' ? groupAncestors(org, group) : sql.join(await ancestorsOf(tx, org, group));
      // A subject's row: PostgreSQL, deleted by the lookup; SQLite, here.
      if (member.type === 'subject') {
        if (!sourceHere) await tx.run(sql`DELETE FROM memberships WHERE org_id = ${org} AND group_id = ${group} AND subject_id = ${member.id}`);
      } else {
        await tx.run(sql`DELETE FROM group_members WHERE org_id = ${org} AND group_id = ${group} AND member_id = ${member.id}`);
        await removeEdgeFromClosure(tx, org, group, member.id);
      }
      const effect: Outcome = { ...(active ? await fanout(tx, org, member, 'revoke', above, known, inSync) : { changed: true }), recording };
      // A removal of what had already expired revokes nothing new; its rows still go.
      if (op === 'remove' && !isLive(prevExpiry, now)) return { ...effect, revokeRank: null };
      return op === 'expire' ? { ...effect, decidedAt: prevExpiry! } : effect;
    });
    const result = resultOf(written);
    if (result.changed && env.metrics && op !== 'expire') {
      const direction = op === 'add' ? 'grant' : 'revoke';
      env.metrics.membershipChange.observe({ direction, mode: result.propagation.mode }, Number(process.hrtime.bigint() - started) / 1e9);
    }
    return result;
  }

  /**
   * The rows a membership change touches: its member's subjects (S, or everyone under group c) times
   * the assignments of `groups` (the group and every group it is nested in, as before the change),
   * unless the caller `known` them already. `inSync`: the organization has no open job (see below).
   */
  async function fanout(
    tx: Sql,
    org: OrgId,
    member: Member,
    direction: 'grant' | 'revoke',
    groups: SqlFragment,
    known?: Assignments,
    inSync = false,
  ): Promise<Outcome> {
    const a = known ?? (await assignmentsOf(tx, org, groups));
    const subjects = member.type === 'subject' ? sql`${member.id}` : subjectsUnder(org, member.id);
    const rows = a.n === 0 ? 0 : a.n * (member.type === 'subject' ? 1 : await countSubjectsUnder(tx, org, member.id));
    // Classified by reach (docs/semantics.md): the member's subjects × the assignments above, even
    // when another path already gave a subject the same row; nothing reached, nothing granted.
    const rank = rows > 0 ? a.rank : null;
    // A revocation cleans every group row of the member's subjects that is no longer derived, not only
    // those through `groups`: a row left by an earlier change whose job is still pending (say, an
    // edge above removed asynchronously) may be one the job's walk can no longer reach once this
    // subject has left the subtree it walks.
    // With no job open in the organization (read under its lock: jobs open and finish only under
    // it), the read model holds no such row, and the change can only underive rows through `groups`:
    // a derivation that used the membership (or edge) names a group at or above its group. Then only
    // those are probed — a subject's standing set elsewhere (300 rows in the benchmark: 1 ms on
    // PostgreSQL) is not. (A subject's `groups` is a subquery: on PostgreSQL as `= ANY (ARRAY (…))`,
    // evaluated once — as `IN (…)` the planner ran the provenance probes on all 303 rows before the
    // semi-join. An edge's is a list of values, an `IN` list either way.)
    const subquery = member.type === 'subject' && tx.dialect === 'postgres';
    const through = !inSync ? sql.empty : subquery ? sql`AND group_id = ANY (ARRAY (${groups}))` : sql`AND group_id IN (${groups})`;
    const stale = sql`org_id = ${org} AND subject_id IN (${subjects}) AND group_id IS NOT NULL ${through} AND ${notDerived('effective_assignments')}`;
    return {
      changed: true,
      ...(direction === 'grant' ? { grantRank: rank } : { revokeRank: rank }),
      fanout: {
        scope: member.type === 'subject' ? `subject:${member.id}` : `subtree:${member.id}`,
        rows,
        ...(direction === 'grant'
          ? { add: [sql`d.org_id = ${org} AND d.subject_id IN (${subjects}) AND d.group_id IN (${groups})`], anchor: 'subjects' as const, groups }
          : // Another path (a diamond, another membership) may still derive a row: only the rest go.
            { remove: [stale] }),
      },
    };
  }
}

/** `group` and the groups it is nested in, now. */
async function ancestorsOf(tx: Sql, org: OrgId, group: GroupId): Promise<string[]> {
  return (await tx.all<{ ancestor_id: string }>(groupAncestors(org, group))).map((r) => r.ancestor_id);
}

export function graphOf(edges: { group_id: string; member_id: string }[]) {
  const children = new Map<string, string[]>();
  const parents = new Map<string, string[]>();
  for (const e of edges) {
    children.set(e.group_id, [...(children.get(e.group_id) ?? []), e.member_id]);
    parents.set(e.member_id, [...(parents.get(e.member_id) ?? []), e.group_id]);
  }
  return { childrenOf: (g: string) => children.get(g) ?? [], parentsOf: (g: string) => parents.get(g) ?? [] };
}

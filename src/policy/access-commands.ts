/**
 * Access-policy writes: organizations, permissions, roles, resources and assignments.
 */
import { LockstepError, notFound, validation } from '../domain/errors.ts';
import {
  MAX_RESOURCE_DEPTH,
  parseAssignmentId,
  parseName,
  parseOrgId,
  parsePermissionSlug,
  parsePrincipal,
  parseResourceRef,
  parseRiskTier,
  parseRoleSlug,
  principalString,
  resourceRef,
  tierRank,
  type OrgId,
  type ResourceRef,
  type AssignmentId,
} from '../domain/model.ts';
import type { AssignmentResult, WriteContext, WriteResult } from '../domain/contract.ts';
import { sql, type Sql, type SqlFragment } from '../storage/database.ts';
import { countDesired, maxRiskOfRoles } from '../derivation/read-model.ts';
import { ancestors, subjectsUnder, subtree } from '../derivation/rule.ts';
import { isLive, parseExpiresAt } from '../domain/groups.ts';
import { countSubjectsUnder } from './membership-commands.ts';
import { NO_CHANGE, resultOf, runWrite, type Outcome, type WriteEnv } from './write.ts';
import { assignmentScopeKey } from '../propagation/scope.ts';

async function requireResource(tx: Sql, org: OrgId, ref: ResourceRef, field: string) {
  const row = await tx.get<{ parent: string | null }>('SELECT parent FROM resources WHERE org_id = $1 AND ref = $2', [org, ref]);
  if (!row) throw notFound(field, 'resource', ref);
  return row;
}

/** Number of resources on the chain from the root down to `ref`, both counted. */
async function depthOf(tx: Sql, org: OrgId, ref: ResourceRef): Promise<number> {
  const row = await tx.get<{ n: number }>(sql`WITH RECURSIVE ${ancestors(org, ref)} SELECT COUNT(*) AS n FROM anc`);
  return Number(row?.n ?? 0);
}

/** Highest risk of the roles assigned on the ancestors-or-self of $2. */
const maxRiskOnAncestors = (tx: Sql, org: OrgId, ref: ResourceRef) =>
  maxRiskOfRoles(tx, org, sql`WITH RECURSIVE ${ancestors(org, ref)} SELECT a.role FROM assignments a JOIN anc ON a.org_id = ${org} AND a.resource = anc.ref`);

interface AssignmentSource {
  id: string;
  principal_type: 'subject' | 'group';
  principal_id: string;
  role: string;
  resource: string;
}

/**
 * An assignment's read-model rows, found by probing the primary key (org, subject, resource,
 * assignment) for its principal or each current member of its group. A row held by someone who
 * already left the group is not reached here; it is covered by that subject's own job (see
 * propagation/scope.ts).
 */
function assignmentRows(org: OrgId, a: AssignmentSource): SqlFragment {
  const who =
    a.principal_type === 'subject'
      ? sql`subject_id = ${a.principal_id}`
      : sql`subject_id IN (${subjectsUnder(org, a.principal_id)})`;
  return sql`org_id = ${org} AND resource = ${a.resource} AND assignment_id = ${a.id} AND ${who}`;
}

/** An assignment fans out to one row per active subject it reaches. */
async function assignmentFanout(tx: Sql, org: OrgId, a: Pick<AssignmentSource, 'principal_type' | 'principal_id'>, role: string) {
  const rows =
    a.principal_type === 'group'
      ? await countSubjectsUnder(tx, org, a.principal_id)
      : Number((await tx.get<{ n: number }>('SELECT COUNT(*) AS n FROM subjects WHERE org_id = $1 AND id = $2 AND active = 1', [org, a.principal_id]))?.n ?? 0);
  return { rows, rank: rows > 0 ? await maxRiskOfRoles(tx, org, sql`${role}`) : null };
}

export function createAccessCommands(env: WriteEnv) {
  return {
    async putOrganization(orgIn: string, body: { name?: string | null }, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const name = parseName(body.name);
      const written = await runWrite(env, { org, kind: 'organization.create', body: { name }, ctx, mayCreateOrg: true }, async (tx) => {
        const existing = await tx.get<{ name: string | null }>('SELECT name FROM organizations WHERE id = $1', [org]);
        if (!existing) {
          await tx.run('INSERT INTO organizations (id, name, revision, created_at) VALUES ($1, $2, 0, $3)', [org, name, env.now()]);
          return { changed: true };
        }
        if (existing.name === name) return NO_CHANGE;
        await tx.run('UPDATE organizations SET name = $2 WHERE id = $1', [org, name]);
        return { changed: true, kind: 'organization.update' };
      });
      return resultOf(written);
    },

    async putPermission(orgIn: string, slugIn: string, body: { risk: string }, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const slug = parsePermissionSlug(slugIn, 'slug');
      const risk = parseRiskTier(body.risk);
      const written = await runWrite(env, { org, kind: 'permission.create', body: { slug, risk }, ctx }, async (tx) => {
        const existing = await tx.get<{ risk: number }>('SELECT risk FROM permissions WHERE org_id = $1 AND slug = $2', [org, slug]);
        if (!existing) {
          await tx.run('INSERT INTO permissions (org_id, slug, risk) VALUES ($1, $2, $3)', [org, slug, tierRank(risk)]);
          return { changed: true };
        }
        if (existing.risk === tierRank(risk)) return NO_CHANGE;
        await tx.run('UPDATE permissions SET risk = $3 WHERE org_id = $1 AND slug = $2', [org, slug, tierRank(risk)]);
        return { changed: true, kind: 'permission.update' };
      });
      return resultOf(written);
    },

    async putRole(orgIn: string, slugIn: string, body: { permissions: readonly string[] }, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const slug = parseRoleSlug(slugIn, 'slug');
      if (!Array.isArray(body.permissions)) throw validation('permissions', 'permissions must be an array of permission slugs');
      const wanted = body.permissions.map((p, i) => parsePermissionSlug(p, `permissions[${i}]`));
      const unique = [...new Set(wanted)].sort();
      const written = await runWrite(env, { org, kind: 'role.create', body: { slug, permissions: unique }, ctx }, async (tx) => {
        const known = new Map<string, number>();
        if (unique.length > 0) {
          const rows = await tx.all<{ slug: string; risk: number }>(sql`SELECT slug, risk FROM permissions WHERE org_id = ${org} AND slug IN (${sql.join(unique)})`);
          for (const r of rows) known.set(r.slug, r.risk);
        }
        const missing = wanted.findIndex((p) => !known.has(p));
        if (missing >= 0) throw notFound(`permissions[${missing}]`, 'permission', wanted[missing]!);

        const role = await tx.get('SELECT slug FROM roles WHERE org_id = $1 AND slug = $2', [org, slug]);
        const current = role
          ? new Map((await tx.all<{ slug: string; risk: number }>(
              `SELECT rp.permission AS slug, p.risk FROM role_permissions rp JOIN permissions p ON p.org_id = rp.org_id AND p.slug = rp.permission
                WHERE rp.org_id = $1 AND rp.role = $2`, [org, slug])).map((r) => [r.slug, r.risk]))
          : new Map<string, number>();
        const added = unique.filter((p) => !current.has(p));
        const removed = [...current.keys()].filter((p) => !known.has(p));
        if (role && added.length === 0 && removed.length === 0) return NO_CHANGE;
        if (!role) await tx.run('INSERT INTO roles (org_id, slug) VALUES ($1, $2)', [org, slug]);
        for (const p of added) await tx.run('INSERT INTO role_permissions (org_id, role, permission) VALUES ($1, $2, $3)', [org, slug, p]);
        for (const p of removed) await tx.run('DELETE FROM role_permissions WHERE org_id = $1 AND role = $2 AND permission = $3', [org, slug, p]);
        // The read model holds roles, not permissions, so it does not change; the effective status of
        // the role's holders does, and that is what the change log classifies.
        const held = role ? await tx.get('SELECT 1 AS x FROM assignments WHERE org_id = $1 AND role = $2 LIMIT 1', [org, slug]) : undefined;
        const maxRank = (ps: string[], risk: Map<string, number>) => (ps.length ? Math.max(...ps.map((p) => risk.get(p) ?? 0)) : null);
        return {
          changed: true,
          kind: role ? 'role.update' : 'role.create',
          // What the update took away (and gave) is logged beside the new set: a receipt can then
          // say which permissions a revoking role update revoked, which the new set alone cannot.
          ...(role ? { body: { slug, permissions: unique, added, removed: removed.sort() } } : {}),
          grantRank: held ? maxRank(added, known) : null,
          revokeRank: held ? maxRank(removed, current) : null,
        };
      });
      return resultOf(written);
    },

    async putResource(orgIn: string, type: string, id: string, body: { parent?: string | null }, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const ref = resourceRef(type, id);
      const parent = body.parent === undefined || body.parent === null ? null : parseResourceRef(body.parent, 'parent');
      const written = await runWrite(env, { org, kind: 'resource.create', body: { resource: ref, parent }, ctx }, async (tx): Promise<Outcome> => {
        if (parent !== null) {
          await requireResource(tx, org, parent, 'parent');
          if (parent === ref) throw new LockstepError('CYCLE', `resource '${ref}' cannot be its own parent`, { field: 'parent' });
        }
        const existing = await tx.get<{ parent: string | null }>('SELECT parent FROM resources WHERE org_id = $1 AND ref = $2', [org, ref]);
        if (existing && existing.parent === parent) return NO_CHANGE;

        // Depth: the new parent's chain plus the height of the subtree that moves with this resource.
        let height = 1;
        if (existing && parent !== null) {
          const inSubtree = await tx.get(sql`WITH RECURSIVE ${subtree(org, ref)} SELECT 1 AS x FROM sub WHERE ref = ${parent}`);
          if (inSubtree) throw new LockstepError('CYCLE', `'${parent}' is a descendant of '${ref}'; the parent would make a cycle`, { field: 'parent' });
        }
        if (existing) {
          const h = await tx.get<{ h: number }>(sql`WITH RECURSIVE ${subtree(org, ref)} SELECT MAX(depth) AS h FROM sub`);
          height = Number(h?.h ?? 0) + 1;
        }
        if (parent !== null) {
          const depth = (await depthOf(tx, org, parent)) + height;
          if (depth > MAX_RESOURCE_DEPTH) {
            throw new LockstepError('DEPTH_EXCEEDED', `the resource chain would be ${depth} deep; the limit is ${MAX_RESOURCE_DEPTH}`, {
              field: 'parent',
              meta: { depth, limit: MAX_RESOURCE_DEPTH },
            });
          }
        }
        if (!existing) {
          await tx.run('INSERT INTO resources (org_id, ref, parent) VALUES ($1, $2, $3)', [org, ref, parent]);
          return { changed: true };
        }
        // Re-parenting moves inheritance: what the old ancestors granted is revoked, the new ones grant.
        const revokeRank = existing.parent === null ? null : await maxRiskOnAncestors(tx, org, existing.parent as ResourceRef);
        await tx.run('UPDATE resources SET parent = $3 WHERE org_id = $1 AND ref = $2', [org, ref, parent]);
        const grantRank = parent === null ? null : await maxRiskOnAncestors(tx, org, parent);
        return { changed: true, kind: 'resource.update', grantRank, revokeRank };
      });
      return resultOf(written);
    },

    async deleteResource(orgIn: string, type: string, id: string, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const ref = resourceRef(type, id);
      const written = await runWrite(env, { org, kind: 'resource.delete', body: { resource: ref }, ctx }, async (tx): Promise<Outcome> => {
        await requireResource(tx, org, ref, 'resource');
        const onIt = await tx.all<AssignmentSource>(
          sql`WITH RECURSIVE ${subtree(org, ref)}
           SELECT a.id, a.principal_type, a.principal_id, a.role, a.resource FROM sub JOIN assignments a ON a.org_id = ${org} AND a.resource = sub.ref`,
        );
        const onSubtree = sql`WITH RECURSIVE ${subtree(org, ref)} SELECT a.role FROM assignments a JOIN sub ON a.org_id = ${org} AND a.resource = sub.ref`;
        // Inheritance from the ancestors ends too: the resources are gone.
        const revokeRank = Math.max((await maxRiskOfRoles(tx, org, onSubtree)) ?? 0, (await maxRiskOnAncestors(tx, org, ref)) ?? 0) || null;
        const inSubtree = sql`IN (WITH RECURSIVE ${subtree(org, ref)} SELECT ref FROM sub)`;
        const rows = await countDesired(tx, sql`d.org_id = ${org} AND d.resource ${inSubtree}`);
        await tx.run(sql`DELETE FROM assignments WHERE org_id = ${org} AND resource ${inSubtree}`);
        // One statement for the whole subtree keeps the parent foreign key satisfied.
        await tx.run(sql`DELETE FROM resources WHERE org_id = ${org} AND ref ${inSubtree}`);
        return {
          changed: true,
          revokeRank,
          fanout: {
            // The rows' assignments are gone, so only an organization-wide pass finds them later.
            scope: `organization:${org}`,
            rows,
            remove: onIt.map((a) => assignmentRows(org, a)),
          },
        };
      });
      return resultOf(written);
    },

    async createAssignment(
      orgIn: string,
      body: { principal: string; role: string; resource: string; expiresAt?: string | null },
      ctx?: WriteContext,
    ): Promise<AssignmentResult> {
      const org = parseOrgId(orgIn);
      const principal = parsePrincipal(body.principal);
      const role = parseRoleSlug(body.role);
      const resource = parseResourceRef(body.resource);
      const expiresAt = parseExpiresAt(body.expiresAt, env.now());
      const expiresIso = expiresAt === null ? null : new Date(expiresAt).toISOString();
      const natural = { principal: principalString(principal), role, resource };
      // Generated once per call, so that every attempt of a retried write inserts the same id.
      const id = ('asg_' + env.newId()) as AssignmentId;
      type Created = { id: AssignmentId; created: boolean };
      const written = await runWrite(env, { org, kind: 'assignment.create', body: { id, ...natural, expiresAt: expiresIso }, ctx }, async (tx): Promise<Outcome<Created>> => {
        const table = principal.type === 'subject' ? 'subjects' : 'groups';
        if (!(await tx.get(`SELECT 1 AS x FROM ${table} WHERE org_id = $1 AND id = $2`, [org, principal.id]))) {
          throw notFound('principal', principal.type, principal.id);
        }
        if (!(await tx.get('SELECT 1 AS x FROM roles WHERE org_id = $1 AND slug = $2', [org, role]))) throw notFound('role', 'role', role);
        await requireResource(tx, org, resource, 'resource');
        const existing = await tx.get<{ id: AssignmentId; expires_at: number | null }>(
          'SELECT id, expires_at FROM assignments WHERE org_id = $1 AND principal_type = $2 AND principal_id = $3 AND role = $4 AND resource = $5',
          [org, principal.type, principal.id, role, resource],
        );
        const found = existing ? { id: existing.id, created: false } : { id, created: true };
        if (existing) {
          // The same natural key is the same assignment: another expiry (or none) updates it.
          const prev = existing.expires_at === null ? null : Number(existing.expires_at);
          if (prev === expiresAt) return { changed: false, output: found };
          await tx.run(sql`UPDATE assignments SET expires_at = ${expiresAt} WHERE org_id = ${org} AND id = ${existing.id}`);
          const body = { id: existing.id, ...natural, expiresAt: expiresIso };
          if (isLive(prev, env.now())) return { changed: true, kind: 'assignment.update', body, output: found };
          // An expired assignment comes back: its rows fan out again.
          const f = await assignmentFanout(tx, org, { principal_type: principal.type, principal_id: principal.id }, role);
          return {
            changed: true, kind: 'assignment.update', body, grantRank: f.rank, output: found,
            fanout: { scope: assignmentScopeKey(existing.id, natural.principal, resource), rows: f.rows, add: [sql`d.org_id = ${org} AND d.assignment_id = ${existing.id}`] },
          };
        }
        await tx.run(
          'INSERT INTO assignments (org_id, id, principal_type, principal_id, role, resource, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
          [org, id, principal.type, principal.id, role, resource, env.now(), expiresAt],
        );
        const f = await assignmentFanout(tx, org, { principal_type: principal.type, principal_id: principal.id }, role);
        return {
          changed: true,
          grantRank: f.rank,
          fanout: { scope: assignmentScopeKey(id, natural.principal, resource), rows: f.rows, add: [sql`d.org_id = ${org} AND d.assignment_id = ${id}`] },
          output: found,
        };
      });
      // The output is the committed attempt's: a retry that found the row reports it as found.
      return { ...resultOf(written), ...written.outcome.output! };
    },

    deleteAssignment: (orgIn: string, idIn: string, ctx?: WriteContext) => removeAssignment(orgIn, idIn, false, ctx),
    /** The expiry job's write: deletes the assignment if its expiry has passed (else changes nothing). */
    expireAssignment: (orgIn: string, idIn: string) => removeAssignment(orgIn, idIn, true, { actor: 'lockstep:expiry' }),
  };

  async function removeAssignment(orgIn: string, idIn: string, expiry: boolean, ctx?: WriteContext): Promise<WriteResult> {
      const org = parseOrgId(orgIn);
      const id = parseAssignmentId(idIn);
      const written = await runWrite(env, { org, kind: expiry ? 'assignment.expired' : 'assignment.delete', body: { id }, ctx }, async (tx): Promise<Outcome> => {
        const a = await tx.get<AssignmentSource & { expires_at: number | null }>(
          'SELECT id, principal_type, principal_id, role, resource, expires_at FROM assignments WHERE org_id = $1 AND id = $2',
          [org, id],
        );
        if (!a && expiry) return NO_CHANGE;
        if (!a) throw notFound('id', 'assignment', id);
        const expiresAt = a.expires_at === null ? null : Number(a.expires_at);
        if (expiry && (expiresAt === null || expiresAt > env.now())) return NO_CHANGE;
        const f = await assignmentFanout(tx, org, a, a.role);
        await tx.run('DELETE FROM assignments WHERE org_id = $1 AND id = $2', [org, id]);
        return {
          changed: true,
          ...(expiry ? { decidedAt: expiresAt! } : {}),
          // Deleting what had already expired revokes nothing new; its rows still go.
          revokeRank: expiry || isLive(expiresAt, env.now()) ? f.rank : null,
          fanout: {
            scope: assignmentScopeKey(id, `${a.principal_type}:${a.principal_id}`, a.resource),
            rows: f.rows,
            remove: [assignmentRows(org, a)],
          },
        };
      });
      return resultOf(written);
  }
}

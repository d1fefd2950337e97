/**
 * The policy service: every policy write (access and directory commands, the propagation policy),
 * each run through the one write frame (./write.ts), and the reads of single policy objects.
 */
import type { Assignment, Organization, Subject, WriteContext, WriteResult } from '../domain/contract.ts';
import { notFound } from '../domain/errors.ts';
import { parseAssignmentId, parseOrgId, parseSubjectId } from '../domain/model.ts';
import { parsePolicy, type PropagationPolicy } from '../domain/propagation.ts';
import { createAccessCommands } from './access-commands.ts';
import { createDirectoryCommands } from './directory-commands.ts';
import { NO_CHANGE, resultOf, runWrite, type WriteEnv } from './write.ts';

export function createPolicyService(env: WriteEnv) {
  const { db, now } = env;
  return {
    ...createAccessCommands(env),
    ...createDirectoryCommands(env),

    async getOrganization(orgIn: string): Promise<Organization> {
      const org = parseOrgId(orgIn);
      const row = await db.get<Organization>('SELECT id, name, revision FROM organizations WHERE id = $1', [org]);
      if (!row) throw notFound('org', 'organization', org);
      return { id: row.id, name: row.name, revision: Number(row.revision) };
    },

    async listOrganizations(only?: string): Promise<Organization[]> {
      const rows = only === undefined
        ? await db.all<Organization>('SELECT id, name, revision FROM organizations ORDER BY id')
        : await db.all<Organization>('SELECT id, name, revision FROM organizations WHERE id = $1', [parseOrgId(only)]);
      return rows.map((r) => ({ id: r.id, name: r.name, revision: Number(r.revision) }));
    },

    async getSubject(orgIn: string, idIn: string): Promise<Subject> {
      const org = parseOrgId(orgIn);
      const id = parseSubjectId(idIn, 'id');
      const row = await db.get<{ id: Subject['id']; kind: Subject['kind']; active: number }>(
        'SELECT id, kind, active FROM subjects WHERE org_id = $1 AND id = $2',
        [org, id],
      );
      if (!row) throw notFound('id', 'subject', id);
      return { id: row.id, kind: row.kind, active: row.active === 1 };
    },

    async getAssignment(orgIn: string, idIn: string): Promise<Assignment> {
      const org = parseOrgId(orgIn);
      const id = parseAssignmentId(idIn);
      const row = await db.get<{ id: Assignment['id']; principal_type: string; principal_id: string; role: Assignment['role']; resource: Assignment['resource']; expires_at: number | null }>(
        'SELECT id, principal_type, principal_id, role, resource, expires_at FROM assignments WHERE org_id = $1 AND id = $2',
        [org, id],
      );
      if (!row) throw notFound('id', 'assignment', id);
      return {
        id: row.id,
        principal: `${row.principal_type}:${row.principal_id}`,
        role: row.role,
        resource: row.resource,
        expiresAt: row.expires_at === null ? null : new Date(Number(row.expires_at)).toISOString(),
      };
    },

    async getPropagationPolicy(orgIn: string): Promise<{ policy: PropagationPolicy; custom: boolean }> {
      const org = parseOrgId(orgIn);
      const row = await db.get<{ policy: string | null; id: string }>(
        'SELECT o.id, p.policy FROM organizations o LEFT JOIN propagation_policies p ON p.org_id = o.id WHERE o.id = $1',
        [org],
      );
      if (!row) throw notFound('org', 'organization', org);
      return row.policy === null ? { policy: env.defaultPolicy, custom: false } : { policy: parsePolicy(JSON.parse(row.policy), env.defaultPolicy), custom: true };
    },

    async putPropagationPolicy(orgIn: string, body: unknown, ctx?: WriteContext): Promise<WriteResult & { policy: PropagationPolicy }> {
      const org = parseOrgId(orgIn);
      const policy = parsePolicy(body, env.defaultPolicy);
      const text = JSON.stringify(policy);
      const written = await runWrite(env, { org, kind: 'propagation_policy.update', body: policy, ctx }, async (tx) => {
        const cur = await tx.get<{ policy: string }>('SELECT policy FROM propagation_policies WHERE org_id = $1', [org]);
        if (cur?.policy === text) return NO_CHANGE;
        await tx.run(
          `INSERT INTO propagation_policies (org_id, policy, updated_at) VALUES ($1, $2, $3)
           ON CONFLICT (org_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`,
          [org, text, now()],
        );
        return { changed: true };
      });
      return { ...resultOf(written), policy };
    },
  };
}

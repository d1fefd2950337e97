/**
 * POST /v1/apply: `lockstep apply -f` over HTTP. The server parses the file (so problems name their
 * place and line in it) and applies it with the same function as the CLI, in one transaction.
 *
 * Keys: an admin key may apply any file. A write key may apply a file that names only its own
 * organization and neither creates nor renames it (over HTTP those are admin writes:
 * PUT /v1/organizations/{org}); the refusal is a 403 naming the organization, and nothing commits.
 */
import type { FastifyInstance } from 'fastify';
import { applyPolicyFile } from '../../policy-file/apply.ts';
import { parsePolicyFile } from '../../policy-file/parse.ts';
import { formatPath } from '../../policy-file/path.ts';
import type { Lockstep } from '../../domain/contract.ts';
import { actorOf } from '../auth.ts';
import { ApiError } from '../problem.ts';
import * as s from '../schemas/apply.ts';

/** A policy file is larger than most request bodies: this route's limit (the server's, if higher). */
export const APPLY_BODY_LIMIT = 16 * 1024 * 1024;

export function applyRoutes(app: FastifyInstance, lockstep: Lockstep, serverBodyLimit: number) {
  app.post<{ Body: { policy: string; source?: string; dryRun?: boolean } }>(
    '/v1/apply',
    { schema: s.applyPolicy, config: { access: 'write' }, bodyLimit: Math.max(APPLY_BODY_LIMIT, serverBodyLimit) },
    async (req) => {
      const file = parsePolicyFile(req.body.policy, req.body.source ?? 'policy file');
      const key = req.apiKey!;
      if (key.scope !== 'admin') {
        const other = file.organizations.find((o) => o.id !== key.org);
        if (other) throw new ApiError('FORBIDDEN', `this API key belongs to organization '${key.org}'; the file names '${other.id}'`, formatPath(other.path));
      }
      const actor = actorOf(req);
      return applyPolicyFile(lockstep, file, {
        dryRun: req.body.dryRun === true,
        ctx: actor === undefined ? { requestId: req.id } : { actor, requestId: req.id },
        onOrganization: (org, r) => {
          if (key.scope !== 'admin' && r.changed) {
            throw new ApiError('FORBIDDEN', `creating or renaming organization '${org.id}' needs an admin key`, formatPath(org.path));
          }
        },
      });
    },
  );
}

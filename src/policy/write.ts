/**
 * The frame every policy write runs in: one transaction that locks the organization's row (so writes
 * to one organization apply one at a time and each sees the last one's read model), applies the
 * command's source-table and read-model changes, and — if anything changed — stamps the next
 * revision and appends the change-log entry. A command that throws leaves nothing behind.
 */
import { notFound } from '../domain/errors.ts';
import { directionOf, tierOfRank, type OrgId } from '../domain/model.ts';
import type { WriteContext, WriteResult } from '../core/types.ts';
import type { Database, Sql } from '../storage/database.ts';

/** What a command did, as the frame needs it for the change log. */
export interface Effect {
  changed: boolean;
  rowsAdded?: number;
  rowsRemoved?: number;
  /** Highest risk rank among what the change granted / revoked (null: nothing). */
  grantRank?: number | null;
  revokeRank?: number | null;
}

export const NO_CHANGE: Effect = { changed: false };

export interface WriteEnv {
  db: Database;
  now: () => number;
}

export interface WriteSpec<E extends Effect> {
  org: OrgId;
  kind: string | ((effect: E) => string);
  body: unknown;
  ctx: WriteContext | undefined;
  /** Organization creation is the one write that may find no organization row. */
  mayCreateOrg?: boolean;
}

export async function runWrite<E extends Effect>(
  env: WriteEnv,
  spec: WriteSpec<E>,
  apply: (tx: Sql, revision: number) => Promise<E>,
): Promise<WriteResult & { effect: E }> {
  return env.db.transaction(async (tx) => {
    const decidedAt = env.now();
    const row = await tx.get<{ revision: number }>(`SELECT revision FROM organizations WHERE id = $1${tx.forUpdate}`, [spec.org]);
    if (!row && !spec.mayCreateOrg) throw notFound('org', 'organization', spec.org);
    const current = row?.revision ?? 0;
    const effect = await apply(tx, current + 1);
    if (!effect.changed) {
      return { revision: current, changed: false, propagation: { mode: 'sync', status: 'effective' }, effect };
    }
    const revision = current + 1;
    const granted = (effect.grantRank ?? 0) > 0;
    const revoked = (effect.revokeRank ?? 0) > 0;
    const tier = tierOfRank(Math.max(effect.grantRank ?? 0, effect.revokeRank ?? 0));
    const effectiveAt = env.now();
    await tx.run('UPDATE organizations SET revision = $2 WHERE id = $1', [spec.org, revision]);
    await tx.run(
      `INSERT INTO changes (org_id, revision, kind, direction, tier, mode, actor, request_id, body, decided_at, effective_at, rows_added, rows_removed)
       VALUES ($1, $2, $3, $4, $5, 'sync', $6, $7, $8, $9, $10, $11, $12)`,
      [
        spec.org,
        revision,
        typeof spec.kind === 'function' ? spec.kind(effect) : spec.kind,
        directionOf(granted, revoked),
        tier === null ? null : Math.max(effect.grantRank ?? 0, effect.revokeRank ?? 0),
        spec.ctx?.actor ?? null,
        spec.ctx?.requestId ?? null,
        JSON.stringify(spec.body ?? null),
        decidedAt,
        effectiveAt,
        effect.rowsAdded ?? 0,
        effect.rowsRemoved ?? 0,
      ],
    );
    return {
      revision,
      changed: true,
      propagation: { mode: 'sync', status: 'effective', effectiveAt: new Date(effectiveAt).toISOString() },
      effect,
    };
  });
}

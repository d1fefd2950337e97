/**
 * The audit service: receipts and their listing, the SLO report, and access history at a past
 * instant (replayed from the change log through a scratch engine that the composition root supplies).
 */
import type { AccessEntry, AccessQuery, Change, ChangeQuery, EffectivePermission, EffectiveQuery, SloRow } from '../domain/contract.ts';
import { notFound } from '../domain/errors.ts';
import { parseOrgId, type VerifyMode } from '../domain/model.ts';
import type { Sql } from '../storage/database.ts';
import { ask, atTime, parseAt, type HistoryQuestion, type HistoryRunner, type ReplayEngine } from './history.ts';
import { getReceipt, listReceipts, sloReport } from './receipts.ts';

export interface AuditEnv {
  db: Sql;
  now: () => number;
  /** Builds the engine that history replays into (a scratch database, every change inline). */
  replayEngine: ReplayEngine;
  /** The checks' verification mode: a verified revocation is enforced at its commit. */
  verify?: VerifyMode;
  /** Runs replays elsewhere (the server's worker threads); absent: in this thread. */
  history?: HistoryRunner | undefined;
}

export function createAuditService(env: AuditEnv) {
  const { db, now } = env;
  const verify = env.verify ?? 'always';
  const requireOrg = async (org: string) => {
    if (!(await db.get('SELECT 1 AS x FROM organizations WHERE id = $1', [org]))) throw notFound('org', 'organization', org);
  };
  const replay = async <T,>(org: string, t: number, q: HistoryQuestion) =>
    (env.history ? await env.history.run(db, org, t, q) : await atTime(db, env.replayEngine, org, t, ask(org, q))) as { revision: number; result: T | null };

  return {
    getChange(orgIn: string, revision: number): Promise<Change> {
      return getReceipt(db, parseOrgId(orgIn), revision, now(), verify);
    },

    async listChanges(orgIn: string, q: ChangeQuery = {}): Promise<{ changes: Change[]; next: number | null }> {
      const org = parseOrgId(orgIn);
      await requireOrg(org);
      return listReceipts(db, org, q, now(), verify);
    },

    async sloReport(orgIn: string, windowSeconds: number): Promise<{ from: string; to: string; windowSeconds: number; truncated: boolean; rows: SloRow[] }> {
      const org = parseOrgId(orgIn);
      await requireOrg(org);
      return sloReport(db, org, windowSeconds, now(), verify);
    },

    async subjectEffectiveAt(orgIn: string, subject: string, at: string, q: EffectiveQuery = {}): Promise<{ revision: number; at: string; permissions: EffectivePermission[]; next: string | null }> {
      const org = parseOrgId(orgIn);
      const t = parseAt(at);
      await requireOrg(org);
      const r = await replay<{ permissions: EffectivePermission[]; next: string | null }>(org, t, { kind: 'subject', subject, query: { ...q } });
      return { revision: r.revision, at: new Date(t).toISOString(), permissions: r.result?.permissions ?? [], next: r.result?.next ?? null };
    },

    async resourceAccessAt(
      orgIn: string,
      resource: string,
      permission: string,
      at: string,
      q: AccessQuery = {},
    ): Promise<{ revision: number; at: string; subjects: AccessEntry[]; next: string | null }> {
      const org = parseOrgId(orgIn);
      const t = parseAt(at);
      await requireOrg(org);
      const r = await replay<{ subjects: AccessEntry[]; next: string | null }>(org, t, { kind: 'resource', resource, permission, query: { ...q } });
      return { revision: r.revision, at: new Date(t).toISOString(), subjects: r.result?.subjects ?? [], next: r.result?.next ?? null };
    },
  };
}

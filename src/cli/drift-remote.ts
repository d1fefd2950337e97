/**
 * `lockstep drift --url`: the server audits (`POST …/drift`); with `--repair` its workers run the
 * repair job, which is followed here (`GET /v1/jobs`, progress from its checkpoint) until it is
 * done, then the server audits again. The answers have the shape of the engine's report.
 */
import { data, type LockstepClient } from '../../packages/client/src/index.ts';
import type { Lockstep } from '../domain/contract.ts';
import { LockstepError } from '../domain/errors.ts';
import { createProgress, type Progress } from './progress.ts';

type Report = Awaited<ReturnType<Lockstep['auditDrift']>>;

export async function driftRemote(
  client: LockstepClient,
  opts: { org: string; repair?: boolean; limit: number; waitMs?: string },
): Promise<{ report: Report; after: Report | null }> {
  const path = { params: { path: { org: opts.org } } };
  const report = (await data(client.api.POST('/v1/organizations/{org}/drift', { ...path, body: { repair: opts.repair === true, limit: opts.limit } }))) as Report;
  if (!report.repairJob) return { report, after: null };
  const deadline = Date.now() + (opts.waitMs === undefined ? 600_000 : Number(opts.waitMs));
  let progress: Progress | undefined;
  for (;;) {
    let job: { state?: string; progress?: { done?: number; total?: number | null }; lastError?: string | null } | undefined;
    let cursor: string | undefined;
    do {
      const page = await data(client.api.GET('/v1/jobs', { params: { query: { org: opts.org, limit: '1000', ...(cursor ? { cursor } : {}) } } }));
      job = page.jobs.find((j) => j.id === report.repairJob);
      cursor = job === undefined ? (page.next ?? undefined) : undefined;
    } while (cursor !== undefined);
    if (job?.progress?.total) {
      progress ??= createProgress(Math.max(job.progress.total, 1), process.stderr, { label: 'repair', unit: 'subjects', threshold: 1 });
      progress.update(Math.min(job.progress.done ?? 0, job.progress.total), job.progress.total);
    }
    if (job?.state === 'done') break;
    if (job?.state === 'failed') throw new LockstepError('INTERNAL', `repair job ${report.repairJob} failed: ${job.lastError ?? 'no error recorded'}; lockstep jobs retry ${report.repairJob}`);
    if (Date.now() > deadline) {
      throw new LockstepError('UNAVAILABLE', `repair job ${report.repairJob} is still ${job?.state ?? 'queued'}; follow it with lockstep jobs list --org ${opts.org} (does the server run workers?)`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  progress?.stop();
  return { report, after: (await data(client.api.POST('/v1/organizations/{org}/drift', { ...path, body: { limit: 0 } }))) as Report };
}

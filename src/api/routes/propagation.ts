/** Propagation policy, the job queue, drift audits and metrics. */
import type { FastifyInstance } from 'fastify';
import type { JobState, Lockstep } from '../../domain/contract.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { actorOf } from '../auth.ts';
import { ApiError } from '../problem.ts';
import * as s from '../schemas/propagation.ts';
import { pageOfQuery } from '../schemas/common.ts';
import type { Delivery } from '../../delivery/service.ts';

type Org = { org: string };

/** Workers heartbeating now (any organization's jobs) and how many LOCKSTEP_EXPECT_WORKERS asks for (0: not set). */
export type WorkerCount = () => Promise<{ live: number; expected: number }>;

export function propagationRoutes(app: FastifyInstance, lockstep: Lockstep, metrics: Metrics | undefined, delivery?: Delivery, workers?: WorkerCount) {
  const base = '/v1/organizations/:org';
  const write = { config: { access: 'write' as const } };
  const ctx = (req: { id: string; apiKey?: unknown }) => {
    const actor = actorOf(req as never);
    return actor === undefined ? { requestId: req.id } : { actor, requestId: req.id };
  };

  app.get<{ Params: Org }>(`${base}/propagation-policy`, { schema: s.getPolicy, ...write }, (req) => lockstep.getPropagationPolicy(req.params.org));
  app.put<{ Params: Org; Body: unknown }>(`${base}/propagation-policy`, { schema: s.putPolicy, ...write }, (req) =>
    lockstep.putPropagationPolicy(req.params.org, req.body, ctx(req)),
  );
  app.post<{ Params: Org; Body: { repair?: boolean; limit?: number } | undefined }>(`${base}/drift`, { schema: s.drift, ...write }, (req) =>
    lockstep.auditDrift(req.params.org, req.body ?? {}),
  );

  app.get<{ Querystring: { org?: string; state?: JobState; limit?: string; cursor?: string } }>('/v1/jobs', { schema: s.listJobs, ...write }, async (req) => {
    const key = req.apiKey!;
    if (key.scope !== 'admin' && req.query.org !== undefined && req.query.org !== key.org) {
      throw new ApiError('FORBIDDEN', 'this API key belongs to another organization', 'org');
    }
    const org = key.scope === 'admin' ? req.query.org : (key.org ?? undefined);
    const [page, present] = await Promise.all([
      lockstep.listJobsPage({
        ...(org !== undefined ? { org } : {}),
        ...(req.query.state ? { states: [req.query.state] } : {}),
        ...pageOfQuery(req.query),
      }),
      // Beside the jobs, so that "jobs wait and nothing takes them" is one answer, not a race of two.
      workers ? workers() : Promise.resolve(null),
    ]);
    return { ...page, workers: present };
  });
  app.post<{ Params: { id: string } }>('/v1/jobs/:id/retry', { schema: s.retryJob, config: { access: 'admin' } }, (req) => lockstep.retryJob(req.params.id));

  if (metrics) {
    app.get('/metrics', { schema: { ...s.metrics, hide: false }, config: { access: 'admin' } }, async (_req, reply) => {
      // Queue gauges are read at scrape time: a lagging queue shows jobs and a growing oldest age,
      // an idle one shows zeros.
      const stats = await lockstep.queueStats();
      for (const [state, n] of Object.entries(stats.counts)) metrics.jobs.set({ state }, n);
      metrics.jobOldestAge.set(stats.oldestAgeMs / 1000);
      await delivery?.refreshMetrics();
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  }
}

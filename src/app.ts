/**
 * Composition root: opens the database, migrates it, creates the engine, makes sure an admin key
 * exists and builds the HTTP server. The CLI's `serve` and the end-to-end tests both use it.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildServer } from './api/build-server.ts';
import { ensureAdminKey } from './api/keys.ts';
import { createLogger } from './api/logger.ts';
import type { Config } from './config/config.ts';
import { createLockstep } from './core/lockstep.ts';
import type { Lockstep } from './core/types.ts';
import type { Database } from './storage/database.ts';
import { openDatabase } from './storage/open.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { createWorker, type Worker, type WorkerEvent } from './propagation/worker.ts';

/** Job lifecycle at info, each batch at debug; failures with their error. */
function logWorkerEvent(logger: Logger) {
  return (e: WorkerEvent) => {
    const job = { id: e.job.id, scope: e.job.scope, org: e.job.org_id };
    if (e.type === 'batch') logger.debug({ job, members: e.members, added: e.added, removed: e.removed }, 'reconcile batch');
    else if (e.type === 'failed') logger.warn({ job, err: e.error, state: e.state }, 'reconcile batch failed');
    else logger.info({ job }, `job ${e.type}`);
  };
}

export interface AppDeps {
  /**
   * An already-open database to use instead of opening `config.db` (tests pass a fresh PostgreSQL
   * schema). The app takes ownership: `stop()` closes it.
   */
  database?: Database;
  logger?: Logger;
  metrics?: Metrics;
}

export interface App {
  server: FastifyInstance;
  lockstep: Lockstep;
  metrics: Metrics;
  workers: Worker[];
  db: Database;
  logger: Logger;
  /**
   * Migrates, ensures an admin key and listens. `adminKey` is set only when one was generated: the
   * caller prints it once; it is not stored in clear anywhere.
   */
  start(): Promise<{ url: string; adminKey?: string }>;
  stop(): Promise<void>;
}

export function createApp(config: Config, deps: AppDeps = {}): App {
  const logger = deps.logger ?? createLogger(config.logLevel);
  const db = deps.database ?? openDatabase(config.db);
  const metrics = deps.metrics ?? createMetrics({ defaultMetrics: true });
  const workers = Array.from({ length: config.workers }, () =>
    createWorker({ db, metrics, verify: config.verify, batchSize: config.batchSize, maxBatchRows: config.batchRows, onEvent: logWorkerEvent(logger) }),
  );
  const lockstep = createLockstep(db, {
    verify: config.verify,
    metrics,
    freshnessTimeoutMs: config.freshnessTimeoutMs,
    onEnqueued: () => workers.forEach((w) => w.wake()),
  });
  const server = buildServer({ lockstep, db, logger, bodyLimit: config.bodyLimit, metrics });
  let stopped: Promise<void> | undefined;

  return {
    server,
    lockstep,
    metrics,
    workers,
    db,
    logger,
    async start() {
      const applied = await db.migrate();
      if (applied.length > 0) logger.info({ applied, database: db.description }, 'migrations applied');
      const { generated } = await ensureAdminKey(db, config.adminKey);
      const url = await server.listen({ host: config.host, port: config.port });
      for (const w of workers) w.start();
      logger.info({ url, database: db.description, verify: config.verify }, 'lockstep listening');
      return generated === undefined ? { url } : { url, adminKey: generated };
    },
    stop() {
      // The engine owns the database handle: closing it closes the pool / file.
      stopped ??= server
        .close()
        .then(() => Promise.all(workers.map((w) => w.stop())))
        .then(() => lockstep.close());
      return stopped;
    },
  };
}

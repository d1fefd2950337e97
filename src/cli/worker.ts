/**
 * `lockstep worker`: a reconciliation worker process. Any number share a PostgreSQL queue (claims
 * with FOR UPDATE SKIP LOCKED, one owner per job by lease); on SQLite `serve` runs the worker itself.
 * Stops after the current batch on SIGINT / SIGTERM; the lease of an unfinished job lapses and
 * another worker resumes it at its checkpoint.
 */
import { createTracing, NO_TRACING } from '../observability/tracing.ts';
import type { Command } from 'commander';
import { createLogger } from '../api/logger.ts';
import { logDeliveryEvent } from '../app.ts';
import { createWorker, logTo } from '../propagation/worker.ts';
import { createDeliverer } from '../delivery/deliverer.ts';
import { createKeyStore } from '../delivery/signing.ts';
import { addDbOptions, configFor, openStore, type DbOptions } from './database.ts';
import { LOG_LEVELS, type LogLevel } from '../config/config.ts';
import { UsageError } from './errors.ts';

interface WorkerOptions extends DbOptions {
  logLevel?: string;
  batchSize?: string;
  leaseMs?: string;
  pollMs?: string;
  drain?: boolean;
}

const int = (name: string, v: string | undefined, min: number, max: number) => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name} must be an integer ${min}-${max}, got '${v}'`);
  return Number(v);
};

async function work(opts: WorkerOptions) {
  if (opts.logLevel !== undefined && !LOG_LEVELS.includes(opts.logLevel as LogLevel)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const config = configFor(opts, opts.logLevel === undefined ? {} : { logLevel: opts.logLevel as LogLevel });
  const logger = createLogger(config.logLevel);
  const db = openStore(config, opts);
  await db.migrate();
  const batchSize = int('batch-size', opts.batchSize, 1, 100_000) ?? config.batchSize;
  const leaseMs = int('lease-ms', opts.leaseMs, 100, 600_000);
  const pollMs = int('poll-ms', opts.pollMs, 10, 600_000);
  // LOCKSTEP_TRACING: batches and deliveries continue the traces of the writes (ADR 0016).
  const tracing = config.tracing === 'off' ? NO_TRACING : await createTracing({ exporter: config.tracing });
  const worker = createWorker({
    db,
    tracing,
    batchSize,
    maxBatchRows: config.batchRows,
    verify: config.verify,
    ...(leaseMs === undefined ? {} : { leaseMs }),
    ...(pollMs === undefined ? {} : { pollMs }),
    ...logTo(logger),
  });
  // The delivery engine shares the process (LOCKSTEP_DELIVERY=0 leaves it to others): lanes are
  // claimed like jobs, so any number of worker processes deliver without double ownership.
  const deliverer = config.delivery
    ? createDeliverer({
        db,
        keys: createKeyStore(db),
        issuer: () => config.publicUrl ?? `http://${config.host}:${config.port}`,
        allowPrivate: config.targetsAllowPrivate,
        timeoutMs: config.deliveryTimeoutMs,
        onEvent: logDeliveryEvent(logger),
        tracing,
      })
    : undefined;
  logger.info({ owner: worker.owner, database: db.description, batchSize, delivery: deliverer !== undefined }, 'worker started');
  if (opts.drain) {
    const n = await worker.drain();
    await deliverer?.drain();
    logger.info({ jobs: n }, 'queue drained');
    await tracing.shutdown();
    await db.close();
    return;
  }
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) process.exit(130);
      stopping = true;
      logger.info('stopping after the current batch');
      Promise.all([worker.stop(), deliverer?.stop()]).then(() => resolve(), () => resolve());
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    worker.start();
    deliverer?.start();
  });
  await tracing.shutdown();
  await db.close();
}

export function registerWorker(program: Command) {
  addDbOptions(
    program
      .command('worker')
      .description('Run a reconciliation worker (several may share a PostgreSQL queue)')
      .option('--batch-size <n>', 'subjects per batch (default: $LOCKSTEP_BATCH_SIZE or 100)')
      .option('--lease-ms <ms>', 'job lease, renewed by heartbeat (default 15000)')
      .option('--poll-ms <ms>', 'idle poll interval; PostgreSQL NOTIFY wakes it sooner (default 1000)')
      .option('--drain', 'run until the queue is empty, then exit')
      .option('--log-level <level>', `${LOG_LEVELS.join(' | ')} (default: $LOCKSTEP_LOG_LEVEL or info)`),
  ).action(work);
}

/**
 * The composition root, the one place that wires the layers together:
 *  - `createLockstep(db)` composes the engine — the policy, check, propagation and audit services
 *    over one database (and, on PostgreSQL, one group-commit combiner);
 *  - `createApp(config)` opens the database, migrates it, creates the engine and its workers, makes
 *    sure an admin key exists and builds the HTTP server. The CLI's `serve` and the end-to-end tests
 *    both use it.
 * Nothing below imports this file.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildServer } from './api/build-server.ts';
import { ensureAdminKey } from './api/keys.ts';
import { createLogger } from './api/logger.ts';
import { REPLAY_POLICY, type HistoryRunner } from './audit/history.ts';
import { createHistoryPool, type HistoryPool } from './audit/history-pool.ts';
import { createAuditService } from './audit/service.ts';
import { createChecks, readSnapshot } from './check/check.ts';
import type { Config } from './config/config.ts';
import type { Lockstep } from './domain/contract.ts';
import type { VerifyMode } from './domain/model.ts';
import { DEFAULT_POLICY, type PropagationPolicy } from './domain/propagation.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { createDirectoryStore } from './directories/directories.ts';
import { createScimWrites } from './directories/scim-write.ts';
import { createCombiner, type Combiner } from './policy/combiner.ts';
import { createPolicyService } from './policy/service.ts';
import { expireDue } from './policy/expiry.ts';
import { createPropagationService } from './propagation/service.ts';
import { createWorker, logTo, type Worker } from './propagation/worker.ts';
import { joinTransaction, type Database } from './storage/database.ts';
import { openDatabase } from './storage/open.ts';
import { createDelivery, type Delivery } from './delivery/service.ts';
import type { DeliveryEvent } from './delivery/deliverer.ts';
import { createTracing, deferredTracing, type Tracing } from './observability/tracing.ts';

/** Failures and disablings at warn; acknowledgements at debug; errors with their lane. Never a secret or a body. */
export function logDeliveryEvent(logger: Logger) {
  return (e: DeliveryEvent) => {
    if (e.type === 'sent') {
      if (e.outcome.kind === 'acked') logger.debug({ target: e.target, revision: e.revision, seq: e.seq, ms: e.ms }, 'delivered');
      else logger.warn({ target: e.target, revision: e.revision, seq: e.seq, outcome: e.outcome }, 'delivery failed');
    } else if (e.type === 'error') logger.error({ err: e.error, ...(e.target !== undefined ? { lane: { target: e.target, part: e.part } } : {}) }, 'delivery engine error');
    else logger.warn({ target: e.target, revision: e.revision, seq: e.seq }, `delivery ${e.type}`);
  };
}

export interface LockstepOptions {
  /** Which tiers get provenance verification on read-model checks. Default `always`. */
  verify?: VerifyMode;
  now?: () => number;
  newId?: () => string;
  metrics?: Metrics;
  /** Called after a commit that enqueued a reconciliation job (wakes an in-process worker). */
  onEnqueued?: () => void;
  /** The propagation policy of organizations that have not set their own (default: docs/semantics.md's). */
  defaultPolicy?: PropagationPolicy;
  /** Group commit of concurrent writes to one organization on PostgreSQL (default on). */
  groupCommit?: boolean;
  /** The combiner to share (createApp's, which SCIM writes use too); default: one of its own. */
  combiner?: Combiner;
  /** How long an `at_least_as_fresh` check waits for the read model before answering UNAVAILABLE. */
  freshnessTimeoutMs?: number;
  /** Where access-history replays run (the server: worker threads); default: in the caller's thread. */
  history?: HistoryRunner;
  /** Spans of policy writes (default: none). */
  tracing?: Tracing;
  /**
   * How concurrent checks share work. `statement` (default): on PostgreSQL the checks that arrive
   * while one statement is out share the next (ADR 0018); SQLite has no round trip to share. `turn`:
   * that, and on SQLite the read-model statements of the checks made in one turn of the event loop
   * run back to back at its end (ADR 0021) — for a server, whose checks arrive from many
   * connections at once (createApp); a caller that checks one at a time would wait a turn per check.
   * `none`: every check runs its own statement at once (tests compare the three).
   */
  checkSharing?: CheckSharing;
}

const defaultId = () => randomBytes(12).toString('base64url');

/** Group commit where a commit costs a WAL flush and writes arrive concurrently (PostgreSQL). */
const groupCommit = (db: Database, enabled = true): Combiner | undefined => (db.dialect === 'postgres' && enabled ? createCombiner(db) : undefined);

export type CheckSharing = 'none' | 'statement' | 'turn';

/** What createChecks is given for `sharing` (LockstepOptions.checkSharing); inside a transaction, nothing. */
const checkSharing = (db: Database, sharing: CheckSharing, joined: boolean) =>
  sharing === 'none' || joined ? {} : db.dialect === 'postgres' ? { batch: db.genericPlans } : { turnQueue: sharing === 'turn' };

/**
 * The engine over `db`. Group commit where a commit costs a WAL flush and writes arrive
 * concurrently (PostgreSQL).
 */
export function createLockstep(db: Database, opts: LockstepOptions = {}): Lockstep {
  return compose(db, opts, opts.combiner ?? groupCommit(db, opts.groupCommit));
}

/**
 * The services over `db`. `transaction(fn)` hands `fn` the same services over the open
 * transaction: their writes join it (no combiner — they are already serialized in it).
 */
function compose(db: Database, opts: LockstepOptions, combiner: Combiner | undefined, joined = false): Lockstep {
  const now = opts.now ?? Date.now;
  const newId = opts.newId ?? defaultId;
  const defaultPolicy = opts.defaultPolicy ?? DEFAULT_POLICY;
  const replayEngine = (scratch: Database, id: () => string, clock: () => number) =>
    createLockstep(scratch, { defaultPolicy: REPLAY_POLICY, newId: id, now: clock });
  const policy = createPolicyService({ db, now, newId, metrics: opts.metrics, onEnqueued: opts.onEnqueued, defaultPolicy, combiner, tracing: opts.tracing, wholeOrganization: joined });
  return {
    ...policy,
    // the scheduled expiry job (serve runs it on a timer; tests call it with their clock)
    expireDue: (o = {}) => expireDue(db, policy, now, o),
    ...createChecks({ db, verify: opts.verify ?? 'always', now, freshnessTimeoutMs: opts.freshnessTimeoutMs, metrics: opts.metrics, snapshot: readSnapshot(db), ...checkSharing(db, opts.checkSharing ?? 'statement', joined) }),
    ...createPropagationService({ db, now, newId, metrics: opts.metrics, onEnqueued: opts.onEnqueued }),
    ...createAuditService({ db, now, replayEngine, verify: opts.verify ?? 'always', history: opts.history }),
    transaction: (fn) => db.transaction((tx) => fn(compose(joinTransaction(db, tx), opts, undefined, true))),
    close: () => db.close(),
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
  /** Delivery engine settings (tests: short backoffs). */
  delivery?: Parameters<typeof createDelivery>[0]['engine'];
  watch?: { heartbeatMs?: number; pollMs?: number };
  /** Tracing to use whatever `config.tracing` says (tests: an in-memory exporter's). */
  tracing?: Tracing;
}

export interface App {
  server: FastifyInstance;
  lockstep: Lockstep;
  metrics: Metrics;
  workers: Worker[];
  delivery: Delivery;
  db: Database;
  logger: Logger;
  /** The worker threads of access history (ADR 0005). */
  history: HistoryPool;
  /**
   * Migrates, ensures an admin key and listens. `adminKey` is set only when one was generated: the
   * caller prints it once; it is not stored in clear anywhere.
   */
  start(): Promise<{ url: string; adminKey?: string }>;
  stop(): Promise<void>;
}

/**
 * The startup summary, one structured line: engine, where the data lives (credentials masked),
 * the listen address, the schema's migrations, how changes propagate and are delivered.
 */
async function startupSummary(db: Database, config: Config, url: string, applied: number[]) {
  const rows = await db.all<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  return {
    url,
    engine: db.dialect,
    database: db.description,
    migrations: { current: rows.length === 0 ? null : Number(rows[rows.length - 1]!.version), count: rows.length, appliedNow: applied },
    propagation: {
      inProcessWorkers: config.workers,
      mode: config.workers > 0 ? 'in-process workers' : 'external workers (lockstep worker)',
      expectWorkers: config.expectWorkers,
      batchSize: config.batchSize,
    },
    delivery: config.delivery,
    verify: config.verify,
    tracing: config.tracing,
  };
}

/** How often `serve` (with workers) runs the expiry job. */
const EXPIRY_INTERVAL_MS = 1000;

export function createApp(config: Config, deps: AppDeps = {}): App {
  const logger = deps.logger ?? createLogger(config.logLevel);
  const db = deps.database ?? openDatabase(config.db);
  const metrics = deps.metrics ?? createMetrics({ defaultMetrics: true });
  // Off by default; with LOCKSTEP_TRACING the SDK is loaded in start(), before the first request.
  const tracing = deferredTracing();
  if (deps.tracing) tracing.use(deps.tracing);
  let listenUrl = `http://${config.host}:${config.port}`;
  const delivery = createDelivery({
    db,
    allowPrivate: config.targetsAllowPrivate,
    issuer: () => config.publicUrl ?? listenUrl,
    confirmMaxMs: config.confirmMaxMs,
    timeoutMs: config.deliveryTimeoutMs,
    metrics,
    onEvent: logDeliveryEvent(logger),
    tracing,
    ...(deps.delivery ? { engine: deps.delivery } : {}),
  });
  const log = logTo(logger);
  const workers = Array.from({ length: config.workers }, () =>
    createWorker({
      db,
      metrics,
      verify: config.verify,
      batchSize: config.batchSize,
      maxBatchRows: config.batchRows,
      tracing,
      ...log,
      onEvent: (e) => {
        log.onEvent?.(e);
        // A batch may have produced delivery events.
        if (e.type === 'batch') delivery.deliverer.wake();
      },
    }),
  );
  // One combiner for the process: /v1 and SCIM writes to an organization queue for the same commits.
  const combiner = groupCommit(db);
  // Access history replays off the event loop, a bounded number at a time (ADR 0005).
  const history = createHistoryPool({ entry: new URL('./history-worker.ts', import.meta.url), size: config.historyWorkers, queue: config.historyQueue });
  const lockstep = createLockstep(db, {
    combiner,
    verify: config.verify,
    metrics,
    history,
    freshnessTimeoutMs: config.freshnessTimeoutMs,
    onEnqueued: () => workers.forEach((w) => w.wake()),
    tracing,
    // Many connections' checks at once: on SQLite, those of one event-loop turn back to back.
    checkSharing: 'turn',
  });
  // Directories write through the same write frame and group commit: an identity provider sends
  // requests several at a time (Okta up to its rate limit, Entra in parallel), each one write.
  const directories = {
    store: createDirectoryStore(db),
    writes: createScimWrites({ db, now: Date.now, newId: defaultId, metrics, onEnqueued: () => workers.forEach((w) => w.wake()), defaultPolicy: DEFAULT_POLICY, combiner, tracing }),
  };
  const server = buildServer({
    lockstep,
    db,
    logger,
    bodyLimit: config.bodyLimit,
    metrics,
    directories,
    delivery,
    authFailureLimit: { max: config.authFailureLimit, windowMs: config.authFailureWindowMs },
    readiness: { expectWorkers: config.expectWorkers },
    // Off (the default), the server has no span hooks: a request pays nothing for tracing.
    ...(deps.tracing || config.tracing !== 'off' ? { tracing } : {}),
    ...(deps.watch ? { watch: deps.watch } : {}),
  });
  let stopped: Promise<void> | undefined;
  // The scheduled expiry job: checks deny from an expiry's instant already; this writes its
  // change-log entry and cleans the read model, within a second or so of the instant.
  let expiryTimer: NodeJS.Timeout | undefined;
  let expiring: Promise<unknown> = Promise.resolve();
  const sweep = () => {
    expiring = lockstep.expireDue().catch((err: unknown) => logger.error({ err }, 'expiry job failed; retried at the next tick'));
  };

  return {
    server,
    lockstep,
    metrics,
    workers,
    delivery,
    db,
    logger,
    history,
    async start() {
      if (!deps.tracing && config.tracing !== 'off') tracing.use(await createTracing({ exporter: config.tracing }));
      const applied = await db.migrate();
      if (applied.length > 0) logger.info({ applied, database: db.description }, 'migrations applied');
      // LOCKSTEP_ADMIN_KEY (and its rotation) before listening: no request meets the old key.
      if (config.adminKey !== undefined) {
        const { revoked } = await ensureAdminKey(db, config.adminKey);
        if (revoked) logger.warn({ revoked }, 'LOCKSTEP_ADMIN_KEY changed: revoked the previous environment-provided admin key');
      }
      const url = await server.listen({ host: config.host, port: config.port });
      listenUrl = url;
      // A key is generated only once the server listens: one generated before a failed listen (port
      // in use) was stored but never shown, and no later start generated another (issue 10, item 11).
      const { generated } = config.adminKey === undefined ? await ensureAdminKey(db, undefined) : {};
      for (const w of workers) w.start();
      if (config.delivery) delivery.deliverer.start();
      if (config.workers > 0) expiryTimer = setInterval(sweep, EXPIRY_INTERVAL_MS);
      logger.info(await startupSummary(db, config, url, applied), 'lockstep listening');
      return generated === undefined ? { url } : { url, adminKey: generated };
    },
    stop() {
      // The engine owns the database handle: closing it closes the pool / file.
      if (expiryTimer) clearInterval(expiryTimer);
      stopped ??= server
        .close()
        .then(() => expiring)
        .then(() => Promise.all([...workers.map((w) => w.stop()), delivery.deliverer.stop(), history.close()]))
        .then(() => (deps.tracing ? undefined : tracing.shutdown()))
        .then(() => lockstep.close());
      return stopped;
    },
  };
}

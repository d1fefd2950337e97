/**
 * Configuration, parsed once into a frozen object. This is the only module that reads the
 * environment; everything else receives a `Config`.
 */
import { VERIFY_MODES, type VerifyMode } from '../domain/model.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  /** A SQLite path (or `:memory:`) or a `postgres://` URL. */
  readonly db: string;
  readonly host: string;
  readonly port: number;
  readonly verify: VerifyMode;
  readonly logLevel: LogLevel;
  /** Operator-provided admin key (`LOCKSTEP_ADMIN_KEY`); never logged. */
  readonly adminKey: string | undefined;
  /** Largest accepted request body, in bytes. */
  readonly bodyLimit: number;
  /** In-process reconciliation workers started by `serve` (0: none; run `lockstep worker` instead). */
  readonly workers: number;
  /** Subjects per reconciliation batch. */
  readonly batchSize: number;
  /** Rows a reconciliation batch writes at most (it holds the organization's write lock meanwhile). */
  readonly batchRows: number;
  /** How long an at_least_as_fresh check waits for the read model. */
  readonly freshnessTimeoutMs: number;
  /** Target URLs may be http and private/loopback (local use and tests only). */
  readonly targetsAllowPrivate: boolean;
  /** The server's public base URL: SSF issuer and JWKS location (default: the listen address). */
  readonly publicUrl: string | undefined;
  /** The most a `?confirm=MS` write may wait for its critical targets. */
  readonly confirmMaxMs: number;
  /** Time limit of one delivery attempt. */
  readonly deliveryTimeoutMs: number;
  /** Run the delivery engine in this process (serve and worker). */
  readonly delivery: boolean;
  /** Failed authentications per client address per window before 429 (0: no limit). */
  readonly authFailureLimit: number;
  readonly authFailureWindowMs: number;
  /** Access-history replays run at once, each in a worker thread. */
  readonly historyWorkers: number;
  /** Access-history replays that may wait for a worker; more answer 503 with Retry-After. */
  readonly historyQueue: number;
  /** /readyz answers 503 while fewer workers than this (in-process or `lockstep worker`) heartbeat (0: not checked). */
  readonly expectWorkers: number;
  /** OpenTelemetry tracing (docs/architecture.md, ADR 0016): off, or where spans go. */
  readonly tracing: TracingMode;
}

export const TRACING_MODES = ['off', 'otlp', 'console'] as const;
export type TracingMode = (typeof TRACING_MODES)[number];

export const DEFAULTS: Config = Object.freeze({
  db: './data/lockstep.db',
  host: '127.0.0.1',
  port: 7300,
  verify: 'always',
  logLevel: 'info',
  adminKey: undefined,
  bodyLimit: 1024 * 1024,
  workers: 1,
  batchSize: 100,
  batchRows: 10_000,
  freshnessTimeoutMs: 2000,
  targetsAllowPrivate: false,
  publicUrl: undefined,
  confirmMaxMs: 10_000,
  deliveryTimeoutMs: 5000,
  delivery: true,
  authFailureLimit: 20,
  authFailureWindowMs: 60_000,
  historyWorkers: 2,
  historyQueue: 4,
  tracing: 'off',
  expectWorkers: 0,
});

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function oneOf<T extends string>(name: string, allowed: readonly T[], v: string): T {
  if (!allowed.includes(v as T)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T;
}

function int(name: string, v: string, min: number, max: number): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be an integer ${min}-${max}, got '${v}'`);
  return n;
}

function bool(name: string, v: string): boolean {
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  throw new ConfigError(`${name} must be 1 or 0, got '${v}'`);
}

function port(name: string, v: string | number): number {
  const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`${name} must be a port number 0-65535, got '${v}'`);
  return n;
}

/**
 * Builds the configuration from the environment (`LOCKSTEP_DB`, `LOCKSTEP_HOST`, `LOCKSTEP_PORT`,
 * `LOCKSTEP_VERIFY`, `LOCKSTEP_LOG_LEVEL`, `LOCKSTEP_ADMIN_KEY`) and explicit overrides (CLI flags,
 * tests), overrides winning. Invalid values throw `ConfigError` naming the setting.
 */
export function loadConfig(overrides: Partial<Config> = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const pick = <K extends keyof Config>(k: K, envName: string, parse: (v: string) => Config[K]): Config[K] => {
    if (overrides[k] !== undefined) return overrides[k] as Config[K];
    const raw = env[envName];
    return raw === undefined || raw === '' ? DEFAULTS[k] : parse(raw);
  };
  const cfg: Config = {
    db: pick('db', 'LOCKSTEP_DB', (v) => v),
    host: pick('host', 'LOCKSTEP_HOST', (v) => v),
    port: port('port', pick('port', 'LOCKSTEP_PORT', (v) => port('LOCKSTEP_PORT', v))),
    verify: oneOf('verify', VERIFY_MODES, pick('verify', 'LOCKSTEP_VERIFY', (v) => oneOf('LOCKSTEP_VERIFY', VERIFY_MODES, v))),
    logLevel: oneOf('logLevel', LOG_LEVELS, pick('logLevel', 'LOCKSTEP_LOG_LEVEL', (v) => oneOf('LOCKSTEP_LOG_LEVEL', LOG_LEVELS, v))),
    adminKey: pick('adminKey', 'LOCKSTEP_ADMIN_KEY', (v) => v),
    bodyLimit: pick('bodyLimit', 'LOCKSTEP_BODY_LIMIT', (v) => {
      if (!/^\d+$/.test(v) || Number(v) < 1) throw new ConfigError(`LOCKSTEP_BODY_LIMIT must be a positive number of bytes, got '${v}'`);
      return Number(v);
    }),
    workers: pick('workers', 'LOCKSTEP_WORKERS', (v) => int('LOCKSTEP_WORKERS', v, 0, 64)),
    batchSize: pick('batchSize', 'LOCKSTEP_BATCH_SIZE', (v) => int('LOCKSTEP_BATCH_SIZE', v, 1, 100_000)),
    batchRows: pick('batchRows', 'LOCKSTEP_BATCH_ROWS', (v) => int('LOCKSTEP_BATCH_ROWS', v, 1, 100_000_000)),
    freshnessTimeoutMs: pick('freshnessTimeoutMs', 'LOCKSTEP_FRESHNESS_TIMEOUT_MS', (v) => int('LOCKSTEP_FRESHNESS_TIMEOUT_MS', v, 0, 600_000)),
    targetsAllowPrivate: pick('targetsAllowPrivate', 'LOCKSTEP_TARGETS_ALLOW_PRIVATE', (v) => bool('LOCKSTEP_TARGETS_ALLOW_PRIVATE', v)),
    publicUrl: pick('publicUrl', 'LOCKSTEP_PUBLIC_URL', (v) => {
      if (!/^https?:\/\/[^/]+/.test(v)) throw new ConfigError(`LOCKSTEP_PUBLIC_URL must be an http(s) URL, got '${v}'`);
      return v.replace(/\/+$/, '');
    }),
    confirmMaxMs: pick('confirmMaxMs', 'LOCKSTEP_CONFIRM_MAX_MS', (v) => int('LOCKSTEP_CONFIRM_MAX_MS', v, 0, 60_000)),
    deliveryTimeoutMs: pick('deliveryTimeoutMs', 'LOCKSTEP_DELIVERY_TIMEOUT_MS', (v) => int('LOCKSTEP_DELIVERY_TIMEOUT_MS', v, 100, 120_000)),
    delivery: pick('delivery', 'LOCKSTEP_DELIVERY', (v) => bool('LOCKSTEP_DELIVERY', v)),
    authFailureLimit: pick('authFailureLimit', 'LOCKSTEP_AUTH_FAILURE_LIMIT', (v) => int('LOCKSTEP_AUTH_FAILURE_LIMIT', v, 0, 1_000_000)),
    authFailureWindowMs: pick('authFailureWindowMs', 'LOCKSTEP_AUTH_FAILURE_WINDOW_MS', (v) => int('LOCKSTEP_AUTH_FAILURE_WINDOW_MS', v, 1000, 86_400_000)),
    historyWorkers: pick('historyWorkers', 'LOCKSTEP_HISTORY_WORKERS', (v) => int('LOCKSTEP_HISTORY_WORKERS', v, 1, 64)),
    historyQueue: pick('historyQueue', 'LOCKSTEP_HISTORY_QUEUE', (v) => int('LOCKSTEP_HISTORY_QUEUE', v, 0, 10_000)),
    expectWorkers: pick('expectWorkers', 'LOCKSTEP_EXPECT_WORKERS', (v) => int('LOCKSTEP_EXPECT_WORKERS', v, 0, 1024)),
    tracing: oneOf('tracing', TRACING_MODES, pick('tracing', 'LOCKSTEP_TRACING', (v) => oneOf('LOCKSTEP_TRACING', TRACING_MODES, v))),
  };
  return Object.freeze(cfg);
}

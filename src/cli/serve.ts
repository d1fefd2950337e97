/**
 * `lockstep serve`: the HTTP API on the configured store, through the same composition root the
 * end-to-end tests use. Stops cleanly on SIGINT / SIGTERM (in-flight requests finish, the pool or
 * file is closed); a second signal exits at once.
 */
import type { Command } from 'commander';
import { createApp } from '../app.ts';
import { LOG_LEVELS, type Config, type LogLevel } from '../config/config.ts';
import { VERIFY_MODES, type VerifyMode } from '../domain/model.ts';
import { addDbOptions, configFor, openStore, type DbOptions } from './database.ts';
import { UsageError } from './errors.ts';

interface ServeOptions extends DbOptions {
  port?: string;
  host?: string;
  verify?: string;
  logLevel?: string;
  workers?: string;
}

function overrides(opts: ServeOptions): Partial<Config> {
  const o: { -readonly [K in keyof Config]?: Config[K] } = {};
  if (opts.port !== undefined) {
    if (!/^\d+$/.test(opts.port) || Number(opts.port) > 65535) throw new UsageError(`--port must be 0-65535, got '${opts.port}'`);
    o.port = Number(opts.port);
  }
  if (opts.host !== undefined) o.host = opts.host;
  if (opts.verify !== undefined) {
    if (!VERIFY_MODES.includes(opts.verify as VerifyMode)) throw new UsageError(`--verify must be one of ${VERIFY_MODES.join(', ')}`);
    o.verify = opts.verify as VerifyMode;
  }
  if (opts.workers !== undefined) {
    if (!/^\d+$/.test(opts.workers) || Number(opts.workers) > 64) throw new UsageError(`--workers must be 0-64, got '${opts.workers}'`);
    o.workers = Number(opts.workers);
  }
  if (opts.logLevel !== undefined) {
    if (!LOG_LEVELS.includes(opts.logLevel as LogLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
    o.logLevel = opts.logLevel as LogLevel;
  }
  return o;
}

export function adminKeyBlock(key: string): string {
  const rule = '='.repeat(76);
  return [
    rule,
    '  Lockstep generated an ADMIN API key for this store. It is shown ONCE and',
    '  cannot be recovered (only its hash is stored). Keep it somewhere safe:',
    '',
    `    ${key}`,
    '',
    '  Use it as  Authorization: Bearer <key>  and create narrower keys with',
    '  `lockstep keys create --org ORG --scope check|write`.',
    rule,
  ].join('\n');
}

async function serve(opts: ServeOptions) {
  const config = configFor(opts, overrides(opts));
  const app = createApp(config, { database: openStore(config, opts) });
  const say = (line: string) => process.stderr.write(`lockstep: ${line}\n`);

  // Signal handlers go in before anything is printed: a supervisor that sends SIGTERM as soon as it
  // reads "serving on" must get a clean stop, and so must a signal that arrives during startup.
  let signalled: NodeJS.Signals | undefined;
  let wake: (() => void) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      say(`${signal} again, exiting now`);
      process.exit(130);
    }
    signalled = signal;
    say(`${signal} received, stopping`);
    wake?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const started = await app.start();
    // Printed even if a signal came during startup: the key is stored hashed and this is its only showing.
    if (started.adminKey !== undefined) process.stderr.write(`\n${adminKeyBlock(started.adminKey)}\n\n`);
    if (!signalled) {
      say(`serving on ${started.url} (${app.db.description}); Ctrl-C or SIGTERM stops`);
      await new Promise<void>((resolve) => (wake = resolve));
    }
    await app.stop();
    say('stopped');
  } catch (e) {
    await app.stop().catch(() => undefined);
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function registerServe(program: Command) {
  addDbOptions(
    program
      .command('serve')
      .description('Serve the HTTP API (migrates the store first; prints a generated admin key once on a fresh store)')
      .option('--port <port>', 'TCP port, 0 for any free one (default: $LOCKSTEP_PORT or 7300)')
      .option('--host <host>', 'interface to listen on (default: $LOCKSTEP_HOST or 127.0.0.1)')
      .option('--verify <mode>', `provenance verification on read-model checks: ${VERIFY_MODES.join(' | ')} (default: always)`)
      .option('--workers <n>', 'in-process reconciliation workers, 0 for none (default: $LOCKSTEP_WORKERS or 1)')
      .option('--log-level <level>', `${LOG_LEVELS.join(' | ')} (default: $LOCKSTEP_LOG_LEVEL or info)`),
  ).action(serve);
}

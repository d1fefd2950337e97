/**
 * The options every command shares (`--db`, `--schema`) and opening the store they name. The
 * database defaults to the configuration's (`LOCKSTEP_DB`, else ./data/lockstep.db); a PostgreSQL
 * schema comes from `--schema` or a `?schema=NAME` parameter of the URL.
 */
import type { Command } from 'commander';
import { loadConfig, type Config } from '../config/config.ts';
import { createLockstep } from '../app.ts';
import type { Lockstep } from '../domain/contract.ts';
import type { Database } from '../storage/database.ts';
import { openDatabase } from '../storage/open.ts';
import { UsageError } from './errors.ts';

export interface DbOptions {
  db?: string;
  schema?: string;
}

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;
const isPostgres = (target: string) => /^postgres(ql)?:\/\//.test(target);

export function addDbOptions(cmd: Command): Command {
  return cmd
    .option('--db <target>', 'SQLite file or postgres:// URL (default: $LOCKSTEP_DB or ./data/lockstep.db)')
    .option('--schema <name>', 'PostgreSQL schema to use, created if missing (or ?schema=NAME in the URL)');
}

/** Splits `?schema=` off a PostgreSQL URL; the driver is given the URL without it. */
export function resolveTarget(db: string, schemaFlag: string | undefined): { target: string; schema?: string } {
  let target = db;
  let schema = schemaFlag;
  if (isPostgres(db)) {
    const url = new URL(db);
    const fromUrl = url.searchParams.get('schema');
    if (fromUrl !== null) {
      if (schema !== undefined && schema !== fromUrl) throw new UsageError(`--schema ${schema} contradicts ?schema=${fromUrl} in --db`);
      schema = fromUrl;
      url.searchParams.delete('schema');
      target = url.toString();
    }
  } else if (schema !== undefined) {
    throw new UsageError('--schema applies only to a postgres:// database');
  }
  if (schema !== undefined && !SCHEMA.test(schema)) throw new UsageError(`schema must be lower-case letters, digits or _ (max 63), got '${schema}'`);
  return schema === undefined ? { target } : { target, schema };
}

export function configFor(opts: DbOptions, overrides: Partial<Config> = {}): Config {
  return loadConfig({ ...overrides, ...(opts.db === undefined ? {} : { db: opts.db }) });
}

export function openStore(config: Config, opts: DbOptions): Database {
  const { target, schema } = resolveTarget(config.db, opts.schema);
  return openDatabase(target, schema === undefined ? {} : { schema });
}

/**
 * Opens the store, applies pending migrations (idempotent; `serve` does the same on start), runs
 * `fn` and closes the store whatever happens.
 */
export async function withStore<T>(opts: DbOptions, fn: (db: Database, lockstep: Lockstep, config: Config) => Promise<T>): Promise<T> {
  const config = configFor(opts);
  const db = openStore(config, opts);
  try {
    await db.migrate();
    return await fn(db, createLockstep(db, { verify: config.verify, freshnessTimeoutMs: config.freshnessTimeoutMs }), config);
  } finally {
    await db.close();
  }
}

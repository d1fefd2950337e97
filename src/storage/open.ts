import type { Database } from './database.ts';
import { openPostgres, type PostgresOptions } from './postgres-engine.ts';
import { openSqlite } from './sqlite-engine.ts';

/** `postgres://…` or `postgresql://…` opens PostgreSQL; anything else is a SQLite path (or `:memory:`). */
export function openDatabase(target: string, opts: PostgresOptions = {}): Database {
  return /^postgres(ql)?:\/\//.test(target) ? openPostgres(target, opts) : openSqlite(target);
}

/**
 * Numbered migrations in ../../migrations: `NNN_name.sql` runs on both engines; a
 * `NNN_name.postgres.sql` or `NNN_name.sqlite.sql` file runs on that engine only.
 * Applied versions are recorded in `schema_migrations`, each migration in its own transaction.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Dialect } from './database.ts';

const DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function loadMigrations(dialect: Dialect): Migration[] {
  const other = dialect === 'sqlite' ? 'postgres' : 'sqlite';
  return readdirSync(DIR)
    .filter((f) => /^\d{3}_[a-z0-9_]+(\.(sqlite|postgres))?\.sql$/.test(f) && !f.endsWith(`.${other}.sql`))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 3)), name: f, sql: readFileSync(DIR + f, 'utf8') }));
}

export const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`;

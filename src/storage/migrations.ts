/**
 * Numbered migrations in ../../migrations: `NNN_name.sql` runs on both engines; a
 * `NNN_name.postgres.sql` or `NNN_name.sqlite.sql` file runs on that engine only.
 * Applied versions are recorded in `schema_migrations`, each migration in its own transaction.
 * Files sharing a number are one migration: the portable file first, then the engine's own (a
 * migration whose tables are portable but whose triggers are not keeps one number for both).
 * A migration may end with a step in code (`STEPS`), run in its transaction after its SQL: for
 * schema that exists only under a condition of the data (migration 022: the delivery diff triggers).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { LockstepError } from '../domain/errors.ts';
import { inPackage } from '../runtime/package-root.ts';
import type { Dialect, Sql } from './database.ts';
import { syncDiffTriggers } from './diff-triggers.ts';

const DIR = `${inPackage('migrations')}/`;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** The migration's step in code, after its SQL. */
  step?: (tx: Sql) => Promise<void>;
}

const STEPS: Record<number, (tx: Sql) => Promise<void>> = {
  22: syncDiffTriggers,
};

export function loadMigrations(dialect: Dialect): Migration[] {
  const other = dialect === 'sqlite' ? 'postgres' : 'sqlite';
  const files = readdirSync(DIR)
    .filter((f) => /^\d{3}_[a-z0-9_]+(\.(sqlite|postgres))?\.sql$/.test(f) && !f.endsWith(`.${other}.sql`))
    // '_x.sql' before '_x.postgres.sql': the portable part first.
    .sort((a, b) => a.slice(0, 3).localeCompare(b.slice(0, 3)) || a.split('.').length - b.split('.').length || a.localeCompare(b));
  const byVersion = new Map<number, Migration>();
  for (const f of files) {
    const version = Number(f.slice(0, 3));
    const sql = readFileSync(DIR + f, 'utf8');
    const prev = byVersion.get(version);
    byVersion.set(version, prev ? { ...prev, sql: `${prev.sql}\n${sql}` } : { version, name: f, sql });
  }
  return [...byVersion.values()].map((m) => (STEPS[m.version] ? { ...m, step: STEPS[m.version] } : m));
}

export const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`;

/**
 * Refuses a store that a newer Lockstep migrated: a process must not serve (or migrate) a schema
 * it does not know — it could miss what a later migration made its writes' duty (since migration
 * 022 the delivery diff triggers exist only while a stream does, and the process that starts a
 * stream creates them: an older one would start streams that record nothing). Every process of
 * a store is upgraded before, or with, the first one that migrates it.
 */
export function refuseNewerStore(applied: readonly { version: number; name: string }[], known: readonly Migration[]): void {
  const versions = new Set(known.map((m) => m.version));
  const unknown = applied.filter((m) => !versions.has(Number(m.version))).sort((a, b) => Number(a.version) - Number(b.version));
  if (unknown.length === 0) return;
  const newest = Math.max(...versions);
  throw new LockstepError(
    'UNAVAILABLE',
    `the store was migrated by a newer Lockstep: it has migration ${unknown.map((m) => m.name).join(', ')}, which this version (migrations up to ${String(newest).padStart(3, '0')}) does not know; run this store with that version or a later one`,
    { meta: { unknown: unknown.map((m) => Number(m.version)), newestKnown: newest } },
  );
}

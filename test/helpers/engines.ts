/**
 * The storage engines every storage-touching suite runs against. Each `open()` gives a fresh,
 * migrated database: SQLite in memory, or a new PostgreSQL schema that `close()` drops.
 */
import { randomBytes } from 'node:crypto';
import { describe } from 'vitest';
import type { Database } from '../../src/storage/database.ts';
import { dropSchema, openPostgres } from '../../src/storage/postgres-engine.ts';
import { openSqlite } from '../../src/storage/sqlite-engine.ts';

export interface TestEngine {
  name: 'sqlite' | 'postgres';
  /** A fresh migrated database (`through`: migrated only up to that migration's number). */
  open(opts?: { through?: number }): Promise<Database>;
}

const pgUrl = process.env.LOCKSTEP_TEST_PG ?? '';
const schemaPrefix = `lockstep_t_${process.ppid}_`;


export const sqliteEngine: TestEngine = {
  name: 'sqlite',
  async open(opts) {
    const db = openSqlite(':memory:');
    await db.migrate(opts);
    return db;
  },
};

export const postgresEngine: TestEngine = {
  name: 'postgres',
  async open(opts) {
    const schema = schemaPrefix + randomBytes(5).toString('hex');
    const db = openPostgres(pgUrl, { schema, max: 4 });
    await db.migrate(opts);
    const close = db.close.bind(db);
    return Object.assign(db, {
      async close() {
        await close();
        await dropSchema(pgUrl, schema);
      },
    });
  },
};

/** SQLite always; PostgreSQL when reachable (global-setup decides, and warns loudly when not). */
export const ENGINES: TestEngine[] = pgUrl ? [sqliteEngine, postgresEngine] : [sqliteEngine];

/** `describe` once per engine; the PostgreSQL block is declared skipped (and counted) when unreachable. */
export function describeEachEngine(title: string, body: (engine: TestEngine) => void) {
  describe(`${title} [sqlite]`, () => body(sqliteEngine));
  describePostgresOnly(title, body);
}

/** `describe` on PostgreSQL alone, for what SQLite cannot show (it has one writer); declared skipped (and counted) when unreachable. */
export function describePostgresOnly(title: string, body: (engine: TestEngine) => void) {
  (pgUrl ? describe : describe.skip)(`${title} [postgres]`, () => body(postgresEngine));
}

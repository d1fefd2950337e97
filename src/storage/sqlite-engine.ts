/**
 * SQLite through better-sqlite3: WAL, one connection. better-sqlite3 is synchronous, so the async
 * seam is a thin shell; transactions are serialized by an in-process lock, and a read that arrives
 * while a transaction is open waits for it, so no reader ever sees uncommitted rows.
 */
import BetterSqlite3 from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Database, Sql, Statement as Query } from './database.ts';
import { wrapStorageError } from './errors.ts';
import { loadMigrations, MIGRATIONS_TABLE, refuseNewerStore } from './migrations.ts';
import { compileStatement } from './sql.ts';

type Statement = BetterSqlite3.Statement<unknown[], unknown>;

/** `$1 … $n` → `?` with the arguments reordered (and repeated) to match. */
function compile(sql: string): { text: string; order: number[] } {
  const order: number[] = [];
  const text = sql.replace(/\$(\d+)/g, (_, n: string) => {
    order.push(Number(n) - 1);
    return '?';
  });
  return { text, order };
}

const toSqlite = (v: unknown) => (typeof v === 'boolean' ? (v ? 1 : 0) : v === undefined ? null : v);

export function openSqlite(path: string): Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new BetterSqlite3(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  // The default 2 MB page cache makes large reconciliation batches thrash the read model's indexes.
  db.pragma('cache_size = -131072');
  db.pragma('temp_store = MEMORY');

  const cache = new Map<string, { stmt: Statement; order: number[]; reader: boolean }>();
  function prepare(sql: string) {
    let hit = cache.get(sql);
    if (!hit) {
      const { text, order } = compile(sql);
      try {
        const stmt = db.prepare(text) as Statement;
        hit = { stmt, order, reader: stmt.reader };
      } catch (e) {
        wrapStorageError(e);
      }
      cache.set(sql, hit);
    }
    return hit;
  }
  const args = (order: number[], params: readonly unknown[]) => order.map((i) => toSqlite(params[i]));

  function allNow<T>(statement: Query, values?: readonly unknown[]): T[] {
    const { text, params } = compileStatement(statement, values);
    const p = prepare(text);
    try {
      return p.stmt.all(...args(p.order, params)) as T[];
    } catch (e) {
      wrapStorageError(e);
    }
  }
  function runNow(statement: Query, values?: readonly unknown[]): number {
    const { text, params } = compileStatement(statement, values);
    const p = prepare(text);
    try {
      return p.reader ? p.stmt.all(...args(p.order, params)).length : p.stmt.run(...args(p.order, params)).changes;
    } catch (e) {
      wrapStorageError(e);
    }
  }

  let current: Promise<unknown> = Promise.resolve();
  let open = false;
  const idle = async () => {
    while (open) await current.catch(() => undefined);
  };

  const base = { dialect: 'sqlite' as const, forUpdate: '', skipLocked: '' };

  // The read-only second connection of `snapshot` (file databases only), opened on first use.
  let reader: { db: BetterSqlite3.Database; sql: Sql } | undefined;
  let reading: Promise<unknown> = Promise.resolve();
  function openReader() {
    const rdb = new BetterSqlite3(path, { readonly: true });
    rdb.pragma('busy_timeout = 5000');
    rdb.pragma('cache_size = -65536');
    const stmts = new Map<string, { stmt: Statement; order: number[] }>();
    const allOn = <T,>(statement: Query, values?: readonly unknown[]): T[] => {
      const { text, params } = compileStatement(statement, values);
      let hit = stmts.get(text);
      try {
        if (!hit) {
          const c = compile(text);
          hit = { stmt: rdb.prepare(c.text) as Statement, order: c.order };
          stmts.set(text, hit);
        }
        return hit.stmt.all(...args(hit.order, params)) as T[];
      } catch (e) {
        wrapStorageError(e);
      }
    };
    const sqlOnReader: Sql = {
      ...base,
      all: async (q, p) => allOn(q, p),
      get: async (q, p) => allOn(q, p)[0] as never,
      run: async () => {
        throw new Error('a snapshot is read-only');
      },
    };
    return { db: rdb, sql: sqlOnReader };
  }
  const inTx: Sql = {
    ...base,
    all: async (sql, params) => allNow(sql, params),
    get: async (sql, params) => allNow(sql, params)[0] as never,
    run: async (sql, params) => runNow(sql, params),
  };

  const database: Database = {
    ...base,
    description: path === ':memory:' ? 'sqlite (memory)' : `sqlite ${path}`,
    async all(sql, params) {
      if (open) await idle();
      return allNow(sql, params);
    },
    async get(sql, params) {
      if (open) await idle();
      return allNow(sql, params)[0] as never;
    },
    async run(sql, params) {
      if (open) await idle();
      return runNow(sql, params);
    },
    transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      const run = async (): Promise<T> => {
        open = true;
        db.exec('BEGIN IMMEDIATE');
        try {
          const result = await fn(inTx);
          db.exec('COMMIT');
          return result;
        } catch (e) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw e;
        } finally {
          open = false;
        }
      };
      const next = current.catch(() => undefined).then(run);
      current = next;
      return next;
    },
    snapshot<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      // No second connection sees an in-memory database: the write transaction is its snapshot.
      if (path === ':memory:') return database.transaction(fn);
      const run = async (): Promise<T> => {
        reader ??= openReader();
        const r = reader;
        // Deferred: the snapshot starts at the first read and lasts until COMMIT, whatever the
        // writer connection commits meanwhile (WAL).
        r.db.exec('BEGIN');
        try {
          return await fn(r.sql);
        } finally {
          if (r.db.inTransaction) r.db.exec('COMMIT');
        }
      };
      // Snapshots share the reader connection one at a time; writers do not wait for them.
      const next = reading.catch(() => undefined).then(run);
      reading = next;
      return next;
    },
    notifySql: null,
    async listen() {
      return async () => undefined;
    },
    async migrate(opts) {
      db.exec(MIGRATIONS_TABLE);
      const rows = db.prepare('SELECT version, name FROM schema_migrations').all() as { version: number; name: string }[];
      const migrations = loadMigrations('sqlite');
      refuseNewerStore(rows, migrations);
      const done = new Set(rows.map((r) => r.version));
      const applied: number[] = [];
      for (const m of migrations) {
        if (done.has(m.version) || m.version > (opts?.through ?? Infinity)) continue;
        await database.transaction(async (tx) => {
          db.exec(m.sql);
          await m.step?.(tx);
          db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
        });
        applied.push(m.version);
      }
      return applied;
    },
    async close() {
      await idle();
      await reading.catch(() => undefined);
      reader?.db.close();
      db.close();
    },
  };
  return database;
}

/**
 * PostgreSQL through `pg`: a pool; statements are named so each connection prepares them once.
 * Transactions run at READ COMMITTED; policy writes serialize per organization by locking its row
 * (see policy/write.ts), which is what keeps the set-based read-model updates race-free.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { isOpening, type Database, type Sql, type Statement } from './database.ts';
import { wrapStorageError } from './errors.ts';
import { loadMigrations, MIGRATIONS_TABLE, refuseNewerStore } from './migrations.ts';
import { compileStatement } from './sql.ts';

// BIGINT columns hold revisions, counts and epoch milliseconds: all well inside 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

const names = new Map<string, string>();
const nameOf = (sql: string) => {
  let n = names.get(sql);
  if (!n) names.set(sql, (n = 'ls_' + createHash('sha1').update(sql).digest('hex').slice(0, 16)));
  return n;
};

type Queryable = pg.Pool | pg.PoolClient;

/**
 * The advisory-lock key migrators take (one migrator at a time across processes): a fixed number,
 * named here so that no other lock in the schema's database reuses it by accident.
 */
export const MIGRATION_LOCK_KEY = 7312001;

function sqlOn(q: Queryable): Sql {
  const exec = async (statement: Statement, values?: readonly unknown[]) => {
    const { text, params } = compileStatement(statement, values);
    try {
      return await q.query({ name: nameOf(text), text, values: params });
    } catch (e) {
      wrapStorageError(e);
    }
  };
  return {
    dialect: 'postgres',
    forUpdate: ' FOR UPDATE',
    skipLocked: ' FOR UPDATE SKIP LOCKED',
    all: async <T>(statement: Statement, params?: readonly unknown[]) => (await exec(statement, params)).rows as T[],
    get: async <T>(statement: Statement, params?: readonly unknown[]) => (await exec(statement, params)).rows[0] as T | undefined,
    run: async (sql, params) => (await exec(sql, params)).rowCount ?? 0,
  };
}

/** A parameter of an opening statement as a literal (pg's escaping): a string, null, or an array of strings. */
function literal(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'string') return pg.escapeLiteral(v);
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return `ARRAY[${v.map((x) => pg.escapeLiteral(x)).join(', ')}]::text[]`;
  throw new Error('an opening statement takes strings, null and arrays of strings only');
}

/**
 * `client`'s statements in a transaction whose BEGIN is sent with its first statement: alone before
 * it, or, for a statement declared with `opensTransaction`, in the same round trip (src/storage/database.ts).
 */
function transactionOn(client: pg.PoolClient): { tx: Sql; begun: () => boolean } {
  const base = sqlOn(client);
  let begun = false;
  const first = async (statement: Statement, values: readonly unknown[] | undefined): Promise<pg.QueryResult | undefined> => {
    begun = true;
    if (!isOpening(statement)) {
      await client.query('BEGIN');
      return undefined;
    }
    const text = statement.replace(/\$(\d+)/g, (_, n: string) => literal(values?.[Number(n) - 1]));
    try {
      const results = (await client.query(`BEGIN; ${text}`)) as unknown as pg.QueryResult[];
      return results[1];
    } catch (e) {
      wrapStorageError(e);
    }
  };
  const wrap =
    <R>(f: (st: Statement, p?: readonly unknown[]) => Promise<R>, from: (r: pg.QueryResult) => R) =>
    async (st: Statement, p?: readonly unknown[]): Promise<R> => {
      if (!begun) {
        const r = await first(st, p);
        if (r) return from(r);
      }
      return f(st, p);
    };
  const tx: Sql = {
    ...base,
    all: wrap(base.all, (r) => r.rows) as Sql['all'],
    get: wrap(base.get, (r) => r.rows[0]) as Sql['get'],
    run: wrap(base.run, (r) => r.rowCount ?? 0),
  };
  return { tx, begun: () => begun };
}

/** Drops a schema and everything in it (tests and benchmarks clean up their fresh schemas with it). */
export async function dropSchema(url: string, schema: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`bad schema name ${schema}`);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await c.end();
  }
}

/**
 * The URL with its credentials masked, for logs and descriptions. The URL parser finds where the
 * userinfo ends (the last `@` before the host), which a regex stopping at the first `@` got wrong:
 * `postgres://user:pa@ss@host/db` leaked `ss`. What does not parse is not printed at all.
 */
export function maskUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return '(unparseable URL)';
  }
  if (u.username !== '' || u.password !== '') {
    u.username = '***';
    u.password = '';
  }
  return u.toString();
}

export interface PostgresOptions {
  /** Schema to create (if missing) and use; tests pass a fresh one per run. */
  schema?: string;
  /** Connections for reads outside transactions (checks, listings). */
  max?: number;
  /** Connections for transactions (policy writes, reconciliation batches, claims). */
  writeMax?: number;
  /** Connections for `genericPlans` (the check batcher's statements). */
  genericMax?: number;
}

export function openPostgres(url: string, opts: PostgresOptions = {}): Database {
  const schema = opts.schema;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`bad schema name ${schema}`);
  const searchPath = schema ? `-c search_path=${schema}` : undefined;
  const connection = { connectionString: url, ...(searchPath ? { options: searchPath } : {}) };
  // Two pools: a storm of checks must not queue the writes (and the worker's batches) behind it for
  // a connection; transactions have connections of their own.
  const pool = new pg.Pool({ ...connection, max: opts.max ?? 10 });
  const writePool = new pg.Pool({ ...connection, max: opts.writeMax ?? 4 });
  // Few connections: the check batcher keeps few statements in flight (more would only split its
  // batches), and nothing else reads here. Its one statement is index probes per checked item
  // (docs/adr/0024-*): without seq scans its generic plan cannot hash or rescan a whole table per
  // item, as it did on small tables; JIT off, for the disable cost of a scan that has no index
  // must not make a plan of probes look worth compiling.
  const genericPool = new pg.Pool({
    ...connection,
    options: [searchPath, '-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c jit=off'].filter(Boolean).join(' '),
    max: opts.genericMax ?? 2,
  });
  // An idle client that loses its connection must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  writePool.on('error', () => undefined);
  genericPool.on('error', () => undefined);
  const safeUrl = maskUrl(url);
  let ensured: Promise<void> | undefined;
  const ensureSchema = () =>
    (ensured ??= schema ? pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`).then(() => undefined) : Promise.resolve());

  return {
    ...sqlOn(pool),
    genericPlans: sqlOn(genericPool),
    description: `postgres ${safeUrl}${schema ? ` (schema ${schema})` : ''}`,
    async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await writePool.connect();
      } catch (e) {
        wrapStorageError(e);
      }
      // BEGIN goes with the first statement (a transaction that runs none sends nothing).
      const { tx, begun } = transactionOn(client);
      try {
        const result = await fn(tx);
        if (begun()) await client.query('COMMIT');
        return result;
      } catch (e) {
        if (begun()) await client.query('ROLLBACK').catch(() => undefined);
        throw e;
      } finally {
        client.release();
      }
    },
    async snapshot<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (e) {
        wrapStorageError(e);
      }
      try {
        // One snapshot for every statement; no row locks, so no writer waits for it.
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const result = await fn(sqlOn(client));
        await client.query('COMMIT');
        return result;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw e;
      } finally {
        client.release();
      }
    },
    notifySql: 'SELECT pg_notify($1, $2)',
    async listen(channel, fn) {
      if (!/^[a-z_]+$/.test(channel)) throw new Error(`bad channel ${channel}`);
      // A dedicated connection outside the pool: LISTEN lasts as long as the session.
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => undefined);
      client.on('notification', (n) => {
        if (n.channel === channel) fn();
      });
      await client.connect();
      await client.query(`LISTEN ${channel}`);
      return async () => {
        await client.end().catch(() => undefined);
      };
    },
    async migrate(opts) {
      await ensureSchema();
      const client = await pool.connect();
      try {
        // One migrator at a time across processes.
        await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
        await client.query(MIGRATIONS_TABLE);
        const rows = (await client.query<{ version: number; name: string }>('SELECT version, name FROM schema_migrations')).rows;
        const migrations = loadMigrations('postgres');
        refuseNewerStore(rows, migrations);
        const done = new Set(rows.map((r) => Number(r.version)));
        const applied: number[] = [];
        for (const m of migrations) {
          if (done.has(m.version) || m.version > (opts?.through ?? Infinity)) continue;
          await client.query('BEGIN');
          try {
            await client.query(m.sql);
            await m.step?.(sqlOn(client));
            await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
            await client.query('COMMIT');
          } catch (e) {
            await client.query('ROLLBACK');
            throw e;
          }
          applied.push(m.version);
        }
        return applied;
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
        client.release();
      }
    },
    async close() {
      await Promise.all([pool.end(), writePool.end(), genericPool.end()]);
    },
  };
}

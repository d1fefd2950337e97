/**
 * The one seam between Lockstep and its storage engines. Everything above it is plain SQL written
 * once: a fixed statement as text with PostgreSQL-style positional parameters ($1, $2, …), a
 * composed one as an `sql` tagged template (./sql.ts), which numbers its parameters itself. The
 * SQLite engine rewrites the numbering. The handful of dialect differences are named here rather
 * than scattered through the queries.
 */
import type { SqlFragment } from './sql.ts';

export { prepared, sql, SqlFragment, type CompiledSql } from './sql.ts';

/** A statement: an `sql` fragment, or fixed text whose `$n` parameters come in `params`. */
export type Statement = SqlFragment | string;

export type Dialect = 'sqlite' | 'postgres';

export interface Sql {
  readonly dialect: Dialect;
  /** `' FOR UPDATE'` on PostgreSQL; empty on SQLite, whose write transactions are already exclusive. */
  readonly forUpdate: string;
  /** `' FOR UPDATE SKIP LOCKED'` on PostgreSQL (queue claims); empty on SQLite. */
  readonly skipLocked: string;
  all<T = Record<string, unknown>>(statement: Statement, params?: readonly unknown[]): Promise<T[]>;
  get<T = Record<string, unknown>>(statement: Statement, params?: readonly unknown[]): Promise<T | undefined>;
  /** Runs a statement and returns the number of rows it changed. */
  run(statement: Statement, params?: readonly unknown[]): Promise<number>;
}

export interface Database extends Sql {
  /**
   * Runs `fn` in one transaction: committed if it resolves, rolled back if it throws. On SQLite
   * transactions are serialized in-process; reads outside a transaction never see uncommitted rows.
   */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  /**
   * Runs `fn`'s reads on one consistent snapshot without taking the write lock: writers (of any
   * organization) neither wait for it nor show it their uncommitted rows. PostgreSQL: a REPEATABLE
   * READ, READ ONLY transaction on the read pool. SQLite: a deferred read transaction on a second,
   * read-only connection to the same file (WAL keeps its snapshot while the writer commits); an
   * in-memory database has no second connection and takes the write transaction instead. `fn` must
   * not write.
   */
  snapshot<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  /**
   * Calls `fn` whenever another connection (or process) signals `channel` — LISTEN on PostgreSQL;
   * on SQLite, one process, there is no one else to hear from. Resolves to an unsubscribe function.
   */
  listen(channel: string, fn: () => void): Promise<() => Promise<void>>;
  /** Signals `channel` when the current transaction commits (PostgreSQL NOTIFY); no-op on SQLite. */
  readonly notifySql: string | null;
  /**
   * Applies pending migrations (`through`: only those numbered up to it, as a migration test needs
   * the schema just before the migration it tests); returns the versions applied.
   */
  migrate(opts?: { through?: number }): Promise<number[]>;
  close(): Promise<void>;
  /** A short description of where the data lives, with no credentials. */
  readonly description: string;
  /**
   * PostgreSQL only: reads on a few connections of their own that always run a statement's generic
   * plan (`plan_cache_mode = force_generic_plan`). For the batched check (../check/check-batcher.ts),
   * whose custom plan takes ~0.8 ms to make and ~0.1 ms to run: the planner's `auto` mode, seeing
   * the arrays' unknown lengths, keeps making custom ones. Absent on SQLite and inside transactions.
   */
  readonly genericPlans?: Sql;
}

/**
 * A Database whose transactions join the open transaction `tx` instead of starting their own: what
 * `Lockstep.transaction` hands its writes, so that all of them commit together or not at all.
 */
export function joinTransaction(db: Database, tx: Sql): Database {
  return {
    ...tx,
    description: db.description,
    notifySql: db.notifySql,
    listen: (channel, fn) => db.listen(channel, fn),
    transaction: (fn) => fn(tx),
    snapshot: (fn) => fn(tx),
    migrate: () => Promise.reject(new Error('cannot migrate inside a transaction')),
    close: () => Promise.resolve(),
  };
}

const openings = new Set<string>();

/**
 * Declares `text` a statement that may open a transaction: when it is a transaction's first
 * statement, PostgreSQL's engine sends BEGIN and it in one round trip (one simple-protocol query of
 * two statements, `text`'s `$n` replaced by its parameters as literals with the driver's own
 * escaping). Its parameters must be strings, null, or arrays of strings. Returns `text`.
 */
export function opensTransaction(text: string): string {
  openings.add(text);
  return text;
}

/** Whether `statement` was declared with `opensTransaction`. */
export const isOpening = (statement: Statement): statement is string => typeof statement === 'string' && openings.has(statement);


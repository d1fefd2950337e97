/**
 * The read model's delivery diff triggers (docs/adr/0022-diff-triggers-only-with-streams.md): they
 * fill `effective_diff` for organizations with an event stream, and exist only while at least one
 * stream exists, so a store that delivers nothing pays nothing per read-model row. Their DDL is here
 * alone: the first stream's transaction creates them (`ensureDiffTriggers`, from
 * src/delivery/targets.ts `ensureStream`) and migration 022 sets them from this text
 * (`syncDiffTriggers`). Nothing caches whether they exist: every process of a store reads the
 * database's schema, where they are. A change of this text needs a migration that calls
 * `syncDiffTriggers` again. (PostgreSQL's trigger functions stay in migrations/007_delivery.postgres.sql.)
 */
import type { Database, Dialect, Sql } from './database.ts';

interface Trigger {
  name: string;
  ddl: Record<Dialect, string>;
}

const TRIGGERS: readonly Trigger[] = [
  {
    name: 'effective_diff_insert',
    ddl: {
      // Row triggers: the WHEN keeps organizations without a stream out of the diff.
      sqlite: `CREATE TRIGGER effective_diff_insert AFTER INSERT ON effective_assignments
WHEN EXISTS (SELECT 1 FROM event_streams WHERE org_id = NEW.org_id)
BEGIN
  INSERT INTO effective_diff (org_id, subject_id, role, resource, op) VALUES (NEW.org_id, NEW.subject_id, NEW.role, NEW.resource, 1);
END`,
      // Statement triggers over transition tables; the function filters by stream.
      postgres: `CREATE TRIGGER effective_diff_insert AFTER INSERT ON effective_assignments
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION effective_diff_insert()`,
    },
  },
  {
    name: 'effective_diff_delete',
    ddl: {
      sqlite: `CREATE TRIGGER effective_diff_delete AFTER DELETE ON effective_assignments
WHEN EXISTS (SELECT 1 FROM event_streams WHERE org_id = OLD.org_id)
BEGIN
  INSERT INTO effective_diff (org_id, subject_id, role, resource, op) VALUES (OLD.org_id, OLD.subject_id, OLD.role, OLD.resource, -1);
END`,
      postgres: `CREATE TRIGGER effective_diff_delete AFTER DELETE ON effective_assignments
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION effective_diff_delete()`,
    },
  },
];

export const DIFF_TRIGGERS = TRIGGERS.map((t) => t.name);

/** The diff triggers present in the schema, by name. */
export async function diffTriggers(tx: Sql): Promise<string[]> {
  const rows = await tx.all<{ name: string }>(
    tx.dialect === 'postgres'
      ? "SELECT tgname AS name FROM pg_trigger WHERE tgrelid = to_regclass('effective_assignments') AND tgname IN ('effective_diff_insert', 'effective_diff_delete') ORDER BY 1"
      : "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'effective_assignments' AND name IN ('effective_diff_insert', 'effective_diff_delete') ORDER BY 1",
  );
  return rows.map((r) => r.name);
}

/**
 * Creates the diff triggers that are missing, in the current transaction: the one that inserts a
 * stream, which holds that organization's lock, exclusive (so none of its writes is in flight). On
 * PostgreSQL the DDL waits for in-flight writers of the read model (other organizations') and holds
 * new ones off until this transaction commits; when the triggers exist already it takes no lock.
 */
export async function ensureDiffTriggers(tx: Sql): Promise<void> {
  if ((await diffTriggers(tx)).length === TRIGGERS.length) return;
  // The lock CREATE TRIGGER takes, taken first so that the next statement (READ COMMITTED: a
  // snapshot of its own, after the wait) sees triggers another organization's first stream
  // committed meanwhile, rather than failing on their names. Waited for `LOCK_WAIT` at most: see
  // `withTriggerRetry`.
  if (tx.dialect === 'postgres') {
    const { previous } = (await tx.get<{ previous: string }>("SELECT current_setting('lock_timeout') AS previous, set_config('lock_timeout', $1, true) AS now", [LOCK_WAIT]))!;
    await tx.run('LOCK TABLE effective_assignments IN SHARE ROW EXCLUSIVE MODE');
    await tx.get("SELECT set_config('lock_timeout', $1, true) AS now", [previous]);
  }
  const present = new Set(await diffTriggers(tx));
  for (const t of TRIGGERS) if (!present.has(t.name)) await tx.run(t.ddl[tx.dialect]);
}

/**
 * PostgreSQL: the first stream's transaction waits for the table lock while holding its
 * organization's advisory lock. A transaction that holds the read model and then asks for that
 * advisory lock (a policy file applied over several organizations) closes a cycle, and so can the
 * lock queue alone (writers queued behind the DDL). Waiting at most `LOCK_WAIT`, well inside
 * `deadlock_timeout` (1 s by default), the stream's transaction is the one that gives up, before
 * PostgreSQL would abort a writer; it is then run again from the start, its locks released
 * meanwhile (docs/adr/0022-diff-triggers-only-with-streams.md).
 */
const LOCK_WAIT = '500ms';
const ATTEMPTS = 10;

/** lock_not_available (the timeout) or deadlock_detected, raw or as the seam wraps it (its `cause`). */
const gaveUp = (e: unknown) => ['55P03', '40P01'].includes(String((e as { cause?: { code?: unknown } }).cause?.code ?? (e as { code?: unknown }).code));

/** `db.transaction(fn)` for a transaction that may create the triggers (one that calls `ensureStream`), run again if it gave up on their lock. */
export async function withTriggerRetry<T>(db: Database, fn: (tx: Sql) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(fn);
    } catch (e) {
      if (!gaveUp(e) || attempt >= ATTEMPTS) throw e;
      await new Promise((r) => setTimeout(r, 10 + Math.random() * 40 * attempt));
    }
  }
}

/**
 * Migration 022: the triggers dropped and, if any organization has a stream, created again from
 * the text above. PostgreSQL: streams are held still first (SHARE on event_streams: a concurrent
 * first stream either committed before, and is counted, or inserts after this commits, and then
 * finds no triggers and creates them).
 */
export async function syncDiffTriggers(tx: Sql): Promise<void> {
  if (tx.dialect === 'postgres') await tx.run('LOCK TABLE event_streams IN SHARE MODE');
  for (const name of await diffTriggers(tx)) await tx.run(tx.dialect === 'postgres' ? `DROP TRIGGER ${name} ON effective_assignments` : `DROP TRIGGER ${name}`);
  if (await tx.get('SELECT 1 AS x FROM event_streams LIMIT 1')) await ensureDiffTriggers(tx);
}

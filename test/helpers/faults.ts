/**
 * Real failures for error-path tests, no mocks: a trigger that makes one statement fail on a fresh
 * database (a BEFORE trigger raising where `when`, a predicate on NEW / OLD, holds), on either engine.
 * The returned function drops it again.
 */
import type { Database } from '../../src/storage/database.ts';

export async function fault(db: Database, name: string, table: string, event: 'INSERT' | 'UPDATE' | 'DELETE', when: string): Promise<() => Promise<void>> {
  if (db.dialect === 'sqlite') {
    await db.run(`CREATE TRIGGER ${name} BEFORE ${event} ON ${table} FOR EACH ROW WHEN ${when} BEGIN SELECT RAISE(ABORT, 'forced failure: ${name}'); END`);
    return async () => void (await db.run(`DROP TRIGGER ${name}`));
  }
  await db.run(`CREATE FUNCTION ${name}_raise() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN RAISE EXCEPTION 'forced failure: ${name}'; END $body$`);
  await db.run(`CREATE TRIGGER ${name} BEFORE ${event} ON ${table} FOR EACH ROW WHEN (${when}) EXECUTE FUNCTION ${name}_raise()`);
  return async () => {
    await db.run(`DROP TRIGGER ${name} ON ${table}`);
    await db.run(`DROP FUNCTION ${name}_raise()`);
  };
}

/**
 * Migration 021 (docs/adr/0020-*): on SQLite the read model is rebuilt as a WITHOUT ROWID table.
 * A database migrated up to 020 and holding read-model rows keeps every row through it, and the
 * rebuilt table keeps its secondary index and the delivery diff triggers (an organization with an
 * event stream records its inserts and deletes; one without records nothing). On PostgreSQL, where
 * the table is not rebuilt, the same holds across the same migrations.
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { sql, type Database } from '../../src/storage/database.ts';

interface Row {
  org_id: string;
  subject_id: string;
  resource: string;
  assignment_id: string;
  role: string;
  group_id: string | null;
}

const ROWS: Row[] = ['o_stream', 'o_quiet'].flatMap((org) =>
  Array.from({ length: 600 }, (_, i) => ({
    org_id: org,
    subject_id: `u${String(i % 60).padStart(3, '0')}`,
    resource: `project:p${i % 7}`,
    assignment_id: `a${i}`,
    role: i % 2 ? 'viewer' : 'editor',
    group_id: i % 3 ? `g${i % 5}` : null,
  })),
);
const COLS = sql.raw('org_id, subject_id, resource, assignment_id, role, group_id');
const all = (db: Database) => db.all<Row>(sql`SELECT ${COLS} FROM effective_assignments ORDER BY org_id, subject_id, resource, assignment_id`);
const diff = (db: Database) => db.all<{ org_id: string; subject_id: string; role: string; resource: string; op: number }>('SELECT org_id, subject_id, role, resource, op FROM effective_diff ORDER BY org_id, subject_id, op');

async function insert(db: Database, rows: Row[]) {
  for (let i = 0; i < rows.length; i += 100) {
    const values = rows.slice(i, i + 100).map((r) => sql`(${r.org_id}, ${r.subject_id}, ${r.resource}, ${r.assignment_id}, ${r.role}, ${r.group_id})`);
    await db.run(sql`INSERT INTO effective_assignments (${COLS}) VALUES ${sql.join(values)} ON CONFLICT DO NOTHING`);
  }
}

describeEachEngine('migration 021: the read model rebuilt', (engine) => {
  let db: Database;
  beforeEach(async () => {
    db = await engine.open({ through: 20 });
    for (const org of ['o_stream', 'o_quiet']) await db.run('INSERT INTO organizations (id, name, revision, created_at) VALUES ($1, $1, 0, 0)', [org]);
    await db.run("INSERT INTO event_streams (org_id, since_revision, created_at) VALUES ('o_stream', 0, 0)");
  });
  afterEach(async () => {
    await db.close();
  });

  it('keeps every row, the secondary index and the diff triggers', async () => {
    await insert(db, ROWS);
    const before = await all(db);
    expect(before).toHaveLength(ROWS.length);
    // The triggers of 007 fired before the migration: only the organization with a stream.
    expect((await diff(db)).every((d) => d.org_id === 'o_stream' && d.op === 1)).toBe(true);
    expect(await diff(db)).toHaveLength(600);
    await db.run('DELETE FROM effective_diff');

    const applied = await db.migrate();
    if (engine.name === 'sqlite') expect(applied).toContain(21);
    expect(await all(db)).toEqual(before);

    if (engine.name === 'sqlite') {
      const table = await db.get<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'effective_assignments'");
      expect(table!.sql).toMatch(/WITHOUT ROWID\s*$/);
      await expect(db.all('SELECT rowid FROM effective_assignments')).rejects.toThrow(); // no such column
      const index = await db.get<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'effective_by_group'");
      expect(index!.sql).toMatch(/\(org_id, group_id, subject_id\)/);
      const plan = await db.all<{ detail: string }>("EXPLAIN QUERY PLAN SELECT subject_id FROM effective_assignments WHERE org_id = 'o_stream' AND group_id = 'g1'");
      expect(plan.map((p) => p.detail).join(' ')).toMatch(/effective_by_group/);
      expect(await db.all("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'effective_assignments_%'")).toEqual([]);
    } else {
      expect(await db.get<{ n: number }>("SELECT COUNT(*)::int AS n FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'effective_by_group'")).toEqual({ n: 1 });
    }

    // The triggers still fire after the migration, for the organization with a stream only …
    const added: Row[] = ['o_stream', 'o_quiet'].map((org) => ({ org_id: org, subject_id: 'u_new', resource: 'project:p1', assignment_id: 'a_new', role: 'viewer', group_id: 'g1' }));
    await insert(db, added);
    expect(await diff(db)).toEqual([{ org_id: 'o_stream', subject_id: 'u_new', role: 'viewer', resource: 'project:p1', op: 1 }]);
    // … not for a row the conflict clause skipped …
    await insert(db, [ROWS[0]!, added[0]!]);
    expect(await diff(db)).toHaveLength(1);
    // … and on delete.
    await db.run('DELETE FROM effective_diff');
    const removed = await db.run("DELETE FROM effective_assignments WHERE subject_id IN ('u_new', 'u001')");
    expect(removed).toBe(2 + ROWS.filter((r) => r.subject_id === 'u001').length);
    const d = await diff(db);
    expect(d.every((x) => x.org_id === 'o_stream' && x.op === -1)).toBe(true);
    expect(d).toHaveLength(1 + ROWS.filter((r) => r.org_id === 'o_stream' && r.subject_id === 'u001').length);
  });

  it('migrates an empty read model, and re-running migrate applies nothing', async () => {
    await db.migrate();
    expect(await db.migrate()).toEqual([]);
    await insert(db, ROWS.slice(0, 10));
    expect(await all(db)).toHaveLength(10);
    expect(await diff(db)).toHaveLength(ROWS.slice(0, 10).filter((r) => r.org_id === 'o_stream').length);
  });
});

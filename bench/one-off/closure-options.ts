/**
 * One-off measurement behind docs/adr/0004-nested-groups-closure.md (not part of `npm run bench`):
 * how a check proves a nested membership path, and what an edge write costs, for the two options —
 *
 *   closure   a group-to-group closure table kept in the write's transaction; a check probes it
 *             (counted: each pair carries its number of paths, so removing one of two paths keeps it)
 *   recursive no closure; a check walks up from the subject's memberships with a recursive CTE that
 *             also compares each link's expiry with the clock
 *
 * and, for the closure, its maintenance on an edge write counted vs re-derived (the pairs of the
 * edge's ancestors recomputed from the edges). Both engines, depths 1, 3 and 6, 2,000 subjects in
 * the bottom group. Run: node --import tsx bench/one-off/closure-options.ts [pgUrl]
 */
import { randomBytes } from 'node:crypto';
import type { Database } from '../../src/storage/database.ts';
import { dropSchema, openPostgres } from '../../src/storage/postgres-engine.ts';
import { openSqlite } from '../../src/storage/sqlite-engine.ts';

const SUBJECTS = 2000;
const CHECKS = 3000;
const WRITES = 200;
const O = 'o';

const DDL = [
  'ALTER TABLE memberships ADD COLUMN expires_at BIGINT',
  `CREATE TABLE group_members (org_id TEXT NOT NULL, group_id TEXT NOT NULL, member_id TEXT NOT NULL, expires_at BIGINT,
     PRIMARY KEY (org_id, group_id, member_id))`,
  'CREATE INDEX group_members_by_member ON group_members (org_id, member_id, group_id)',
  `CREATE TABLE group_closure (org_id TEXT NOT NULL, ancestor_id TEXT NOT NULL, descendant_id TEXT NOT NULL, paths BIGINT NOT NULL,
     PRIMARY KEY (org_id, descendant_id, ancestor_id))`,
  'CREATE INDEX group_closure_by_ancestor ON group_closure (org_id, ancestor_id, descendant_id)',
];

const PROBE_CLOSURE = `SELECT CASE WHEN EXISTS (SELECT 1 FROM memberships m JOIN group_closure c
    ON c.org_id = m.org_id AND c.descendant_id = m.group_id AND c.ancestor_id = $3
    WHERE m.org_id = $1 AND m.subject_id = $2) THEN 1 ELSE 0 END AS ok`;
const PROBE_RECURSIVE = `WITH RECURSIVE up(g, depth) AS (
    SELECT m.group_id, 1 FROM memberships m WHERE m.org_id = $1 AND m.subject_id = $2 AND (m.expires_at IS NULL OR m.expires_at > $4)
    UNION
    SELECT e.group_id, up.depth + 1 FROM up JOIN group_members e ON e.org_id = $1 AND e.member_id = up.g AND (e.expires_at IS NULL OR e.expires_at > $4)
     WHERE up.depth < 16)
  SELECT CASE WHEN EXISTS (SELECT 1 FROM up WHERE g = $3) THEN 1 ELSE 0 END AS ok`;

/** The recursive walk, after a probe of the direct membership (the flat case pays one probe). */
const PROBE_DIRECT_FIRST = `SELECT CASE WHEN EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = $1 AND m.subject_id = $2 AND m.group_id = $3
    AND (m.expires_at IS NULL OR m.expires_at > $4)) THEN 1 ELSE (${PROBE_RECURSIVE.replace('SELECT CASE WHEN EXISTS (SELECT 1 FROM up WHERE g = $3) THEN 1 ELSE 0 END AS ok', 'SELECT COUNT(*) FROM up WHERE g = $3')}) END AS ok`;

const ADD_COUNTED = `INSERT INTO group_closure (org_id, ancestor_id, descendant_id, paths)
  SELECT $1, up.ancestor_id, down.descendant_id, up.paths * down.paths FROM group_closure up CROSS JOIN group_closure down
   WHERE up.org_id = $1 AND up.descendant_id = $2 AND down.org_id = $1 AND down.ancestor_id = $3
  ON CONFLICT (org_id, descendant_id, ancestor_id) DO UPDATE SET paths = group_closure.paths + excluded.paths`;
const REMOVE_COUNTED = [
  `UPDATE group_closure SET paths = paths - (
     SELECT up.paths * down.paths FROM group_closure up CROSS JOIN group_closure down
      WHERE up.org_id = $1 AND up.descendant_id = $2 AND up.ancestor_id = group_closure.ancestor_id
        AND down.org_id = $1 AND down.ancestor_id = $3 AND down.descendant_id = group_closure.descendant_id)
    WHERE org_id = $1 AND ancestor_id IN (SELECT ancestor_id FROM group_closure WHERE org_id = $1 AND descendant_id = $2)
      AND descendant_id IN (SELECT descendant_id FROM group_closure WHERE org_id = $1 AND ancestor_id = $3)`,
  'DELETE FROM group_closure WHERE org_id = $1 AND paths = 0 AND CAST($2 AS TEXT) IS NOT NULL AND CAST($3 AS TEXT) IS NOT NULL',
];
/** Re-derived: every pair of the parent's ancestors recomputed from the edges (paths counted again). */
const REDERIVE = [
  `DELETE FROM group_closure WHERE org_id = $1 AND CAST($3 AS TEXT) IS NOT NULL AND ancestor_id IN (
     SELECT ancestor_id FROM (SELECT ancestor_id FROM group_closure WHERE org_id = $1 AND descendant_id = $2) x)`,
  `INSERT INTO group_closure (org_id, ancestor_id, descendant_id, paths)
   WITH RECURSIVE tops(a) AS (SELECT $2 UNION SELECT e.group_id FROM tops JOIN group_members e ON e.org_id = $1 AND e.member_id = tops.a),
     down(a, d, depth) AS (SELECT a, a, 0 FROM tops
       UNION ALL SELECT down.a, e.member_id, down.depth + 1 FROM down JOIN group_members e ON e.org_id = $1 AND e.group_id = down.d WHERE down.depth < 16)
   SELECT $1, a, d, COUNT(*) FROM down WHERE CAST($3 AS TEXT) IS NOT NULL GROUP BY a, d`,
];

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const us = (ns: bigint) => Number(ns) / 1000;

async function timed(n: number, fn: (i: number) => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < Math.min(200, n); i++) await fn(i); // warm-up
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    xs.push(us(process.hrtime.bigint() - t));
  }
  return { p50: pct(xs, 50), p99: pct(xs, 99) };
}

/** A chain L1 ⊂ … ⊂ L<depth>, 2,000 subjects in L1 (and each in 3 flat groups of 100), closure counted. */
async function load(db: Database, depth: number) {
  await db.transaction(async (tx) => {
    await tx.run('INSERT INTO organizations (id, revision, created_at) VALUES ($1, 0, 0)', [O]);
    const groups = [...Array.from({ length: depth }, (_, i) => `L${i + 1}`), ...Array.from({ length: 60 }, (_, i) => `f${i}`)];
    for (const g of groups) {
      await tx.run('INSERT INTO groups (org_id, id) VALUES ($1, $2)', [O, g]);
      await tx.run('INSERT INTO group_closure (org_id, ancestor_id, descendant_id, paths) VALUES ($1, $2, $2, 1)', [O, g]);
    }
    for (let i = 0; i < SUBJECTS; i++) {
      const s = `s${String(i).padStart(5, '0')}`;
      await tx.run("INSERT INTO subjects (org_id, id, kind) VALUES ($1, $2, 'user')", [O, s]);
      for (const g of ['L1', `f${i % 20}`, `f${20 + (i % 20)}`, `f${40 + (i % 20)}`]) {
        await tx.run('INSERT INTO memberships (org_id, group_id, subject_id) VALUES ($1, $2, $3)', [O, g, s]);
      }
    }
    for (let i = 1; i < depth; i++) {
      await tx.run('INSERT INTO group_members (org_id, group_id, member_id) VALUES ($1, $2, $3)', [O, `L${i + 1}`, `L${i}`]);
      await tx.run(ADD_COUNTED, [O, `L${i + 1}`, `L${i}`]);
    }
  });
  if (db.dialect === 'postgres') await db.run('ANALYZE');
  else await db.run('ANALYZE');
}

async function measure(name: string, open: () => Promise<{ db: Database; close: () => Promise<void> }>) {
  for (const depth of [1, 3, 6]) {
    const { db, close } = await open();
    for (const d of DDL) await db.run(d);
    await load(db, depth);
    const top = `L${depth}`;
    const subject = (i: number) => `s${String((i * 7919) % SUBJECTS).padStart(5, '0')}`;
    for (const [option, q] of [['closure', PROBE_CLOSURE], ['recursive', PROBE_RECURSIVE], ['direct, then recursive', PROBE_DIRECT_FIRST]] as const) {
      const params = (i: number) => (option === 'closure' ? [O, subject(i), top] : [O, subject(i), top, Date.now()]);
      const ok = await db.get<{ ok: number }>(q, params(0));
      if (Number(ok?.ok) < 1) throw new Error(`${option} did not find the path`);
      const t = await timed(CHECKS, (i) => db.get(q, params(i)));
      console.log(`${name}\tdepth ${depth}\tcheck path proof\t${option}\tp50 ${t.p50.toFixed(1)} µs\tp99 ${t.p99.toFixed(1)} µs`);
    }
    if (depth === 6) {
      // the mid-level edge L3 ⊂ L4, removed and added back, one transaction per write
      const edge = [O, 'L4', 'L3'];
      const edgeRow = async (tx: Database | Parameters<Parameters<Database['transaction']>[0]>[0], add: boolean) =>
        add
          ? tx.run('INSERT INTO group_members (org_id, group_id, member_id) VALUES ($1, $2, $3)', edge)
          : tx.run('DELETE FROM group_members WHERE org_id = $1 AND group_id = $2 AND member_id = $3', edge);
      const variants: [string, (add: boolean) => Promise<void>][] = [
        ['edge row only (recursive)', (add) => db.transaction(async (tx) => void (await edgeRow(tx, add)))],
        ['closure counted', (add) => db.transaction(async (tx) => {
          await edgeRow(tx, add);
          if (add) await tx.run(ADD_COUNTED, edge);
          else for (const s of REMOVE_COUNTED) await tx.run(s, edge);
        })],
        ['closure re-derived', (add) => db.transaction(async (tx) => {
          if (!add) await edgeRow(tx, add);
          for (const s of REDERIVE) await tx.run(s, edge);
          if (add) {
            await edgeRow(tx, add);
            for (const s of REDERIVE) await tx.run(s, edge);
          }
        })],
      ];
      for (const [label, write] of variants) {
        const t = await timed(WRITES, (i) => write(i % 2 === 1));
        const n = await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM group_closure WHERE org_id = $1', [O]);
        console.log(`${name}\tdepth 6\tedge write (remove/add L3 ⊂ L4)\t${label}\tp50 ${t.p50.toFixed(1)} µs\tp99 ${t.p99.toFixed(1)} µs\tclosure rows ${n?.n}`);
      }
    }
    await close();
  }
}

const pgUrl = process.argv[2] ?? process.env.LOCKSTEP_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
await measure('sqlite', async () => {
  const db = openSqlite(':memory:');
  await db.migrate();
  return { db, close: () => db.close() };
});
await measure('postgres', async () => {
  const schema = `lockstep_closure_${randomBytes(4).toString('hex')}`;
  const db = openPostgres(pgUrl, { schema, max: 2 });
  await db.migrate();
  return { db, close: async () => (await db.close(), await dropSchema(pgUrl, schema)) };
});

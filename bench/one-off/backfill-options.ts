/**
 * One-off measurement behind the backfill's batch shape (issue 13, docs/adr/0014-*; not part of
 * `npm run bench`). The reconciler already inserts set-based — one `INSERT … SELECT` of the
 * derivation per batch, the checkpoint in the batch's transaction (src/propagation/reconcile.ts) — so
 * this measures what is left to choose, per engine, on a fresh database each time (SQLite: a file, as
 * scenario 3 uses):
 *
 *   batches   a `group:` backfill of members × assignments through the ordinary worker, for rows
 *             per batch (`maxBatchRows`: 10k, the default, 50k, 100k), without the read-model diff
 *             triggers (a store where no organization has an event stream has none, migration 022;
 *             every other part and variant creates them, as a stream elsewhere in the store would),
 *             and on SQLite into the rowid table of before migration 021
 *   statement one 50k-row batch's INSERT (rolled back, repeated), PostgreSQL: as written
 *             (`ON CONFLICT DO NOTHING`), input ordered by the primary key, an anti-join instead of
 *             the conflict clause (safe under the organization lock: nobody else inserts), plain
 *             (no conflict handling: the lower bound), without the secondary index, work_mem 64 MB,
 *             the key columns in the "C" collation, the diff trigger disabled (its transition table
 *             not captured), staged (the derivation into an UNLOGGED table, then one INSERT … SELECT),
 *             from Node over `unnest` arrays (the rows read out, then sent back as six arrays).
 *             SQLite: as written, without the diff trigger, multi-row prepared VALUES from Node,
 *             INSERT … SELECT over `json_each` of one JSON array from Node
 *   parallel  PostgreSQL: the same number of subjects reconciled in 10k-row transactions on one
 *             connection, then split in two disjoint halves on two connections at once (no
 *             organization lock: what a finer-grained lock would allow, not what the code does)
 *   engine    the engine's bulk rate for this table's shape with no derivation at all: rows
 *             generated in SQL (`generate_series` / a recursive CTE) inserted into an empty copy of
 *             effective_assignments with both indexes, 10k rows per transaction
 *
 *   shapes    (docs/adr/0020-*) the same generated rows, inserted `ON CONFLICT DO NOTHING` into the
 *             real effective_assignments (its triggers included) reshaped per option, 10k rows per
 *             transaction, on a fresh database each: SQLite as a rowid table (before migration
 *             021) or WITHOUT ROWID (021), with or without the diff triggers, page size 8k/16k,
 *             a 512 MB page cache, mmap; PostgreSQL as migrated, triggers disabled, key columns
 *             COLLATE "C", index fillfactor 100, synchronous_commit off, wal_compression,
 *             without effective_by_group (the lower bound)
 *
 *   node --import tsx bench/one-off/backfill-options.ts [members] [assignments] [pgUrl]
 *   env: REPS (default 1), ENGINES (sqlite,postgres), PARTS (batches,statement,parallel,engine,shapes),
 *        SHAPES, VARIANTS (names of the shapes / batches to run, separated by |; default all)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import BetterSqlite3 from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createWorker } from '../../src/propagation/worker.ts';
import { reconcileRange } from '../../src/propagation/reconcile.ts';
import { sql, type Sql, type SqlFragment } from '../../src/storage/database.ts';
import { ensureDiffTriggers } from '../../src/storage/diff-triggers.ts';
import { desired, ROW_COLUMNS } from '../../src/derivation/rule.ts';
import { parseScope, scopeFilter } from '../../src/propagation/scope.ts';
import { loadDataset, openStore, type Engine, type Store } from '../lib/lockstep.ts';
import { largeDataset, ORG, user } from '../lib/model.ts';

const members = Number(process.argv[2] ?? 300);
const assignments = Number(process.argv[3] ?? 1000);
const pgUrl = process.argv[4] ?? 'postgres://postgres@127.0.0.1:5432/test';
const reps = Number(process.env.REPS ?? 1);
const engines = (process.env.ENGINES ?? 'sqlite,postgres').split(',') as Engine[];
const parts = (process.env.PARTS ?? 'batches,statement,parallel,engine').split(',');
const onlyShapes = process.env.SHAPES?.split('|');
const rows = members * assignments;
const out = (...cells: unknown[]) => process.stdout.write(cells.join('\t') + '\n');
const rate = (n: number, ms: number) => `${Math.round(n / (ms / 1000)).toLocaleString('en')} rows/s`;
const tmp = mkdtempSync(join(tmpdir(), 'lockstep-backfill-options-'));
/** The diff triggers, as a store where some organization has an event stream has them (docs/adr/0022-*); ORG has none. */
const withTriggers = (store: Store) => store.db.transaction((tx) => ensureDiffTriggers(tx));
const open = async (engine: Engine, poolMax = 4, triggers = true) => {
  const store = await openStore(engine, pgUrl, { poolMax, file: join(tmp, `b-${Date.now()}-${Math.random()}.db`) });
  if (triggers) await withTriggers(store);
  return store;
};
const scope = parseScope('group:everyone');
const where = (lo: number, hi: number) => sql`d.org_id = ${ORG} AND d.subject_id >= ${user(lo)} AND d.subject_id <= ${user(hi)} AND ${scopeFilter(scope, 'd')}`;
const ins = sql`INSERT INTO effective_assignments (${ROW_COLUMNS})`;

/** SQLite: effective_assignments rebuilt as a rowid table or WITHOUT ROWID (the drop takes its triggers with it). */
const rebuild = (withoutRowid: boolean) => `DROP TABLE effective_assignments;
  CREATE TABLE effective_assignments (org_id TEXT NOT NULL, subject_id TEXT NOT NULL, resource TEXT NOT NULL, assignment_id TEXT NOT NULL,
    role TEXT NOT NULL, group_id TEXT, PRIMARY KEY (org_id, subject_id, resource, assignment_id))${withoutRowid ? ' WITHOUT ROWID' : ''};
  CREATE INDEX effective_by_group ON effective_assignments (org_id, group_id, subject_id)`;

/** Runs `fn` in a transaction that is always rolled back. */
async function rolledBack(store: Store, fn: (tx: Sql) => Promise<void>) {
  await store.db
    .transaction(async (tx) => {
      await fn(tx);
      throw new Error('rollback');
    })
    .catch((e: Error) => {
      if (e.message !== 'rollback') throw e;
    });
}

/** A dataset loaded, a third of its subjects reconciled (an index to insert into, as mid-backfill). */
async function midBackfill(engine: Engine) {
  const store = await open(engine, 2);
  await loadDataset(store.db, largeDataset(members, assignments), { reconcile: false });
  const done = Math.floor(members / 3);
  await store.db.run(sql`${ins} ${desired(where(0, done - 1))} ON CONFLICT DO NOTHING`);
  if (engine === 'postgres') await store.db.run('VACUUM ANALYZE effective_assignments');
  else await store.db.run('ANALYZE');
  const batch = Math.max(1, Math.floor(50_000 / assignments));
  return { store, sel: desired(where(done, done + batch - 1)), lo: done, hi: done + batch - 1 };
}

const onlyVariants = process.env.VARIANTS?.split('|');
const variants: Array<{ name: string; maxBatchRows: number; noTriggers?: boolean; rowidTable?: boolean }> = [
  { name: '10k rows/batch (default)', maxBatchRows: 10_000 },
  { name: '10k, SQLite rowid table (before 021)', maxBatchRows: 10_000, rowidTable: true },
  { name: '50k rows/batch', maxBatchRows: 50_000 },
  { name: '100k rows/batch', maxBatchRows: 100_000 },
  { name: '10k, diff triggers off', maxBatchRows: 10_000, noTriggers: true },
];
try {
  if (parts.includes('batches')) {
    for (let rep = 0; rep < reps; rep++) {
      for (const engine of engines) {
        for (const v of variants) {
          if ((onlyVariants && !onlyVariants.includes(v.name)) || (v.rowidTable && engine !== 'sqlite')) continue;
          const store = await open(engine, 4, false);
          try {
            if (v.rowidTable) for (const stmt of rebuild(false).split(/;\s*(?=DROP|CREATE|ALTER)/)) await store.db.run(stmt);
            if (!v.noTriggers) await withTriggers(store);
            await loadDataset(store.db, largeDataset(members, assignments), { reconcile: false });
            const t0 = performance.now();
            let batches = 0;
            await createWorker({ db: store.db, batchSize: 1000, maxBatchRows: v.maxBatchRows, onEvent: (e) => void (e.type === 'batch' && batches++) }).drain();
            const ms = performance.now() - t0;
            const n = await store.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM effective_assignments');
            if (Number(n!.n) !== rows) throw new Error(`expected ${rows} rows, found ${n!.n}`);
            out(engine, 'worker', v.name, `${batches} batches`, `${(ms / 1000).toFixed(2)} s`, rate(rows, ms));
          } finally {
            await store.close();
          }
        }
      }
    }
  }

  if (parts.includes('statement') && engines.includes('postgres')) {
    const { store, sel, lo, hi } = await midBackfill('postgres');
    try {
      const absent = sql`NOT EXISTS (SELECT 1 FROM effective_assignments e WHERE e.org_id = x.org_id AND e.subject_id = x.subject_id AND e.resource = x.resource AND e.assignment_id = x.assignment_id)`;
      const single: Array<[string, SqlFragment, string?]> = [
        ['as written (ON CONFLICT DO NOTHING)', sql`${ins} ${sel} ON CONFLICT DO NOTHING`],
        ['ordered by the primary key', sql`${ins} ${sel} ORDER BY 1, 2, 5, 3 ON CONFLICT DO NOTHING`],
        ['anti-join, no conflict clause', sql`${ins} SELECT * FROM (${sel}) x WHERE ${absent}`],
        ['plain (lower bound, not safe)', sql`${ins} ${sel}`],
        ['without effective_by_group', sql`${ins} ${sel} ON CONFLICT DO NOTHING`, 'DROP INDEX effective_by_group'],
        ["work_mem '64MB'", sql`${ins} ${sel} ON CONFLICT DO NOTHING`, "SET LOCAL work_mem = '64MB'"],
        ['key columns COLLATE "C"', sql`${ins} ${sel} ON CONFLICT DO NOTHING`, 'ALTER TABLE effective_assignments ' + ['org_id', 'subject_id', 'resource', 'assignment_id', 'group_id'].map((c) => `ALTER COLUMN ${c} TYPE TEXT COLLATE "C"`).join(', ')],
        ['diff trigger disabled', sql`${ins} ${sel} ON CONFLICT DO NOTHING`, 'ALTER TABLE effective_assignments DISABLE TRIGGER effective_diff_insert'],
        ['select only (the derivation, no insert)', sql`SELECT COUNT(*) FROM (${sel}) x`],
      ];
      for (let rep = 0; rep < Math.max(2, reps); rep++) {
        for (const [name, q, pre] of single) {
          await rolledBack(store, async (tx) => {
            if (pre) await tx.run(pre);
            const t = performance.now();
            const n = name.startsWith('select only') ? Number((await tx.get<{ count: string }>(q))!.count) : await tx.run(q);
            out('postgres', 'statement', name, `${n} rows`, `${(performance.now() - t).toFixed(0)} ms`, rate(n, performance.now() - t));
          });
        }
        await rolledBack(store, async (tx) => {
          const t = performance.now();
          await tx.run(`CREATE UNLOGGED TABLE backfill_stage (LIKE effective_assignments)`);
          await tx.run(sql`INSERT INTO backfill_stage (${ROW_COLUMNS}) ${sel}`);
          const n = await tx.run(sql`${ins} SELECT ${ROW_COLUMNS} FROM backfill_stage ON CONFLICT DO NOTHING`);
          out('postgres', 'statement', 'staged: UNLOGGED table, then one INSERT … SELECT', `${n} rows`, `${(performance.now() - t).toFixed(0)} ms`, rate(n, performance.now() - t));
        });
        await rolledBack(store, async (tx) => {
          const t = performance.now();
          const got = await tx.all<Record<string, string | null>>(sel);
          const cols = ['org_id', 'subject_id', 'assignment_id', 'role', 'resource', 'group_id'];
          const arrays = cols.map((c) => got.map((r) => r[c] ?? null));
          const n = await tx.run(`${'INSERT INTO effective_assignments (org_id, subject_id, assignment_id, role, resource, group_id)'} SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) ON CONFLICT DO NOTHING`, arrays);
          out('postgres', 'statement', 'from Node over unnest arrays (read out, sent back)', `${n} rows`, `${(performance.now() - t).toFixed(0)} ms`, rate(n, performance.now() - t));
        });
      }
      void lo, void hi;
    } finally {
      await store.close();
    }
  }

  if (parts.includes('statement') && engines.includes('sqlite')) {
    const { store, sel, lo, hi } = await midBackfill('sqlite');
    try {
      for (let rep = 0; rep < Math.max(2, reps); rep++) {
        await rolledBack(store, async (tx) => {
          let t = performance.now();
          const n = Number((await tx.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM (${sel}) x`))!.n);
          out('sqlite', 'statement', 'select only (the derivation, no insert)', `${n} rows`, `${(performance.now() - t).toFixed(0)} ms`, rate(n, performance.now() - t));
          t = performance.now();
          await reconcileRange(tx, ORG, scope, user(lo), user(hi));
          out('sqlite', 'statement', 'reconcileRange (delete + insert, as the worker)', `${n} rows`, `${(performance.now() - t).toFixed(0)} ms`, rate(n, performance.now() - t));
        });
        for (const [name, pre] of [['as written (ON CONFLICT DO NOTHING)'], ['diff trigger dropped', 'DROP TRIGGER effective_diff_insert']] as const) {
          await rolledBack(store, async (tx) => {
            if (pre) await tx.run(pre);
            const t = performance.now();
            const n = await tx.run(sql`${ins} ${sel} ON CONFLICT DO NOTHING`);
            out('sqlite', 'statement', name, `${n} rows`, `${(performance.now() - t).toFixed(0)} ms`, rate(n, performance.now() - t));
          });
        }
        await rolledBack(store, async (tx) => {
          const t = performance.now();
          const got = await tx.all<Record<string, string | null>>(sel);
          const per = 5000;
          let n = 0;
          for (let i = 0; i < got.length; i += per) {
            const chunk = got.slice(i, i + per);
            const params = chunk.flatMap((r) => [r.org_id, r.subject_id, r.assignment_id, r.role, r.resource, r.group_id]);
            n += await tx.run(`INSERT INTO effective_assignments (org_id, subject_id, assignment_id, role, resource, group_id) VALUES ${chunk.map((_, j) => `(${[1, 2, 3, 4, 5, 6].map((k) => `$${6 * j + k}`).join(', ')})`).join(', ')} ON CONFLICT DO NOTHING`, params);
          }
          out('sqlite', 'statement', 'multi-row VALUES from Node (5,000 rows a statement)', `${n} rows`, `${(performance.now() - t).toFixed(0)} ms`, rate(n, performance.now() - t));
        });
        await rolledBack(store, async (tx) => {
          const t = performance.now();
          const got = await tx.all<Record<string, string | null>>(sel);
          const n = await tx.run(
            `INSERT INTO effective_assignments (org_id, subject_id, assignment_id, role, resource, group_id)
             SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5 FROM json_each($1) j WHERE true ON CONFLICT DO NOTHING`,
            [JSON.stringify(got.map((r) => [r.org_id, r.subject_id, r.assignment_id, r.role, r.resource, r.group_id]))],
          );
          out('sqlite', 'statement', 'INSERT … SELECT over json_each (one JSON array from Node)', `${n} rows`, `${(performance.now() - t).toFixed(0)} ms`, rate(n, performance.now() - t));
        });
      }
    } finally {
      await store.close();
    }
  }

  if (parts.includes('parallel') && engines.includes('postgres')) {
    const store = await open('postgres', 4);
    try {
      await loadDataset(store.db, largeDataset(members, assignments), { reconcile: false });
      await store.db.run('ALTER TABLE effective_assignments DISABLE TRIGGER USER');
      const per = Math.max(1, Math.floor(10_000 / assignments)); // subjects per 10k-row transaction
      const third = Math.floor(members / 3);
      const run = async (lo: number, hi: number) => {
        let n = 0;
        for (let s = lo; s <= hi; s += per) n += (await store.db.transaction((tx) => reconcileRange(tx, ORG, scope, user(s), user(Math.min(hi, s + per - 1))))).added;
        return n;
      };
      let t = performance.now();
      let n = await run(0, third - 1);
      out('postgres', 'parallel', 'one connection, 10k-row transactions', `${n} rows`, `${(performance.now() - t).toFixed(0)} ms`, rate(n, performance.now() - t));
      const mid = third + Math.floor(third / 2);
      t = performance.now();
      n = (await Promise.all([run(third, mid - 1), run(mid, 2 * third - 1)])).reduce((a, b) => a + b, 0);
      out('postgres', 'parallel', 'two connections, disjoint halves at once', `${n} rows`, `${(performance.now() - t).toFixed(0)} ms`, rate(n, performance.now() - t));
      t = performance.now();
      n = await run(2 * third, members - 1);
      out('postgres', 'parallel', 'one connection again (drift check)', `${n} rows`, `${(performance.now() - t).toFixed(0)} ms`, rate(n, performance.now() - t));
    } finally {
      await store.close();
    }
  }

  if (parts.includes('engine')) {
    for (const engine of engines) {
      const store = await open(engine, 2);
      try {
        await store.db.run('CREATE TABLE bulk_probe (org_id TEXT NOT NULL, subject_id TEXT NOT NULL, resource TEXT NOT NULL, assignment_id TEXT NOT NULL, role TEXT NOT NULL, group_id TEXT, PRIMARY KEY (org_id, subject_id, resource, assignment_id))');
        await store.db.run('CREATE INDEX bulk_probe_by_group ON bulk_probe (org_id, group_id, subject_id)');
        const per = Math.max(1, Math.floor(10_000 / assignments));
        const t = performance.now();
        for (let s = 0; s < members; s += per) {
          const hi = Math.min(members - 1, s + per - 1);
          const gen =
            engine === 'postgres'
              ? `SELECT 'bench', 'u' || lpad(s::text, 6, '0'), 'project:p' || lpad(a::text, 6, '0'), 'a_everyone_' || a, 'viewer', 'everyone' FROM generate_series(${s}, ${hi}) s, generate_series(0, ${assignments - 1}) a`
              : `WITH RECURSIVE s(i) AS (SELECT ${s} UNION ALL SELECT i + 1 FROM s WHERE i < ${hi}), a(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM a WHERE j < ${assignments - 1})
                 SELECT 'bench', 'u' || printf('%06d', i), 'project:p' || printf('%06d', j), 'a_everyone_' || j, 'viewer', 'everyone' FROM s, a`;
          await store.db.transaction((tx) => tx.run(`INSERT INTO bulk_probe ${gen}`));
        }
        out(engine, 'engine', 'generated rows into an indexed copy, 10k rows/transaction', `${rows} rows`, `${((performance.now() - t) / 1000).toFixed(2)} s`, rate(rows, performance.now() - t));
      } finally {
        await store.close();
      }
    }
  }
  if (parts.includes('shapes')) {
    const cols = 'org_id, subject_id, resource, assignment_id, role, group_id';
    interface Shape { name: string; engine: Engine; ddl?: string; triggers?: false; pageSize?: number; pragmas?: string[]; session?: string[] }
    const keysC = 'ALTER TABLE effective_assignments ' + ['org_id', 'subject_id', 'resource', 'assignment_id', 'group_id'].map((c) => `ALTER COLUMN ${c} TYPE TEXT COLLATE "C"`).join(', ');
    const shapes: Shape[] = [
      { name: 'rowid table (before 021)', engine: 'sqlite', ddl: rebuild(false) },
      { name: 'rowid table, no diff triggers', engine: 'sqlite', ddl: rebuild(false), triggers: false },
      { name: 'WITHOUT ROWID (021)', engine: 'sqlite' },
      { name: 'WITHOUT ROWID, no diff triggers', engine: 'sqlite', triggers: false },
      { name: 'WITHOUT ROWID, page_size 8192', engine: 'sqlite', pageSize: 8192 },
      { name: 'WITHOUT ROWID, page_size 16384', engine: 'sqlite', pageSize: 16384 },
      { name: 'WITHOUT ROWID, cache_size 512 MB', engine: 'sqlite', pragmas: ['cache_size = -524288'] },
      { name: 'WITHOUT ROWID, mmap_size 1 GB', engine: 'sqlite', pragmas: ['mmap_size = 1073741824'] },
      { name: 'as migrated', engine: 'postgres' },
      { name: 'diff triggers disabled', engine: 'postgres', triggers: false },
      { name: 'key columns COLLATE "C"', engine: 'postgres', ddl: keysC },
      { name: 'indexes fillfactor 100', engine: 'postgres', ddl: 'ALTER INDEX effective_assignments_pkey SET (fillfactor = 100); ALTER INDEX effective_by_group SET (fillfactor = 100)' },
      { name: 'synchronous_commit off (session)', engine: 'postgres', session: ['SET synchronous_commit = off'] },
      { name: 'wal_compression on (session)', engine: 'postgres', session: ['SET wal_compression = on'] },
      { name: 'COLLATE "C" + fillfactor 100 + partial by_group', engine: 'postgres', ddl: `${keysC}; ALTER INDEX effective_assignments_pkey SET (fillfactor = 100); DROP INDEX effective_by_group; CREATE INDEX effective_by_group ON effective_assignments (org_id, group_id, subject_id) WITH (fillfactor = 100) WHERE group_id IS NOT NULL` },
      { name: 'without effective_by_group (lower bound)', engine: 'postgres', ddl: 'DROP INDEX effective_by_group' },
    ];
    for (let rep = 0; rep < reps; rep++) {
      for (const shape of shapes) {
        if (!engines.includes(shape.engine) || (onlyShapes && !onlyShapes.includes(shape.name))) continue;
        const file = join(tmp, `s-${Date.now()}-${Math.random()}.db`);
        if (shape.pageSize) {
          const pre = new BetterSqlite3(file);
          pre.pragma(`page_size = ${shape.pageSize}`);
          pre.pragma('journal_mode = WAL'); // writes the header: the page size is fixed from here on
          pre.close();
        }
        const store = shape.engine === 'sqlite' ? await openStore('sqlite', pgUrl, { file }) : await open('postgres', 2, false);
        try {
          if (shape.ddl) for (const stmt of shape.ddl.split(/;\s*(?=DROP|CREATE|ALTER)/)) await store.db.run(stmt);
          if (shape.triggers !== false) await withTriggers(store);
          for (const p of shape.pragmas ?? []) await store.db.run(`PRAGMA ${p}`);
          const per = Math.max(1, Math.floor(10_000 / assignments));
          const t = performance.now();
          for (let s = 0; s < members; s += per) {
            const hi = Math.min(members - 1, s + per - 1);
            const gen =
              shape.engine === 'postgres'
                ? `SELECT 'bench', 'u' || lpad(s::text, 6, '0'), 'project:p' || lpad(a::text, 6, '0'), 'a_everyone_' || a, 'viewer', 'everyone' FROM generate_series(${s}, ${hi}) s, generate_series(0, ${assignments - 1}) a`
                : `WITH RECURSIVE s(i) AS (SELECT ${s} UNION ALL SELECT i + 1 FROM s WHERE i < ${hi}), a(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM a WHERE j < ${assignments - 1})
                   SELECT 'bench', 'u' || printf('%06d', i), 'project:p' || printf('%06d', j), 'a_everyone_' || j, 'viewer', 'everyone' FROM s, a WHERE true`;
            await store.db.transaction(async (tx) => {
              for (const q of shape.session ?? []) await tx.run(q.replace('SET ', 'SET LOCAL '));
              await tx.run(`INSERT INTO effective_assignments (${cols}) ${gen} ON CONFLICT DO NOTHING`);
            });
          }
          const ms = performance.now() - t;
          const n = await store.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM effective_assignments');
          if (Number(n!.n) !== rows) throw new Error(`expected ${rows} rows, found ${n!.n}`);
          out(shape.engine, 'shapes', shape.name, `${rows} rows`, `${(ms / 1000).toFixed(2)} s`, rate(rows, ms));
        } finally {
          await store.close();
        }
      }
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

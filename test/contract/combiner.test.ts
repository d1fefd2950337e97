/**
 * Group commit (src/policy/combiner.ts): writes that queue while a transaction is in flight share
 * the next one, each under its own savepoint, taken before its first statement that changes
 * something. A write the command itself refuses — a /v1 4xx or a SCIM 4xx — rolls back alone; the
 * others of its batch commit, and none of them runs twice. A write refused after a change made
 * without a savepoint (its frame's tail runs on `shared.unguarded`) aborts the batch instead: every
 * write is retried alone, and the refused one's change never commits.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { notFound } from '../../src/domain/errors.ts';
import { createCombiner, onlyReads } from '../../src/policy/combiner.ts';
import { ScimError } from '../../src/scim/errors.ts';
import { sql, type Database, type Sql } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

describeEachEngine('group commit', (engine) => {
  let db: Database;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(async () => {
    await db?.close();
  });

  const insert = (tx: Sql, id: string) => tx.run('INSERT INTO organizations (id, name, revision, created_at) VALUES ($1, $1, 0, 0)', [id]);

  for (const [name, refusal] of [
    ['a SCIM 409', () => new ScimError(409, 'userName is already taken', 'uniqueness')],
    ['a /v1 404', () => notFound('id', 'subject', 'nobody')],
  ] as const) {
    it(`${name} rolls back alone in a shared transaction; the rest commit, each run once`, async () => {
      const combiner = createCombiner(db);
      const tag = `${engine.name}_${name.replace(/\W/g, '')}`;
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const runs = { a: 0, refused: 0, b: 0 };
      // The first write holds the transaction open, so the next three queue into one batch.
      const first = combiner.submit('o', undefined, async (tx) => (await gate, await insert(tx, `${tag}_first`), 'first'));
      const a = combiner.submit('o', undefined, async (tx) => (runs.a++, await insert(tx, `${tag}_a`), 'a'));
      const refused = combiner.submit('o', undefined, async (tx) => {
        runs.refused++;
        await insert(tx, `${tag}_refused`);
        throw refusal();
      });
      const b = combiner.submit('o', undefined, async (tx) => (runs.b++, await insert(tx, `${tag}_b`), 'b'));
      open();
      expect(await first).toBe('first');
      expect(await a).toBe('a');
      await expect(refused).rejects.toThrow(refusal().message);
      expect(await b).toBe('b');
      expect(runs).toEqual({ a: 1, refused: 1, b: 1 });
      const ids = (await db.all<{ id: string }>('SELECT id FROM organizations WHERE id LIKE $1 ORDER BY id', [`${tag}_%`])).map((r) => r.id);
      expect(ids).toEqual([`${tag}_a`, `${tag}_b`, `${tag}_first`]);
    });
  }

  /** `db`, recording the text of every statement its transactions run. */
  const recording = () => {
    const texts: string[] = [];
    const rec = (tx: Sql): Sql => ({
      ...tx,
      all: (st, p) => (texts.push(typeof st === 'string' ? st : st.parts.join('?')), tx.all(st, p)),
      get: (st, p) => (texts.push(typeof st === 'string' ? st : st.parts.join('?')), tx.get(st, p)),
      run: (st, p) => (texts.push(typeof st === 'string' ? st : st.parts.join('?')), tx.run(st, p)),
    });
    return { texts, db: { ...db, transaction: (fn) => db.transaction((tx) => fn(rec(tx))) } as Database };
  };

  it('a write refused after reads alone takes no savepoint and undoes nothing; the writes that change take one each', async () => {
    const { texts, db: watchedDb } = recording();
    const combiner = createCombiner(watchedDb);
    const tag = `${engine.name}_readsonly`;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const runs = { a: 0, refused: 0 };
    const first = combiner.submit('o', undefined, async (tx) => (await gate, await insert(tx, `${tag}_first`), 'first'));
    const a = combiner.submit('o', undefined, async (tx) => (runs.a++, await insert(tx, `${tag}_a`), 'a'));
    const refused = combiner.submit('o', undefined, async (tx) => {
      runs.refused++;
      await tx.get('SELECT 1 AS x');
      throw notFound('id', 'subject', 'nobody');
    });
    open();
    expect([await first, await a]).toEqual(['first', 'a']);
    await expect(refused).rejects.toThrow('nobody');
    expect(runs).toEqual({ a: 1, refused: 1 });
    // The lone first write: no savepoint. The shared batch: one for `a`, none for the reader.
    expect(texts.filter((t) => t.startsWith('SAVEPOINT')).length).toBe(1);
    expect(texts.filter((t) => t.startsWith('ROLLBACK TO')).length).toBe(0);
    const ids = (await db.all<{ id: string }>('SELECT id FROM organizations WHERE id LIKE $1 ORDER BY id', [`${tag}_%`])).map((r) => r.id);
    expect(ids).toEqual([`${tag}_a`, `${tag}_first`]);
  });

  it('a write refused after a change without a savepoint aborts the batch: each write is retried alone, the refused change never commits', async () => {
    const combiner = createCombiner(db);
    const tag = `${engine.name}_bare`;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const runs = { a: 0, refused: 0 };
    const first = combiner.submit('o', undefined, async (tx) => (await gate, await insert(tx, `${tag}_first`), 'first'));
    const a = combiner.submit('o', undefined, async (tx) => (runs.a++, await insert(tx, `${tag}_a`), 'a'));
    const refused = combiner.submit('o', undefined, async (tx, shared) => {
      runs.refused++;
      await insert(shared?.unguarded ?? tx, `${tag}_refused`);
      throw notFound('id', 'subject', 'nobody');
    });
    open();
    expect([await first, await a]).toEqual(['first', 'a']);
    await expect(refused).rejects.toThrow('nobody');
    // Once in the shared transaction that aborted, once alone.
    expect(runs).toEqual({ a: 2, refused: 2 });
    const ids = (await db.all<{ id: string }>('SELECT id FROM organizations WHERE id LIKE $1 ORDER BY id', [`${tag}_%`])).map((r) => r.id);
    expect(ids).toEqual([`${tag}_a`, `${tag}_first`]);
  });
});

it('a statement only reads when its text starts with SELECT, nested fragments followed', () => {
  expect(onlyReads('SELECT 1')).toBe(true);
  expect(onlyReads('  select x FROM t')).toBe(true);
  expect(onlyReads(sql`SELECT ${1} AS x`)).toBe(true);
  expect(onlyReads(sql`${sql`SELECT a FROM t`} UNION ${sql`SELECT b FROM u`}`)).toBe(true);
  expect(onlyReads('SAVEPOINT lockstep_write')).toBe(false);
  expect(onlyReads(sql`WITH bump AS (UPDATE organizations SET revision = revision + 1) SELECT 1`)).toBe(false);
  expect(onlyReads(sql`INSERT INTO t VALUES (${1})`)).toBe(false);
  expect(onlyReads(sql`${'x'} SELECT`)).toBe(false);
  expect(onlyReads('SELECTION')).toBe(false);
});

/**
 * Group commit (src/policy/combiner.ts): writes that queue while a transaction is in flight share
 * the next one, each under its own savepoint. A write the command itself refuses — a /v1 4xx or a
 * SCIM 4xx — rolls back alone; the others of its batch commit, and none of them runs twice.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { notFound } from '../../src/domain/errors.ts';
import { createCombiner } from '../../src/policy/combiner.ts';
import { ScimError } from '../../src/scim/errors.ts';
import type { Database, Sql } from '../../src/storage/database.ts';
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
});

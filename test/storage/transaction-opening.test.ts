/**
 * A transaction's BEGIN goes with its first statement (src/storage/postgres-engine.ts): with a
 * statement declared with `opensTransaction`, in the same round trip, its parameters inlined with
 * pg's escaping. What must hold either way: the statement runs inside the transaction (its advisory
 * locks are held to COMMIT, its changes roll back with it), and a value is a value, whatever quotes
 * and backslashes it holds.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { opensTransaction, type Database } from '../../src/storage/database.ts';
import { lockAndReadOrganization } from '../../src/storage/locks.ts';
import { describeEachEngine } from '../helpers/engines.ts';

const ECHO = opensTransaction('SELECT $1::text AS a, $2::text[] AS b, $3::text AS c');

describeEachEngine('a transaction opened by its first statement', (engine) => {
  let db: Database;
  beforeAll(async () => {
    db = await engine.open();
    await db.run("INSERT INTO organizations (id, name, revision, created_at) VALUES ('o''\\x', NULL, 7, 0)");
  });
  afterAll(() => db?.close());

  // PostgreSQL alone: the statement is in its dialect (SQLite has no arrays, and no BEGIN to fold).
  if (engine.name === 'postgres') it('reads values as values: quotes, backslashes, arrays and null', async () => {
    const odd = ["it's", 'back\\slash', "'); DROP TABLE organizations; --", 'E\'\\\\\''];
    for (const v of odd) {
      const row = await db.transaction((tx) => tx.get<{ a: string; b: string[]; c: string | null }>(ECHO, [v, odd, null]));
      expect(row).toEqual({ a: v, b: odd, c: null });
    }
    expect(await db.get("SELECT revision FROM organizations WHERE id = 'o''\\x'")).toEqual({ revision: 7 });
  });

  it('runs inside the transaction: what it locks is held, and what follows rolls back with it', async () => {
    const org = "o'\\x";
    await expect(
      db.transaction(async (tx) => {
        expect(await lockAndReadOrganization(tx, org, ["s'1", 's\\2'])).toEqual({ revision: 7, policy: null });
        if (engine.name === 'postgres') {
          // The organization's lock shared and both subjects' exclusive, held by this transaction.
          const held = await tx.get<{ n: number }>("SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted");
          expect(Number(held?.n)).toBe(3);
        }
        await tx.run('UPDATE organizations SET revision = 8 WHERE id = $1', [org]);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await db.get('SELECT revision FROM organizations WHERE id = $1', [org])).toEqual({ revision: 7 });
  });
});

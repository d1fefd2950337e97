/**
 * A large organization's change log for the access-history benchmark and tests, written in two
 * statements instead of n policy writes: `n` subjects created and each added to group `g` (2n
 * entries), after whatever the organization already logged. The replay applies them through the
 * engine like any logged write; nothing else reads these rows.
 */
import type { Database } from '../../src/storage/database.ts';

export async function appendLargeLog(db: Database, org: string, n: number, decidedAt: number): Promise<number> {
  const base = Number((await db.get<{ r: number }>('SELECT COALESCE(MAX(revision), 0) AS r FROM changes WHERE org_id = $1', [org]))!.r);
  const series = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${Math.floor(n)})`;
  const insert = (offset: number, kind: string, body: string) =>
    db.run(
      `${series} INSERT INTO changes (org_id, revision, kind, direction, mode, body, decided_at)
       SELECT $1, CAST($2 AS BIGINT) + 2 * i - ${offset}, '${kind}', 'none', 'sync', ${body}, CAST($3 AS BIGINT) FROM n`,
      [org, base, decidedAt],
    );
  await insert(1, 'subject.create', `'{"id":"s' || CAST(i AS TEXT) || '","kind":"user","active":true}'`);
  await insert(0, 'membership.add', `'{"group":"g","member":"subject:s' || CAST(i AS TEXT) || '"}'`);
  await db.run('UPDATE organizations SET revision = $1 WHERE id = $2', [base + 2 * n, org]);
  return base + 2 * n;
}

/**
 * The keyset condition of a paged listing: the rows after cursor key `key` in the order of
 * `columns` (each ascending unless `desc`), spelled out as ORs so that both engines plan it and any
 * column types compare: `(a > k1 OR (a = k1 AND (b > k2 OR …)))`. Pair with the listing's ORDER BY.
 */
import { sql, type SqlFragment } from './sql.ts';

export type KeyColumn = SqlFragment | { expr: SqlFragment; desc: true };

export function keyAfter(columns: readonly KeyColumn[], key: readonly unknown[]): SqlFragment {
  const [c, ...rest] = columns;
  const [k, ...restKey] = key;
  if (c === undefined) return sql`1 = 0`;
  const { expr, desc } = 'expr' in c ? c : { expr: c, desc: false };
  const beyond = desc ? sql`${expr} < ${k}` : sql`${expr} > ${k}`;
  if (rest.length === 0) return beyond;
  return sql`(${beyond} OR (${expr} = ${k} AND ${keyAfter(rest, restKey)}))`;
}

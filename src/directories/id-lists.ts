/**
 * A list of ids as one statement parameter (a JSON array), for set-based statements over thousands
 * of members without thousands of placeholders: `json_each` on SQLite, `jsonb_array_elements_text`
 * on PostgreSQL. The fragment selects one column, `v`.
 */
import { sql, type Sql, type SqlFragment } from '../storage/database.ts';

export function idsFrom(tx: Sql, ids: Iterable<string>): SqlFragment {
  const json = JSON.stringify([...ids]);
  return tx.dialect === 'postgres' ? sql`SELECT jsonb_array_elements_text(CAST(${json} AS jsonb)) AS v` : sql`SELECT value AS v FROM json_each(${json})`;
}

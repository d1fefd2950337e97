/**
 * A change's read-model fan-out, as data, and its inline application. Commands describe it (which
 * rows to remove, which desired rows to add, the job scope that would recompute the same slice); the
 * write frame (../policy/write.ts) decides whether it is applied here, in the write's transaction,
 * or handed to a reconciliation job of `scope`.
 */
import type { Sql, SqlFragment } from '../storage/database.ts';
import { deleteEffective, insertDesired } from './read-model.ts';
import type { Anchor } from './rule.ts';

/**
 * The job scope that recomputes the same slice (`subject:S`, `group:G`, `assignment:A|P|R`,
 * `subtree:C`, `organization:O`), the number of rows it touches (estimated from the source, before
 * the change), and the statements that apply it inline — read-model rows to remove (predicates on
 * `effective_assignments`) and desired rows to add (predicates on `d.`-qualified desired rows,
 * ./rule.ts:desired).
 */
export interface Fanout {
  scope: string;
  rows: number;
  remove?: readonly SqlFragment[];
  add?: readonly SqlFragment[];
  /** `subjects` where every `add` filter names its subjects (the join order, ./rule.ts:desired). */
  anchor?: Anchor;
}

/** Applies a fan-out inline: removals first, then additions; returns the rows each changed. */
export async function applyFanout(tx: Sql, f: Fanout): Promise<{ added: number; removed: number }> {
  let removed = 0;
  let added = 0;
  for (const where of f.remove ?? []) removed += await deleteEffective(tx, where);
  for (const where of f.add ?? []) added += await insertDesired(tx, where, f.anchor);
  return { added, removed };
}

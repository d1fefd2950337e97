/**
 * A change's read-model fan-out, as data, and its inline application. Commands describe it (which
 * rows to remove, which desired rows to add, the job scope that would recompute the same slice); the
 * write frame (../policy/write.ts) decides whether it is applied here, in the write's transaction,
 * or handed to a reconciliation job of `scope`.
 */
import { sql, type Sql, type SqlFragment } from '../storage/database.ts';
import { deleteEffective, deleteEffectiveStatement, insertDesired, insertDesiredStatement } from './read-model.ts';
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
  /** Groups every `add` filter restricts `d.group_id` to, if it does (./rule.ts:desired narrows the derivation to them). */
  groups?: SqlFragment;
}

/** Applies a fan-out inline: removals first, then additions; returns the rows each changed. */
export async function applyFanout(tx: Sql, f: Fanout): Promise<{ added: number; removed: number }> {
  let removed = 0;
  let added = 0;
  for (const where of f.remove ?? []) removed += await deleteEffective(tx, where);
  for (const where of f.add ?? []) added += await insertDesired(tx, where, f.anchor, f.groups);
  return { added, removed };
}

/**
 * A fan-out that is one statement (a single removal or a single addition) as the body of a
 * data-modifying CTE (`RETURNING 1`, so the rows it changed can be counted from it), and which of
 * the two counts it is; null when the fan-out takes several statements, which must run in order.
 */
export function fanoutAsCte(f: Fanout): { body: SqlFragment; counts: 'added' | 'removed' } | null {
  const removes = f.remove ?? [];
  const adds = f.add ?? [];
  if (removes.length === 1 && adds.length === 0) return { body: sql`${deleteEffectiveStatement(removes[0]!)} RETURNING 1`, counts: 'removed' };
  if (adds.length === 1 && removes.length === 0) return { body: sql`${insertDesiredStatement(adds[0]!, f.anchor, f.groups)} RETURNING 1`, counts: 'added' };
  return null;
}

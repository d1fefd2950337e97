/**
 * Keyset pagination of listings: a page is the next `limit` entries after a cursor, in the listing's
 * fixed order. The cursor is opaque to clients (base64url of the last entry's sort key), so the order
 * can change without breaking them; a cursor this code did not make is a VALIDATION naming `cursor`.
 * Keyset, not offset: a write between two pages neither repeats nor skips an entry that stayed.
 */
import { validation } from './errors.ts';

/** The largest page a listing serves (the HTTP default is DEFAULT_PAGE). */
export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 100;

export interface PageQuery {
  /** At most this many entries (1…MAX_PAGE); absent: all of them (in-process callers only). */
  limit?: number;
  /** The `next` of the previous page. */
  cursor?: string;
}

export type CursorKey = (string | number)[];

export const encodeCursor = (key: CursorKey): string => Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');

/** The sort key a cursor holds, checked against the listing's key shape ('s' string, 'n' integer). */
export function decodeCursor(cursor: unknown, shape: readonly ('s' | 'n')[]): CursorKey {
  const bad = () => validation('cursor', 'cursor is not one this listing gave (pass the `next` of the previous page unchanged)');
  if (typeof cursor !== 'string' || cursor.length === 0 || cursor.length > 1024 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw bad();
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(key) || key.length !== shape.length) throw bad();
  key.forEach((v, i) => {
    if (shape[i] === 's' ? typeof v !== 'string' : !Number.isSafeInteger(v)) throw bad();
  });
  return key as CursorKey;
}

export function pageLimit(limit: unknown): number | undefined {
  if (limit === undefined) return undefined;
  if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > MAX_PAGE) throw validation('limit', `limit must be an integer from 1 to ${MAX_PAGE}`);
  return limit as number;
}

/** Cuts `limit + 1` fetched entries to a page and the cursor of the next one (null: the last page). */
export function pageOf<T>(rows: T[], limit: number | undefined, keyOf: (row: T) => CursorKey): { items: T[]; next: string | null } {
  if (limit === undefined || rows.length <= limit) return { items: rows, next: null };
  const items = rows.slice(0, limit);
  return { items, next: encodeCursor(keyOf(items[items.length - 1]!)) };
}

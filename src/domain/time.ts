/**
 * RFC 3339 times, strictly: `2026-12-04T17:00:00Z`, `…T17:00:00.250+01:00`. `Date.parse` alone takes
 * `1`, `Dec 4`, `2026-02-31` (as March 3rd) and more; every time Lockstep accepts goes through here.
 */
import { validation } from './errors.ts';

export const RFC3339_PATTERN = '^\\d{4}-\\d{2}-\\d{2}[Tt]\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?([Zz]|[+-]\\d{2}:\\d{2})$';
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|([+-])(\d{2}):(\d{2}))$/;

/** Milliseconds since the epoch, or null when `v` is not an RFC 3339 time of a real calendar instant. */
export function rfc3339Millis(v: unknown): number | null {
  const m = typeof v === 'string' ? RFC3339.exec(v) : null;
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  // Round-trip the fields: 2026-02-31 or 24:00:00 do not come back as written.
  const local = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (local.getUTCFullYear() !== y || local.getUTCMonth() !== mo - 1 || local.getUTCDate() !== d || local.getUTCHours() !== h || local.getUTCMinutes() !== mi) return null;
  if (m[10] !== undefined && (Number(m[10]) > 23 || Number(m[11]) > 59)) return null;
  const t = Date.parse(v as string);
  return Number.isFinite(t) ? t : null;
}

/** An RFC 3339 time as milliseconds, or a VALIDATION error naming `field`. */
export function parseRfc3339(v: unknown, field: string): number {
  const t = rfc3339Millis(v);
  if (t === null) throw validation(field, `${field} must be an RFC 3339 time such as 2026-12-04T17:00:00Z`);
  return t;
}

/**
 * `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) and the paging parameters of list
 * requests (§3.4.2.4).
 */
import { badRequest } from './errors.ts';
import { parseAttrPath, type AttrPath } from './filter.ts';
import { MAX_RESULTS } from './schemas.ts';

export interface Projection {
  attributes: AttrPath[] | null;
  excluded: AttrPath[];
}

/**
 * A comma-separated attribute list. A value filter inside (Microsoft's collection asks for
 * `emails[type eq "work"]`) selects the attribute as a whole.
 */
function parseList(v: unknown, name: string): AttrPath[] {
  if (v === undefined || v === '') return [];
  if (typeof v !== 'string') throw badRequest('invalidValue', `${name} must be given once`);
  return v
    .split(',')
    .map((s) => s.trim().replace(/\[[^\]]*\]/g, ''))
    .filter(Boolean)
    .map((s) => parseAttrPath(s, 'invalidPath'));
}

export function parseProjection(query: Record<string, unknown>): Projection {
  const attributes = parseList(query.attributes, 'attributes');
  return { attributes: attributes.length ? attributes : null, excluded: parseList(query.excludedAttributes, 'excludedAttributes') };
}

/** Whether an attribute (top-level, lower-case) is wanted at all: lets a reader skip loading members. */
export function wants(p: Projection, name: string): boolean {
  if (p.attributes) return p.attributes.some((a) => a.name === name);
  return !p.excluded.some((a) => a.name === name && a.sub === null);
}

const ALWAYS = new Set(['id', 'schemas']);

function keyOf(obj: Record<string, unknown>, lower: string): string | undefined {
  return Object.keys(obj).find((k) => k.toLowerCase() === lower);
}

/** Applies a projection to a rendered resource (`coreUris` lower-case: attributes at the top level). */
export function project(resource: Record<string, unknown>, p: Projection, coreUris: readonly string[]): Record<string, unknown> {
  if (p.attributes) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(resource)) if (ALWAYS.has(k)) out[k] = resource[k];
    for (const a of p.attributes) {
      const container = a.uri === null || coreUris.includes(a.uri) ? resource : (resource[keyOf(resource, a.uri) ?? ''] as Record<string, unknown> | undefined);
      if (!container || typeof container !== 'object') continue;
      const k = keyOf(container, a.name);
      if (k === undefined) continue;
      const target = a.uri === null || coreUris.includes(a.uri) ? out : ((out[keyOf(resource, a.uri)!] ??= {}) as Record<string, unknown>);
      const v = container[k];
      if (a.sub === null) target[k] = v;
      else if (Array.isArray(v)) {
        const prev = (target[k] as Record<string, unknown>[] | undefined) ?? v.map((): Record<string, unknown> => ({}));
        v.forEach((el, i) => {
          const sk = el && typeof el === 'object' ? keyOf(el as Record<string, unknown>, a.sub!) : undefined;
          if (sk !== undefined) prev[i]![sk] = (el as Record<string, unknown>)[sk];
        });
        target[k] = prev;
      } else if (v && typeof v === 'object') {
        const sk = keyOf(v as Record<string, unknown>, a.sub);
        if (sk !== undefined) target[k] = { ...((target[k] as object | undefined) ?? {}), [sk]: (v as Record<string, unknown>)[sk] };
      }
    }
    return out;
  }
  if (p.excluded.length === 0) return resource;
  const out = structuredClone(resource);
  for (const a of p.excluded) {
    const container = a.uri === null || coreUris.includes(a.uri) ? out : (out[keyOf(out, a.uri) ?? ''] as Record<string, unknown> | undefined);
    if (!container || typeof container !== 'object') continue;
    const k = keyOf(container, a.name);
    if (k === undefined || (container === out && ALWAYS.has(k))) continue;
    if (a.sub === null) delete container[k];
    else {
      const v = container[k];
      for (const el of Array.isArray(v) ? v : [v]) {
        if (el && typeof el === 'object') {
          const sk = keyOf(el as Record<string, unknown>, a.sub);
          if (sk !== undefined) delete (el as Record<string, unknown>)[sk];
        }
      }
    }
  }
  return out;
}

export interface Paging {
  /** 1-based. */
  startIndex: number;
  count: number;
}

const int = (v: unknown, name: string): number | undefined => {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || !/^-?\d{1,9}$/.test(v)) throw badRequest('invalidValue', `${name} must be an integer`);
  return Number(v);
};

/** RFC 7644: a startIndex below 1 is read as 1, a negative count as 0; count is capped at maxResults. */
export function parsePaging(query: Record<string, unknown>): Paging {
  const start = int(query.startIndex, 'startIndex') ?? 1;
  const count = int(query.count, 'count') ?? MAX_RESULTS;
  return { startIndex: Math.max(1, start), count: Math.min(MAX_RESULTS, Math.max(0, count)) };
}

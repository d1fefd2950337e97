/**
 * The read side of a directory's SCIM endpoint: one resource, or a filtered, paged list, rendered
 * from the SCIM document, the subject's `active` flag and the group's memberships.
 *
 * Lists are in creation order (ties by id), so paging is stable while resources are added. A filter
 * with an equality on `userName`, `externalId`, `id` or `displayName` among its top-level `and`
 * conjuncts (what Okta and Entra send to look a resource up) is narrowed with an index first; the
 * whole filter is then evaluated on the candidates.
 */
import { ScimError } from '../scim/errors.ts';
import { matches, mentions, requiredEquality, type Filter } from '../scim/filter.ts';
import { project, wants, type Paging, type Projection } from '../scim/projection.ts';
import { CORE_URIS, GROUP_SCHEMA, LIST_SCHEMA, schemasOf, TRAITS, type ResourceType } from '../scim/schemas.ts';
import { sql, type Sql, type SqlFragment } from '../storage/database.ts';
import type { Directory } from './directories.ts';
import { idsFrom } from './id-lists.ts';

export interface ScimRow {
  id: string;
  name_key: string;
  external_id: string | null;
  document: string;
  version: number;
  created_at: number;
  modified_at: number;
  /** Users: the subject's active flag. */
  active: number | null;
}

export interface Member {
  value: string;
  display?: string;
}

export const etagOf = (version: number) => `W/"${Number(version)}"`;

const SELECT = sql`SELECT r.id, r.name_key, r.external_id, r.document, r.version, r.created_at, r.modified_at, s.active
  FROM scim_resources r LEFT JOIN subjects s ON r.resource_type = 'User' AND s.org_id = r.org_id AND s.id = r.id`;

export async function loadRow(tx: Sql, dir: Directory, type: ResourceType, id: string): Promise<ScimRow | undefined> {
  return tx.get<ScimRow>(sql`${SELECT} WHERE r.org_id = ${dir.org} AND r.resource_type = ${type} AND r.id = ${id} AND r.directory_id = ${dir.id}`);
}

/** Members of the given groups, with the user's display name. */
export async function loadMembers(tx: Sql, org: string, groups: string[]): Promise<Map<string, Member[]>> {
  const out = new Map<string, Member[]>(groups.map((g) => [g, []]));
  if (groups.length === 0) return out;
  const rows = await tx.all<{ group_id: string; subject_id: string; document: string | null }>(
    sql`SELECT m.group_id, m.subject_id, u.document FROM memberships m
       LEFT JOIN scim_resources u ON u.org_id = m.org_id AND u.resource_type = 'User' AND u.id = m.subject_id
      WHERE m.org_id = ${org} AND m.group_id IN (${idsFrom(tx, groups)})
      ORDER BY m.group_id, m.subject_id`,
  );
  for (const r of rows) {
    const doc = r.document ? (JSON.parse(r.document) as { displayName?: string; userName?: string }) : {};
    const display = doc.displayName ?? doc.userName;
    out.get(r.group_id)!.push(display === undefined ? { value: r.subject_id } : { value: r.subject_id, display });
  }
  return out;
}

export function render(type: ResourceType, row: ScimRow, baseUrl: string, members?: Member[]): Record<string, unknown> {
  const doc = JSON.parse(row.document) as Record<string, unknown>;
  const meta = {
    resourceType: type,
    created: new Date(Number(row.created_at)).toISOString(),
    lastModified: new Date(Number(row.modified_at)).toISOString(),
    location: `${baseUrl}/${type}s/${row.id}`,
    version: etagOf(row.version),
  };
  if (type === 'User') return { schemas: schemasOf('User', doc), id: row.id, ...doc, active: Number(row.active) === 1, meta };
  const out: Record<string, unknown> = { schemas: [GROUP_SCHEMA], id: row.id, ...doc };
  if (members) out.members = members.map((m) => ({ ...m, type: 'User', $ref: `${baseUrl}/Users/${m.value}` }));
  out.meta = meta;
  return out;
}

export async function getResource(tx: Sql, dir: Directory, type: ResourceType, id: string, projection: Projection, baseUrl: string) {
  const row = await loadRow(tx, dir, type, id);
  if (!row) throw new ScimError(404, `${type} '${id}' not found`);
  const members = type === 'Group' && wants(projection, 'members') ? (await loadMembers(tx, dir.org, [id])).get(id) : undefined;
  return { resource: project(render(type, row, baseUrl, members), projection, CORE_URIS[type]), version: Number(row.version) };
}

const NARROW: Record<ResourceType, string[]> = { User: ['userName', 'externalId', 'id'], Group: ['displayName', 'externalId', 'id'] };

export async function listResources(
  tx: Sql,
  dir: Directory,
  type: ResourceType,
  q: { filter: Filter | null; paging: Paging; projection: Projection },
  baseUrl: string,
) {
  const { filter, paging, projection } = q;
  const eq = filter ? requiredEquality(filter, NARROW[type], CORE_URIS[type]) : null;
  const narrow: SqlFragment = !eq
    ? sql.empty
    : eq.attr === 'id'
      ? sql` AND r.id = ${eq.value}`
      : eq.attr === 'externalId'
        ? sql` AND r.external_id = ${eq.value}`
        : sql` AND r.name_key = ${eq.value.toLowerCase()}`;
  const where = sql`r.directory_id = ${dir.id} AND r.resource_type = ${type}${narrow}`;
  const order = sql`ORDER BY r.created_at, r.id`;
  let rows: ScimRow[];
  let total: number;
  const withMembers = type === 'Group' && (wants(projection, 'members') || (filter !== null && mentions(filter, 'members')));
  if (filter === null) {
    const c = await tx.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM scim_resources r WHERE ${where}`);
    total = Number(c?.n ?? 0);
    rows = paging.count === 0 ? [] : await tx.all<ScimRow>(sql`${SELECT} WHERE ${where} ${order} LIMIT ${paging.count} OFFSET ${paging.startIndex - 1}`);
  } else {
    // Evaluated in memory on the (narrowed) candidates, in the same order, then paged.
    const candidates = await tx.all<ScimRow>(sql`${SELECT} WHERE ${where} ${order}`);
    const members = withMembers ? await loadMembers(tx, dir.org, candidates.map((r) => r.id)) : undefined;
    const hits = candidates.filter((r) => matches(filter, render(type, r, baseUrl, members?.get(r.id)), TRAITS[type], CORE_URIS[type]));
    total = hits.length;
    rows = hits.slice(paging.startIndex - 1, paging.startIndex - 1 + paging.count);
  }
  const members = withMembers && wants(projection, 'members') ? await loadMembers(tx, dir.org, rows.map((r) => r.id)) : undefined;
  const resources = rows.map((r) => project(render(type, r, baseUrl, members?.get(r.id)), projection, CORE_URIS[type]));
  return { schemas: [LIST_SCHEMA], totalResults: total, startIndex: paging.startIndex, itemsPerPage: resources.length, Resources: resources };
}

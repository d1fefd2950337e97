/**
 * Directory ownership: a subject or group provisioned by a directory (SCIM) is changed only through
 * that directory. The /v1 writes ask here first and refuse with a 409 that names the directory.
 * (The ownership record is the object's row in `scim_resources`, written by src/directories/.)
 */
import { LockstepError } from '../domain/errors.ts';
import type { Sql } from '../storage/database.ts';

export async function ownerOf(tx: Sql, org: string, type: 'User' | 'Group', id: string): Promise<{ id: string; name: string } | null> {
  const r = await tx.get<{ id: string; name: string }>(
    `SELECT d.id, d.name FROM scim_resources s JOIN directories d ON d.id = s.directory_id
      WHERE s.org_id = $1 AND s.resource_type = $2 AND s.id = $3`,
    [org, type, id],
  );
  return r ?? null;
}

/** Refuses a /v1 write to a directory-owned subject or group: a 409 that names the directory. */
export async function assertNotDirectoryOwned(tx: Sql, org: string, type: 'User' | 'Group', id: string, field = 'id'): Promise<void> {
  const owner = await ownerOf(tx, org, type, id);
  if (owner) {
    const what = type === 'User' ? 'subject' : 'group';
    throw new LockstepError('CONFLICT', `${what} '${id}' is managed by directory '${owner.name}' (${owner.id}); change it in the identity provider`, {
      field,
      meta: { directory: owner.id },
    });
  }
}

/**
 * Bearer API keys. A key reads `lsk_<id>_<secret>`; the store keeps only the SHA-256 of the whole
 * key. Authentication is one primary-key lookup on `<id>` and a constant-time comparison of the
 * hashes, so a wrong secret and a wrong id take the same path. The check route skips the lookup for
 * a key it has seen and has its check statement read the key's state instead (createKeyCache).
 *
 * Scopes: `admin` (everything, every organization; `org_id` NULL), `write` (policy writes and reads
 * in one organization), `check` (checks and listings in one organization).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Database, Sql } from '../storage/database.ts';
import { parseOrgId } from '../domain/model.ts';
import { validation } from '../domain/errors.ts';

export const KEY_SCOPES = ['admin', 'write', 'check'] as const;
export type KeyScope = (typeof KEY_SCOPES)[number];

export interface ApiKey {
  id: string;
  scope: KeyScope;
  /** null for admin keys. */
  org: string | null;
  name: string | null;
}

const KEY_FORMAT = /^lsk_([a-z0-9]{16})_([A-Za-z0-9_-]{43})$/;
/** Operator-chosen admin keys (LOCKSTEP_ADMIN_KEY) that do not follow the format must be at least this long. */
export const MIN_FREEFORM_KEY_LENGTH = 32;

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();
const newKeyId = () => randomBytes(8).toString('hex');
const newKeyString = (id: string) => `lsk_${id}_${randomBytes(32).toString('base64url')}`;

/** Where a key came from (migration 008): `keys create`, the first start, or LOCKSTEP_ADMIN_KEY. */
type KeyOrigin = 'created' | 'generated' | 'env';

export interface CreateKeyOptions {
  scope: KeyScope;
  org?: string;
  name?: string;
  now?: () => number;
}

async function insertKey(db: Sql, id: string, key: string, opts: CreateKeyOptions, origin: KeyOrigin = 'created'): Promise<void> {
  await db.run('INSERT INTO api_keys (id, org_id, scope, name, hash, created_at, origin) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
    id,
    opts.org ?? null,
    opts.scope,
    opts.name ?? null,
    sha256(key).toString('hex'),
    (opts.now ?? Date.now)(),
    origin,
  ]);
}

function checkScope(opts: CreateKeyOptions) {
  if (!KEY_SCOPES.includes(opts.scope)) throw validation('scope', `scope must be one of ${KEY_SCOPES.join(', ')}`);
  if (opts.scope === 'admin' && opts.org !== undefined) throw validation('org', 'an admin key spans every organization; give no org');
  if (opts.scope !== 'admin') parseOrgId(opts.org, 'org');
}

/**
 * Creates a key and returns it in clear, the only time it exists in clear. The organization need
 * not exist yet (an admin may hand out a key before creating it).
 */
export async function createKey(db: Database, opts: CreateKeyOptions): Promise<{ id: string; key: string }> {
  checkScope(opts);
  const id = newKeyId();
  const key = newKeyString(id);
  await insertKey(db, id, key, opts);
  return { id, key };
}

/** A key as listings show it: never the key, never its hash. */
export interface KeyInfo {
  id: string;
  scope: KeyScope;
  /** null for admin keys. */
  org: string | null;
  name: string | null;
  /** `created` (keys create, POST /v1/keys), `generated` (first start) or `env` (LOCKSTEP_ADMIN_KEY). */
  origin: KeyOrigin;
  createdAt: string;
  revokedAt: string | null;
}

interface KeyInfoRow {
  id: string;
  scope: KeyScope;
  org_id: string | null;
  name: string | null;
  origin: KeyOrigin;
  created_at: number | string;
  revoked_at: number | string | null;
}

const iso = (ms: number | string | null) => (ms === null ? null : new Date(Number(ms)).toISOString());
const keyInfo = (r: KeyInfoRow): KeyInfo => ({
  id: r.id,
  scope: r.scope,
  org: r.org_id,
  name: r.name,
  origin: r.origin,
  createdAt: iso(r.created_at)!,
  revokedAt: iso(r.revoked_at),
});
const KEY_INFO = 'SELECT id, scope, org_id, name, origin, created_at, revoked_at FROM api_keys';

export interface ListKeysOptions {
  /** Only this organization's keys (admin keys, which have none, are then left out). */
  org?: string;
  /** Include revoked keys (default: active ones only). */
  revoked?: boolean;
}

/** The keys, oldest first; at most a few hundred in practice, so not paginated. */
export async function listKeys(db: Sql, opts: ListKeysOptions = {}): Promise<KeyInfo[]> {
  const rows = await db.all<KeyInfoRow>(`${KEY_INFO} WHERE ($1 = '' OR org_id = $1) AND ($2 = 1 OR revoked_at IS NULL) ORDER BY created_at, id`, [
    opts.org ?? '',
    opts.revoked ? 1 : 0,
  ]);
  return rows.map(keyInfo);
}

export async function getKey(db: Sql, id: string): Promise<KeyInfo | undefined> {
  const row = await db.get<KeyInfoRow>(`${KEY_INFO} WHERE id = $1`, [id]);
  return row ? keyInfo(row) : undefined;
}

/** Revokes a key by id; answers whether it was active. */
export async function revokeKey(db: Database, id: string, now: () => number = Date.now): Promise<boolean> {
  return (await db.run('UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [now(), id])) > 0;
}

interface KeyRow {
  id: string;
  org_id: string | null;
  scope: KeyScope;
  name: string | null;
  hash: string;
}

/**
 * The key named by an `Authorization: Bearer …` header, or null when the header is missing,
 * malformed, unknown, revoked or wrong. Never says which.
 */
export async function authenticate(db: Database, header: string | undefined): Promise<ApiKey | null> {
  const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header ?? '');
  const key = m?.[1];
  if (!key || key.length > 512) return null;
  const presented = sha256(key);
  const id = KEY_FORMAT.exec(key)?.[1];
  let row: KeyRow | undefined;
  if (id !== undefined) {
    row = await db.get<KeyRow>('SELECT id, org_id, scope, name, hash FROM api_keys WHERE id = $1 AND revoked_at IS NULL', [id]);
  } else if (key.length >= MIN_FREEFORM_KEY_LENGTH) {
    // A free-form operator key carries no id: look it up by its hash (a unique index).
    row = await db.get<KeyRow>('SELECT id, org_id, scope, name, hash FROM api_keys WHERE hash = $1 AND revoked_at IS NULL', [presented.toString('hex')]);
  }
  const stored = row ? Buffer.from(row.hash, 'hex') : sha256('');
  const equal = stored.length === presented.length && timingSafeEqual(stored, presented);
  if (!row || !equal) return null;
  return { id: row.id, scope: row.scope, org: row.org_id, name: row.name };
}

/**
 * Keys this process has authenticated, by the SHA-256 of the presented key, for routes whose own
 * statement reads the key's liveness (the check route: docs/adr/0028-*). An entry says what the key
 * is (id, scope, organization — none of which ever changes) and nothing about whether it is still
 * active: a route that takes a key from here must confirm that in the snapshot it answers from, or
 * by `authenticate` before it answers anything else. Only keys that authenticated are entered;
 * bounded (the oldest entry leaves first).
 */
export function createKeyCache(max = 10_000) {
  const byHash = new Map<string, ApiKey>();
  const hashOf = (header: string | undefined) => {
    const key = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header ?? '')?.[1];
    return key && key.length <= 512 ? sha256(key).toString('hex') : undefined;
  };
  return {
    get(header: string | undefined): ApiKey | undefined {
      const h = hashOf(header);
      return h === undefined ? undefined : byHash.get(h);
    },
    remember(header: string | undefined, key: ApiKey): void {
      const h = hashOf(header);
      if (h === undefined) return;
      byHash.delete(h);
      if (byHash.size >= max) byHash.delete(byHash.keys().next().value!);
      byHash.set(h, key);
    },
    forget(header: string | undefined): void {
      const h = hashOf(header);
      if (h !== undefined) byHash.delete(h);
    },
  };
}

/** LOCKSTEP_ADMIN_KEY's format, checked before anything is stored (serve checks it before it listens). */
export function checkAdminKeyFormat(adminKey: string): void {
  if (!KEY_FORMAT.test(adminKey) && (adminKey.length < MIN_FREEFORM_KEY_LENGTH || adminKey.length > 512 || /\s/.test(adminKey))) {
    throw validation('LOCKSTEP_ADMIN_KEY', `LOCKSTEP_ADMIN_KEY must look like lsk_<id>_<secret> or be ${MIN_FREEFORM_KEY_LENGTH}-512 characters without spaces`);
  }
}

/**
 * Makes sure the store can be administered. With `LOCKSTEP_ADMIN_KEY` set, that key is registered
 * (once) as an admin key, and it becomes the only environment-provided key: every other active key
 * an earlier LOCKSTEP_ADMIN_KEY registered is revoked, in the same transaction (rotation is
 * "restart with the new key"; `revoked` lists the old keys' ids). Keys made by `keys create` and a
 * generated key are not touched. Without it, a store that has no active admin key gets a generated
 * one, returned so that the caller prints it once; it cannot be recovered later.
 */
export async function ensureAdminKey(
  db: Database,
  adminKey: string | undefined,
  now: () => number = Date.now,
): Promise<{ generated?: string; revoked?: string[] }> {
  if (adminKey !== undefined) {
    checkAdminKeyFormat(adminKey);
    const hash = sha256(adminKey).toString('hex');
    return db.transaction(async (tx) => {
      const existing = await tx.get<{ revoked_at: number | null; scope: string }>('SELECT revoked_at, scope FROM api_keys WHERE hash = $1', [hash]);
      if (existing) {
        if (existing.revoked_at !== null || existing.scope !== 'admin') {
          throw validation('LOCKSTEP_ADMIN_KEY', 'LOCKSTEP_ADMIN_KEY is a revoked or non-admin key; choose another');
        }
        // Registered by hand (keys create with this secret) or before migration 008: it is the
        // environment's key from now on.
        await tx.run("UPDATE api_keys SET origin = 'env' WHERE hash = $1", [hash]);
      } else {
        const id = KEY_FORMAT.exec(adminKey)?.[1] ?? newKeyId();
        // A formatted key is found by its embedded id, so that id must be free.
        if (await tx.get('SELECT id FROM api_keys WHERE id = $1', [id])) {
          throw validation('LOCKSTEP_ADMIN_KEY', 'LOCKSTEP_ADMIN_KEY has the id of another key; generate a fresh one');
        }
        await insertKey(tx, id, adminKey, { scope: 'admin', name: 'LOCKSTEP_ADMIN_KEY', now }, 'env');
      }
      const old = await tx.all<{ id: string }>("SELECT id FROM api_keys WHERE origin = 'env' AND revoked_at IS NULL AND hash <> $1 ORDER BY id", [hash]);
      if (old.length > 0) await tx.run("UPDATE api_keys SET revoked_at = $1 WHERE origin = 'env' AND revoked_at IS NULL AND hash <> $2", [now(), hash]);
      return old.length > 0 ? { revoked: old.map((r) => r.id) } : {};
    });
  }
  const active = await db.get("SELECT id FROM api_keys WHERE scope = 'admin' AND revoked_at IS NULL LIMIT 1");
  if (active) return {};
  const id = newKeyId();
  const key = newKeyString(id);
  await insertKey(db, id, key, { scope: 'admin', name: 'generated on first start', now }, 'generated');
  return { generated: key };
}

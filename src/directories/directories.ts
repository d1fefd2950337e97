/**
 * Directories: an identity provider's connection to an organization, and its bearer token.
 *
 * A token reads `lsd_<directory id>_<secret>`; only its SHA-256 is stored. Authentication is one
 * primary-key lookup on the id and a constant-time comparison of hashes, like API keys. Rotation
 * replaces the hash in one statement, so the old token stops working at the commit; deleting the
 * directory removes the row, so its token stops at once too. A directory token is not an API key: it
 * authenticates only its own SCIM base URL.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { notFound, validation } from '../domain/errors.ts';
import { parseName, parseOrgId, type OrgId } from '../domain/model.ts';
import { sql, type Database, type Sql } from '../storage/database.ts';
import { keyAfter } from '../storage/keyset.ts';
import { decodeCursor, pageLimit, pageOf, type PageQuery } from '../domain/page.ts';

export const PROVIDERS = ['okta', 'entra', 'generic'] as const;
export type Provider = (typeof PROVIDERS)[number];

export interface Directory {
  id: string;
  org: OrgId;
  name: string;
  provider: Provider;
}

export interface DirectoryError {
  at: string;
  requestId: string;
  operation: string;
  status: number;
  scimType: string | null;
  detail: string;
}

export interface DirectoryInfo extends Directory {
  createdAt: string;
  tokenCreatedAt: string;
  counts: { users: number; groups: number; memberships: number; requests: number; errors: number };
  lastRequest: { at: string; operation: string; status: number; requestId: string; revision?: number } | null;
  recentErrors: DirectoryError[];
}

const TOKEN = /^lsd_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$/;
const DIRECTORY_ID = /^[a-f0-9]{16}$/;
/** Recent errors kept per directory. */
export const KEPT_ERRORS = 20;

/** What the SCIM route records of one request. */
export interface RequestRecord {
  operation: string;
  status: number;
  requestId: string;
  revision?: number;
  scimType?: string | undefined;
  detail?: string;
}

interface QueuedRecord {
  at: number;
  req: RequestRecord;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();
const newToken = (id: string) => `lsd_${id}_${randomBytes(32).toString('base64url')}`;

export const parseDirectoryId = (v: unknown, field = 'id'): string => {
  if (typeof v !== 'string' || !DIRECTORY_ID.test(v)) throw validation(field, `${field} must be a directory id (16 hex digits)`);
  return v;
};

interface Row {
  id: string;
  org_id: string;
  name: string;
  provider: Provider;
  token_hash: string;
  token_created_at: number;
  created_at: number;
  requests: number;
  errors: number;
  last_request_at: number | null;
  last_request: string | null;
}

const toDirectory = (r: Row): Directory => ({ id: r.id, org: r.org_id as OrgId, name: r.name, provider: r.provider });

export function createDirectoryStore(db: Database, now: () => number = Date.now) {
  const recordQueues = new Map<string, QueuedRecord[]>();
  const recording = new Set<string>();

  async function drainRecords(directoryId: string): Promise<void> {
    recording.add(directoryId);
    try {
      for (;;) {
        const batch = recordQueues.get(directoryId)?.splice(0) ?? [];
        if (batch.length === 0) return;
        await writeRecords(directoryId, batch).then(
          () => batch.forEach((r) => r.resolve()),
          (error: unknown) => batch.forEach((r) => r.reject(error)),
        );
      }
    } finally {
      recording.delete(directoryId);
      recordQueues.delete(directoryId);
    }
  }

  async function writeRecords(directoryId: string, batch: QueuedRecord[]) {
    const errors = batch.filter((r) => r.req.status >= 400);
    const last = batch[batch.length - 1]!;
    const { operation, status, requestId, revision } = last.req;
    const lastRequest = JSON.stringify({ operation, status, requestId, ...(revision === undefined ? {} : { revision }) });
    await db.transaction(async (tx: Sql) => {
      const found = await tx.run('UPDATE directories SET requests = requests + $2, errors = errors + $3, last_request_at = $4, last_request = $5 WHERE id = $1', [
        directoryId,
        batch.length,
        errors.length,
        last.at,
        lastRequest,
      ]);
      if (found === 0 || errors.length === 0) return;
      for (const { at, req } of errors) {
        await tx.run(
          'INSERT INTO directory_errors (directory_id, at, request_id, operation, status, scim_type, detail) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING',
          [directoryId, at, req.requestId, req.operation, req.status, req.scimType ?? null, (req.detail ?? '').slice(0, 500)],
        );
      }
      await tx.run(
        `DELETE FROM directory_errors WHERE directory_id = $1 AND at < (
           SELECT MIN(at) FROM (SELECT at FROM directory_errors WHERE directory_id = $1 ORDER BY at DESC LIMIT $2) kept)`,
        [directoryId, KEPT_ERRORS],
      );
    });
  }

  async function info(r: Row): Promise<DirectoryInfo> {
    const counts = await db.get<{ users: number; groups: number; memberships: number }>(
      `SELECT (SELECT COUNT(*) FROM scim_resources WHERE directory_id = $1 AND resource_type = 'User') AS users,
              (SELECT COUNT(*) FROM scim_resources WHERE directory_id = $1 AND resource_type = 'Group') AS groups,
              (SELECT COUNT(*) FROM memberships m JOIN scim_resources g
                  ON g.org_id = m.org_id AND g.resource_type = 'Group' AND g.id = m.group_id WHERE g.directory_id = $1) AS memberships`,
      [r.id],
    );
    const errors = await db.all<{ at: number; request_id: string; operation: string; status: number; scim_type: string | null; detail: string }>(
      'SELECT at, request_id, operation, status, scim_type, detail FROM directory_errors WHERE directory_id = $1 ORDER BY at DESC, request_id LIMIT $2',
      [r.id, KEPT_ERRORS],
    );
    return {
      ...toDirectory(r),
      createdAt: new Date(Number(r.created_at)).toISOString(),
      tokenCreatedAt: new Date(Number(r.token_created_at)).toISOString(),
      counts: {
        users: Number(counts?.users ?? 0),
        groups: Number(counts?.groups ?? 0),
        memberships: Number(counts?.memberships ?? 0),
        requests: Number(r.requests),
        errors: Number(r.errors),
      },
      lastRequest: r.last_request === null ? null : { at: new Date(Number(r.last_request_at)).toISOString(), ...(JSON.parse(r.last_request) as { operation: string; status: number; requestId: string }) },
      recentErrors: errors.map((e) => ({
        at: new Date(Number(e.at)).toISOString(),
        requestId: e.request_id,
        operation: e.operation,
        status: Number(e.status),
        scimType: e.scim_type,
        detail: e.detail,
      })),
    };
  }

  async function row(org: OrgId, id: string): Promise<Row> {
    const r = await db.get<Row>('SELECT * FROM directories WHERE id = $1 AND org_id = $2', [id, org]);
    if (!r) throw notFound('id', 'directory', id);
    return r;
  }

  return {
    /** Creates a directory; the token is returned this once. */
    async create(orgIn: string, body: { name?: unknown; provider?: unknown }): Promise<Directory & { token: string }> {
      const org = parseOrgId(orgIn);
      const name = parseName(body.name);
      if (name === null || name === '') throw validation('name', 'name is required');
      const provider = (body.provider ?? 'generic') as Provider;
      if (!PROVIDERS.includes(provider)) throw validation('provider', `provider must be one of ${PROVIDERS.join(', ')}`);
      if (!(await db.get('SELECT 1 AS x FROM organizations WHERE id = $1', [org]))) throw notFound('org', 'organization', org);
      const id = randomBytes(8).toString('hex');
      const token = newToken(id);
      const t = now();
      await db.run(
        'INSERT INTO directories (id, org_id, name, provider, token_hash, token_created_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)',
        [id, org, name, provider, sha256(token).toString('hex'), t, t],
      );
      return { id, org, name, provider, token };
    },

    /** Oldest first; paged when `q.limit` is given (`next`: the cursor of the following page). */
    async list(orgIn: string, q: PageQuery = {}): Promise<{ directories: DirectoryInfo[]; next: string | null }> {
      const org = parseOrgId(orgIn);
      const limit = pageLimit(q.limit);
      const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor, ['n', 's']);
      if (!(await db.get('SELECT 1 AS x FROM organizations WHERE id = $1', [org]))) throw notFound('org', 'organization', org);
      const rows = await db.all<Row>(
        sql`SELECT * FROM directories WHERE org_id = ${org} ${after === undefined ? sql.empty : sql`AND ${keyAfter([sql`created_at`, sql`id`], after)}`}
             ORDER BY created_at, id ${limit === undefined ? sql.empty : sql`LIMIT ${limit + 1}`}`,
      );
      const page = pageOf(rows, limit, (r) => [Number(r.created_at), r.id]);
      return { directories: await Promise.all(page.items.map(info)), next: page.next };
    },

    async get(orgIn: string, idIn: string): Promise<DirectoryInfo> {
      return info(await row(parseOrgId(orgIn), parseDirectoryId(idIn)));
    },

    /** A new token; the old one stops working when this commits. */
    async rotate(orgIn: string, idIn: string): Promise<Directory & { token: string }> {
      const org = parseOrgId(orgIn);
      const r = await row(org, parseDirectoryId(idIn));
      const token = newToken(r.id);
      await db.run('UPDATE directories SET token_hash = $2, token_created_at = $3 WHERE id = $1', [r.id, sha256(token).toString('hex'), now()]);
      return { ...toDirectory(r), token };
    },

    /**
     * Deletes a directory. Its users and groups stay in the organization as ordinary subjects and
     * groups (writable through /v1 again); offboard them through SCIM first to revoke their access.
     */
    async remove(orgIn: string, idIn: string): Promise<void> {
      const org = parseOrgId(orgIn);
      const id = parseDirectoryId(idIn);
      await db.transaction(async (tx) => {
        const r = await tx.get<{ id: string }>(`SELECT id FROM directories WHERE id = $1 AND org_id = $2${tx.forUpdate}`, [id, org]);
        if (!r) throw notFound('id', 'directory', id);
        await tx.run('DELETE FROM scim_resources WHERE directory_id = $1', [id]);
        await tx.run('DELETE FROM directory_errors WHERE directory_id = $1', [id]);
        await tx.run('DELETE FROM directories WHERE id = $1', [id]);
      });
    },

    /** The directory a bearer token authenticates for this base URL's directory id, or null. Never says why. */
    async authenticate(directoryId: string, header: string | undefined): Promise<Directory | null> {
      const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header ?? '');
      const token = m?.[1];
      if (!token || token.length > 512) return null;
      const id = TOKEN.exec(token)?.[1];
      const r = id === directoryId ? await db.get<Row>('SELECT * FROM directories WHERE id = $1', [id]) : undefined;
      const presented = sha256(token);
      const stored = r ? Buffer.from(r.token_hash, 'hex') : sha256('');
      const equal = stored.length === presented.length && timingSafeEqual(stored, presented);
      return r && equal ? toDirectory(r) : null;
    },

    /**
     * Bookkeeping of one SCIM request (totals, last request, the last errors). Requests answered
     * while a directory's bookkeeping is being written share the next transaction (one row lock,
     * one commit for all of them, in arrival order); each call resolves when its record committed.
     */
    record(directoryId: string, req: RequestRecord): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        let queue = recordQueues.get(directoryId);
        if (!queue) recordQueues.set(directoryId, (queue = []));
        queue.push({ at: now(), req, resolve, reject });
        if (!recording.has(directoryId)) void drainRecords(directoryId);
      });
    },
  };
}

export type DirectoryStore = ReturnType<typeof createDirectoryStore>;

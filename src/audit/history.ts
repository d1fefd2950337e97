/**
 * Access history from the change log: the policy as it stood at time T is rebuilt by replaying the
 * organization's logged writes (each entry carries its command's body) through the real engine into
 * a scratch in-memory SQLite database, every change propagated inline; the questions "what could S do
 * at T" and "who could do P on R at T" are then asked of that engine. Forensics, not a hot path: the
 * cost is one replay of the log up to T per question — CPU-bound and synchronous (better-sqlite3),
 * which is why the server runs it in worker threads with a bound on how many (./history-pool.ts,
 * docs/adr/0005-access-history-off-the-event-loop.md).
 */
import { LockstepError } from '../domain/errors.ts';
import { parseRfc3339 } from '../domain/time.ts';
import { SYNC_POLICY } from '../domain/propagation.ts';
import type { Database, Sql } from '../storage/database.ts';
import { openSqlite } from '../storage/sqlite-engine.ts';
import type { AccessQuery, EffectiveQuery, Lockstep } from '../domain/contract.ts';

type Body = Record<string, unknown>;
const s = (v: unknown) => v as string;

/** Applies one logged change to `ls`; a kind the policy does not consist of is skipped. */
async function replay(ls: Lockstep, org: string, kind: string, b: Body): Promise<void> {
  const [type, id] = typeof b.resource === 'string' ? [b.resource.slice(0, b.resource.indexOf(':')), b.resource.slice(b.resource.indexOf(':') + 1)] : ['', ''];
  switch (kind) {
    case 'organization.create':
    case 'organization.update':
      return void (await ls.putOrganization(org, { name: (b.name as string | null) ?? null }));
    case 'permission.create':
    case 'permission.update':
      return void (await ls.putPermission(org, s(b.slug), { risk: s(b.risk) }));
    case 'role.create':
    case 'role.update':
      return void (await ls.putRole(org, s(b.slug), { permissions: b.permissions as string[] }));
    case 'resource.create':
    case 'resource.update':
      return void (await ls.putResource(org, type, id, { parent: (b.parent as string | null) ?? null }));
    case 'resource.delete':
      return void (await ls.deleteResource(org, type, id));
    case 'subject.create':
    case 'subject.activate':
    case 'subject.deactivate':
      return void (await ls.putSubject(org, s(b.id), { kind: s(b.kind), active: b.active as boolean }));
    case 'subject.delete':
      return void (await ls.deleteSubject(org, s(b.id)));
    case 'group.create':
    case 'group.update':
      return void (await ls.putGroup(org, s(b.id), { name: (b.name as string | null) ?? null }));
    case 'group.delete':
      return void (await ls.deleteGroup(org, s(b.id)));
    // `member` since nested groups (subject:ID or group:ID); `subject` in entries written before
    case 'membership.add':
    case 'membership.update':
      return void (await ls.addMember(org, s(b.group), s(b.member ?? b.subject), { expiresAt: (b.expiresAt as string | null | undefined) ?? null }));
    case 'membership.remove':
    case 'membership.expired':
      return void (await ls.removeMember(org, s(b.group), s(b.member ?? b.subject)));
    case 'assignment.create':
    case 'assignment.update':
      return void (await ls.createAssignment(org, {
        principal: s(b.principal), role: s(b.role), resource: s(b.resource), expiresAt: (b.expiresAt as string | null | undefined) ?? null,
      }));
    case 'assignment.delete':
    case 'assignment.expired':
      return void (await ls.deleteAssignment(org, s(b.id)));
    default:
      return; // propagation_policy.update and future non-policy kinds
  }
}

export const parseAt = (at: string): number => parseRfc3339(at, 'at');

/** An engine over a scratch database that propagates every change inline, with the given id source and clock. */
export type ReplayEngine = (db: Database, newId: () => string, now: () => number) => Lockstep;

/*
 * A replay holds `org`'s policy as committed at `at` (every change decided at or before it) and
 * returns the revision it reached alongside. The engine's clock reads each change's decision time
 * while it is replayed (so a logged `expiresAt` was in its future), then `at` while the question is
 * asked: what had expired by then is denied, as it was.
 */

export interface ChangeRow {
  revision: number;
  kind: string;
  body: string;
  decided_at: number;
}

/** Rows of the log replayed per page: the reader yields to the event loop between pages. */
export const REPLAY_PAGE = 2000;

/** `org`'s logged changes decided at or before `at`, oldest first, in pages of `page` rows. */
export async function* changePages(source: Sql, org: string, at: number, page = REPLAY_PAGE): AsyncGenerator<ChangeRow[]> {
  let after = 0;
  for (;;) {
    const rows = await source.all<ChangeRow>(
      'SELECT revision, kind, body, decided_at FROM changes WHERE org_id = $1 AND decided_at <= $2 AND revision > $3 ORDER BY revision LIMIT $4',
      [org, at, after, page],
    );
    if (rows.length > 0) yield rows;
    if (rows.length < page) return;
    after = Number(rows[rows.length - 1]!.revision);
  }
}

/**
 * Replays `pages` (oldest first, one organization's) into a scratch in-memory SQLite database and
 * runs `fn` on the engine holding the result. `null` when there is nothing to replay.
 */
export async function replayPages<T>(
  pages: AsyncIterable<ChangeRow[]> | Iterable<ChangeRow[]>,
  createEngine: ReplayEngine,
  org: string,
  at: number,
  fn: (ls: Lockstep) => Promise<T>,
): Promise<{ revision: number; result: T | null }> {
  const scratch = openSqlite(':memory:');
  try {
    await scratch.migrate();
    // Assignment ids must be the logged ones, so that `via` names the real assignments.
    let nextId = '';
    let clock = 0;
    let revision = 0;
    const ls = createEngine(scratch, () => nextId.replace(/^asg_/, ''), () => clock);
    await ls.transaction(async (t) => {
      for await (const rows of pages) {
        for (const r of rows) {
          const body = JSON.parse(r.body) as Body;
          // An expiry's entry is decided at its instant, which the item was live strictly before.
          clock = Number(r.decided_at) - (r.kind.endsWith('.expired') ? 1 : 0);
          if (r.kind === 'assignment.create') nextId = s(body.id);
          await replay(t, org, r.kind, body);
          revision = Number(r.revision);
        }
      }
    });
    if (revision === 0) return { revision: 0, result: null };
    clock = at;
    return { revision, result: await fn(ls) };
  } finally {
    await scratch.close();
  }
}

/**
 * Runs `fn` against an engine holding `org`'s policy as committed at `at`, in this thread. The
 * server runs replays in worker threads instead (./history-pool.ts); this path is the library's
 * (tests, the CLI) and the workers' own.
 */
export function atTime<T>(
  source: Sql,
  createEngine: ReplayEngine,
  org: string,
  at: number,
  fn: (ls: Lockstep) => Promise<T>,
): Promise<{ revision: number; result: T | null }> {
  return replayPages(changePages(source, org, at), createEngine, org, at, fn);
}

/** A question about the past, as data (it crosses to a worker thread). */
export type HistoryQuestion =
  | { kind: 'subject'; subject: string; query: EffectiveQuery }
  | { kind: 'resource'; resource: string; permission: string; query: AccessQuery };

/** Turns a NOT_FOUND into `empty` (malformed input still fails). */
const emptyIfMissing =
  <T,>(empty: T) =>
  (e: unknown): T => {
    if (e instanceof LockstepError && e.code === 'NOT_FOUND') return empty;
    throw e;
  };

/**
 * The question asked of the replayed engine. A subject that did not exist at T could do nothing
 * then; nobody could do a permission that did not exist at T on a resource that did not exist at T.
 */
export function ask(org: string, q: HistoryQuestion): (ls: Lockstep) => Promise<unknown> {
  return q.kind === 'subject'
    ? (h) => h.subjectEffective(org, q.subject, q.query).catch(emptyIfMissing({ revision: 0, permissions: [], next: null }))
    : (h) => h.resourceAccess(org, q.resource, q.permission, q.query).catch(emptyIfMissing({ revision: 0, subjects: [], next: null }));
}

/** Where replays run: in this thread (`atTime`) or in a pool of worker threads. */
export interface HistoryRunner {
  run(source: Sql, org: string, at: number, q: HistoryQuestion): Promise<{ revision: number; result: unknown }>;
  close(): Promise<void>;
}

export const REPLAY_POLICY = { ...SYNC_POLICY, inlineBudget: 10_000_000 };

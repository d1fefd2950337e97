/**
 * The read side: checks and listings.
 *
 * `minimize_latency` reads candidate read-model rows for the resource and its ancestors and, where the
 * permission's tier calls for it, verifies each candidate's provenance against the source tables at
 * this check's clock: the assignment still exists and has not expired, the subject still reaches the
 * row's group through live memberships and nested edges (a walk up from the subject, which also
 * yields the chain `via` shows), the subject is active.
 * The role→permission link is always read from the source table (the read model stores roles).
 * That is a few index probes, and it is why a revocation is enforceable the moment it commits.
 *
 * `fully_consistent` evaluates the source tables alone (the derivation rule, ../derivation/rule.ts).
 */
import { LockstepError, notFound, validation } from '../domain/errors.ts';
import {
  CONSISTENCY_MODES,
  MAX_RESOURCE_DEPTH,
  parseOrgId,
  parsePermissionSlug,
  parseResourceRef,
  parseSubjectId,
  tierOfRank,
  verifies,
  type AssignmentId,
  type ConsistencyMode,
  type EffectiveRow,
  type GroupId,
  type OrgId,
  type PermissionSlug,
  type ResourceRef,
  type RiskTier,
  type RoleSlug,
  type SubjectId,
  type VerifyMode,
} from '../domain/model.ts';
import type {
  AccessEntry, AccessQuery, CheckBatchRequest, CheckBatchResult, CheckOptions, CheckRequest, CheckResult, EffectivePermission, EffectiveQuery, LookupQuery, Via,
} from '../domain/contract.ts';
import { decodeCursor, pageLimit, pageOf } from '../domain/page.ts';
import { keyAfter } from '../storage/keyset.ts';
import { prepared, sql, type CompiledSql, type Database, type Sql, type SqlFragment } from '../storage/database.ts';
import { ancestors, chainAt, chainTo, desiredOnAncestors, liveAt, memberGroups, provenAt, type Instant } from '../derivation/rule.ts';
import { createCoalescer, createTurnQueue } from './coalesce.ts';
import { isLive } from '../domain/groups.ts';
import { loadGroupEdges } from '../derivation/closure.ts';
import type { Metrics } from '../observability/metrics.ts';

/**
 * Where the tier of risk rank `risk` is verified (`flags[rank - 1]` is 1), read-model row `e` must
 * still be derived (provenance, ../derivation/rule.ts).
 */
const verifiedByTier = (risk: SqlFragment, flags: readonly number[], now: Instant) =>
  sql`(CASE CAST(${risk} AS INTEGER) WHEN 1 THEN CAST(${flags[0]} AS INTEGER) WHEN 2 THEN CAST(${flags[1]} AS INTEGER)
     ELSE CAST(${flags[2]} AS INTEGER) END = 0 OR ${provenAt('e', now)})`;

/** What one check reads with: values, or (in the batched statement) the columns of its item. */
interface CheckArgs {
  org: unknown;
  resource: unknown;
  subject: unknown;
  permission: unknown;
  now: Instant;
  /** The API key the check is answered for, whose liveness its statement reads (null: none). */
  key: unknown;
}

/** One check's values. */
interface CheckValues extends CheckArgs {
  org: OrgId;
  resource: ResourceRef;
  subject: SubjectId;
  permission: PermissionSlug;
  now: number;
  key: string | null;
}

// CROSS JOIN fixes the join order on SQLite (PostgreSQL plans it freely): ancestors first, then index
// probes. Left to itself, SQLite with ANALYZE statistics sometimes scans all of a subject's rows.
/**
 * The permission's risk rank where a candidate is filtered: on PostgreSQL the column of the
 * statement's own `p` (the hit is joined LATERAL, `checkStatement`), elsewhere a probe of its own.
 */
const riskOf = (q: CheckArgs, lateral: boolean) =>
  lateral ? sql`p.risk` : sql`(SELECT p.risk FROM permissions p WHERE p.org_id = ${q.org} AND p.slug = ${q.permission})`;

/** Read-model candidates on the resource and its ancestors, nearest first. */
const candidate = (q: CheckArgs, flags: readonly number[], lateral: boolean) => sql`
  SELECT e.assignment_id, e.group_id, e.role, e.resource, anc.depth
    FROM anc
   CROSS JOIN effective_assignments e
   CROSS JOIN role_permissions rp
   WHERE e.org_id = ${q.org} AND e.subject_id = ${q.subject} AND e.resource = anc.ref
     AND rp.org_id = ${q.org} AND rp.role = e.role AND rp.permission = ${q.permission}
     AND ${verifiedByTier(riskOf(q, lateral), flags, q.now)}
   ORDER BY anc.depth, e.assignment_id
   LIMIT 1`;

/** The source of truth alone: the subject's derivations on the resource and its ancestors, nearest first. */
const source = (q: CheckArgs) => sql`
  SELECT x.assignment_id, x.group_id, x.role, x.resource, x.depth, x.chain FROM (${desiredOnAncestors(q.org, q.now, q.subject)}) x
   CROSS JOIN role_permissions rp
   WHERE rp.org_id = ${q.org} AND rp.role = x.role AND rp.permission = ${q.permission}
   ORDER BY x.depth, x.assignment_id
   LIMIT 1`;

/** The chain of a read-model hit: for the one row found, not for every candidate. */
const candidateChain = (q: CheckArgs) => sql`CASE WHEN h.group_id IS NULL THEN NULL ELSE ${chainAt(q.org, q.subject, sql`h.group_id`, q.now)} END`;

/**
 * One statement — one snapshot, one round trip — returns the organization's revision, the
 * permission's tier and the nearest derivation, if any, with its `chain` (a column of `hit`, or an
 * expression over `h`), and whether the API key it is answered for (if any) is active in the same
 * snapshot (`key_live`: docs/adr/0028-*). `lateral` (PostgreSQL): `hit` may read `p`, the
 * permission's row (SQLite has no LATERAL join).
 */
const checkStatement = (q: CheckArgs, hit: SqlFragment, chain: SqlFragment, lateral = false) => sql`
  WITH RECURSIVE ${ancestors(q.org, q.resource)}, ${memberGroups(q.org, q.subject, q.now)}
  SELECT o.revision, p.risk, h.assignment_id, h.group_id, h.role, h.resource, ${chain} AS chain,
         (SELECT 1 FROM api_keys k WHERE k.id = ${q.key} AND k.revoked_at IS NULL) AS key_live
    FROM organizations o
    LEFT JOIN permissions p ON p.org_id = o.id AND p.slug = ${q.permission}
    LEFT JOIN ${lateral ? sql`LATERAL ` : sql.empty}(${hit}) h ON 1 = 1
   WHERE o.id = ${q.org}`;

interface CheckRow {
  /** null: no such organization (the batched statement's row of an item it found no organization for). */
  revision: number | null;
  risk: number | null;
  assignment_id: AssignmentId | null;
  group_id: GroupId | null;
  role: RoleSlug | null;
  resource: ResourceRef | null;
  chain: string | null;
  /** 1: the check's API key is active in the statement's snapshot; null: it is not, or there is none. */
  key_live: number | null;
}

/**
 * The batched check (PostgreSQL): the read-model statement of every item at once, each item's the
 * lone statement over the columns of its row of `q` (LATERAL: its CTEs are evaluated per item), in
 * one statement — one snapshot, one round trip. Each item keeps its own clock (`now`), so its
 * answer is the one its lone statement would give on the same snapshot.
 */
const ITEM: CheckArgs = {
  org: sql.raw('q.org'),
  resource: sql.raw('q.resource'),
  subject: sql.raw('q.subject'),
  permission: sql.raw('q.permission'),
  now: sql.raw('q.now'),
  key: sql.raw('q.key'),
};
/** The batched statement's arguments: one array per column of `q`. */
interface BatchArrays {
  i: number[];
  org: unknown[];
  subject: unknown[];
  resource: unknown[];
  permission: unknown[];
  now: unknown[];
  key: unknown[];
}
const BATCH_KEYS = ['i', 'org', 'subject', 'resource', 'permission', 'now', 'key'] as const;
const batchStatement = (a: BatchArrays, flags: readonly number[]) => sql`
  SELECT q.i, x.revision, x.risk, x.assignment_id, x.group_id, x.role, x.resource, x.chain, x.key_live
    FROM unnest(CAST(${a.i} AS INTEGER[]), CAST(${a.org} AS TEXT[]), CAST(${a.subject} AS TEXT[]),
                CAST(${a.resource} AS TEXT[]), CAST(${a.permission} AS TEXT[]), CAST(${a.now} AS BIGINT[]),
                CAST(${a.key} AS TEXT[]))
         AS q(i, org, subject, resource, permission, now, key)
    LEFT JOIN LATERAL (${checkStatement(ITEM, candidate(ITEM, flags, true), candidateChain(ITEM), true)}) x ON TRUE
   ORDER BY q.i`;

async function runBatch(db: Sql, items: CheckValues[], statement: (a: BatchArrays) => CompiledSql): Promise<(CheckRow | undefined)[]> {
  const { text, params } = statement({
    i: items.map((_, i) => i),
    org: items.map((c) => c.org),
    subject: items.map((c) => c.subject),
    resource: items.map((c) => c.resource),
    permission: items.map((c) => c.permission),
    now: items.map((c) => c.now),
    key: items.map((c) => c.key),
  });
  const rows = await db.all<CheckRow & { i: number }>(text, params);
  const out: (CheckRow | undefined)[] = items.map(() => undefined);
  for (const r of rows) if (r.revision !== null) out[Number(r.i)] = r;
  return out;
}

interface ViaRow {
  assignment_id: AssignmentId;
  group_id: GroupId | null;
  role: RoleSlug;
  resource: ResourceRef;
  /** The groups from the subject's own up to the row's group, '/'-joined (group rows only). */
  chain?: string | null;
}
const toVia = (r: ViaRow): Via => ({
  assignment: r.assignment_id,
  group: r.group_id,
  role: r.role,
  resource: r.resource,
  ...(r.group_id !== null && r.chain ? { chain: r.chain.split('/') as GroupId[] } : {}),
});

const answer = (r: { row: CheckRow; revision: number }, mode: ConsistencyMode, source: boolean, verified: boolean): CheckResult => ({
  allowed: r.row.assignment_id !== null,
  revision: r.revision,
  evaluatedAgainst: source ? 'source' : 'read_model',
  consistency: mode,
  verified,
  ...(r.row.assignment_id !== null ? { via: toVia(r.row as ViaRow) } : {}),
});

export interface CheckEnv {
  db: Sql;
  verify: VerifyMode;
  /** The clock expiry is compared with. */
  now: () => number;
  freshnessTimeoutMs?: number | undefined;
  metrics?: Metrics | undefined;
  /**
   * Runs `fn` in one snapshot of the database (what a batch of checks reads): a read-only
   * REPEATABLE READ transaction on PostgreSQL, a transaction on SQLite. Absent: `fn(db)`.
   */
  snapshot?: (<T>(fn: (tx: Sql) => Promise<T>) => Promise<T>) | undefined;
  /**
   * Where the read-model statements of concurrent checks are coalesced into one (the batched
   * check; PostgreSQL's `genericPlans`): the checks that arrive while one is out share the next.
   * Absent (SQLite, a transaction, a batch's snapshot): each check runs its own.
   */
  batch?: Sql | undefined;
  /**
   * SQLite: the read-model statements of the checks made in one turn of the event loop run back to
   * back at its end (createTurnQueue, docs/adr/0021-*). Not in a transaction, nor in a batch's
   * snapshot: each check there runs its own at once.
   */
  turnQueue?: boolean | undefined;
}

/**
 * What `check(…, { liveKey })` throws when that API key was not active in the snapshot the check
 * read (revoked, or unknown): the check answered nothing. The HTTP server answers 401 for it.
 */
export class KeyNotActiveError extends Error {
  override readonly name = 'KeyNotActiveError';
  constructor() {
    super('the API key the check was made with is not active');
  }
}

/** The most checks one `checkBatch` takes. */
export const MAX_BATCH = 100;

/** A snapshot of `db` for reads that must agree on one revision (CheckEnv.snapshot). */
export function readSnapshot(db: Database): <T>(fn: (tx: Sql) => Promise<T>) => Promise<T> {
  return (fn) =>
    db.transaction(async (tx) => {
      if (db.dialect === 'postgres') await tx.run('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      return fn(tx);
    });
}

/** `err` with its field (or none) prefixed by `checks[i]`, so that a batch's problem names the item. */
function ofItem(i: number, err: unknown): unknown {
  if (!(err instanceof LockstepError)) return err;
  const field = `checks[${i}]${err.field === undefined ? '' : `.${err.field}`}`;
  return new LockstepError(err.code, `checks[${i}]: ${err.message}`, { field, meta: { ...err.meta }, cause: err });
}

/** The resources reachable from the granting ones, down the hierarchy (UNION: each once, cycles end). */
const DEPTH_BOUND = sql.raw(String(MAX_RESOURCE_DEPTH));

/**
 * Changes up to $2 not yet in the read model that can concern subject $3: those carried by the
 * subject's own job scope, and conservatively every non-subject scope (group, assignment, organization).
 */
const PENDING_FOR_SUBJECT = `
  SELECT (SELECT revision FROM organizations WHERE id = $1) AS current,
         (SELECT COUNT(*) FROM changes
           WHERE org_id = $1 AND effective_at IS NULL AND revision <= $2
             AND (job_scope = $3 OR job_scope NOT LIKE 'subject:%')) AS pending`;

function verifyFlags(mode: VerifyMode): [number, number, number] {
  return [verifies(mode, 'standard') ? 1 : 0, verifies(mode, 'high') ? 1 : 0, verifies(mode, 'critical') ? 1 : 0];
}

async function orgMeta(db: Sql, org: OrgId, permission?: PermissionSlug): Promise<{ revision: number; risk: RiskTier | null }> {
  const row = permission
    ? await db.get<{ revision: number; risk: number | null }>(
        'SELECT o.revision, p.risk FROM organizations o LEFT JOIN permissions p ON p.org_id = o.id AND p.slug = $2 WHERE o.id = $1',
        [org, permission],
      )
    : await db.get<{ revision: number; risk: null }>('SELECT revision, NULL AS risk FROM organizations WHERE id = $1', [org]);
  if (!row) throw notFound('org', 'organization', org);
  return { revision: Number(row.revision), risk: tierOfRank(row.risk) };
}

export function createChecks(env: CheckEnv) {
  const { db } = env;
  const flags = verifyFlags(env.verify);
  const timeoutMs = env.freshnessTimeoutMs ?? 2000;
  const batchOn = env.batch;
  // One statement out at a time: the checks that arrive meanwhile share the next (docs/adr/0018-*).
  // Built once: per check, only the parameters change.
  const CHECK_KEYS = ['org', 'resource', 'subject', 'permission', 'now', 'key'] as const;
  const lateral = db.dialect === 'postgres';
  const onReadModel = prepared<CheckValues>(CHECK_KEYS, (q) => checkStatement(q, candidate(q, flags, lateral), candidateChain(q), lateral));
  const onSource = prepared<CheckValues>(CHECK_KEYS, (q) => checkStatement(q, source(q), sql`h.chain`));
  const onBatch = prepared<BatchArrays>(BATCH_KEYS, (a) => batchStatement(a, flags));
  const batched = batchOn ? createCoalescer((items: CheckValues[]) => runBatch(batchOn, items, onBatch), { maxSize: MAX_BATCH, maxInFlight: 1 }) : undefined;
  // SQLite: the statements of one event-loop turn's checks, back to back at its end (docs/adr/0021-*).
  const inTurn =
    !batchOn && env.turnQueue
      ? createTurnQueue((q: CheckValues) => {
          const { text, params } = onReadModel(q);
          return db.get<CheckRow>(text, params);
        })
      : undefined;

  /** at_least_as_fresh: wait (bounded) until the read model has applied `revision` for the subject. */
  async function waitFresh(org: OrgId, subject: SubjectId, revision: unknown): Promise<void> {
    if (typeof revision !== 'number' || !Number.isInteger(revision) || revision < 0) {
      throw validation('consistency.revision', 'at_least_as_fresh needs a non-negative integer revision');
    }
    const deadline = Date.now() + timeoutMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
      const row = await db.get<{ current: number | null; pending: number }>(PENDING_FOR_SUBJECT, [org, revision, `subject:${subject}`]);
      if (row?.current === null || row?.current === undefined) throw notFound('org', 'organization', org);
      if (revision > Number(row.current)) {
        throw new LockstepError('VALIDATION', `revision ${revision} has not been committed (current: ${row.current})`, { field: 'consistency.revision' });
      }
      if (Number(row.pending) === 0) return;
      if (Date.now() >= deadline) {
        throw new LockstepError('UNAVAILABLE', `the read model has not applied revision ${revision} for subject '${subject}' within ${timeoutMs} ms; retry, or ask for fully_consistent`, {
          field: 'consistency.revision',
          // `expose`: the detail names only the caller's own revision and subject, and tells the
          // caller what to do — it is returned, unlike the detail of other 5xx (api/problem.ts).
          meta: { revision, timeoutMs, expose: true, retryAfterSeconds: 1 },
        });
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  // Defined once, not per check: a check makes no closures.
  /** The statement's row as a check's evaluation: its revision and the permission's tier. */
  const evaluated = (q: CheckValues, row: CheckRow | undefined) => {
    // No row: no such organization, and the key's liveness unread — the server confirms the key
    // before it answers any error (docs/adr/0028-*). A row: the key was read in its snapshot.
    if (!row || row.revision === null) throw notFound('org', 'organization', q.org);
    if (q.key !== null && row.key_live === null) throw new KeyNotActiveError();
    const risk = tierOfRank(row.risk);
    if (risk === null) throw notFound('permission', 'permission', q.permission);
    return { row, risk, revision: Number(row.revision) };
  };
  const evaluate = async (statement: (q: CheckValues) => CompiledSql, q: CheckValues) => {
    const { text, params } = statement(q);
    return evaluated(q, await db.get<CheckRow>(text, params));
  };

  /** A check's answer, from the statements its consistency mode calls for. */
  async function decide(q: CheckValues, requested: ConsistencyMode | undefined, revision: unknown): Promise<CheckResult> {
    if (requested === 'fully_consistent') return answer(await evaluate(onSource, q), requested, true, true);
    if (requested === 'at_least_as_fresh') await waitFresh(q.org, q.subject, revision);
    // Batched or queued for the turn's end: the statement is sent after this call is queued, so
    // it reads a snapshot taken after this check started, as the lone one would (coalesce.ts).
    const fast = batched ? evaluated(q, await batched(q)) : inTurn ? evaluated(q, await inTurn(q)) : await evaluate(onReadModel, q);
    // Critical permissions are decided on the source unless the caller asked for something else.
    if (requested === undefined && fast.risk === 'critical') return answer(await evaluate(onSource, q), 'fully_consistent', true, true);
    return answer(fast, requested ?? 'minimize_latency', false, verifies(env.verify, fast.risk));
  }

  const checks = {
    async check(orgIn: string, req: CheckRequest, opts: CheckOptions = {}): Promise<CheckResult> {
      const org = parseOrgId(orgIn);
      const subject = parseSubjectId(req.subject);
      const permission = parsePermissionSlug(req.permission);
      const resource = parseResourceRef(req.resource);
      const requested = req.consistency?.mode;
      if (requested !== undefined && !CONSISTENCY_MODES.includes(requested)) {
        throw validation('consistency.mode', `consistency.mode must be one of ${CONSISTENCY_MODES.join(', ')}`);
      }
      const q: CheckValues = { org, resource, subject, permission, now: env.now(), key: opts.liveKey ?? null };
      const t0 = process.hrtime.bigint();
      const result = await decide(q, requested, req.consistency?.revision);
      env.metrics?.checkLatency.observe(
        { consistency: result.consistency, result: result.allowed ? 'allowed' : 'denied' },
        Number(process.hrtime.bigint() - t0) / 1e9,
      );
      return result;
    },

    /** What a subject can do: each (permission, resource) it holds, with the derivation. */
    async subjectEffective(orgIn: string, subjectIn: string, q: EffectiveQuery = {}): Promise<{ revision: number; permissions: EffectivePermission[]; next: string | null }> {
      const org = parseOrgId(orgIn);
      const subject = parseSubjectId(subjectIn, 'id');
      const permission = q.permission === undefined ? undefined : parsePermissionSlug(q.permission, 'permission');
      const onResource = q.resource === undefined ? undefined : parseResourceRef(q.resource, 'resource');
      const limit = pageLimit(q.limit);
      const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor, ['s', 's', 's']);
      const meta = await orgMeta(db, org);
      if (!(await db.get('SELECT 1 AS x FROM subjects WHERE org_id = $1 AND id = $2', [org, subject]))) throw notFound('id', 'subject', subject);
      const now = env.now();
      const rows = await db.all<ViaRow & { permission: PermissionSlug; risk: number }>(
        sql`WITH RECURSIVE ${memberGroups(org, subject, now)}
         SELECT rp.permission, p.risk, e.assignment_id, e.group_id, e.role, e.resource,
                CASE WHEN e.group_id IS NULL THEN NULL ELSE ${chainTo(sql`e.group_id`)} END AS chain
           FROM effective_assignments e
           JOIN role_permissions rp ON rp.org_id = e.org_id AND rp.role = e.role
           JOIN permissions p ON p.org_id = rp.org_id AND p.slug = rp.permission
          WHERE e.org_id = ${org} AND e.subject_id = ${subject} AND ${verifiedByTier(sql`p.risk`, flags, now)}
            ${permission === undefined ? sql.empty : sql`AND rp.permission = ${permission}`}
            ${onResource === undefined ? sql.empty : sql`AND e.resource = ${onResource}`}
            ${after === undefined ? sql.empty : sql`AND ${keyAfter([sql`e.resource`, sql`rp.permission`, sql`e.assignment_id`], after)}`}
          ORDER BY e.resource, rp.permission, e.assignment_id
          ${limit === undefined ? sql.empty : sql`LIMIT ${limit + 1}`}`,
      );
      const page = pageOf(rows, limit, (r) => [r.resource, r.permission, r.assignment_id]);
      return {
        revision: meta.revision,
        permissions: page.items.map((r) => ({ permission: r.permission, resource: r.resource, role: r.role, risk: tierOfRank(r.risk)!, via: toVia(r) })),
        next: page.next,
      };
    },

    /** The whole read model of an organization (tests, drift audit). */
    async readModel(orgIn: string): Promise<EffectiveRow[]> {
      const org = parseOrgId(orgIn);
      const rows = await db.all<{ subject_id: string; role: string; resource: string; assignment_id: string; group_id: string | null }>(
        `SELECT subject_id, role, resource, assignment_id, group_id FROM effective_assignments WHERE org_id = $1
          ORDER BY subject_id, assignment_id`,
        [org],
      );
      return rows.map((r) => ({ subject: r.subject_id, role: r.role, resource: r.resource, assignment: r.assignment_id, group: r.group_id }) as EffectiveRow);
    },

    /** Who can do P on R, through an assignment on R or any of its ancestors. */
    async resourceAccess(orgIn: string, resourceIn: string, permissionIn: string, q: AccessQuery = {}): Promise<{ revision: number; subjects: AccessEntry[]; next: string | null }> {
      const org = parseOrgId(orgIn);
      const resource = parseResourceRef(resourceIn);
      const permission = parsePermissionSlug(permissionIn);
      if (q.via !== undefined && q.via !== 'direct' && q.via !== 'group') throw validation('via', "via must be 'direct' or 'group'");
      const limit = pageLimit(q.limit);
      const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor, ['s', 'n', 's']);
      const meta = await orgMeta(db, org, permission);
      if (meta.risk === null) throw notFound('permission', 'permission', permission);
      if (!(await db.get('SELECT 1 AS x FROM resources WHERE org_id = $1 AND ref = $2', [org, resource]))) throw notFound('resource', 'resource', resource);
      // From the source of truth: the read model is keyed by subject, and a resource-keyed index on
      // it would slow every backfill (see migrations/001_core.sql); the source answer is exact.
      const now = env.now();
      // A page is a set of (subject, depth, assignment) keys — one entry each — with every row of each
      // key (a subject may reach one assignment through several groups: the shortest chain is kept).
      // An entry whose only paths are through expired nested edges is dropped after the page is cut,
      // so a page may hold fewer than `limit` entries; only `next: null` means the end.
      const via = q.via === undefined ? sql.empty : q.via === 'direct' ? sql`AND x.group_id IS NULL` : sql`AND x.group_id IS NOT NULL`;
      const keyed = sql`SELECT x.subject_id, x.assignment_id, x.group_id, x.role, x.resource, x.member_group, x.depth FROM (${desiredOnAncestors(org, now)}) x
         CROSS JOIN role_permissions rp
         WHERE rp.org_id = ${org} AND rp.role = x.role AND rp.permission = ${permission} ${via}`;
      const rows = await db.all<ViaRow & { subject_id: SubjectId; member_group: GroupId | null; depth: number }>(
        limit === undefined && after === undefined
          ? sql`WITH RECURSIVE ${ancestors(org, resource)} ${keyed} ORDER BY x.subject_id, x.depth, x.assignment_id`
          : sql`WITH RECURSIVE ${ancestors(org, resource)}, keyed AS (${keyed}),
               page AS (SELECT DISTINCT subject_id, depth, assignment_id FROM keyed
                         ${after === undefined ? sql.empty : sql`WHERE ${keyAfter([sql`subject_id`, sql`depth`, sql`assignment_id`], after)}`}
                         ORDER BY subject_id, depth, assignment_id ${limit === undefined ? sql.empty : sql`LIMIT ${limit + 1}`})
               SELECT k.* FROM keyed k CROSS JOIN page p
                WHERE k.subject_id = p.subject_id AND k.depth = p.depth AND k.assignment_id = p.assignment_id
                ORDER BY k.subject_id, k.depth, k.assignment_id`,
      );
      // The page's keys, cut to `limit` (rows come ordered by key, so each key's rows are adjacent):
      // the rows of an extra key only say that there is a next page.
      const firsts = rows.filter((r, i) => i === 0 || !sameKey(r, rows[i - 1]!));
      const cut = pageOf(firsts, limit, (r) => [r.subject_id, Number(r.depth), r.assignment_id]);
      const kept = cut.next === null ? rows : rows.slice(0, rows.indexOf(firsts[cut.items.length]!));
      // The query went through the closure, which knows no expiry: the nested part of each path is
      // proven here, on the live edges, and a subject reaching the group several ways is listed once.
      const chains = await chainFinder(db, org, now, kept.some((r) => r.member_group !== null && r.member_group !== r.group_id));
      const seen = new Set<string>();
      const subjects: AccessEntry[] = [];
      for (const r of kept) {
        const chain = r.group_id === null ? null : chains(r.member_group!, r.group_id);
        if (r.group_id !== null && chain === null) continue;
        const key = `${r.subject_id}|${r.assignment_id}`;
        if (seen.has(key)) continue;
        seen.add(key);
        subjects.push({ subject: r.subject_id, via: toVia({ ...r, chain }) });
      }
      // Shortest chain per (subject, assignment): a later row of the same pair may be shorter.
      return { revision: meta.revision, subjects: shortestFirst(kept, subjects, chains), next: cut.next };
    },

    /**
     * Which resources `subject` can do `permission` on (SpiceDB's LookupResources): the resources of
     * live assignments granting it — to the subject, or to a group it reaches by live memberships and
     * nested edges — and every resource below them. From the source tables, so exact at its revision;
     * only an active subject has any.
     */
    async lookupResources(orgIn: string, subjectIn: string, q: LookupQuery): Promise<{ revision: number; resources: ResourceRef[]; next: string | null }> {
      const org = parseOrgId(orgIn);
      const subject = parseSubjectId(subjectIn, 'id');
      const permission = parsePermissionSlug(q.permission, 'permission');
      const type = q.type === undefined ? undefined : parseResourceType(q.type);
      const limit = pageLimit(q.limit);
      const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor, ['s']);
      const meta = await orgMeta(db, org, permission);
      if (meta.risk === null) throw notFound('permission', 'permission', permission);
      const now = env.now();
      const rows = await db.all<{ ref: ResourceRef }>(sql`
        WITH RECURSIVE ${memberGroups(org, subject, now)},
        granted(ref) AS (
          SELECT a.resource FROM assignments a CROSS JOIN role_permissions rp
           WHERE a.org_id = ${org} AND ${liveAt('a', now)}
             AND ((a.principal_type = 'subject' AND a.principal_id = ${subject})
               OR (a.principal_type = 'group' AND a.principal_id IN (SELECT g FROM up)))
             AND rp.org_id = ${org} AND rp.role = a.role AND rp.permission = ${permission}
             AND EXISTS (SELECT 1 FROM subjects s WHERE s.org_id = ${org} AND s.id = ${subject} AND s.active = 1)),
        reach(ref, depth) AS (
          SELECT DISTINCT ref, 0 FROM granted
          UNION
          SELECT r.ref, reach.depth + 1 FROM reach JOIN resources r ON r.org_id = ${org} AND r.parent = reach.ref
           WHERE reach.depth < ${DEPTH_BOUND})
        SELECT DISTINCT ref FROM reach
         WHERE 1 = 1
           ${type === undefined ? sql.empty : sql`AND substr(ref, 1, ${type.length + 1}) = ${`${type}:`}`}
           ${after === undefined ? sql.empty : sql`AND ${keyAfter([sql`ref`], after)}`}
         ORDER BY ref ${limit === undefined ? sql.empty : sql`LIMIT ${limit + 1}`}`);
      const page = pageOf(rows, limit, (r) => [r.ref]);
      return { revision: meta.revision, resources: page.items.map((r) => r.ref), next: page.next };
    },
  };

  return {
    ...checks,

    /**
     * Up to MAX_BATCH checks in one snapshot: one revision for all. `at_least_as_fresh` waits for
     * every subject of the batch before the snapshot is taken. An item's error names its index.
     */
    async checkBatch(orgIn: string, req: CheckBatchRequest): Promise<CheckBatchResult> {
      const org = parseOrgId(orgIn);
      const items = req?.checks;
      if (!Array.isArray(items) || items.length === 0 || items.length > MAX_BATCH) {
        throw validation('checks', `checks must be an array of 1 to ${MAX_BATCH} checks`);
      }
      const subjects = items.map((c, i) => {
        try {
          parsePermissionSlug(c?.permission);
          parseResourceRef(c?.resource);
          return parseSubjectId(c?.subject);
        } catch (e) {
          throw ofItem(i, e);
        }
      });
      const consistency = req.consistency;
      if (consistency?.mode !== undefined && !CONSISTENCY_MODES.includes(consistency.mode)) {
        throw validation('consistency.mode', `consistency.mode must be one of ${CONSISTENCY_MODES.join(', ')}`);
      }
      await orgMeta(db, org);
      if (consistency?.mode === 'at_least_as_fresh') for (const s of new Set(subjects)) await waitFresh(org, s, consistency.revision);
      const snapshot = env.snapshot ?? ((fn) => fn(db));
      return snapshot(async (tx) => {
        const inner = tx === db ? checks : createChecks({ ...env, db: tx, snapshot: undefined, batch: undefined, turnQueue: undefined });
        const results: CheckResult[] = [];
        for (const [i, c] of items.entries()) {
          try {
            results.push(await inner.check(org, { subject: c.subject, permission: c.permission, resource: c.resource, ...(consistency ? { consistency } : {}) }));
          } catch (e) {
            throw ofItem(i, e);
          }
        }
        return { revision: results[0]!.revision, results };
      });
    },
  };
}

const RESOURCE_TYPE = /^[a-z][a-z0-9_]{0,63}$/;
function parseResourceType(v: unknown): string {
  if (typeof v !== 'string' || !RESOURCE_TYPE.test(v)) throw validation('type', `type must be a resource type of lower-case letters, digits or _, got ${JSON.stringify(v)?.slice(0, 80)}`);
  return v;
}

const sameKey = (a: { subject_id: string; depth: number; assignment_id: string }, b: { subject_id: string; depth: number; assignment_id: string }) =>
  a.subject_id === b.subject_id && Number(a.depth) === Number(b.depth) && a.assignment_id === b.assignment_id;

/**
 * Shortest live chains between groups, from the organization's edges (loaded only when some path
 * is nested): `find(from, to)` is the '/'-joined chain from `from` up to `to`, or null.
 */
async function chainFinder(db: Sql, org: OrgId, now: number, nested: boolean): Promise<(from: string, to: string) => string | null> {
  const parents = new Map<string, string[]>();
  if (nested) {
    for (const e of await loadGroupEdges(db, org)) {
      if (isLive(e.expires_at === null ? null : Number(e.expires_at), now)) parents.set(e.member_id, [...(parents.get(e.member_id) ?? []), e.group_id]);
    }
  }
  const memo = new Map<string, string | null>();
  return (from, to) => {
    const key = `${from}|${to}`;
    if (memo.has(key)) return memo.get(key)!;
    // breadth first: the first chain found is a shortest one
    const prev = new Map<string, string | null>([[from, null]]);
    let level = [from];
    let found = from === to;
    while (!found && level.length > 0) {
      const next: string[] = [];
      for (const g of level) {
        for (const p of parents.get(g) ?? []) {
          if (prev.has(p)) continue;
          prev.set(p, g);
          next.push(p);
          if (p === to) found = true;
        }
      }
      level = next;
    }
    let chain: string | null = null;
    if (found) {
      const path: string[] = [];
      for (let g: string | null = to; g !== null; g = prev.get(g) ?? null) path.unshift(g);
      chain = path.join('/');
    }
    memo.set(key, chain);
    return chain;
  };
}

/** Replaces each entry's chain by the shortest over all the rows of its (subject, assignment). */
function shortestFirst(
  rows: { subject_id: string; assignment_id: string; group_id: string | null; member_group: string | null }[],
  subjects: AccessEntry[],
  chains: (from: string, to: string) => string | null,
): AccessEntry[] {
  const best = new Map<string, string>();
  for (const r of rows) {
    if (r.group_id === null) continue;
    const c = chains(r.member_group!, r.group_id);
    const key = `${r.subject_id}|${r.assignment_id}`;
    const b = best.get(key);
    if (c !== null && (b === undefined || c.split('/').length < b.split('/').length)) best.set(key, c);
  }
  return subjects.map((e) => {
    const c = best.get(`${e.subject}|${e.via.assignment}`);
    return c === undefined ? e : { ...e, via: { ...e.via, chain: c.split('/') as GroupId[] } };
  });
}

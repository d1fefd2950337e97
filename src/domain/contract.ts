/**
 * The contract every layer shares: the engine's public surface (the write side — policy commands —
 * and the read side — checks, listings, receipts, jobs) and the shapes it answers with. Pure types:
 * the services in policy/, check/, propagation/ and audit/ implement slices of `Lockstep`, app.ts
 * composes them, and the HTTP API, the CLI and the tests drive it.
 */
import type {
  AssignmentId,
  ConsistencyMode,
  Direction,
  EffectiveRow,
  GroupId,
  OrgId,
  PermissionSlug,
  ResourceRef,
  RiskTier,
  RoleSlug,
  SubjectId,
  SubjectKind,
} from './model.ts';
import type { PageQuery } from './page.ts';
import type { PropagationPolicy } from './propagation.ts';

export type { PageQuery } from './page.ts';
/** `/effective`: a page, optionally only one permission or one resource. */
export interface EffectiveQuery extends PageQuery {
  permission?: string;
  resource?: string;
}
/** Who-can: a page, optionally only direct assignments or only through groups. */
export interface AccessQuery extends PageQuery {
  via?: 'direct' | 'group';
}
/** A group's members: a page, optionally only subjects or only nested groups. */
export interface MemberQuery extends PageQuery {
  kind?: 'subject' | 'group';
}
export interface GroupMember {
  member: string;
  expiresAt: string | null;
}

/** The closed set of job states (docs/semantics.md). */
export const JOB_STATES = ['pending', 'running', 'retrying', 'done', 'failed'] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface DriftReport {
  org: string;
  /** Drift: rows the policy derives that the read model lacks, and no unfinished job will write. */
  missing: number;
  /** Drift: rows the read model holds that the policy no longer derives, and no unfinished job will delete. */
  extra: number;
  /** Queued propagation, not drift: differing rows an unfinished job (pending/running/retrying) covers. */
  pending: { missing: number; extra: number; jobs: number };
  /** Up to `limit` drifting rows of each kind (pending rows are not listed). */
  rows: { missing: EffectiveRow[]; extra: EffectiveRow[] };
  checkedAt: string;
}

export interface ChangeQuery {
  direction?: Direction;
  /** ISO times bounding decided_at. */
  since?: string;
  until?: string;
  /** Cursor: only revisions below this one (pages go newest first). */
  before?: number;
  limit?: number;
}

export interface SloRow {
  direction: Direction;
  tier: RiskTier;
  count: number;
  pending: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** The figures include pending changes at their age so far: the true lags can only be larger. */
  lowerBound: boolean;
  /** The age of the oldest change still pending (null: none pending). */
  oldestPendingMs: number | null;
  sloMs: number | null;
  breaches: number;
}

export interface QueueStats {
  counts: Record<JobState, number>;
  oldestAgeMs: number;
}

/** Who made a write and under which request; recorded in the change log. */
export interface WriteContext {
  actor?: string;
  requestId?: string;
}

export interface Propagation {
  mode: 'sync' | 'async';
  status: 'effective' | 'pending';
  /** ISO time at which the read model reflected the change (sync: the commit). */
  effectiveAt?: string;
  /** Why a change the policy would apply inline was handed to a job. */
  reason?: 'inline_budget';
}

/**
 * Every policy write answers with the revision it committed (or, for a write that changed nothing,
 * the organization's current revision and `changed: false`).
 */
export interface WriteResult {
  revision: number;
  changed: boolean;
  propagation: Propagation;
}

export interface AssignmentResult extends WriteResult {
  id: AssignmentId;
  created: boolean;
}

export interface Via {
  assignment: AssignmentId;
  group: GroupId | null;
  role: RoleSlug;
  resource: ResourceRef;
  /** For a group row: the groups from the subject's own up to `group` (nested groups in between). */
  chain?: GroupId[];
}

export interface CheckRequest {
  subject: string;
  permission: string;
  resource: string;
  consistency?: { mode: ConsistencyMode; revision?: number };
}

/** How a check is answered, beyond what it asks. */
export interface CheckOptions {
  /**
   * The id of the API key the check is made with: the check answers only if that key is active
   * (not revoked) in the same snapshot the answer is read from, and throws KeyNotActiveError
   * otherwise — its own statement reads the key, so the server's check route needs no separate key
   * lookup for a key it has seen before (docs/adr/0028-*).
   */
  liveKey?: string;
}

/** Many checks answered at one revision: the batch's `consistency` applies to every item. */
export interface CheckBatchRequest {
  checks: readonly { subject: string; permission: string; resource: string }[];
  consistency?: { mode: ConsistencyMode; revision?: number };
}
export interface CheckBatchResult {
  /** The one revision every result was evaluated at. */
  revision: number;
  /** In the order of `checks`. */
  results: CheckResult[];
}
/** Which resources a subject can do a permission on (LookupResources). */
export interface LookupQuery extends PageQuery {
  permission: string;
  /** Only resources of this type. */
  type?: string;
}

export interface CheckResult {
  allowed: boolean;
  /** The organization revision the answer is at least as fresh as. */
  revision: number;
  evaluatedAgainst: 'read_model' | 'source';
  consistency: ConsistencyMode;
  /** Whether read-model candidates were verified against the source tables. */
  verified: boolean;
  via?: Via;
}

export interface EffectivePermission {
  permission: PermissionSlug;
  resource: ResourceRef;
  role: RoleSlug;
  risk: RiskTier;
  via: Via;
}

export interface AccessEntry {
  subject: SubjectId;
  via: Via;
}

/** A change's receipt: when it was decided, when it became effective, and against which SLO. */
export interface Change {
  revision: number;
  kind: string;
  direction: Direction;
  tier: RiskTier | null;
  mode: 'sync' | 'async';
  status: 'effective' | 'pending';
  actor: string | null;
  requestId: string | null;
  body: unknown;
  decidedAt: string;
  /** When the read model reflected it (= convergedAt; kept for v1 clients). */
  effectiveAt: string | null;
  /** When checks began answering as the change says: the commit, for a verified revocation. */
  enforcedAt: string | null;
  /** When the read model was applied (sync: the commit; async: the job's last batch). */
  convergedAt: string | null;
  convergenceLagMs: number | null;
  /** enforcedAt − decidedAt: what the SLO is measured on. */
  lagMs: number | null;
  sloMs: number | null;
  /** true: enforced within the SLO; false: late, or still pending past it; null: pending within it, or no SLO. */
  sloMet: boolean | null;
  rowsAdded: number;
  rowsRemoved: number;
  /** The reconciliation job that carried an asynchronous change. */
  job: { id: string; scope: string; state: string | null } | null;
}

export interface Organization {
  id: OrgId;
  name: string | null;
  revision: number;
}
export interface Subject {
  id: SubjectId;
  kind: SubjectKind;
  active: boolean;
}
export interface Assignment {
  id: AssignmentId;
  principal: string;
  role: RoleSlug;
  resource: ResourceRef;
  expiresAt: string | null;
}

export interface Lockstep {
  // — write side —
  putOrganization(org: string, body: { name?: string | null }, ctx?: WriteContext): Promise<WriteResult>;
  putPermission(org: string, slug: string, body: { risk: string }, ctx?: WriteContext): Promise<WriteResult>;
  putRole(org: string, slug: string, body: { permissions: readonly string[] }, ctx?: WriteContext): Promise<WriteResult>;
  putResource(org: string, type: string, id: string, body: { parent?: string | null }, ctx?: WriteContext): Promise<WriteResult>;
  deleteResource(org: string, type: string, id: string, ctx?: WriteContext): Promise<WriteResult>;
  putSubject(org: string, id: string, body: { kind: string; active?: boolean }, ctx?: WriteContext): Promise<WriteResult>;
  deleteSubject(org: string, id: string, ctx?: WriteContext): Promise<WriteResult>;
  putGroup(org: string, id: string, body: { name?: string | null }, ctx?: WriteContext): Promise<WriteResult>;
  deleteGroup(org: string, id: string, ctx?: WriteContext): Promise<WriteResult>;
  /** `member` is a subject id (`subject:ID` too) or `group:ID` for a nested group; `expiresAt` RFC 3339. */
  addMember(org: string, group: string, member: string, body?: { expiresAt?: string | null }, ctx?: WriteContext): Promise<WriteResult>;
  removeMember(org: string, group: string, member: string, ctx?: WriteContext): Promise<WriteResult>;
  /**
   * A group's members, subjects (`subject:ID`) and nested groups (`group:ID`), with their expiry,
   * ordered by member; `next` is the cursor of the following page (null: the last, or no limit).
   */
  listMembers(org: string, group: string, q?: MemberQuery): Promise<{ members: GroupMember[]; next: string | null }>;
  createAssignment(
    org: string,
    body: { principal: string; role: string; resource: string; expiresAt?: string | null },
    ctx?: WriteContext,
  ): Promise<AssignmentResult>;
  /**
   * The expiry job: removes every membership, nested edge and assignment whose expiry has passed,
   * one change-log entry each (`membership.expired`, `assignment.expired`). Returns how many.
   */
  expireDue(opts?: { limit?: number; org?: string }): Promise<number>;
  deleteAssignment(org: string, id: string, ctx?: WriteContext): Promise<WriteResult>;

  // — read side —
  check(org: string, req: CheckRequest, opts?: CheckOptions): Promise<CheckResult>;
  /** Up to MAX_BATCH checks in one snapshot of the database: every result is at the same revision. */
  checkBatch(org: string, req: CheckBatchRequest): Promise<CheckBatchResult>;
  /**
   * The resources (of `q.type`, if given) on which `subject` holds `q.permission` — through a
   * direct or group assignment (nested groups included) on the resource or any ancestor — from the
   * source tables, ordered by reference; paged when `q.limit` is given.
   */
  lookupResources(org: string, subject: string, q: LookupQuery): Promise<{ revision: number; resources: ResourceRef[]; next: string | null }>;
  /** Ordered by (resource, permission, assignment); paged when `q.limit` is given. */
  subjectEffective(org: string, subject: string, q?: EffectiveQuery): Promise<{ revision: number; permissions: EffectivePermission[]; next: string | null }>;
  /** Ordered by (subject, distance up the hierarchy, assignment); paged when `q.limit` is given. */
  resourceAccess(org: string, resource: string, permission: string, q?: AccessQuery): Promise<{ revision: number; subjects: AccessEntry[]; next: string | null }>;
  getChange(org: string, revision: number): Promise<Change>;
  /** Receipts newest first, filtered; `next` is the `before` cursor of the following page. */
  listChanges(org: string, q?: ChangeQuery): Promise<{ changes: Change[]; next: number | null }>;
  /** Per direction × tier over the last `windowSeconds`: count, pending, lag p50/p99/max, breaches. */
  sloReport(org: string, windowSeconds: number): Promise<{ from: string; to: string; windowSeconds: number; truncated: boolean; rows: SloRow[] }>;
  /** What the subject could do at `at` (ISO time), replayed from the change log. */
  subjectEffectiveAt(
    org: string,
    subject: string,
    at: string,
    q?: EffectiveQuery,
  ): Promise<{ revision: number; at: string; permissions: EffectivePermission[]; next: string | null }>;
  /** Who could do `permission` on `resource` at `at` (ISO time), replayed from the change log. */
  resourceAccessAt(
    org: string,
    resource: string,
    permission: string,
    at: string,
    q?: AccessQuery,
  ): Promise<{ revision: number; at: string; subjects: AccessEntry[]; next: string | null }>;
  getOrganization(org: string): Promise<Organization>;
  /** Organizations by id (all of them, or the one named: what an organization-scoped key may see). */
  listOrganizations(only?: string): Promise<Organization[]>;
  getSubject(org: string, id: string): Promise<Subject>;
  getAssignment(org: string, id: string): Promise<Assignment>;
  /** The whole read model of an organization (tests, drift audit). */
  readModel(org: string): Promise<EffectiveRow[]>;

  // — propagation —
  getPropagationPolicy(org: string): Promise<{ policy: PropagationPolicy; custom: boolean }>;
  /** Replaces the organization's policy; settings left out take the engine's default. */
  putPropagationPolicy(org: string, body: unknown, ctx?: WriteContext): Promise<WriteResult & { policy: PropagationPolicy }>;
  /** Jobs: running, retrying, pending, failed, then done; by priority, newest first; at most `limit` (100). */
  listJobs(opts?: { org?: string; states?: readonly JobState[]; limit?: number }): Promise<Job[]>;
  /**
   * The same listing a page at a time (`limit` 1…1000, `cursor` the previous page's `next`). A job
   * whose state changes between two pages may be listed twice or not at all: filter by one settled
   * state (`done`, `failed`) for a stable walk.
   */
  listJobsPage(opts?: { org?: string; states?: readonly JobState[]; limit?: number; cursor?: string }): Promise<{ jobs: Job[]; next: string | null }>;
  /** Puts a failed job back in the queue; it resumes at its checkpoint. */
  retryJob(id: string): Promise<Job>;
  /** Jobs per state and the age of the oldest unfinished one (the queue gauges). */
  queueStats(): Promise<QueueStats>;
  /** Compares the read model with the policy; `repair` enqueues a priority organization job. */
  auditDrift(org: string, opts?: { repair?: boolean; limit?: number }): Promise<DriftReport & { repairJob: string | null }>;

  /**
   * Runs `fn` with an engine whose every write joins one transaction: all of them commit, or none
   * (declarative `apply`). Each write still gets its own revision and change-log entry.
   */
  transaction<T>(fn: (ls: Lockstep) => Promise<T>): Promise<T>;

  close(): Promise<void>;
}

export interface Job {
  id: string;
  org: string;
  scope: string;
  state: JobState;
  direction: Direction;
  priority: number;
  targetRevision: number;
  checkpoint: string | null;
  progress: { done: number; total: number | null };
  batches: number;
  rowsAdded: number;
  rowsRemoved: number;
  attempts: number;
  claims: number;
  owner: string | null;
  leaseExpiresAt: string | null;
  runAt: string;
  lastError: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/**
 * The public surface of the core engine: the write side (policy commands) and the read side
 * (checks, listings, receipts). The HTTP API, the CLI and the tests all drive this interface.
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
  VerifyMode,
} from '../domain/model.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { PropagationPolicy } from '../domain/propagation.ts';
import type { JobState } from '../propagation/queue.ts';
import type { DriftReport } from '../propagation/drift.ts';
import type { ChangeQuery, SloRow } from '../audit/receipts.ts';

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
}

export interface CheckRequest {
  subject: string;
  permission: string;
  resource: string;
  consistency?: { mode: ConsistencyMode; revision?: number };
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
  effectiveAt: string | null;
  lagMs: number | null;
  sloMs: number | null;
  /** true: effective within the SLO; false: late, or still pending past it; null: pending within it, or no SLO. */
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
  addMember(org: string, group: string, subject: string, ctx?: WriteContext): Promise<WriteResult>;
  removeMember(org: string, group: string, subject: string, ctx?: WriteContext): Promise<WriteResult>;
  createAssignment(org: string, body: { principal: string; role: string; resource: string }, ctx?: WriteContext): Promise<AssignmentResult>;
  deleteAssignment(org: string, id: string, ctx?: WriteContext): Promise<WriteResult>;

  // — read side —
  check(org: string, req: CheckRequest): Promise<CheckResult>;
  subjectEffective(org: string, subject: string): Promise<{ revision: number; permissions: EffectivePermission[] }>;
  resourceAccess(org: string, resource: string, permission: string): Promise<{ revision: number; subjects: AccessEntry[] }>;
  getChange(org: string, revision: number): Promise<Change>;
  /** Receipts newest first, filtered; `next` is the `before` cursor of the following page. */
  listChanges(org: string, q?: ChangeQuery): Promise<{ changes: Change[]; next: number | null }>;
  /** Per direction × tier over the last `windowSeconds`: count, pending, lag p50/p99/max, breaches. */
  sloReport(org: string, windowSeconds: number): Promise<{ from: string; to: string; windowSeconds: number; truncated: boolean; rows: SloRow[] }>;
  /** What the subject could do at `at` (ISO time), replayed from the change log. */
  subjectEffectiveAt(org: string, subject: string, at: string): Promise<{ revision: number; at: string; permissions: EffectivePermission[] }>;
  /** Who could do `permission` on `resource` at `at` (ISO time), replayed from the change log. */
  resourceAccessAt(org: string, resource: string, permission: string, at: string): Promise<{ revision: number; at: string; subjects: AccessEntry[] }>;
  getOrganization(org: string): Promise<Organization>;
  getSubject(org: string, id: string): Promise<Subject>;
  getAssignment(org: string, id: string): Promise<Assignment>;
  /** The whole read model of an organization (tests, drift audit). */
  readModel(org: string): Promise<EffectiveRow[]>;

  // — propagation —
  getPropagationPolicy(org: string): Promise<{ policy: PropagationPolicy; custom: boolean }>;
  /** Replaces the organization's policy; settings left out take the engine's default. */
  putPropagationPolicy(org: string, body: unknown, ctx?: WriteContext): Promise<WriteResult & { policy: PropagationPolicy }>;
  listJobs(opts?: { org?: string; states?: readonly JobState[]; limit?: number }): Promise<Job[]>;
  /** Puts a failed job back in the queue; it resumes at its checkpoint. */
  retryJob(id: string): Promise<Job>;
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

export interface LockstepOptions {
  /** Which tiers get provenance verification on read-model checks. Default `always`. */
  verify?: VerifyMode;
  now?: () => number;
  newId?: () => string;
  metrics?: Metrics;
  /** Called after a commit that enqueued a reconciliation job (wakes an in-process worker). */
  onEnqueued?: () => void;
  /** The propagation policy of organizations that have not set their own (default: DESIGN.md's). */
  defaultPolicy?: PropagationPolicy;
  /** Group commit of concurrent writes to one organization on PostgreSQL (default on). */
  groupCommit?: boolean;
  /** How long an `at_least_as_fresh` check waits for the read model before answering UNAVAILABLE. */
  freshnessTimeoutMs?: number;
}

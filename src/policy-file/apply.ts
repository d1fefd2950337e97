/**
 * Applies a parsed policy file through the engine, in ONE transaction: every write commits or none
 * does. Each object is written with the engine's idempotent PUT-style commands, so applying the same
 * file twice changes nothing the second time (every write answers `changed: false`).
 *
 * v1 is additive: objects the file does not mention are left alone (no deletes, no membership
 * removals). What the file does say is authoritative for that object: a role's permission set, a
 * resource's parent, a subject's `active`, an organization's or group's name.
 *
 * A dry run applies everything in the same transaction and then rolls it back, so it reports exactly
 * what a real run would do, engine checks included.
 */
import { LockstepError } from '../domain/errors.ts';
import type { Lockstep, WriteContext, WriteResult } from '../domain/contract.ts';
import { formatPath, type Path, type Segment } from './path.ts';
import type { OrganizationSpec, PolicyFile } from './parse.ts';

export const OBJECT_KINDS = ['organizations', 'propagation', 'permissions', 'roles', 'resources', 'subjects', 'groups', 'memberships', 'assignments'] as const;
export type ObjectKind = (typeof OBJECT_KINDS)[number];

export interface KindCounts {
  created: number;
  updated: number;
  unchanged: number;
}

export interface OrganizationReport {
  id: string;
  /** The organization's revision after the apply (for a dry run: what it would be). */
  revision: number;
  counts: Record<ObjectKind, KindCounts>;
}

export interface ApplyReport {
  file: string;
  dryRun: boolean;
  writes: number;
  /** Writes that changed something. */
  changed: number;
  /**
   * Writes committed with propagation `pending` (asynchronous grants): their effect reaches the read
   * model when a worker runs the queued jobs; fully consistent checks see them at once.
   */
  pending: number;
  organizations: OrganizationReport[];
}

export interface ApplyOptions {
  dryRun?: boolean;
  ctx?: WriteContext;
  /** Called after every write. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Called after each organization's own write (create / rename), inside the transaction: throwing
   * rolls the whole apply back. The HTTP route refuses there what only an admin key may do.
   */
  onOrganization?: (org: OrganizationSpec, result: WriteResult) => void;
}

class Rollback extends Error {
  constructor(readonly report: ApplyReport) {
    super('dry run');
  }
}

/**
 * An engine error re-raised at the file location of the object being written. `field` maps the
 * engine's field (`permissions[2]`, `parent`, `subject`) to segments under that location.
 */
function located(e: unknown, file: PolicyFile, path: Path, field?: (engineField: string) => Segment[] | undefined): never {
  if (!(e instanceof LockstepError)) throw e;
  const sub = e.field === undefined ? undefined : field?.(e.field);
  const full = [...path, ...(sub ?? [])];
  const line = file.lineOf(full);
  throw new LockstepError(e.code, e.message, { field: formatPath(full), meta: { ...e.meta, file: file.source, line, engineField: e.field }, cause: e });
}

const emptyCounts = () =>
  Object.fromEntries(OBJECT_KINDS.map((k) => [k, { created: 0, updated: 0, unchanged: 0 }])) as Record<ObjectKind, KindCounts>;

async function applyOrganization(ls: Lockstep, file: PolicyFile, org: OrganizationSpec, opts: ApplyOptions, tick: (r: WriteResult) => void) {
  const counts = emptyCounts();
  let revision = 0;
  /** Runs one write, counts it as created / updated / unchanged, and re-locates its errors. */
  async function write(kind: ObjectKind, path: Path, run: () => Promise<WriteResult & { created?: boolean }>, field?: (f: string) => Segment[] | undefined) {
    let result: WriteResult & { created?: boolean };
    try {
      result = await run();
    } catch (e) {
      located(e, file, path, field);
    }
    revision = result.revision;
    let outcome: keyof KindCounts = 'unchanged';
    // An existing assignment or membership written with another expiry is an update.
    if (result.created !== undefined) outcome = result.created ? 'created' : result.changed ? 'updated' : 'unchanged';
    else if (result.changed && kind === 'memberships') outcome = (await ls.getChange(org.id, result.revision)).kind === 'membership.update' ? 'updated' : 'created';
    // The change log says whether a PUT created or updated its object.
    else if (result.changed) outcome = (await ls.getChange(org.id, result.revision)).kind.endsWith('.create') ? 'created' : 'updated';
    counts[kind][outcome]++;
    tick(result);
  }
  const ctx = opts.ctx;
  const index = (re: RegExp) => (f: string) => {
    const m = re.exec(f);
    return m ? [Number(m[1])] : undefined;
  };

  await write('organizations', org.path, async () => {
    const r = await ls.putOrganization(org.id, { name: org.name }, ctx);
    opts.onOrganization?.(org, r);
    return r;
  });
  // The policy first, so that the file's own writes propagate as it says.
  const policy = org.propagation;
  if (policy) await write('propagation', [...org.path, 'propagation'], () => ls.putPropagationPolicy(org.id, policy, ctx));
  for (const p of org.permissions) await write('permissions', p.path, () => ls.putPermission(org.id, p.slug, { risk: p.risk }, ctx));
  for (const r of org.roles) await write('roles', r.path, () => ls.putRole(org.id, r.slug, { permissions: r.permissions }, ctx), index(/^permissions\[(\d+)\]$/));
  for (const r of org.resources) await write('resources', r.path, () => ls.putResource(org.id, r.type, r.id, { parent: r.parent }, ctx));
  for (const s of org.subjects) {
    await write('subjects', s.path, () => ls.putSubject(org.id, s.id, { kind: s.kind, active: s.active }, ctx), (f) => (f === 'kind' ? ['kind'] : undefined));
  }
  for (const g of org.groups) await write('groups', g.path, () => ls.putGroup(org.id, g.id, { name: g.name }, ctx));
  for (const g of org.groups) {
    // Nested groups: every group of the file exists by now, so edges can go in any order; a cycle
    // with the store's edges is refused by the engine (GROUP_CYCLE) at the member's place.
    for (const m of g.members) {
      await write('memberships', m.path, () => ls.addMember(org.id, g.id, m.member, { expiresAt: m.expiresAt }, ctx), (f) => (f === 'expiresAt' ? ['expiresAt'] : undefined));
    }
  }
  for (const a of org.assignments) {
    await write('assignments', a.path, () => ls.createAssignment(org.id, { principal: a.principal, role: a.role, resource: a.resource, expiresAt: a.expiresAt }, ctx), (f) =>
      ['principal', 'role', 'resource', 'expiresAt'].includes(f) ? [f] : undefined,
    );
  }
  return { id: org.id, revision, counts };
}

export async function applyPolicyFile(lockstep: Lockstep, file: PolicyFile, opts: ApplyOptions = {}): Promise<ApplyReport> {
  let done = 0;
  let changed = 0;
  let pending = 0;
  const tick = (r: WriteResult) => {
    done++;
    if (r.changed) changed++;
    if (r.changed && r.propagation.status === 'pending') pending++;
    opts.onProgress?.(done, file.writes);
  };
  try {
    return await lockstep.transaction(async (ls) => {
      const organizations: OrganizationReport[] = [];
      for (const org of file.organizations) organizations.push(await applyOrganization(ls, file, org, opts, tick));
      const report: ApplyReport = { file: file.source, dryRun: opts.dryRun === true, writes: done, changed, pending, organizations };
      if (opts.dryRun) throw new Rollback(report);
      return report;
    });
  } catch (e) {
    if (e instanceof Rollback) return e.report;
    throw e;
  }
}

/**
 * Crash test with real processes (PostgreSQL): a worker process (test/helpers/worker-process.ts)
 * reconciling a large group is killed with SIGKILL mid-job, three times; a fresh process finishes the
 * job. Afterwards the read model equals the oracle and the drift audit is clean, and the batch log
 * proves the work was resumed at the checkpoint, not restarted: one job, several owners, claims > 1,
 * strictly ascending non-overlapping subject ranges that cover every subject exactly once.
 *
 * Two jobs: the revocation of a 2,000-member group holding 10 assignments (20,000 rows; over the
 * inline budget, so a priority job while checks deny at once), then an asynchronous assignment
 * create on a 2,000-member group (a grant job).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { effectiveKey, parsePrincipal, type ResourceRef, type RoleSlug } from '../../src/domain/model.ts';
import { applyCommand, createOracleState, effectiveRows, type Command, type OracleState } from '../../src/domain/oracle.ts';
import { callEngine, sortedKeys } from '../helpers/oracle-commands.ts';
import { describePostgres, freshPostgres, killAllWorkers, spawnWorker, stopWorker, type BatchRow, type FreshDb } from './support.ts';

const ORG = 'crash';
const MEMBERS = 2000;
const ASSIGNMENTS = 10;
const LEASE_MS = 1500;
const sid = (i: number) => `u${String(i).padStart(5, '0')}`;

describePostgres('a worker killed mid-job resumes at its checkpoint', () => {
  let f: FreshDb;
  let ls: Lockstep;
  const state: OracleState = createOracleState();

  /** Applies writes to the engine (in one transaction) and to the oracle, with the engine's ids. */
  async function apply(cmds: Command[]) {
    const results = await ls.transaction(async (tx) => {
      const out: Awaited<ReturnType<typeof callEngine>>[] = [];
      for (const c of cmds) out.push(await callEngine(tx, c));
      return out;
    });
    cmds.forEach((c, i) => {
      const r = results[i]!;
      const id: string = 'id' in r ? r.id : 'none';
      if (mirrorFast(c, id)) return;
      const o = applyCommand(state, c, id);
      expect(o.ok, JSON.stringify(c)).toBe(true);
    });
    return results;
  }

  /**
   * The oracle's applyCommand clones the organization and recomputes its rows on every write, which
   * is quadratic over thousands of bulk writes; these three (valid by construction) update its state
   * directly. The assertions still use the oracle's own evaluator (effectiveRows).
   */
  function mirrorFast(c: Command, id: string): boolean {
    const o = state.orgs.get(c.org);
    if (!o) return false;
    if (c.kind === 'putSubject' && !o.subjects.has(c.id)) {
      o.subjects.set(c.id, { kind: c.subjectKind as 'user', active: c.active ?? true });
      return true;
    }
    if (c.kind === 'addMember' && o.groups.has(c.group) && o.subjects.has(c.subject)) {
      if (!o.members.has(c.group)) o.members.set(c.group, new Set());
      o.members.get(c.group)!.add(c.subject);
      return true;
    }
    if (c.kind === 'createAssignment') {
      o.assignments.set(id, { principal: parsePrincipal(c.principal), role: c.role as RoleSlug, resource: c.resource as ResourceRef });
      return true;
    }
    return false;
  }

  beforeAll(async () => {
    f = await freshPostgres();
    ls = createLockstep(f.db);
    const cmds: Command[] = [
      { kind: 'putOrganization', org: ORG },
      { kind: 'putPermission', org: ORG, slug: 'doc.read', risk: 'standard' },
      { kind: 'putRole', org: ORG, slug: 'viewer', permissions: ['doc.read'] },
      ...Array.from({ length: ASSIGNMENTS }, (_, i): Command => ({ kind: 'putResource', org: ORG, type: 'doc', id: String(i), parent: null })),
      ...Array.from({ length: MEMBERS }, (_, i): Command => ({ kind: 'putSubject', org: ORG, id: sid(i), subjectKind: 'user' })),
      { kind: 'putGroup', org: ORG, id: 'big' },
      { kind: 'putGroup', org: ORG, id: 'small' },
      ...Array.from({ length: MEMBERS }, (_, i): Command => ({ kind: 'addMember', org: ORG, group: 'big', subject: sid(i) })),
      ...Array.from({ length: 100 }, (_, i): Command => ({ kind: 'addMember', org: ORG, group: 'small', subject: sid(i * 20) })),
    ];
    await apply(cmds.slice(0, 1));
    // Setup grants propagate inline (2,000 rows each, within the inline budget).
    await ls.putPropagationPolicy(ORG, { grant: { standard: { mode: 'sync' } } });
    await apply(cmds.slice(1));
    await apply([
      ...Array.from({ length: ASSIGNMENTS }, (_, i): Command => ({ kind: 'createAssignment', org: ORG, principal: 'group:big', role: 'viewer', resource: `doc:${i}` })),
      { kind: 'createAssignment', org: ORG, principal: 'group:small', role: 'viewer', resource: 'doc:0' },
      { kind: 'createAssignment', org: ORG, principal: `subject:${sid(7)}`, role: 'viewer', resource: 'doc:1' },
    ]);
    const n = await f.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM effective_assignments WHERE org_id = $1', [ORG]);
    expect(Number(n!.n)).toBe(MEMBERS * ASSIGNMENTS + 100 + 1);
  }, 120_000);

  afterAll(async () => {
    await killAllWorkers();
    await f?.close();
  });

  /**
   * Three worker processes are SIGKILLed after committing a few batches of `jobId` each; a fourth
   * finishes it. Returns the job's batch log.
   */
  async function killThreeTimesThenFinish(jobId: string, batchSize: number, batchesBeforeKill: number) {
    const killed: string[] = [];
    for (let k = 0; k < 3; k++) {
      const w = spawnWorker(f.schema, { batchSize, leaseMs: LEASE_MS, pollMs: 50 });
      let seen = 0;
      await w.waitFor((e) => e.type === 'batch' && e.job === jobId && ++seen >= batchesBeforeKill, 60_000);
      process.kill(w.pid, 'SIGKILL');
      const { signal } = await w.exited;
      expect(signal).toBe('SIGKILL');
      killed.push(w.events.find((e) => e.type === 'ready')!.owner);
      const [job] = (await ls.listJobs({ org: ORG, limit: 100 })).filter((j) => j.id === jobId);
      // killed holding it: still running under the dead owner's lease, checkpoint part-way
      expect(job, `job after kill ${k + 1}`).toMatchObject({ state: 'running', owner: killed[k] });
      expect(job!.checkpoint).not.toBeNull();
      expect(job!.progress.done).toBeLessThan(MEMBERS);
    }
    const last = spawnWorker(f.schema, { batchSize, leaseMs: LEASE_MS, pollMs: 50 });
    await last.waitFor((e) => e.type === 'done' && e.job === jobId, 90_000);
    await stopWorker(last);
    expect(last.events.filter((e) => e.type === 'failed')).toEqual([]);

    const job = (await ls.listJobs({ org: ORG, limit: 100 })).find((j) => j.id === jobId)!;
    expect(job.state).toBe('done');
    expect(job.claims).toBeGreaterThan(1);
    expect(job.claims).toBeGreaterThanOrEqual(4); // 3 killed owners + the finisher (+ a re-claim if a heartbeat ever ran late)
    const batches = (await f.db.all<BatchRow>('SELECT * FROM job_batches WHERE job_id = $1 ORDER BY seq', [jobId])).map((b) => ({ ...b, seq: Number(b.seq), members: Number(b.members) }));
    expect(batches.map((b) => b.seq)).toEqual(batches.map((_, i) => i + 1));
    expect(batches.length).toBe(job.batches);
    // resumed, not restarted: ranges strictly ascending and disjoint, each subject once
    for (let i = 1; i < batches.length; i++) expect(batches[i - 1]!.last_subject < batches[i]!.first_subject, `batch ${i + 1} starts after batch ${i}`).toBe(true);
    expect(batches.reduce((n, b) => n + b.members, 0)).toBe(MEMBERS);
    expect(job.progress.done).toBe(MEMBERS);
    const owners = [...new Set(batches.map((b) => b.owner))];
    expect(owners.length).toBeGreaterThan(1);
    expect(owners).toEqual([...killed, last.events[0]!.owner]); // in commit order: each took over where the last stopped
    // each killed owner's batches form one contiguous run that the next owner continues
    for (const o of owners) {
      const seqs = batches.filter((b) => b.owner === o).map((b) => b.seq);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
    }
    return { job, batches };
  }

  async function expectEqualsOracle() {
    const rm = await ls.readModel(ORG);
    expect(new Set(rm.map(effectiveKey)).size).toBe(rm.length);
    expect(sortedKeys(rm)).toEqual(sortedKeys(effectiveRows(state, ORG)));
    const drift = await ls.auditDrift(ORG, { limit: 5 });
    expect({ missing: drift.missing, extra: drift.extra }).toEqual({ missing: 0, extra: 0 });
  }

  it('revokes a 2,000 × 10 group (20,000 rows, over the inline budget) through a job that survives three SIGKILLs', { timeout: 120_000 }, async () => {
    const [r] = await apply([{ kind: 'deleteGroup', org: ORG, id: 'big' }]);
    expect(r!.propagation).toEqual({ mode: 'async', status: 'pending', reason: 'inline_budget' });
    const [job] = await ls.listJobs({ org: ORG, states: ['pending'] });
    expect(job).toMatchObject({ scope: 'group:big', direction: 'revoke', priority: 0 });
    // enforceable at commit: the rows are still there, the checks deny
    expect(Number((await f.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM effective_assignments WHERE org_id = $1 AND group_id = 'big'", [ORG]))!.n)).toBe(MEMBERS * ASSIGNMENTS);
    for (const i of [1, 999, 1999]) {
      const c = await ls.check(ORG, { subject: sid(i), permission: 'doc.read', resource: 'doc:3', consistency: { mode: 'minimize_latency' } });
      expect(c.allowed, sid(i)).toBe(false);
    }

    const { batches } = await killThreeTimesThenFinish(job!.id, 50, 2);
    expect(batches.reduce((n, b) => n + Number(b.rows_removed), 0)).toBe(MEMBERS * ASSIGNMENTS);
    expect(batches.reduce((n, b) => n + Number(b.rows_added), 0)).toBe(0);
    const change = await ls.getChange(ORG, r!.revision);
    expect(change.effectiveAt).not.toBeNull();
    expect(change.rowsRemoved).toBe(MEMBERS * ASSIGNMENTS);
    await expectEqualsOracle();
    // the small group and the direct assignment survive
    expect((await ls.check(ORG, { subject: sid(20), permission: 'doc.read', resource: 'doc:0' })).allowed).toBe(true);
    expect((await ls.check(ORG, { subject: sid(7), permission: 'doc.read', resource: 'doc:1' })).allowed).toBe(true);
  });

  it('grants an assignment to a 2,000-member group through a job that survives three SIGKILLs', { timeout: 120_000 }, async () => {
    await ls.putPropagationPolicy(ORG, { grant: { standard: { mode: 'async' } } });
    await apply([
      { kind: 'putGroup', org: ORG, id: 'big' },
      ...Array.from({ length: MEMBERS }, (_, i): Command => ({ kind: 'addMember', org: ORG, group: 'big', subject: sid(i) })),
    ]);
    const [r] = await apply([{ kind: 'createAssignment', org: ORG, principal: 'group:big', role: 'viewer', resource: 'doc:2' }]);
    expect(r!.propagation).toEqual({ mode: 'async', status: 'pending' });
    const [job] = await ls.listJobs({ org: ORG, states: ['pending'] });
    expect(job).toMatchObject({ direction: 'grant', priority: 1 });
    expect(job!.scope.startsWith(`assignment:${'id' in r! ? r.id : ''}`)).toBe(true);

    const { batches } = await killThreeTimesThenFinish(job!.id, 20, 3);
    expect(batches.reduce((n, b) => n + Number(b.rows_added), 0)).toBe(MEMBERS);
    expect((await ls.getChange(ORG, r!.revision)).effectiveAt).not.toBeNull();
    await expectEqualsOracle();
    expect((await ls.check(ORG, { subject: sid(1234), permission: 'doc.read', resource: 'doc:2' })).allowed).toBe(true);
  });
});

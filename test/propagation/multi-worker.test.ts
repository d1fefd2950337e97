/**
 * Several worker processes sharing one PostgreSQL queue (issue 4): four `worker-process.ts` children
 * reconcile ~100 jobs over 40 groups — group assignments created and then, while their jobs run,
 * deleted again (a second job on the same scope), memberships removed and added. Each child logs its
 * claim / batch / done events as JSON lines.
 *
 * Asserted: every job is done and was completed exactly once (one `done` event across all logs, its
 * batches walking ascending disjoint subject ranges); no two owners ever held one key at once — for
 * each scope, the [started_at, committed_at] intervals of batches by different owners never overlap,
 * nor do the [started_at, finished_at] intervals of its jobs; the work was shared; the read model
 * equals the oracle and the drift audit is clean.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { effectiveKey } from '../../src/domain/model.ts';
import { applyCommand, createOracleState, effectiveRows, type Command } from '../../src/domain/oracle.ts';
import { callEngine, sortedKeys } from '../helpers/oracle-commands.ts';
import { describePostgres, freshPostgres, killAllWorkers, sleep, spawnWorker, stopWorker, type BatchRow, type FreshDb, type WorkerProc } from './support.ts';

const ORG = 'mw';
const GROUPS = 40;
const SUBJECTS = 200;
const sid = (i: number) => `u${String(i).padStart(4, '0')}`;

describePostgres('several worker processes share the queue', () => {
  let f: FreshDb;
  let ls: Lockstep;
  const workers: WorkerProc[] = [];
  const state = createOracleState();

  async function apply(cmds: Command[], inOneTransaction = true) {
    const results = inOneTransaction
      ? await ls.transaction(async (tx) => {
          const out: Awaited<ReturnType<typeof callEngine>>[] = [];
          for (const c of cmds) out.push(await callEngine(tx, c));
          return out;
        })
      : await Promise.all(cmds.map((c) => callEngine(ls, c)));
    return results.map((r, i) => {
      const o = applyCommand(state, cmds[i]!, 'id' in r ? r.id : 'none');
      expect(o.ok, JSON.stringify(cmds[i])).toBe(true);
      return r;
    });
  }

  beforeAll(async () => {
    f = await freshPostgres();
    ls = createLockstep(f.db);
    await apply([{ kind: 'putOrganization', org: ORG }]);
    // every change goes through a job
    await ls.putPropagationPolicy(ORG, {
      grant: { standard: { mode: 'async' }, high: { mode: 'async' }, critical: { mode: 'async' } },
      revoke: { standard: { mode: 'async' }, high: { mode: 'async' }, critical: { mode: 'async' } },
    });
    await apply([
      { kind: 'putPermission', org: ORG, slug: 'doc.read', risk: 'standard' },
      { kind: 'putRole', org: ORG, slug: 'viewer', permissions: ['doc.read'] },
      ...Array.from({ length: GROUPS }, (_, i): Command => ({ kind: 'putResource', org: ORG, type: 'doc', id: String(i), parent: null })),
      ...Array.from({ length: SUBJECTS }, (_, i): Command => ({ kind: 'putSubject', org: ORG, id: sid(i), subjectKind: 'user' })),
      ...Array.from({ length: GROUPS }, (_, g): Command => ({ kind: 'putGroup', org: ORG, id: `g${g}` })),
      // each subject in two groups: 10 members per group
      ...Array.from({ length: SUBJECTS }, (_, i): Command[] => [
        { kind: 'addMember', org: ORG, group: `g${i % GROUPS}`, subject: sid(i) },
        { kind: 'addMember', org: ORG, group: `g${(i * 7 + 3) % GROUPS}`, subject: sid(i) },
      ]).flat(),
    ]);
  }, 60_000);

  afterAll(async () => {
    await killAllWorkers();
    await f?.close();
  });

  it('completes every job exactly once, one owner per key at a time', { timeout: 120_000 }, async () => {
    for (let i = 0; i < 4; i++) workers.push(spawnWorker(f.schema, { batchSize: 3, leaseMs: 1500, pollMs: 30 }));
    await Promise.all(workers.map((w) => w.waitFor((e) => e.type === 'ready')));

    // 40 grant jobs, one per group assignment…
    const created = await apply(
      Array.from({ length: GROUPS }, (_, g): Command => ({ kind: 'createAssignment', org: ORG, principal: `group:g${g}`, role: 'viewer', resource: `doc:${g}` })),
      false,
    );
    for (const r of created) expect(r.propagation.status).toBe('pending');
    // …then, while they run: half of them revoked again — those whose job is already claimed, so the
    // revocation is a second job on the same scope, waiting for the first — and memberships removed
    // and added (subject jobs), concurrently
    const ids = created.map((r) => ('id' in r ? r.id : ''));
    let claimedIds: string[] = [];
    for (let i = 0; claimedIds.length < GROUPS / 2; i++) {
      expect(i, 'workers claim the grant jobs').toBeLessThan(2000);
      const started = (await ls.listJobs({ org: ORG, states: ['running', 'done'], limit: 1000 })).map((j) => j.scope);
      claimedIds = ids.filter((id) => started.some((scope) => scope.startsWith(`assignment:${id}|`) || scope === `assignment:${id}`));
      await sleep(5);
    }
    await apply(claimedIds.slice(0, GROUPS / 2).map((id): Command => ({ kind: 'deleteAssignment', org: ORG, id })), false);
    await apply(Array.from({ length: 20 }, (_, k): Command => ({ kind: 'removeMember', org: ORG, group: `g${(k * 3) % GROUPS}`, subject: sid((k * 3) % GROUPS) })), false);
    await apply(Array.from({ length: 20 }, (_, k): Command => ({ kind: 'addMember', org: ORG, group: `g${(k * 5 + 1) % GROUPS}`, subject: sid(100 + k) })), false);

    const deadline = Date.now() + 90_000;
    for (;;) {
      const open = await ls.listJobs({ org: ORG, states: ['pending', 'running', 'retrying', 'failed'], limit: 1000 });
      if (open.length === 0) break;
      expect(open.filter((j) => j.state === 'failed')).toEqual([]);
      if (Date.now() > deadline) throw new Error(`jobs still open: ${JSON.stringify(open.slice(0, 5))}`);
      await sleep(50);
    }
    await Promise.all(workers.map((w) => stopWorker(w)));
    const events = workers.flatMap((w) => w.events);
    expect(events.filter((e) => e.type === 'failed')).toEqual([]);

    const jobs = await ls.listJobs({ org: ORG, limit: 1000 });
    const scopes = new Set(jobs.map((j) => j.scope)).size;
    expect(scopes).toBeGreaterThan(GROUPS); // the assignments' scopes, and subject scopes (membership changes that touch rows)
    expect(jobs.length - scopes).toBe(GROUPS / 2); // each of the 20 revocations: a second job on its assignment's scope
    const batches = (await f.db.all<BatchRow>('SELECT b.* FROM job_batches b JOIN jobs j ON j.id = b.job_id WHERE j.org_id = $1 ORDER BY b.job_id, b.seq', [ORG])).map((b) => ({
      ...b,
      seq: Number(b.seq),
      members: Number(b.members),
      started_at: Number(b.started_at),
      committed_at: Number(b.committed_at),
    }));
    for (const j of jobs) {
      expect(j.state, j.id).toBe('done');
      // completed exactly once
      expect(events.filter((e) => e.type === 'done' && e.job === j.id).length, `done events of ${j.id}`).toBe(1);
      const mine = batches.filter((b) => b.job_id === j.id);
      expect(mine.map((b) => b.seq)).toEqual(mine.map((_, i) => i + 1));
      for (let i = 1; i < mine.length; i++) expect(mine[i - 1]!.last_subject < mine[i]!.first_subject, `${j.id} batch ${i + 1}`).toBe(true);
      expect(mine.reduce((n, b) => n + b.members, 0)).toBe(j.progress.done);
    }

    // one owner per key at a time
    const scopeOf = new Map(jobs.map((j) => [j.id, j.scope]));
    const byScope = new Map<string, typeof batches>();
    for (const b of batches) {
      const s = scopeOf.get(b.job_id)!;
      byScope.set(s, [...(byScope.get(s) ?? []), b]);
    }
    let compared = 0;
    for (const [scope, bs] of byScope) {
      for (const a of bs) {
        for (const b of bs) {
          if (a === b || a.owner === b.owner) continue;
          compared++;
          const overlap = a.started_at < b.committed_at && b.started_at < a.committed_at;
          expect(overlap, `${scope}: ${a.owner} [${a.started_at}, ${a.committed_at}] vs ${b.owner} [${b.started_at}, ${b.committed_at}]`).toBe(false);
        }
      }
    }
    const raw = await f.db.all<{ id: string; scope: string; started_at: number; finished_at: number }>('SELECT id, scope, started_at, finished_at FROM jobs WHERE org_id = $1', [ORG]);
    for (const a of raw) {
      for (const b of raw) {
        if (a.id >= b.id || a.scope !== b.scope) continue;
        compared++;
        const overlap = Number(a.started_at) < Number(b.finished_at) && Number(b.started_at) < Number(a.finished_at);
        expect(overlap, `${a.scope}: jobs ${a.id} and ${b.id} ran at once`).toBe(false);
      }
    }
    expect(compared).toBeGreaterThan(0);
    const owners = new Set(batches.map((b) => b.owner));
    expect(owners.size, 'the work was shared between processes').toBeGreaterThan(1);

    const rm = await ls.readModel(ORG);
    expect(new Set(rm.map(effectiveKey)).size).toBe(rm.length);
    expect(sortedKeys(rm)).toEqual(sortedKeys(effectiveRows(state, ORG)));
    const drift = await ls.auditDrift(ORG, { limit: 5 });
    expect({ missing: drift.missing, extra: drift.extra }).toEqual({ missing: 0, extra: 0 });
    const { revision } = await ls.getOrganization(ORG);
    const pending = await f.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM changes WHERE org_id = $1 AND revision <= $2 AND effective_at IS NULL', [ORG, revision]);
    expect(Number(pending!.n)).toBe(0);
  });
});

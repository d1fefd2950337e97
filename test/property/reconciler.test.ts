/**
 * Model-based property test of asynchronous propagation (issue 4, "Tests that must exist"): random
 * interleavings of policy writes under a random per-organization propagation policy (sync/async per
 * direction × tier, sometimes a tiny inline budget), worker steps (claim a job, run one batch, run a
 * job to completion, heartbeat), crashes (a worker abandons its claimed job without releasing it and
 * the injected clock moves past the lease, so another worker takes over at the checkpoint), injected
 * batch failures (retry with backoff, parked as failed, retried by hand) and clock ticks; nested
 * groups (chains, a diamond, refused cycles) and time-bound writes whose expiry the ticks carry the
 * clock across, with the expiry job run at random steps (and until nothing is due before comparing).
 * The oracle is asked at the injected clock: an expired item derives nothing from its instant,
 * whether or not the expiry job has run yet. An `edge-crash` step toggles a nested edge with its
 * fan-out queued (inline budget 0) and crashes a worker after one batch, so that crashes holding a
 * nested edge's `subtree:` job come up in every run of the file; after the runs, counters assert
 * that expiries crossed (with jobs open, with nested edges), that checks ran between an instant and
 * the expiry job, and that workers crashed holding subtree jobs.
 *
 * After EVERY step, with verification `always`:
 *  - no `minimize_latency` check allows what the oracle (src/domain/oracle.ts) denies — random probes
 *    plus probes aimed at every stale read-model row (what a pending revocation left behind);
 *  - `fully_consistent` checks equal the oracle exactly;
 *  - the read model holds no duplicate derivations.
 * After draining the queue: the read model equals the oracle's rows exactly (multiset, natural keys),
 * every job of the organization is `done`, every batch log walks ascending non-overlapping ranges
 * (resumed, never restarted), every change has `effectiveAt`, and the drift audit is clean.
 *
 * One database per engine; a fresh organization per run. The clock is injected and only moves
 * forward, across runs too. LOCKSTEP_RECONCILER_RUNS overrides the run count, LOCKSTEP_PROPERTY_SEED
 * replays a seed, LOCKSTEP_PROPERTY_EXAMPLE=FILE replays a counterexample (the JSON array fast-check
 * prints), LOCKSTEP_PROPERTY_LOG=N prints the last N log lines of a failure (default 60),
 * LOCKSTEP_PROPERTY_STATS=1 prints coverage counters.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { effectiveKey, type EffectiveRow } from '../../src/domain/model.ts';
import { applyCommand, createOracleState, dueExpiries, effectiveRows, oracleCheck, type Command, type OracleState } from '../../src/domain/oracle.ts';
import { claimJobs, failJobs, heartbeat, LeaseLost, type JobRow, type RetryPolicy } from '../../src/propagation/queue.ts';
import { runBatch } from '../../src/propagation/reconcile.ts';
import { createWorker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { attempt, callEngine, GROUPS, NESTED, naturalKey, PERMS, policyArb, RESOURCES, ROLES, SUBJECTS, sortedKeys, worldArb, writeArb } from '../helpers/oracle-commands.ts';

const RUNS = Number(process.env.LOCKSTEP_RECONCILER_RUNS ?? 0);
const SEED = process.env.LOCKSTEP_PROPERTY_SEED ? Number(process.env.LOCKSTEP_PROPERTY_SEED) : undefined;

const LEASE_MS = 1000;
const RETRY: RetryPolicy = { maxAttempts: 3, baseMs: 50, maxMs: 400 };
const WORKERS = 3;

/** The injected clock shared by the engine and every worker; it only moves forward. */
let clock = Date.UTC(2030, 0, 1);
const now = () => clock;

interface Probe {
  subject: string;
  permission: string;
  resource: string;
  pick: number;
}
const probeArb: fc.Arbitrary<Probe> = fc.record({
  subject: fc.constantFrom(...SUBJECTS),
  permission: fc.constantFrom(...PERMS),
  resource: fc.constantFrom(...RESOURCES),
  pick: fc.nat(1000),
});

type Step =
  | { t: 'write'; cmd: Command }
  /** A write until `inMs` from the clock at the time it runs. */
  | { t: 'expiring'; cmd: Command; inMs: number }
  | { t: 'expire' }
  | { t: 'policy'; policy: unknown }
  | { t: 'claim' | 'batch' | 'complete' | 'crash' | 'fail' | 'beat'; w: number }
  | { t: 'tick'; ms: number }
  /**
   * A nested edge toggled (added if absent, removed if present) under an inline budget of 0, so its
   * fan-out goes to a `subtree:` job; then worker `w` claims, runs one batch and crashes.
   */
  | { t: 'edge-crash'; edge: [string, string]; w: number };

const w = fc.integer({ min: 0, max: WORKERS - 1 });
const expiringArb: fc.Arbitrary<Step> = fc
  .tuple(
    fc.oneof(
      fc.record({ kind: fc.constant('addMember' as const), org: fc.constant('A'), group: fc.constantFrom(...GROUPS), subject: fc.constantFrom(...SUBJECTS) }),
      fc.constantFrom(...NESTED).map(([group, member]): Command => ({ kind: 'addGroupMember', org: 'A', group, member })),
      fc.record({
        kind: fc.constant('createAssignment' as const),
        org: fc.constant('A'),
        principal: fc.oneof(fc.constantFrom(...SUBJECTS).map((x) => `subject:${x}`), fc.constantFrom(...GROUPS).map((x) => `group:${x}`)),
        role: fc.constantFrom(...ROLES),
        resource: fc.constantFrom(...RESOURCES),
      }),
    ),
    fc.integer({ min: 1, max: 1500 }),
  )
  .map(([cmd, inMs]): Step => ({ t: 'expiring', cmd, inMs }));
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: writeArb.map((cmd): Step => ({ t: 'write', cmd })) },
  { weight: 3, arbitrary: expiringArb },
  { weight: 2, arbitrary: fc.constant<Step>({ t: 'expire' }) },
  { weight: 1, arbitrary: policyArb.map((policy): Step => ({ t: 'policy', policy })) },
  { weight: 4, arbitrary: w.map((w): Step => ({ t: 'claim', w })) },
  { weight: 6, arbitrary: w.map((w): Step => ({ t: 'batch', w })) },
  { weight: 2, arbitrary: w.map((w): Step => ({ t: 'complete', w })) },
  { weight: 3, arbitrary: w.map((w): Step => ({ t: 'crash', w })) },
  { weight: 1, arbitrary: w.map((w): Step => ({ t: 'fail', w })) },
  { weight: 1, arbitrary: w.map((w): Step => ({ t: 'beat', w })) },
  { weight: 2, arbitrary: fc.oneof(fc.integer({ min: 1, max: 400 }), fc.constant(LEASE_MS + 1)).map((ms): Step => ({ t: 'tick', ms })) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...NESTED), w).map(([edge, w]): Step => ({ t: 'edge-crash', edge, w })) },
);

const stats: Record<string, number> = {};
const count = (k: string, n = 1) => void (stats[k] = (stats[k] ?? 0) + n);

interface SimWorker {
  owner: string;
  batchSize: number;
  job: JobRow | undefined;
}

class Run {
  static counter = 0;
  readonly org: string;
  readonly state: OracleState = createOracleState();
  readonly ids: string[] = [];
  readonly log: string[] = [];
  readonly workers: SimWorker[];
  failures = 0;

  constructor(
    readonly db: Database,
    readonly ls: Lockstep,
    batchSizes: number[],
  ) {
    const n = `rc${process.pid % 1000}x${++Run.counter}`;
    this.org = n;
    this.workers = batchSizes.map((batchSize, i) => ({ owner: `${n}-w${i}-0`, batchSize, job: undefined }));
  }

  where(what: string) {
    return `${what} (org ${this.org}) after:\n  ${this.log.slice(-(Number(process.env.LOCKSTEP_PROPERTY_LOG) || 60)).join('\n  ')}`;
  }

  async write(template: Command) {
    const c = { ...template, org: this.org } as Command;
    if (c.kind === 'deleteAssignment' && c.id.startsWith('@')) c.id = this.ids.length ? this.ids[Number(c.id.slice(1)) % this.ids.length]! : 'asg_none';
    const e = await attempt(() => callEngine(this.ls, c));
    const id = e.ok && 'id' in e.value ? e.value.id : undefined;
    if (id !== undefined && !this.ids.includes(id)) this.ids.push(id);
    const o = applyCommand(this.state, c, id ?? `oracle_${this.ids.length}`, now());
    this.log.push(`write ${JSON.stringify(c)} → ${JSON.stringify(e.ok ? { changed: e.value.changed, revision: e.value.revision, propagation: e.value.propagation } : e)}`);
    const engineOutcome = e.ok ? { ok: true, changed: e.value.changed } : { ok: false, code: e.code };
    const oracleOutcome = o.ok ? { ok: true, changed: o.changed } : { ok: false, code: o.code };
    expect(engineOutcome, this.where('write outcome')).toEqual(oracleOutcome);
    if (e.ok && e.value.changed) count(`write ${e.value.propagation.mode} ${e.value.propagation.status}${e.value.propagation.reason ? ' ' + e.value.propagation.reason : ''}`);
  }

  /** The expiry job, on both sides at the clock; the same number of items removed. */
  async expire() {
    const removed = await this.ls.expireDue({ org: this.org });
    let want = 0;
    for (const c of dueExpiries(this.state, this.org, now())) if ((applyCommand(this.state, c, 'never', now()) as { changed?: boolean }).changed) want++;
    this.log.push(`expire at ${now()} → ${removed} removed`);
    expect(removed, this.where('items the expiry job removed')).toBe(want);
    if (removed) count('expiry job removed items', removed);
  }

  async policy(body: unknown) {
    const r = await this.ls.putPropagationPolicy(this.org, body);
    this.log.push(`policy ${JSON.stringify(body)} → revision ${r.revision}`);
  }

  private env() {
    return { db: this.db, now, verify: 'always' as const };
  }

  async claim(w: SimWorker) {
    if (w.job) return;
    w.job = (await claimJobs(this.db, { kind: 'any' }, w.owner, now(), LEASE_MS, 1))[0];
    this.log.push(`${w.owner} claim → ${w.job ? `${w.job.id} ${w.job.scope} checkpoint=${w.job.checkpoint} claims=${w.job.claims}` : 'nothing'}`);
    if (w.job) count(w.job.claims > 1 ? 'claim (take-over or resume)' : 'claim (fresh)');
  }

  async batch(w: SimWorker) {
    const job = w.job;
    if (!job) return;
    try {
      const r = await runBatch(this.env(), job, w.owner, w.batchSize, LEASE_MS);
      this.log.push(`${w.owner} batch ${job.id} → ${JSON.stringify(r)}`);
      count('batch');
      if (r.finished) {
        count('job finished');
        w.job = undefined;
      }
    } catch (e) {
      if (!(e instanceof LeaseLost)) throw e;
      this.log.push(`${w.owner} batch ${job.id} → lease lost (fenced)`);
      count('batch fenced (lease lost)');
      w.job = undefined;
    }
  }

  async complete(w: SimWorker) {
    while (w.job) await this.batch(w);
  }

  /**
   * The worker dies holding its job (claiming one first if it held none: a crash between the claim
   * and the first batch): nothing is released; time passes beyond the lease.
   */
  async crash(w: SimWorker, i: number) {
    if (!w.job) await this.claim(w);
    if (!w.job) return;
    this.log.push(`${w.owner} CRASH holding ${w.job.id}; clock += ${LEASE_MS + 1}`);
    count('crash');
    count(`crash holding a ${w.job.scope.split(':')[0]} job`);
    if (this.nestedEdges() > 0) count('crash with nested edges in the organization');
    w.job = undefined;
    w.owner = `${this.org}-w${i}-${Date.now() % 100000}-${Math.random().toString(36).slice(2, 6)}`;
    await this.advance(LEASE_MS + 1);
  }

  /** Nested edges of the organization now (oracle side). */
  nestedEdges() {
    return [...(this.state.orgs.get(this.org)?.nested.values() ?? [])].reduce((n, cs) => n + cs.size, 0);
  }

  /** Moves the clock; counts the expiries it carries past and what was in flight when it did. */
  async advance(ms: number) {
    const due = dueExpiries(this.state, this.org, now()).length;
    clock += ms;
    const crossed = dueExpiries(this.state, this.org, now()).length - due;
    if (crossed > 0) {
      count('expiries crossed', crossed);
      const open = await this.ls.listJobs({ org: this.org, states: ['pending', 'running', 'retrying'], limit: 1 });
      if (open.length > 0) count('expiry crossed with a reconciliation job open');
      if (this.workers.some((x) => x.job && x.job.scope.startsWith('subtree:'))) count('expiry crossed while a worker held a subtree job');
      if (this.nestedEdges() > 0) count('expiry crossed with nested edges in the organization');
    }
  }

  async fail(w: SimWorker) {
    if (!w.job) return;
    const state = (await failJobs(this.db, [{ id: w.job.id, error: 'INJECTED: batch failed' }], w.owner, now(), RETRY)).get(w.job.id);
    this.log.push(`${w.owner} fail ${w.job.id} → ${state}`);
    if (state) {
      this.failures++;
      count(`injected failure → ${state}`);
    }
    w.job = undefined;
  }

  async beat(w: SimWorker) {
    if (!w.job) return;
    const ok = await heartbeat(this.db, w.job.id, w.owner, now(), LEASE_MS);
    this.log.push(`${w.owner} heartbeat ${w.job.id} → ${ok}`);
    if (!ok) {
      count('heartbeat lost');
      w.job = undefined;
    }
  }

  private principalOf = (assignment: string) => {
    const a = this.state.orgs.get(this.org)?.assignments.get(assignment);
    return a ? `${a.principal.type}:${a.principal.id}` : `gone:${assignment}`;
  };

  /** The safety invariant and the exactness of fully_consistent, right now. */
  async checkSafety(p: Probe) {
    const rm = await this.ls.readModel(this.org);
    const keys = rm.map(effectiveKey);
    expect(new Set(keys).size, this.where('duplicate read-model rows')).toBe(keys.length);
    const desired = effectiveRows(this.state, this.org, now());
    const desiredKeys = new Set(desired.map(effectiveKey));
    const rmKeys = new Set(keys);
    const stale = rm.filter((r) => !desiredKeys.has(effectiveKey(r)));
    const missing = desired.filter((r) => !rmKeys.has(effectiveKey(r)));
    if (stale.length) count('steps with stale rows (revocation pending in read model)');
    if (missing.length) count('steps with missing rows (grant pending)');
    // checked between an expiry's instant and the expiry job's pass: the clock alone must deny
    if (dueExpiries(this.state, this.org, now()).length > 0) count('checks with expired items the expiry job has not removed');

    const probes: { subject: string; permission: string; resource: string; fc: boolean }[] = [{ ...p, fc: true }];
    const below = (ref: string) => RESOURCES.filter((r) => r === ref || this.parentOf(r) === ref);
    // every stale row (up to 4): each permission, on its resource and a child
    for (const [i, r] of stale.slice(0, 4).entries()) {
      const kids = below(r.resource);
      for (const permission of PERMS) probes.push({ subject: r.subject, permission, resource: kids[(p.pick + i) % kids.length] ?? r.resource, fc: i === 0 });
    }
    for (const r of missing.slice(0, 2)) for (const permission of PERMS) probes.push({ subject: r.subject, permission, resource: r.resource, fc: true });

    for (const q of probes) {
      const o = oracleCheck(this.state, this.org, q.subject, q.permission, q.resource, now());
      const what = `check ${JSON.stringify(q)}`;
      const fast = await attempt(() => this.ls.check(this.org, { subject: q.subject, permission: q.permission, resource: q.resource, consistency: { mode: 'minimize_latency' } }));
      if (!o.ok) {
        expect(fast.ok ? 'allowed/denied' : fast.code, this.where(`${what}: error`)).toBe(o.code);
        continue;
      }
      if (!fast.ok) throw new Error(this.where(`${what}: engine error ${fast.code} ${fast.field}`));
      if (fast.value.allowed) expect(o.allowed, this.where(`SAFETY: ${what} minimize_latency allowed what the oracle denies`)).toBe(true);
      count(fast.value.allowed === o.allowed ? 'check agrees' : 'check: pending grant denied');
      if (q.fc) {
        const full = await this.ls.check(this.org, { subject: q.subject, permission: q.permission, resource: q.resource, consistency: { mode: 'fully_consistent' } });
        expect(full.allowed, this.where(`${what} fully_consistent`)).toBe(o.allowed);
      }
    }
  }

  private parentOf(ref: string) {
    return this.state.orgs.get(this.org)?.resources.get(ref);
  }

  /** Runs workers until the organization has no open job, advancing the clock past leases and backoffs. */
  async drain() {
    for (const w of this.workers) await this.complete(w);
    const drainer = createWorker({ db: this.db, now, batchSize: 2, leaseMs: LEASE_MS, retry: RETRY, owner: `${this.org}-drainer` });
    for (let round = 0; ; round++) {
      expect(round, this.where('the queue drains')).toBeLessThan(40);
      while (await drainer.runOne()) count('drain: job run');
      const open = await this.ls.listJobs({ org: this.org, states: ['pending', 'running', 'retrying', 'failed'], limit: 1000 });
      if (open.length === 0) break;
      for (const j of open.filter((j) => j.state === 'failed')) {
        expect(this.failures, this.where(`job ${j.id} failed without injected failures: ${j.lastError}`)).toBeGreaterThan(0);
        count('failed job retried by hand');
        await this.ls.retryJob(j.id);
      }
      clock += LEASE_MS + RETRY.maxMs + 1;
    }
  }

  async checkDrained(probes: Probe[]) {
    const rm = await this.ls.readModel(this.org);
    const desired = effectiveRows(this.state, this.org, now());
    expect(new Set(rm.map(effectiveKey)).size, this.where('duplicates after drain')).toBe(rm.length);
    expect(sortedKeys(rm, (r: EffectiveRow) => naturalKey(r, this.principalOf)), this.where('read model after drain (natural keys)')).toEqual(
      sortedKeys(desired, (r: EffectiveRow) => naturalKey(r, this.principalOf)),
    );
    expect(sortedKeys(rm), this.where('read model after drain')).toEqual(sortedKeys(desired));
    count('rows compared after drain', rm.length);

    const jobs = await this.ls.listJobs({ org: this.org, limit: 1000 });
    for (const j of jobs) expect(j.state, this.where(`job ${j.id} ${j.scope} state`)).toBe('done');
    count('jobs per run', jobs.length);
    if (jobs.length) {
      const marks = jobs.map((_, i) => `$${i + 1}`).join(', ');
      const batches = await this.db.all<{ job_id: string; seq: number; first_subject: string; last_subject: string; members: number }>(
        `SELECT job_id, seq, first_subject, last_subject, members FROM job_batches WHERE job_id IN (${marks}) ORDER BY job_id, seq`,
        jobs.map((j) => j.id),
      );
      for (const j of jobs) {
        const mine = batches.filter((b) => b.job_id === j.id);
        expect(mine.map((b) => Number(b.seq)), this.where(`batch seqs of ${j.id}`)).toEqual(mine.map((_, i) => i + 1));
        for (const [i, b] of mine.entries()) {
          expect(b.first_subject <= b.last_subject, this.where(`batch ${j.id}#${b.seq} range`)).toBe(true);
          if (i > 0) expect(mine[i - 1]!.last_subject < b.first_subject, this.where(`batches of ${j.id} ascend without overlap`)).toBe(true);
        }
        expect(mine.reduce((n, b) => n + Number(b.members), 0), this.where(`members of ${j.id}`)).toBe(j.progress.done);
        if (j.claims > 1 && mine.length > 1) count('multi-claim jobs with several batches');
      }
    }

    const { revision } = await this.ls.getOrganization(this.org);
    for (let rev = 1; rev <= revision; rev++) {
      const ch = await this.ls.getChange(this.org, rev);
      expect(ch.effectiveAt, this.where(`change ${rev} (${ch.kind}, ${ch.mode}) effectiveAt`)).not.toBeNull();
      if (ch.mode === 'async') count('async changes made effective');
    }
    const drift = await this.ls.auditDrift(this.org, { limit: 5 });
    expect({ missing: drift.missing, extra: drift.extra }, this.where('drift after drain')).toEqual({ missing: 0, extra: 0 });

    // settled: minimize_latency is exact again
    for (const p of probes) {
      for (const permission of PERMS) {
        const o = oracleCheck(this.state, this.org, p.subject, permission, p.resource, now());
        if (!o.ok) continue;
        const e = await this.ls.check(this.org, { subject: p.subject, permission, resource: p.resource, consistency: { mode: 'minimize_latency' } });
        expect(e.allowed, this.where(`settled check ${p.subject} ${permission} ${p.resource}`)).toBe(o.allowed);
      }
    }
  }
}

describeEachEngine('reconciler vs oracle', (engine) => {
  let db: Database;
  let ls: Lockstep;
  beforeAll(async () => {
    for (const k of Object.keys(stats)) delete stats[k];
    db = await engine.open();
    ls = createLockstep(db, { now, verify: 'always' });
  });
  afterAll(async () => {
    if (process.env.LOCKSTEP_PROPERTY_STATS) console.log(engine.name, Object.entries(stats).sort());
    await db?.close();
  });

  // Fewer runs than before nested groups and expiry came in: each run now does more (expiry passes,
  // nested fan-out), and the file must stay near a minute per engine on a shared 2-core machine.
  const runs = RUNS || (engine.name === 'sqlite' ? 250 : 60);

  it(`is safe after every step and exact after draining (${runs} runs)`, { timeout: 600_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        policyArb,
        worldArb,
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: WORKERS, maxLength: WORKERS }),
        fc.array(stepArb, { minLength: 8, maxLength: 40 }),
        fc.array(probeArb, { minLength: 3, maxLength: 10 }),
        async (policy, world, batchSizes, steps, probes) => {
          const run = new Run(db, ls, batchSizes);
          const e = await ls.putOrganization(run.org, {});
          applyCommand(run.state, { kind: 'putOrganization', org: run.org });
          expect(e.changed).toBe(true);
          await run.policy(policy);
          for (const c of world) await run.write(c);
          await run.checkSafety(probes[0]!);
          for (const [i, s] of steps.entries()) {
            const wk = 'w' in s ? run.workers[s.w]! : undefined;
            switch (s.t) {
              case 'write': await run.write(s.cmd); break;
              case 'expiring': await run.write({ ...s.cmd, expiresAt: new Date(now() + s.inMs).toISOString() } as Command); break;
              case 'expire': await run.expire(); break;
              case 'policy': await run.policy(s.policy); break;
              case 'claim': await run.claim(wk!); break;
              case 'batch': await run.batch(wk!); break;
              case 'complete': await run.complete(wk!); break;
              case 'crash': await run.crash(wk!, s.w); break;
              case 'fail': await run.fail(wk!); break;
              case 'beat': await run.beat(wk!); break;
              case 'edge-crash': {
                const [parent, child] = s.edge;
                const present = run.state.orgs.get(run.org)?.nested.get(parent)?.has(child) === true;
                await run.policy({ inlineBudget: 0 });
                await run.write({ kind: present ? 'removeGroupMember' : 'addGroupMember', org: 'A', group: parent, member: child });
                await run.claim(wk!);
                await run.batch(wk!);
                await run.crash(wk!, s.w);
                break;
              }
              case 'tick':
                await run.advance(s.ms);
                run.log.push(`tick ${s.ms}`);
                break;
            }
            await run.checkSafety(probes[i % probes.length]!);
          }
          // draining moves the clock (leases, backoff): expire and drain until nothing is due
          for (let round = 0; ; round++) {
            await run.drain();
            await run.expire();
            await run.drain();
            if (dueExpiries(run.state, run.org, now()).length === 0) break;
            expect(round, run.where('expiries settle')).toBeLessThan(5);
          }
          await run.checkDrained(probes);
        },
      ),
      { numRuns: runs, seed: SEED, endOnFailure: false, ...(process.env.LOCKSTEP_PROPERTY_EXAMPLE ? { examples: [JSON.parse(readFileSync(process.env.LOCKSTEP_PROPERTY_EXAMPLE, 'utf8'))], numRuns: 1 } : {}) },
    );
    // The generator must reach what issue 12 asks of this test: expiries crossing during the run
    // (with jobs open, and with nested edges), checks before the expiry job ran, and worker crashes
    // holding a nested edge's job. (Skipped for a replayed seed or a handful of runs.)
    if (SEED === undefined && runs >= 50 && !process.env.LOCKSTEP_PROPERTY_EXAMPLE) {
      for (const k of [
        'expiries crossed',
        'expiry crossed with a reconciliation job open',
        'expiry crossed with nested edges in the organization',
        'checks with expired items the expiry job has not removed',
        'crash with nested edges in the organization',
        'crash holding a subtree job',
        'expiry job removed items',
      ]) {
        expect(stats[k] ?? 0, `coverage: ${k}`).toBeGreaterThan(0);
      }
    }
  });

  // An async resource deletion (its fan-out goes to an organization-scoped job) drains to the oracle.
  // (Regression: organization-scoped batches failed on PostgreSQL with 42P18, parameter $2 untyped.)
  it('drains an organization-scoped job (async resource deletion)', async () => {
    const run = new Run(db, ls, [2]);
    await ls.putOrganization(run.org, {});
    applyCommand(run.state, { kind: 'putOrganization', org: run.org });
    await run.policy({ inlineBudget: 0 });
    for (const c of fc.sample(worldArb, { numRuns: 1, seed: 7 })[0]!) await run.write(c);
    await run.write({ kind: 'createAssignment', org: 'A', principal: 'group:g1', role: 'r1', resource: 'doc:1' });
    await run.write({ kind: 'deleteResource', org: 'A', type: 'folder', id: '1' });
    await run.checkSafety({ subject: 's1', permission: 'p.a', resource: 'doc:1', pick: 0 });
    await run.drain();
    await run.checkDrained([{ subject: 's1', permission: 'p.a', resource: 'doc:1', pick: 0 }]);
  });
});

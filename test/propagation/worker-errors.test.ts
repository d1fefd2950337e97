/**
 * Errors the worker survives (docs/architecture.md, "Worker batch"): a claim, a failure's record and
 * a release that the database refuses are each logged with the job they concern, and the worker —
 * or the next one, once the lease lapses — carries on. The database refuses for real: a trigger on a
 * fresh schema raises on exactly the statement under test (no mocks), and is dropped afterwards.
 */
import { Writable } from 'node:stream';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createLogger } from '../../src/api/logger.ts';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { createWorker, logTo, type WorkerEvent } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { fault as faultOn } from '../helpers/faults.ts';

const ALL_ASYNC = {
  grant: { standard: { mode: 'async' }, high: { mode: 'async' }, critical: { mode: 'async' } },
  revoke: { standard: { mode: 'async' }, high: { mode: 'async' }, critical: { mode: 'async' } },
};

interface LogLine {
  level: number;
  msg: string;
  during?: string;
  job?: { id: string; scope?: string };
  /** the error with its cause chain (the driver's message is in the cause) */
  err?: unknown;
}

/** The service's own logger (src/api/logger.ts), writing JSON lines into `lines`. */
function collectingLogger() {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as LogLine);
      done();
    },
  });
  return { lines, logger: createLogger('debug', sink) };
}

let orgCounter = 0;

describeEachEngine('worker errors', (engine) => {
  let db: Database;
  let ls: Lockstep;
  // A fresh database each: a worker claims any organization's jobs, so none may be left over.
  beforeEach(async () => {
    db = await engine.open();
    ls = createLockstep(db);
  });
  afterEach(async () => {
    await db?.close();
  });

  const fault = (name: string, table: string, event: 'INSERT' | 'UPDATE', when: string) => faultOn(db, name, table, event, when);

  /** doc.read via viewer on ws:main, held by group eng; `subjects` exist; every change left to a job. */
  async function seed(subjects: string[]) {
    const org = `we${process.pid % 1000}x${++orgCounter}`;
    await ls.putOrganization(org, {});
    await ls.putPermission(org, 'doc.read', { risk: 'standard' });
    await ls.putRole(org, 'viewer', { permissions: ['doc.read'] });
    await ls.putResource(org, 'ws', 'main', {});
    for (const s of subjects) await ls.putSubject(org, s, { kind: 'user' });
    await ls.putGroup(org, 'eng', {});
    await ls.createAssignment(org, { principal: 'group:eng', role: 'viewer', resource: 'ws:main' });
    await ls.putPropagationPolicy(org, ALL_ASYNC);
    return org;
  }
  const allowed = async (org: string, subject: string) =>
    (await ls.check(org, { subject, permission: 'doc.read', resource: 'ws:main', consistency: { mode: 'minimize_latency' } })).allowed;
  const jobOf = async (org: string, scope: string) => (await ls.listJobs({ org })).find((j) => j.scope === scope)!;
  const errorsOf = (lines: LogLine[], during: string) => lines.filter((l) => l.level >= 50 && l.during === during);

  it('a claim of more subject jobs that fails is logged with the job already claimed; that job runs alone, the worker keeps going', async () => {
    const org = await seed(['alice', 'boom']);
    await ls.addMember(org, 'eng', 'alice');
    await new Promise((r) => setTimeout(r, 5)); // alice's job is the older one: claimed first
    await ls.addMember(org, 'eng', 'boom');
    const alice = await jobOf(org, 'subject:alice');
    const boom = await jobOf(org, 'subject:boom');
    const heal = await fault('claim_boom', 'jobs', 'UPDATE', "NEW.scope = 'subject:boom' AND NEW.state = 'running'");
    const { lines, logger } = collectingLogger();
    const worker = createWorker({ db, ...logTo(logger) });
    try {
      expect(await worker.runOne()).toBe(true);
    } finally {
      await heal();
    }
    const [line, ...more] = errorsOf(lines, 'claim');
    expect(more).toEqual([]);
    expect(line).toMatchObject({ msg: 'worker claim failed', job: { id: alice.id } });
    expect(JSON.stringify(line!.err)).toContain('forced failure: claim_boom');
    expect(await allowed(org, 'alice')).toBe(true);
    expect((await jobOf(org, 'subject:boom')).state).toBe('pending');

    expect(await worker.drain()).toBe(1);
    expect((await jobOf(org, 'subject:boom')).id).toBe(boom.id);
    expect((await jobOf(org, 'subject:boom')).state).toBe('done');
    expect(await allowed(org, 'boom')).toBe(true);
  });

  it("a failed batch whose failure cannot be recorded is logged with the job's id; after the lease a worker takes the job over", async () => {
    const org = await seed(['alice']);
    await ls.addMember(org, 'eng', 'alice');
    const job = await jobOf(org, 'subject:alice');
    const healBatch = await fault('batch_log', 'job_batches', 'INSERT', '1 = 1');
    const healFail = await fault('record_failure', 'jobs', 'UPDATE', "NEW.state IN ('retrying', 'failed')");
    const { lines, logger } = collectingLogger();
    const events: WorkerEvent[] = [];
    const log = logTo(logger);
    const worker = createWorker({ db, leaseMs: 60_000, ...log, onEvent: (e) => (events.push(e), log.onEvent!(e)) });
    try {
      expect(await worker.runOne()).toBe(true);
    } finally {
      await healFail();
      await healBatch();
    }
    const failed = lines.find((l) => l.msg === 'reconcile batch failed');
    expect(failed).toMatchObject({ job: { id: job.id, scope: 'subject:alice' } });
    expect(JSON.stringify(failed!.err)).toContain('forced failure: batch_log');
    const [line, ...more] = errorsOf(lines, 'fail');
    expect(more).toEqual([]);
    expect(line).toMatchObject({ msg: 'worker fail failed', job: { id: job.id } });
    expect(JSON.stringify(line!.err)).toContain('forced failure: record_failure');
    expect(events.filter((e) => e.type === 'failed')).toMatchObject([{ job: { id: job.id }, state: null }]);
    // Nothing recorded: the job is still this worker's until the lease lapses, and nobody else's now.
    expect(await jobOf(org, 'subject:alice')).toMatchObject({ state: 'running', attempts: 0 });
    expect(await worker.runOne()).toBe(false);

    const later = createWorker({ db, now: () => Date.now() + 120_000, ...logTo(logger) });
    expect(await later.drain()).toBe(1);
    expect((await jobOf(org, 'subject:alice')).state).toBe('done');
    expect(await allowed(org, 'alice')).toBe(true);
  });

  it('a release that fails while the worker stops is logged with the job id; after the lease another worker finishes the job', async () => {
    const org = await seed(['alice', 'bob', 'carol']);
    // Members first, their jobs run; then a second assignment: one job over three members.
    for (const s of ['alice', 'bob', 'carol']) await ls.addMember(org, 'eng', s);
    await createWorker({ db }).drain();
    await ls.putPermission(org, 'doc.write', { risk: 'standard' });
    await ls.putRole(org, 'editor', { permissions: ['doc.write'] });
    const a = await ls.createAssignment(org, { principal: 'group:eng', role: 'editor', resource: 'ws:main' });
    expect(a.propagation.status).toBe('pending');
    const [job] = await ls.listJobs({ org, states: ['pending'] });
    const heal = await fault('release', 'jobs', 'UPDATE', "OLD.state = 'running' AND NEW.state = 'retrying' AND NEW.attempts = OLD.attempts");
    const { lines, logger } = collectingLogger();
    const log = logTo(logger);
    let stopped: Promise<void> | undefined;
    const released: WorkerEvent[] = [];
    const worker = createWorker({
      db,
      batchSize: 1,
      ...log,
      onEvent: (e) => {
        log.onEvent!(e);
        if (e.type === 'batch') stopped ??= worker.stop(); // stop after the first of three batches
        if (e.type === 'released') released.push(e);
      },
    });
    try {
      worker.start();
      await expect.poll(() => stopped !== undefined, { timeout: 10_000 }).toBe(true);
      await stopped;
    } finally {
      await heal();
    }
    const [line, ...more] = errorsOf(lines, 'release');
    expect(more).toEqual([]);
    expect(line).toMatchObject({ msg: 'worker release failed', job: { id: job!.id } });
    expect(JSON.stringify(line!.err)).toContain('forced failure: release');
    expect(released).toMatchObject([{ job: { id: job!.id } }]);
    expect(await jobOf(org, job!.scope)).toMatchObject({ state: 'running', progress: { done: 1 } });

    const later = createWorker({ db, batchSize: 1, now: () => Date.now() + 120_000, ...logTo(logger) });
    expect(await later.drain()).toBe(1);
    expect(await jobOf(org, job!.scope)).toMatchObject({ state: 'done', progress: { done: 3 } });
    const write = await ls.check(org, { subject: 'carol', permission: 'doc.write', resource: 'ws:main', consistency: { mode: 'minimize_latency' } });
    expect(write.allowed).toBe(true);
  });

  it('the loop survives claims that fail (logged, no job to name) and runs the job once the database lets it', async () => {
    const org = await seed(['alice']);
    await ls.addMember(org, 'eng', 'alice');
    const heal = await fault('claim_any', 'jobs', 'UPDATE', "NEW.state = 'running'");
    const { lines, logger } = collectingLogger();
    const worker = createWorker({ db, pollMs: 10, ...logTo(logger) });
    worker.start();
    try {
      await expect.poll(() => errorsOf(lines, 'claim').length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
      expect(errorsOf(lines, 'claim')[0]).toMatchObject({ msg: 'worker claim failed' });
      expect(errorsOf(lines, 'claim')[0]!.job).toBeUndefined();
      expect((await jobOf(org, 'subject:alice')).state).toBe('pending');
      await heal();
      await expect.poll(async () => (await jobOf(org, 'subject:alice')).state, { timeout: 10_000 }).toBe('done');
    } finally {
      await worker.stop();
    }
    expect(await allowed(org, 'alice')).toBe(true);
  });
});

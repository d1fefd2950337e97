/**
 * Scenario 5 — crash and resume: a `group:` backfill job (members × assignments rows) is started by a
 * worker in a child process, which is SIGKILLed after about a third of its batches; a fresh worker
 * process takes the job over once the lease expires and finishes it. From job_batches: batches and
 * rows committed, rows committed twice and overlapping subject ranges (both should be 0: resumed at the
 * checkpoint, not restarted), the time lost to the lease and the total time. The read model is then
 * compared with the expected row count.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Ctx } from '../lib/context.ts';
import { dropSchema, loadDataset, openStore, type Engine, type Store } from '../lib/lockstep.ts';
import { largeDataset, ORG } from '../lib/model.ts';
import { notRun } from '../lib/system.ts';

export interface CrashRow {
  system: string;
  engine: string;
  notRun?: string;
  rows?: number;
  batchMembers?: number;
  leaseMs?: number;
  batchesBeforeKill?: number;
  batches?: number;
  rowsCommitted?: number;
  rowsRedone?: number;
  overlappingBatches?: number;
  owners?: number;
  killedAtSeconds?: number;
  resumeGapSeconds?: number;
  totalSeconds?: number;
  uninterruptedEstimateSeconds?: number;
  readModelRows?: number;
}

const CHILD = new URL('../children/worker.ts', import.meta.url).pathname;
const LEASE_MS = 1000;

function spawnWorker(arg: object) {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Array<Record<string, unknown>> = [];
  const waiters: Array<{ pred: (e: Record<string, unknown>) => boolean; resolve: () => void }> = [];
  let buf = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.on('data', (d) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const e = JSON.parse(line) as Record<string, unknown>;
        events.push(e);
        for (const w of [...waiters]) if (w.pred(e)) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
      } catch {
        /* not an event */
      }
    }
  });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return {
    child,
    events,
    exited,
    stderr: () => err,
    waitFor: (pred: (e: Record<string, unknown>) => boolean, timeoutMs: number) =>
      new Promise<void>((resolve, reject) => {
        if (events.some(pred)) return resolve();
        const t = setTimeout(() => reject(new Error(`worker: timed out (${err.trim().split('\n').slice(-2).join(' | ')})`)), timeoutMs);
        waiters.push({ pred, resolve: () => (clearTimeout(t), resolve()) });
        void exited.then(() => reject(new Error(`worker exited early: ${err.trim().split('\n').slice(-2).join(' | ')}`)));
      }),
  };
}

async function crashOne(ctx: Ctx, engine: Engine): Promise<CrashRow> {
  const { crashMembers: m, crashAssignments: a, crashBatch: batch } = ctx.size;
  const rows = m * a;
  const totalBatches = Math.ceil(m / batch);
  const killAfter = Math.max(1, Math.floor(totalBatches / 3));
  const store: Store = await openStore(engine, ctx.pg, { file: join(ctx.tmp, `crash-${Date.now()}.db`), poolMax: 3 });
  const procs: Array<ReturnType<typeof spawnWorker>> = [];
  try {
    await loadDataset(store.db, largeDataset(m, a), { reconcile: false });
    const arg = { engine, ...store.target, batch, leaseMs: LEASE_MS };
    const t0 = performance.now();
    const w1 = spawnWorker(arg);
    procs.push(w1);
    let seen = 0;
    await w1.waitFor((e) => e.type === 'batch' && ++seen >= killAfter, 300_000);
    w1.child.kill('SIGKILL');
    await w1.exited;
    const killedAt = performance.now();
    ctx.log(`crash (${engine}): worker SIGKILLed after ${seen} batches; restarting`);
    const w2 = spawnWorker(arg);
    procs.push(w2);
    await w2.waitFor((e) => e.type === 'batch', 300_000);
    const resumedAt = performance.now();
    await w2.waitFor((e) => e.type === 'done', 600_000);
    const total = (performance.now() - t0) / 1000;
    w2.child.kill('SIGTERM');
    await w2.exited;
    const b = await store.db.all<{ seq: number; owner: string; first_subject: string; last_subject: string; rows_added: number; started_at: number; committed_at: number }>(
      `SELECT seq, owner, first_subject, last_subject, rows_added, started_at, committed_at FROM job_batches ORDER BY seq`,
    );
    let overlapping = 0;
    let prevLast = '';
    for (const x of b) {
      if (prevLast !== '' && x.first_subject <= prevLast) overlapping++;
      prevLast = x.last_subject > prevLast ? x.last_subject : prevLast;
    }
    const committed = b.reduce((s, x) => s + Number(x.rows_added), 0);
    const busyMs = b.reduce((s, x) => s + (Number(x.committed_at) - Number(x.started_at)), 0);
    const n = await store.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM effective_assignments WHERE org_id = $1', [ORG]);
    return {
      system: 'lockstep',
      engine,
      rows,
      batchMembers: batch,
      leaseMs: LEASE_MS,
      batchesBeforeKill: seen,
      batches: b.length,
      rowsCommitted: committed,
      rowsRedone: committed - rows,
      overlappingBatches: overlapping,
      owners: new Set(b.map((x) => x.owner)).size,
      killedAtSeconds: (killedAt - t0) / 1000,
      resumeGapSeconds: (resumedAt - killedAt) / 1000,
      totalSeconds: total,
      uninterruptedEstimateSeconds: busyMs / 1000,
      readModelRows: Number(n!.n),
    };
  } finally {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await store.close().catch(() => undefined);
    if (engine === 'postgres') await dropSchema(ctx.pg, store.target.schema!).catch(() => undefined);
  }
}

export async function crash(ctx: Ctx): Promise<CrashRow[]> {
  const rows: CrashRow[] = [];
  for (const engine of ['sqlite', 'postgres'] as Engine[]) {
    if (!ctx.engines.includes(engine)) rows.push({ system: 'lockstep', engine, notRun: 'engine not selected (--engines)' });
    else if (engine === 'postgres' && ctx.pgDown) rows.push({ system: 'lockstep', engine, notRun: ctx.pgDown });
    else {
      ctx.log(`crash and resume: ${engine}`);
      try {
        rows.push(await crashOne(ctx, engine));
      } catch (e) {
        rows.push({ system: 'lockstep', engine, ...notRun(e) });
      }
    }
  }
  for (const s of ['naive rewrite', 'spicedb', 'casbin']) rows.push({ system: s, engine: '-', notRun: 'not applicable: no background reconciliation job to crash (writes are applied inline / in memory)' });
  return rows;
}

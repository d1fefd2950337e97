/**
 * Support for the PostgreSQL propagation tests: a fresh schema per test file (named like the shared
 * helpers' schemas, so global teardown drops it if the file crashes), worker child processes
 * (test/helpers/worker-process.ts) whose JSON-line events are collected, and killing them by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe } from 'vitest';
import { dropSchema, openPostgres } from '../../src/storage/postgres-engine.ts';
import type { Database } from '../../src/storage/database.ts';

export const PG_URL = process.env.LOCKSTEP_TEST_PG ?? '';
/** `describe`, or `describe.skip` (counted and announced by global-setup) when PostgreSQL is unreachable. */
export const describePostgres = (title: string, body: () => void) => (PG_URL ? describe : describe.skip)(`${title} [postgres]`, body);

export interface FreshDb {
  db: Database;
  schema: string;
  close(): Promise<void>;
}

export async function freshPostgres(max = 6): Promise<FreshDb> {
  const schema = `lockstep_t_${process.ppid}_${randomBytes(5).toString('hex')}`;
  const db = openPostgres(PG_URL, { schema, max });
  await db.migrate();
  return {
    db,
    schema,
    async close() {
      await db.close();
      await dropSchema(PG_URL, schema);
    },
  };
}

export interface WorkerEventLine {
  type: 'ready' | 'claimed' | 'batch' | 'done' | 'failed' | 'lost' | 'exit';
  owner: string;
  pid: number;
  ts: number;
  job?: string;
  scope?: string;
  members?: number;
  state?: string | null;
  error?: string;
}

export interface WorkerProc {
  child: ChildProcess;
  pid: number;
  events: WorkerEventLine[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when an event matching `pred` has been seen (or rejects after `timeoutMs`). */
  waitFor(pred: (e: WorkerEventLine) => boolean, timeoutMs?: number): Promise<WorkerEventLine>;
}

const WORKER_SCRIPT = fileURLToPath(new URL('../helpers/worker-process.ts', import.meta.url));
const live = new Set<ChildProcess>();

/** `script`: another JSON-line process with the same arguments (test/helpers/delivery-process.ts). */
export function spawnWorker(schema: string, env: { batchSize?: number; leaseMs?: number; pollMs?: number } = {}, script = WORKER_SCRIPT): WorkerProc {
  const child = spawn(process.execPath, ['--import', 'tsx', script, PG_URL, schema], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      LOCKSTEP_WORKER_BATCH: String(env.batchSize ?? 100),
      LOCKSTEP_WORKER_LEASE_MS: String(env.leaseMs ?? 1500),
      LOCKSTEP_WORKER_POLL_MS: String(env.pollMs ?? 100),
    },
  });
  live.add(child);
  const events: WorkerEventLine[] = [];
  const stderr: string[] = [];
  const waiters: { pred: (e: WorkerEventLine) => boolean; resolve: (e: WorkerEventLine) => void }[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line.trim()) continue;
      let e: WorkerEventLine;
      try {
        e = JSON.parse(line) as WorkerEventLine;
      } catch {
        stderr.push(`(stdout) ${line}`);
        continue;
      }
      events.push(e);
      for (const w of [...waiters]) {
        if (w.pred(e)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(e);
        }
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  return {
    child,
    pid: child.pid!,
    events,
    stderr,
    exited,
    waitFor(pred, timeoutMs = 30_000) {
      const seen = events.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`worker ${child.pid}: no matching event within ${timeoutMs} ms; stderr: ${stderr.join('').slice(-2000)}`)), timeoutMs);
        waiters.push({
          pred,
          resolve: (e) => {
            clearTimeout(t);
            resolve(e);
          },
        });
      });
    },
  };
}

/** SIGKILLs every worker process still alive, by PID (afterAll). */
export async function killAllWorkers() {
  const waits: Promise<unknown>[] = [];
  for (const child of live) {
    waits.push(new Promise((r) => child.once('exit', r)));
    try {
      process.kill(child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await Promise.all(waits);
}

/** Stops a worker with SIGTERM (it finishes its batch, closes its pool) and waits for it to exit. */
export async function stopWorker(w: WorkerProc) {
  if (w.child.exitCode !== null || w.child.signalCode !== null) return w.exited;
  process.kill(w.pid, 'SIGTERM');
  return w.exited;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface BatchRow {
  job_id: string;
  seq: number;
  owner: string;
  first_subject: string;
  last_subject: string;
  members: number;
  rows_added: number;
  rows_removed: number;
  started_at: number;
  committed_at: number;
}

/** Drops a schema (after its pool was closed elsewhere, e.g. by `app.stop()`). */
/** Drops a schema of this run's test database. */
export const dropTestSchema = (schema: string) => dropSchema(PG_URL, schema);

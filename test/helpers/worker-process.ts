/**
 * A reconciliation worker as a separate OS process, for the crash and multi-worker tests:
 *
 *   node --import tsx test/helpers/worker-process.ts <postgres-url> <schema>
 *
 * (or LOCKSTEP_WORKER_DB_URL / LOCKSTEP_WORKER_SCHEMA). LOCKSTEP_WORKER_BATCH (subjects per batch,
 * default 100), LOCKSTEP_WORKER_LEASE_MS (default 1500) and LOCKSTEP_WORKER_POLL_MS (default 100)
 * tune it. It runs `createWorker` in its loop and writes one JSON line per event to stdout:
 * {type: 'ready'|'claimed'|'batch'|'done'|'failed'|'lost'|'exit', owner, pid, ts, job?, scope?, …}.
 * SIGTERM stops the loop after the current batch, closes the pool and exits 0; SIGKILL is the crash.
 */
import { randomBytes } from 'node:crypto';
import { createWorker } from '../../src/propagation/worker.ts';
import { openPostgres } from '../../src/storage/postgres-engine.ts';

const url = process.env.LOCKSTEP_WORKER_DB_URL ?? process.argv[2];
const schema = process.env.LOCKSTEP_WORKER_SCHEMA ?? process.argv[3];
if (!url || !schema) {
  process.stderr.write('usage: worker-process.ts <postgres-url> <schema>\n');
  process.exit(2);
}
const batchSize = Number(process.env.LOCKSTEP_WORKER_BATCH ?? 100);
const leaseMs = Number(process.env.LOCKSTEP_WORKER_LEASE_MS ?? 1500);
const pollMs = Number(process.env.LOCKSTEP_WORKER_POLL_MS ?? 100);
const owner = `proc-${process.pid}-${randomBytes(3).toString('hex')}`;

const log = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify({ ...o, owner, pid: process.pid, ts: Date.now() }) + '\n');

const db = openPostgres(url, { schema, max: 3 });
const worker = createWorker({
  db,
  owner,
  batchSize,
  leaseMs,
  pollMs,
  onEvent: (e) => {
    const base = { type: e.type, job: e.job.id, scope: e.job.scope, org: e.job.org_id };
    if (e.type === 'batch') log({ ...base, members: e.members, added: e.added, removed: e.removed });
    else if (e.type === 'failed') log({ ...base, state: e.state, error: String((e.error as Error)?.message ?? e.error) });
    else log(base);
  },
});

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void worker
    .stop()
    .then(() => db.close())
    .then(() => {
      log({ type: 'exit' });
      process.exit(0);
    });
});

worker.start();
log({ type: 'ready', batchSize, leaseMs });

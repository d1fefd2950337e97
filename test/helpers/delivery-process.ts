/**
 * The delivery engine as a separate OS process, for the crash test:
 *
 *   node --import tsx test/helpers/delivery-process.ts <postgres-url> <schema>
 *
 * LOCKSTEP_WORKER_LEASE_MS (default 1000) and LOCKSTEP_WORKER_POLL_MS (default 50) tune it. It
 * writes one JSON line per event to stdout: {type: 'ready'|'sent'|'lost'|…, owner, pid, ts, …}.
 * SIGTERM stops it after the current attempts; SIGKILL is the crash.
 */
import { randomBytes } from 'node:crypto';
import { createDeliverer } from '../../src/delivery/deliverer.ts';
import { createKeyStore } from '../../src/delivery/signing.ts';
import { openPostgres } from '../../src/storage/postgres-engine.ts';

const url = process.argv[2];
const schema = process.argv[3];
if (!url || !schema) {
  process.stderr.write('usage: delivery-process.ts <postgres-url> <schema>\n');
  process.exit(2);
}
const owner = `dproc-${process.pid}-${randomBytes(3).toString('hex')}`;
const log = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify({ ...o, owner, pid: process.pid, ts: Date.now() }) + '\n');
const db = openPostgres(url, { schema, max: 4 });
const deliverer = createDeliverer({
  db,
  owner,
  keys: createKeyStore(db),
  issuer: () => 'http://lockstep.test',
  allowPrivate: true,
  leaseMs: Number(process.env.LOCKSTEP_WORKER_LEASE_MS ?? 1000),
  pollMs: Number(process.env.LOCKSTEP_WORKER_POLL_MS ?? 50),
  timeoutMs: 500,
  retry: { maxAttempts: 20, baseMs: 20, maxMs: 200 },
  onEvent: (e) => {
    if (e.type === 'sent') log({ type: 'sent', target: e.target, revision: e.revision, seq: e.seq, outcome: e.outcome.kind });
    else if (e.type === 'error') log({ type: 'error', error: String((e.error as Error)?.message ?? e.error) });
    else log({ type: e.type, target: e.target });
  },
});
process.on('SIGTERM', () => {
  void deliverer
    .stop()
    .then(() => db.close())
    .then(() => {
      log({ type: 'exit' });
      process.exit(0);
    });
});
deliverer.start();
log({ type: 'ready' });

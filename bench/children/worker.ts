/**
 * A reconciliation worker as a separate process, for scenario 5 (crash and resume): runs
 * `createWorker` on the given database (a SQLite file or a PostgreSQL schema) and writes one JSON
 * line per event to stdout. The parent SIGKILLs it mid-job.
 *
 *   node --import tsx bench/children/worker.ts '{"engine":"sqlite","file":"…","batch":20,"leaseMs":1000}'
 */
import { createWorker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { openPostgres } from '../../src/storage/postgres-engine.ts';
import { openSqlite } from '../../src/storage/sqlite-engine.ts';

const arg = JSON.parse(process.argv[2] ?? '{}') as { engine: string; file?: string; url?: string; schema?: string; batch: number; leaseMs: number };
const db: Database = arg.engine === 'sqlite' ? openSqlite(arg.file!) : openPostgres(arg.url!, { schema: arg.schema!, max: 3 });
const log = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify({ ...o, pid: process.pid, ts: Date.now() }) + '\n');
const worker = createWorker({
  db,
  batchSize: arg.batch,
  leaseMs: arg.leaseMs,
  pollMs: 50,
  onEvent: (e) => log({ type: e.type, job: e.job.id, ...(e.type === 'batch' ? { added: e.added, removed: e.removed } : {}) }),
});
process.on('SIGTERM', () => {
  void worker.stop().then(() => db.close()).then(() => process.exit(0));
});
worker.start();
log({ type: 'ready' });

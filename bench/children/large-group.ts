/**
 * Child process of scenario 3 (its peak RSS is the backfill's alone): opens the database the parent
 * loaded (a `group:everyone` job pending, read model empty), backfills it through the ordinary worker,
 * then deletes the group and measures the time until checks deny (verified read model, and an
 * unverified one: `verify never`) and the cleanup rate. Prints one JSON line.
 *
 *   node --import tsx bench/children/large-group.ts '{"engine":"sqlite","file":"…"}' | '{"engine":"postgres","url":"…","schema":"…"}'
 */
import { createLockstep } from '../../src/app.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import { createWorker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { openPostgres } from '../../src/storage/postgres-engine.ts';
import { openSqlite } from '../../src/storage/sqlite-engine.ts';
import { ORG, project, user } from '../lib/model.ts';

const arg = JSON.parse(process.argv[2] ?? '{}') as { engine: string; file?: string; url?: string; schema?: string; members: number; assignments: number; batch: number };
const db: Database = arg.engine === 'sqlite' ? openSqlite(arg.file!) : openPostgres(arg.url!, { schema: arg.schema!, max: 4 });
const progress = (o: Record<string, unknown>) => process.stderr.write(JSON.stringify(o) + '\n');
const rssMb = () => Math.round(process.memoryUsage().rss / 1048576);
try {
  const rows = arg.members * arg.assignments;
  let done = 0;
  let last = 0;
  const t0 = performance.now();
  const worker = createWorker({
    db,
    batchSize: arg.batch,
    onEvent: (e) => {
      if (e.type !== 'batch' || e.added === 0) return; // progress of the backfill only (not of the cleanup)
      done += e.added;
      const now = performance.now();
      if (now - last > 1000) {
        last = now;
        progress({ done, rows, rss: rssMb() });
      }
    },
  });
  await worker.drain();
  const backfillSeconds = (performance.now() - t0) / 1000;
  const count = await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM effective_assignments WHERE org_id = $1', [ORG]);
  if (Number(count!.n) !== rows) throw new Error(`backfill: expected ${rows} rows, found ${count!.n}`);
  const backfillRss = Math.round(process.resourceUsage().maxRSS / 1024);

  const verified = createLockstep(db, { defaultPolicy: SYNC_POLICY, verify: 'always' });
  const unverified = createLockstep(db, { defaultPolicy: SYNC_POLICY, verify: 'never' });
  const probe = { subject: user(arg.members - 1), permission: 'project.read', resource: project(arg.assignments - 1) };
  if (!(await verified.check(ORG, probe)).allowed) throw new Error('probe not allowed after the backfill');
  const tDel = performance.now();
  const del = await verified.deleteGroup(ORG, 'everyone');
  const commitMs = performance.now() - tDel;
  const deniedAtCommit = !(await verified.check(ORG, probe)).allowed;
  const verifiedDenyMs = performance.now() - tDel;
  // Cleanup by the worker while an unverified reader polls: how long it keeps allowing.
  let unverifiedDenyMs = NaN;
  let unverifiedStaleAllows = 0;
  let cleaning = true;
  const poll = (async () => {
    for (;;) {
      if (!(await unverified.check(ORG, probe)).allowed) {
        unverifiedDenyMs = performance.now() - tDel;
        return;
      }
      unverifiedStaleAllows++;
      if (!cleaning) return; // cleaned up, yet still allowed: reported as never denied (NaN)
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  const tClean = performance.now();
  await worker.drain();
  // A delete within the inline budget cleaned the read model in its own transaction: that is its cleanup time.
  const cleanupSeconds = del.propagation.mode === 'sync' ? commitMs / 1000 : (performance.now() - tClean) / 1000;
  cleaning = false;
  await poll;
  const left = await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM effective_assignments WHERE org_id = $1', [ORG]);
  process.stdout.write(
    JSON.stringify({
      rows,
      backfillSeconds,
      backfillRowsPerSecond: rows / backfillSeconds,
      backfillPeakRssMb: backfillRss,
      delete: {
        propagation: del.propagation,
        commitMs,
        deniedAtCommit,
        verifiedDenyMs,
        unverifiedDenyMs,
        unverifiedStaleAllows,
        cleanupSeconds,
        cleanupRowsPerSecond: rows / cleanupSeconds,
        rowsLeft: Number(left!.n),
      },
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    }) + '\n',
  );
} finally {
  await db.close();
}

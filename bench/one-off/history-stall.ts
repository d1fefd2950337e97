/**
 * One-off measurement behind docs/adr/0005-access-history-off-the-event-loop.md (not part of
 * `npm run bench`): how long the server stalls while access-history replays run. One organization
 * with a large change log (N subjects, each created and added to a group: 2N entries) on a SQLite
 * file; 3 concurrent `GET …/subjects/s1/effective?at=…`; meanwhile a probe sends `GET /healthz`
 * one after another and the process's event-loop delay is sampled (perf_hooks). Two servers over
 * the same store:
 *
 *   in-thread  replays on the event loop (`createLockstep` without a history runner: the path every
 *              request took before ADR 0005)
 *   workers    the server's path: a pool of worker threads (2 at once, 4 waiting)
 *
 * Run: node --import tsx bench/one-off/history-stall.ts [--subjects 20000] [--modes in-thread,workers]
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildServer } from '../../src/api/build-server.ts';
import { createKey } from '../../src/api/keys.ts';
import { createLockstep } from '../../src/app.ts';
import { createHistoryPool } from '../../src/audit/history-pool.ts';
import { openSqlite } from '../../src/storage/sqlite-engine.ts';
import { appendLargeLog } from '../lib/history-log.ts';

const { values } = parseArgs({ options: { subjects: { type: 'string', default: '20000' }, modes: { type: 'string', default: 'in-thread,workers' } } });
const N = Number(values.subjects);
const dir = mkdtempSync(join(tmpdir(), 'lockstep-history-'));
const file = join(dir, 'lockstep.db');

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

async function seed() {
  const db = openSqlite(file);
  await db.migrate();
  const ls = createLockstep(db);
  await ls.putOrganization('big', {});
  await ls.putPermission('big', 'doc.read', { risk: 'critical' });
  await ls.putRole('big', 'viewer', { permissions: ['doc.read'] });
  await ls.putResource('big', 'doc', '1', {});
  await ls.putGroup('big', 'g', {});
  await ls.createAssignment('big', { principal: 'group:g', role: 'viewer', resource: 'doc:1' });
  const revision = await appendLargeLog(db, 'big', N, Date.now());
  await db.close();
  return revision;
}

async function measure(mode: 'in-thread' | 'workers') {
  const db = openSqlite(file);
  const history = mode === 'workers' ? createHistoryPool({ entry: new URL('../../src/history-worker.ts', import.meta.url), size: 2, queue: 4 }) : undefined;
  const lockstep = createLockstep(db, history ? { history } : {});
  const server = buildServer({ lockstep, db });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  const { key } = await createKey(db, { scope: 'admin' });
  const at = new Date(Date.now() + 60_000).toISOString();
  // Warm-up: one replay (worker start, statement caches), not measured.
  await fetch(`${url}/v1/organizations/big/subjects/s1/effective?at=${at}`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.text());

  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  const probes: number[] = [];
  let done = false;
  const probe = (async () => {
    while (!done) {
      const t = performance.now();
      await fetch(`${url}/healthz`).then((r) => r.text());
      probes.push(performance.now() - t);
    }
  })();
  const t0 = performance.now();
  const statuses = await Promise.all(
    [1, 2, 3].map((i) =>
      fetch(`${url}/v1/organizations/big/subjects/s${i}/effective?at=${at}`, { headers: { authorization: `Bearer ${key}` } }).then(async (r) => (await r.text(), r.status)),
    ),
  );
  const wall = performance.now() - t0;
  done = true;
  await probe;
  eld.disable();
  await server.close();
  await history?.close();
  await db.close();
  return {
    mode,
    statuses: statuses.join(','),
    replaysWallMs: Math.round(wall),
    probes: probes.length,
    probeP50Ms: Math.round(quantile(probes, 0.5)),
    probeP99Ms: Math.round(quantile(probes, 0.99)),
    probeMaxMs: Math.round(Math.max(...probes)),
    loopDelayP99Ms: Math.round(eld.percentile(99) / 1e6),
    loopDelayMaxMs: Math.round(eld.max / 1e6),
  };
}

try {
  const revision = await seed();
  process.stderr.write(`organization 'big': ${revision} log entries (${N} subjects) on ${file}\n`);
  const rows = [];
  for (const mode of values.modes.split(',') as ('in-thread' | 'workers')[]) rows.push(await measure(mode));
  console.table(rows);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

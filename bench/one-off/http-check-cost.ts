/**
 * One-off measurement (not part of `npm run bench`): the server-side CPU an HTTP check costs, beside
 * scenario 4's HTTP floor (a bare Fastify route returning a constant behind the same bearer check),
 * on the core data set of scenarios 1 and 4 (quick sizes). The load comes from autocannon in a child
 * process, so this process's CPU time (process.cpuUsage) is the server's alone; CPU per request
 * moves much less than requests/s when other work shares the machine. Rounds alternate floor and
 * check, after a warm-up of each; `check, woken` is a second app whose delivery engine is woken
 * after every check, as every non-GET request did before checks stopped waking it (issue 13).
 *
 *   node --import tsx bench/one-off/http-check-cost.ts [sqlite|postgres] [seconds=4] [rounds=2]
 *
 * PostgreSQL: LOCKSTEP_BENCH_PG or the default URL; a fresh schema, dropped afterwards.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Fastify from 'fastify';
import { createApp } from '../../src/app.ts';
import { installAuth } from '../../src/api/auth.ts';
import { loadConfig } from '../../src/config/config.ts';
import { loadDataset, openStore, type Engine } from '../lib/lockstep.ts';
import { coreDataset, ORG, project, user } from '../lib/model.ts';
import { wrapNoClose } from '../scenarios/checks.ts';

const engine = (process.argv[2] ?? 'sqlite') as Engine;
const seconds = Number(process.argv[3] ?? 4);
const rounds = Number(process.argv[4] ?? 2);
const KEY = 'lsk_bench_' + 'x'.repeat(40);
const AUTOCANNON = new URL('../../node_modules/.bin/autocannon', import.meta.url).pathname;
const body = JSON.stringify({ subject: user(10), permission: 'project.read', resource: project(7) });

async function cannon(url: string, s: number): Promise<{ requests: number; non2xx: number }> {
  const args = ['-c', '16', '-d', String(s), '-j', '-m', 'POST', '-H', 'content-type: application/json', '-H', `authorization: Bearer ${KEY}`, '-b', body, url];
  const { stdout } = await promisify(execFile)(AUTOCANNON, args, { maxBuffer: 1 << 24 });
  const r = JSON.parse(stdout) as { requests: { total: number }; non2xx: number };
  return { requests: r.requests.total, non2xx: r.non2xx };
}

const store = await openStore(engine, process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test', { poolMax: 16 });
const app = createApp(loadConfig({ db: ':memory:', host: '127.0.0.1', port: 0, logLevel: 'silent', adminKey: KEY, workers: 0, verify: 'always' }, {}), { database: wrapNoClose(store.db) });
const woken = createApp(loadConfig({ db: ':memory:', host: '127.0.0.1', port: 0, logLevel: 'silent', adminKey: KEY, workers: 0, verify: 'always' }, {}), { database: wrapNoClose(store.db) });
woken.server.addHook('onResponse', async (req) => {
  if (req.method !== 'GET') woken.delivery.deliverer.wake();
});
const floor = Fastify({ logger: false });
try {
  await loadDataset(store.db, coreDataset(1000, 300));
  installAuth(floor, store.db);
  floor.post('/v1/organizations/:org/floor', { config: { access: 'check' } }, async () => ({ allowed: true }));
  const targets = {
    floor: `${await floor.listen({ host: '127.0.0.1', port: 0 })}/v1/organizations/${ORG}/floor`,
    check: `${(await app.start()).url}/v1/organizations/${ORG}/check`,
    'check, woken': `${(await woken.start()).url}/v1/organizations/${ORG}/check`,
  };
  for (const url of Object.values(targets)) await cannon(url, 1);
  const out = (...cells: unknown[]) => process.stdout.write(cells.join('\t') + '\n');
  out('engine', 'round', 'route', 'requests', 'req/s', 'server CPU µs/request');
  for (let round = 0; round < rounds; round++) {
    for (const [name, url] of Object.entries(targets)) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const r = await cannon(url, seconds);
      const s = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      if (r.non2xx > 0) throw new Error(`${name}: ${r.non2xx} non-2xx answers`);
      out(engine, round + 1, name, r.requests, Math.round(r.requests / s), ((c.user + c.system) / r.requests).toFixed(1));
    }
  }
} finally {
  await floor.close();
  await app.stop();
  await woken.stop();
  await store.close();
}

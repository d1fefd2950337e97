/**
 * One-off measurement (not part of `npm run bench`): what an HTTP check costs the server process and
 * the database, beside scenario 4's HTTP floor (a bare Fastify route returning a constant behind the
 * same bearer check), on the core data set of scenario 4 (quick sizes). autocannon runs in a child
 * process (16 connections), so this process's CPU time is the server's alone; on PostgreSQL the CPU
 * of the pool's backends is read from /proc (they carry this run's application_name), and the
 * check batcher's batch sizes are counted (docs/adr/0018-*). Rounds alternate floor and check.
 *
 *   node --import tsx bench/one-off/check-cpu.ts [sqlite|postgres] [seconds=3] [rounds=2]
 *
 * PostgreSQL: LOCKSTEP_BENCH_PG or the default URL; a fresh schema, dropped afterwards.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import Fastify from 'fastify';
import pg from 'pg';
import { createApp } from '../../src/app.ts';
import { installAuth } from '../../src/api/auth.ts';
import { loadConfig } from '../../src/config/config.ts';
import type { Sql } from '../../src/storage/database.ts';
import { loadDataset, openStore, type Engine } from '../lib/lockstep.ts';
import { coreDataset, ORG, project, user } from '../lib/model.ts';
import { wrapNoClose } from '../scenarios/checks.ts';

const engine = (process.argv[2] ?? 'sqlite') as Engine;
const seconds = Number(process.argv[3] ?? 3);
const rounds = Number(process.argv[4] ?? 2);
const KEY = 'lsk_bench_' + 'x'.repeat(40);
const AUTOCANNON = new URL('../../node_modules/.bin/autocannon', import.meta.url).pathname;
const body = JSON.stringify({ subject: user(10), permission: 'project.read', resource: project(7) });
const PG = process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
// Every connection the store opens carries this name (node-postgres reads PGAPPNAME).
const APP = `lockstep_check_cpu_${process.pid}`;
process.env.PGAPPNAME = APP;

const store = await openStore(engine, PG, { poolMax: 16 });
const sizes: number[] = [];
const g = store.db.genericPlans;
const db = g
  ? { ...store.db, genericPlans: { ...g, all: (async (s, p) => { const rows = await g.all(s, p); sizes.push(rows.length); return rows; }) as Sql['all'] } }
  : store.db;
const app = createApp(loadConfig({ db: ':memory:', host: '127.0.0.1', port: 0, logLevel: 'silent', adminKey: KEY, workers: 0, verify: 'always' }, {}), { database: wrapNoClose(db) });
const floor = Fastify({ logger: false });
const monitor = new pg.Client({ connectionString: PG, application_name: `${APP}_monitor` });
try {
  await loadDataset(store.db, coreDataset(1000, 300));
  installAuth(floor, store.db);
  floor.post('/v1/organizations/:org/floor', { config: { access: 'check' } }, async () => ({ allowed: true }));
  const targets = {
    floor: `${await floor.listen({ host: '127.0.0.1', port: 0 })}/v1/organizations/${ORG}/floor`,
    check: `${(await app.start()).url}/v1/organizations/${ORG}/check`,
  };
  if (engine === 'postgres') await monitor.connect();
  const backendMicros = async () => {
    if (engine !== 'postgres') return 0;
    const pids = (await monitor.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [APP])).rows.map((r) => r.pid);
    let us = 0;
    for (const pid of pids) {
      try {
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        us += (Number(f[11]) + Number(f[12])) * 1e4; // utime + stime, in ticks of 10 ms
      } catch {
        // the backend ended meanwhile
      }
    }
    return us;
  };
  const cannon = async (url: string, s: number) => {
    const args = ['-c', '16', '-d', String(s), '-j', '-m', 'POST', '-H', 'content-type: application/json', '-H', `authorization: Bearer ${KEY}`, '-b', body, url];
    const { stdout } = await promisify(execFile)(AUTOCANNON, args, { maxBuffer: 1 << 24 });
    return JSON.parse(stdout) as { requests: { total: number }; non2xx: number };
  };
  for (const url of Object.values(targets)) await cannon(url, 1);
  const out = (...cells: unknown[]) => process.stdout.write(cells.join('\t') + '\n');
  out('engine', 'round', 'route', 'req/s', 'server CPU µs/request', 'database CPU µs/request', 'mean batch');
  for (let round = 0; round < rounds; round++) {
    for (const [name, url] of Object.entries(targets)) {
      const c0 = process.cpuUsage();
      const b0 = await backendMicros();
      const n0 = sizes.length;
      const t0 = performance.now();
      const r = await cannon(url, seconds);
      const s = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      const b = (await backendMicros()) - b0;
      if (r.non2xx > 0) throw new Error(`${name}: ${r.non2xx} non-2xx answers`);
      const batch = sizes.slice(n0);
      const n = r.requests.total;
      out(engine, round + 1, name, Math.round(n / s), ((c.user + c.system) / n).toFixed(1), engine === 'postgres' ? (b / n).toFixed(1) : '–', batch.length ? (batch.reduce((a, x) => a + x, 0) / batch.length).toFixed(1) : '–');
    }
  }
} finally {
  await monitor.end().catch(() => undefined);
  await floor.close();
  await app.stop();
  await store.close();
}

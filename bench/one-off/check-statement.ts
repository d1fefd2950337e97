/**
 * One-off measurement (not part of `npm run bench`): the PostgreSQL backend CPU of the batched check
 * statement alone (docs/adr/0018-*, 0024-*), on the core data set of scenario 4 (quick sizes). The
 * statement is the one the check batcher sends — captured from a batch of real checks — and runs
 * here on one connection, `runs` times per batch size, the items being scenario 4's check (a member
 * of `small` reading a project through the workspace). Two sessions alternate: `pool`, with the
 * settings of the batcher's pool (`Database.genericPlans`), and `generic only`, with
 * plan_cache_mode = force_generic_plan alone (what that pool had before ADR 0024). CPU is the
 * backend's utime + stime from /proc, so PostgreSQL must run on this machine.
 *
 *   node --import tsx bench/one-off/check-statement.ts [sizes=1,6,16] [runs=2000] [reps=3]
 *
 * PostgreSQL: LOCKSTEP_BENCH_PG or the default URL; a fresh schema, dropped afterwards.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { createLockstep } from '../../src/app.ts';
import type { Sql, Statement } from '../../src/storage/database.ts';
import { loadDataset, openStore } from '../lib/lockstep.ts';
import { coreDataset, ORG, project, user } from '../lib/model.ts';

const sizes = (process.argv[2] ?? '1,6,16').split(',').map(Number);
const runs = Number(process.argv[3] ?? 2000);
const reps = Number(process.argv[4] ?? 3);
const PG = process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const APP = `lockstep_check_statement_${process.pid}`;
process.env.PGAPPNAME = APP;

const store = await openStore('postgres', PG);
const sessions: Array<{ name: string; client: pg.Client }> = [];
try {
  await loadDataset(store.db, coreDataset(1000, 300));
  // The batch statement's text, as the batcher sends it.
  let text: string | undefined;
  const g = store.db.genericPlans!;
  const all = (async (s: Statement, p?: readonly unknown[]) => {
    if (typeof s === 'string' && Array.isArray(p?.[0])) text = s;
    return g.all(s, p);
  }) as Sql['all'];
  const ls = createLockstep({ ...store.db, genericPlans: { ...g, all } }, { verify: 'always' });
  const req = { subject: user(10), permission: 'project.read', resource: project(7) };
  await Promise.all([1, 2, 3].map(() => ls.check(ORG, req)));
  if (text === undefined) throw new Error('no batch statement seen');
  const [pool] = await g.all<{ options: string }>("SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) AS options FROM pg_settings WHERE name IN ('plan_cache_mode', 'enable_seqscan', 'jit')");
  process.stdout.write(`batcher's pool: ${pool!.options}\n`);
  const schema = store.target.schema!;
  const open = async (name: string, options: string) => {
    const client = new pg.Client({ connectionString: PG, options: `-c search_path=${schema} ${options}`, application_name: `${APP}_${sessions.length}` });
    await client.connect();
    sessions.push({ name, client });
  };
  await open('pool', '-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c jit=off');
  await open('generic only', '-c plan_cache_mode=force_generic_plan');
  const cpu = async (c: pg.Client) => {
    const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) * 1e4; // utime + stime, in ticks of 10 ms
  };
  const now = Date.now();
  const argsOf = (n: number) => [
    Array.from({ length: n }, (_, i) => i), Array(n).fill(ORG), Array(n).fill(req.subject), Array(n).fill(req.resource), Array(n).fill(req.permission), Array(n).fill(now),
    // the verification flags of `verify: always` (standard, high, critical)
    1, 1, 1,
  ];
  const results = new Map<string, number[]>();
  for (let rep = 0; rep < reps; rep++) {
    for (const n of sizes) {
      for (const { name, client } of sessions) {
        const query = { name: 'check_batch', text, values: argsOf(n) };
        for (let i = 0; i < 20; i++) await client.query(query);
        const c0 = await cpu(client);
        for (let i = 0; i < runs; i++) await client.query(query);
        const us = (await cpu(client)) - c0;
        const key = `${name}\t${n}`;
        results.set(key, [...(results.get(key) ?? []), us / runs]);
      }
    }
  }
  process.stdout.write('session\titems\tbackend CPU µs/statement (median of reps)\tµs/item\tall reps\n');
  for (const [key, xs] of results) {
    const n = Number(key.split('\t')[1]);
    const m = [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    process.stdout.write(`${key}\t${m.toFixed(0)}\t${(m / n).toFixed(1)}\t${xs.map((x) => x.toFixed(0)).join(' ')}\n`);
  }
} finally {
  for (const s of sessions) await s.client.end().catch(() => undefined);
  await store.close();
}

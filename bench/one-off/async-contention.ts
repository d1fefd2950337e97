/**
 * One-off measurement (not part of `npm run bench`): where one organization's writes and its
 * reconciliation batches spend their time at a sustained rate (docs/adr/0013-*). Membership toggles
 * of `team` (scenario 2's data set, 400 subjects) at RATE/s (default 500) for 3 s, at most 64 in
 * flight, through `lockstepSystem(CFG)` (default `async+verify`: in-process worker). Prints the
 * achieved rate, write p50, the process's CPU share, the time and count of each statement and
 * transaction (by its first statement) at the Database seam, and what `pg_stat_activity` showed
 * (sampled every 5 ms; active and idle-in-transaction connections of the server — other users of
 * the same server show up too).
 *
 *   RATE=500 CFG=async+verify node --import tsx bench/one-off/async-contention.ts
 */
import pg from 'pg';
import * as L from '../lib/lockstep.ts';
import * as M from '../lib/model.ts';
const url = process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const store = await L.openStore('postgres', url);
try {
  const N = Number(process.env.SUBJECTS ?? 400);
  await L.loadDataset(store.db, M.propagationDataset(N));
  const per = new Map<string, { n: number; ms: number }>();
  const txs = new Map<string, { n: number; ms: number; stmts: number; wait: number }>();
  const { compileStatement } = await import('../../src/storage/sql.ts');
  const db0 = store.db;
  const wdb = { ...db0, transaction: (fn: any) => { return db0.transaction(async (tx: any) => {
    const t = performance.now(); let first = ''; let stmts = 0;
    const w = (f: any) => async (st: any, p: any) => { stmts++; const text = compileStatement(st, p).text.replace(/\s+/g, ' ').slice(0, 50); if (!first) first = text;
      const t1 = performance.now(); try { return await f(st, p); } finally { const e = per.get(text) ?? { n: 0, ms: 0 }; e.n++; e.ms += performance.now() - t1; per.set(text, e); } };
    let kind = '';
    const w2 = (f: any) => { const g = w(f); return async (st: any, p: any) => { const text = compileStatement(st, p).text; if (!kind && text.startsWith('SAVEPOINT')) kind = 'shared write '; if (!kind && text.includes('INSERT INTO changes')) kind = 'lone write '; if (!kind && text.startsWith('SELECT * FROM jobs')) kind = 'worker batch '; return g(st, p); }; };
    try { return await fn({ ...tx, get: w2(tx.get), all: w2(tx.all), run: w2(tx.run) }); } finally {
      const key = kind + first; const e = txs.get(key) ?? { n: 0, ms: 0, stmts: 0, wait: 0 }; e.n++; e.ms += performance.now() - t; e.stmts += stmts; txs.set(key, e); } }); } };
  const sys = L.lockstepSystem({ ...store, db: wdb }, (process.env.CFG ?? 'async+verify') as any);
  const mon = new pg.Client({ connectionString: url });
  await mon.connect();
  const samples = new Map<string, number>();
  let stop = false;
  const sampler = (async () => {
    while (!stop) {
      const r = await mon.query(`SELECT state, wait_event_type, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 60) AS q FROM pg_stat_activity WHERE application_name = '' AND pid <> pg_backend_pid() AND state <> 'idle' AND query NOT LIKE 'LISTEN%'`);
      for (const row of r.rows) { const k = `${row.state} | ${row.wait_event_type ?? ''}:${row.wait_event ?? ''} | ${row.q}`; samples.set(k, (samples.get(k) ?? 0) + 1); }
      await new Promise((res) => setTimeout(res, 5));
    }
  })();
  const member = new Array(N).fill(false);
  const busy = new Array(N).fill(false);
  let inflight = 0, done = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const rate = Number(process.env.RATE ?? 500), secs = Number(process.env.SECS ?? 3);
  const lat: number[] = [];
  for (let k = 0; k < rate * secs; k++) {
    const wait = t0 + (k * 1000) / rate - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (inflight >= 64) continue;
    let i = Math.floor(Math.random() * N);
    if (busy[i]) continue;
    busy[i] = true; inflight++;
    const s = performance.now();
    (member[i] ? sys.removeMember('team', M.user(i)) : sys.addMember('team', M.user(i))).then(() => { member[i] = !member[i]; busy[i] = false; inflight--; done++; lat.push(performance.now() - s); });
  }
  while (inflight > 0) await new Promise((r) => setTimeout(r, 5));
  const el = (performance.now() - t0) / 1000;
  // How long the queue takes to drain after the last write, and jobs claimed more than once (a
  // lease that lapsed: taken over).
  const tq = performance.now();
  while (Number((await store.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM jobs WHERE state <> 'done'"))!.n) > 0 && performance.now() - tq < 60_000) await new Promise((r) => setTimeout(r, 10));
  console.log('queue drained in ms', Math.round(performance.now() - tq), 'jobs claimed twice or more', await store.db.all("SELECT scope, claims, attempts, last_error FROM jobs WHERE claims > 1 OR attempts > 0 LIMIT 5"));
  const cpu = process.cpuUsage(cpu0);
  console.log('node cpu share', ((cpu.user + cpu.system) / 1e6 / el).toFixed(2));
  stop = true; await sampler;
  lat.sort((a, b) => a - b);
  console.log({ achieved: Math.round(done / el), p50: lat[lat.length >> 1], jobs: await store.db.all("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state") });
  for (const [k, v] of [...per].sort((a, b) => b[1].ms - a[1].ms).slice(0, 16)) console.log('stmt', v.n, 'total ms', v.ms.toFixed(0), 'avg', (v.ms / v.n).toFixed(2), k);
  for (const [k, v] of txs) console.log('tx', v.n, 'avg ms', (v.ms / v.n).toFixed(2), 'stmts/tx', (v.stmts / v.n).toFixed(1), k);
  for (const [k, v] of [...samples].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(v, k);
  await mon.end();
  await sys.close();
} finally { await store.close(); }

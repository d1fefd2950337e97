/**
 * One-off measurement (not part of `npm run bench`): one Lockstep configuration (CFG, default
 * `async+verify`) through scenario 2's drive loop (bench/scenarios/propagation.ts, unchanged: its
 * writes and its probe) on PostgreSQL, SUBJECTS (2,000) subjects, RATE/s (500) for SECS (10), and
 * where the time went meanwhile: this process's CPU and event-loop utilization, its event loop's
 * delay, a trivial statement's round trip from this process, the CPU of this run's own PostgreSQL
 * backends (by application_name, from /proc), and the machine's busy cores (everyone's).
 *
 * Options: ACTIVITY=n prints the n most frequent (state, wait, statement) of our backends sampled
 * from pg_stat_activity every 5 ms; TIMELINE=ms prints the queue and our backends' waits every ms
 * (a stall shows there); EXPLAIN_AT=s explains the worker's two claim statements s seconds in;
 * PROBE_MIN_MS=n lets the probe check a subject at most once per n ms (an experiment on the probe's
 * own cost: not the scenario's method).
 *
 *   CFG=async+verify SUBJECTS=2000 SECS=10 RATE=500 node --import tsx bench/one-off/propagation-one.ts
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import * as L from '../lib/lockstep.ts';
import * as M from '../lib/model.ts';
import { drive } from '../scenarios/propagation.ts';

const base = process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
// Our connections carry an application name: the server's CPU and activity are counted for them only.
const APP = `lockstep-one-${process.pid}`;
const url = `${base}${base.includes('?') ? '&' : '?'}application_name=${APP}`;
const N = Number(process.env.SUBJECTS ?? 2000);
const SECS = Number(process.env.SECS ?? 10);
const RATE = Number(process.env.RATE ?? 500);
const CFG = (process.env.CFG ?? 'async+verify') as L.LockstepConfig;
const TICK = 100; // clock ticks per second (Linux USER_HZ)

/** CPU seconds of each of the given processes (by pid). */
function cpuOf(pids: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const pid of pids) {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      m.set(pid, (Number(f[11]) + Number(f[12])) / TICK);
    } catch {
      /* gone */
    }
  }
  return m;
}
/** [busy, total] CPU seconds of the whole machine. */
function machineCpu(): [number, number] {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + f[4]!;
  const total = f.reduce((a, b) => a + b, 0);
  return [(total - idle) / TICK, total / TICK];
}

const store = await L.openStore('postgres', url);
try {
  await L.loadDataset(store.db, M.propagationDataset(N));
  const inner = L.lockstepSystem(store, CFG);
  // PROBE_MIN_MS > 0: the probe checks one subject at most once per PROBE_MIN_MS (the wrapper waits
  // out the rest before checking): an experiment on how much the probe's own load costs.
  const gap = Number(process.env.PROBE_MIN_MS ?? 0);
  const last = new Map<string, number>();
  let checkMs = 0;
  const sys = {
    ...inner,
    check: async (s: string, p: string, r: string, t?: unknown) => {
      if (gap > 0) {
        const wait = (last.get(s) ?? -Infinity) + gap - performance.now();
        if (wait > 0) await new Promise((res) => setTimeout(res, wait));
        last.set(s, performance.now());
      }
      const t0 = performance.now();
      try {
        return await inner.check(s, p, r, t);
      } finally {
        checkMs += performance.now() - t0;
      }
    },
  };
  const mon = new pg.Client({ connectionString: base });
  await mon.connect();
  const ours = async () => (await mon.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [APP])).rows.map((r) => r.pid);
  // pg_stat_activity of our connections every 5 ms: what each was doing (state, wait, statement).
  const samples = new Map<string, number>();
  let nSamples = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const r = await mon.query(`SELECT state, wait_event_type, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) AS q FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'`, [APP]);
      nSamples++;
      for (const row of r.rows) {
        const k = `${row.state === 'active' ? 'active' : 'idle-in-tx'} | ${row.wait_event_type ?? 'CPU'}:${row.wait_event ?? ''} | ${row.q}`;
        samples.set(k, (samples.get(k) ?? 0) + 1);
      }
      await new Promise((res) => setTimeout(res, 5));
    }
  })();
  // The event loop's delay (how late a timer fires), and a trivial statement's round trip from this
  // process every 10 ms on a connection of its own: what one round trip of a transaction costs here.
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const rt = new pg.Client({ connectionString: base });
  await rt.connect();
  const rts: number[] = [];
  let rtOn = true;
  const rtLoop = (async () => {
    while (rtOn) {
      const t = performance.now();
      await rt.query('SELECT 1');
      rts.push(performance.now() - t);
      await new Promise((res) => setTimeout(res, 10));
    }
  })();
  const c0 = process.cpuUsage();
  const e0 = performance.eventLoopUtilization();
  const pgStart = cpuOf(await ours());
  const [b0, t0] = machineCpu();
  const w0 = performance.now();
  // EXPLAIN_AT=s: s seconds in, the plans of the worker's two claims, on the queue as it then stands
  // (in a transaction rolled back: the rows it locks meanwhile are skipped by the worker's claims).
  const explainAt = process.env.EXPLAIN_AT;
  const explained = explainAt === undefined ? Promise.resolve([] as string[]) : (async () => {
    await new Promise((res) => setTimeout(res, Number(explainAt) * 1000));
    const ex = new pg.Client({ connectionString: base, options: `-c search_path=${store.target.schema}` });
    await ex.connect();
    const out: string[] = [];
    const idle = "NOT EXISTS (SELECT 1 FROM jobs r WHERE r.org_id = j.org_id AND r.scope = j.scope AND r.state IN ('running', 'retrying'))";
    const now = Date.now();
    const qs = {
      any: `SELECT j.id FROM jobs j WHERE (j.state = 'pending' AND ${idle}) OR (j.state = 'running' AND j.lease_expires_at < ${now}) OR (j.state = 'retrying' AND j.run_at <= ${now}) ORDER BY j.priority, j.created_at, j.id LIMIT 1 FOR UPDATE SKIP LOCKED`,
      subjects: `SELECT j.id FROM jobs j WHERE j.org_id = '${M.ORG}' AND j.state = 'pending' AND j.scope LIKE 'subject:%' AND ${idle} ORDER BY j.priority, j.created_at, j.id LIMIT 63 FOR UPDATE SKIP LOCKED`,
    };
    for (const [k, q] of Object.entries(qs)) {
      await ex.query('BEGIN');
      const r = await ex.query(`EXPLAIN (ANALYZE, BUFFERS) ${q}`);
      await ex.query('ROLLBACK');
      out.push(`--- claim ${k}`, ...r.rows.map((x: Record<string, string>) => x['QUERY PLAN']!));
    }
    const counts = await ex.query('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state');
    out.push('jobs by state: ' + JSON.stringify(counts.rows));
    await ex.end();
    return out;
  })();
  // TIMELINE=ms: every ms, the queue (jobs by state, the oldest open job's age) and what our
  // connections wait on — to see a stall as it happens.
  const tl = process.env.TIMELINE === undefined ? undefined : (() => {
    let on = true;
    const c = new pg.Client({ connectionString: base, options: `-c search_path=${store.target.schema}` });
    const done = (async () => {
      await c.connect();
      while (on) {
        const t = ((performance.now() - w0) / 1000).toFixed(1);
        const q = await c.query(`SELECT state, COUNT(*)::int AS n, (extract(epoch from now()) * 1000 - MIN(created_at))::int AS oldest FROM jobs WHERE state <> 'done' GROUP BY state`);
        const a = await c.query(`SELECT state, wait_event_type AS w, wait_event AS e, left(regexp_replace(query, '\\s+', ' ', 'g'), 50) AS q, (extract(epoch from now() - xact_start) * 1000)::int AS xact_ms FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle' ORDER BY xact_start`, [APP]);
        console.log(`t=${t}s jobs ${q.rows.map((r) => `${r.state}:${r.n}(oldest ${r.oldest} ms)`).join(' ')} | ${a.rows.map((r) => `[${r.state === 'active' ? 'A' : 'T'} ${r.w ?? ''}:${r.e ?? ''} ${r.xact_ms}ms ${r.q}]`).join(' ')}`);
        await new Promise((res) => setTimeout(res, Number(process.env.TIMELINE)));
      }
      await c.end();
    })();
    return async () => { on = false; await done; };
  })();
  const row = await drive(sys, N, RATE, SECS);
  await tl?.();
  for (const line of await explained) console.log(line);
  const wall = (performance.now() - w0) / 1000;
  const c = process.cpuUsage(c0);
  const elu = performance.eventLoopUtilization(e0);
  eld.disable();
  rtOn = false;
  await rtLoop;
  await rt.end();
  rts.sort((a, b) => a - b);
  const q = (x: number) => +(rts[Math.floor(x * (rts.length - 1))] ?? NaN).toFixed(2);
  const pgEnd = cpuOf(await ours());
  let pgCpu = 0;
  for (const [pid, t] of pgEnd) pgCpu += t - (pgStart.get(pid) ?? 0);
  sampling = false;
  await sampler;
  await mon.end();
  const [b1, t1] = machineCpu();
  await sys.close();
  const cores = (t1 - t0) / wall;
  console.log(JSON.stringify({
    cfg: CFG, subjects: N, secs: SECS, rate: RATE, wall: +wall.toFixed(2),
    achieved: row.achievedRate, issuedRate: row.issuedRate, drainMs: row.drainMs, writes: { p50: row.writes?.p50, p99: row.writes?.p99 }, grantLag: { p50: row.grantLag?.p50, p99: row.grantLag?.p99, max: row.grantLag?.max },
    grants: row.grants, neverGranted: row.neverGranted, staleAllows: row.staleAllows, checks: row.checks, checksPerSec: Math.round((row.checks ?? 0) / wall), checkMsMean: +(checkMs / (row.checks || 1)).toFixed(2), probeMinMs: gap,
    eventLoopDelayMs: { p50: +(eld.percentile(50) / 1e6).toFixed(2), p99: +(eld.percentile(99) / 1e6).toFixed(2), mean: +(eld.mean / 1e6).toFixed(2) },
    select1Ms: { p50: q(0.5), p90: q(0.9), p99: q(0.99) },
    cpu: { node: +((c.user + c.system) / 1e6 / wall).toFixed(2), nodeEventLoop: +elu.utilization.toFixed(2), postgres: +(pgCpu / wall).toFixed(2), backends: pgEnd.size, machine: +((b1 - b0) / wall).toFixed(2), cores: +cores.toFixed(1) },
  }));
  if (process.env.ACTIVITY) {
    console.log(`pg_stat_activity: ${nSamples} samples; mean connections per sample by state | wait | statement`);
    for (const [k, v] of [...samples].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.ACTIVITY))) console.log((v / nSamples).toFixed(3).padStart(7), k);
  }
} finally {
  await store.close();
}

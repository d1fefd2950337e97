/**
 * Scenario 8 — several `serve` processes writing one organization: 1, 2 and 4 real `lockstep serve`
 * child processes (node + tsx on the sources, `--port 0 --workers 1`) on ONE store — a fresh
 * PostgreSQL schema, or one SQLite file (WAL) — and a closed-loop load generator in this process:
 * `httpConnections` clients, each owning disjoint subjects, each toggling its subjects' membership of
 * `team` (3 viewer assignments) with PUT / DELETE …/groups/team/members/:subject, one request at a time,
 * the clients spread round-robin over the processes. The same total concurrency for every process
 * count, so the ratio vs 1 process says what more processes buy. Each propagation policy (every
 * change sync; every change async) runs on the same processes, one after the other.
 *
 * Checked, not assumed: a probe checks recently written subjects through ANOTHER process with
 * at_least_as_fresh at the write's revision (an allow after a revocation is a stale allow, a deny
 * after a grant a missed grant; a probe whose subject was written again meanwhile is discarded);
 * after each run the queue is drained and the drift audit (src/propagation/drift.ts) compares the read
 * model with a full recompute, and the memberships with what the clients were told.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureAdminKey } from '../../src/api/keys.ts';
import { createLockstep } from '../../src/app.ts';
import { SYNC_POLICY, type PropagationPolicy } from '../../src/domain/propagation.ts';
import { auditDrift } from '../../src/propagation/drift.ts';
import type { Ctx } from '../lib/context.ts';
import { ASYNC_POLICY, loadDataset, openStore, type Engine, type Store } from '../lib/lockstep.ts';
import { ORG, project, propagationDataset, user } from '../lib/model.ts';
import { notRun } from '../lib/system.ts';
import { round, sleep, summarize, type Summary } from '../stats.ts';

export interface MultiServeRow {
  system: string;
  engine: string;
  processes: number;
  notRun?: string;
  connections?: number;
  seconds?: number;
  /** membership changes answered 2xx within the measured window */
  changes?: number;
  perSecond?: number;
  /** perSecond ÷ the 1-process row's of the same engine and policy, same run */
  vsOne?: number;
  writes?: Summary;
  /** answers other than 2xx, and transport errors (the first one's text in firstError) */
  errors?: number;
  firstError?: string;
  probes?: number;
  staleAllows?: number;
  missedGrants?: number;
  /** probes answered 503 (the read model had not applied the revision within the freshness timeout) */
  probeUnavailable?: number;
  probeErrors?: number;
  /** CPU the serve processes (together) and this load generator used in the measured window, in cores (Linux /proc; absent elsewhere) */
  serveCpu?: number;
  clientCpu?: number;
  /** CPU the whole machine used in the measured window, in cores: everything, the database server included (Linux /proc/stat) */
  machineCpu?: number;
  /** after the run: queue drained in settleMs; drift = read model vs a full recompute */
  settleMs?: number;
  failedJobs?: number;
  drift?: { missing: number; extra: number; pendingJobs: number };
  /** subjects whose stored membership differs from the last answer the clients got */
  membershipMismatch?: number;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const ADMIN_KEY = 'lsk_bench_' + 'm'.repeat(40);
const SUBJECTS_PER_CLIENT = 32;
const PROBE_CONC = 2;
const POLICIES: Array<[string, PropagationPolicy]> = [
  ['lockstep sync', SYNC_POLICY],
  ['lockstep async+verify', ASYNC_POLICY],
];

interface Serve {
  child: ChildProcess;
  url: string;
  agent: http.Agent;
  stderr: () => string;
}

/** One `lockstep serve` on the store; resolves once it says where it listens. */
function startServe(store: Store): Promise<Serve> {
  const db = store.engine === 'sqlite' ? store.target.file! : (() => {
    const u = new URL(store.target.url!);
    u.searchParams.set('schema', store.target.schema!);
    return u.toString();
  })();
  const env: NodeJS.ProcessEnv = { ...process.env, LOCKSTEP_ADMIN_KEY: ADMIN_KEY, LOCKSTEP_LOG_LEVEL: 'warn' };
  for (const k of ['LOCKSTEP_DB', 'LOCKSTEP_PORT', 'LOCKSTEP_HOST', 'LOCKSTEP_VERIFY', 'LOCKSTEP_WORKERS']) delete env[k];
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', '--db', db, '--port', '0', '--host', '127.0.0.1', '--workers', '1', '--verify', 'always'], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let buf = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (buf.length < 20_000) buf += d.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start within 60 s; stderr: ${buf.slice(0, 500)}`)), 60_000);
    const onData = () => {
      const m = /serving on (http:\/\/[^\s]+)/.exec(buf);
      if (!m) return;
      clearTimeout(timer);
      child.stderr!.off('data', onData);
      resolve({ child, url: m[1]!, agent: new http.Agent({ keepAlive: true, maxSockets: 64 }), stderr: () => buf });
    };
    child.stderr!.on('data', onData);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code ?? signal}) before listening: ${buf.slice(0, 500)}`));
    });
  });
}

async function stopServe(s: Serve): Promise<void> {
  s.agent.destroy();
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => s.child.once('exit', () => r()));
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** utime + stime of a process, in seconds (from /proc/PID/stat; undefined where there is none). */
function cpuSeconds(pid: number | undefined): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields 14 and 15 of stat(5), counted after the command name: utime, stime (clock ticks, 100/s on Linux)
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}
/**
 * CPU time the whole machine spent busy (every process, the database server's included), in
 * seconds (from /proc/stat's first line: all but idle and iowait; undefined where there is none).
 */
function machineBusySeconds(): number | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (clock ticks, 100/s on Linux)
    return f.slice(0, 8).reduce((a, x, i) => (i === 3 || i === 4 ? a : a + x), 0) / 100;
  } catch {
    return undefined;
  }
}

const serveCpuSeconds = (serves: Serve[]) => {
  const xs = serves.map((s) => cpuSeconds(s.child.pid));
  return xs.some((x) => x === undefined) ? undefined : xs.reduce<number>((a, x) => a + x!, 0);
};

interface Answer {
  status: number;
  body: { revision?: number; allowed?: boolean; title?: string; detail?: string } | null;
}

function call(s: Serve, method: string, path: string, body?: unknown): Promise<Answer> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${s.url}${path}`,
      {
        method,
        agent: s.agent,
        headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let parsed: Answer['body'] = null;
          try {
            parsed = text ? (JSON.parse(text) as Answer['body']) : null;
          } catch {
            parsed = { detail: text.slice(0, 200) };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

const membersPath = (s: string) => `/v1/organizations/${ORG}/groups/team/members/${s}`;

/** One measured run: warm-up, then `seconds` of closed-loop writes with the probe; then settle and audit. */
async function drive(ctx: Ctx, store: Store, serves: Serve[], member: boolean[], warmupSeconds: number): Promise<Omit<MultiServeRow, 'system' | 'engine' | 'processes' | 'vsOne'>> {
  const { size } = ctx;
  const C = size.httpConnections;
  const N = serves.length;
  const touched = new Array<number>(member.length).fill(0);
  const uncertain = new Set<number>();
  const writes: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const fail = (what: string) => {
    errors++;
    firstError ??= what.slice(0, 300);
  };
  let measuring = false;
  let stop = false;
  let changes = 0;
  const queue: Array<{ i: number; grant: boolean; revision: number; at: number; via: number }> = [];

  const client = async (k: number) => {
    const via = k % N;
    const s = serves[via]!;
    for (let j = 0; !stop; j = (j + 1) % SUBJECTS_PER_CLIENT) {
      const i = k * SUBJECTS_PER_CLIENT + j;
      if (uncertain.has(i)) continue;
      const add = !member[i];
      touched[i]!++;
      const t = performance.now();
      let a: Answer;
      try {
        a = await call(s, add ? 'PUT' : 'DELETE', membersPath(user(i)));
      } catch (e) {
        uncertain.add(i);
        fail(`transport: ${(e as Error).message}`);
        continue;
      }
      const dt = performance.now() - t;
      if (a.status < 200 || a.status > 299 || typeof a.body?.revision !== 'number') {
        uncertain.add(i);
        fail(`${add ? 'PUT' : 'DELETE'} ${a.status}: ${a.body?.title ?? ''} ${a.body?.detail ?? ''}`);
        continue;
      }
      member[i] = add;
      if (measuring && !stop) {
        writes.push(dt);
        changes++;
      }
      queue.push({ i, grant: add, revision: a.body.revision, at: touched[i]!, via });
      if (queue.length > 256) queue.splice(0, queue.length - 64);
      if (uncertain.size === member.length) break;
    }
  };

  let probes = 0;
  let staleAllows = 0;
  let missedGrants = 0;
  let probeUnavailable = 0;
  let probeErrors = 0;
  const prober = async () => {
    while (!stop) {
      const p = queue.pop();
      if (!p) {
        await sleep(2);
        continue;
      }
      if (touched[p.i] !== p.at) continue;
      const other = serves[(p.via + 1) % N]!;
      let a: Answer;
      try {
        a = await call(other, 'POST', `/v1/organizations/${ORG}/check`, { subject: user(p.i), permission: 'project.read', resource: project(0), consistency: { mode: 'at_least_as_fresh', revision: p.revision } });
      } catch (e) {
        probeErrors++;
        firstError ??= `probe transport: ${(e as Error).message}`;
        continue;
      }
      if (touched[p.i] !== p.at) continue; // written again meanwhile: the answer proves nothing
      if (a.status === 503) {
        probeUnavailable++;
        continue;
      }
      if (a.status !== 200 || typeof a.body?.allowed !== 'boolean') {
        probeErrors++;
        firstError ??= `probe ${a.status}: ${a.body?.title ?? ''} ${a.body?.detail ?? ''}`.slice(0, 300);
        continue;
      }
      probes++;
      if (p.grant && !a.body.allowed) missedGrants++;
      if (!p.grant && a.body.allowed) staleAllows++;
    }
  };

  const running = [...Array.from({ length: C }, (_, k) => client(k)), ...Array.from({ length: PROBE_CONC }, () => prober())];
  await sleep(warmupSeconds * 1000);
  measuring = true;
  const t0 = performance.now();
  const cpu0 = serveCpuSeconds(serves);
  const busy0 = machineBusySeconds();
  const own0 = process.cpuUsage();
  await sleep(size.seconds * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  const cpu1 = serveCpuSeconds(serves);
  const busy1 = machineBusySeconds();
  const own = process.cpuUsage(own0);
  stop = true;
  await Promise.all(running);

  // Settle: every job of the organization finished, then audit on one snapshot.
  const s0 = performance.now();
  let open = 1;
  while (performance.now() - s0 < 60_000) {
    open = Number((await store.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM jobs WHERE org_id = $1 AND state IN ('pending', 'running', 'retrying')", [ORG]))?.n ?? 0);
    if (open === 0) break;
    await sleep(20);
  }
  const settleMs = performance.now() - s0;
  const failedJobs = Number((await store.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM jobs WHERE org_id = $1 AND state NOT IN ('pending', 'running', 'retrying', 'done')", [ORG]))?.n ?? 0);
  const report = await store.db.snapshot((tx) => auditDrift(tx, ORG, 5, Date.now()));
  const stored = new Set((await store.db.all<{ subject_id: string }>("SELECT subject_id FROM memberships WHERE org_id = $1 AND group_id = 'team'", [ORG])).map((r) => r.subject_id));
  let membershipMismatch = 0;
  for (let i = 0; i < member.length; i++) if (!uncertain.has(i) && stored.has(user(i)) !== member[i]) membershipMismatch++;
  return {
    connections: C,
    seconds: round(elapsed, 2),
    changes,
    perSecond: round(changes / elapsed, 1),
    writes: summarize(writes),
    ...(cpu0 !== undefined && cpu1 !== undefined ? { serveCpu: round((cpu1 - cpu0) / elapsed, 2) } : {}),
    clientCpu: round((own.user + own.system) / 1e6 / elapsed, 2),
    ...(busy0 !== undefined && busy1 !== undefined ? { machineCpu: round((busy1 - busy0) / elapsed, 2) } : {}),
    errors,
    ...(firstError ? { firstError } : {}),
    probes,
    staleAllows,
    missedGrants,
    probeUnavailable,
    probeErrors,
    settleMs: round(settleMs, 1),
    failedJobs,
    drift: { missing: report.missing, extra: report.extra, pendingJobs: open },
    membershipMismatch,
  };
}

export async function multiServe(ctx: Ctx): Promise<MultiServeRow[]> {
  const { size } = ctx;
  const rows: MultiServeRow[] = [];
  const counts = ctx.mode === 'smoke' ? [1, 2] : [1, 2, 4];
  const warmup = ctx.mode === 'smoke' ? 0.5 : 1;
  const subjects = size.httpConnections * SUBJECTS_PER_CLIENT;
  for (const engine of ['sqlite', 'postgres'] as Engine[]) {
    const skip = !ctx.engines.includes(engine) ? 'engine not selected (--engines)' : engine === 'postgres' ? ctx.pgDown : null;
    for (const n of counts) {
      const mine = (system: string): MultiServeRow => ({ system, engine, processes: n });
      if (skip) {
        for (const [system] of POLICIES) rows.push({ ...mine(system), notRun: skip });
        continue;
      }
      ctx.log(`multi-serve: ${n} serve process${n > 1 ? 'es' : ''} on one ${engine} store`);
      let store: Store | undefined;
      const serves: Serve[] = [];
      try {
        store = await openStore(engine, ctx.pg, { file: join(ctx.tmp, `multi-serve-${n}.db`), poolMax: 2 });
        await loadDataset(store.db, propagationDataset(subjects));
        // The key is registered before the processes start, so that none of them races another to insert it.
        await ensureAdminKey(store.db, ADMIN_KEY);
        const st = store;
        serves.push(...(await Promise.all(Array.from({ length: n }, () => startServe(st)))));
      } catch (e) {
        for (const [system] of POLICIES) rows.push({ ...mine(system), ...notRun(e) });
        for (const s of serves) await stopServe(s).catch(() => undefined);
        await store?.close().catch(() => undefined);
        continue;
      }
      const member = new Array<boolean>(subjects).fill(false);
      const ls = createLockstep(store.db, {});
      try {
        for (const [system, policy] of POLICIES) {
          try {
            await ls.putPropagationPolicy(ORG, policy);
            ctx.log(`multi-serve: ${system}, ${n} process${n > 1 ? 'es' : ''} (${engine}), ${size.httpConnections} connections for ${size.seconds}s`);
            const r = await drive(ctx, store, serves, member, warmup);
            const one = rows.find((x) => x.system === system && x.engine === engine && x.processes === 1 && !x.notRun);
            rows.push({ ...mine(system), ...r, ...(one?.perSecond && r.perSecond !== undefined ? { vsOne: round(r.perSecond / one.perSecond, 2) } : {}) });
          } catch (e) {
            rows.push({ ...mine(system), ...notRun(e) });
          }
        }
      } finally {
        for (const s of serves) {
          if (s.child.exitCode !== null) ctx.log(`multi-serve: a serve process had exited (${s.child.exitCode}): ${s.stderr().slice(-500)}`);
          await stopServe(s).catch(() => undefined);
        }
        await store.close().catch(() => undefined);
      }
    }
  }
  return rows;
}

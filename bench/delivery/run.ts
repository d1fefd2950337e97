/**
 * Delivery benchmark: Lockstep pushing its effective changes to loopback targets.
 *
 *  A. Revocations at a fixed rate (full: 1,000/s for 10 s) to two healthy targets and one that
 *     always fails, then the same for grants: the end-to-end window (decided → acknowledged) p50 /
 *     p99 / max per target, the achieved write rate, and each target's backlog over time.
 *  B. The deletion of a large group (full: 5,000 members × 5,000 assignments = 25 M pairs) to two
 *     healthy targets: how many requests each received, how many entries they carried, and when the
 *     last acknowledgement came (and when the read model converged).
 *
 *   npm run bench:delivery -- [--smoke|--quick|--full] [--engine sqlite|postgres] [--pg URL] [--out DIR]
 *
 * Times come from the database (decided_at of the change, acked_at of the delivery) and the wall
 * clock of this process; nothing here is asserted, test/bench/delivery-smoke.test.ts checks the shape.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLockstep } from '../../src/app.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import { createDeliverer } from '../../src/delivery/deliverer.ts';
import { createKeyStore } from '../../src/delivery/signing.ts';
import { createTargets } from '../../src/delivery/targets.ts';
import { enqueueJob } from '../../src/propagation/queue.ts';
import { createWorker } from '../../src/propagation/worker.ts';
import { sql, type Database } from '../../src/storage/database.ts';
import { openStore, type Engine } from '../lib/lockstep.ts';
import { machine } from '../run.ts';
import { summarize, table } from '../stats.ts';

type Mode = 'smoke' | 'quick' | 'full';
const SIZES: Record<Mode, { rate: number; seconds: number; members: number; assignments: number }> = {
  smoke: { rate: 100, seconds: 1, members: 40, assignments: 40 },
  quick: { rate: 300, seconds: 2, members: 300, assignments: 300 },
  full: { rate: 1000, seconds: 10, members: 5000, assignments: 5000 },
};
const ORG = 'bench';

interface Receiver {
  name: string;
  url: string;
  requests: number;
  bytes: number;
  close(): Promise<void>;
}

async function receiver(name: string, status: number): Promise<Receiver> {
  const r = { name, url: '', requests: 0, bytes: 0 } as Receiver;
  const server: Server = createServer((req, res) => {
    r.requests++;
    req.on('data', (c: Buffer) => (r.bytes += c.length));
    req.on('end', () => res.writeHead(status).end());
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  r.close = () => new Promise<void>((ok) => server.close(() => ok()));
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function insertRows(db: Database, table: string, cols: string[], rows: unknown[][]) {
  const per = Math.max(1, Math.floor(900 / cols.length));
  await db.transaction(async (tx) => {
    for (let i = 0; i < rows.length; i += per) {
      const values = rows.slice(i, i + per).map((r) => sql`(${sql.join(r)})`);
      await tx.run(sql`INSERT INTO ${sql.raw(table)} (${sql.raw(cols.join(', '))}) VALUES ${sql.join(values)}`);
    }
  });
}

export interface WindowRow {
  phase: 'revoke' | 'grant' | 'group-delete';
  target: string;
  messages: number;
  acked: number;
  parked: number;
  pending: number;
  attempts: number;
  windowMs: { p50: number; p99: number; max: number } | null;
}

export interface DeliveryBenchResults {
  mode: Mode;
  engine: Engine;
  command: string;
  machine: ReturnType<typeof machine>;
  sizes: (typeof SIZES)[Mode];
  load: { phase: 'revoke' | 'grant'; offered: number; achievedPerSecond: number; writes: number; drainedMs: number | null }[];
  windows: WindowRow[];
  backlog: { t: number; phase: string; byTarget: Record<string, number> }[];
  groupDelete: { pairs: number; requests: Record<string, number>; entries: Record<string, number>; convergedMs: number | null; lastAckMs: Record<string, number | null> } | null;
  elapsedSeconds: number;
}

async function windows(db: Database, phase: WindowRow['phase'], fromRevision: number, names: Map<string, string>): Promise<WindowRow[]> {
  const rows = await db.all<{ target_id: string; state: string; attempts: number; lag: number | null }>(
    `SELECT d.target_id, d.state, d.attempts, CASE WHEN d.state = 'acked' THEN d.acked_at - e.decided_at END AS lag
       FROM deliveries d JOIN delivery_events e ON e.org_id = d.org_id AND e.revision = d.revision AND e.seq = d.seq
      WHERE d.org_id = $1 AND d.revision > $2`,
    [ORG, fromRevision],
  );
  return [...names].map(([id, name]) => {
    const mine = rows.filter((r) => r.target_id === id);
    const lags = mine.filter((r) => r.lag !== null).map((r) => Number(r.lag));
    const s = lags.length ? summarize(lags) : null;
    return {
      phase,
      target: name,
      messages: mine.length,
      acked: lags.length,
      parked: mine.filter((r) => r.state === 'parked').length,
      pending: mine.filter((r) => r.state === 'pending').length,
      attempts: mine.reduce((n, r) => n + Number(r.attempts), 0),
      windowMs: s ? { p50: s.p50, p99: s.p99, max: s.max } : null,
    };
  });
}

export async function runDeliveryBench(opts: { mode: Mode; engine: Engine; pg: string; out?: string; command?: string; log?: (m: string) => void }): Promise<{ dir: string; results: DeliveryBenchResults }> {
  const t0 = performance.now();
  const log = opts.log ?? ((m: string) => process.stderr.write(`[bench:delivery ${((performance.now() - t0) / 1000).toFixed(0)}s] ${m}\n`));
  const size = SIZES[opts.mode];
  const store = await openStore(opts.engine, opts.pg);
  const db = store.db;
  const healthy = [await receiver('healthy-1', 200), await receiver('healthy-2', 200)];
  const failing = await receiver('failing', 500);
  const results: DeliveryBenchResults = {
    mode: opts.mode,
    engine: opts.engine,
    command: opts.command ?? `npm run bench:delivery -- --${opts.mode} --engine ${opts.engine}`,
    machine: machine(),
    sizes: size,
    load: [],
    windows: [],
    backlog: [],
    groupDelete: null,
    elapsedSeconds: 0,
  };
  const keys = createKeyStore(db);
  const deliverer = createDeliverer({ db, keys, issuer: () => 'http://bench.local', allowPrivate: true, pollMs: 20, timeoutMs: 2000 });
  const worker = createWorker({ db, pollMs: 20 });
  try {
    const ls = createLockstep(db, { defaultPolicy: SYNC_POLICY, onEnqueued: () => worker.wake() });
    await ls.putOrganization(ORG, {});
    await ls.putPermission(ORG, 'doc.read', { risk: 'standard' });
    await ls.putPermission(ORG, 'doc.delete', { risk: 'critical' });
    await ls.putRole(ORG, 'viewer', { permissions: ['doc.read'] });
    await ls.putResource(ORG, 'ws', 'main', {});
    await ls.putGroup(ORG, 'team', {});
    await ls.createAssignment(ORG, { principal: 'group:team', role: 'viewer', resource: 'ws:main' });
    const n = size.rate * size.seconds;
    const subjects = Array.from({ length: n }, (_, i) => `u${String(i).padStart(6, '0')}`);
    await insertRows(db, 'subjects', ['org_id', 'id', 'kind', 'active'], subjects.map((s) => [ORG, s, 'user', 1]));
    for (const s of subjects) await ls.addMember(ORG, 'team', s);

    const targets = createTargets({ db, now: Date.now, allowPrivate: true });
    const names = new Map<string, string>();
    for (const r of [...healthy, failing]) names.set((await targets.create(ORG, { name: r.name, kind: 'webhook', url: r.url, critical: r !== failing })).id, r.name);
    deliverer.start();
    worker.start();

    const sample = (phase: string) => async () => {
      const rows = await db.all<{ target_id: string; n: number }>("SELECT target_id, COUNT(*) AS n FROM deliveries WHERE state = 'pending' GROUP BY target_id");
      const byTarget = Object.fromEntries([...names].map(([id, name]) => [name, Number(rows.find((r) => r.target_id === id)?.n ?? 0)]));
      results.backlog.push({ t: Math.round(performance.now() - t0), phase, byTarget });
    };
    const healthyIds = [...names].filter(([, nm]) => nm !== 'failing').map(([id]) => id);
    const healthyBacklog = async () =>
      Number((await db.get<{ n: number }>(sql`SELECT COUNT(*) AS n FROM deliveries WHERE state = 'pending' AND target_id IN (${sql.join(healthyIds)})`))?.n ?? 0);

    for (const phase of ['revoke', 'grant'] as const) {
      const from = (await ls.getOrganization(ORG)).revision;
      log(`phase ${phase}: ${n} writes at ${size.rate}/s`);
      const tick = setInterval(() => void sample(phase)(), 250);
      const start = performance.now();
      const inflight = new Set<Promise<unknown>>();
      for (let i = 0; i < n; i++) {
        const due = start + (i * 1000) / size.rate;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        const p = (phase === 'revoke' ? ls.removeMember(ORG, 'team', subjects[i]!) : ls.addMember(ORG, 'team', subjects[i]!)).finally(() => inflight.delete(p));
        inflight.add(p);
        if (inflight.size >= 64) await Promise.race(inflight);
      }
      await Promise.all(inflight);
      const wrote = performance.now() - start;
      let drained: number | null = null;
      for (let k = 0; k < 1200; k++) {
        if ((await healthyBacklog()) === 0) {
          drained = Math.round(performance.now() - start);
          break;
        }
        await sleep(50);
      }
      clearInterval(tick);
      await sample(phase)();
      results.load.push({ phase, offered: size.rate, achievedPerSecond: Math.round((n / wrote) * 1000), writes: n, drainedMs: drained });
      results.windows.push(...(await windows(db, phase, from, names)));
    }

    // B. a large group, backfilled through a job before any target sees it, then deleted.
    log(`phase group-delete: ${size.members} × ${size.assignments}`);
    for (const r of [...healthy, failing]) r.requests = 0;
    const failingId = [...names].find(([, nm]) => nm === 'failing')![0];
    await targets.remove(ORG, failingId);
    names.delete(failingId);
    const members = Array.from({ length: size.members }, (_, i) => `m${String(i).padStart(6, '0')}`);
    await insertRows(db, 'subjects', ['org_id', 'id', 'kind', 'active'], members.map((s) => [ORG, s, 'user', 1]));
    await insertRows(db, 'groups', ['org_id', 'id', 'name'], [[ORG, 'big', 'big']]);
    // every group is its own ancestor in the nested-group closure (src/derivation/closure.ts)
    await insertRows(db, 'group_closure', ['org_id', 'ancestor_id', 'descendant_id', 'paths'], [[ORG, 'big', 'big', 1]]);
    await insertRows(db, 'memberships', ['org_id', 'group_id', 'subject_id'], members.map((s) => [ORG, 'big', s]));
    await insertRows(db, 'resources', ['org_id', 'ref', 'parent'], Array.from({ length: size.assignments }, (_, i) => [ORG, `doc:${i}`, 'ws:main']));
    await insertRows(db, 'assignments', ['org_id', 'id', 'principal_type', 'principal_id', 'role', 'resource', 'created_at'], Array.from({ length: size.assignments }, (_, i) => [ORG, `asg_big_${i}`, 'group', 'big', 'viewer', `doc:${i}`, Date.now()]));
    // The backfill is not an event the targets should see: the stream is paused while it runs.
    await db.run('DELETE FROM event_streams WHERE org_id = $1', [ORG]);
    const rev = (await ls.getOrganization(ORG)).revision;
    await db.transaction((tx) => enqueueJob(tx, { org: ORG, scope: 'group:big', direction: 'grant', priority: 1, revision: rev, now: Date.now(), newId: () => `bench${Date.now()}` }));
    worker.wake();
    for (;;) {
      if ((await ls.listJobs({ org: ORG, states: ['pending', 'running', 'retrying'] })).length === 0) break;
      await sleep(100);
    }
    await db.run('INSERT INTO event_streams (org_id, since_revision, created_at) VALUES ($1, $2, $3)', [ORG, rev, Date.now()]);
    const del = await ls.deleteGroup(ORG, 'big');
    const decided = Date.parse((await ls.getChange(ORG, del.revision)).decidedAt);
    const started = performance.now();
    const tick = setInterval(() => void sample('group-delete')(), 500);
    let convergedMs: number | null = null;
    for (let k = 0; k < 20 * 60 * 20; k++) {
      const c = await ls.getChange(ORG, del.revision);
      if (c.convergedAt && convergedMs === null) convergedMs = Date.parse(c.convergedAt) - decided;
      if (convergedMs !== null && (await healthyBacklog()) === 0) break;
      await sleep(50);
    }
    clearInterval(tick);
    const acks = await db.all<{ target_id: string; last: number | null; msgs: number }>(
      'SELECT target_id, MAX(acked_at) AS last, COUNT(*) AS msgs FROM deliveries WHERE org_id = $1 AND revision >= $2 GROUP BY target_id',
      [ORG, del.revision],
    );
    const entries = await db.all<{ body: string }>('SELECT body FROM delivery_events WHERE org_id = $1 AND revision >= $2', [ORG, del.revision]);
    const carried = entries.reduce((s, e) => {
      const b = JSON.parse(e.body) as { subjects: string[]; access: unknown[] };
      return s + b.subjects.length * b.access.length;
    }, 0);
    results.groupDelete = {
      pairs: size.members * size.assignments,
      requests: Object.fromEntries(healthy.map((r) => [r.name, r.requests])),
      entries: Object.fromEntries(healthy.map((r) => [r.name, carried])),
      convergedMs,
      lastAckMs: Object.fromEntries([...names].map(([id, nm]) => [nm, acks.find((a) => a.target_id === id)?.last ? Number(acks.find((a) => a.target_id === id)!.last) - decided : null])),
    };
    results.windows.push(...(await windows(db, 'group-delete', del.revision - 1, names)));
    void started;
  } finally {
    await worker.stop();
    await deliverer.stop();
    await Promise.all([...healthy, failing].map((r) => r.close()));
    await store.close();
  }
  results.elapsedSeconds = (performance.now() - t0) / 1000;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  const dir = opts.out ?? join(new URL('..', import.meta.url).pathname, 'results', `${stamp}-delivery-${opts.mode}-${opts.engine}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'results.json'), JSON.stringify(results, null, 1) + '\n');
  writeFileSync(join(dir, 'report.md'), renderDeliveryReport(results));
  log(`done in ${results.elapsedSeconds.toFixed(0)}s: ${join(dir, 'report.md')}`);
  return { dir, results };
}

const ms = (v: number | null | undefined) => (v === null || v === undefined || Number.isNaN(v) ? '—' : v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(2)} s`);

export function renderDeliveryReport(r: DeliveryBenchResults): string {
  const g = r.groupDelete;
  const peak = (phase: string) => {
    const rows = r.backlog.filter((b) => b.phase === phase);
    const names = [...new Set(rows.flatMap((b) => Object.keys(b.byTarget)))];
    return names.map((nm) => `${nm} ${Math.max(0, ...rows.map((b) => b.byTarget[nm] ?? 0))}`).join(', ');
  };
  return [
    `# Delivery benchmark (${r.mode}, ${r.engine})`,
    '',
    `Command: \`${r.command}\`  `,
    `Machine: ${r.machine.line}  `,
    `Elapsed: ${r.elapsedSeconds.toFixed(0)} s`,
    '',
    '## A. Revocations, then grants, at a fixed rate to two healthy targets and one failing target',
    '',
    table(
      ['phase', 'offered/s', 'achieved/s', 'writes', 'healthy backlog drained after'],
      r.load.map((l) => [l.phase, l.offered, l.achievedPerSecond, l.writes, ms(l.drainedMs)]),
    ),
    '',
    'End-to-end window per target (decided → acknowledged):',
    '',
    table(
      ['phase', 'target', 'messages', 'acked', 'parked', 'pending', 'attempts', 'p50', 'p99', 'max'],
      r.windows.map((w) => [w.phase, w.target, w.messages, w.acked, w.parked, w.pending, w.attempts, ms(w.windowMs?.p50), ms(w.windowMs?.p99), ms(w.windowMs?.max)]),
    ),
    '',
    `Peak backlog — revoke: ${peak('revoke')}; grant: ${peak('grant')}; group delete: ${peak('group-delete')}. Samples every 250–500 ms are in results.json (\`backlog\`).`,
    '',
    '## B. Deleting a large group',
    '',
    g
      ? table(
          ['pairs revoked', 'requests per healthy target', 'entries carried', 'read model converged', 'last ack per target'],
          [[g.pairs, Object.entries(g.requests).map(([k, v]) => `${k}: ${v}`).join(', '), Object.values(g.entries)[0] ?? 0, ms(g.convergedMs), Object.entries(g.lastAckMs).map(([k, v]) => `${k}: ${ms(v)}`).join(', ')]],
        )
      : 'not run',
    '',
  ].join('\n');
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  const { values: a } = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      full: { type: 'boolean', default: false },
      engine: { type: 'string', default: 'sqlite' },
      pg: { type: 'string', default: process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test' },
      out: { type: 'string' },
    },
  });
  const mode: Mode = a.full ? 'full' : a.smoke ? 'smoke' : 'quick';
  if (a.engine !== 'sqlite' && a.engine !== 'postgres') throw new Error('--engine sqlite | postgres');
  await runDeliveryBench({ mode, engine: a.engine, pg: a.pg!, ...(a.out ? { out: a.out } : {}), command: `npm run bench:delivery -- ${process.argv.slice(2).join(' ')}`.trim() });
}

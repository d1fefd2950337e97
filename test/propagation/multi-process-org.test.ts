/**
 * Several OS processes writing one organization at once, judged against the oracle (issue 13):
 * PROCESSES real `lockstep serve` children (each with its in-process worker, over loopback HTTP) on
 * ONE store — a fresh PostgreSQL schema, or one SQLite file in WAL mode — and, in this process,
 * LANES clients per serve process, each running its own random sequence of STEPS steps, one request
 * at a time. The plan (test/helpers/concurrent-run.ts; fast-check, from a seed printed with every
 * run) is mostly membership adds and removes and direct assignments on subjects that neighbouring
 * lanes share (so processes contend on the same subjects and on different ones), some other writes
 * (groups, nesting, roles, resources, activation, deletes), checks in every consistency mode, and
 * switches of the propagation policy (all sync, all async, random) that every process sees.
 *
 * After the lanes finish and the queue drains, test/helpers/history.ts judges the recorded history:
 * revisions unique, contiguous and in the change log with the oracle's kinds; a serial replay in
 * revision order accepting every committed write, explaining every no-op and rejection, and ending
 * at exactly the engine's read model; no check allowing what the oracle denies at every revision it
 * could have been evaluated at (a stale allow); the delivery events alternate per entry in revision
 * order and end at the read model; then the drift audit is clean, no job failed, every
 * change is effective, and every serve process stops cleanly.
 *
 * LOCKSTEP_MP_SEED replays a seed; LOCKSTEP_MP_PROCESSES (2–4, default 3), LOCKSTEP_MP_LANES
 * (default 2) and LOCKSTEP_MP_STEPS (default 60) size the run. A failing run leaves its history as
 * JSON lines in the file its message names.
 */
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAdminKey } from '../../src/api/keys.ts';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import type { Command } from '../../src/domain/oracle.ts';
import type { Database } from '../../src/storage/database.ts';
import { dropSchema, openPostgres } from '../../src/storage/postgres-engine.ts';
import { openSqlite } from '../../src/storage/sqlite-engine.ts';
import { historyLines, planArb, runLanes, settle, setUp, type Setup, type Target } from '../helpers/concurrent-run.ts';
import { killAllServes, startServe, type ServeProcess } from '../helpers/serve-process.ts';
import { PG_URL, sleep } from './support.ts';

const SEED = process.env.LOCKSTEP_MP_SEED ? Number(process.env.LOCKSTEP_MP_SEED) : (Date.now() ^ (process.pid << 16)) >>> 0;
const PROCESSES = Math.min(4, Math.max(2, Number(process.env.LOCKSTEP_MP_PROCESSES ?? 3)));
const LANES = Math.max(1, Number(process.env.LOCKSTEP_MP_LANES ?? 2));
const STEPS = Math.max(1, Number(process.env.LOCKSTEP_MP_STEPS ?? 60));
const ADMIN_KEY = 'lsk_mptest_' + 'k'.repeat(40);
const ORG = 'mp';

/** An oracle command as the HTTP request that makes it. */
function toRequest(c: Command): { method: string; path: string; body?: unknown } {
  const o = `/v1/organizations/${c.org}`;
  switch (c.kind) {
    case 'putPermission': return { method: 'PUT', path: `${o}/permissions/${c.slug}`, body: { risk: c.risk } };
    case 'putRole': return { method: 'PUT', path: `${o}/roles/${c.slug}`, body: { permissions: c.permissions } };
    case 'putResource': return { method: 'PUT', path: `${o}/resources/${c.type}/${c.id}`, body: c.parent == null ? {} : { parent: c.parent } };
    case 'deleteResource': return { method: 'DELETE', path: `${o}/resources/${c.type}/${c.id}` };
    case 'putSubject': return { method: 'PUT', path: `${o}/subjects/${c.id}`, body: c.active === undefined ? { kind: c.subjectKind } : { kind: c.subjectKind, active: c.active } };
    case 'deleteSubject': return { method: 'DELETE', path: `${o}/subjects/${c.id}` };
    case 'putGroup': return { method: 'PUT', path: `${o}/groups/${c.id}`, body: {} };
    case 'deleteGroup': return { method: 'DELETE', path: `${o}/groups/${c.id}` };
    case 'addMember': return { method: 'PUT', path: `${o}/groups/${c.group}/members/${c.subject}` };
    case 'removeMember': return { method: 'DELETE', path: `${o}/groups/${c.group}/members/${c.subject}` };
    case 'addGroupMember': return { method: 'PUT', path: `${o}/groups/${c.group}/members/group:${c.member}` };
    case 'removeGroupMember': return { method: 'DELETE', path: `${o}/groups/${c.group}/members/group:${c.member}` };
    case 'createAssignment': return { method: 'POST', path: `${o}/assignments`, body: { principal: c.principal, role: c.role, resource: c.resource } };
    case 'deleteAssignment': return { method: 'DELETE', path: `${o}/assignments/${c.id}` };
    default: throw new Error(`${c.kind} is not an HTTP write here`);
  }
}

/** A serve process as a lane's target: 4xx are answers; 5xx and transport errors are failures. */
function httpTarget(serve: ServeProcess): Target {
  return {
    async write(cmd) {
      const req = cmd.kind === 'putPropagationPolicy' ? { method: 'PUT', path: `/v1/organizations/${ORG}/propagation-policy`, body: cmd.policy } : toRequest(cmd);
      const a = await serve.call(req.method, req.path, req.body);
      if (a.status < 200 || a.status > 299) {
        return { answer: { ok: false, code: a.json?.code ?? `HTTP_${a.status}`, httpStatus: a.status }, ...(a.status >= 500 ? { failure: `${a.status} ${JSON.stringify(a.json)}` } : {}) };
      }
      const created = cmd.kind === 'createAssignment' ? { id: a.json.id as string, created: a.status === 201 } : {};
      return { answer: { ok: true, revision: a.json.revision, changed: a.json.changed, status: a.json.propagation?.status, ...created } };
    },
    async check(tuple, consistency) {
      const a = await serve.call('POST', `/v1/organizations/${ORG}/check`, { ...tuple, consistency });
      if (a.status === 200) return { answer: { ok: true, allowed: a.json.allowed, revision: a.json.revision } };
      const unavailable = a.status === 503 && consistency.mode === 'at_least_as_fresh';
      return { answer: { ok: false, code: a.json?.code ?? `HTTP_${a.status}`, httpStatus: a.status }, ...(unavailable ? {} : { failure: `${a.status} ${JSON.stringify(a.json)}` }) };
    },
  };
}

interface Store {
  db: Database;
  /** `--db` for the serve processes. */
  target: string;
  close(): Promise<void>;
}

async function openStore(engine: 'sqlite' | 'postgres'): Promise<Store> {
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'lockstep-mp-'));
    const file = join(dir, 'lockstep.db');
    const db = openSqlite(file);
    await db.migrate();
    return {
      db,
      target: file,
      async close() {
        await db.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const schema = `lockstep_t_${process.ppid}_mp${randomBytes(4).toString('hex')}`;
  const db = openPostgres(PG_URL, { schema, max: 3 });
  await db.migrate();
  const url = new URL(PG_URL);
  url.searchParams.set('schema', schema);
  return {
    db,
    target: url.toString(),
    async close() {
      await db.close();
      await dropSchema(PG_URL, schema);
    },
  };
}

for (const engine of ['sqlite', 'postgres'] as const) {
  (engine === 'postgres' && !PG_URL ? describe.skip : describe)(`several serve processes write one organization [${engine}]`, () => {
    let store: Store;
    let ls: Lockstep;
    let setup: Setup;
    const serves: ServeProcess[] = [];
    const plan = fc.sample(planArb(PROCESSES * LANES, STEPS), { seed: SEED, numRuns: 1 })[0]!;

    beforeAll(async () => {
      store = await openStore(engine);
      ls = createLockstep(store.db);
      setup = await setUp(ls, store.db, ORG, plan);
      await ensureAdminKey(store.db, ADMIN_KEY);
      serves.push(...(await Promise.all(Array.from({ length: PROCESSES }, () => startServe({ db: store.target, adminKey: ADMIN_KEY, workers: 1, env: { LOCKSTEP_BATCH_SIZE: '2' } })))));
    }, 90_000);

    afterAll(async () => {
      await killAllServes();
      await store?.close();
    });

    it(`agrees with a serial replay in revision order (${PROCESSES} processes × ${LANES} lanes × ${STEPS} steps, seed ${SEED})`, { timeout: 120_000 }, async () => {
      expect((await ls.getOrganization(ORG)).revision).toBe(setup.base);
      // lane i goes to process i mod PROCESSES
      const targets = Array.from({ length: PROCESSES * LANES }, (_, i) => httpTarget(serves[i % PROCESSES]!));
      const history = await runLanes(setup, plan, targets, (i) => `p${i % PROCESSES}l${Math.floor(i / PROCESSES)}`);
      const settled = await settle(ls, store.db, setup, history, sleep);
      const exits = await Promise.all(serves.map((s) => s.stop()));

      const where = () => {
        const file = join(tmpdir(), `lockstep-mp-${engine}-${SEED}.jsonl`);
        writeFileSync(file, historyLines(history));
        return `seed ${SEED} (LOCKSTEP_MP_SEED=${SEED} replays the plan); history in ${file}`;
      };
      console.log(
        `multi-process ${engine}: seed ${SEED}, ${PROCESSES} processes × ${LANES} lanes; ${history.writes.length} writes (${settled.committed} committed, revisions ${setup.base + 1}..${settled.finalRevision}), ${history.checks.length} checks; ` +
          Object.entries(settled.stats).sort().map(([k, n]) => `${k} ${n}`).join(', '),
      );
      expect(settled.violations.slice(0, 20), where()).toEqual([]);
      expect(exits, 'every serve process stops cleanly on SIGTERM').toEqual(serves.map(() => 0));
      // the run did what it is for: every process committed writes
      expect(settled.committed).toBeGreaterThan(PROCESSES * LANES * 3);
      expect(new Set([...settled.committedBy.keys()].map((w) => w.split('l')[0])).size).toBe(PROCESSES);
    });
  });
}

/**
 * Runs the real `lockstep` CLI as a child process (node + tsx on the sources; bin/lockstep.js runs dist/) against a
 * fresh store: a temporary SQLite file, or a PostgreSQL schema of its own that `drop()` removes.
 * Every process started here is tracked by PID so that `killAll()` leaves none behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropSchema } from '../../src/storage/postgres-engine.ts';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import type { Database } from '../../src/storage/database.ts';
import { openDatabase } from '../../src/storage/open.ts';
import { LockstepError } from '../../src/domain/errors.ts';
import { parsePolicyFile, type ParseOptions, type Problem } from '../../src/policy-file/parse.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const pgUrl = process.env.LOCKSTEP_TEST_PG ?? '';

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment of a child: ours, without settings that would change what the CLI opens. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOCKSTEP_LOG_LEVEL: 'warn', ...extra };
  for (const k of ['LOCKSTEP_DB', 'LOCKSTEP_ADMIN_KEY', 'LOCKSTEP_PORT', 'LOCKSTEP_HOST', 'LOCKSTEP_VERIFY']) if (!(k in extra)) delete env[k];
  return env;
}

const running = new Set<ChildProcess>();

export function start(args: string[], env: NodeJS.ProcessEnv = childEnv()): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.on('exit', () => running.delete(child));
  return child;
}

export function finished(child: ChildProcess): Promise<Run> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export const lockstep = (args: string[], env?: NodeJS.ProcessEnv) => finished(start(args, env));

/** Kills, by PID, every child still running. */
export function killAll() {
  for (const c of running) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
}

/** Resolves with the line matching `re` on the child's stderr (rejects if the child exits first). */
export function waitForStderr(child: ChildProcess, re: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} on stderr; got:\n${buf}`)), timeoutMs);
    child.stderr!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.on('exit', () => {
      clearTimeout(timer);
      reject(new Error(`exited before ${re}; stderr:\n${buf}`));
    });
  });
}

export interface Store {
  name: 'sqlite' | 'postgres';
  /** The CLI's `--db` value (a PostgreSQL URL carries `?schema=`). */
  db: string;
  /** Opens the same store in-process, to look at it directly. */
  open(): Database;
  drop(): Promise<void>;
}

export async function sqliteStore(): Promise<Store> {
  const dir = await mkdtemp(join(tmpdir(), 'lockstep-cli-'));
  const file = join(dir, 'lockstep.db');
  return { name: 'sqlite', db: file, open: () => openDatabase(file), drop: () => rm(dir, { recursive: true, force: true }) };
}

export async function postgresStore(): Promise<Store> {
  const schema = `lockstep_t_${process.ppid}_cli_${randomBytes(4).toString('hex')}`;
  const url = new URL(pgUrl);
  url.searchParams.set('schema', schema);
  return {
    name: 'postgres',
    db: url.toString(),
    open: () => openDatabase(pgUrl, { schema, max: 2 }),
    drop: () => dropSchema(pgUrl, schema),
  };
}

/** `describe` once per store kind; PostgreSQL is declared skipped when the server is unreachable. */
export function describeEachStore(title: string, body: (newStore: () => Promise<Store>) => void) {
  describe(`${title} [sqlite]`, () => body(sqliteStore));
  (pgUrl ? describe : describe.skip)(`${title} [postgres]`, () => body(postgresStore));
}

/** Row counts of every policy table and each organization's revision: "the store" for comparisons. */
export async function snapshot(db: Database): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const t of ['organizations', 'permissions', 'roles', 'role_permissions', 'resources', 'subjects', 'groups', 'memberships', 'assignments', 'effective_assignments', 'changes']) {
    out[t] = Number((await db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM ${t}`))?.n ?? 0);
  }
  out.revisions = await db.all('SELECT id, revision FROM organizations ORDER BY id');
  return out;
}

/**
 * A suite's store holding examples/acme.yaml (applied by the CLI), made before the suite's tests;
 * after them every child is killed and the store dropped. `withDb` appends the store's `--db`.
 */
export function acmeStore(newStore: () => Promise<Store>): { withDb: (...args: string[]) => string[]; store: () => Store } {
  let store: Store | undefined;
  const current = () => {
    if (!store) throw new Error('the acme store is made in beforeAll');
    return store;
  };
  beforeAll(async () => {
    store = await newStore();
    expect((await lockstep(['apply', '-f', join(ROOT, 'examples/acme.yaml'), '--db', store.db])).code).toBe(0);
  });
  afterAll(async () => {
    killAll();
    await store?.drop();
  });
  return { withDb: (...args) => [...args, '--db', current().db], store: current };
}

/** Opens `store` in-process, takes its `snapshot`, closes it. */
export async function storedSnapshot(store: Store): Promise<Record<string, unknown>> {
  const db = store.open();
  try {
    return await snapshot(db);
  } finally {
    await db.close();
  }
}

/** The URL a `lockstep serve` child says it serves on (it prints it on stderr once listening). */
export async function servingUrl(child: ChildProcess): Promise<string> {
  return (await waitForStderr(child, /serving on (http:\/\/\S+)/))[1]!;
}

/** The admin key of the servers `servedStore` starts. */
export const SERVED_KEY = 'remote-cli-admin-key-0123456789abcdefghijklmnop';

export interface ServedStore {
  store(): Store;
  /** The server's URL. */
  url(): string;
  /** Runs the CLI with `--url` and `--key` naming the server. */
  remote(...args: string[]): Promise<Run>;
}

/**
 * A suite's store and a `lockstep serve` on it (admin key SERVED_KEY), started before the suite's
 * tests — after `prepare`, if given, has run on the fresh store; after them every child is killed and
 * the store dropped. `serveArgs` are added to `serve --port 0 --db …`, `env` to the child's env.
 */
export function servedStore(
  newStore: () => Promise<Store>,
  opts: { serveArgs?: string[]; env?: Record<string, string>; prepare?: (store: Store) => Promise<void> } = {},
): ServedStore {
  let store: Store | undefined;
  let url: string | undefined;
  const made = <T,>(v: T | undefined): T => {
    if (v === undefined) throw new Error('the served store is made in beforeAll');
    return v;
  };
  beforeAll(async () => {
    store = await newStore();
    await opts.prepare?.(store);
    url = await servingUrl(start(['serve', '--port', '0', '--db', store.db, ...(opts.serveArgs ?? [])], childEnv({ LOCKSTEP_ADMIN_KEY: SERVED_KEY, ...opts.env })));
  });
  afterAll(async () => {
    killAll();
    await store?.drop();
  });
  return {
    store: () => made(store),
    url: () => made(url),
    remote: (...args) => lockstep([...args, '--url', made(url), '--key', SERVED_KEY]),
  };
}

/** The problems `parsePolicyFile` reports for `text` (it must refuse it, with a LockstepError). */
export function policyProblems(text: string, opts: ParseOptions = {}): Problem[] {
  try {
    parsePolicyFile(text, 't.yaml', opts);
  } catch (e) {
    expect(e).toBeInstanceOf(LockstepError);
    return ((e as LockstepError).meta.problems as Problem[]) ?? [];
  }
  throw new Error('expected problems');
}

/**
 * Real `lockstep serve` child processes (node + tsx on the sources) on a store the test prepared:
 * a SQLite file or a PostgreSQL URL carrying `?schema=`. Each listens on a free loopback port, runs
 * its own in-process worker, and is tracked by PID so that `killAllServes()` (afterAll) leaves none
 * behind. `call()` is a keep-alive HTTP client that never throws on a status, only on transport.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

export interface ServeProcess {
  pid: number;
  url: string;
  child: ChildProcess;
  stderr(): string;
  /** SIGTERM, then waits for the exit; resolves with the exit code (or the signal's name). */
  stop(): Promise<number | string | null>;
  call(method: string, path: string, body?: unknown): Promise<HttpAnswer>;
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: any;
}

const live = new Map<number, ChildProcess>();

export interface ServeOptions {
  /** `--db`: a SQLite file or a postgres:// URL with `?schema=`. */
  db: string;
  adminKey: string;
  workers?: number;
  env?: Record<string, string>;
  timeoutMs?: number;
}

export function startServe(opts: ServeOptions): Promise<ServeProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, LOCKSTEP_ADMIN_KEY: opts.adminKey, LOCKSTEP_LOG_LEVEL: 'warn', ...opts.env };
  for (const k of ['LOCKSTEP_DB', 'LOCKSTEP_PORT', 'LOCKSTEP_HOST', 'LOCKSTEP_VERIFY', 'LOCKSTEP_WORKERS']) delete env[k];
  const args = ['--import', 'tsx', MAIN, 'serve', '--db', opts.db, '--port', '0', '--host', '127.0.0.1', '--workers', String(opts.workers ?? 1)];
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const pid = child.pid!;
  live.set(pid, child);
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(pid);
      resolve(code ?? signal);
    }),
  );
  let buf = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    buf = (buf + d).slice(-50_000);
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve ${pid} did not listen within ${opts.timeoutMs ?? 60_000} ms; stderr: ${buf.slice(-1000)}`)), opts.timeoutMs ?? 60_000);
    const onData = () => {
      const m = /serving on (http:\/\/\S+)/.exec(buf);
      if (!m) return;
      clearTimeout(timer);
      child.stderr!.off('data', onData);
      const url = m[1]!;
      resolve({
        pid,
        url,
        child,
        stderr: () => buf,
        async stop() {
          agent.destroy();
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          return exited;
        },
        call: (method, path, body) => request(agent, url, opts.adminKey, method, path, body),
      });
    };
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve ${pid} exited (${code}) before listening: ${buf.slice(-1000)}`));
    });
  });
}

function request(agent: http.Agent, base: string, key: string, method: string, path: string, body?: unknown): Promise<HttpAnswer> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      base + path,
      {
        method,
        agent,
        headers: { authorization: `Bearer ${key}`, ...(data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let json: unknown = null;
          try {
            json = text ? JSON.parse(text) : null;
          } catch {
            json = { detail: text.slice(0, 300) };
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** SIGKILLs every serve process still alive, by PID, and waits for them to go. */
export async function killAllServes(): Promise<void> {
  const waits: Promise<unknown>[] = [];
  for (const [pid, child] of live) {
    waits.push(new Promise((r) => child.once('exit', r)));
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await Promise.all(waits);
}

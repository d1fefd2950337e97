/**
 * The compiled package (issue 14): `npm pack` (which builds dist/ through `prepare`) gives a tarball
 * that installs into an empty folder and serves with no TypeScript tooling: the installed tree has
 * no tsx and no typescript, `lockstep serve` from its bin answers /readyz, takes policy writes and
 * answers a check, serves the dashboard's static files, `lockstep test` runs the shipped example's
 * assertions, and SIGTERM stops it with status 0.
 *
 * The install uses the registry client as a user would (`--prefer-offline`: the npm cache first).
 * Install scripts are skipped and better-sqlite3's compiled binding is copied from this checkout's
 * node_modules (same Node ABI): what its install script would fetch or compile, minus minutes of
 * compiling SQLite on a shared machine. Loopback only; every process is ended by PID.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { ROOT } from '../cli/harness.ts';

const run = promisify(execFile);
const KEY = 'pack-test-admin-key-0123456789abcdefghijklmnop';
let dir: string | undefined;
let server: ChildProcess | undefined;

afterAll(async () => {
  if (server?.pid !== undefined && server.exitCode === null) process.kill(server.pid, 'SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('npm pack → npm install into an empty folder → lockstep serve answers a check → stops', async () => {
  dir = await mkdtemp(join(tmpdir(), 'lockstep-pack-'));
  const npmEnv = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
  const packed = await run('npm', ['pack', '--pack-destination', dir, '--json'], { cwd: ROOT, env: npmEnv, maxBuffer: 64 * 1024 * 1024 });
  const [{ filename, files }] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
  const shipped = files.map((f) => f.path);
  expect(shipped).toContain('dist/src/cli/main.js');
  expect(shipped).toContain('bin/lockstep.js');
  expect(shipped).toContain('dashboard/index.html');
  expect(shipped.filter((p) => p.startsWith('migrations/')).length).toBeGreaterThanOrEqual(7);
  // no sources to run: TypeScript only as examples to read (examples/)
  expect(shipped.filter((p) => p.startsWith('src/') || p.startsWith('test/') || (p.endsWith('.ts') && !p.startsWith('examples/')))).toEqual([]);

  const app = join(dir, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true }));
  await run('npm', ['install', join(dir, filename), '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: app, env: npmEnv, maxBuffer: 64 * 1024 * 1024 });
  const modules = join(app, 'node_modules');
  expect(existsSync(join(modules, 'lockstep/dist/src/cli/main.js'))).toBe(true);
  // no TypeScript tooling at run time
  expect(existsSync(join(modules, 'tsx'))).toBe(false);
  expect(existsSync(join(modules, 'typescript'))).toBe(false);
  const release = join(modules, 'better-sqlite3/build/Release');
  await mkdir(release, { recursive: true });
  await copyFile(join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'), join(release, 'better_sqlite3.node'));

  const bin = join(modules, '.bin/lockstep');
  const env = { PATH: process.env.PATH ?? '', HOME: dir, LOCKSTEP_DB: join(app, 'data.db'), LOCKSTEP_PORT: '0', LOCKSTEP_ADMIN_KEY: KEY, LOCKSTEP_LOG_LEVEL: 'info' };
  const tested = await run(bin, ['test', '-f', join(modules, 'lockstep/examples/acme.yaml')], { cwd: app, env });
  expect(tested.stdout).toMatch(/5 assertions, 5 passed, 0 failed/);

  server = spawn(bin, ['serve'], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  server.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  server.stdout!.resume();
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 60_000);
    server!.stderr!.on('data', () => {
      const m = /serving on (http:\/\/[^\s]+)/.exec(stderr);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    server!.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: r.status, json: (await r.json().catch(() => null)) as Record<string, unknown> | null, type: r.headers.get('content-type') };
  };
  expect((await call('GET', '/readyz')).status).toBe(200);
  const o = '/v1/organizations/packed';
  expect((await call('PUT', o, {})).status).toBe(200);
  expect((await call('PUT', `${o}/permissions/doc.read`, { risk: 'standard' })).status).toBe(200);
  expect((await call('PUT', `${o}/roles/viewer`, { permissions: ['doc.read'] })).status).toBe(200);
  expect((await call('PUT', `${o}/resources/doc/readme`, {})).status).toBe(200);
  expect((await call('PUT', `${o}/subjects/alice`, { kind: 'user' })).status).toBe(200);
  expect((await call('POST', `${o}/assignments`, { principal: 'subject:alice', role: 'viewer', resource: 'doc:readme' })).status).toBe(201);
  const check = await call('POST', `${o}/check`, { subject: 'alice', permission: 'doc.read', resource: 'doc:readme' });
  expect(check.json).toMatchObject({ allowed: true });
  const dashboard = await fetch(`${url}/`);
  expect(dashboard.status).toBe(200);
  expect(await dashboard.text()).toContain('<html');
  // the chart library comes from the installed dependency (npm resolved it, hoisted or nested)
  expect((await fetch(`${url}/dashboard/vendor/uplot.js`)).status).toBe(200);

  const exited = new Promise<number | null>((resolve) => server!.on('exit', resolve));
  process.kill(server.pid!, 'SIGTERM');
  expect(await exited).toBe(0);
  // what it wrote is where LOCKSTEP_DB said, in the scratch folder
  expect((await readdir(app)).some((f) => f.startsWith('data.db'))).toBe(true);
}, 240_000);

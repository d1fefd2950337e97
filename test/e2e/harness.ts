/**
 * End-to-end harness: `createApp` on a random port over a fresh database of the given engine,
 * driven over real HTTP with global fetch.
 */
import { Writable } from 'node:stream';
import { expect } from 'vitest';
import { createApp, type App, type AppDeps } from '../../src/app.ts';
import { createLogger } from '../../src/api/logger.ts';
import { createKey, type KeyScope } from '../../src/api/keys.ts';
import { loadConfig, type Config } from '../../src/config/config.ts';
import type { TestEngine } from '../helpers/engines.ts';

export const ADMIN_KEY = 'test-admin-key-0123456789abcdefghijklmnopqrstuvwxyz';

export interface Res {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export interface ReqOptions {
  /** API key; defaults to the admin key. `null` sends no Authorization header. */
  key?: string | null;
  /** A value to send as JSON. */
  body?: unknown;
  /** A raw body string (sent as application/json unless headers say otherwise). */
  raw?: string;
  headers?: Record<string, string>;
}

export interface Harness {
  app: App;
  url: string;
  /** Every log line the server wrote. */
  logs: string[];
  req(method: string, path: string, opts?: ReqOptions): Promise<Res>;
  key(scope: KeyScope, org?: string): Promise<string>;
  /** Everything the store holds for an organization, for "nothing changed" assertions. */
  snapshot(org: string): Promise<unknown>;
  close(): Promise<void>;
}

const TABLES: [string, string][] = [
  ['organizations', 'id'],
  ['permissions', 'slug'],
  ['roles', 'slug'],
  ['role_permissions', 'role, permission'],
  ['resources', 'ref'],
  ['subjects', 'id'],
  ['groups', 'id'],
  ['memberships', 'group_id, subject_id'],
  ['assignments', 'id'],
  ['effective_assignments', 'subject_id, assignment_id'],
  ['changes', 'revision'],
];

export async function startHarness(engine: TestEngine, overrides: Partial<Config> = {}, deps: Omit<AppDeps, 'database' | 'logger'> = {}): Promise<Harness> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const config = loadConfig({ db: 'unused', host: '127.0.0.1', port: 0, logLevel: 'debug', adminKey: ADMIN_KEY, ...overrides }, {});
  const app = createApp(config, { ...deps, database: await engine.open(), logger: createLogger('debug', sink) });
  const { url } = await app.start();

  async function req(method: string, path: string, opts: ReqOptions = {}): Promise<Res> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const key = opts.key === undefined ? ADMIN_KEY : opts.key;
    if (key !== null) headers.authorization = `Bearer ${key}`;
    let body: string | undefined;
    if (opts.raw !== undefined) body = opts.raw;
    else if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
    const r = await fetch(url + path, { method, headers, body });
    const text = await r.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: r.status, headers: r.headers, text, json };
  }

  return {
    app,
    url,
    logs,
    req,
    key: async (scope, org) => (await createKey(app.db, org === undefined ? { scope } : { scope, org })).key,
    async snapshot(org) {
      const out: Record<string, unknown> = {};
      for (const [t, order] of TABLES) {
        const col = t === 'organizations' ? 'id' : 'org_id';
        out[t] = await app.db.all(`SELECT * FROM ${t} WHERE ${col} = $1 ORDER BY ${order}`, [org]);
      }
      out.readModel = await app.lockstep.readModel(org);
      return out;
    },
    close: () => app.stop(),
  };
}

export const ORG = '/v1/organizations';

/**
 * A small organization: permissions doc.read (standard) and doc.delete (critical); roles viewer and
 * owner; resources ws:main ⊃ doc:readme; subjects alice (user), bot (service_account); group eng =
 * {alice}; group:eng is viewer on ws:main.
 */
export async function seed(h: Harness, org: string): Promise<{ assignment: string }> {
  const ok = async (method: string, path: string, body?: unknown) => {
    const r = await h.req(method, `${ORG}/${org}${path}`, body === undefined ? {} : { body });
    if (r.status >= 300) throw new Error(`seed ${method} ${path}: ${r.status} ${r.text}`);
    return r;
  };
  await ok('PUT', '', { name: `Org ${org}` });
  await ok('PUT', '/permissions/doc.read', { risk: 'standard' });
  await ok('PUT', '/permissions/doc.delete', { risk: 'critical' });
  await ok('PUT', '/roles/viewer', { permissions: ['doc.read'] });
  await ok('PUT', '/roles/owner', { permissions: ['doc.read', 'doc.delete'] });
  await ok('PUT', '/resources/ws/main', {});
  await ok('PUT', '/resources/doc/readme', { parent: 'ws:main' });
  await ok('PUT', '/subjects/alice', { kind: 'user' });
  await ok('PUT', '/subjects/bot', { kind: 'service_account' });
  await ok('PUT', '/groups/eng', { name: 'Engineering' });
  await ok('PUT', '/groups/eng/members/alice');
  const a = await ok('POST', '/assignments', { principal: 'group:eng', role: 'viewer', resource: 'ws:main' });
  return { assignment: a.json.id };
}

/** A problem+json answer with this status and code, naming `field` when given. */
export function expectProblem(r: Res, status: number, code: string, field?: string) {
  expect(r.status, r.text).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.json).toMatchObject({ status, code, type: expect.stringMatching(/^urn:lockstep:error:/), title: expect.any(String), detail: expect.any(String) });
  expect(r.json.requestId).toBe(r.headers.get('x-request-id'));
  if (field !== undefined) expect(r.json.field).toBe(field);
}

/**
 * Every page of a listing at `limit`, following `next` until it is null; each page is checked to
 * be a 200 holding at most `limit` entries of `field`.
 */
export async function walkPages(h: Harness, path: string, field: string, limit: number): Promise<unknown[][]> {
  const pages: unknown[][] = [];
  let cursor: string | null = null;
  const sep = path.includes('?') ? '&' : '?';
  do {
    const r = await h.req('GET', `${path}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    expect(r.status, r.text).toBe(200);
    expect(r.json[field].length).toBeLessThanOrEqual(limit);
    pages.push(r.json[field]);
    cursor = r.json.next;
    expect(pages.length).toBeLessThan(1000);
  } while (cursor !== null);
  return pages;
}

/** A request the API must refuse: its status, its problem code and the field the problem names. */
export interface ProblemCase {
  name: string;
  method: string;
  path: string;
  opts?: ReqOptions;
  status: number;
  code: string;
  field?: string;
}

/** Sends a refused request and asserts its problem+json and that `org`'s store is exactly as before. */
export async function expectRefusedUnchanged(h: Harness, org: string, c: ProblemCase): Promise<Res> {
  const before = await h.snapshot(org);
  const r = await h.req(c.method, c.path, c.opts ?? {});
  expectProblem(r, c.status, c.code, c.field);
  expect(await h.snapshot(org)).toEqual(before);
  return r;
}

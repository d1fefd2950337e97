/**
 * The edge's own contracts, engine-independent: 5xx answers hide their cause (which is logged),
 * health reports an unreachable database, the error table matches docs/errors.md, the schemas'
 * identifier patterns match the domain parsers, logs redact keys, configuration parses strictly.
 */
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/api/build-server.ts';
import { createKey } from '../../src/api/keys.ts';
import { createLogger } from '../../src/api/logger.ts';
import { PROBLEMS } from '../../src/api/problem.ts';
import * as patterns from '../../src/api/schemas/common.ts';
import { loadConfig } from '../../src/config/config.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { LockstepError } from '../../src/domain/errors.ts';
import * as model from '../../src/domain/model.ts';
import type { Database } from '../../src/storage/database.ts';
import { sqliteEngine } from '../helpers/engines.ts';
import { expectProblem } from './harness.ts';

describe('e2e: internal failures', () => {
  const logs: string[] = [];
  let url = '';
  let key = '';
  let db: Database;
  let server: ReturnType<typeof buildServer>;
  let healthy = true;
  beforeAll(async () => {
    db = await sqliteEngine.open();
    key = (await createKey(db, { scope: 'admin' })).key;
    // An engine whose every method fails: with a secret in the message, or as UNAVAILABLE.
    const failing = new Proxy({} as Lockstep, {
      get: (_t, name) => async (org: string) => {
        if (org === 'busy') throw new LockstepError('UNAVAILABLE', 'the database is busy; retry', { cause: new Error('SQLITE_BUSY') });
        throw new Error(`${String(name)} failed: password=hunter2`, { cause: new Error('deeper cause') });
      },
    });
    const flaky = Object.create(db, {
      get: { value: (sql: string, p?: unknown[]) => (healthy || !sql.includes('AS ok') ? db.get(sql, p) : Promise.reject(new Error('connection refused'))) },
    }) as Database;
    const sink = new Writable({ write: (c, _e, done) => (logs.push(String(c)), done()) });
    server = buildServer({ lockstep: failing, db: flaky, logger: createLogger('info', sink) });
    await server.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await server?.close();
    await db?.close();
  });

  const get = async (path: string) => {
    const r = await fetch(url + path, { headers: { authorization: `Bearer ${key}` } });
    const text = await r.text();
    return { status: r.status, headers: r.headers, text, json: JSON.parse(text) };
  };

  it('a 500 says INTERNAL and the request id, nothing more; the cause chain is logged', async () => {
    const r = await get('/v1/organizations/acme/subjects/alice');
    expectProblem(r, 500, 'INTERNAL');
    expect(Object.keys(r.json).sort()).toEqual(['code', 'detail', 'requestId', 'status', 'title', 'type']);
    expect(r.json.detail).toBe('INTERNAL');
    expect(r.text).not.toContain('hunter2');
    const line = logs.find((l) => l.includes(r.json.requestId) && l.includes('"level":50'));
    expect(line).toContain('hunter2');
    expect(line).toContain('deeper cause');
  });

  it('UNAVAILABLE is a 503 with no detail', async () => {
    const r = await get('/v1/organizations/busy/subjects/alice');
    expectProblem(r, 503, 'UNAVAILABLE');
    expect(r.json.detail).toBe('UNAVAILABLE');
  });

  it('healthz answers 503 when the database does not', async () => {
    expect((await get('/healthz')).status).toBe(200);
    healthy = false;
    const r = await get('/healthz');
    expectProblem(r, 503, 'UNAVAILABLE');
    healthy = true;
  });
});

describe('e2e: error table, schemas, logger, config', () => {
  it('docs/errors.md lists every code with its status, and nothing else', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const rows = [...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]);
    expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(Object.entries(PROBLEMS).map(([code, p]) => [code, p.status])));
    expect(rows.length).toBe(Object.keys(PROBLEMS).length);
  });

  it('the schema patterns accept exactly what the domain parsers accept', () => {
    const samples = [
      'a', 'A1', 'alice', 'alice@example.com', 'x_y.z+w=v~u-t', '-a', '_a', '.a', 'a b', 'a/b', 'a%2F', 'á', '', 'a'.repeat(128), 'a'.repeat(129),
      'doc', 'doc.read', 'doc.read.all', 'a.b.c.d.e', 'a.b.c.d.e.f', 'Doc.read', 'doc..read', 'doc.', 'viewer', 'view-er', 'view_er', '1viewer',
      'ws:main', 'ws:Main-1', 'WS:main', 'ws:', ':main', 'ws:main:x', 'subject:alice', 'group:eng', 'user:alice', 'group:', "'; DROP TABLE subjects; --",
      'b'.repeat(64), 'b'.repeat(65), `c:${'d'.repeat(128)}`, `c:${'d'.repeat(129)}`,
    ];
    const ok = (f: () => unknown) => {
      try {
        f();
        return true;
      } catch {
        return false;
      }
    };
    const agree = (pattern: string, parse: (v: string) => unknown) => {
      const re = new RegExp(pattern, 'u');
      for (const s of samples) expect(re.test(s), `${pattern} vs ${JSON.stringify(s)}`).toBe(ok(() => parse(s)));
    };
    agree(patterns.ID_PATTERN, (v) => model.parseSubjectId(v));
    agree(patterns.ID_PATTERN, (v) => model.parseOrgId(v));
    agree(patterns.ROLE_PATTERN, (v) => model.parseRoleSlug(v));
    agree(patterns.PERMISSION_PATTERN, (v) => model.parsePermissionSlug(v));
    agree(patterns.RESOURCE_REF_PATTERN, (v) => model.parseResourceRef(v));
    agree(patterns.PRINCIPAL_PATTERN, (v) => model.parsePrincipal(v));
    agree(patterns.RESOURCE_TYPE_PATTERN, (v) => model.resourceRef(v, 'x'));
  });

  it('the logger redacts authorization headers wherever they are logged', () => {
    const out: string[] = [];
    const log = createLogger('info', new Writable({ write: (c, _e, done) => (out.push(String(c)), done()) }));
    log.info({ req: { headers: { authorization: 'Bearer lsk_secret' } }, headers: { authorization: 'Bearer lsk_secret2' } }, 'x');
    expect(out.join('')).not.toContain('lsk_secret');
    expect(out.join('')).toContain('[redacted]');
  });

  it('configuration: defaults, environment, overrides, frozen, strict', () => {
    const d = loadConfig({}, {});
    expect(d).toMatchObject({ db: './data/lockstep.db', host: '127.0.0.1', port: 7300, verify: 'always', logLevel: 'info', bodyLimit: 1048576 });
    expect(d.adminKey).toBeUndefined();
    expect(Object.isFrozen(d)).toBe(true);
    const e = loadConfig({}, { LOCKSTEP_DB: 'postgres://db/x', LOCKSTEP_PORT: '9000', LOCKSTEP_VERIFY: 'high+', LOCKSTEP_ADMIN_KEY: 'k'.repeat(40) });
    expect(e).toMatchObject({ db: 'postgres://db/x', port: 9000, verify: 'high+', adminKey: 'k'.repeat(40) });
    expect(loadConfig({ port: 0 }, { LOCKSTEP_PORT: '9000' }).port).toBe(0);
    expect(() => loadConfig({}, { LOCKSTEP_PORT: 'eighty' })).toThrow(/LOCKSTEP_PORT/);
    expect(() => loadConfig({}, { LOCKSTEP_VERIFY: 'sometimes' })).toThrow(/LOCKSTEP_VERIFY/);
    expect(() => loadConfig({}, { LOCKSTEP_LOG_LEVEL: 'loud' })).toThrow(/LOCKSTEP_LOG_LEVEL/);
  });
});

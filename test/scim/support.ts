/**
 * SCIM test support: a harness server with an organization whose policy gives a directory's groups
 * something to revoke, a directory, and a SCIM client for its base URL.
 *
 * The organization: permission doc.read (standard) and doc.delete (critical), role editor with both,
 * resources ws:main ⊃ doc:readme.
 */
import { expect } from 'vitest';
import type { TestEngine } from '../helpers/engines.ts';
import { ORG, startHarness, type Harness, type Res } from '../e2e/harness.ts';

export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

export interface ScimClient {
  base: string;
  token: string;
  id: string;
  req(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Res>;
}

export async function createDirectory(h: Harness, org: string, provider: 'okta' | 'entra' | 'generic', name = `${provider} directory`): Promise<ScimClient> {
  const d = await h.req('POST', `${ORG}/${org}/directories`, { body: { name, provider } });
  expect(d.status, d.text).toBe(201);
  const client: ScimClient = {
    base: d.json.scimBaseUrl,
    token: d.json.token,
    id: d.json.id,
    async req(method, path, body, headers = {}) {
      const r = await fetch(client.base + path, {
        method,
        headers: { authorization: `Bearer ${client.token}`, ...(body === undefined ? {} : { 'content-type': 'application/scim+json' }), ...headers },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      const text = await r.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      return { status: r.status, headers: r.headers, text, json };
    },
  };
  return client;
}

export async function seedOrg(h: Harness, org: string) {
  const ok = async (method: string, path: string, body?: unknown) => {
    const r = await h.req(method, `${ORG}/${org}${path}`, body === undefined ? {} : { body });
    if (r.status >= 300) throw new Error(`seed ${method} ${path}: ${r.status} ${r.text}`);
    return r;
  };
  await ok('PUT', '', { name: org });
  await ok('PUT', '/permissions/doc.read', { risk: 'standard' });
  await ok('PUT', '/permissions/doc.delete', { risk: 'critical' });
  await ok('PUT', '/roles/editor', { permissions: ['doc.read', 'doc.delete'] });
  await ok('PUT', '/resources/ws/main', {});
  await ok('PUT', '/resources/doc/readme', { parent: 'ws:main' });
}

export async function startScim(engine: TestEngine, org: string, provider: 'okta' | 'entra' | 'generic' = 'generic') {
  const h = await startHarness(engine);
  await seedOrg(h, org);
  const scim = await createDirectory(h, org, provider);
  return { h, scim };
}

let seq = 0;
export async function createUser(scim: ScimClient, extra: Record<string, unknown> = {}): Promise<string> {
  const n = ++seq;
  const r = await scim.req('POST', '/Users', {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: `user${n}@example.com`,
    name: { givenName: `Given${n}`, familyName: `Family${n}` },
    emails: [{ value: `user${n}@example.com`, type: 'work', primary: true }],
    active: true,
    ...extra,
  });
  expect(r.status, r.text).toBe(201);
  return (r.json as { id: string }).id;
}

/** `n` users, created a few at a time (the writes serialize on the organization anyway). */
export async function createUsers(scim: ScimClient, n: number, concurrency = 8): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i += concurrency) out.push(...(await Promise.all(Array.from({ length: Math.min(concurrency, n - i) }, () => createUser(scim)))));
  return out;
}

export async function createGroup(scim: ScimClient, members: string[], displayName = `group ${++seq}`): Promise<string> {
  const r = await scim.req('POST', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName, members: members.map((value) => ({ value })) });
  expect(r.status, r.text).toBe(201);
  return (r.json as { id: string }).id;
}

/** Gives a group the editor role on ws:main through /v1 (ordinary policy on a directory group). */
export async function grantGroup(h: Harness, org: string, group: string) {
  const r = await h.req('POST', `${ORG}/${org}/assignments`, { body: { principal: `group:${group}`, role: 'editor', resource: 'ws:main' } });
  expect(r.status, r.text).toBeLessThan(300);
}

export async function can(h: Harness, org: string, subject: string, permission = 'doc.read'): Promise<boolean> {
  const r = await h.req('POST', `${ORG}/${org}/check`, { body: { subject, permission, resource: 'doc:readme' } });
  if (r.status === 404) return false;
  expect(r.status, r.text).toBe(200);
  return (r.json as { allowed: boolean }).allowed;
}

export async function membersOf(scim: ScimClient, group: string): Promise<string[]> {
  const r = await scim.req('GET', `/Groups/${group}`);
  expect(r.status, r.text).toBe(200);
  return (((r.json as { members?: { value: string }[] }).members ?? []).map((m) => m.value)).sort();
}

export const patch = (...ops: unknown[]) => ({ schemas: [PATCH_OP], Operations: ops });

export function expectScimError(r: Res, status: number, scimType?: string) {
  expect(r.status, r.text).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/scim\+json/);
  expect(r.json).toMatchObject({ schemas: [ERROR_SCHEMA], status: String(status), detail: expect.any(String) });
  if (scimType !== undefined) expect((r.json as { scimType?: string }).scimType).toBe(scimType);
}

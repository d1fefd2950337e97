/**
 * Scenario 6 — directory provisioning through SCIM, against Lockstep's own server (createApp on a
 * loopback port, the directory's bearer token), on each engine:
 *
 * a. Provisioning: `users` SCIM users (POST /Users, 8 in flight) and `groups` groups with members
 *    (POST /Groups) → users/s and groups/s. Baseline in the same run: the same number of subjects
 *    written through /v1 (PUT subjects/{id}, same concurrency) → subjects/s, and the ratio.
 * b. A Group PUT that replaces `replace` members at once (the group carries 3 assignments, one of a
 *    critical permission): its latency, and the time from sending it until every removed member is
 *    denied (checked right after the answer; it must equal the request's own latency). Baseline: the
 *    same replacement through /v1, one membership write per member.
 * c. A PATCH that removes `removeAtOnce` members in one request (Entra's value array): the same
 *    measures.
 * d. Deprovisionings at `deprovisionRate`/s (PATCH active false, Okta's dialect) for `seconds` while
 *    a probe loop checks the deprovisioned users: stale allows (checks that start after a
 *    deprovisioning answered and still allow) must be 0; achieved rate.
 */
import { createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import type { Ctx } from '../lib/context.ts';
import { openStore, type Engine } from '../lib/lockstep.ts';
import { round, summarize } from '../stats.ts';

export interface DirectoryRow {
  system: string;
  engine: string;
  notRun?: string;
  users?: number;
  groups?: number;
  usersPerSecond?: number;
  groupsPerSecond?: number;
  v1SubjectsPerSecond?: number;
  replaceMembers?: number;
  putMs?: number;
  putDeniedMs?: number;
  /** removed members checked right after the answer (a sample of at most ~200), and how many still allowed */
  putSampled?: number;
  putStillAllowed?: number;
  v1ReplaceMs?: number;
  removeMembers?: number;
  patchMs?: number;
  patchDeniedMs?: number;
  patchSampled?: number;
  patchStillAllowed?: number;
  v1RemoveMs?: number;
  deprovisionOffered?: number;
  deprovisionAchieved?: number;
  deprovisionP50?: number;
  deprovisionP99?: number;
  deprovisioned?: number;
  probeChecks?: number;
  staleAllows?: number;
}

const ADMIN_KEY = 'lsk_bench_' + 'd'.repeat(40);
const ORG = 'dirbench';
const CONC = 8;

async function pool<T>(items: T[], n: number, fn: (x: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  }));
}

export async function directories(ctx: Ctx): Promise<DirectoryRow[]> {
  const rows: DirectoryRow[] = [];
  for (const engine of ctx.engines) {
    if (engine === 'postgres' && ctx.pgDown) {
      rows.push({ system: 'lockstep scim', engine, notRun: ctx.pgDown });
      continue;
    }
    try {
      rows.push(await runOne(ctx, engine));
    } catch (e) {
      rows.push({ system: 'lockstep scim', engine, notRun: `failed: ${(e as Error).message}` });
    }
  }
  return rows;
}

async function runOne(ctx: Ctx, engine: Engine): Promise<DirectoryRow> {
  const z = ctx.size;
  const store = await openStore(engine, ctx.pg);
  const app = createApp(loadConfig({ db: 'unused', host: '127.0.0.1', port: 0, logLevel: 'silent', adminKey: ADMIN_KEY, workers: 1 }, {}), { database: store.db });
  const { url } = await app.start();
  const auth = { authorization: `Bearer ${ADMIN_KEY}` };
  const v1 = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${url}/v1/organizations/${ORG}${path}`, {
      method,
      headers: body === undefined ? auth : { ...auth, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await r.text();
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text.slice(0, 200)}`);
    return text ? JSON.parse(text) : undefined;
  };
  try {
    await v1('PUT', '', { name: 'Directory bench' });
    await v1('PUT', '/permissions/doc.read', { risk: 'standard' });
    await v1('PUT', '/permissions/doc.delete', { risk: 'critical' });
    await v1('PUT', '/roles/editor', { permissions: ['doc.read', 'doc.delete'] });
    await v1('PUT', '/resources/ws/main', {});
    await v1('PUT', '/resources/doc/readme', { parent: 'ws:main' });
    for (let i = 0; i < 3; i++) await v1('PUT', `/resources/folder/f${i}`, { parent: 'ws:main' });
    const dir = await v1('POST', '/directories', { name: 'bench', provider: 'entra' });
    const scimHeaders = { authorization: `Bearer ${dir.token}`, 'content-type': 'application/scim+json' };
    const scim = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${dir.scimBaseUrl}${path}`, { method, headers: scimHeaders, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      const text = await r.text();
      if (r.status >= 300) throw new Error(`SCIM ${method} ${path}: ${r.status} ${text.slice(0, 200)}`);
      return text ? JSON.parse(text) : undefined;
    };
    const check = async (subject: string, permission = 'doc.read') =>
      (await v1('POST', '/check', { subject, permission, resource: 'doc:readme' })).allowed as boolean;

    // a. provisioning
    ctx.log(`scenario 6 (${engine}): ${z.scimUsers} users and ${z.scimGroups} groups through SCIM`);
    const users: string[] = new Array(z.scimUsers);
    let t = performance.now();
    await pool([...Array(z.scimUsers).keys()], CONC, async (i) => {
      const u = await scim('POST', '/Users', {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
        userName: `user${i}@bench.example.com`,
        name: { givenName: `Given${i}`, familyName: `Family${i}` },
        emails: [{ value: `user${i}@bench.example.com`, type: 'work', primary: true }],
        active: true,
      });
      users[i] = u.id;
    });
    const usersSeconds = (performance.now() - t) / 1000;
    const perGroup = Math.min(50, Math.floor(z.scimUsers / 4));
    t = performance.now();
    await pool([...Array(z.scimGroups).keys()], CONC, async (g) => {
      const members = Array.from({ length: perGroup }, (_, k) => ({ value: users[(g * 37 + k) % users.length]! }));
      await scim('POST', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: `group ${g}`, members });
    });
    const groupsSeconds = (performance.now() - t) / 1000;
    t = performance.now();
    await pool([...Array(z.scimUsers).keys()], CONC, async (i) => {
      await v1('PUT', `/subjects/v1-user-${i}`, { kind: 'user' });
    });
    const v1Seconds = (performance.now() - t) / 1000;

    // b. Group PUT replacing `replace` members; c. PATCH removing `removeAtOnce`.
    const n = Math.min(z.scimReplace, Math.floor(users.length / 2));
    const before = users.slice(0, n);
    const after = users.slice(n, 2 * n);
    const big = await scim('POST', '/Groups?excludedAttributes=members', { displayName: 'big', members: before.map((value) => ({ value })) });
    for (let i = 0; i < 3; i++) await v1('POST', '/assignments', { principal: `group:${big.id}`, role: 'editor', resource: i === 0 ? 'ws:main' : `folder:f${i}` });
    const sample = (ids: string[]) => ids.filter((_, i) => i % Math.max(1, Math.floor(ids.length / 200)) === 0);
    /**
     * Checks the removed members right after the answer: how many still allowed then (must be 0, so
     * denial came with the answer: the request's own latency); otherwise polls until none does.
     */
    const deniedAfter = async (ids: string[], started: number, answeredMs: number) => {
      const first = (await Promise.all(ids.map((s) => check(s)))).filter(Boolean).length;
      if (first === 0) return { ms: answeredMs, stillAllowed: 0, sampled: ids.length };
      for (const deadline = performance.now() + 30_000; performance.now() < deadline; ) {
        if ((await Promise.all(ids.map((s) => check(s)))).every((a) => !a)) return { ms: performance.now() - started, stillAllowed: first, sampled: ids.length };
      }
      return { ms: Number.POSITIVE_INFINITY, stillAllowed: first, sampled: ids.length };
    };
    t = performance.now();
    await scim('PUT', `/Groups/${big.id}?excludedAttributes=members`, { displayName: 'big', members: after.map((value) => ({ value })) });
    const putMs = performance.now() - t;
    const putDenied = await deniedAfter(sample(before), t, putMs);

    const removeN = Math.min(z.scimRemove, after.length);
    const removed = after.slice(0, removeN);
    t = performance.now();
    await scim('PATCH', `/Groups/${big.id}`, { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'Remove', path: 'members', value: removed.map((value) => ({ value })) }] });
    const patchMs = performance.now() - t;
    const patchDenied = await deniedAfter(sample(removed), t, patchMs);

    // Baselines through /v1 on plain groups (one membership write per member).
    await v1('PUT', '/groups/v1big', { name: 'v1 big' });
    await pool(Array.from({ length: n }, (_, i) => `v1-user-${i}`), CONC, async (s) => void (await v1('PUT', `/groups/v1big/members/${s}`)));
    for (let i = 0; i < 3; i++) await v1('POST', '/assignments', { principal: 'group:v1big', role: 'editor', resource: i === 0 ? 'ws:main' : `folder:f${i}` });
    t = performance.now();
    await pool(Array.from({ length: n }, (_, i) => i), CONC, async (i) => {
      await v1('DELETE', `/groups/v1big/members/v1-user-${i}`);
      await v1('PUT', `/groups/v1big/members/v1-user-${n + i}`);
    });
    const v1ReplaceMs = performance.now() - t;
    t = performance.now();
    await pool(Array.from({ length: removeN }, (_, i) => i), CONC, async (i) => void (await v1('DELETE', `/groups/v1big/members/v1-user-${n + i}`)));
    const v1RemoveMs = performance.now() - t;

    // d. deprovisionings at a fixed rate while a probe checks them.
    const targets = users.slice(2 * n).concat(users.slice(0, n)).slice(0, Math.ceil(z.scimDeprovisionRate * z.seconds));
    const grp = await scim('POST', '/Groups?excludedAttributes=members', { displayName: 'offboarding', members: targets.map((value) => ({ value })) });
    await v1('POST', '/assignments', { principal: `group:${grp.id}`, role: 'editor', resource: 'ws:main' });
    const answeredAt = new Map<string, number>();
    const latencies: number[] = [];
    let stop = false;
    let probeChecks = 0;
    let stale = 0;
    const probe = async (k: number) => {
      let i = k;
      while (!stop) {
        const s = targets[i++ % targets.length]!;
        const started = performance.now();
        const allowed = await check(s);
        probeChecks++;
        const done = answeredAt.get(s);
        if (allowed && done !== undefined && started > done) stale++;
      }
    };
    const probes = [probe(0), probe(7), probe(13), probe(29)];
    const interval = 1000 / z.scimDeprovisionRate;
    const t0 = performance.now();
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < targets.length; i++) {
      const due = t0 + i * interval;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const s = targets[i]!;
      inflight.push(
        (async () => {
          const st = performance.now();
          await scim('PATCH', `/Users/${s}`, { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', value: { active: false } }] });
          latencies.push(performance.now() - st);
          answeredAt.set(s, performance.now());
        })(),
      );
      if (inflight.length > 64) await inflight.shift();
    }
    await Promise.all(inflight);
    const elapsed = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await Promise.all(probes);
    const lat = summarize(latencies);

    return {
      system: 'lockstep scim',
      engine,
      users: z.scimUsers,
      groups: z.scimGroups,
      usersPerSecond: round(z.scimUsers / usersSeconds),
      groupsPerSecond: round(z.scimGroups / groupsSeconds),
      v1SubjectsPerSecond: round(z.scimUsers / v1Seconds),
      replaceMembers: n,
      putMs: round(putMs),
      putDeniedMs: round(putDenied.ms),
      putSampled: putDenied.sampled,
      putStillAllowed: putDenied.stillAllowed,
      v1ReplaceMs: round(v1ReplaceMs),
      removeMembers: removeN,
      patchMs: round(patchMs),
      patchDeniedMs: round(patchDenied.ms),
      patchSampled: patchDenied.sampled,
      patchStillAllowed: patchDenied.stillAllowed,
      v1RemoveMs: round(v1RemoveMs),
      deprovisionOffered: z.scimDeprovisionRate,
      deprovisionAchieved: round(targets.length / elapsed),
      deprovisionP50: lat.p50,
      deprovisionP99: lat.p99,
      deprovisioned: targets.length,
      probeChecks,
      staleAllows: stale,
    };
  } finally {
    await app.stop();
    await store.close().catch(() => undefined);
  }
}

/**
 * Cursor pagination and filters of the listings (issue 10, item 10), over HTTP on both engines:
 * who-can (`…/resources/{type}/{id}/access`), `…/subjects/{id}/effective` and a group's members.
 * Pages concatenate to the whole listing with no duplicate, `limit` is bounded, the default page is
 * bounded, a cursor the server did not make is a 400 naming `cursor`.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { expectProblem, ORG, startHarness, walkPages, type Harness } from './harness.ts';

const o = `${ORG}/pages`;
const SUBJECTS = 120; // more than the default page of 100

describeEachEngine('e2e: paged listings', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(engine);
    const ls = h.app.lockstep;
    await ls.putOrganization('pages', {});
    await ls.transaction(async (tx) => {
      for (const p of ['doc.read', 'doc.edit', 'doc.share']) await tx.putPermission('pages', p, { risk: 'critical' });
      await tx.putRole('pages', 'viewer', { permissions: ['doc.read'] });
      await tx.putRole('pages', 'editor', { permissions: ['doc.read', 'doc.edit', 'doc.share'] });
      await tx.putResource('pages', 'ws', 'main', {});
      await tx.putResource('pages', 'folder', 'f', { parent: 'ws:main' });
      for (let d = 0; d < 8; d++) await tx.putResource('pages', 'doc', `d${d}`, { parent: 'folder:f' });
      for (const g of ['all', 'half', 'inner']) await tx.putGroup('pages', g, {});
      // inner ⊂ half: a subject of inner reaches half's assignment through a nested chain, and
      // through its own membership of half too (two rows of one entry).
      await tx.addMember('pages', 'half', 'group:inner');
      for (let i = 0; i < SUBJECTS; i++) {
        const id = `u${String(i).padStart(3, '0')}`;
        await tx.putSubject('pages', id, { kind: 'user' });
        await tx.addMember('pages', 'all', id);
        if (i % 2 === 0) await tx.addMember('pages', 'half', id);
        if (i % 6 === 0) await tx.addMember('pages', 'inner', id);
        if (i % 10 === 0) await tx.createAssignment('pages', { principal: `subject:${id}`, role: 'editor', resource: 'doc:d3' });
      }
      await tx.createAssignment('pages', { principal: 'group:all', role: 'viewer', resource: 'ws:main' });
      await tx.createAssignment('pages', { principal: 'group:half', role: 'editor', resource: 'folder:f' });
      // u000 holds many entries: editor on each document, directly.
      for (let d = 0; d < 8; d++) await tx.createAssignment('pages', { principal: 'subject:u000', role: 'editor', resource: `doc:d${d}` });
    });
  });
  afterAll(() => h.close());

  const walk = (path: string, field: string, limit: number) => walkPages(h, path, field, limit);

  const whoCan = `${o}/resources/doc/d3/access?permission=doc.edit`;
  const effective = `${o}/subjects/u000/effective`;
  const members = `${o}/groups/all/members`;

  for (const [name, path, field, key] of [
    ['who-can', whoCan, 'subjects', (e: any) => `${e.subject}|${e.via.assignment}`],
    ['effective', effective, 'permissions', (e: any) => `${e.resource}|${e.permission}|${e.via.assignment}`],
    ['members', members, 'members', (e: any) => e.member],
  ] as const) {
    it(`${name}: pages at limits 1, 7 and 1000 concatenate to the whole listing, without duplicates`, async () => {
      const [whole] = await walk(path, field, 1000);
      expect(whole!.length).toBeGreaterThan(7);
      for (const limit of [1, 7]) {
        const pages = await walk(path, field, limit);
        const all = pages.flat();
        expect(all).toEqual(whole);
        expect(new Set(all.map(key)).size).toBe(all.length);
        expect(pages.every((p, i) => i === pages.length - 1 || p.length === limit)).toBe(true);
      }
    });
  }

  it('who-can lists a subject reaching one assignment by two paths once, with the shorter chain', async () => {
    const [whole] = await walk(`${o}/resources/folder/f/access?permission=doc.share`, 'subjects', 1000);
    const u000 = (whole as any[]).filter((e) => e.subject === 'u000');
    expect(u000).toHaveLength(1);
    expect(u000[0].via).toMatchObject({ group: 'half', chain: ['half'] });
    const u006 = (await walk(`${o}/resources/folder/f/access?permission=doc.share`, 'subjects', 1)).flat().filter((e: any) => e.subject === 'u006');
    expect(u006).toEqual([{ subject: 'u006', via: expect.objectContaining({ group: 'half', chain: ['half'] }) }]);
  });

  it('the default page is bounded (100) and says there is more', async () => {
    const r = await h.req('GET', members);
    expect(r.json.members).toHaveLength(100);
    expect(r.json.next).toEqual(expect.any(String));
    const who = await h.req('GET', `${o}/resources/ws/main/access?permission=doc.read`);
    expect(who.json.subjects).toHaveLength(100);
    expect(who.json.next).toEqual(expect.any(String));
  });

  it('filters: effective by permission and by resource, who-can by via, members by kind', async () => {
    const all = (await walk(effective, 'permissions', 1000)).flat() as any[];
    const edits = (await walk(`${effective}?permission=doc.edit`, 'permissions', 3)).flat() as any[];
    expect(edits).toEqual(all.filter((e) => e.permission === 'doc.edit'));
    expect(edits.length).toBeGreaterThan(3);
    const onD3 = (await walk(`${effective}?resource=doc:d3`, 'permissions', 1000)).flat() as any[];
    expect(onD3).toEqual(all.filter((e) => e.resource === 'doc:d3'));
    expect(onD3.length).toBe(3);

    const who = (await walk(whoCan, 'subjects', 1000)).flat() as any[];
    const direct = (await walk(`${whoCan}&via=direct`, 'subjects', 2)).flat() as any[];
    const viaGroup = (await walk(`${whoCan}&via=group`, 'subjects', 2)).flat() as any[];
    expect(direct).toEqual(who.filter((e) => e.via.group === null));
    expect(viaGroup).toEqual(who.filter((e) => e.via.group !== null));
    expect(direct.length).toBe(SUBJECTS / 10);

    const half = (await walk(`${o}/groups/half/members`, 'members', 1000)).flat() as any[];
    expect((await walk(`${o}/groups/half/members?kind=group`, 'members', 1)).flat()).toEqual([{ member: 'group:inner', expiresAt: null }]);
    expect((await walk(`${o}/groups/half/members?kind=subject`, 'members', 9)).flat()).toEqual(half.filter((m) => m.member.startsWith('subject:')));
  });

  it('pages of the history (?at=) concatenate too', async () => {
    const at = new Date(Date.now() + 1000).toISOString();
    const whole = (await walk(`${effective}?at=${at}`, 'permissions', 1000)).flat();
    expect(whole).toEqual((await walk(effective, 'permissions', 1000)).flat());
    expect((await walk(`${effective}?at=${at}`, 'permissions', 4)).flat()).toEqual(whole);
    const who = (await walk(`${whoCan}&at=${at}`, 'subjects', 1000)).flat();
    expect((await walk(`${whoCan}&at=${at}`, 'subjects', 5)).flat()).toEqual(who);
  });

  it('limit is bounded: 0, 1001 and non-numbers are 400 naming limit', async () => {
    for (const limit of ['0', '1001', 'ten', '-1', '1.5']) {
      for (const path of [whoCan, `${effective}?`, `${members}?`]) {
        const sep = path.endsWith('?') ? '' : '&';
        expectProblem(await h.req('GET', `${path}${sep}limit=${limit}`), 400, 'VALIDATION', 'limit');
      }
    }
  });

  it('a cursor the server did not make is a 400 naming cursor; so is one of another listing', async () => {
    const membersCursor = (await h.req('GET', `${members}?limit=2`)).json.next as string;
    const whoCursor = (await h.req('GET', `${whoCan}&limit=2`)).json.next as string;
    const forged = [
      'not!base64',
      Buffer.from('not json').toString('base64url'),
      Buffer.from('{"a":1}').toString('base64url'),
      Buffer.from('[1,2,3]').toString('base64url'),
      'x'.repeat(1100),
    ];
    for (const c of forged) {
      expectProblem(await h.req('GET', `${whoCan}&cursor=${encodeURIComponent(c)}`), 400, 'VALIDATION', 'cursor');
      expectProblem(await h.req('GET', `${effective}?cursor=${encodeURIComponent(c)}`), 400, 'VALIDATION', 'cursor');
      expectProblem(await h.req('GET', `${members}?cursor=${encodeURIComponent(c)}`), 400, 'VALIDATION', 'cursor');
    }
    expectProblem(await h.req('GET', `${whoCan}&cursor=${membersCursor}`), 400, 'VALIDATION', 'cursor');
    expectProblem(await h.req('GET', `${members}?cursor=${whoCursor}`), 400, 'VALIDATION', 'cursor');
    expectProblem(await h.req('GET', `${effective}?cursor=${whoCursor}`), 400, 'VALIDATION', 'cursor');
  });
});

describeEachEngine('e2e: paged operator listings (targets, directories, jobs)', (engine) => {
  let h: Harness;
  const p = `${ORG}/ops`;
  const walkAll = async (path: string, field: string, limit: number): Promise<any[]> => (await walkPages(h, path, field, limit)).flat();
  beforeAll(async () => {
    // No worker: the asynchronous grants below stay queued as jobs.
    h = await startHarness(engine, { workers: 0, targetsAllowPrivate: true, delivery: false });
    const ok = async (method: string, path: string, body?: unknown) => {
      const r = await h.req(method, `${p}${path}`, body === undefined ? {} : { body });
      expect(r.status, r.text).toBeLessThan(300);
    };
    await ok('PUT', '', {});
    await ok('PUT', '/permissions/doc.read', { risk: 'standard' });
    await ok('PUT', '/roles/reader', { permissions: ['doc.read'] });
    await ok('PUT', '/resources/doc/d1', {});
    await ok('PUT', '/groups/team', {});
    await ok('POST', '/assignments', { principal: 'group:team', role: 'reader', resource: 'doc:d1' });
    for (let i = 0; i < 9; i++) {
      await ok('PUT', `/subjects/s${i}`, { kind: 'user' });
      await ok('PUT', `/groups/team/members/s${i}`);
      await ok('POST', '/targets', { name: `t${i}`, kind: 'webhook', url: `http://127.0.0.1:9/hook/${i}` });
      await ok('POST', '/directories', { name: `d${i}` });
    }
  });
  afterAll(() => h.close());

  for (const [name, path, field] of [
    ['targets', `${p}/targets`, 'targets'],
    ['directories', `${p}/directories`, 'directories'],
    ['jobs', `/v1/jobs?org=ops&state=pending`, 'jobs'],
  ] as const) {
    it(`${name}: pages concatenate to the whole listing, without duplicates; limit and cursor are checked`, async () => {
      const whole = await walkAll(path, field, 1000);
      expect(whole.length).toBeGreaterThanOrEqual(9);
      for (const limit of [1, 4]) {
        const paged = await walkAll(path, field, limit);
        expect(paged.map((x) => x.id)).toEqual(whole.map((x) => x.id));
        expect(new Set(paged.map((x) => x.id)).size).toBe(paged.length);
      }
      const sep = path.includes('?') ? '&' : '?';
      expectProblem(await h.req('GET', `${path}${sep}limit=1001`), 400, 'VALIDATION', 'limit');
      expectProblem(await h.req('GET', `${path}${sep}cursor=${Buffer.from('["x"]').toString('base64url')}`), 400, 'VALIDATION', 'cursor');
    });
  }
});

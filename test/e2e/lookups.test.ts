/**
 * Lookups and batch checks over HTTP on both engines (issue 14): `POST …/check/batch` (many checks
 * at one revision, bounded, a bad item named by its index, nothing answered in part) and
 * `GET …/subjects/{id}/resources` (LookupResources: through the hierarchy and nested groups,
 * cursor-paginated). The property against the oracle is test/property/lookup-vs-oracle.test.ts.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { expectProblem, ORG, startHarness, type Harness } from './harness.ts';

const o = `${ORG}/look`;

describeEachEngine('e2e: lookups and batch checks', (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(engine);
    const ls = h.app.lockstep;
    await ls.putOrganization('look', {});
    await ls.transaction(async (tx) => {
      await tx.putPermission('look', 'doc.read', { risk: 'standard' });
      await tx.putPermission('look', 'doc.delete', { risk: 'critical' });
      await tx.putRole('look', 'viewer', { permissions: ['doc.read'] });
      await tx.putRole('look', 'owner', { permissions: ['doc.read', 'doc.delete'] });
      // ws:main ⊃ folder:a ⊃ doc:a1, doc:a2; ws:main ⊃ folder:b ⊃ doc:b1; ws:other ⊃ doc:o1
      await tx.putResource('look', 'ws', 'main', {});
      await tx.putResource('look', 'ws', 'other', {});
      await tx.putResource('look', 'folder', 'a', { parent: 'ws:main' });
      await tx.putResource('look', 'folder', 'b', { parent: 'ws:main' });
      await tx.putResource('look', 'doc', 'a1', { parent: 'folder:a' });
      await tx.putResource('look', 'doc', 'a2', { parent: 'folder:a' });
      await tx.putResource('look', 'doc', 'b1', { parent: 'folder:b' });
      await tx.putResource('look', 'doc', 'o1', { parent: 'ws:other' });
      for (const s of ['alice', 'bob', 'carol', 'dave']) await tx.putSubject('look', s, { kind: 'user' });
      for (const g of ['eng', 'platform']) await tx.putGroup('look', g, {});
      // carol ∈ platform ⊂ eng: eng's assignment reaches her through a nested edge only
      await tx.addMember('look', 'eng', 'group:platform');
      await tx.addMember('look', 'platform', 'carol');
      await tx.addMember('look', 'eng', 'bob');
      await tx.createAssignment('look', { principal: 'group:eng', role: 'viewer', resource: 'folder:a' });
      await tx.createAssignment('look', { principal: 'subject:alice', role: 'owner', resource: 'ws:main' });
      await tx.createAssignment('look', { principal: 'subject:bob', role: 'viewer', resource: 'doc:o1' });
      await tx.putSubject('look', 'dave', { kind: 'user', active: false });
      await tx.createAssignment('look', { principal: 'subject:dave', role: 'owner', resource: 'ws:main' });
    });
  });
  afterAll(() => h.close());

  const lookup = async (subject: string, query: string) => {
    const r = await h.req('GET', `${o}/subjects/${subject}/resources?${query}`);
    expect(r.status, r.text).toBe(200);
    return r.json as { revision: number; resources: string[]; next: string | null };
  };

  it('lists what a subject can do a permission on, expanded down the hierarchy', async () => {
    // alice owns ws:main: everything under it, not ws:other's
    expect((await lookup('alice', 'permission=doc.read')).resources).toEqual(
      ['doc:a1', 'doc:a2', 'doc:b1', 'folder:a', 'folder:b', 'ws:main'].sort(),
    );
    expect((await lookup('alice', 'permission=doc.delete&type=doc')).resources).toEqual(['doc:a1', 'doc:a2', 'doc:b1']);
    // bob: through eng on folder:a, and directly on doc:o1
    expect((await lookup('bob', 'permission=doc.read&type=doc')).resources).toEqual(['doc:a1', 'doc:a2', 'doc:o1']);
    expect((await lookup('bob', 'permission=doc.delete')).resources).toEqual([]);
  });

  it('follows nested groups, and an inactive or unknown subject has none', async () => {
    expect((await lookup('carol', 'permission=doc.read')).resources).toEqual(['doc:a1', 'doc:a2', 'folder:a']);
    expect((await lookup('dave', 'permission=doc.read')).resources).toEqual([]);
    expect((await lookup('nobody', 'permission=doc.read')).resources).toEqual([]);
  });

  it('takes effect at once: removing the nested edge removes what it gave', async () => {
    await h.app.lockstep.removeMember('look', 'eng', 'group:platform');
    try {
      expect((await lookup('carol', 'permission=doc.read')).resources).toEqual([]);
    } finally {
      await h.app.lockstep.addMember('look', 'eng', 'group:platform');
    }
    expect((await lookup('carol', 'permission=doc.read')).resources).toEqual(['doc:a1', 'doc:a2', 'folder:a']);
  });

  it('pages by cursor: pages concatenate to the whole listing, in order, without repeats', async () => {
    const all = (await lookup('alice', 'permission=doc.read')).resources;
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await lookup('alice', `permission=doc.read&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.resources.length).toBeLessThanOrEqual(2);
      seen.push(...page.resources);
      cursor = page.next;
      pages++;
    } while (cursor !== null && pages < 20);
    expect(seen).toEqual(all);
    expect(pages).toBe(3);
  });

  it('refuses bad queries naming the parameter', async () => {
    expectProblem(await h.req('GET', `${o}/subjects/alice/resources`), 400, 'VALIDATION', 'permission');
    expectProblem(await h.req('GET', `${o}/subjects/alice/resources?permission=doc.read&type=Doc`), 400, 'VALIDATION', 'type');
    expectProblem(await h.req('GET', `${o}/subjects/alice/resources?permission=doc.read&cursor=nope`), 400, 'VALIDATION', 'cursor');
    expectProblem(await h.req('GET', `${o}/subjects/alice/resources?permission=doc.read&limit=0`), 400, 'VALIDATION', 'limit');
    expectProblem(await h.req('GET', `${o}/subjects/alice/resources?permission=doc.nope`), 404, 'NOT_FOUND', 'permission');
    expectProblem(await h.req('GET', `${ORG}/nope/subjects/alice/resources?permission=doc.read`), 404, 'NOT_FOUND', 'org');
  });

  it('a check key may call both; a key of another organization may not', async () => {
    const key = await h.key('check', 'look');
    expect((await h.req('GET', `${o}/subjects/alice/resources?permission=doc.read`, { key })).status).toBe(200);
    expect((await h.req('POST', `${o}/check/batch`, { key, body: { checks: [{ subject: 'alice', permission: 'doc.read', resource: 'doc:a1' }] } })).status).toBe(200);
    const other = await h.key('check', 'elsewhere');
    expect((await h.req('GET', `${o}/subjects/alice/resources?permission=doc.read`, { key: other })).status).toBe(403);
  });

  it('who-can is expanded through the hierarchy and nested groups too', async () => {
    const r = await h.req('GET', `${o}/resources/doc/a1/access?permission=doc.read`);
    expect(r.status, r.text).toBe(200);
    expect([...new Set(r.json.subjects.map((e: { subject: string }) => e.subject))].sort()).toEqual(['alice', 'bob', 'carol']);
  });

  it('batch: answers each check in order, all at one revision, in every consistency mode', async () => {
    const checks = [
      { subject: 'alice', permission: 'doc.delete', resource: 'doc:b1' },
      { subject: 'bob', permission: 'doc.read', resource: 'doc:b1' },
      { subject: 'carol', permission: 'doc.read', resource: 'doc:a2' },
      { subject: 'dave', permission: 'doc.read', resource: 'doc:a1' },
    ];
    const rev = (await h.req('GET', `${ORG}/look`)).json.revision as number;
    for (const consistency of [undefined, { mode: 'minimize_latency' }, { mode: 'fully_consistent' }, { mode: 'at_least_as_fresh', revision: rev }]) {
      const r = await h.req('POST', `${o}/check/batch`, { body: { checks, ...(consistency ? { consistency } : {}) } });
      expect(r.status, r.text).toBe(200);
      expect(r.json.results.map((x: { allowed: boolean }) => x.allowed)).toEqual([true, false, true, false]);
      expect(r.json.revision).toBe(rev);
      for (const x of r.json.results) expect(x.revision).toBe(rev);
      if (consistency) for (const x of r.json.results) expect(x.consistency).toBe(consistency.mode);
      // each answer is the one /check gives
      for (const [i, c] of checks.entries()) {
        const one = await h.req('POST', `${o}/check`, { body: { ...c, ...(consistency ? { consistency } : {}) } });
        expect(one.json.allowed).toBe(r.json.results[i].allowed);
      }
    }
  });

  it('batch: all results share one revision while writes commit concurrently', async () => {
    const checks = Array.from({ length: 100 }, (_, i) => ({ subject: i % 2 ? 'alice' : 'bob', permission: 'doc.read', resource: 'doc:a1' }));
    const writes = (async () => {
      for (let i = 0; i < 10; i++) await h.app.lockstep.putResource('look', 'doc', `w${i}`, { parent: 'folder:b' });
    })();
    const batches = await Promise.all(Array.from({ length: 5 }, () => h.req('POST', `${o}/check/batch`, { body: { checks } })));
    await writes;
    for (const b of batches) {
      expect(b.status, b.text).toBe(200);
      expect(new Set(b.json.results.map((x: { revision: number }) => x.revision))).toEqual(new Set([b.json.revision]));
    }
  });

  it('batch: a bad item is named by its index, and nothing is answered', async () => {
    const good = { subject: 'alice', permission: 'doc.read', resource: 'doc:a1' };
    expectProblem(await h.req('POST', `${o}/check/batch`, { body: { checks: [good, good, { ...good, resource: 'nocolon' }] } }), 400, 'VALIDATION', 'checks[2].resource');
    expectProblem(await h.req('POST', `${o}/check/batch`, { body: { checks: [good, { subject: 'alice', permission: 'doc.read' }] } }), 400, 'VALIDATION', 'checks[1].resource');
    expectProblem(await h.req('POST', `${o}/check/batch`, { body: { checks: [good, { ...good, extra: 1 }] } }), 400, 'VALIDATION', 'checks[1].extra');
    expectProblem(await h.req('POST', `${o}/check/batch`, { body: { checks: [good, { ...good, permission: 'doc.nope' }] } }), 404, 'NOT_FOUND', 'checks[1].permission');
    // as /check: an unknown resource is denied, not an error
    const r = await h.req('POST', `${o}/check/batch`, { body: { checks: [good, { ...good, resource: 'doc:missing' }] } });
    expect(r.json.results.map((x: { allowed: boolean }) => x.allowed)).toEqual([true, false]);
  });

  it('batch: bounded count, a consistency for the whole batch only, a known organization', async () => {
    const good = { subject: 'alice', permission: 'doc.read', resource: 'doc:a1' };
    expectProblem(await h.req('POST', `${o}/check/batch`, { body: { checks: [] } }), 400, 'VALIDATION', 'checks');
    expectProblem(await h.req('POST', `${o}/check/batch`, { body: { checks: Array(101).fill(good) } }), 400, 'VALIDATION', 'checks');
    expectProblem(await h.req('POST', `${o}/check/batch`, { body: {} }), 400, 'VALIDATION', 'checks');
    expectProblem(await h.req('POST', `${o}/check/batch`, { body: { checks: [{ ...good, consistency: { mode: 'fully_consistent' } }] } }), 400, 'VALIDATION', 'checks[0].consistency');
    expectProblem(await h.req('POST', `${o}/check/batch`, { body: { checks: [good], consistency: { mode: 'eventually' } } }), 400, 'VALIDATION', 'consistency.mode');
    expectProblem(await h.req('POST', `${o}/check/batch`, { body: { checks: [good], consistency: { mode: 'at_least_as_fresh', revision: 1e9 } } }), 400, 'VALIDATION', 'consistency.revision');
    expectProblem(await h.req('POST', `${ORG}/nope/check/batch`, { body: { checks: [good] } }), 404, 'NOT_FOUND', 'org');
  });
});

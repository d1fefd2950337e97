/**
 * The PATCH dialects Okta and Entra ID send, end to end on both engines, each with its effect on
 * Lockstep's policy (checks) and on the SCIM resource.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { ORG, type Harness } from '../e2e/harness.ts';
import { can, createDirectory, createGroup, createUser, grantGroup, membersOf, patch, seedOrg, startScim, type ScimClient } from './support.ts';

describeEachEngine('scim: client dialects', (engine) => {
  let h: Harness;
  let okta: ScimClient;
  let entra: ScimClient;
  const org = 'dialects';
  beforeAll(async () => {
    ({ h, scim: okta } = await startScim(engine, org, 'okta'));
    entra = await createDirectory(h, org, 'entra');
  });
  afterAll(() => h?.close());

  describe('Okta', () => {
    it('replace with no path and a value object deactivates, and answers 200 with the user', async () => {
      const u = await createUser(okta);
      const g = await createGroup(okta, [u]);
      await grantGroup(h, org, g);
      expect(await can(h, org, u)).toBe(true);
      const r = await okta.req('PATCH', `/Users/${u}`, patch({ op: 'replace', value: { active: false } }));
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ id: u, active: false });
      expect(Number(r.headers.get('lockstep-revision'))).toBeGreaterThan(0);
      expect(await can(h, org, u)).toBe(false);
      expect(await can(h, org, u, 'doc.delete')).toBe(false);
      // Inactive, not deleted: the subject and its SCIM user remain.
      expect((await h.req('GET', `${ORG}/${org}/subjects/${u}`)).json).toMatchObject({ active: false });
      expect((await okta.req('GET', `/Users/${u}`)).json).toMatchObject({ active: false });
      // And back.
      const back = await okta.req('PATCH', `/Users/${u}`, patch({ op: 'replace', value: { active: true } }));
      expect(back.json).toMatchObject({ active: true });
      expect(await can(h, org, u)).toBe(true);
    });

    it("Group Push: add members, then remove one with members[value eq '…'] keeping the others", async () => {
      const [a, b, c] = [await createUser(okta), await createUser(okta), await createUser(okta)];
      const g = await createGroup(okta, []);
      await grantGroup(h, org, g);
      const add = await okta.req('PATCH', `/Groups/${g}`, patch({ op: 'add', path: 'members', value: [{ value: a, display: 'a' }, { value: b }, { value: c }] }));
      expect(add.status, add.text).toBe(204);
      expect(await membersOf(okta, g)).toEqual([a, b, c].sort());
      const rm = await okta.req('PATCH', `/Groups/${g}`, patch({ op: 'remove', path: `members[value eq "${b}"]` }));
      expect(rm.status, rm.text).toBe(204);
      expect(await membersOf(okta, g)).toEqual([a, c].sort());
      expect([await can(h, org, a), await can(h, org, b), await can(h, org, c)]).toEqual([true, false, true]);
      // Okta renames a group with a no-path replace carrying the id.
      const ren = await okta.req('PATCH', `/Groups/${g}`, patch({ op: 'replace', value: { id: g, displayName: 'Renamed' } }));
      expect(ren.status, ren.text).toBe(204);
      expect((await okta.req('GET', `/Groups/${g}?excludedAttributes=members`)).json).toMatchObject({ displayName: 'Renamed' });
      // The Lockstep group carries the name (v1 has no group getter; read the table).
      expect(await h.app.db.get('SELECT name FROM groups WHERE org_id = $1 AND id = $2', [org, g])).toEqual({ name: 'Renamed' });
    });
  });

  describe('Entra ID', () => {
    it('capitalised ops and "active": "False" as a string deprovision; "True" restores', async () => {
      const u = await createUser(entra);
      const g = await createGroup(entra, [u]);
      await grantGroup(h, org, g);
      const r = await entra.req('PATCH', `/Users/${u}`, patch({ op: 'Replace', path: 'active', value: 'False' }));
      expect(r.status, r.text).toBe(204);
      expect(await can(h, org, u)).toBe(false);
      expect((await entra.req('GET', `/Users/${u}`)).json).toMatchObject({ active: false });
      await entra.req('PATCH', `/Users/${u}`, patch({ op: 'Replace', path: 'active', value: 'True' }));
      expect(await can(h, org, u)).toBe(true);
    });

    it('remove of members with a value array removes exactly those members', async () => {
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push(await createUser(entra));
      const g = await createGroup(entra, ids);
      await grantGroup(h, org, g);
      const r = await entra.req('PATCH', `/Groups/${g}`, patch({ op: 'Remove', path: 'members', value: [{ value: ids[1] }, { value: ids[3] }] }));
      expect(r.status, r.text).toBe(204);
      expect(await membersOf(entra, g)).toEqual([ids[0], ids[2], ids[4]].sort());
      expect(await Promise.all(ids.map((s) => can(h, org, s!)))).toEqual([true, false, true, false, true]);
      const add = await entra.req('PATCH', `/Groups/${g}`, patch({ op: 'Add', path: 'members', value: [{ value: ids[1] }] }));
      expect(add.status).toBe(204);
      expect(await can(h, org, ids[1]!)).toBe(true);
    });

    it('emails[type eq "work"].value replaces the work e-mail, or adds it when there is none', async () => {
      const u = await createUser(entra, { emails: [{ value: 'home@example.com', type: 'home' }] });
      await entra.req('PATCH', `/Users/${u}`, patch({ op: 'Add', path: 'emails[type eq "work"].value', value: 'work@example.com' }));
      let emails = ((await entra.req('GET', `/Users/${u}`)).json as { emails: { type: string; value: string }[] }).emails;
      expect(emails).toEqual(expect.arrayContaining([{ type: 'home', value: 'home@example.com' }, { type: 'work', value: 'work@example.com' }]));
      await entra.req('PATCH', `/Users/${u}`, patch({ op: 'Replace', path: 'emails[type eq "work"].value', value: 'new@example.com' }));
      emails = ((await entra.req('GET', `/Users/${u}`)).json as { emails: { type: string; value: string }[] }).emails;
      expect(emails.filter((e) => e.type === 'work')).toEqual([{ type: 'work', value: 'new@example.com' }]);
      expect(emails).toHaveLength(2);
    });

    it('stores and returns the enterprise extension, the manager sent as a bare id', async () => {
      const ext = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
      const u = await createUser(entra, { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', ext], [ext]: { department: 'Sales', employeeNumber: '42' } });
      const r = await entra.req('PATCH', `/Users/${u}`, patch({ op: 'Add', path: `${ext}:manager`, value: 'mgr-1' }, { op: 'Replace', path: `${ext}:department`, value: 'Support' }));
      expect(r.status, r.text).toBe(204);
      const got = (await entra.req('GET', `/Users/${u}`)).json as Record<string, unknown>;
      expect(got.schemas).toContain(ext);
      expect(got[ext]).toEqual({ department: 'Support', employeeNumber: '42', manager: { value: 'mgr-1' } });
      const f = await entra.req('GET', `/Users?filter=${encodeURIComponent(`${ext}:department eq "support"`)}`);
      expect((f.json as { Resources: { id: string }[] }).Resources.map((x) => x.id)).toEqual([u]);
    });

    it('excludedAttributes=members leaves members out of group reads', async () => {
      const u = await createUser(entra);
      const g = await createGroup(entra, [u], 'Excluded');
      const one = await entra.req('GET', `/Groups/${g}?excludedAttributes=members`);
      expect(one.json).not.toHaveProperty('members');
      expect(one.json).toMatchObject({ id: g, displayName: 'Excluded' });
      const list = await entra.req('GET', `/Groups?filter=${encodeURIComponent('displayName eq "Excluded"')}&excludedAttributes=members`);
      expect(list.json).toMatchObject({ totalResults: 1, Resources: [{ id: g }] });
      expect((list.json as { Resources: object[] }).Resources[0]).not.toHaveProperty('members');
      expect(await membersOf(entra, g)).toEqual([u]);
    });
  });

  it('every SCIM write is logged with actor directory:{id} and the request id, echoed when sent and generated when not', async () => {
    const r = await okta.req('POST', '/Users', { userName: 'logged@example.com' }, { 'x-request-id': 'okta-req-123' });
    expect(r.status).toBe(201);
    expect(r.headers.get('x-request-id')).toBe('okta-req-123');
    const rev = Number(r.headers.get('lockstep-revision'));
    const change = await h.req('GET', `${ORG}/${org}/changes/${rev}`);
    expect(change.json).toMatchObject({ revision: rev, kind: 'scim.user.create', actor: `directory:${okta.id}`, requestId: 'okta-req-123' });
    const anon = await okta.req('PATCH', `/Users/${(r.json as { id: string }).id}`, patch({ op: 'replace', path: 'displayName', value: 'Logged' }));
    const generated = anon.headers.get('x-request-id');
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    const c2 = await h.req('GET', `${ORG}/${org}/changes/${anon.headers.get('lockstep-revision')}`);
    expect(c2.json).toMatchObject({ kind: 'scim.user.update', actor: `directory:${okta.id}`, requestId: generated });
  });

  it('a second organization and its directory see nothing of the first', async () => {
    await seedOrg(h, 'other');
    const other = await createDirectory(h, 'other', 'generic');
    const u = await createUser(okta);
    expect((await other.req('GET', `/Users/${u}`)).status).toBe(404);
    expect(((await other.req('GET', '/Users')).json as { totalResults: number }).totalResults).toBe(0);
    // One directory's token does not open another's base URL.
    const cross = await fetch(`${other.base}/Users`, { headers: { authorization: `Bearer ${okta.token}` } });
    expect(cross.status).toBe(401);
  });
});

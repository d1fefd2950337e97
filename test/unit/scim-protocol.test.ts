/**
 * The pure SCIM protocol layer (src/scim/): filter parsing and evaluation, PATCH dialects, projection.
 * Properties (fast-check) check the filter evaluator against a direct reading of the RFC's operators
 * and the group PATCH member operations against plain set arithmetic.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ScimError } from '../../src/scim/errors.ts';
import { matches, parseFilter, requiredEquality } from '../../src/scim/filter.ts';
import { parsePatch, patchGroup, patchUser, type PatchOperation } from '../../src/scim/patch.ts';
import { parseProjection, project } from '../../src/scim/projection.ts';
import { CORE_URIS, parseUser, TRAITS } from '../../src/scim/schemas.ts';

const U = TRAITS.User;
const core = CORE_URIS.User;
const user = (doc: object) => (f: string) => matches(parseFilter(f), doc, U, core);
const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const ops = (...o: unknown[]) => parsePatch({ schemas: [PATCH], Operations: o });

function scimError(fn: () => unknown): ScimError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ScimError) return e;
    throw e;
  }
  throw new Error('expected a ScimError');
}

describe('filters', () => {
  const doc = {
    userName: 'Bjensen@Example.com',
    externalId: 'Ext-1',
    name: { familyName: 'Jensen', givenName: 'Barbara' },
    emails: [
      { value: 'bjensen@example.com', type: 'work', primary: true },
      { value: 'babs@jensen.org', type: 'home' },
    ],
    title: '',
    active: true,
    meta: { created: '2020-05-01T10:00:00Z', lastModified: '2021-01-01T00:00:00.5+02:00' },
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { department: 'Tour Operations' },
  };
  const m = user(doc);

  it('each operator, case-insensitive names, case-exact where the attribute is', () => {
    expect(m('userName eq "bjensen@example.com"')).toBe(true);
    expect(m('USERNAME Eq "BJENSEN@EXAMPLE.COM"')).toBe(true);
    expect(m('externalId eq "ext-1"')).toBe(false);
    expect(m('externalId eq "Ext-1"')).toBe(true);
    expect(m('name.familyName co "ens"')).toBe(true);
    expect(m('name.familyName sw "J"')).toBe(true);
    expect(m('name.familyName ew "SEN"')).toBe(true);
    expect(m('userName ne "x"')).toBe(true);
    expect(m('emails.value ew ".org"')).toBe(true);
    expect(m('emails co "jensen.org"')).toBe(true); // the multi-valued attribute's `value`
    expect(m('title pr')).toBe(false); // empty string is not present
    expect(m('nickName pr')).toBe(false);
    expect(m('active eq true')).toBe(true);
    expect(m('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department sw "tour"')).toBe(true);
    expect(m('urn:ietf:params:scim:schemas:core:2.0:User:userName sw "b"')).toBe(true);
  });

  it('dates compare as instants, across offsets and precisions', () => {
    expect(m('meta.created gt "2020-05-01T11:59:59+02:00"')).toBe(true);
    expect(m('meta.created lt "2020-05-01T12:00:01.0000001+02:00"')).toBe(true);
    expect(m('meta.created ge "2020-05-01T10:00:00.000Z"')).toBe(true);
    expect(m('meta.lastModified le "2020-12-31T22:00:00.5Z"')).toBe(true);
    expect(m('meta.lastModified lt "2020-12-31T22:00:00.5Z"')).toBe(false);
  });

  it('not > and > or, parentheses, value filters', () => {
    expect(m('userName eq "x" or userName eq "bjensen@example.com" and title eq "nope"')).toBe(false);
    expect(m('(userName eq "x" or userName eq "bjensen@example.com") and not (title eq "nope")')).toBe(true);
    expect(m('emails[type eq "work" and value co "example"]')).toBe(true);
    expect(m('emails[type eq "home" and value co "example"]')).toBe(false);
    expect(m('not emails[type eq "other"]')).toBe(true);
  });

  it('a missing attribute never throws and never matches (except ne / not)', () => {
    expect(user({})('meta.created gt "2020-01-01T00:00:00Z"')).toBe(false);
    expect(user({})('name.familyName eq "x"')).toBe(false);
    expect(user({})('name.familyName ne "x"')).toBe(true);
  });

  it('malformed filters are invalidFilter', () => {
    for (const f of ['', 'userName', 'userName eq', 'userName eq "a" and', 'userName zz "a"', '(userName eq "a"', 'userName eq "a")', 'emails[type eq "w"', 'active lt false', 'a.b.c eq "x"', 'userName eq "unterminated']) {
      expect(scimError(() => parseFilter(f)).scimType, f).toBe('invalidFilter');
    }
    expect(scimError(() => m('meta.created gt "yesterday"')).scimType).toBe('invalidFilter');
  });

  it('requiredEquality finds an indexable conjunct only where every match must satisfy it', () => {
    expect(requiredEquality(parseFilter('userName eq "A" and title pr'), ['userName'], core)).toEqual({ attr: 'userName', value: 'A' });
    expect(requiredEquality(parseFilter('title pr and (externalId eq "e")'), ['userName', 'externalId'], core)).toEqual({ attr: 'externalId', value: 'e' });
    expect(requiredEquality(parseFilter('userName eq "A" or title pr'), ['userName'], core)).toBeNull();
    expect(requiredEquality(parseFilter('not (userName eq "A")'), ['userName'], core)).toBeNull();
  });

  // Property: for random userNames and operands, each operator is what the RFC says on lower-cased
  // strings, and `not`, `and`, `or` compose as boolean algebra.
  const word = fc.stringMatching(/^[A-Za-z0-9@.]{0,6}$/);
  it('property: string operators equal their definition on case-folded strings; logic composes', () => {
    fc.assert(
      fc.property(word, word, word, fc.constantFrom('eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le'), (name, a, b, op) => {
        const d = { userName: name, displayName: b };
        const x = name.toLowerCase();
        const y = a.toLowerCase();
        const expected = { eq: x === y, ne: x !== y, co: x.includes(y), sw: x.startsWith(y), ew: x.endsWith(y), gt: x > y, ge: x >= y, lt: x < y, le: x <= y }[op];
        const f1 = `userName ${op} ${JSON.stringify(a)}`;
        const f2 = `displayName eq ${JSON.stringify(b)}`;
        const ev = user(d);
        expect(ev(f1)).toBe(expected);
        expect(ev(`not (${f1})`)).toBe(!expected);
        expect(ev(`${f1} and ${f2}`)).toBe(expected);
        expect(ev(`${f1} or not (${f2})`)).toBe(expected);
        expect(ev(`${f1.toUpperCase().replace(JSON.stringify(a).toUpperCase(), JSON.stringify(a))}`)).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });
});

describe('PATCH', () => {
  it('validates the message: schema, Operations, op names (any case), values, paths', () => {
    expect(parsePatch({ schemas: [PATCH], Operations: [{ op: 'Replace', path: 'active', value: 'False' }] })).toEqual([{ op: 'replace', path: 'active', value: 'False' }]);
    expect(parsePatch({ SCHEMAS: [PATCH], operations: [{ OP: 'ADD', Value: { title: 'x' } }] })).toEqual([{ op: 'add', value: { title: 'x' } }]);
    const bad: [unknown, string][] = [
      [null, 'invalidSyntax'],
      [{ Operations: [] }, 'invalidSyntax'],
      [{ schemas: ['urn:other'], Operations: [{ op: 'add', value: {} }] }, 'invalidSyntax'],
      [{ schemas: [PATCH], Operations: [] }, 'invalidSyntax'],
      [{ schemas: [PATCH], Operations: [{ op: 'move', path: 'a', value: 1 }] }, 'invalidSyntax'],
      [{ schemas: [PATCH], Operations: [{ op: 'add', path: 'title' }] }, 'invalidValue'],
      [{ schemas: [PATCH], Operations: [{ op: 'remove' }] }, 'noTarget'],
      [{ schemas: [PATCH], Operations: [{ op: 'remove', path: '' }] }, 'invalidPath'],
    ];
    for (const [body, t] of bad) expect(scimError(() => parsePatch(body)).scimType, JSON.stringify(body)).toBe(t);
  });

  it('User: Okta no-path replace, Entra string booleans, work e-mail path, manager id; unchanged is null', async () => {
    const doc = parseUser({ userName: 'u@example.com', emails: [{ value: 'h@example.com', type: 'home' }] });
    expect(await patchUser('id', { ...doc, active: true }, ops({ op: 'replace', value: { active: false, id: 'id' } }))).toMatchObject({ active: false });
    expect(await patchUser('id', { ...doc, active: true }, ops({ op: 'Replace', path: 'active', value: 'False' }))).toMatchObject({ active: false });
    const withWork = await patchUser('id', doc, ops({ op: 'Add', path: 'emails[type eq "work"].value', value: 'w@example.com' }));
    expect(withWork!.emails).toEqual([
      { value: 'h@example.com', type: 'home' },
      { value: 'w@example.com', type: 'work' },
    ]);
    const replaced = await patchUser('id', withWork!, ops({ op: 'Replace', path: 'emails[type eq "work"].value', value: 'n@example.com' }));
    expect(replaced!.emails).toEqual([
      { value: 'h@example.com', type: 'home' },
      { value: 'n@example.com', type: 'work' },
    ]);
    const ext = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
    expect(await patchUser('id', doc, ops({ op: 'Add', path: `${ext}:manager`, value: 'boss' }))).toMatchObject({ [ext]: { manager: { value: 'boss' } } });
    expect(await patchUser('id', { ...doc, active: true }, ops({ op: 'replace', path: 'active', value: true }))).toBeNull();
    await expect(patchUser('id', { ...doc, active: true }, ops({ op: 'replace', path: 'active', value: 'maybe' }))).rejects.toMatchObject({ status: 400, scimType: 'invalidValue' });
    await expect(patchUser('id', doc, ops({ op: 'replace', path: 'nosuch', value: 1 }))).rejects.toMatchObject({ status: 400, scimType: 'invalidPath' });
  });

  it('Group: add, remove by filter, Entra remove with a value array, remove all, replace, rename', () => {
    const g = { displayName: 'G', externalId: null, members: new Set(['a', 'b', 'c']) };
    const members = (o: PatchOperation[]) => [...patchGroup(g, o).members].sort();
    expect(members(ops({ op: 'add', path: 'members', value: [{ value: 'd' }, { value: 'a' }] }))).toEqual(['a', 'b', 'c', 'd']);
    expect(members(ops({ op: 'remove', path: 'members[value eq "b"]' }))).toEqual(['a', 'c']);
    expect(members(ops({ op: 'remove', path: 'members[value eq "a" or value eq "c"]' }))).toEqual(['b']);
    expect(members(ops({ op: 'Remove', path: 'members', value: [{ value: 'a' }, { value: 'zz' }] }))).toEqual(['b', 'c']);
    expect(members(ops({ op: 'remove', path: 'members' }))).toEqual([]);
    expect(members(ops({ op: 'replace', path: 'members', value: [{ value: 'x' }] }))).toEqual(['x']);
    expect(members(ops({ op: 'replace', value: { members: [{ value: 'y' }] } }))).toEqual(['y']);
    expect(patchGroup(g, ops({ op: 'replace', value: { id: 'g1', displayName: 'New' } })).displayName).toBe('New');
    expect(g.members.size).toBe(3); // the input state is not modified
    expect(scimError(() => patchGroup(g, ops({ op: 'add', path: 'members', value: 'string id 1' }))).scimType).toBe('invalidValue');
    expect(scimError(() => patchGroup(g, ops({ op: 'remove', path: 'displayName' }))).scimType).toBe('mutability');
    expect(scimError(() => patchGroup(g, ops({ op: 'add', path: 'owners', value: [] }))).scimType).toBe('invalidPath');
  });

  // Property: any sequence of member operations equals the same set arithmetic, and a removal never
  // touches a member it does not name.
  const id = fc.constantFrom('u1', 'u2', 'u3', 'u4', 'u5', 'u6');
  const opArb = fc.oneof(
    fc.record({ kind: fc.constant('add' as const), ids: fc.array(id, { maxLength: 4 }) }),
    fc.record({ kind: fc.constant('removeValues' as const), ids: fc.array(id, { minLength: 1, maxLength: 4 }) }),
    fc.record({ kind: fc.constant('removeFilter' as const), ids: fc.array(id, { minLength: 1, maxLength: 3 }) }),
    fc.record({ kind: fc.constant('replace' as const), ids: fc.array(id, { maxLength: 4 }) }),
  );
  it('property: member operations are set arithmetic; removing some never drops the others', () => {
    fc.assert(
      fc.property(fc.uniqueArray(id), fc.array(opArb, { minLength: 1, maxLength: 6 }), (start, list) => {
        const expected = new Set(start);
        const patchOps: unknown[] = [];
        for (const o of list) {
          const value = o.ids.map((v) => ({ value: v, display: `name of ${v}` }));
          if (o.kind === 'add') {
            patchOps.push({ op: 'Add', path: 'members', value });
            o.ids.forEach((v) => expected.add(v));
          } else if (o.kind === 'removeValues') {
            patchOps.push({ op: 'Remove', path: 'members', value: o.ids.map((v) => ({ value: v })) });
            o.ids.forEach((v) => expected.delete(v));
          } else if (o.kind === 'removeFilter') {
            patchOps.push({ op: 'remove', path: `members[${o.ids.map((v) => `value eq "${v}"`).join(' or ')}]` });
            o.ids.forEach((v) => expected.delete(v));
          } else {
            patchOps.push({ op: 'replace', path: 'members', value });
            expected.clear();
            o.ids.forEach((v) => expected.add(v));
          }
        }
        const got = patchGroup({ displayName: 'G', externalId: null, members: new Set(start) }, parsePatch({ schemas: [PATCH], Operations: patchOps }));
        expect([...got.members].sort()).toEqual([...expected].sort());
      }),
      { numRuns: 300 },
    );
  });
});

describe('projection', () => {
  const r = { schemas: ['s'], id: '1', userName: 'u', name: { givenName: 'g', familyName: 'f' }, emails: [{ value: 'e', type: 'work' }], meta: { version: 'W/"1"' } };
  it('attributes keeps id and schemas and the named attributes (sub-attributes too); excludedAttributes removes', () => {
    expect(project(r, parseProjection({ attributes: 'userName,name.familyName,EMAILS.value' }), CORE_URIS.User)).toEqual({ schemas: ['s'], id: '1', userName: 'u', name: { familyName: 'f' }, emails: [{ value: 'e' }] });
    expect(project(r, parseProjection({ excludedAttributes: 'emails,name.givenName,id' }), CORE_URIS.User)).toEqual({ schemas: ['s'], id: '1', userName: 'u', name: { familyName: 'f' }, meta: { version: 'W/"1"' } });
    expect(project(r, parseProjection({ attributes: 'emails[type eq "work"]' }), CORE_URIS.User)).toEqual({ schemas: ['s'], id: '1', emails: r.emails });
  });
});

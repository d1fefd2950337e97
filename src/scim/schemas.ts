/**
 * The SCIM schemas Lockstep serves (core User with the enterprise extension, core Group) and the
 * discovery documents: ServiceProviderConfig, ResourceTypes, Schemas.
 *
 * The attribute definitions and the inbound coercion of User bodies come from `scimmy`: it knows
 * RFC 7643's attributes (types, case-exactness, mutability), canonicalises attribute names written
 * in any case (`Primary` → `primary`), drops unknown and read-only attributes and never keeps
 * `password` (returned: never). What it does not accept, and real clients send, is normalised here
 * first: boolean strings (`"True"`, Entra's `"False"`) and the enterprise `manager` as a bare id.
 */
import SCIMMY from 'scimmy';
import { badRequest, ScimError } from './errors.ts';
import type { AttributeTraits } from './filter.ts';

export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const LIST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const PATCH_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

// scimmy keeps its registry globally; declaring is idempotent for our purposes.
SCIMMY.Resources.declare(SCIMMY.Resources.User).extend(SCIMMY.Schemas.EnterpriseUser, false);
SCIMMY.Resources.declare(SCIMMY.Resources.Group);

export type ResourceType = 'User' | 'Group';

interface AttrDef {
  name: string;
  type: string;
  multiValued?: boolean;
  caseExact?: boolean;
  subAttributes?: AttrDef[];
}
interface SchemaDoc {
  id: string;
  name: string;
  description: string;
  attributes: AttrDef[];
}

const describe = (s: { definition: { describe(): unknown } }) => s.definition.describe() as SchemaDoc;
const USER_DOC = describe(SCIMMY.Schemas.User);
const GROUP_DOC = describe(SCIMMY.Schemas.Group);
const ENTERPRISE_DOC = describe(SCIMMY.Schemas.EnterpriseUser);

/** Lower-cased dotted paths of a schema's attributes, with their definitions. */
function index(doc: SchemaDoc, into = new Map<string, AttrDef>(), prefix = ''): Map<string, AttrDef> {
  for (const a of doc.attributes) {
    into.set(prefix + a.name.toLowerCase(), a);
    for (const s of a.subAttributes ?? []) into.set(`${prefix}${a.name.toLowerCase()}.${s.name.toLowerCase()}`, s);
  }
  return into;
}
const USER_ATTRS = index(USER_DOC);
const ENTERPRISE_ATTRS = index(ENTERPRISE_DOC);
const GROUP_ATTRS = index(GROUP_DOC);

const DATE_TIME = new Set(['meta.created', 'meta.lastmodified']);
const CASE_EXACT = new Set(['id', 'externalid', 'meta.version', 'meta.location']);

export const TRAITS: Record<ResourceType, AttributeTraits> = {
  User: {
    caseExact: (p) => CASE_EXACT.has(p) || USER_ATTRS.get(p)?.caseExact === true,
    dateTime: (p) => DATE_TIME.has(p) || USER_ATTRS.get(p)?.type === 'dateTime',
  },
  Group: {
    // Member values are ids: exact.
    caseExact: (p) => CASE_EXACT.has(p) || p === 'members.value' || GROUP_ATTRS.get(p)?.caseExact === true,
    dateTime: (p) => DATE_TIME.has(p),
  },
};

/** Lower-cased URIs whose attributes sit at the top level of the resource. */
export const CORE_URIS: Record<ResourceType, string[]> = { User: [USER_SCHEMA.toLowerCase()], Group: [GROUP_SCHEMA.toLowerCase()] };

/** The definition of a User attribute path (`active`, `emails.primary`, an enterprise path). */
export function userAttribute(path: string, uri: string | null): AttrDef | undefined {
  if (uri === ENTERPRISE_SCHEMA.toLowerCase()) return ENTERPRISE_ATTRS.get(path);
  return USER_ATTRS.get(path);
}

const asBoolean = (v: unknown) => (typeof v === 'string' && /^(true|false)$/i.test(v) ? v.toLowerCase() === 'true' : v);

/**
 * Converts boolean strings where the schema says boolean, and a bare `manager` id to `{value}`,
 * in place (on a copy the caller owns). Keys are matched case-insensitively.
 */
export function normaliseUserValues(doc: Record<string, unknown>, attrs: Map<string, AttrDef> = USER_ATTRS, prefix = ''): void {
  for (const [k, v] of Object.entries(doc)) {
    const key = prefix + k.toLowerCase();
    if (!prefix && k.toLowerCase() === ENTERPRISE_SCHEMA.toLowerCase() && v && typeof v === 'object' && !Array.isArray(v)) {
      normaliseUserValues(v as Record<string, unknown>, ENTERPRISE_ATTRS);
      continue;
    }
    const def = attrs.get(key);
    if (!def) continue;
    if (def.type === 'boolean') doc[k] = asBoolean(v);
    else if (key === 'manager' && attrs === ENTERPRISE_ATTRS && typeof v === 'string') doc[k] = { value: v };
    else if (def.type === 'complex' && !prefix) {
      const items = Array.isArray(v) ? v : [v];
      for (const item of items) if (item && typeof item === 'object' && !Array.isArray(item)) normaliseUserValues(item as Record<string, unknown>, attrs, `${key}.`);
    }
  }
}

/** scimmy reports bad values as TypeError / SCIMError; both become SCIM 400s (or its own status). */
export function fromScimmy(e: unknown): never {
  if (e instanceof SCIMMY.Types.Error) {
    const err = e as unknown as { status: number; scimType?: string; message: string };
    throw new ScimError(err.status as 400, err.message, (err.scimType ?? 'invalidValue') as 'invalidValue');
  }
  if (e instanceof TypeError || e instanceof SyntaxError) throw badRequest('invalidValue', e.message);
  throw e;
}

/** The attributes of a User to store: canonical names, known attributes only, without id/meta/password. */
export function parseUser(body: unknown): Record<string, unknown> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('invalidSyntax', 'the body must be a JSON object');
  const copy = structuredClone(body) as Record<string, unknown>;
  normaliseUserValues(copy);
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(JSON.stringify(new SCIMMY.Schemas.User(copy, 'in'))) as Record<string, unknown>;
  } catch (e) {
    fromScimmy(e);
  }
  return stripServerAttributes(parsed);
}

/** Re-validates a stored/patched document as a User (used after PATCH). */
export function toUserInstance(doc: Record<string, unknown>, direction: 'in' | 'out' = 'out') {
  try {
    return new SCIMMY.Schemas.User(doc, direction);
  } catch (e) {
    fromScimmy(e);
  }
}

export function stripServerAttributes(doc: Record<string, unknown>): Record<string, unknown> {
  const { id: _id, meta: _meta, schemas: _schemas, groups: _groups, password: _password, ...rest } = doc;
  return rest;
}

export function schemasOf(type: ResourceType, doc: Record<string, unknown>): string[] {
  if (type === 'Group') return [GROUP_SCHEMA];
  return ENTERPRISE_SCHEMA in doc ? [USER_SCHEMA, ENTERPRISE_SCHEMA] : [USER_SCHEMA];
}

export const MAX_RESULTS = 200;

export function serviceProviderConfig(baseUrl: string) {
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults: MAX_RESULTS },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: true },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'Bearer token',
        description: "The directory's token (lsd_…), sent as Authorization: Bearer <token>",
        primary: true,
      },
    ],
    meta: { resourceType: 'ServiceProviderConfig', location: `${baseUrl}/ServiceProviderConfig` },
  };
}

export function resourceTypes(baseUrl: string) {
  const rt = (id: string, endpoint: string, schema: string, extensions: { schema: string; required: boolean }[]) => ({
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:ResourceType'],
    id,
    name: id,
    endpoint,
    description: id === 'User' ? 'User Account' : 'Group',
    schema,
    ...(extensions.length ? { schemaExtensions: extensions } : {}),
    meta: { resourceType: 'ResourceType', location: `${baseUrl}/ResourceTypes/${id}` },
  });
  return [rt('User', '/Users', USER_SCHEMA, [{ schema: ENTERPRISE_SCHEMA, required: false }]), rt('Group', '/Groups', GROUP_SCHEMA, [])];
}

export function schemaDocuments(baseUrl: string) {
  return [USER_DOC, ENTERPRISE_DOC, GROUP_DOC].map((d) => ({
    ...d,
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:Schema'],
    meta: { resourceType: 'Schema', location: `${baseUrl}/Schemas/${d.id}` },
  }));
}

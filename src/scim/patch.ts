/**
 * SCIM PATCH (RFC 7644 §3.5.2) in the dialects real clients send.
 *
 * - Okta: `replace` with no path and a value object (`{"active": false}`); Group Push's `add` /
 *   `remove` of `members` and `members[value eq "…"]`.
 * - Entra ID: capitalised ops (`"Replace"`, `"Add"`, `"Remove"`), booleans as strings
 *   (`"active": "False"`), `remove` of `members` with a value array (remove *those* members, not
 *   all), `emails[type eq "work"].value` paths that may address an element not there yet (add it),
 *   the enterprise `manager` as a bare id.
 *
 * Users: the operations are normalised here and applied by scimmy's PatchOp, which validates the
 * result against the schema. Groups: member operations are set operations on member ids, applied
 * here (a group may have thousands of members; they live in the memberships table, not in a
 * document), so that removing one member can never drop the others.
 */
import SCIMMY from 'scimmy';
import { badRequest, ScimError } from './errors.ts';
import { getCI, matches, parseAttrPath, parseFilter, type AttrPath, type Filter } from './filter.ts';
import { ENTERPRISE_SCHEMA, fromScimmy, normaliseUserValues, PATCH_SCHEMA, stripServerAttributes, TRAITS, USER_SCHEMA, userAttribute } from './schemas.ts';

export interface PatchOperation {
  op: 'add' | 'remove' | 'replace';
  path?: string;
  value?: unknown;
}

const MAX_OPERATIONS = 1000;

/** Validates a PatchOp message; op names are case-insensitive (Entra capitalises them). */
export function parsePatch(body: unknown): PatchOperation[] {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('invalidSyntax', 'the body must be a PatchOp message (a JSON object)');
  const schemas = getCI(body, 'schemas');
  if (!Array.isArray(schemas) || !schemas.some((s) => typeof s === 'string' && s.toLowerCase() === PATCH_SCHEMA.toLowerCase())) {
    throw badRequest('invalidSyntax', `schemas must contain '${PATCH_SCHEMA}'`);
  }
  const ops = getCI(body, 'operations');
  if (!Array.isArray(ops) || ops.length === 0) throw badRequest('invalidSyntax', 'Operations must be a non-empty array');
  if (ops.length > MAX_OPERATIONS) throw badRequest('invalidSyntax', `at most ${MAX_OPERATIONS} operations per request`);
  return ops.map((raw, i) => {
    const where = `Operations[${i}]`;
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw badRequest('invalidSyntax', `${where} must be an object`);
    const op = getCI(raw, 'op');
    const name = typeof op === 'string' ? op.toLowerCase() : '';
    if (name !== 'add' && name !== 'remove' && name !== 'replace') throw badRequest('invalidSyntax', `${where}.op must be add, remove or replace`);
    const path = getCI(raw, 'path');
    if (path !== undefined && (typeof path !== 'string' || path.trim() === '')) throw badRequest('invalidPath', `${where}.path must be a non-empty string`);
    const value = getCI(raw, 'value');
    if (name !== 'remove' && value === undefined) throw badRequest('invalidValue', `${where} (${name}) needs a value`);
    if (name === 'remove' && path === undefined) throw badRequest('noTarget', `${where} (remove) needs a path`);
    return { op: name, ...(path === undefined ? {} : { path: path.trim() }), ...(value === undefined ? {} : { value }) };
  });
}

/** `attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub`, with an optional schema URI prefix. */
export interface PatchPath {
  attr: AttrPath;
  filter: Filter | null;
  /** Sub-attribute after a filter (`emails[type eq "work"].value` → `value`). */
  sub: string | null;
}

export function parsePatchPath(path: string): PatchPath {
  const open = path.indexOf('[');
  if (open < 0) return { attr: parseAttrPath(path, 'invalidPath'), filter: null, sub: null };
  const close = path.lastIndexOf(']');
  if (close < open) throw badRequest('invalidPath', `'${path}' is not a valid path`);
  const rest = path.slice(close + 1);
  if (rest !== '' && !/^\.[A-Za-z$][\w$-]*$/.test(rest)) throw badRequest('invalidPath', `'${path}' is not a valid path`);
  let filter: Filter;
  try {
    filter = parseFilter(path.slice(open + 1, close));
  } catch (e) {
    if (e instanceof ScimError) throw badRequest('invalidPath', `'${path}': ${e.message}`);
    throw e;
  }
  return { attr: parseAttrPath(path.slice(0, open), 'invalidPath'), filter, sub: rest ? rest.slice(1).toLowerCase() : null };
}

const asBoolean = (v: unknown) => (typeof v === 'string' && /^(true|false)$/i.test(v) ? v.toLowerCase() === 'true' : v);
const ENTERPRISE = ENTERPRISE_SCHEMA.toLowerCase();

/** Rewrites one User operation into the form scimmy's PatchOp accepts, given the current document. */
function normaliseUserOp(op: PatchOperation, doc: Record<string, unknown>): PatchOperation {
  if (op.path === undefined) {
    if (op.value === null || typeof op.value !== 'object' || Array.isArray(op.value)) throw badRequest('invalidValue', `a ${op.op} without a path needs an object value`);
    const value = structuredClone(op.value) as Record<string, unknown>;
    // Okta and Entra send the id (unchanged) and schemas along; neither is a patchable attribute.
    for (const k of Object.keys(value)) if (['id', 'schemas', 'meta'].includes(k.toLowerCase())) delete value[k];
    normaliseUserValues(value);
    // Dotted keys (`name.givenName`) and enterprise paths as keys: coerce their booleans too.
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === 'string' && userAttribute(k.toLowerCase(), null)?.type === 'boolean') value[k] = asBoolean(v);
    }
    return { op: op.op, value };
  }
  const p = parsePatchPath(op.path);
  const key = `${p.attr.name}${p.attr.sub ? `.${p.attr.sub}` : p.sub ? `.${p.sub}` : ''}`;
  const def = userAttribute(key, p.attr.uri);
  let value = op.value;
  if (def?.type === 'boolean') value = asBoolean(value);
  if (p.attr.uri === ENTERPRISE && p.attr.name === 'manager' && p.attr.sub === null && typeof value === 'string') value = { value };
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && p.filter === null && p.attr.sub === null) {
    const copy = structuredClone(value) as Record<string, unknown>;
    normaliseUserValues({ [p.attr.text.split(':').pop()!]: copy });
    value = copy;
  }
  // An add/replace addressing `attr[type eq "x"]…` where no element matches: Entra means "set the
  // work email", so add the element rather than answer noTarget.
  if (p.filter && op.op !== 'remove' && p.filter.op === 'eq' && typeof p.filter.value === 'string' && p.filter.attr.sub === null) {
    const current = getCI(p.attr.uri && p.attr.uri !== USER_SCHEMA.toLowerCase() ? getCI(doc, p.attr.uri) : doc, p.attr.name);
    const items = Array.isArray(current) ? current : [];
    const hit = items.some((el) => matches(p.filter!, el, TRAITS.User, [], `${p.attr.name}.`));
    if (!hit) {
      const element: Record<string, unknown> = { [p.filter.attr.name]: p.filter.value };
      if (p.sub) element[p.sub] = value;
      else if (value && typeof value === 'object' && !Array.isArray(value)) Object.assign(element, value);
      else throw badRequest('invalidValue', `'${op.path}' needs an object value`);
      normaliseUserValues({ [p.attr.name]: [element] });
      return { op: 'add', path: op.path.slice(0, op.path.indexOf('[')), value: [element] };
    }
  }
  return { op: op.op, path: op.path, ...(value === undefined ? {} : { value }) };
}

/**
 * Applies PATCH operations to a User's stored attributes. Returns the new attributes, or null when
 * nothing changed. Throws a SCIM 400 for anything malformed, before anything is written.
 */
export async function patchUser(id: string, doc: Record<string, unknown>, ops: PatchOperation[]): Promise<Record<string, unknown> | null> {
  const schemas = ENTERPRISE_SCHEMA in doc ? [USER_SCHEMA, ENTERPRISE_SCHEMA] : [USER_SCHEMA];
  let current = doc;
  let changed = false;
  // One operation at a time: each one's normalisation sees the previous one's result.
  for (const op of ops) {
    const normalised = normaliseUserOp(op, current);
    let result: unknown;
    try {
      const message = new SCIMMY.Messages.PatchOp({ schemas: [PATCH_SCHEMA], Operations: [normalised] });
      const instance = new SCIMMY.Schemas.User({ schemas, ...current, id, meta: { resourceType: 'User' } }, 'out');
      result = await message.apply(instance);
    } catch (e) {
      fromScimmy(e);
    }
    if (result === undefined) continue;
    const next = stripServerAttributes(JSON.parse(JSON.stringify(result)) as Record<string, unknown>);
    if (JSON.stringify(next) !== JSON.stringify(current)) {
      current = next;
      changed = true;
    }
  }
  return changed ? current : null;
}

/** A Group's state as PATCH sees it. */
export interface GroupState {
  displayName: string;
  externalId: string | null;
  members: Set<string>;
}

/** Member ids named by a `members` value: an array of `{value}` objects, or one. */
export function memberIds(value: unknown, where: string): string[] {
  const items = Array.isArray(value) ? value : [value];
  return items.map((m, i) => {
    const v = getCI(m, 'value');
    if (typeof v !== 'string' || v === '') throw badRequest('invalidValue', `${where}[${i}] must be an object with a string 'value' (a member's id)`);
    return v;
  });
}

const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:group';

function groupAttribute(attr: AttrPath, path: string): 'displayname' | 'externalid' | 'members' {
  if (attr.uri !== null && attr.uri !== GROUP) throw badRequest('invalidPath', `'${path}' is not a Group attribute`);
  if (attr.name === 'displayname' || attr.name === 'externalid' || attr.name === 'members') {
    if (attr.sub !== null && !(attr.name === 'members' && attr.sub === 'value')) throw badRequest('invalidPath', `'${path}' cannot be patched`);
    return attr.name;
  }
  throw badRequest('invalidPath', `'${path}' is not a patchable Group attribute`);
}

function setScalar(state: GroupState, name: 'displayname' | 'externalid', value: unknown, path: string) {
  if (name === 'displayname') {
    if (typeof value !== 'string' || value.trim() === '') throw badRequest('invalidValue', `${path} must be a non-empty string`);
    state.displayName = value;
  } else {
    if (value !== null && typeof value !== 'string') throw badRequest('invalidValue', `${path} must be a string`);
    state.externalId = value;
  }
}

/**
 * Applies PATCH operations to a Group's state, in order, on a copy. Member operations:
 * `add members` adds; `remove members` with no value removes all, with a value removes those;
 * `remove members[filter]` removes the matching members; `replace members` sets them.
 */
export function patchGroup(state: GroupState, ops: PatchOperation[]): GroupState {
  const s: GroupState = { displayName: state.displayName, externalId: state.externalId, members: new Set(state.members) };
  ops.forEach((op, i) => {
    const where = `Operations[${i}].value`;
    if (op.path === undefined) {
      if (op.value === null || typeof op.value !== 'object' || Array.isArray(op.value)) throw badRequest('invalidValue', `${where} must be an object when there is no path`);
      for (const [k, v] of Object.entries(op.value)) {
        const name = k.toLowerCase();
        if (name === 'id' || name === 'schemas' || name === 'meta') continue;
        const attr = groupAttribute(parseAttrPath(k, 'invalidPath'), k);
        if (attr === 'members') {
          const ids = memberIds(v, `${where}.${k}`);
          if (op.op === 'replace') s.members = new Set(ids);
          else ids.forEach((id) => s.members.add(id));
        } else setScalar(s, attr, v, `${where}.${k}`);
      }
      return;
    }
    const p = parsePatchPath(op.path);
    const attr = groupAttribute(p.attr, op.path);
    if (attr !== 'members') {
      if (p.filter) throw badRequest('invalidPath', `'${op.path}' has a filter on a single-valued attribute`);
      if (op.op === 'remove') {
        if (attr === 'displayname') throw badRequest('mutability', 'displayName is required and cannot be removed');
        s.externalId = null;
      } else setScalar(s, attr, op.value, where);
      return;
    }
    if (p.filter) {
      if (op.op !== 'remove') throw badRequest('invalidPath', `'${op.path}': only remove may use a member filter`);
      if (p.sub !== null) throw badRequest('invalidPath', `'${op.path}' cannot be patched`);
      for (const id of [...s.members]) if (matches(p.filter, { value: id }, TRAITS.Group, [], 'members.')) s.members.delete(id);
      return;
    }
    if (op.op === 'remove') {
      // Entra removes members with a value array: only those. No value: all of them (RFC 7644).
      if (op.value === undefined || op.value === null) s.members.clear();
      else memberIds(op.value, where).forEach((id) => s.members.delete(id));
    } else if (op.op === 'add') {
      memberIds(op.value, where).forEach((id) => s.members.add(id));
    } else {
      s.members = new Set(memberIds(op.value, where));
    }
  });
  return s;
}

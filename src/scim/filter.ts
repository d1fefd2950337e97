/**
 * SCIM filters (RFC 7644 §3.4.2.2): a parser and an evaluator over resource documents.
 *
 * Written here rather than taken from `scim2-parse-filter` or scimmy's `Filter`: the first compares
 * strings case-sensitively and dates as strings, the second threw a TypeError on a resource lacking a
 * parent attribute (`meta`) when we tried it; both were tried on the cases below before deciding.
 *
 * - Attribute names, operators and `and`/`or`/`not` are case-insensitive.
 * - String comparison is case-insensitive unless the attribute is case-exact (`id`, `externalId`,
 *   member values: the caller says which).
 * - `meta.created` and `meta.lastModified` compare as instants, whatever the offset or precision.
 * - Precedence: `not` > `and` > `or`; parentheses group; `attr[filter]` filters a multi-valued
 *   attribute's elements.
 * - A bare word where a value is expected (`userName sw O`) is read as a string: Microsoft's reference
 *   server and its test collection send such filters; the RFC wants quotes. `true`, `false`, `null`
 *   and numbers keep their JSON meaning.
 */
import { badRequest } from './errors.ts';

export type CompareOp = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'ge' | 'lt' | 'le';
export type Value = string | number | boolean | null;

/** `[uri:]name[.sub]`, lower-cased for lookups; `text` as written (for messages). */
export interface AttrPath {
  uri: string | null;
  name: string;
  sub: string | null;
  text: string;
}

export type Filter =
  | { op: 'and' | 'or'; left: Filter; right: Filter }
  | { op: 'not'; filter: Filter }
  | { op: 'pr'; attr: AttrPath }
  | { op: CompareOp; attr: AttrPath; value: Value }
  | { op: 'valuePath'; attr: AttrPath; filter: Filter };

const COMPARE_OPS = new Set<string>(['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le']);
const ORDERING = new Set<string>(['gt', 'ge', 'lt', 'le']);
const MAX_FILTER_LENGTH = 4096;
const MAX_DEPTH = 32;

type Token = { kind: 'punct'; text: '(' | ')' | '[' | ']' } | { kind: 'string'; text: string } | { kind: 'word'; text: string };

function tokenize(input: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')' || c === '[' || c === ']') {
      out.push({ kind: 'punct', text: c });
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < input.length && input[j] !== '"') j += input[j] === '\\' ? 2 : 1;
      if (j >= input.length) throw badRequest('invalidFilter', `unterminated string at position ${i + 1} of the filter`);
      try {
        out.push({ kind: 'string', text: JSON.parse(input.slice(i, j + 1)) as string });
      } catch {
        throw badRequest('invalidFilter', `invalid string escape at position ${i + 1} of the filter`);
      }
      i = j + 1;
    } else {
      let j = i;
      while (j < input.length && !/[\s()[\]"]/.test(input[j]!)) j++;
      out.push({ kind: 'word', text: input.slice(i, j) });
      i = j;
    }
  }
  return out;
}

const ATTR = /^(?:(urn:[A-Za-z0-9:._-]+):)?([A-Za-z$][\w$-]*)(?:\.([A-Za-z$][\w$-]*))?$/;

/** `name.sub`, `urn:…:Schema:name.sub`; throws `invalidPath`-style errors as `scimType` says. */
export function parseAttrPath(text: string, scimType: 'invalidFilter' | 'invalidPath' = 'invalidFilter'): AttrPath {
  const m = ATTR.exec(text);
  if (!m) throw badRequest(scimType, `'${text}' is not an attribute path`);
  return { uri: m[1]?.toLowerCase() ?? null, name: m[2]!.toLowerCase(), sub: m[3]?.toLowerCase() ?? null, text };
}

function valueOf(t: Token | undefined): Value {
  if (!t || t.kind === 'punct') throw badRequest('invalidFilter', 'a comparison needs a value');
  if (t.kind === 'string') return t.text;
  const w = t.text.toLowerCase();
  if (w === 'true') return true;
  if (w === 'false') return false;
  if (w === 'null') return null;
  if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t.text)) return Number(t.text);
  return t.text;
}

export function parseFilter(input: string): Filter {
  if (input.length > MAX_FILTER_LENGTH) throw badRequest('invalidFilter', `the filter is longer than ${MAX_FILTER_LENGTH} characters`);
  const tokens = tokenize(input);
  let pos = 0;
  const peekWord = () => {
    const t = tokens[pos];
    return t?.kind === 'word' ? t.text.toLowerCase() : undefined;
  };
  const expect = (p: ')' | ']') => {
    const t = tokens[pos++];
    if (t?.kind !== 'punct' || t.text !== p) throw badRequest('invalidFilter', `expected '${p}' in the filter`);
  };

  function or(depth: number): Filter {
    if (depth > MAX_DEPTH) throw badRequest('invalidFilter', 'the filter nests too deeply');
    let left = and(depth);
    while (peekWord() === 'or') {
      pos++;
      left = { op: 'or', left, right: and(depth) };
    }
    return left;
  }
  function and(depth: number): Filter {
    let left = unary(depth);
    while (peekWord() === 'and') {
      pos++;
      left = { op: 'and', left, right: unary(depth) };
    }
    return left;
  }
  function unary(depth: number): Filter {
    if (peekWord() === 'not') {
      pos++;
      return { op: 'not', filter: unary(depth + 1) };
    }
    const t = tokens[pos];
    if (t?.kind === 'punct' && t.text === '(') {
      pos++;
      const inner = or(depth + 1);
      expect(')');
      return inner;
    }
    if (t?.kind !== 'word') throw badRequest('invalidFilter', t ? `unexpected '${t.text}' in the filter` : 'the filter ends too early');
    pos++;
    const attr = parseAttrPath(t.text);
    const next = tokens[pos];
    if (next?.kind === 'punct' && next.text === '[') {
      pos++;
      const inner = or(depth + 1);
      expect(']');
      return { op: 'valuePath', attr, filter: inner };
    }
    const op = peekWord();
    if (op === 'pr') {
      pos++;
      return { op: 'pr', attr };
    }
    if (op === undefined || !COMPARE_OPS.has(op)) throw badRequest('invalidFilter', `expected an operator after '${t.text}'`);
    pos++;
    const value = valueOf(tokens[pos++]);
    if (ORDERING.has(op) && (typeof value === 'boolean' || value === null)) {
      throw badRequest('invalidFilter', `'${op}' cannot compare with ${String(value)}`);
    }
    return { op: op as CompareOp, attr, value };
  }

  if (tokens.length === 0) throw badRequest('invalidFilter', 'the filter is empty');
  const f = or(0);
  if (pos < tokens.length) throw badRequest('invalidFilter', `unexpected '${tokens[pos]!.text}' in the filter`);
  return f;
}

/** How the evaluator treats an attribute (by its lower-cased dotted path, e.g. `meta.created`). */
export interface AttributeTraits {
  caseExact(path: string): boolean;
  dateTime(path: string): boolean;
}

type Doc = Record<string, unknown>;

/** Case-insensitive property lookup. */
export function getCI(obj: unknown, key: string): unknown {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return undefined;
  for (const k of Object.keys(obj)) if (k.toLowerCase() === key) return (obj as Doc)[k];
  return undefined;
}

/** The object an attribute path starts from: the resource, or its extension for an extension URI. */
function base(doc: unknown, attr: AttrPath, coreUris: readonly string[]): unknown {
  if (attr.uri === null || coreUris.includes(attr.uri)) return doc;
  return getCI(doc, attr.uri);
}

/** Every value the path reaches (multi-valued attributes flattened). */
function resolve(doc: unknown, attr: AttrPath, coreUris: readonly string[]): unknown[] {
  const top = getCI(base(doc, attr, coreUris), attr.name);
  const items = Array.isArray(top) ? top : top === undefined ? [] : [top];
  if (attr.sub === null) {
    // A multi-valued complex attribute compared as a whole compares its `value` sub-attribute.
    return items.map((v) => (v !== null && typeof v === 'object' && !Array.isArray(v) && Array.isArray(top) ? getCI(v, 'value') : v));
  }
  return items.flatMap((v) => {
    const s = getCI(v, attr.sub!);
    return Array.isArray(s) ? s : s === undefined ? [] : [s];
  });
}

const pathKey = (attr: AttrPath, prefix = '') => `${prefix}${attr.name}${attr.sub ? `.${attr.sub}` : ''}`;

function compare(op: CompareOp, actual: unknown, expected: Value, exact: boolean, date: boolean): boolean {
  if (actual === undefined) return false;
  if (expected === null) return op === 'eq' ? actual === null : op === 'ne' ? actual !== null : false;
  if (date && typeof expected === 'string' && typeof actual === 'string') {
    const a = Date.parse(actual);
    const e = Date.parse(expected);
    if (Number.isNaN(e)) throw badRequest('invalidFilter', `'${expected}' is not a date-time`);
    return ordered(op, a - e, String(a), String(e));
  }
  if (typeof expected === 'boolean') return op === 'eq' ? actual === expected : op === 'ne' ? actual !== expected : false;
  if (typeof expected === 'number') {
    if (typeof actual !== 'number') return op === 'ne';
    return ordered(op, actual - expected, String(actual), String(expected));
  }
  if (typeof actual !== 'string') return op === 'ne';
  const a = exact ? actual : actual.toLowerCase();
  const e = exact ? expected : expected.toLowerCase();
  return ordered(op, a < e ? -1 : a > e ? 1 : 0, a, e);
}

function ordered(op: CompareOp, diff: number, a: string, e: string): boolean {
  switch (op) {
    case 'eq':
      return diff === 0;
    case 'ne':
      return diff !== 0;
    case 'co':
      return a.includes(e);
    case 'sw':
      return a.startsWith(e);
    case 'ew':
      return a.endsWith(e);
    case 'gt':
      return diff > 0;
    case 'ge':
      return diff >= 0;
    case 'lt':
      return diff < 0;
    case 'le':
      return diff <= 0;
  }
}

/**
 * Whether `doc` matches. `coreUris` are the resource's core schema URIs (lower-case), whose
 * attributes live at the top level; `prefix` is the enclosing attribute inside `attr[…]`.
 */
export function matches(f: Filter, doc: unknown, traits: AttributeTraits, coreUris: readonly string[], prefix = ''): boolean {
  switch (f.op) {
    case 'and':
      return matches(f.left, doc, traits, coreUris, prefix) && matches(f.right, doc, traits, coreUris, prefix);
    case 'or':
      return matches(f.left, doc, traits, coreUris, prefix) || matches(f.right, doc, traits, coreUris, prefix);
    case 'not':
      return !matches(f.filter, doc, traits, coreUris, prefix);
    case 'pr':
      return resolve(doc, f.attr, coreUris).some((v) => v !== null && v !== '' && !(Array.isArray(v) && v.length === 0));
    case 'valuePath': {
      const top = getCI(base(doc, f.attr, coreUris), f.attr.name);
      const items = Array.isArray(top) ? top : top === undefined ? [] : [top];
      const inner = `${pathKey(f.attr, prefix)}.`;
      return items.some((el) => matches(f.filter, el, traits, [], inner));
    }
    default: {
      const key = pathKey(f.attr, prefix);
      const values = resolve(doc, f.attr, coreUris);
      const exact = traits.caseExact(key);
      const date = traits.dateTime(key);
      // `ne` holds when no value equals; the other operators when some value satisfies them.
      if (f.op === 'ne') return !values.some((v) => compare('eq', v, f.value, exact, date));
      return values.some((v) => compare(f.op as CompareOp, v, f.value, exact, date));
    }
  }
}

/**
 * A string equality on one of `attrs` that every match must satisfy (a conjunct of the top-level
 * `and` chain), so a store can narrow candidates with an index before evaluating the whole filter.
 */
export function requiredEquality(f: Filter, attrs: readonly string[], coreUris: readonly string[]): { attr: string; value: string } | null {
  if (f.op === 'and') return requiredEquality(f.left, attrs, coreUris) ?? requiredEquality(f.right, attrs, coreUris);
  if (f.op === 'eq' && typeof f.value === 'string' && f.attr.sub === null && (f.attr.uri === null || coreUris.includes(f.attr.uri))) {
    const attr = attrs.find((a) => a.toLowerCase() === f.attr.name);
    if (attr) return { attr, value: f.value };
  }
  return null;
}

/** Whether the filter mentions `name` (lower-case) at the top level: e.g. whether members must be loaded. */
export function mentions(f: Filter, name: string): boolean {
  switch (f.op) {
    case 'and':
    case 'or':
      return mentions(f.left, name) || mentions(f.right, name);
    case 'not':
      return mentions(f.filter, name);
    default:
      return f.attr.name === name;
  }
}

/**
 * The `sql` tagged template: statements are written as plain SQL, and every interpolated value
 * becomes a positional parameter. Fragments nest (a fragment interpolated into another keeps its own
 * parameters, in order) and lists join, so no caller ever computes a `$n` by hand — the numbering
 * happens once, when the finished statement is compiled for the seam.
 *
 * The shape follows Kysely's raw builder (`sql`, `sql.join`, `sql.raw`): a fragment is its literal
 * text parts and the values between them, immutable, and numbered only at compile time. It is not a
 * query builder (ADR 0001): the SQL stays as written.
 *
 * Compiling is cached by shape. A statement's text depends only on which literal parts it is made of
 * and, in each slot, whether a parameter or which nested fragment stands there — not on the values.
 * Every fragment carries a small id for its parts (one per template call site: the identity of its
 * `TemplateStringsArray`; per text for `sql.raw`; per length for `sql.join`), and compiling walks
 * the tree once, collecting the parameters and following a trie of those ids to the shape's compiled
 * text. So the hot path neither rebuilds nor re-scans the text, and it hands the engines the same
 * string for the same shape (their prepared-statement caches hit without comparing long keys).
 */

/** A slot holding a parameter, in the shape trie (parts ids are ≥ 0). */
const PARAM = -1;

let nextPartsId = 0;
/** Parts id of each template call site (its frozen strings array). */
const templateIds = new WeakMap<readonly string[], number>();
/** Parts id of parts known by content: raw texts, join lengths, fragments built by hand. */
const contentIds = new Map<string, number>();

function checked(strings: readonly string[]): void {
  for (const s of strings) {
    // Hand-numbered parameters inside a fragment would collide with the compiled numbering.
    if (/\$\d/.test(s)) throw new Error(`sql fragment contains a hand-numbered parameter: ${s.trim().slice(0, 80)}`);
  }
}

function idByContent(key: string, strings: readonly string[]): number {
  let id = contentIds.get(key);
  if (id === undefined) {
    checked(strings);
    // Raw texts are code's constants; should something feed it many, forget the old ones.
    if (contentIds.size >= 10_000) contentIds.clear();
    id = nextPartsId++;
    contentIds.set(key, id);
  }
  return id;
}

export class SqlFragment {
  /** The id of `parts` in the compile cache (same id ⇔ same parts). */
  readonly partsId: number;
  /** `parts.length === values.length + 1`, as in a template literal. */
  constructor(
    readonly parts: readonly string[],
    readonly values: readonly unknown[],
    partsId?: number,
  ) {
    this.partsId = partsId ?? idByContent('c' + parts.join('\u0000'), parts);
  }
}

/** A compiled statement: PostgreSQL-style `$1 … $n` text and its parameters in order. */
export interface CompiledSql {
  text: string;
  params: unknown[];
}

export function sql(strings: TemplateStringsArray, ...values: unknown[]): SqlFragment {
  let id = templateIds.get(strings);
  if (id === undefined) {
    checked(strings);
    id = nextPartsId++;
    templateIds.set(strings, id);
  }
  return new SqlFragment(strings, values, id);
}

/**
 * Trusted SQL text spliced in as is (dialect keywords such as `FOR UPDATE`, column names chosen by
 * code). Never pass input through it.
 */
sql.raw = (text: string): SqlFragment => new SqlFragment([text], [], idByContent('r' + text, [text]));

/** `items` separated by `separator` (default `, `); each item is a value (a parameter) or a fragment. */
sql.join = (items: readonly unknown[], separator: SqlFragment = sql`, `): SqlFragment => {
  if (items.length === 0) throw new Error('sql.join of an empty list (an empty IN list is not valid SQL)');
  const values = items.flatMap((item, i) => (i === 0 ? [item] : [separator, item]));
  const parts = ['', ...values.map(() => '')];
  return new SqlFragment(parts, values, idByContent('j' + values.length, parts));
};

/** The empty fragment (an optional clause left out). */
sql.empty = new SqlFragment([''], []);

/** The text and parameters of a statement as the seam receives it. */
export function compileStatement(statement: SqlFragment | string, params: readonly unknown[] = []): CompiledSql {
  return typeof statement === 'string' ? { text: statement, params: params as unknown[] } : compileSql(statement);
}

/** A node of the shape trie: the shape so far, and where each next slot's shape leads. */
interface ShapeNode {
  shape: number;
  next: Map<number, ShapeNode>;
}

/** Shapes are bounded by the code's call sites and list lengths; past this many, start afresh. */
const MAX_SHAPES = 20_000;
let shapeRoots = new Map<number, ShapeNode>();
let texts = new Map<number, string>();
let nextShape = 0;

const newNode = (): ShapeNode => ({ shape: nextShape++, next: new Map() });

/** The shape of `f` (its parts and what each slot holds, recursively); pushes its parameters. */
function shapeOf(f: SqlFragment, params: unknown[]): number {
  let node: ShapeNode | undefined = shapeRoots.get(f.partsId);
  if (!node) shapeRoots.set(f.partsId, (node = newNode()));
  for (const v of f.values) {
    let slot = PARAM;
    if (v instanceof SqlFragment) slot = shapeOf(v, params);
    else params.push(v);
    let child: ShapeNode | undefined = node.next.get(slot);
    if (!child) node.next.set(slot, (child = newNode()));
    node = child;
  }
  return node.shape;
}

/** The text of `f` with its parameters numbered left to right (the uncached compile). */
function render(f: SqlFragment): string {
  let n = 0;
  let text = '';
  const walk = (g: SqlFragment) => {
    const { parts, values } = g;
    for (let i = 0; i < values.length; i++) {
      text += parts[i];
      const v = values[i];
      if (v instanceof SqlFragment) walk(v);
      else text += '$' + ++n;
    }
    text += parts[values.length];
  };
  walk(f);
  return text;
}

/** Numbers the parameters of `f` and its nested fragments, left to right. */
export function compileSql(f: SqlFragment): CompiledSql {
  if (nextShape >= MAX_SHAPES) {
    shapeRoots = new Map();
    texts = new Map();
    nextShape = 0;
  }
  const params: unknown[] = [];
  const shape = shapeOf(f, params);
  let text = texts.get(shape);
  if (text === undefined) texts.set(shape, (text = render(f)));
  return { text, params };
}

/** How many statement shapes have been compiled (and cached) so far: for tests of the cache. */
export const compiledShapes = (): number => texts.size;

/** A placeholder for the argument `key` of a statement built once (`prepared`). */
class Hole {
  constructor(readonly key: string) {}
}

/**
 * A statement whose shape does not depend on its arguments, built and compiled once: `build` is
 * called with placeholders for the arguments (it may use them only as values), and the returned
 * function gives the text and parameters for real arguments without building or walking the
 * fragments again — for the statements of the hot path (a check), where that walk cost more than
 * the statement itself on SQLite.
 */
export function prepared<A extends object>(keys: readonly (keyof A & string)[], build: (holes: A) => SqlFragment): (args: A) => CompiledSql {
  const holes = Object.fromEntries(keys.map((k) => [k, new Hole(k)])) as unknown as A;
  const { text, params } = compileSql(build(holes));
  const slots = params.map((p) => (p instanceof Hole ? p.key : undefined));
  return (args) => ({ text, params: slots.map((k, i) => (k === undefined ? params[i] : (args as Record<string, unknown>)[k])) });
}

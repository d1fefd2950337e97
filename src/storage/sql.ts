/**
 * The `sql` tagged template: statements are written as plain SQL, and every interpolated value
 * becomes a positional parameter. Fragments nest (a fragment interpolated into another keeps its own
 * parameters, in order) and lists join, so no caller ever computes a `$n` by hand — the numbering
 * happens once, when the finished statement is compiled for the seam.
 *
 * The shape follows Kysely's raw builder (`sql`, `sql.join`, `sql.raw`): a fragment is its literal
 * text parts and the values between them, immutable, and numbered only at compile time. It is not a
 * query builder (ADR 0001): the SQL stays as written.
 */

export class SqlFragment {
  /** `parts.length === values.length + 1`, as in a template literal. */
  constructor(
    readonly parts: readonly string[],
    readonly values: readonly unknown[],
  ) {}
}

/** A compiled statement: PostgreSQL-style `$1 … $n` text and its parameters in order. */
export interface CompiledSql {
  text: string;
  params: unknown[];
}

function fragment(strings: readonly string[], values: readonly unknown[]): SqlFragment {
  for (const s of strings) {
    // Hand-numbered parameters inside a fragment would collide with the compiled numbering.
    if (/\$\d/.test(s)) throw new Error(`sql fragment contains a hand-numbered parameter: ${s.trim().slice(0, 80)}`);
  }
  return new SqlFragment(strings, values);
}

export function sql(strings: TemplateStringsArray, ...values: unknown[]): SqlFragment {
  return fragment(strings, values);
}

/**
 * Trusted SQL text spliced in as is (dialect keywords such as `FOR UPDATE`, column names chosen by
 * code). Never pass input through it.
 */
sql.raw = (text: string): SqlFragment => fragment([text], []);

/** `items` separated by `separator` (default `, `); each item is a value (a parameter) or a fragment. */
sql.join = (items: readonly unknown[], separator: SqlFragment = sql`, `): SqlFragment => {
  if (items.length === 0) throw new Error('sql.join of an empty list (an empty IN list is not valid SQL)');
  const values = items.flatMap((item, i) => (i === 0 ? [item] : [separator, item]));
  return new SqlFragment(['', ...values.map(() => '')], values);
};

/** The empty fragment (an optional clause left out). */
sql.empty = new SqlFragment([''], []);

/** The text and parameters of a statement as the seam receives it. */
export function compileStatement(statement: SqlFragment | string, params: readonly unknown[] = []): CompiledSql {
  return typeof statement === 'string' ? { text: statement, params: params as unknown[] } : compileSql(statement);
}

/** Numbers the parameters of `f` and its nested fragments, left to right. */
export function compileSql(f: SqlFragment): CompiledSql {
  const params: unknown[] = [];
  let text = '';
  const walk = (g: SqlFragment) => {
    g.parts.forEach((part, i) => {
      text += part;
      if (i >= g.values.length) return;
      const v = g.values[i];
      if (v instanceof SqlFragment) walk(v);
      else {
        params.push(v);
        text += '$' + params.length;
      }
    });
  };
  walk(f);
  return { text, params };
}

/** The `sql` tagged template: numbering, nesting, lists, the guard against hand-numbered text, and the compile cache. */
import { describe, expect, it } from 'vitest';
import { compiledShapes, compileSql, prepared, sql, type SqlFragment } from '../../src/storage/sql.ts';

describe('sql tag', () => {
  it('numbers interpolated values in order', () => {
    expect(compileSql(sql`SELECT * FROM t WHERE a = ${1} AND b = ${'x'}`)).toEqual({ text: 'SELECT * FROM t WHERE a = $1 AND b = $2', params: [1, 'x'] });
  });

  it('nests fragments, keeping their parameters in place', () => {
    const inner = sql`b IN (SELECT b FROM u WHERE c = ${'c'})`;
    expect(compileSql(sql`SELECT ${sql.raw('a')} FROM t WHERE x = ${0} AND ${inner} AND y = ${true}`)).toEqual({
      text: 'SELECT a FROM t WHERE x = $1 AND b IN (SELECT b FROM u WHERE c = $2) AND y = $3',
      params: [0, 'c', true],
    });
  });

  it('joins lists of values and of fragments', () => {
    expect(compileSql(sql`IN (${sql.join(['a', 'b', 'c'])})`)).toEqual({ text: 'IN ($1, $2, $3)', params: ['a', 'b', 'c'] });
    const rows = sql.join([sql`(${1}, ${2})`, sql`(${3}, ${4})`]);
    expect(compileSql(sql`VALUES ${rows}`)).toEqual({ text: 'VALUES ($1, $2), ($3, $4)', params: [1, 2, 3, 4] });
    expect(compileSql(sql.join([sql`a = ${1}`, sql`b = ${2}`], sql` OR `)).text).toBe('a = $1 OR b = $2');
  });

  it('keeps null and undefined as parameters', () => {
    expect(compileSql(sql`${null}, ${undefined}`).params).toEqual([null, undefined]);
  });

  it('refuses hand-numbered parameters and empty lists', () => {
    expect(() => sql.raw('a = $1')).toThrow(/hand-numbered/);
    expect(() => sql`a = $1 AND b = ${2}`).toThrow(/hand-numbered/);
    expect(() => sql.join([])).toThrow(/empty/);
  });

  describe('compile cache (by shape)', () => {
    const byId = (id: unknown) => sql`SELECT * FROM t WHERE id = ${id} AND x = ${'x'}`;

    it('compiles a template once, whatever its values', () => {
      const first = compileSql(byId(0));
      const before = compiledShapes();
      for (let i = 1; i <= 50; i++) expect(compileSql(byId(i))).toEqual({ text: first.text, params: [i, 'x'] });
      expect(compiledShapes()).toBe(before);
    });

    it('tells apart what stands in a slot: nested fragments, raw text, a value', () => {
      const where = (clause: SqlFragment | number) => sql`SELECT a FROM t WHERE b = ${1} ${clause} AND c = ${2}`;
      const cases: Array<[SqlFragment | number, string, unknown[]]> = [
        [sql.empty, 'SELECT a FROM t WHERE b = $1  AND c = $2', [1, 2]],
        [sql`AND d = ${'d'}`, 'SELECT a FROM t WHERE b = $1 AND d = $2 AND c = $3', [1, 'd', 2]],
        [sql`AND e IN (${sql`SELECT e FROM u WHERE f = ${'f'} AND g = ${'g'}`})`, 'SELECT a FROM t WHERE b = $1 AND e IN (SELECT e FROM u WHERE f = $2 AND g = $3) AND c = $4', [1, 'f', 'g', 2]],
        [sql.raw('AND h IS NULL'), 'SELECT a FROM t WHERE b = $1 AND h IS NULL AND c = $2', [1, 2]],
        [sql.raw('AND i IS NULL'), 'SELECT a FROM t WHERE b = $1 AND i IS NULL AND c = $2', [1, 2]],
        [7, 'SELECT a FROM t WHERE b = $1 $2 AND c = $3', [1, 7, 2]],
      ];
      // Twice round, interleaved: a cached shape must not answer for another.
      for (let round = 0; round < 2; round++) {
        for (const [clause, text, params] of cases) expect(compileSql(where(clause))).toEqual({ text, params });
      }
    });

    it('tells apart lists of different lengths and separators', () => {
      const inList = (ids: string[]) => sql`SELECT * FROM t WHERE id IN (${sql.join(ids)})`;
      for (let round = 0; round < 2; round++) {
        expect(compileSql(inList(['a']))).toEqual({ text: 'SELECT * FROM t WHERE id IN ($1)', params: ['a'] });
        expect(compileSql(inList(['a', 'b', 'c']))).toEqual({ text: 'SELECT * FROM t WHERE id IN ($1, $2, $3)', params: ['a', 'b', 'c'] });
        expect(compileSql(inList(['x', 'y']))).toEqual({ text: 'SELECT * FROM t WHERE id IN ($1, $2)', params: ['x', 'y'] });
        const either = (sep: SqlFragment) => sql.join([sql`a = ${1}`, sql`b = ${2}`], sep);
        expect(compileSql(either(sql` OR `)).text).toBe('a = $1 OR b = $2');
        expect(compileSql(either(sql` AND `)).text).toBe('a = $1 AND b = $2');
      }
    });

    it('numbers a fragment used twice in one statement at each place', () => {
      const live = sql`expires_at > ${5}`;
      expect(compileSql(sql`SELECT 1 WHERE ${live} AND ${live} AND y = ${6}`)).toEqual({ text: 'SELECT 1 WHERE expires_at > $1 AND expires_at > $2 AND y = $3', params: [5, 5, 6] });
    });
  });

  describe('prepared', () => {
    type Args = { org: string; now: number; ids: string[] };
    const build = (a: Args) => sql`SELECT x FROM t WHERE org = ${a.org} AND ${sql`(e IS NULL OR e > ${a.now})`} AND id = ANY(${a.ids}) AND k = ${7} AND again = ${a.org}`;
    const bind = prepared<Args>(['org', 'now', 'ids'], build);

    it('gives what compiling the statement built from the arguments gives', () => {
      for (const a of [{ org: 'o1', now: 5, ids: ['a'] }, { org: 'o2', now: 9, ids: ['b', 'c'] }]) {
        expect(bind(a)).toEqual(compileSql(build(a)));
      }
      expect(bind({ org: 'o3', now: 1, ids: [] })).toEqual({
        text: 'SELECT x FROM t WHERE org = $1 AND (e IS NULL OR e > $2) AND id = ANY($3) AND k = $4 AND again = $5',
        params: ['o3', 1, [], 7, 'o3'],
      });
    });

    it('does not build the fragments again', () => {
      let built = 0;
      const b = prepared<{ v: number }>(['v'], (a) => (built++, sql`SELECT ${a.v} AS v`));
      b({ v: 1 });
      b({ v: 2 });
      expect(built).toBe(1);
      expect(b({ v: 3 }).params).toEqual([3]);
    });
  });
});

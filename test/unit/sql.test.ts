/** The `sql` tagged template: numbering, nesting, lists, and the guard against hand-numbered text. */
import { describe, expect, it } from 'vitest';
import { compileSql, sql } from '../../src/storage/sql.ts';

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
});

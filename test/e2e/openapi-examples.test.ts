/**
 * The OpenAPI document gives every request body and every parameter a real example (issue 10,
 * item 14): without one, /docs (swagger-ui) invents strings from the patterns, such as
 * `"subject":"jqZ-uKQ@7lMi…"`. Each example must validate against the schema it illustrates; so must
 * the example of every body property that has a pattern. The document does not touch storage: one engine.
 */
import { Ajv } from 'ajv';
import { afterAll, beforeAll, expect, it, describe } from 'vitest';
import { sqliteEngine } from '../helpers/engines.ts';
import { startHarness, type Harness } from './harness.ts';

// The document is OpenAPI 3.0: `example` and `nullable` are its keywords; formats are not checked here.
const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
const valid = (schema: object, value: unknown) => {
  const check = ajv.compile(schema);
  return check(value) ? 'ok' : ajv.errorsText(check.errors);
};

/** Every property schema inside `schema` that has a pattern, by path (an alternative of anyOf takes the example of its parent). */
function patterned(schema: any, path: string, out: [string, any][] = []): [string, any][] {
  if (!schema || typeof schema !== 'object') return out;
  if (typeof schema.pattern === 'string') out.push([path, schema]);
  for (const [k, v] of Object.entries<any>(schema.properties ?? {})) patterned(v, `${path}.${k}`, out);
  if (schema.items) patterned(schema.items, `${path}[]`, out);
  for (const alt of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) {
    // the parent's example must be valid against the whole anyOf: checked with the parent
    if (typeof alt.pattern === 'string') out.push([path, { ...schema, example: alt.example ?? schema.example }]);
  }
  return out;
}

describe('OpenAPI: examples', () => {
  let h: Harness;
  let doc: any;
  beforeAll(async () => {
    h = await startHarness(sqliteEngine, { workers: 0 });
    doc = (await h.req('GET', '/openapi.json', { key: null })).json;
  });
  afterAll(() => h.close());

  it('every parameter has an example that validates against its schema', () => {
    const problems: string[] = [];
    let n = 0;
    for (const [path, ops] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(ops)) {
        for (const p of op.parameters ?? []) {
          n++;
          const where = `${method.toUpperCase()} ${path} ${p.in}:${p.name}`;
          const example = p.example ?? p.schema?.example;
          if (example === undefined) problems.push(`${where}: no example`);
          else if (valid(p.schema, example) !== 'ok') problems.push(`${where}: example ${JSON.stringify(example)} ${valid(p.schema, example)}`);
        }
      }
    }
    expect(n).toBeGreaterThan(50);
    expect(problems).toEqual([]);
  });

  it('every request body has an example that validates, and so does each patterned field', () => {
    const problems: string[] = [];
    let n = 0;
    for (const [path, ops] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(ops)) {
        for (const [type, media] of Object.entries<any>(op.requestBody?.content ?? {})) {
          n++;
          const where = `${method.toUpperCase()} ${path} ${type}`;
          const example = media.example ?? media.schema?.example;
          if (example === undefined) problems.push(`${where}: no example`);
          else if (valid(media.schema, example) !== 'ok') problems.push(`${where}: example ${valid(media.schema, example)}`);
          for (const [field, schema] of patterned(media.schema, 'body')) {
            if (schema.example === undefined) problems.push(`${where} ${field}: no example`);
            else if (valid(schema, schema.example) !== 'ok') problems.push(`${where} ${field}: example ${JSON.stringify(schema.example)} ${valid(schema, schema.example)}`);
          }
        }
      }
    }
    expect(n).toBeGreaterThanOrEqual(15);
    expect(problems).toEqual([]);
  });
});

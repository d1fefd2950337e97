/**
 * The client's types are generated from the OpenAPI document the server serves; regenerating must
 * give the committed files byte for byte (a route or schema changed without `npm run generate -w
 * @lockstep/client` fails here), and the committed JSON is what GET /openapi.json answers.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { OUT_JSON, OUT_TYPES, render } from '../../packages/client/scripts/generate.ts';

it('packages/client/src/openapi.{json,d.ts} are what the server generates now', async () => {
  const { json, types } = await render();
  expect(readFileSync(OUT_JSON, 'utf8'), 'run: npm run generate -w @lockstep/client').toBe(json);
  expect(readFileSync(OUT_TYPES, 'utf8'), 'run: npm run generate -w @lockstep/client').toBe(types);
  // every route of the document has its typed entry
  const doc = JSON.parse(json) as { paths: Record<string, unknown> };
  expect(Object.keys(doc.paths).length).toBeGreaterThan(20);
  for (const path of Object.keys(doc.paths)) expect(types).toContain(`"${path}": {`);
});

/**
 * Okta's SCIM 2.0 SPEC test (test/conformance/okta-scim-spec/, a Runscope export, unmodified), run step
 * by step against a Lockstep server started here, on both engines. Every step must pass.
 *
 * Runscope is a hosted service, so this file is the runner: it substitutes `{{variables}}`, sends each
 * request, evaluates each assertion the export lists (status, JSON properties, response time), extracts
 * the variables later steps use and runs the one step script (the Groups check) with `assert` and `log`.
 * What differs from a Runscope run, and why:
 *
 * - The variables Okta's initial script sets (random user name, e-mail, names; an id that does not exist)
 *   are generated here with the same shapes; the script itself is not part of the export.
 * - `pause` steps (5–10 s each, waits for a remote server's eventual consistency) are not slept:
 *   Lockstep answers a write after it commits.
 * - The first step lists one user and asserts it has a name and an e-mail, as an Okta-connected app
 *   would; the test provisions that user through SCIM first.
 */
import assert from 'node:assert';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachEngine } from '../helpers/engines.ts';
import { ORG, startHarness, type Harness } from '../e2e/harness.ts';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Assertion {
  comparison: string;
  source: 'response_status' | 'response_json' | 'response_time';
  property?: string;
  value: string | null;
}
interface Step {
  step_type: 'request' | 'pause';
  note?: string;
  method?: string;
  url?: string;
  headers?: Record<string, string[]>;
  body?: string;
  assertions?: Assertion[];
  variables?: { source: 'response_json'; name: string; property: string }[];
  scripts?: string[];
}

const SPEC = JSON.parse(readFileSync(new URL('./okta-scim-spec/Okta-SCIM-20-SPEC-Test.json', import.meta.url), 'utf8')) as { steps: Step[] };

const substitute = (s: string, vars: Record<string, string>) => s.replace(/\{\{(\w+)\}\}/g, (m, k: string) => vars[k] ?? m);

/** `Resources[0].name.familyName` in a JSON value. */
function property(json: Json, path: string): Json {
  return path
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .reduce((v: Json, k) => (v === null || v === undefined ? undefined : v[k]), json);
}

function evaluate(a: Assertion, res: { status: number; json: Json; ms: number }, vars: Record<string, string>): string | null {
  const expected = a.value === null ? null : substitute(a.value, vars);
  const actual = a.source === 'response_status' ? res.status : a.source === 'response_time' ? res.ms : property(res.json, a.property ?? '');
  const ok = (() => {
    switch (a.comparison) {
      case 'equal_number':
        return Number(actual) === Number(expected);
      case 'equal':
        return String(actual) === expected;
      case 'not_empty':
        return actual !== undefined && actual !== null && actual !== '' && !(Array.isArray(actual) && actual.length === 0);
      case 'is_a_number':
        return typeof actual === 'number';
      case 'has_value':
      case 'contains':
        return Array.isArray(actual) ? actual.includes(expected) : String(actual).includes(String(expected));
      case 'is_less_than':
        return Number(actual) < Number(expected);
      default:
        throw new Error(`unknown Runscope comparison '${a.comparison}'`);
    }
  })();
  return ok ? null : `${a.source}${a.property ? ` ${a.property}` : ''} ${a.comparison} ${expected ?? ''}: got ${JSON.stringify(actual)}`;
}

describeEachEngine("conformance: Okta's SCIM 2.0 SPEC test", (engine) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(engine);
  });
  afterAll(() => h?.close());

  it('passes every step', async () => {
    expect((await h.req('PUT', `${ORG}/okta`, { body: { name: 'Okta spec' } })).status).toBe(200);
    const dir = await h.req('POST', `${ORG}/okta/directories`, { body: { name: 'Okta', provider: 'okta' } });
    expect(dir.status, dir.text).toBe(201);
    const base: string = dir.json.scimBaseUrl;
    const auth = `Bearer ${dir.json.token}`;
    const seeded = await fetch(`${base}/Users`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/scim+json' },
      body: JSON.stringify({ userName: 'seed.user@example.com', name: { givenName: 'Seed', familyName: 'User' }, emails: [{ value: 'seed.user@example.com', type: 'work', primary: true }], active: true }),
    });
    expect(seeded.status).toBe(201);

    const n = randomInt(1e9);
    const vars: Record<string, string> = {
      SCIMBaseURL: base,
      auth,
      randomUsername: `Runscope${n}Tester@atko.com`,
      randomUsernameCaps: `RUNSCOPE${n}TESTER@ATKO.COM`,
      randomEmail: `Runscope${n}Tester@atko.com`,
      randomGivenName: `Given${n}`,
      randomFamilyName: `Family${n}`,
      InvalidUserEmail: `abcdefghij@${n}.com`,
      UserIdThatDoesNotExist: `010101001010101${n}`,
    };

    const failures: string[] = [];
    let ran = 0;
    for (const step of SPEC.steps) {
      if (step.step_type !== 'request') continue;
      ran++;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(step.headers ?? {})) headers[k] = substitute(v.join(', '), vars);
      const started = performance.now();
      const r = await fetch(substitute(step.url!, vars), { method: step.method!, headers, ...(step.body ? { body: substitute(step.body, vars) } : {}) });
      const text = await r.text();
      const ms = performance.now() - started;
      let json: Json;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      for (const a of step.assertions ?? []) {
        const why = evaluate(a, { status: r.status, json, ms }, vars);
        if (why) failures.push(`${step.note}: ${why}`);
      }
      for (const v of step.variables ?? []) vars[v.name] = String(property(json, v.property));
      for (const script of step.scripts ?? []) {
        if (!script.trim()) continue;
        try {
          new Function('response', 'assert', 'log', script)({ body: text, status: r.status }, assert, () => undefined);
        } catch (e) {
          failures.push(`${step.note}: script failed: ${(e as Error).message}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(ran).toBe(12);
  });
});

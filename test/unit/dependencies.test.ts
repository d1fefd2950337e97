/**
 * The import rules (.dependency-cruiser.cjs) hold over the whole repository: imports point down the
 * layers of src/, domain/ is pure, dashboard/ uses only the HTTP API, src/ never imports bench/, no
 * cycles. A new back-edge fails this test (and so `npm test` and CI) with the rule it breaks.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

it('every import points down and no module is part of a cycle', async () => {
  const bin = fileURLToPath(new URL('../../node_modules/dependency-cruiser/bin/dependency-cruise.mjs', import.meta.url));
  const out = await new Promise<{ code: number; text: string }>((resolve) => {
    execFile(
      process.execPath,
      [bin, 'src', 'bench', 'dashboard', 'test', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'],
      { cwd: root, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, text: stdout + stderr }),
    );
  });
  expect(out.text).toMatch(/no dependency violations found \((\d{3,}) modules/);
  expect(out.code, out.text).toBe(0);
}, 60_000);

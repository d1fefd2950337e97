#!/usr/bin/env node
// Launcher for the `lockstep` command: the compiled CLI in dist/ (`npm run build`; `npm install`
// of the repository and `npm start` build it). No TypeScript tooling at run time.
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('lockstep: dist/ is missing; run `npm run build` in the package first\n');
  process.exit(1);
}
await import(main.href);

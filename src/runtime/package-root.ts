/**
 * The package's root folder: the nearest one above this module that holds package.json beside
 * migrations/. The same answer whether the module runs from the TypeScript sources (src/runtime/)
 * or compiled (dist/…/runtime/, `npm run build`), so migrations, the dashboard's static files and
 * the version are found either way.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'migrations'))) return dir;
    if (dirname(dir) === dir) throw new Error(`lockstep: no package root (package.json beside migrations/) above ${start}`);
  }
}

export const PACKAGE_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

/** `path` (a '/'-separated path inside the package) as an absolute path. */
export const inPackage = (...parts: string[]) => join(PACKAGE_ROOT, ...parts);

/**
 * The dashboard's static files: `GET /` is dashboard/index.html, `GET /dashboard/<path>` a file under
 * dashboard/, `GET /dashboard/vendor/<name>` one of the few third-party files in VENDOR, read from the
 * installed npm package (uPlot, the charting library) — no copy to keep in step, and no CDN: the
 * page's CSP allows this origin only. No key is needed for the files themselves — the page asks for one and sends it as a
 * bearer header on its API calls, so it sees exactly what that key may see.
 *
 * Hand-rolled rather than @fastify/static: a dozen files, a closed set of extensions and one
 * containment check are easier to audit than another plugin's options.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { extname, resolve, sep } from 'node:path';
import { inPackage } from '../../runtime/package-root.ts';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { ApiError } from '../problem.ts';

/** The package's dashboard/ folder (Lockstep runs from its sources: src/api/routes → ../../../dashboard). */
export const DASHBOARD_DIR = `${inPackage('dashboard')}/`;

const require = createRequire(import.meta.url);

/**
 * `vendor/<name>` → a file of an installed dependency, resolved the way Node resolves it (so it is
 * found whether npm hoisted the package or nested it under Lockstep's own node_modules).
 */
export const VENDOR: Readonly<Record<string, string>> = Object.freeze({
  'uplot.js': 'uplot/dist/uPlot.esm.js',
  'uplot.css': 'uplot/dist/uPlot.min.css',
});

/** The file a vendor name stands for, or undefined (unknown name, or the package is not installed). */
export function resolveVendor(name: string): string | undefined {
  const spec = Object.hasOwn(VENDOR, name) ? VENDOR[name] : undefined;
  if (spec === undefined) return undefined;
  try {
    return require.resolve(spec);
  } catch {
    return undefined;
  }
}

/** Only these are served; anything else under dashboard/ (a stray .md, a dotfile) is a 404. */
const TYPES: Readonly<Record<string, string>> = Object.freeze({
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
});

// The page holds an API key in sessionStorage: no third-party script, style, frame or connection.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * Maps a request path (already percent-decoded by the router) to a file inside `dir`, or undefined.
 * Every segment must be a plain name: no `..`, `.`, empty segments, backslashes, NULs or dotfiles;
 * the resolved path must still be inside `dir` (belt and braces).
 */
export function resolveAsset(dir: string, requested: string): string | undefined {
  const rel = requested === '' ? 'index.html' : requested;
  const segments = rel.split('/');
  if (segments.some((s) => s === '' || s.startsWith('.') || s.includes('\\') || s.includes('\0'))) return undefined;
  if (TYPES[extname(rel).toLowerCase()] === undefined) return undefined;
  const root = resolve(dir);
  const full = resolve(root, ...segments);
  return full.startsWith(root + sep) ? full : undefined;
}

async function sendAsset(reply: FastifyReply, dir: string, requested: string) {
  const file = requested.startsWith('vendor/') ? resolveVendor(requested.slice('vendor/'.length)) : resolveAsset(dir, requested);
  const notFound = () => new ApiError('ROUTE_NOT_FOUND', `no dashboard file ${JSON.stringify(requested)}`);
  if (file === undefined) throw notFound();
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') throw notFound();
    throw e;
  }
  const type = TYPES[extname(file).toLowerCase()]!;
  reply.header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
  if (type.startsWith('text/html')) reply.header('content-security-policy', CSP);
  return reply.type(type).send(body);
}

/** Registers `GET /` and `GET /dashboard/*` (public: no `access` in their config). */
export function dashboardRoutes(app: FastifyInstance, dir: string = DASHBOARD_DIR) {
  const hide = { schema: { hide: true } };
  app.get('/', hide, (_req, reply) => sendAsset(reply, dir, 'index.html'));
  app.get<{ Params: { '*': string } }>('/dashboard/*', hide, (req, reply) => sendAsset(reply, dir, req.params['*']));
}

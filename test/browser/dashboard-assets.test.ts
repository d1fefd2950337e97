/**
 * How the server hands out the dashboard (no browser needed): the page and its modules without a
 * key, with their content types and the page's CSP; nothing outside dashboard/, however the path is
 * spelled. And the page's Prometheus reader, against a real /metrics scrape.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_DIR, resolveAsset, resolveVendor, VENDOR } from '../../src/api/routes/dashboard.ts';
import { ORG, seed, startHarness, type Harness } from '../e2e/harness.ts';
import { sqliteEngine } from '../helpers/engines.ts';

interface Bucket {
  le: number;
  count: number;
}
interface PrometheusModule {
  readHistogram(text: string, name: string, groupBy: string): Map<string, { buckets: Bucket[]; count: number; sum: number }>;
  quantile(q: number, buckets: Bucket[]): number | null;
}

describe('dashboard static files', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(sqliteEngine);
  });
  afterAll(() => h?.close());

  it('GET / is the page, with no key, a CSP that allows only this origin, and no caching surprises', async () => {
    const r = await h.req('GET', '/', { key: null });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.text).toContain('<script type="module" src="/dashboard/app.js">');
    const csp = r.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('cache-control')).toBe('no-cache');
  });

  it('serves every file the page references with its content type', async () => {
    const types: Record<string, RegExp> = {
      '/dashboard/index.html': /^text\/html/,
      '/dashboard/': /^text\/html/,
      '/dashboard/app.js': /^text\/javascript/,
      '/dashboard/lib/chart.js': /^text\/javascript/,
      '/dashboard/style.css': /^text\/css/,
      '/dashboard/favicon.svg': /^image\/svg\+xml/,
    };
    for (const [path, type] of Object.entries(types)) {
      const r = await h.req('GET', path, { key: null });
      expect(r.status, path).toBe(200);
      expect(r.headers.get('content-type'), path).toMatch(type);
    }
    // Every module the page imports exists (a missing one would only show up in a browser).
    for (const f of readdirSync(`${DASHBOARD_DIR}lib`)) {
      expect((await h.req('GET', `/dashboard/lib/${f}`, { key: null })).status, f).toBe(200);
    }
  });

  it('serves uPlot from the installed npm package, byte for byte, and no other vendor file', async () => {
    const require = createRequire(import.meta.url);
    expect(Object.keys(VENDOR).sort()).toEqual(['uplot.css', 'uplot.js']);
    const js = await h.req('GET', '/dashboard/vendor/uplot.js', { key: null });
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(js.text).toBe(readFileSync(require.resolve('uplot/dist/uPlot.esm.js'), 'utf8'));
    expect(js.text).toContain('export { uPlot as default }');
    const css = await h.req('GET', '/dashboard/vendor/uplot.css', { key: null });
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    expect(css.text).toBe(readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'));
    // The page loads both from this origin (its CSP allows nothing else).
    const page = (await h.req('GET', '/', { key: null })).text;
    expect(page).toContain('href="/dashboard/vendor/uplot.css"');
    expect(readFileSync(`${DASHBOARD_DIR}lib/chart.js`, 'utf8')).toContain("from '../vendor/uplot.js'");
    for (const path of ['/dashboard/vendor/uPlot.cjs.js', '/dashboard/vendor/../package.json', '/dashboard/vendor/toString', '/dashboard/vendor/', '/dashboard/vendor/uplot.js/x']) {
      expect((await h.req('GET', path, { key: null })).status, path).toBe(404);
    }
    expect(resolveVendor('constructor')).toBeUndefined();
  });

  it('nothing outside dashboard/, however the path is spelled', async () => {
    for (const path of [
      '/dashboard/../package.json',
      '/dashboard/%2e%2e/package.json',
      '/dashboard/%2E%2E%2Fpackage.json',
      '/dashboard/lib/..%2f..%2fpackage.json',
      '/dashboard/..%5c..%5cpackage.json',
      '/dashboard/%2fetc%2fpasswd',
      '/dashboard//etc/passwd',
      '/dashboard/.hidden.js',
      '/dashboard/app.js%00.css',
      '/dashboard/nope.js',
      '/dashboard/lib',
      '/dashboard/README.md',
    ]) {
      const r = await h.req('GET', path, { key: null });
      expect(r.status, path).toBe(404);
      expect(r.headers.get('content-type'), path).toMatch(/^application\/problem\+json/);
      expect(r.text, path).not.toContain('"name": "lockstep"');
    }
    expect(resolveAsset('/srv/dash', '../etc/passwd')).toBeUndefined();
    expect(resolveAsset('/srv/dash', 'lib/../../x.js')).toBeUndefined();
    expect(resolveAsset('/srv/dash', '/etc/x.js')).toBeUndefined();
    expect(resolveAsset('/srv/dash', 'lib/chart.js')).toBe('/srv/dash/lib/chart.js');
    expect(resolveAsset('/srv/dash', '')).toBe('/srv/dash/index.html');
  });

  it('the API keeps its keys: the static routes open nothing else', async () => {
    expect((await h.req('GET', `${ORG}/acme/changes`, { key: null })).status).toBe(401);
    expect((await h.req('GET', '/metrics', { key: null })).status).toBe(401);
  });

  it("the page's Prometheus reader estimates check latency quantiles from a real scrape", async () => {
    const prom = (await import(pathToFileURL(`${DASHBOARD_DIR}lib/prometheus.js`).href)) as PrometheusModule;
    await seed(h, 'acme');
    for (let i = 0; i < 5; i++) {
      const body = { subject: i % 2 ? 'alice' : 'bot', permission: 'doc.read', resource: 'doc:readme', consistency: { mode: 'fully_consistent' } };
      expect((await h.req('POST', `${ORG}/acme/check`, { body })).status).toBe(200);
    }
    const text = (await h.req('GET', '/metrics')).text;
    const byMode = prom.readHistogram(text, 'lockstep_check_seconds', 'consistency');
    const full = byMode.get('fully_consistent')!;
    expect(full.count).toBe(5);
    expect(full.buckets.at(-1)).toEqual({ le: Infinity, count: 5 });
    const p50 = prom.quantile(0.5, full.buckets)!;
    const p99 = prom.quantile(0.99, full.buckets)!;
    expect(p50).toBeGreaterThan(0);
    expect(p99).toBeGreaterThanOrEqual(p50);
    const byResult = prom.readHistogram(text, 'lockstep_check_seconds', 'result');
    expect(byResult.get('allowed')?.count).toBe(2);
    expect(byResult.get('denied')?.count).toBe(3);

    // Prometheus' interpolation: rank 5 of 10 falls halfway into (0.1, 0.2].
    const buckets = [{ le: 0.1, count: 0 }, { le: 0.2, count: 10 }, { le: Infinity, count: 10 }];
    expect(prom.quantile(0.5, buckets)).toBeCloseTo(0.15);
    expect(prom.quantile(0.99, [{ le: 1, count: 1 }, { le: Infinity, count: 2 }])).toBe(1);
    expect(prom.quantile(0.5, [{ le: Infinity, count: 0 }])).toBeNull();
  });
});

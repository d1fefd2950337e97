/**
 * The lag charts in Chromium: drawn by uPlot (served from the installed package, no hand-drawn SVG),
 * a time axis that fits the points (a burst of changes spreads across the plot instead of sitting at
 * one edge), tiers told apart by colour and named in the legend, 0 ms above the axis, and every
 * point listed in a table so overlapping ones stay readable. Screenshots at 1440×900 and 390×844 go
 * to test-artifacts/.
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, ORG, seed, startHarness, type Harness } from '../e2e/harness.ts';
import { sqliteEngine } from '../helpers/engines.ts';
import { browserAvailability, launchChromium, openDashboard } from './chromium.ts';

const availability = browserAvailability();
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const org = 'acme';
const WAIT = { timeout: 10_000 };

interface ChartFacts {
  xMin: number;
  xMax: number;
  plotLeft: number;
  plotWidth: number;
  plotHeight: number;
  xs: number[];
  ends: number[];
  zeroY: number;
  yTicks: string[];
  legend: { label: string; colour: string }[];
}

describe.skipIf(!availability.run)('dashboard lag chart (uPlot) in Chromium', () => {
  let h: Harness;
  let browser: Browser;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    h = await startHarness(sqliteEngine);
    await seed(h, org);
    const ok = async (method: string, path: string, body?: unknown) => {
      const r = await h.req(method, `${ORG}/${org}${path}`, body === undefined ? {} : { body });
      expect(r.status, r.text).toBeLessThan(300);
    };
    // Grants of three tiers, all within a burst of a few hundred milliseconds.
    await ok('PUT', '/permissions/doc.share', { risk: 'high' });
    await ok('PUT', '/roles/editor', { permissions: ['doc.read', 'doc.share'] });
    await ok('POST', '/assignments', { principal: 'subject:bot', role: 'editor', resource: 'doc:readme' });
    await ok('POST', '/assignments', { principal: 'subject:bot', role: 'owner', resource: 'ws:main' });
    for (const s of ['carol', 'dave', 'erin']) {
      await ok('PUT', `/subjects/${s}`, { kind: 'user' });
      await ok('PUT', `/groups/eng/members/${s}`);
    }
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  async function open(viewport: { width: number; height: number }): Promise<Page> {
    const page = await openDashboard(browser, { url: h.url, key: ADMIN_KEY, org, viewport, pageErrors });
    await page.getByTestId('lag-chart-grant').locator('.chart canvas').waitFor(WAIT);
    return page;
  }

  /** What uPlot drew, from the instance the page keeps on the chart's container. */
  const facts = (page: Page, direction: string) =>
    page.evaluate((d) => {
      const box = document.querySelector(`[data-testid="lag-chart-${d}"] .chart`) as HTMLElement & { uplot: any }; // eslint-disable-line @typescript-eslint/no-explicit-any
      const u = box.uplot;
      const dpr = window.devicePixelRatio;
      return {
        xMin: u.scales.x.min, xMax: u.scales.x.max,
        plotLeft: u.bbox.left / dpr, plotWidth: u.bbox.width / dpr, plotHeight: u.bbox.height / dpr,
        // data[0] is [range start, ...the points' times, range end] (the ends carry the SLO lines only)
        xs: (u.data[0] as number[]).slice(1, -1).map((x) => u.valToPos(x, 'x')),
        ends: [u.data[0][0], u.data[0].at(-1)].map((x: number) => u.valToPos(x, 'x')),
        zeroY: u.valToPos(0, 'y'),
        yTicks: u.axes[1]._values as string[],
        legend: [...box.querySelectorAll('.u-legend .u-series')].slice(1).map((tr) => ({
          label: tr.querySelector('.u-label')!.textContent!,
          colour: getComputedStyle(tr.querySelector('.u-marker')!).borderColor,
        })),
      };
    }, direction) as Promise<ChartFacts>;

  it('draws with uPlot: the burst fills the width, tiers have their own colour and legend entry, 0 ms sits above the axis', async () => {
    const page = await open({ width: 1440, height: 900 });
    const grants = (await h.req('GET', `${ORG}/${org}/changes?direction=grant&limit=200`)).json.changes as { revision: number; tier: string | null }[];
    await expect.poll(async () => (await facts(page, 'grant')).xs.length, WAIT).toBe(grants.length);
    expect(await page.locator('svg.lag').count()).toBe(0);

    const f = await facts(page, 'grant');
    // The points span at least 80 % of the plot's width, whatever the gap between them and now.
    const spread = (Math.max(...f.xs) - Math.min(...f.xs)) / f.plotWidth;
    expect(spread).toBeGreaterThan(0.8);
    expect(Math.min(...f.xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...f.xs)).toBeLessThanOrEqual(f.plotWidth);
    // The SLO lines run from edge to edge.
    expect(f.ends[0]).toBeCloseTo(0, 0);
    expect(f.ends[1]).toBeCloseTo(f.plotWidth, 0);

    // One legend entry per tier present, each its own colour, and the SLO lines by tier.
    const tiers = [...new Set(grants.map((c) => c.tier).filter(Boolean))];
    expect(tiers.sort()).toEqual(['critical', 'high', 'standard']);
    const pointEntries = f.legend.filter((l) => tiers.includes(l.label));
    expect(pointEntries.map((l) => l.label)).toEqual(['standard', 'high', 'critical']);
    expect(new Set(pointEntries.map((l) => l.colour)).size).toBe(3);
    expect(f.legend.filter((l) => l.label.startsWith('SLO ')).map((l) => l.label)).toEqual(['SLO standard', 'SLO high', 'SLO critical']);

    // 0 ms is a labelled tick, and its row is inside the plot, above the bottom edge by more than a point's radius.
    expect(f.yTicks[0]).toBe('0 ms');
    expect(f.zeroY).toBeLessThan(f.plotHeight - 5);
    expect(f.zeroY).toBeGreaterThan(0);

    // Every point is listed (overlapping ones included), newest first.
    const details = page.getByTestId('lag-chart-grant').locator('details.points');
    await details.locator('summary').click();
    const rows = details.locator('tbody tr');
    expect(await rows.count()).toBe(grants.length);
    expect(await rows.first().getAttribute('data-revision')).toBe(String(Math.max(...grants.map((c) => c.revision))));
    expect(await details.locator('summary').textContent()).toBe(`List the ${grants.length} points`);

    // Hovering a point names its change in the legend.
    const box = (await page.getByTestId('lag-chart-grant').locator('.u-over').boundingBox())!;
    await page.mouse.move(box.x + f.xs[0]!, box.y + f.zeroY);
    await expect.poll(() => page.getByTestId('lag-chart-grant').locator('.u-legend .u-series').first().locator('.u-value').textContent(), WAIT).toMatch(/^r\d+ \S+ \((standard|high|critical)\): \d/);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard-1440x900.png`, fullPage: true });
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });

  it('at phone width (390×844) the chart fits the screen and nothing scrolls sideways', async () => {
    const page = await open({ width: 390, height: 844 });
    await expect.poll(async () => (await facts(page, 'grant')).xs.length, WAIT).toBeGreaterThan(0);
    const f = await facts(page, 'grant');
    expect(f.plotLeft + f.plotWidth).toBeLessThanOrEqual(390);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard-390x844.png`, fullPage: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard-390x844-first-screen.png` });
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });
});

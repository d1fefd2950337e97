/**
 * What an operator needs from the dashboard when propagation stalls, in Chromium against a server
 * with no worker (`workers: 0`) and asynchronous grants: the SLO table counts the pending grant at
 * its age (p99 "≥ …", a breach), the drift panel calls queued rows propagation rather than drift,
 * and a banner says jobs wait with no worker to take them — until a worker drains them.
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, ORG, seed, startHarness, type Harness } from '../e2e/harness.ts';
import { sqliteEngine } from '../helpers/engines.ts';
import { browserAvailability, launchChromium, openDashboard } from './chromium.ts';
import { createWorker } from '../../src/propagation/worker.ts';

const availability = browserAvailability();
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const org = 'acme';
const WAIT = { timeout: 10_000 };
const SLO_MS = 50;

describe.skipIf(!availability.run)('dashboard when propagation stalls (Chromium)', () => {
  let h: Harness;
  let browser: Browser;
  const pageErrors: string[] = [];
  let pendingRevision = 0;

  beforeAll(async () => {
    h = await startHarness(sqliteEngine, { workers: 0 });
    await seed(h, org);
    // seed's own async writes are drained by hand: the server runs no worker.
    await createWorker({ db: h.app.db }).drain();
    const put = await h.req('PUT', `${ORG}/${org}/propagation-policy`, { body: { grant: { standard: { mode: 'async', sloMs: SLO_MS } } } });
    expect(put.status, put.text).toBe(200);
    await h.req('PUT', `${ORG}/${org}/subjects/carol`, { body: { kind: 'user' } });
    const add = await h.req('PUT', `${ORG}/${org}/groups/eng/members/carol`);
    expect(add.json.propagation).toMatchObject({ mode: 'async', status: 'pending' });
    pendingRevision = add.json.revision;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  async function open(viewport = { width: 1440, height: 900 }): Promise<Page> {
    const page = await openDashboard(browser, { url: h.url, key: ADMIN_KEY, org, viewport, pageErrors });
    return page;
  }

  it('the SLO table counts the pending grant at its age: p99 reads "≥" at least the SLO, and it is a breach', async () => {
    const page = await open();
    const row = page.getByTestId('slo-table').locator('tr[data-row="grant/standard"]');
    await expect.poll(() => row.locator('td[data-label="breaches"]').textContent(), WAIT).toBe('1');
    const cells = Object.fromEntries(await row.locator('td').evaluateAll((tds) => tds.map((td) => [td.getAttribute('data-label'), td.textContent])));
    expect(cells.pending).toMatch(/^1 \(oldest \d/);
    expect(cells.p99).toMatch(/^≥ /);
    const api = (await h.req('GET', `${ORG}/${org}/slo?window=3600`)).json.rows.find((r: { direction: string; tier: string }) => r.direction === 'grant' && r.tier === 'standard');
    expect(api).toMatchObject({ pending: 1, lowerBound: true, breaches: 1 });
    expect(api.p99Ms).toBeGreaterThan(SLO_MS);
    expect(api.oldestPendingMs).toBe(api.maxMs);
    // The pending grant is on the chart as a hollow point, listed as pending.
    await expect.poll(() => page.getByTestId('lag-chart-grant').locator(`.points tr[data-revision="${pendingRevision}"] td[data-label="lag"]`).textContent(), WAIT).toMatch(/^pending /);
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });

  it('queued rows are "Propagating", not drift; a banner says the jobs wait with no worker, until one runs', async () => {
    const page = await open();
    await page.getByTestId('drift-verdict').getByText('Propagating').waitFor(WAIT);
    expect(await page.getByTestId('drift-queued').textContent()).toMatch(/^\d+ rows? still to be written by 1 queued job: not drift\.$/);
    const drift = (await h.req('POST', `${ORG}/${org}/drift`, { body: {} })).json;
    expect(drift).toMatchObject({ missing: 0, extra: 0, pending: { jobs: 1 } });
    expect(drift.pending.missing).toBeGreaterThan(0);

    const banner = page.getByTestId('worker-banner');
    await banner.waitFor({ state: 'visible', ...WAIT });
    expect(await banner.textContent()).toContain('1 job waits and no worker is running to take them');
    expect(await banner.textContent()).toContain('lockstep worker');
    const jobs = (await h.req('GET', `/v1/jobs?org=${org}`)).json;
    expect(jobs.workers).toEqual({ live: 0, expected: 0 });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard-stalled-1440x900.png`, fullPage: true });

    // A worker starts (it announces itself in worker_presence) and drains the queue: the banner goes.
    const worker = createWorker({ db: h.app.db, pollMs: 50 });
    worker.start();
    try {
      await banner.waitFor({ state: 'hidden', ...WAIT });
      await expect.poll(async () => (await h.req('GET', `/v1/jobs?org=${org}`)).json.workers.live, WAIT).toBe(1);
      await page.getByTestId('drift-run').click();
      await page.getByTestId('drift-verdict').getByText('In sync').waitFor(WAIT);
    } finally {
      await worker.stop();
    }
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });

  it('at phone width the stalled board is usable: stacked tables, no text under 12 px, nothing wider than the screen', async () => {
    const pending = await h.req('PUT', `${ORG}/${org}/groups/eng/members/bot`);
    expect(pending.json.propagation).toMatchObject({ status: 'pending' });
    const page = await open({ width: 390, height: 844 });
    await page.getByTestId('worker-banner').waitFor({ state: 'visible', ...WAIT });
    await page.getByTestId('slo-table').locator('tbody tr').first().waitFor(WAIT);
    await page.getByTestId('jobs-panel').locator('tbody tr').first().waitFor(WAIT);
    const layout = await page.evaluate(() => {
      const texts = [...document.querySelectorAll('body *')].filter((el) => {
        const r = el.getBoundingClientRect();
        return r.width > 0 && r.height > 0 && [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent!.trim() !== '');
      });
      const small = texts.map((el) => ({ text: el.textContent!.trim().slice(0, 30), px: parseFloat(getComputedStyle(el).fontSize) })).filter((t) => t.px < 12);
      const wide = [...document.querySelectorAll('body *')].map((el) => ({ el: el.tagName + '.' + el.className, right: el.getBoundingClientRect().right })).filter((e) => e.right > 391);
      const cell = document.querySelector('[data-testid="slo-table"] tbody td[data-label="p99"]')!;
      return {
        small, wide, scrollWidth: document.documentElement.scrollWidth,
        headHidden: getComputedStyle(document.querySelector('[data-testid="slo-table"] thead')!).display,
        cellLabel: getComputedStyle(cell, '::before').content,
      };
    });
    expect(layout.small).toEqual([]);
    expect(layout.wide).toEqual([]);
    expect(layout.scrollWidth).toBeLessThanOrEqual(390);
    expect(layout.headHidden).toBe('none');
    expect(layout.cellLabel).toBe('"p99"');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard-stalled-390x844.png`, fullPage: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard-stalled-390x844-first-screen.png` });
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });
});

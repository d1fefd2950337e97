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
import { browserAvailability, launchChromium } from './chromium.ts';
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
    const page = await (await browser.newContext({ viewport })).newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${h.url}/`);
    await page.getByTestId('key-input').fill(ADMIN_KEY);
    await page.getByTestId('org-input').fill(org);
    await page.getByTestId('connect').click();
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
});

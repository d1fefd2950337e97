/**
 * The dashboard in a real browser (playwright-core driving Debian's Chromium) against `createApp`
 * on SQLite: sign in with the admin key, watch every panel fill, revoke a membership through the API
 * and see its receipt and its point on the revocation lag chart appear. Writes
 * test-artifacts/dashboard.png.
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, ORG, seed, startHarness, type Harness } from '../e2e/harness.ts';
import { sqliteEngine } from '../helpers/engines.ts';
import { browserAvailability, launchChromium, openDashboard } from './chromium.ts';
import { startReceiver } from '../helpers/receivers.ts';

const availability = browserAvailability();
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const org = 'acme';
const WAIT = { timeout: 10_000 };

describe.skipIf(!availability.run)('dashboard in Chromium', () => {
  let h: Harness;
  let browser: Browser;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    h = await startHarness(sqliteEngine, { targetsAllowPrivate: true });
    await seed(h, org);
    // A few checks, so the check-latency panel has something to estimate.
    for (const consistency of ['minimize_latency', 'fully_consistent'] as const) {
      for (let i = 0; i < 3; i++) {
        const r = await h.req('POST', `${ORG}/${org}/check`, {
          body: { subject: 'alice', permission: 'doc.read', resource: 'doc:readme', consistency: { mode: consistency } },
        });
        expect(r.status, r.text).toBe(200);
      }
    }
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  async function open(key: string): Promise<Page> {
    const page = await openDashboard(browser, { url: h.url, key, org, viewport: { width: 1360, height: 900 }, pageErrors });
    return page;
  }

  it('shows lag, queue, drift and latency; a revocation appears as a receipt and a new point on the chart', async () => {
    const page = await open(ADMIN_KEY);

    // Every panel fills from the API.
    const grantPoints = page.getByTestId('lag-chart-grant').locator('.points tbody tr');
    const revokePoints = page.getByTestId('lag-chart-revoke').locator('.points tbody tr');
    await expect.poll(() => grantPoints.count(), WAIT).toBeGreaterThan(0);
    await page.getByTestId('revocations-panel').getByText('No revocations yet.').waitFor(WAIT);
    await page.getByTestId('slo-report').locator('table tbody tr').first().waitFor(WAIT);
    await page.getByTestId('drift-verdict').getByText('In sync').waitFor(WAIT);
    await page.getByTestId('check-latency-panel').locator('tr[data-consistency="minimize_latency"]').waitFor(WAIT);
    await page.getByTestId('check-latency-panel').locator('tr[data-consistency="fully_consistent"]').waitFor(WAIT);
    await page.getByTestId('jobs-panel').locator('.chips').waitFor(WAIT);
    expect(await page.getByTestId('status').textContent()).toMatch(/^Live/);
    const before = await revokePoints.count();
    expect(before).toBe(0);
    // The key lives in this tab's sessionStorage, nowhere else.
    expect(await page.evaluate(() => Object.values(sessionStorage))).toContain(ADMIN_KEY);
    expect(await page.evaluate(() => Object.values(localStorage))).not.toContain(ADMIN_KEY);
    expect(await page.evaluate(() => document.cookie)).toBe('');

    // Revoke through the API, not the page.
    const del = await h.req('DELETE', `${ORG}/${org}/groups/eng/members/alice`);
    expect(del.status, del.text).toBe(200);
    const revision = Number(del.headers.get('lockstep-revision'));
    expect(del.json.revision).toBe(revision);
    expect(revision).toBeGreaterThan(0);

    const row = page.getByTestId('revocations-table').locator(`tr[data-revision="${revision}"]`);
    await row.waitFor(WAIT);
    await expect.poll(() => revokePoints.count(), WAIT).toBeGreaterThan(before);
    await page.getByTestId('lag-chart-revoke').locator(`.points tr[data-revision="${revision}"]`).waitFor({ state: 'attached', ...WAIT });
    await expect.poll(() => page.evaluate(() => (document.querySelector('[data-testid="lag-chart-revoke"] .chart') as HTMLElement & { uplot?: { data: unknown[][] } }).uplot?.data[0]?.length), WAIT).toBe((await revokePoints.count()) + 2); // + the range's two ends

    // The row and the full receipt agree with the API's receipt.
    const receipt = (await h.req('GET', `${ORG}/${org}/changes/${revision}`)).json;
    expect(receipt).toMatchObject({ revision, direction: 'revoke' });
    const cells = await row.locator('td').allTextContents();
    expect(cells[0]).toBe(String(revision));
    expect(cells[1]).toBe(receipt.kind);
    expect(cells[2]).toBe('subject:alice from group eng');
    expect(cells[7]).toBe(String(receipt.rowsRemoved));
    await row.click();
    const detail = page.getByTestId('receipt');
    await detail.getByText(`Receipt r${revision}`).waitFor(WAIT);
    await expect.poll(() => detail.textContent(), WAIT).toContain(receipt.kind);
    expect(await detail.textContent()).toContain(receipt.requestId);
    expect(await detail.textContent()).toContain(receipt.decidedAt);

    // Drift on demand.
    await page.getByTestId('drift-run').click();
    await page.getByTestId('drift-verdict').getByText('In sync').waitFor(WAIT);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });

  it('with a write key: everything but metrics, which say they need an admin key', async () => {
    const page = await open(await h.key('write', org));
    await page.getByTestId('metrics-denied').getByText('Metrics need an admin key.').waitFor(WAIT);
    await expect.poll(() => page.getByTestId('lag-chart-grant').locator('.points tbody tr').count(), WAIT).toBeGreaterThan(0);
    await expect.poll(() => page.getByTestId('status').textContent(), WAIT).toMatch(/^Live/);
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });

  it('a key of another organization says whose key it is, shows nothing of the asked organization, and opens its own', async () => {
    await seed(h, 'other');
    const page = await open(await h.key('write', 'other'));
    const notice = page.getByTestId('org-notice');
    await notice.waitFor({ state: 'visible', ...WAIT });
    expect(await notice.textContent()).toContain('This key belongs to organization “other”, not “acme”.');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: `${ARTIFACTS}dashboard-other-org-390x844.png` });
    await page.setViewportSize({ width: 1360, height: 900 });
    expect(await page.getByTestId('lag-panel').isVisible()).toBe(false);
    expect(await page.getByTestId('status').textContent()).toContain('FORBIDDEN: this API key belongs to another organization');
    // The picker offers the key's own organization only; the button opens it.
    expect(await page.getByTestId('org-picker').locator('option').allTextContents()).toEqual(['organization…', 'other']);
    await page.getByTestId('open-own-org').click();
    await page.getByTestId('drift-verdict').waitFor(WAIT);
    expect(await page.getByTestId('current-org').textContent()).toBe('other');
    expect(await notice.isVisible()).toBe(false);
    await expect.poll(() => page.getByTestId('status').textContent(), WAIT).toMatch(/^Live/);
    // What the board shows is the other organization's: its newest change, not acme's.
    const newest = (await h.req('GET', `${ORG}/other/changes?limit=1`)).json.changes[0].revision;
    await page.getByTestId('lag-chart-grant').locator(`.points tr[data-revision="${newest}"]`).waitFor({ state: 'attached', ...WAIT });
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });

  it('an admin key picks among every organization; switching shows the chosen one', async () => {
    await seed(h, 'zeta');
    // no organization typed: the first one
    const page = await openDashboard(browser, { url: h.url, key: ADMIN_KEY, viewport: { width: 1360, height: 900 }, pageErrors });
    const picker = page.getByTestId('org-picker');
    await picker.waitFor({ state: 'visible', ...WAIT });
    const listed = ((await h.req('GET', '/v1/organizations')).json.organizations as { id: string }[]).map((o) => o.id);
    expect(listed).toEqual(expect.arrayContaining([org, 'zeta']));
    expect(await picker.locator('option').allTextContents()).toEqual(listed);
    expect(await picker.inputValue()).toBe(listed[0]);
    await picker.selectOption('zeta');
    await expect.poll(() => page.evaluate(() => sessionStorage.getItem('lockstep.dashboard.org')), WAIT).toBe('zeta');
    const newest = (await h.req('GET', `${ORG}/zeta/changes?limit=1`)).json.changes[0].revision;
    await page.getByTestId('lag-chart-grant').locator(`.points tr[data-revision="${newest}"]`).waitFor({ state: 'attached', ...WAIT });
    await expect.poll(() => page.getByTestId('status').textContent(), WAIT).toMatch(/^Live/);
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });

  it('a role update that revokes says which permissions it took from the role', async () => {
    // owner (doc.read, doc.delete) held by group eng; the update keeps doc.read only.
    const assign = await h.req('POST', `${ORG}/${org}/assignments`, { body: { principal: 'group:eng', role: 'owner', resource: 'doc:readme' } });
    expect(assign.status, assign.text).toBe(201);
    const up = await h.req('PUT', `${ORG}/${org}/roles/owner`, { body: { permissions: ['doc.read'] } });
    expect(up.status, up.text).toBe(200);
    const receipt = (await h.req('GET', `${ORG}/${org}/changes/${up.json.revision}`)).json;
    expect(receipt).toMatchObject({ kind: 'role.update', direction: 'revoke', tier: 'critical', rowsRemoved: 0, body: { slug: 'owner', permissions: ['doc.read'], added: [], removed: ['doc.delete'] } });

    const page = await open(ADMIN_KEY);
    const row = page.getByTestId('revocations-table').locator(`tr[data-revision="${up.json.revision}"]`);
    await row.waitFor(WAIT);
    expect(await row.getByTestId('revoked').textContent()).toBe('doc.delete from role owner');
    await row.click();
    await page.getByTestId('receipt').getByText(`Receipt r${up.json.revision}`).waitFor(WAIT);
    expect(await page.getByTestId('receipt').locator('dt:text-is("revoked") + dd').textContent()).toBe('doc.delete from role owner');
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });

  it('a wrong key goes back to the sign-in form with the problem shown', async () => {
    const page = await open('lsk_nope_nope');
    await page.getByTestId('login').waitFor({ state: 'visible', ...WAIT });
    await expect.poll(() => page.getByTestId('status').textContent(), WAIT).toContain('UNAUTHENTICATED');
    expect(await page.evaluate(() => Object.keys(sessionStorage).filter((k) => k.endsWith('.key')))).toEqual([]);
    expect(pageErrors).toEqual([]);
    await page.context().close();
  });

  it('shows the delivery targets and a revocation\'s end-to-end window once its critical target acknowledged', async () => {
    const rx = await startReceiver();
    try {
      const created = await h.req('POST', `${ORG}/${org}/targets`, { body: { name: 'gateway', kind: 'webhook', url: rx.url, critical: true } });
      expect(created.status, created.text).toBe(201);
      rx.secrets = [created.json.secret];
      await h.req('PUT', `${ORG}/${org}/groups/eng/members/alice`);
      const del = await h.req('DELETE', `${ORG}/${org}/groups/eng/members/alice?confirm=5000`);
      expect(del.json.propagation.targets[0].confirmed).toBe(true);
      const receipt = (await h.req('GET', `${ORG}/${org}/changes/${del.json.revision}`)).json;
      expect(receipt.revocationWindowMs).toEqual(expect.any(Number));

      const page = await open(ADMIN_KEY);
      const row = page.getByTestId('targets-table').locator(`tr[data-target="${created.json.id}"]`);
      await row.waitFor(WAIT);
      expect(await row.textContent()).toContain('gateway');
      expect(await row.textContent()).toContain('active');
      const rev = page.getByTestId('revocations-table').locator(`tr[data-revision="${del.json.revision}"]`);
      await rev.waitFor(WAIT);
      await expect.poll(() => rev.getByTestId('window').textContent(), WAIT).toMatch(/\d+(\.\d+)?\s?(ms|s)$/);
      await rev.click();
      await page.getByTestId('receipt-targets').locator(`tr[data-target="${created.json.id}"]`).getByText('acked').waitFor(WAIT);
      expect(pageErrors).toEqual([]);
      await page.context().close();
    } finally {
      await rx.close();
    }
  });
});

/**
 * Debian's Chromium for the browser tests. Missing: the suite fails with LOCKSTEP_REQUIRE_BROWSER=1
 * and is otherwise skipped, loudly.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export type BrowserAvailability = { run: true } | { run: false; reason: string };

/** Whether the browser suites run; throws when they must and cannot. */
export function browserAvailability(path: string = CHROMIUM_PATH): BrowserAvailability {
  if (existsSync(path)) return { run: true };
  const reason = `${path} is missing (apt-get install -y chromium)`;
  if (process.env.LOCKSTEP_REQUIRE_BROWSER === '1') {
    throw new Error(`A browser is required (LOCKSTEP_REQUIRE_BROWSER=1) but ${reason}`);
  }
  const bar = '!'.repeat(78);
  console.warn(`\n${bar}\n!! ${reason}: the browser suites are SKIPPED.\n!! Set LOCKSTEP_REQUIRE_BROWSER=1 to make them mandatory.\n${bar}\n`);
  return { run: false, reason };
}

export const launchChromium = (): Promise<Browser> => chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });

export interface DashboardLogin {
  /** The server's base URL (the dashboard is served at `/`). */
  url: string;
  key: string;
  /** Absent: none is typed (the dashboard picks the first the key sees). */
  org?: string;
  viewport?: { width: number; height: number };
  /** Uncaught page errors are pushed here (a test expects none). */
  pageErrors: string[];
}

/** A new page in a fresh context, on the dashboard, connected with `key` (to `org`, if given). */
export async function openDashboard(browser: Browser, login: DashboardLogin): Promise<Page> {
  const page = await (await browser.newContext({ viewport: login.viewport ?? { width: 1440, height: 900 } })).newPage();
  page.on('pageerror', (e) => login.pageErrors.push(e.message));
  await page.goto(`${login.url}/`);
  await page.getByTestId('key-input').fill(login.key);
  if (login.org !== undefined) await page.getByTestId('org-input').fill(login.org);
  await page.getByTestId('connect').click();
  return page;
}

/**
 * Debian's Chromium for the browser tests. Missing: the suite fails with LOCKSTEP_REQUIRE_BROWSER=1
 * and is otherwise skipped, loudly.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

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

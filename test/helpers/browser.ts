/**
 * Debian's Chromium (/usr/bin/chromium) driven by playwright-core: nothing is downloaded, and a
 * browser that cannot start fails the test.
 */
import { chromium, type Browser } from 'playwright-core';

export const STEP_TIMEOUT_MS = 30_000;

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run'
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: STEP_TIMEOUT_MS });
}

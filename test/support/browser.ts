import { existsSync, mkdirSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

/** The dashboard's browser tests drive Debian's Chromium (never a downloaded browser): CHROMIUM_PATH or the apt one. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** A test's `skip` option: false where Chromium is installed, else why and how to install it. */
export const skipWithoutChromium: false | string = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM}: install it (apt-get install -y chromium; .ci/run does) or set CHROMIUM_PATH`;

/** Where the browser tests' screenshots go (not tracked). */
export const SHOTS = 'test-results';

/** A headless Chromium, with the screenshots' folder made. */
export async function launchBrowser(): Promise<Browser> {
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM });
}

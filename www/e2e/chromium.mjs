// Launches Debian's headless Chromium for the page tests (flags: DESIGN.md section 7).
import { chromium } from 'playwright-core';

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * Opens `url` in a new page and collects its uncaught errors.
 * @returns {Promise<{page: import('playwright-core').Page, errors: string[]}>}
 */
export async function openPage(browser, url) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(url);
  return { page, errors };
}

/** Waits until the page's status pill says "connected". */
export function waitConnected(page) {
  return page.waitForFunction(() => document.getElementById('status').textContent === 'connected',
    null, { timeout: 30_000 });
}

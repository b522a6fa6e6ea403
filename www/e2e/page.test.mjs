// Page end-to-end: the demo page in Debian's headless Chromium connects to the relay, shows the
// native member's messages live, and a message typed into the page reaches the native member
// (which echoes it back). scripts/test.sh starts the relay, the native echo member and the HTTP
// server, and passes KEEP_LIGHT_PAGE_URL and KEEP_LIGHT_NATIVE_ADDRESS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, openPage, waitConnected } from './chromium.mjs';

const url = process.env.KEEP_LIGHT_PAGE_URL;
const nativeAddress = process.env.KEEP_LIGHT_NATIVE_ADDRESS;

test('the demo page connects, receives and sends through the relay', async () => {
  assert.ok(url, 'KEEP_LIGHT_PAGE_URL must be set (run scripts/test.sh)');
  assert.ok(nativeAddress, 'KEEP_LIGHT_NATIVE_ADDRESS must be set (run scripts/test.sh)');
  const browser = await launchChromium();
  try {
    const { page, errors } = await openPage(browser, url);
    await waitConnected(page);
    assert.match(await page.textContent('#peer'), /^16Uiu2/);
    // scripts/test.sh gives the page one relay, over WebSocket: all there is, so healthy.
    assert.equal(await page.textContent('#relays'), '1 of 2 (healthy): ws');

    // native → page: the native member publishes `native-tick-N`.
    const fromNative = page.locator('#messages li', { hasText: nativeAddress });
    await fromNative.filter({ hasText: 'native-tick-' }).first().waitFor({ timeout: 30_000 });

    // page → native: the echo proves the native member received it.
    const text = `hello from the page ${Date.now()}`;
    const echo = fromNative.filter({ hasText: text });
    for (let attempt = 0; attempt < 20 && (await echo.count()) === 0; attempt++) {
      await page.fill('#text', text);
      await page.click('#button');
      await echo.first().waitFor({ timeout: 1_000 }).catch(() => {});
    }
    assert.ok((await echo.count()) > 0, 'the native member never echoed the page message');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

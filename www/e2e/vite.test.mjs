// The package in a bundler's hands: examples/vite is built with `vite build` (the package
// resolved by name, its workers and wasm turned into hashed assets) and served by
// `keep-light dev` in place of the demo page; opened in Chromium, it connects and gets a random
// number that it verified itself, the same one `dev` prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { launchChromium, openPage } from './chromium.mjs';
import { startBinary } from './processes.mjs';

const bin = process.env.KEEP_LIGHT_BIN;
const WWW = fileURLToPath(new URL('..', import.meta.url));

test('a Vite-built app imports keep-light, connects and gets a verified entry', async () => {
  assert.ok(bin, 'KEEP_LIGHT_BIN must be set (run scripts/test.sh)');
  execFileSync('npx', ['vite', 'build', '--config', 'examples/vite/vite.config.js'], { cwd: WWW, stdio: 'inherit' });
  const dev = startBinary(['dev', '--port', '0', '--www', `${WWW}examples/vite/dist`, '--members', '3',
    '--group-size', '3', '--threshold', '2', '--block-time', '200', '--phase-blocks', '15',
    '--request-every', '1000']);
  const browser = await launchChromium();
  try {
    const { url } = await dev.next((line) => line.url, 'the page URL');
    const { page, errors } = await openPage(browser, url);
    await page.waitForFunction(() => /verified|failed/.test(document.getElementById('state').textContent),
      null, { timeout: 120_000 });
    assert.equal(await page.textContent('#state'), 'verified in this tab');
    const random = await page.textContent('#random');
    assert.match(random, /^0x[0-9a-f]{64}$/);
    await dev.next((l) => l.random === random, `dev's line for entry ${random}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    dev.child.kill('SIGINT');
  }
});

// The demo page as `keep-light dev` serves it (the main job). Four native members and groups of
// five: the genesis group waits for a fifth seat, so the tab, connected with a viem-backed
// wallet, is in it. The page must show `connected`, the tab's group and its DKG phase by phase,
// then entries it verified itself, one of them the answer to its own request button. The error
// paths: a wallet whose user declines, the tab offline and back, relays that cannot be reached, a
// chain answering garbage.
// A screenshot of the page is kept in target/e2e/demo.png. Worker mode (?worker=1): the same
// with the node in a dedicated Worker. Each run prints how long the page's main thread went
// without a 10 ms timer tick while the tab ran its DKG (KEEP_LIGHT_MAIN_THREAD: a figure, not
// a check).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { privateKeyToAccount } from 'viem/accounts';
import { installViemWallet, launchChromium, openPage, waitConnected } from './chromium.mjs';
import { startBinary } from './processes.mjs';

const bin = process.env.KEEP_LIGHT_BIN;
const WWW = fileURLToPath(new URL('..', import.meta.url));
const ARTEFACTS = fileURLToPath(new URL('../../target/e2e/', import.meta.url));
// Anvil/Hardhat account 2: a well-known test key, never a real wallet.
const wallet = privateKeyToAccount('0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a');
// A DKG in debug wasm on a loaded 2-core machine.
const SLOW = 120_000;

/** Starts a 10 ms timer in the page; `longestGap()` then says its longest stall so far. */
async function watchMainThread(page) {
  await page.evaluate(() => {
    window.ticks = [performance.now()];
    setInterval(() => window.ticks.push(performance.now()), 10);
  });
  return () => page.evaluate(() => Math.round(Math.max(...window.ticks.slice(1).map((t, i) => t - window.ticks[i]))));
}

/** Connects the open demo page with its dev key and waits until its first DKG is done. */
async function connectAndFormGroup(page) {
  await page.locator('#dev-key').click();
  await waitConnected(page);
  const longestGap = await watchMainThread(page);
  await page.getByTestId('dkg').locator('.phase.now').first().waitFor({ timeout: SLOW });
  await page.waitForFunction(() => document.getElementById('dkg').dataset.state === 'finished',
    null, { timeout: SLOW });
  await page.getByTestId('group').first().waitFor({ timeout: 30_000 });
  return longestGap();
}

function startDev() {
  return startBinary(['dev', '--port', '0', '--www', WWW, '--members', '4', '--group-size', '5',
    '--threshold', '3', '--block-time', '200', '--phase-blocks', '15', '--request-every', '10']);
}

test('the demo page: a wallet connects, the tab joins a group, runs its DKG and shows verified entries', async () => {
  assert.ok(bin, 'KEEP_LIGHT_BIN must be set (run scripts/test.sh)');
  const dev = startDev();
  const browser = await launchChromium();
  try {
    const { url } = await dev.next((line) => line.url, 'the page URL');
    const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await installViemWallet(page, wallet, 31337, { announce: true });
    await page.goto(url);
    // Found by EIP-6963 discovery (the window.ethereum fallback would be "Browser wallet").
    const button = page.getByTestId('connect').locator('#wallet');
    assert.equal(await button.textContent(), 'Connect Viem Test Wallet');
    await button.click();
    await waitConnected(page);
    const longestGap = await watchMainThread(page);
    assert.match(await page.getByTestId('status').textContent(), /connected/);
    assert.equal(await page.locator('#identity').getAttribute('data-operator'), wallet.address);
    await page.waitForFunction(() => /^[12] of 2/.test(document.querySelector('[data-testid=health]').textContent),
      null, { timeout: 30_000 });
    assert.match(await page.getByTestId('peer').textContent(), /^\d+ connected$/);

    // The fifth seat is the tab's: it is in the genesis group, after a DKG the page follows.
    const dkg = page.getByTestId('dkg');
    await dkg.locator('.phase.now').first().waitFor({ timeout: SLOW });
    await page.waitForFunction(() => document.getElementById('dkg').dataset.state === 'finished',
      null, { timeout: SLOW });
    assert.equal(await dkg.locator('.phase.done').count(), 7);
    console.log(`KEEP_LIGHT_MAIN_THREAD ${JSON.stringify({ worker: false, longest_gap_ms: await longestGap() })}`);
    const group = page.getByTestId('group').first();
    await group.waitFor({ timeout: 30_000 });
    assert.match(await group.textContent(), /Group 0 · seat \d of 5/);

    // dev requests an entry every 10 blocks; the page checks each against the group key.
    const verified = page.locator('[data-testid=entry][data-verified=true]');
    await verified.first().waitFor({ timeout: SLOW });
    const shown = await verified.first().getAttribute('data-random');
    const line = await dev.next((l) => l.random === shown, `dev's line for entry ${shown}`);
    assert.ok(line.group_members.includes(wallet.address), 'the tab is one of the group members');
    assert.equal(await page.locator('[data-testid=entry][data-verified=false]').count(), 0);

    // The request button: the page's own request resolves with its entry, shown verified.
    const before = await page.getByTestId('entry').count();
    await page.getByTestId('request').click();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=entry][data-verified=true]').length > n,
      before, { timeout: SLOW });
    await page.waitForFunction(() => !document.querySelector('[data-testid=request]').disabled, null, { timeout: SLOW });
    assert.equal(await page.getByTestId('error').isVisible(), false);
    // The plot has the group-message latency of the rounds the tab signed in.
    await page.waitForFunction(() => Number(document.getElementById('chart').dataset.shareRounds) > 0,
      null, { timeout: SLOW });
    mkdirSync(ARTEFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTEFACTS}demo.png`, fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    dev.child.kill('SIGINT');
  }
});

test('the demo page explains a declined wallet, going offline, unreachable relays and a chain answering garbage', async () => {
  assert.ok(bin, 'KEEP_LIGHT_BIN must be set (run scripts/test.sh)');
  const dev = startDev();
  // A "chain" that answers every request with something that is not JSON-RPC.
  const garbage = http.createServer((request, response) => {
    response.setHeader('access-control-allow-origin', '*');
    response.setHeader('access-control-allow-headers', '*');
    response.end(request.method === 'OPTIONS' ? '' : '<html>not a chain</html>');
  });
  await new Promise((resolve) => garbage.listen(0, '127.0.0.1', resolve));
  const browser = await launchChromium();
  try {
    const { url } = await dev.next((line) => line.url, 'the page URL');

    // The user declines the signature: a clear message, and the connect panel still works.
    const declined = await browser.newPage();
    await installViemWallet(declined, wallet, 31337, { refuse: true });
    await declined.goto(url);
    await declined.locator('#wallet').click();
    await declined.getByTestId('error').waitFor({ timeout: 30_000 });
    assert.match(await declined.getByTestId('error').textContent(), /declined the signature/);
    assert.equal(await declined.getByTestId('connect').isVisible(), true);
    await declined.locator('#dev-key').click();
    await waitConnected(declined);
    assert.equal(await declined.getByTestId('error').isVisible(), false);

    // Offline (Chromium cuts new requests; the relay connections stay): the page says the chain
    // is not answering. Back online, the notice goes and the entries taken meanwhile appear, none
    // missing.
    await declined.getByTestId('entry').first().waitFor({ timeout: SLOW });
    await declined.context().setOffline(true);
    await declined.getByTestId('error').waitFor({ timeout: 30_000 });
    assert.match(await declined.getByTestId('error').textContent(), /chain is not answering/);
    const shownOffline = await declined.getByTestId('entry').count();
    await declined.waitForTimeout(3_000);
    await declined.context().setOffline(false);
    await declined.getByTestId('error').waitFor({ state: 'hidden', timeout: 30_000 });
    await declined.waitForFunction((n) => document.querySelectorAll('[data-testid=entry]').length > n,
      shownOffline, { timeout: SLOW });
    const requests = (await declined.locator('[data-testid=entry]').evaluateAll(
      (items) => items.map((li) => Number(li.dataset.request)))).sort((a, b) => a - b);
    assert.deepEqual(requests, requests.map((_, i) => requests[0] + i), 'no entry missing');

    // No relay can be reached: the page says so and keeps retrying, never "connected".
    const relayPeer = new URL(url).searchParams.get('relay').split('/p2p/')[1];
    const unreachable = new URL(url);
    unreachable.search = '';
    unreachable.searchParams.append('relay', `/ip4/127.0.0.1/tcp/1/ws/p2p/${relayPeer}`);
    unreachable.searchParams.append('chain', new URL(url).searchParams.get('chain'));
    const { page: lonely } = await openPage(browser, unreachable.href);
    await lonely.locator('#member').uncheck();
    await lonely.locator('#dev-key').click();
    await lonely.waitForFunction(() => /no relay reachable/.test(document.getElementById('status').textContent),
      null, { timeout: 30_000 });

    // A chain answering garbage: a member cannot enrol, and the page says why.
    const bad = new URL(url);
    bad.searchParams.set('chain', `http://127.0.0.1:${garbage.address().port}/`);
    const { page: confused } = await openPage(browser, bad.href);
    await confused.locator('#dev-key').click();
    await confused.getByTestId('error').waitFor({ timeout: 30_000 });
    assert.match(await confused.getByTestId('error').textContent(), /Could not connect: chain/);
    assert.equal(await confused.getByTestId('connect').isVisible(), true);
  } finally {
    await browser.close();
    garbage.close();
    dev.child.kill('SIGINT');
  }
});

test('worker mode: the node runs in a Worker, the page the same, its entries verified', async () => {
  assert.ok(bin, 'KEEP_LIGHT_BIN must be set (run scripts/test.sh)');
  const dev = startDev();
  const browser = await launchChromium();
  try {
    const { url } = await dev.next((line) => line.url, 'the page URL');
    const { page, errors } = await openPage(browser, `${url}&worker=1`);
    const longestGap = await connectAndFormGroup(page);
    // Only the WebSocket relay: a worker cannot use WebRTC.
    assert.match(await page.getByTestId('health').textContent(), /^1 of 2 · ws/);
    assert.match(await page.getByTestId('group').first().textContent(), /Group 0 · seat \d of 5/);
    await page.locator('[data-testid=entry][data-verified=true]').first().waitFor({ timeout: SLOW });
    // The node is in a worker: the page's wasm module was loaded for the session key only,
    // and the page's requestEntry goes through the worker.
    const entry = await page.evaluate(() => window.keepLight.requestEntry());
    assert.equal(entry.verified, true);
    await dev.next((l) => l.random === entry.random, `dev's line for entry ${entry.random}`);
    console.log(`KEEP_LIGHT_MAIN_THREAD ${JSON.stringify({ worker: true, longest_gap_ms: longestGap })}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    dev.child.kill('SIGINT');
  }
});

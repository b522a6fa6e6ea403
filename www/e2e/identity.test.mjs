// Identity in the page (issue: operator identity). scripts/test.sh serves the demo page
// (KEEP_LIGHT_PAGE_URL) against a relay whose stdout it checks afterwards for `peer_attested`.
// - Wallet delegation: the tab's window.ethereum is an EIP-1193 provider backed by viem, signing
//   with a test private key in this Node process; the page asks it for a SIWE delegation of its
//   session key and the relay accepts the attestation.
// - Keystore: a geth-default scrypt keystore written by ethers is decrypted in a Web Worker; the
//   page's own 10 ms timer keeps ticking all through the decryption.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { privateKeyToAccount } from 'viem/accounts';
import { installViemWallet, launchChromium, openPage, waitConnected } from './chromium.mjs';

const url = process.env.KEEP_LIGHT_PAGE_URL;
// Anvil/Hardhat account 0: a well-known test key, never a real wallet.
const WALLET_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const wallet = privateKeyToAccount(WALLET_KEY);
const keystores = new URL('../../tests/vectors/keystores/', import.meta.url);

test('a viem-backed wallet delegates to the session key and the relay accepts it', async () => {
  assert.ok(url, 'KEEP_LIGHT_PAGE_URL must be set (run scripts/test.sh)');
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await installViemWallet(page, wallet);
    await page.goto(url);
    await page.click('#wallet');
    await waitConnected(page);
    const sessionPeer = await page.textContent('#peer');
    await page.waitForFunction(() => document.getElementById('identity').dataset.relayVerdict,
      null, { timeout: 30_000 });
    const identity = page.locator('#identity');
    assert.equal(await identity.getAttribute('data-relay-verdict'), 'accepted');
    assert.equal(await identity.getAttribute('data-operator'), wallet.address);
    // The session key survives a reload (localStorage): the same peer, as a dev key too.
    await page.reload();
    await page.click('#dev-key');
    await waitConnected(page);
    assert.equal(await page.textContent('#peer'), sessionPeer);
    assert.deepEqual(errors, []);
    console.log(`KEEP_LIGHT_ATTESTED ${sessionPeer} ${wallet.address}`);
  } finally {
    await browser.close();
  }
});

test('a geth-default keystore decrypts in a worker without freezing the page', async () => {
  assert.ok(url, 'KEEP_LIGHT_PAGE_URL must be set (run scripts/test.sh)');
  const index = JSON.parse(readFileSync(new URL('index.json', keystores), 'utf8'));
  const heavy = index.find((k) => k.file === 'ethers-scrypt-geth-default.json');
  const browser = await launchChromium();
  try {
    const { page } = await openPage(browser, url);
    const json = readFileSync(new URL(heavy.file, keystores), 'utf8');
    const result = await page.evaluate(async ({ json, password }) => {
      const { KeepLight } = await import('./src/keep-light.js');
      // A timer every 10 ms: its ticks run only while the main thread is free, so ticks spread
      // over the whole decryption show the page was never blocked for long.
      const ticks = [];
      const timer = setInterval(() => ticks.push(performance.now()), 10);
      const started = performance.now();
      const key = await KeepLight.decryptKeystore(json, password);
      const finished = performance.now();
      clearInterval(timer);
      const wrong = await KeepLight.decryptKeystore(json, `${password}!`).then(
        () => 'accepted', (err) => err.message);
      const during = ticks.filter((t) => t > started && t < finished);
      // The longest stretch without a tick, from the start to the end of the decryption.
      const points = [started, ...during, finished];
      const longestGap = Math.max(...points.slice(1).map((t, i) => t - points[i]));
      return { key, ms: finished - started, ticks: during.length, longestGap, wrong };
    }, { json, password: heavy.password });
    assert.equal(result.key.address, heavy.address);
    assert.equal(result.key.secret, heavy.secret);
    // Decrypting on the main thread gives no tick at all, however fast or slow (the KDF runs in
    // one task); ten need 100 ms of a free main thread, of a second or more of scrypt.
    assert.ok(result.ticks >= 10, `the page ticked ${result.ticks} times in ${Math.round(result.ms)} ms ` +
      `(longest still: ${Math.round(result.longestGap)} ms)`);
    assert.match(result.wrong, /wrong password/);
    console.log(`KEEP_LIGHT_BENCH {"keystore_decrypt_in_worker_ms":${result.ms.toFixed(0)},` +
      `"main_thread_ticks":${result.ticks},"main_thread_longest_gap_ms":${result.longestGap.toFixed(0)}}`);

    // The page's own form: use the keystore as the node's operator key.
    await page.setInputFiles('#keystore-file', new URL(heavy.file, keystores).pathname);
    await page.fill('#keystore-password', heavy.password);
    await page.click('#keystore-open');
    await page.waitForFunction((a) => document.getElementById('identity').dataset.operator === a,
      heavy.address, { timeout: 60_000 });
    await waitConnected(page);
    assert.equal(await page.textContent('#address'), heavy.address);
  } finally {
    await browser.close();
  }
});

// Launches Debian's headless Chromium for the page tests (flags: DESIGN.md section 7).
import assert from 'node:assert/strict';
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

/**
 * Opens `url` and starts a node in it with `KeepLight.connect(options)`; every event it emits
 * is kept in `window.tab.events`.
 * @returns {Promise<{page: import('playwright-core').Page, errors: string[],
 *                    until: (pick: (event: object, arg: unknown) => boolean, arg?: unknown) => Promise<object>}>}
 *   `until` waits (30 s, or `timeout` ms, at most) for the first event `pick(event, arg)`
 *   accepts; `pick` runs in the page, so it may use nothing but its arguments.
 */
export async function startTab(browser, url, options) {
  const { page, errors } = await openPage(browser, url);
  return { page, errors, until: await startNode(page, options) };
}

/**
 * Starts a node in an open page (`window.tab`, as `startTab` does), e.g. again after a reload.
 * Each event is kept with the page's clock: `window.tab.events[i].at` (performance.now()).
 * @returns {Promise<(pick: (event: object, arg: unknown) => boolean, arg?: unknown) => Promise<object>>}
 *   `until`, as in `startTab`.
 */
export async function startNode(page, options) {
  await page.evaluate(async (options) => {
    const { KeepLight } = await import('./src/keep-light.js');
    const node = await KeepLight.connect(options);
    window.tab = { node, events: [] };
    node.addEventListener('event', (e) => window.tab.events.push({ ...e.detail, at: performance.now() }));
  }, options);
  return (pick, arg, timeout = 30_000) => page.waitForFunction(({ source, arg }) => {
    const accept = new Function(`return ${source}`)();
    return window.tab.events.find((e) => accept(e, arg));
  }, { source: pick.toString(), arg }, { timeout }).then((handle) => handle.jsonValue());
}

/** The demo page without `?relay=`: it starts no node of its own. */
export function pageWithoutNode(url) {
  return new URL('/', url).href;
}

/**
 * Gives `page` (before its next navigation) a `window.ethereum` EIP-1193 provider backed by
 * the viem `account`: `request` runs here, in Node, through an exposed function, and signs
 * with the account's key. It survives reloads. With `refuse`, the user declines every
 * signature (an EIP-1193 error with code 4001). With `announce`, it also answers EIP-6963
 * discovery as "Viem Test Wallet".
 * @param {import('playwright-core').Page} page
 * @param {import('viem/accounts').PrivateKeyAccount} account
 */
export async function installViemWallet(page, account, chainId = 31337, { refuse = false, announce = false } = {}) {
  await page.exposeFunction('__viemRequest', async (method, params) => {
    // A user who declines the signature: EIP-1193's 4001, as wallets report it.
    if (refuse && method === 'personal_sign') return { refused: { code: 4001, message: 'User rejected the request.' } };
    switch (method) {
      case 'eth_requestAccounts':
      case 'eth_accounts':
        return [account.address];
      case 'eth_chainId':
        return `0x${chainId.toString(16)}`;
      case 'personal_sign':
        assert.equal(params[1].toLowerCase(), account.address.toLowerCase());
        return account.signMessage({ message: { raw: params[0] } });
      default:
        throw new Error(`unsupported method ${method}`);
    }
  });
  await page.addInitScript((announce) => {
    window.ethereum = {
      request: async ({ method, params = [] }) => {
        const result = await window.__viemRequest(method, params);
        if (result?.refused) throw Object.assign(new Error(result.refused.message), result.refused);
        return result;
      },
    };
    // EIP-6963: the wallet announces itself when the page asks, as extension wallets do.
    if (announce) {
      const info = { uuid: '8d4c2c1e-6963-4b7e-9a1f-0c0ffee00001', name: 'Viem Test Wallet',
        icon: 'data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22/%3E', rdns: 'dev.keep-light.test' };
      window.addEventListener('eip6963:requestProvider', () => window.dispatchEvent(new CustomEvent(
        'eip6963:announceProvider', { detail: Object.freeze({ info, provider: window.ethereum }) })));
    }
  }, announce);
}

// Connect benchmark (scripts/bench-browser.sh): in one headless Chromium, fresh pages take
// turns connecting to the same loopback relay with keep-light (tools/connect-bench/
// keep-light.html: keep_light connects as soon as the module has loaded, keep_light_warm
// after its warm-up) and with js-libp2p (tools/connect-bench/js-libp2p.html, built by Vite).
// Each figure is the median over the trials, and one JSON line is printed:
//   connect_ms: from KeepLight.connect (module already loaded) or createLibp2p to the relay's
//     connection (keep-light: its first `peer` event; js-libp2p: dial resolved);
//   returned_ms: until connect / createLibp2p returned;
//   load_ms: keep-light's module fetch and instantiation, before connect;
//   warm_up_ms: keep_light_warm's warm-up (warmUp), after the load and before connect;
//   page_to_connect_ms: from navigation start to the connection, everything included.
// Settings: KEEP_LIGHT_PAGE_URL (the www/ server's origin), KEEP_LIGHT_TEST_RELAY (a relay's
// /ws address), KEEP_LIGHT_TRIALS (default 15).
import { launchChromium } from '../e2e/chromium.mjs';

const origin = new URL(process.env.KEEP_LIGHT_PAGE_URL).origin;
const relay = process.env.KEEP_LIGHT_TEST_RELAY;
const trials = Number(process.env.KEEP_LIGHT_TRIALS ?? 15);
const pages = {
  keep_light: `${origin}/tools/connect-bench/keep-light.html?`,
  keep_light_warm: `${origin}/tools/connect-bench/keep-light.html?warm=1&`,
  js_libp2p: `${origin}/tools/connect-bench/dist/js-libp2p.html?`,
};

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return Number(sorted[Math.floor(sorted.length / 2)].toFixed(1));
};

const browser = await launchChromium();
const results = Object.fromEntries(Object.keys(pages).map((name) => [name, []]));
try {
  for (let trial = 0; trial < trials; trial += 1) {
    for (const [name, url] of Object.entries(pages)) {
      const page = await browser.newPage();
      const errors = [];
      page.on('pageerror', (err) => errors.push(err.message));
      page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
      await page.goto(`${url}relay=${encodeURIComponent(relay)}`);
      const handle = await page.waitForFunction(() => window.result, null, { timeout: 30_000 })
        .catch(() => { throw new Error(`${name} never connected: ${errors.join('; ')}`); });
      results[name].push(await handle.jsonValue());
      await page.close();
    }
  }
} finally {
  await browser.close();
}
const line = { trials };
for (const [name, runs] of Object.entries(results)) {
  for (const key of ['connect_ms', 'returned_ms', 'load_ms', 'warm_up_ms', 'page_to_connect_ms']) {
    if (runs[0][key] !== undefined) line[`${name}_${key}`] = median(runs.map((r) => r[key]));
  }
}
console.log(JSON.stringify(line));

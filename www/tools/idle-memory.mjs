// An idle tab's memory (scripts/idle-memory.sh): a keep-light node in a page, connected to a
// relay and subscribed to a topic, left alone for KEEP_LIGHT_IDLE_MINUTES (default 10) while
// only its timers run (pings, gossipsub heartbeats, relay health). Every 30 s, after a forced
// garbage collection: the wasm memory (it only grows) and the JS heap in use. One JSON line:
// the first and last samples, the peaks, and what each grew by after the first minute.
// Settings: KEEP_LIGHT_PAGE_URL (the www/ server's origin), KEEP_LIGHT_TEST_RELAY.
import { launchChromium } from '../e2e/chromium.mjs';

const origin = new URL(process.env.KEEP_LIGHT_PAGE_URL).origin;
const relay = process.env.KEEP_LIGHT_TEST_RELAY;
const minutes = Number(process.env.KEEP_LIGHT_IDLE_MINUTES ?? 10);
const EVERY_MS = 30_000;

const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  // The demo page without ?relay= starts no node of its own.
  await page.goto(`${origin}/`);
  await page.evaluate(async (relay) => {
    const { KeepLight } = await import('./src/keep-light.js');
    const node = await KeepLight.connect({ bootstrap: [relay], topics: ['keep-light/idle'] });
    await new Promise((resolve) => {
      node.addEventListener('peer', ({ detail }) => { if (detail.connected) resolve(); });
    });
    window.idle = { KeepLight, node };
  }, relay);
  const cdp = await page.context().newCDPSession(page);
  const samples = [];
  const started = Date.now();
  for (;;) {
    await cdp.send('HeapProfiler.collectGarbage');
    const { usedSize } = await cdp.send('Runtime.getHeapUsage');
    const wasm = await page.evaluate(() => window.idle.KeepLight.memoryBytes());
    samples.push({ at_s: Math.round((Date.now() - started) / 1000), wasm_bytes: wasm, js_heap_bytes: usedSize });
    if (Date.now() - started >= minutes * 60_000) break;
    await new Promise((resolve) => setTimeout(resolve, EVERY_MS));
  }
  const afterMinute = samples.find((s) => s.at_s >= 60) ?? samples[0];
  const last = samples[samples.length - 1];
  console.log(JSON.stringify({
    minutes,
    samples: samples.length,
    first: samples[0],
    last,
    wasm_peak_bytes: Math.max(...samples.map((s) => s.wasm_bytes)),
    js_heap_peak_bytes: Math.max(...samples.map((s) => s.js_heap_bytes)),
    wasm_growth_after_first_minute_bytes: last.wasm_bytes - afterMinute.wasm_bytes,
    js_heap_growth_after_first_minute_bytes: last.js_heap_bytes - afterMinute.js_heap_bytes,
    page_errors: errors.length,
  }));
} finally {
  await browser.close();
}

// A tab's bootstrap schedule (src/net/bootstrap.rs) as the page wires it (src/browser/mod.rs):
// - the relays that worked last time are remembered in localStorage and dialled first: after a
//   reload, a list of 14 decoys (a proxy that counts each dial and refuses it) and the two good
//   relays, shuffled by the node, is dialled good relays first; the tab keeps 2 relays, so it never needs another
//   (with a plain shuffle, both good ones come first once in 120 starts);
// - the window's `offline` event pauses dialling until `online`, and `online` redials at once a
//   relay that waits out its backoff. The relay sits behind a TCP proxy the test cuts (its
//   dials then fail at once); `offline` and `online` are dispatched on `window`, where the
//   browser fires them when the network goes and comes back.
// Times are compared with the node's own backoff (`retry_in_ms`), with seconds of margin.
// This test starts its own relays with the binary in KEEP_LIGHT_BIN (scripts/test.sh sets it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { launchChromium, openPage, pageWithoutNode, startNode } from './chromium.mjs';
import { startProxy, startRelay } from './processes.mjs';

const bin = process.env.KEEP_LIGHT_BIN;
const url = process.env.KEEP_LIGHT_PAGE_URL;
const GOOD_RELAYS_KEY = 'keep-light/good-relays';

const run = (...args) => JSON.parse(execFileSync(bin, args, { encoding: 'utf8' }));

test('a tab dials the relays that worked last time first (localStorage)', async () => {
  assert.ok(bin && url, 'KEEP_LIGHT_BIN and KEEP_LIGHT_PAGE_URL must be set (run scripts/test.sh)');
  const relays = [await startRelay(), await startRelay()];
  // Every dial to it is counted and refused at once.
  const decoy = await startProxy(null);
  decoy.down();
  const decoys = Array.from({ length: 14 }, (_, i) =>
    `/ip4/127.0.0.1/tcp/${decoy.port}/ws/p2p/${run('id', '--key-hex', `0x${(i + 1).toString(16).padStart(64, '0')}`).peer_id}`);
  const good = relays.map((r) => r.ws);
  const browser = await launchChromium();
  try {
    const { page, errors } = await openPage(browser, pageWithoutNode(url));
    const first = await startNode(page, { bootstrap: good });
    await first((e) => e.event === 'health' && e.relays === 2);
    const stored = await page.evaluate((key) => JSON.parse(localStorage.getItem(key)), GOOD_RELAYS_KEY);
    assert.deepEqual([...(stored ?? [])].sort(), [...good].sort(), 'both relays remembered');
    await page.evaluate(() => window.tab.node.close());

    // Next visit: the good relays listed last, among the decoys.
    await page.reload();
    const again = await startNode(page, { bootstrap: [...decoys, ...good] });
    const healthy = await again((e) => e.event === 'health' && e.relays === 2);
    assert.equal(healthy.state, 'healthy');
    assert.equal(decoy.attempts(), 0, 'a decoy was dialled before the remembered relays');
    const failed = await page.evaluate(() => window.tab.events.filter((e) => e.event === 'dialFailed').length);
    assert.equal(failed, 0);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    decoy.close();
    for (const relay of relays) relay.child.kill();
  }
});

test('offline pauses a tab\'s dialling; online redials at once', async () => {
  assert.ok(bin && url, 'KEEP_LIGHT_BIN and KEEP_LIGHT_PAGE_URL must be set (run scripts/test.sh)');
  const relay = await startRelay();
  const proxy = await startProxy(Number(relay.ws.split('/tcp/')[1].split('/')[0]));
  const address = `/ip4/127.0.0.1/tcp/${proxy.port}/ws/p2p/${relay.peer}`;
  const browser = await launchChromium();
  try {
    const { page, errors } = await openPage(browser, pageWithoutNode(url));
    // Starts a node while the relay is cut off; the first failed dial whose backoff is at
    // least `minRetry` is returned (with `offline`, the page goes offline right then, long
    // before that retry is due).
    const failing = async (trigger) => {
      proxy.down();
      const until = await startNode(page, { bootstrap: [address] });
      await page.evaluate((trigger) => {
        window.trigger = trigger;
        // After startNode's listener: the event is in window.tab.events already.
        window.tab.node.addEventListener('event', ({ detail }) => {
          const t = window.trigger;
          if (!t.fired && detail.event === 'dialFailed' && detail.retryInMs >= t.minRetry) {
            t.fired = { at: performance.now(), retry: detail.retryInMs, seen: window.tab.events.length };
            if (t.offline) window.dispatchEvent(new Event('offline'));
          }
        });
      }, trigger);
      const fired = await page.waitForFunction(() => window.trigger.fired, null, { timeout: 30_000 })
        .then((h) => h.jsonValue(), async (err) => {
          const events = await page.evaluate(() => window.tab.events.slice(-12));
          throw new Error(`${err.message}; last events: ${JSON.stringify(events)}`);
        });
      return { until, fired };
    };
    // The relay is reachable again and the page goes online: when is it connected?
    const online = async (until) => {
      proxy.up();
      const at = await page.evaluate(() => {
        window.dispatchEvent(new Event('online'));
        return performance.now();
      });
      return until((e, at) => e.event === 'health' && e.relays === 1 && e.at > at, at);
    };

    // Offline: nothing is dialled, even well after the retry was due; online: dialled again.
    const paused = await failing({ minRetry: 2000, offline: true });
    const attempts = proxy.attempts();
    await page.waitForFunction((until) => performance.now() > until, paused.fired.at + paused.fired.retry + 3000,
      { timeout: 30_000 });
    const dialled = await page.evaluate((seen) =>
      window.tab.events.slice(seen).filter((e) => e.event === 'dialFailed').length, paused.fired.seen);
    assert.equal(dialled, 0, 'the tab dialled while offline');
    assert.equal(proxy.attempts(), attempts, 'the relay was dialled while offline');
    await online(paused.until);

    // Online while a redial waits out a backoff of 4 s or more: connected well before it was due.
    await page.reload();
    const waiting = await failing({ minRetry: 4000 });
    const back = await online(waiting.until);
    assert.ok(back.at < waiting.fired.at + waiting.fired.retry - 1000,
      `online redialled ${Math.round(back.at - waiting.fired.at)} ms after the failure, its backoff was ` +
      `${waiting.fired.retry} ms`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    proxy.close();
    relay.child.kill();
  }
});

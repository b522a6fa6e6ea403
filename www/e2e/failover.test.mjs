// Fail-over: two relays, a tab and a native echo member in one topic. The tab keeps both relays
// (its bootstrap target is 2); one relay is killed (SIGKILL, as a crash) and the tab's messages
// must keep reaching the native member, whose echoes come back through the other relay. The gap
// from the kill to the first echo is printed as a benchmark figure, not asserted. It runs with the
// tab on WebSocket and on WebRTC-direct; `health` events name the transport of each relay.
// This test starts its own relays and native member with the binary in KEEP_LIGHT_BIN
// (scripts/test.sh sets it), so killing one disturbs no other test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, openPage } from './chromium.mjs';
import { startBinary as start, startRelay } from './processes.mjs';

const bin = process.env.KEEP_LIGHT_BIN;
const url = process.env.KEEP_LIGHT_PAGE_URL;

for (const transport of ['ws', 'webrtc-direct']) {
  const name = `when the relay in use dies, the tab (${transport}) and a native member go on through the other`;
  test(name, async () => {
    assert.ok(bin && url, 'KEEP_LIGHT_BIN and KEEP_LIGHT_PAGE_URL must be set (run scripts/test.sh)');
    const topic = `keep-light/failover/${process.pid}/${transport}`;
    const relays = [await startRelay(), await startRelay()];
    const native = start(['node', '--bootstrap', relays[0].tcp, '--bootstrap', relays[1].tcp,
      '--key-hex', `0x${'0c'.repeat(32)}`, '--join', topic, '--echo']);
    const browser = await launchChromium();
    try {
      await native.next((v) => v.event === 'health' && v.relays === 2, 'the native member on both relays');
      const { page, errors } = await openPage(browser, url);
      await page.evaluate(async ({ bootstrap, topic }) => {
        const { KeepLight } = await import('./src/keep-light.js');
        const node = await KeepLight.connect({ bootstrap, topics: [topic] });
        window.failover = { node, echoes: [], health: [] };
        node.addEventListener('message', (e) => window.failover.echoes.push({ at: performance.now(), data: e.detail.data }));
        node.addEventListener('health', (e) => window.failover.health.push({ ...e.detail, at: performance.now() }));
      }, { bootstrap: relays.map((r) => r[transport]), topic });
      const both = await page.waitForFunction(() => window.failover.health.find((h) => h.relays === 2), null,
        { timeout: 30_000 }).then((h) => h.jsonValue());
      assert.deepEqual(both.transports, { [transport]: 2 });

      // Sends `prefix-i` every 100 ms until an echo of one comes back; returns when it arrived.
      const roundTrip = (prefix) => page.evaluate(async ({ topic, prefix }) => {
        const { node, echoes } = window.failover;
        for (let i = 0; i < 300; i++) {
          await node.publish(topic, `${prefix}-${i}`).catch(() => {});
          await new Promise((r) => setTimeout(r, 100));
          const echo = echoes.find((e) => e.data.startsWith(`${prefix}-`));
          if (echo) return echo.at;
        }
        return null;
      }, { topic, prefix });

      assert.ok(await roundTrip('before'), 'no echo with both relays up');
      const killedAt = await page.evaluate(() => performance.now());
      relays[0].child.kill('SIGKILL');
      const echoedAt = await roundTrip('after');
      assert.ok(echoedAt, 'no echo after the relay died');
      // Over WebSocket the socket's end says the relay is gone; over WebRTC only unanswered
      // pings do, so this can take up to the ping interval plus its timeout.
      const lost = await page.waitForFunction((killedAt) => window.failover.health.find((h) => h.at > killedAt),
        killedAt, { timeout: 60_000 }).then((h) => h.jsonValue());
      assert.equal(lost.relays, 1, `the tab knows it lost a relay: ${JSON.stringify(lost)}`);
      assert.deepEqual(lost.transports, { [transport]: 1 });
      console.log(`KEEP_LIGHT_BENCH ${JSON.stringify({ transport, browser_failover_gap_ms: Math.round(echoedAt - killedAt),
        browser_relay_loss_noticed_ms: Math.round(lost.at - killedAt) })}`);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      native.child.kill();
      for (const relay of relays) relay.child.kill();
    }
  });
}

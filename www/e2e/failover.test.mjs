// Fail-over: two relays, a tab and a native echo member in one topic. The tab keeps both relays
// (its bootstrap target is 2); one relay is killed (SIGKILL, as a crash) and the tab's messages
// must keep reaching the native member, whose echoes come back through the other relay. The gap
// from the kill to the first echo is printed as a benchmark figure, not asserted.
// This test starts its own relays and native member with the binary in KEEP_LIGHT_BIN
// (scripts/test.sh sets it), so killing one disturbs no other test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, openPage } from './chromium.mjs';
import { startBinary as start } from './processes.mjs';

const bin = process.env.KEEP_LIGHT_BIN;
const url = process.env.KEEP_LIGHT_PAGE_URL;
const topic = `keep-light/failover/${process.pid}`;

async function startRelay() {
  const relay = start(['relay', '--listen', '/ip4/127.0.0.1/tcp/0/ws', '--listen', '/ip4/127.0.0.1/tcp/0']);
  const ws = (await relay.next((v) => v.listening?.includes('/ws/p2p/'), 'a ws address')).listening;
  const tcp = (await relay.next((v) => /\/tcp\/\d+\/p2p\//.test(v.listening ?? ''), 'a tcp address')).listening;
  return { ...relay, ws, tcp };
}

test('when the relay in use dies, the tab and a native member go on through the other', async () => {
  assert.ok(bin && url, 'KEEP_LIGHT_BIN and KEEP_LIGHT_PAGE_URL must be set (run scripts/test.sh)');
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
      node.addEventListener('health', (e) => window.failover.health.push(e.detail));
    }, { bootstrap: relays.map((r) => r.ws), topic });
    await page.waitForFunction(() => window.failover.health.some((h) => h.relays === 2), null, { timeout: 30_000 });

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
    const health = await page.evaluate(() => window.failover.health.at(-1));
    assert.equal(health.relays, 1, `the tab knows it lost a relay: ${JSON.stringify(health)}`);
    console.log(`KEEP_LIGHT_BENCH ${JSON.stringify({ browser_failover_gap_ms: Math.round(echoedAt - killedAt) })}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    native.child.kill();
    for (const relay of relays) relay.child.kill();
  }
});

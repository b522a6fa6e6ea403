// A junk flood at a tab (wire v1, issue "validator pipeline"): the tab is reachable through
// its relay (`reachable: true`, a circuit), and a flooder (`examples/flood`, a bare libp2p
// peer that writes gossipsub frames by hand) dials that circuit and sends 20,000 envelopes whose
// signatures are junk, on the topic the tab is in, as fast as the circuit takes them. Meanwhile
// three honest native members (`keep-light node`) publish 1,000 texts each through the relay.
// The tab must deliver every honest text exactly once and no junk, ban the flooder for
// `bad_signature`, and keep its wasm memory within a budget. The figures go to stdout as one
// `KEEP_LIGHT_FLOOD {…}` line.
// scripts/test.sh provides the page, the binary (KEEP_LIGHT_BIN) and the flooder
// (KEEP_LIGHT_FLOOD_BIN).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, pageWithoutNode, startTab } from './chromium.mjs';
import { startBinary, startRelay } from './processes.mjs';

const url = process.env.KEEP_LIGHT_PAGE_URL;
const flooderBin = process.env.KEEP_LIGHT_FLOOD_BIN;

const HONEST = 3;
const TEXTS = 1_000;
const JUNK = 20_000;
/** What the flood may add to the wasm memory: far below what 20,000 held messages would take. */
const MEMORY_BUDGET = 32 * 1024 * 1024;

test('a junk flood through a circuit gets its sender banned while every honest text reaches the tab', async () => {
  assert.ok(url && process.env.KEEP_LIGHT_BIN && flooderBin, 'run through scripts/test.sh (settings missing)');
  const topic = `keep-light/flood/${process.pid}`;
  const relay = await startRelay();
  const browser = await launchChromium();
  const honest = [];
  let flooder;
  try {
    const tab = await startTab(browser, pageWithoutNode(url),
      { bootstrap: [relay.ws], reachable: true, topics: [topic] });
    const circuit = (await tab.until((e) => e.event === 'listening' && e.address.includes('/p2p-circuit/'))).address;

    for (let i = 0; i < HONEST; i++) {
      const node = startBinary(['node', '--bootstrap', relay.tcp, '--key-hex',
        `0x${(0x51 + i).toString(16).padStart(64, '0')}`, '--join', topic], { stdin: true });
      honest.push(node);
      await node.next((v) => v.event === 'connected', `honest member ${i} connected`);
    }
    // Every honest member reaches the tab before the flood (the meshes have formed).
    for (let i = 0; i < HONEST; i++) {
      const warm = setInterval(() => honest[i].child.stdin.write(`publish ${topic} warm-${i}\n`), 300);
      try {
        await tab.until((e, text) => e.event === 'message' && e.data === text, `warm-${i}`);
      } finally {
        clearInterval(warm);
      }
    }
    const memoryBefore = await tab.page.evaluate(async () => {
      const { KeepLight } = await import('./src/keep-light.js');
      return KeepLight.memoryBytes();
    });

    flooder = startBinary(['--relay', relay.tcp, '--target', circuit, '--topic', topic,
      '--messages', String(JUNK)], { program: flooderBin });
    const flooderPeer = (await flooder.next((v) => v.flooder, 'the flooder\'s peer id')).flooder;
    const sent = await flooder.next((v) => v.sent, 'the flood sent');
    const started = performance.now();
    for (let n = 0; n < TEXTS; n++) {
      for (const node of honest) node.child.stdin.write(`publish ${topic} h${honest.indexOf(node)}-${n}\n`);
    }

    const outcome = await tab.page.waitForFunction(({ flooderPeer, total }) => {
      const texts = new Map();
      let junk = 0;
      let banned;
      for (const e of window.tab.events) {
        if (e.event === 'message' && e.data === 'junk') junk += 1;
        if (e.event === 'message' && /^h\d-\d+$/.test(e.data)) texts.set(e.data, (texts.get(e.data) ?? 0) + 1);
        if (e.event === 'banned' && e.peer === flooderPeer) banned = e;
      }
      if (texts.size < total || !banned) return false;
      const rejected = window.tab.events.filter((e) => e.event === 'rejected');
      return {
        texts: texts.size,
        twice: [...texts.values()].filter((n) => n > 1).length,
        junk,
        banned,
        badSignature: rejected.filter((e) => e.reason === 'bad_signature').length,
        dropped: window.tab.events.filter((e) => e.event === 'dropped').map((e) => `${e.reason}:${e.total}`),
      };
    }, { flooderPeer, total: HONEST * TEXTS }, { timeout: 120_000, polling: 250 }).then((h) => h.jsonValue());
    const ms = performance.now() - started;
    const memoryAfter = await tab.page.evaluate(async () => {
      const { KeepLight } = await import('./src/keep-light.js');
      return KeepLight.memoryBytes();
    });
    const closed = await flooder.next((v) => 'closed' in v, 'the tab to hang up on the flooder');

    assert.equal(outcome.texts, HONEST * TEXTS);
    assert.equal(outcome.twice, 0, 'an honest text was delivered twice');
    assert.equal(outcome.junk, 0, 'a junk message was delivered');
    assert.equal(outcome.banned.reason, 'bad_signature');
    assert.ok(outcome.badSignature >= 1, 'no bad_signature rejection was reported');
    assert.equal(closed.closed, circuit.split('/p2p/').pop(), 'the flooder lost some other connection');
    const grown = memoryAfter - memoryBefore;
    console.log(`KEEP_LIGHT_FLOOD ${JSON.stringify({ junk: JUNK, junk_bytes: sent.bytes,
      honest_delivered: outcome.texts, bad_signature_reported: outcome.badSignature, dropped: outcome.dropped,
      wasm_memory_before: memoryBefore, wasm_memory_after: memoryAfter, honest_ms: Math.round(ms) })}`);
    assert.ok(grown <= MEMORY_BUDGET, `the wasm memory grew by ${grown} bytes (budget ${MEMORY_BUDGET})`);
    assert.deepEqual(tab.errors, []);
  } finally {
    flooder?.child.kill();
    for (const node of honest) node.child.kill();
    await browser.close();
    relay.child.kill();
  }
});

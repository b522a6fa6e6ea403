// Two tabs reach each other through the relay (circuit relay v2): tab A connects with
// `reachable: true` and announces its `…/p2p-circuit/p2p/<A>` address; tab B, holding a wallet
// delegation made by the CLI (`attest create`), dials that address. Over the relayed connection
// B sends its attestation and A answers (request-response `/keep-light/attest/1`): A reports
// `peer_attested` for B, B reports A's `attestation_acknowledged`.
// scripts/test.sh provides the relay (KEEP_LIGHT_TEST_RELAY), the page and the binary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { launchChromium, startTab } from './chromium.mjs';

const bin = process.env.KEEP_LIGHT_BIN;
const url = process.env.KEEP_LIGHT_PAGE_URL;
const relay = process.env.KEEP_LIGHT_TEST_RELAY;

const run = (...args) => JSON.parse(execFileSync(bin, args, { encoding: 'utf8' }));

test('two tabs talk request-response through a relay circuit', async () => {
  assert.ok(bin && url && relay, 'run through scripts/test.sh (settings missing)');
  const sessionKey = `0x${'0d'.repeat(32)}`;
  const session = run('id', '--key-hex', sessionKey);
  const wallet = run('id', '--key-hex', `0x${'0e'.repeat(32)}`);
  const attestation = run('attest', 'create', '--key-hex', `0x${'0e'.repeat(32)}`,
    '--peer', session.peer_id, '--chain-id', '31337');

  const browser = await launchChromium();
  try {
    const a = await startTab(browser, url, { bootstrap: [relay], reachable: true });
    const listening = await a.until((e) => e.event === 'listening' && e.address.includes('/p2p-circuit/'));
    const circuit = listening.address;
    const aPeer = await a.page.evaluate(() => window.tab.node.peerId);
    assert.ok(circuit.endsWith(`/p2p-circuit/p2p/${aPeer}`), circuit);

    const b = await startTab(browser, url, { bootstrap: [relay], keyHex: sessionKey, attestation });
    await b.until((e) => e.event === 'health' && e.relays === 1);
    await b.page.evaluate((circuit) => window.tab.node.dial(circuit), circuit);

    // The relay answers B's attestation too; A's answer is the one that crossed the circuit.
    const ack = await b.until((e, peer) => e.event === 'attestation_acknowledged' && e.peer === peer, aPeer);
    assert.equal(ack.accepted, true);
    const attested = await a.until((e) => e.event === 'peer_attested');
    assert.equal(attested.peer, session.peer_id);
    assert.equal(attested.operator, wallet.address);
    assert.deepEqual([...a.errors, ...b.errors], []);
  } finally {
    await browser.close();
  }
});

// Two tabs reach each other through a relay (circuit relay v2): tab A connects with
// `reachable: true` and announces its `…/p2p-circuit/p2p/<A>` address; tab B, holding a wallet
// delegation made by the CLI (`attest create`), dials that address. Over the relayed connection
// B sends its attestation and A answers (request-response `/keep-light/attest/1`): A reports
// `peer_attested` for B, B reports A's `attestation_acknowledged`.
// Then the circuit carries more than libp2p's default 128 KiB per circuit (relays here allow
// 64 MiB, `NodeConfig::with_circuit_limits`): both tabs are in a topic, and gossipsub's flood
// publishing sends each of A's own messages to every connected peer in it, so to B over the
// circuit (and to the relay, which also forwards it to B). 320 KiB of A's texts arrive at B, and
// afterwards the circuit still carries traffic: B joins a second topic, and only the circuit can
// tell A (subscriptions go to direct neighbours only). A relay with libp2p's limits closes the
// circuit on the way and A never hears of it.
// The test starts its own relay with the binary in KEEP_LIGHT_BIN; scripts/test.sh provides it
// and the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { launchChromium, pageWithoutNode, startTab } from './chromium.mjs';
import { startRelay } from './processes.mjs';

const bin = process.env.KEEP_LIGHT_BIN;
const url = process.env.KEEP_LIGHT_PAGE_URL;

const run = (...args) => JSON.parse(execFileSync(bin, args, { encoding: 'utf8' }));

/** Texts A pushes through the circuit: 20 × 16 KiB, 2.5 times libp2p's default circuit limit. */
const CHUNKS = 20;
const CHUNK = 16 * 1024;

test('two tabs talk through a relay circuit, request-response and more than 128 KiB', async () => {
  assert.ok(bin && url, 'run through scripts/test.sh (settings missing)');
  const sessionKey = `0x${'0d'.repeat(32)}`;
  const session = run('id', '--key-hex', sessionKey);
  const wallet = run('id', '--key-hex', `0x${'0e'.repeat(32)}`);
  const attestation = run('attest', 'create', '--key-hex', `0x${'0e'.repeat(32)}`,
    '--peer', session.peer_id, '--chain-id', '31337');
  const topic = `keep-light/circuit/${process.pid}`;
  const later = `${topic}/later`;

  const relay = await startRelay();
  const browser = await launchChromium();
  try {
    const page = pageWithoutNode(url);
    const a = await startTab(browser, page, { bootstrap: [relay.ws], reachable: true, topics: [topic] });
    const listening = await a.until((e) => e.event === 'listening' && e.address.includes('/p2p-circuit/'));
    const circuit = listening.address;
    const aPeer = await a.page.evaluate(() => window.tab.node.peerId);
    assert.ok(circuit.endsWith(`/p2p-circuit/p2p/${aPeer}`), circuit);
    // A message's `from` is whoever forwarded it (A over the circuit, or the relay); `sender`
    // is its signing author.
    const aAddress = await a.page.evaluate(() => window.tab.node.address);

    const b = await startTab(browser, page, { bootstrap: [relay.ws], keyHex: sessionKey, attestation,
      topics: [topic] });
    await b.until((e) => e.event === 'health' && e.relays === 1);
    await b.page.evaluate((circuit) => window.tab.node.dial(circuit), circuit);

    // The relay answers B's attestation too; A's answer is the one that crossed the circuit.
    const ack = await b.until((e, peer) => e.event === 'attestationAcknowledged' && e.peer === peer, aPeer);
    assert.equal(ack.accepted, true);
    const attested = await a.until((e) => e.event === 'peerAttested');
    assert.equal(attested.peer, session.peer_id);
    assert.equal(attested.operator, wallet.address);

    // A knows B is in the topic (told over the circuit): its flood publishing now sends to B.
    await a.until((e, [peer, topic]) => e.event === 'peerSubscribed' && e.peer === peer && e.topic === topic,
      [session.peer_id, topic]);
    await a.page.evaluate(async ({ topic, CHUNKS, CHUNK }) => {
      for (let i = 0; i < CHUNKS; i++) {
        await window.tab.node.publish(topic, `${i}:`.padEnd(CHUNK, String.fromCharCode(97 + i)));
      }
    }, { topic, CHUNKS, CHUNK });
    const received = await b.page.waitForFunction(({ aAddress, topic, CHUNKS, CHUNK }) => {
      const texts = new Set(window.tab.events
        .filter((e) => e.event === 'message' && e.sender === aAddress && e.topic === topic && e.data.length === CHUNK)
        .map((e) => e.data.split(':')[0]));
      return texts.size >= CHUNKS && [...texts].sort((x, y) => x - y);
    }, { aAddress, topic, CHUNKS, CHUNK }, { timeout: 60_000 }).then((h) => h.jsonValue());
    assert.deepEqual(received, Array.from({ length: CHUNKS }, (_, i) => String(i)));

    // After 320 KiB the circuit is still up and carries B's news to A.
    const gone = (tab, peer) => tab.page.evaluate((peer) =>
      window.tab.events.filter((e) => e.event === 'disconnected' && e.peer === peer).length, peer);
    await b.page.evaluate((later) => window.tab.node.join(later), later);
    await a.until((e, [peer, topic]) => e.event === 'peerSubscribed' && e.peer === peer && e.topic === topic,
      [session.peer_id, later]).catch(async (err) => {
      throw new Error(`A never heard over the circuit that B joined a topic (${err.message}); ` +
        `A saw B disconnect ${await gone(a, session.peer_id)} times`);
    });
    assert.equal(await gone(a, session.peer_id), 0, 'A lost B');
    assert.equal(await gone(b, aPeer), 0, 'B lost A');
    assert.deepEqual([...a.errors, ...b.errors], []);
  } finally {
    await browser.close();
    relay.child.kill();
  }
});

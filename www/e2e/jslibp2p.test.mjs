// Interop with a second libp2p implementation: a js-libp2p node (gossipsub in anonymous mode,
// WebSocket, noise, yamux, identify) speaks wire v1 with keep-light through our relay. It signs
// its envelopes with viem (tools/envelope-vectors.mjs) and checks the ones it receives with the
// same code, so nothing of keep-light's own makes or checks them on the js side. Texts go js →
// native member, native member → js, js → tab and tab → js; each receiver names the author whose
// signature it checked (`sender`). Last, the js node publishes an envelope whose signature is
// broken: the relay rejects it as `bad_signature` and bans the js peer, and neither the native
// member nor the tab ever gets it.
// The test starts its own relay and native member with the binary in KEEP_LIGHT_BIN;
// scripts/test.sh provides it and the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { createLibp2p } from 'libp2p';
import { gossipsub } from '@libp2p/gossipsub';
import { webSockets } from '@libp2p/websockets';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import WS from 'ws';
import { bytesToHex, concat, getAddress, hexToBytes, stringToBytes, toHex } from 'viem';
import { privateKeyToAccount, sign } from 'viem/accounts';
import { launchChromium, pageWithoutNode, startTab } from './chromium.mjs';
import { startRelay } from './processes.mjs';
import { signingHash, verify } from '../tools/envelope-vectors.mjs';

const bin = process.env.KEEP_LIGHT_BIN;
const url = process.env.KEEP_LIGHT_PAGE_URL;

// js-libp2p 3 is written for Node 22: it calls Promise.withResolvers and its WebSocket
// transport dials with the global WebSocket, both missing from Debian's Node 20. It uses them
// only at run time, after these stand-ins are in place.
globalThis.WebSocket ??= WS;
Promise.withResolvers ??= function withResolvers() {
  let resolve;
  let reject;
  const promise = new this((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
};

const TEXT = 'net.Text';
const WAIT_MS = 30_000;

// --- Envelope (proto/envelope.proto), encoded and decoded by hand -----------------------------

const FIELDS = { 1: 'type', 2: 'payload', 3: 'sender', 4: 'sequence', 5: 'group', 6: 'signature' };

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? low | 0x80 : low);
  } while (v);
  return Uint8Array.from(out);
}

/** Protobuf bytes of `envelope` (hex fields, decimal sequence); empty fields left out, as proto3 does. */
function encodeEnvelope({ type, payload, sender, sequence, group, signature }) {
  const parts = [];
  const bytes = (field, value) => {
    if (value.length) parts.push(varint((field << 3) | 2), varint(value.length), value);
  };
  bytes(1, stringToBytes(type));
  bytes(2, hexToBytes(payload));
  bytes(3, hexToBytes(sender));
  if (BigInt(sequence)) parts.push(varint(4 << 3), varint(sequence));
  bytes(5, hexToBytes(group));
  bytes(6, hexToBytes(signature));
  return concat(parts);
}

/** The envelope in `data`, in the form envelope-vectors.mjs takes (hex fields, decimal sequence). */
function decodeEnvelope(data) {
  const envelope = { type: '', payload: '0x', sender: '0x', sequence: '0', group: '0x', signature: '0x' };
  let at = 0;
  const readVarint = () => {
    let value = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (at >= data.length) throw new Error('truncated varint');
      const byte = data[at++];
      value |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return value;
    }
  };
  while (at < data.length) {
    const key = Number(readVarint());
    const field = FIELDS[key >> 3];
    const wire = key & 7;
    if (wire === 0) {
      const value = readVarint();
      if (field === 'sequence') envelope.sequence = value.toString();
    } else if (wire === 2) {
      const length = Number(readVarint());
      if (at + length > data.length) throw new Error('truncated field');
      const value = data.subarray(at, at + length);
      at += length;
      if (field === 'type') envelope.type = new TextDecoder().decode(value);
      else if (field) envelope[field] = bytesToHex(value);
    } else if (wire === 1 || wire === 5) {
      at += wire === 1 ? 8 : 4;
    } else {
      throw new Error(`wire type ${wire}`);
    }
  }
  return envelope;
}

/** A `net.Text` envelope of `text` by `privateKey` for `topic`, as signature.rs makes them. */
async function signedText(privateKey, topic, text, sequence) {
  const envelope = { type: TEXT, payload: toHex(stringToBytes(text)), group: '0x', sequence: String(sequence),
    sender: privateKeyToAccount(privateKey).address };
  const { r, s, yParity } = await sign({ hash: signingHash(topic, envelope), privateKey, to: 'object' });
  envelope.signature = concat([r, s, toHex(yParity, { size: 1 })]);
  return envelope;
}

// --- The parties --------------------------------------------------------------------------------

/**
 * Collects values as they come; `seen(pick, ms)` resolves with the first one (already here or
 * to come) that `pick` accepts, or null after `ms`.
 */
function inbox() {
  const values = [];
  const waiters = new Set();
  return {
    values,
    push(value) {
      values.push(value);
      for (const w of [...waiters]) {
        if (w.pick(value)) {
          waiters.delete(w);
          clearTimeout(w.timer);
          w.resolve(value);
        }
      }
    },
    seen(pick, ms) {
      const found = values.find(pick);
      if (found || ms <= 0) return Promise.resolve(found ?? null);
      return new Promise((resolve) => {
        const w = { pick, resolve };
        w.timer = setTimeout(() => {
          waiters.delete(w);
          resolve(null);
        }, ms);
        waiters.add(w);
      });
    },
  };
}

/** `keep-light node` with its stdin kept for `publish` lines (processes.mjs ignores stdin). */
/**
 * A JSON line whose integers past 2^53 are kept exact, as decimal strings: Node 20's JSON.parse
 * would round them (the page's shell gets BigInts; its browser has JSON.parse's source text).
 */
function parseExact(line) {
  return JSON.parse(line.replace(/([:[,])(-?\d{16,})(?=[,}\]])/g, '$1"$2"'));
}

function startNative(args) {
  const child = spawn(bin, ['node', ...args], { stdio: ['pipe', 'pipe', 'ignore'] });
  const events = inbox();
  createInterface({ input: child.stdout }).on('line', (line) => events.push(parseExact(line)));
  return { child, events, send: (line) => child.stdin.write(`${line}\n`) };
}

/** A js-libp2p node with wire v1's pubsub settings; received pubsub messages land in `messages`. */
async function startJsNode(topic) {
  const node = await createLibp2p({
    privateKey: await generateKeyPair('secp256k1'),
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      pubsub: gossipsub({
        // Anonymous: no from, seqno, signature or key; the envelope carries its own signature.
        globalSignaturePolicy: 'StrictNoSign',
        // Content-addressed ids, as src/net/pubsub.rs: one message however many relays bring it.
        msgIdFn: (message) => createHash('sha256').update(message.data).digest().subarray(0, 20),
        // Early attempts go out before the relay's subscription is known; the loop repeats them.
        allowPublishToZeroTopicPeers: true,
      }),
    },
  });
  const messages = inbox();
  node.services.pubsub.addEventListener('message', (e) => {
    if (e.detail.topic === topic) messages.push(e.detail);
  });
  node.services.pubsub.subscribe(topic);
  return { node, messages };
}

/**
 * Repeats `publish(attempt)` (errors before the mesh forms are expected) until `arrived(ms)`
 * finds a message; fails after 30 s naming `what`.
 */
async function publishUntil(what, publish, arrived) {
  const deadline = Date.now() + WAIT_MS;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    await publish(attempt).catch(() => {});
    const got = await arrived(500);
    if (got) return got;
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('a js-libp2p node exchanges signed wire-v1 envelopes with a native member and a tab through the relay', async (t) => {
  assert.ok(bin && url, 'run through scripts/test.sh (settings missing)');
  const topic = `keep-light/jslibp2p/${process.pid}`;
  const jsKey = `0x${'1b'.repeat(32)}`;
  const jsAddress = privateKeyToAccount(jsKey).address;
  const nativeKey = `0x${'1c'.repeat(32)}`;
  const nativeAddress = JSON.parse(execFileSync(bin, ['id', '--key-hex', nativeKey], { encoding: 'utf8' })).address;

  const relay = await startRelay();
  const native = startNative(['--bootstrap', relay.ws, '--key-hex', nativeKey, '--join', topic]);
  const browser = await launchChromium();
  let js;
  try {
    js = await startJsNode(topic);
    const jsPeer = js.node.peerId.toString();
    await js.node.dial(multiaddr(relay.ws), { signal: AbortSignal.timeout(WAIT_MS) });
    const tab = await startTab(browser, pageWithoutNode(url), { bootstrap: [relay.ws], topics: [topic] });
    const tabAddress = await tab.page.evaluate(() => window.tab.node.address);
    assert.ok(await native.events.seen((e) => e.event === 'subscribed' && e.topic === topic, WAIT_MS),
      'the native member never joined');

    // What the js node sent, by text: a receiver's report is checked against it.
    // Sequences past 2^53, the largest integer a JS number holds exactly: every receiver must
    // report them exactly (the tab's events as BigInt).
    const sent = new Map();
    let sequence = 2n ** 60n;
    const publishFromJs = async (text, broken = false) => {
      sequence += 1n;
      const envelope = await signedText(jsKey, topic, text, sequence);
      if (broken) {
        const signature = hexToBytes(envelope.signature);
        signature[10] ^= 0x01;
        envelope.signature = toHex(signature);
      }
      sent.set(text, envelope);
      await js.node.services.pubsub.publish(topic, encodeEnvelope(envelope));
    };
    // A keep-light receiver's `message` report of a text from the js node.
    const checkReport = (report) => {
      const envelope = sent.get(report.data);
      assert.ok(envelope, `a text the js node did not send: ${JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`);
      assert.equal(report.sender, jsAddress);
      assert.equal(report.from, relay.peer, 'forwarded by the relay');
      assert.equal(report.type, TEXT);
      assert.equal(BigInt(report.sequence), BigInt(envelope.sequence));
      assert.equal(report.topic, topic);
    };
    // An envelope the js node received: decoded, its signature checked here, by `address`, with
    // a text `prefix<attempt>`.
    const checkReceived = async (message, address, prefix) => {
      assert.equal(message.type, 'unsigned', 'anonymous pubsub carries no libp2p signature');
      const envelope = decodeEnvelope(message.data);
      assert.equal(await verify(topic, envelope), null, `signature of ${JSON.stringify(envelope)}`);
      assert.equal(getAddress(envelope.sender), address);
      assert.equal(envelope.type, TEXT);
      assert.equal(envelope.group, '0x');
      assert.match(new TextDecoder().decode(hexToBytes(envelope.payload)), new RegExp(`^${prefix}\\d+$`));
    };
    const nativeMessage = (prefix) => (e) => e.event === 'message' && e.topic === topic && e.data.startsWith(prefix);
    const textOf = (m) => new TextDecoder().decode(hexToBytes(decodeEnvelope(m.data).payload));
    const jsGot = (prefix) => (m) => textOf(m).startsWith(prefix);
    // The tab's first event `pick(event, arg)` accepts (`pick` runs in the page), or null after `ms`.
    const tabSeen = (pick, arg, ms) => tab.page.waitForFunction(({ source, arg }) => {
      const accept = new Function(`return ${source}`)();
      return window.tab.events.find((e) => accept(e, arg));
    }, { source: pick.toString(), arg }, { timeout: ms }).then((h) => h.jsonValue(), () => null);
    // Whether the tab has such an event now.
    const tabHas = (pick, arg) => tab.page.evaluate(({ source, arg }) => {
      const accept = new Function(`return ${source}`)();
      return window.tab.events.some((e) => accept(e, arg));
    }, { source: pick.toString(), arg });
    const tabMessage = (e, [topic, prefix]) => e.event === 'message' && e.topic === topic && e.data.startsWith(prefix);

    await t.test('the native member receives the js node\'s envelope and names its author', async () => {
      const report = await publishUntil('the js text at the native member',
        (i) => publishFromJs(`js-to-native-${i}`), (ms) => native.events.seen(nativeMessage('js-to-native-'), ms));
      checkReport(report);
    });

    await t.test('the js node receives the native member\'s envelope and verifies its signature', async () => {
      const message = await publishUntil('the native text at the js node',
        async (i) => native.send(`publish ${topic} native-to-js-${i}`), (ms) => js.messages.seen(jsGot('native-to-js-'), ms));
      await checkReceived(message, nativeAddress, 'native-to-js-');
    });

    await t.test('the tab receives the js node\'s envelope and names its author', async () => {
      const report = await publishUntil('the js text in the tab',
        (i) => publishFromJs(`js-to-tab-${i}`), (ms) => tabSeen(tabMessage, [topic, 'js-to-tab-'], ms));
      checkReport(report);
      assert.equal(typeof report.sequence, 'bigint', 'a u64 past 2^53 reaches the page as a BigInt');
    });

    await t.test('the js node receives the tab\'s envelope and verifies its signature', async () => {
      const message = await publishUntil('the tab text at the js node',
        (i) => tab.page.evaluate(([topic, text]) => window.tab.node.publish(topic, text), [topic, `tab-to-js-${i}`]),
        (ms) => js.messages.seen(jsGot('tab-to-js-'), ms));
      await checkReceived(message, tabAddress, 'tab-to-js-');
    });

    await t.test('an envelope with a broken signature is rejected by the relay, its js forwarder banned, and never delivered', async () => {
      await publishFromJs('forged', true);
      // The relay prints its bans, not its rejections (those go to its log).
      const banned = await relay.next((e) => e.event === 'banned' && e.peer === jsPeer, 'the relay banning the js peer');
      assert.equal(banned.reason, 'bad_signature');
      // The js node reaches the others only through the relay, which judges a message before
      // forwarding it: texts the native member and the tab send each other after the verdict
      // arrive behind anything the relay could have passed on.
      assert.ok(await publishUntil('the native text in the tab',
        async (i) => native.send(`publish ${topic} after-native-${i}`), (ms) => tabSeen(tabMessage, [topic, 'after-native-'], ms)));
      assert.ok(await publishUntil('the tab text at the native member',
        (i) => tab.page.evaluate(([topic, text]) => window.tab.node.publish(topic, text), [topic, `after-tab-${i}`]),
        (ms) => native.events.seen(nativeMessage('after-tab-'), ms)));
      assert.equal(await native.events.seen((e) => e.event === 'message' && e.data === 'forged', 0), null);
      assert.equal(await tabHas(tabMessage, [topic, 'forged']), false);
      // Nor did it reach them to be rejected there.
      assert.equal(await native.events.seen((e) => e.event === 'rejected', 0), null);
      assert.equal(await tabHas((e) => e.event === 'rejected', null), false);
    });
    assert.deepEqual(tab.errors, []);
  } finally {
    // `keep-light node` outlives SIGTERM while its stdin is open (the runtime waits for the
    // pending stdin read on shutdown), so its stdin is closed as well.
    native.child.stdin.end();
    native.child.kill();
    relay.child.kill();
    await js?.node.stop().catch(() => {});
    await browser.close();
  }
});

// The demo page: connect to the relays given in the URL (?relay=MULTIADDR[&relay=…]&topic=NAME),
// show connection status (how many relays, over which transports) and the topic's messages live,
// and send text. Identity: the page's
// persisted session key; "Connect wallet" has an EIP-1193 wallet (window.ethereum) delegate to
// it; "Use keystore" runs as the operator key of a V3 keystore file (decrypted in a worker).
import { KeepLight } from './keep-light.js';

const params = new URLSearchParams(location.search);
const relays = params.getAll('relay');
const topic = params.get('topic') ?? 'keep-light/demo/1';
const $ = (id) => document.getElementById(id);
let node;

function log(line) {
  $('log').textContent += `${new Date().toISOString().slice(11, 23)} ${line}\n`;
}

function setStatus(text, cls) {
  $('status').textContent = text;
  $('status').className = cls;
}

function showMessage(from, text, mine = false) {
  const li = document.createElement('li');
  const who = document.createElement('div');
  who.className = 'from';
  who.textContent = mine ? 'you' : from;
  const body = document.createElement('div');
  body.textContent = text;
  li.append(who, body);
  $('messages').prepend(li);
}

/** (Re)starts the node with this identity; the previous one is closed first. */
async function start(keyHex, attestation) {
  if (node) await node.close();
  setStatus('connecting', '');
  node = await KeepLight.connect({ bootstrap: relays, topics: [topic], keyHex, attestation });
  $('peer').textContent = node.peerId;
  $('address').textContent = node.address;
  node.addEventListener('event', (e) => log(JSON.stringify(e.detail)));
  // `health` follows the relays: how many are connected, of the target, over which transports.
  node.addEventListener('health', ({ detail }) => {
    const transports = Object.entries(detail.transports)
      .map(([name, n]) => (n > 1 ? `${n} × ${name}` : name)).join(', ');
    $('relays').textContent = `${detail.relays} of ${detail.target} (${detail.state})${transports ? `: ${transports}` : ''}`;
    if (detail.relays > 0) {
      setStatus('connected', 'connected');
      $('text').disabled = $('button').disabled = false;
    } else {
      setStatus('disconnected, retrying', 'disconnected');
    }
  });
  node.addEventListener('dial_failed', (e) =>
    setStatus(`cannot reach relay, retry in ${e.detail.retry_in_ms} ms`, 'disconnected'));
  node.addEventListener('attestation_acknowledged', (e) => {
    $('identity').dataset.relayVerdict = e.detail.accepted ? 'accepted' : e.detail.reason;
    $('identity').textContent += e.detail.accepted
      ? ' — accepted by the relay' : ` — refused by the relay (${e.detail.reason})`;
  });
  node.addEventListener('message', (e) => showMessage(e.detail.sender, e.detail.data));
  window.keepLight = node; // for the console and page tests
}

async function main() {
  $('relay').textContent = relays.length ? relays.join('\n') : '(none: add ?relay=MULTIADDR to the URL)';
  $('topic').textContent = topic;
  if (!relays.length) {
    setStatus('no relay', 'disconnected');
    return;
  }
  const sessionKey = await KeepLight.sessionKey();
  await start(sessionKey);

  $('wallet').disabled = !window.ethereum;
  $('wallet').addEventListener('click', async () => {
    try {
      const attestation = await KeepLight.requestAttestation(window.ethereum, { sessionKey });
      const operator = attestation.message.split('\n')[1];
      $('identity').textContent = `${operator} (wallet, delegated to this session)`;
      $('identity').dataset.operator = operator;
      await start(sessionKey, attestation);
    } catch (err) {
      $('identity').textContent = `wallet failed: ${err.message}`;
    }
  });

  $('keystore-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const file = $('keystore-file').files[0];
    if (!file) return;
    $('identity').textContent = 'decrypting keystore…';
    try {
      const key = await KeepLight.decryptKeystore(await file.text(), $('keystore-password').value);
      $('identity').textContent = `${key.address} (keystore)`;
      $('identity').dataset.operator = key.address;
      await start(key.secret);
    } catch (err) {
      $('identity').textContent = `keystore refused: ${err.message}`;
    }
  });

  $('send').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = $('text').value;
    if (!text) return;
    try {
      await node.publish(topic, text);
      showMessage(node.address, text, true);
      $('text').value = '';
    } catch (err) {
      log(`publish failed: ${err.message}`);
      setStatus(`send failed: ${err.message}`, 'disconnected');
    }
  });
}

main().catch((err) => {
  setStatus(`error: ${err.message ?? err}`, 'disconnected');
  log(String(err?.stack ?? err));
});

// The first demo page: connect to the relay given in the URL (?relay=MULTIADDR&topic=NAME),
// show connection status and the topic's messages live, and send text.
import { KeepLight } from './keep-light.js';

const params = new URLSearchParams(location.search);
const relay = params.get('relay');
const topic = params.get('topic') ?? 'keep-light/demo/1';
const $ = (id) => document.getElementById(id);
let connectedPeers = 0;

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

async function main() {
  $('relay').textContent = relay ?? '(none: add ?relay=MULTIADDR to the URL)';
  $('topic').textContent = topic;
  if (!relay) {
    setStatus('no relay', 'disconnected');
    return;
  }
  const node = await KeepLight.connect({ bootstrap: [relay], topics: [topic] });
  $('peer').textContent = node.peerId;
  $('address').textContent = node.address;
  node.addEventListener('event', (e) => log(JSON.stringify(e.detail)));
  node.addEventListener('connected', () => {
    connectedPeers += 1;
    setStatus('connected', 'connected');
    $('text').disabled = $('button').disabled = false;
  });
  node.addEventListener('disconnected', () => {
    connectedPeers -= 1;
    if (connectedPeers === 0) setStatus('disconnected, retrying', 'disconnected');
  });
  node.addEventListener('dial_failed', (e) =>
    setStatus(`cannot reach relay, retry in ${e.detail.retry_in_ms} ms`, 'disconnected'));
  node.addEventListener('message', (e) => showMessage(e.detail.sender, e.detail.data));
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
  window.keepLight = node; // for the console and page tests
}

main().catch((err) => {
  setStatus(`error: ${err.message ?? err}`, 'disconnected');
  log(String(err?.stack ?? err));
});

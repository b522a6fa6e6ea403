// The node in a dedicated Worker (KeepLight.connect({worker: true})): the wasm node runs here,
// off the page's main thread, over WebSocket (a worker has no RTCPeerConnection). The page's
// side (WorkerClient in keep-light.js) posts calls and gets back replies and events.
//
// Messages from the page: {type: 'start', args, storage, verifiers}, then
// {type: 'call', id, method, args}. To the page: {type: 'reply', id, value} or
// {type: 'reply', id, error: {name, message}}; {type: 'crash', message} when the module
// panics; {type: 'batch', list, verifierStats}, where
// list holds, in the order they happened, node events (a JSON string each) and group channels'
// messages ([channel, json]); and {type: 'store', key, value} for each write to the stand-in
// storage, which the page keeps in its localStorage.
//
// What happens in one worker task goes to the page in one post: under a burst a post per
// message costs the main thread as much as the message itself.
import init, { KeepClient, onPanic, useVerifierWorkers } from '../pkg/keep_light.js';
import { VerifierPool } from './verifier-pool.js';

let client;
const channels = new Map();
let nextChannel = 1;
let pool;
let pending = [];
let flushing = false;
// A task of its own, not setTimeout(0): nested timers are clamped to 4 ms, which a group's
// round trip would feel.
const flushes = new MessageChannel();
flushes.port1.onmessage = () => {
  const list = pending;
  pending = [];
  flushing = false;
  self.postMessage({ type: 'batch', list, verifierStats: pool && { workers: pool.size, ...pool.stats } });
};

function flushSoon() {
  if (!flushing) flushes.port2.postMessage(null);
  flushing = true;
}

function queue(item) {
  pending.push(item);
  flushSoon();
}

function reply(id, promise) {
  Promise.resolve(promise).then(
    (value) => self.postMessage({ type: 'reply', id, value }),
    (err) => self.postMessage({ type: 'reply', id,
      error: { name: err?.name ?? 'Error', message: String(err?.message ?? err) } }),
  );
}

const calls = {
  async start({ args, storage, verifiers }) {
    // What the page had in localStorage for the node (its good relays, a member's shares);
    // writes go back to the page.
    const kept = new Map(Object.entries(storage));
    self.keepLightStorage = {
      getItem: (key) => (kept.has(key) ? kept.get(key) : null),
      setItem: (key, value) => {
        kept.set(key, String(value));
        self.postMessage({ type: 'store', key, value: String(value) });
      },
    };
    await init();
    // Before the module aborts: the page fails this node with the panic's message.
    onPanic((message) => self.postMessage({ type: 'crash', message }));
    if (verifiers > 0) {
      pool = new VerifierPool(verifiers);
      // The page's KeepLight.verifierStats() counts this pool too: it gets the stats with the
      // next batch, also after a check that delivered nothing.
      useVerifierWorkers((requests) => pool.run(requests).finally(flushSoon), pool.size);
    } else {
      useVerifierWorkers(null, 0);
    }
    client = await KeepClient.start(...args);
    client.onEvent(queue);
    return { peerId: client.peerId, address: client.address };
  },
  requestEntry: () => client.requestEntry(),
  dial: (address) => client.dial(address),
  publish: (topic, text) => client.publish(topic, text),
  publishBytes: (topic, bytes) => client.publishBytes(topic, bytes),
  join: (topic) => client.join(topic),
  leave: (topic) => client.leave(topic),
  shutdown: () => client.shutdown(),
  async openGroup(members) {
    const channel = nextChannel++;
    const opened = await client.openGroup(members, (json) => queue([channel, json]));
    channels.set(channel, opened);
    return { channel, topic: opened.topic };
  },
  groupSend: (channel, text) => channels.get(channel)?.send(text),
  groupClose: (channel) => {
    channels.get(channel)?.close();
    channels.delete(channel);
  },
};

self.onmessage = ({ data }) => {
  if (data.type === 'start') reply(0, calls.start(data));
  else if (data.type === 'call') {
    const call = calls[data.method];
    reply(data.id, call ? Promise.resolve().then(() => call(...data.args))
      : Promise.reject(new Error(`no such call ${data.method}`)));
  }
};

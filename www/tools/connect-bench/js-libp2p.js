// js-libp2p with the transports and protocols a keep-light tab uses over WebSocket (noise,
// yamux, identify, gossipsub without libp2p signatures), timed from createLibp2p to the
// relay's connection, as keep-light.html times KeepLight.connect.
import { createLibp2p } from 'libp2p';
import { webSockets } from '@libp2p/websockets';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { gossipsub } from '@libp2p/gossipsub';
import { multiaddr } from '@multiformats/multiaddr';

const relay = new URLSearchParams(location.search).get('relay');
const started = performance.now();
const node = await createLibp2p({
  transports: [webSockets()],
  // In a browser js-libp2p refuses private addresses by default; the relay is on loopback.
  connectionGater: { denyDialMultiaddr: () => false },
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    pubsub: gossipsub({ globalSignaturePolicy: 'StrictNoSign' }),
  },
});
const returned = performance.now();
await node.dial(multiaddr(relay));
const connected = performance.now();
window.result = {
  load_ms: 0,
  connect_ms: connected - started,
  returned_ms: returned - started,
  page_to_connect_ms: connected,
};

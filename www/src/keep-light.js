// keep-light JS shell: loads the wasm node once and wraps it in a small, typed-by-JSDoc API.
//
// Usage:
//   import { KeepLight } from './src/keep-light.js';
//   const node = await KeepLight.connect({ bootstrap: ['/ip4/127.0.0.1/tcp/4001/ws/p2p/16Uiu2…'],
//                                          topics: ['keep-light/demo/1'] });
//   node.addEventListener('message', (e) => console.log(e.detail.sender, e.detail.data));
//   await node.publish('keep-light/demo/1', 'hello');
//
// Identity (DESIGN.md section 3):
//   const key = await KeepLight.sessionKey();                  // persisted in localStorage
//   const attestation = await KeepLight.requestAttestation(window.ethereum, { sessionKey: key });
//   const node = await KeepLight.connect({ bootstrap, topics, keyHex: key, attestation });
//   // or an operator key from a keystore file, decrypted in a Web Worker:
//   const { secret } = await KeepLight.decryptKeystore(jsonText, password);
//
// A beacon member (DESIGN.md sections 3 and 5): with `member: true` and the chain's JSON-RPC URL
// the tab enrols (registers its attested session key, or is staked by a dev chain's faucet),
// then is selected into groups, runs their DKGs and signs entries in the page:
//   const node = await KeepLight.connect({ bootstrap, chain: rpcUrl, member: true,
//                                          keyHex: key, attestation });
//   node.addEventListener('dkg', (e) => console.log(e.detail.event, e.detail.phase));
//   node.addEventListener('entry', (e) => console.log(e.detail.random));
//
// Contract:
// - Events are the objects the CLI prints (`{event: 'connected', peer}` …). Each is dispatched
//   twice: as its own type ('connected', 'message', …) and as 'event'; the member's DKG events
//   ('dkgJoined', 'dkgPhase', 'dkgFinished', 'dkgTimedOut') also as 'dkg'. None is lost before the
//   first listener: the node buffers them, and delivery starts in the microtask after the first
//   addEventListener call, so listeners added in the same turn see every event.
// - Listeners must not block; the node's event loop shares the page's thread.
// - Errors from the node reject the returned promises with an Error whose message says why.

import init, {
  KeepClient, requestAttestation, sessionKey, useVerifierWorkers,
} from '../pkg/keep_light.js';
import { VerifierPool } from './verifier-pool.js';

let wasmReady;
/** The page's signature verifiers, shared by its nodes (made on the first connect that wants them). */
let verifierPool;

/** Workers by default: one per core but the main thread's, from 1 to 4. */
function defaultVerifiers() {
  return Math.max(1, Math.min(4, (navigator.hardwareConcurrency ?? 2) - 1));
}

/** Loads and instantiates the wasm module once per page. */
export function loadWasm() {
  wasmReady ??= init();
  return wasmReady;
}

export class KeepLight extends EventTarget {
  #client;
  #pumping = false;

  /**
   * Starts a node and dials the bootstrap relays.
   * @param {{bootstrap: string[], topics?: string[], keyHex?: string,
   *          attestation?: {message: string, signature: string},
   *          router?: 'gossipsub' | 'floodsub', reachable?: boolean,
   *          firewall?: 'open' | 'attested' | 'staked', chain?: string,
   *          member?: boolean, verifiers?: number}} options
   *   `attestation` (from requestAttestation) is sent to every peer right after connecting;
   *   `router` must be the network's pubsub routing (default gossipsub); with `reachable` the
   *   tab listens through its relays (circuit relay v2) and announces each
   *   `…/p2p-circuit/p2p/<peer>` address in a 'listening' event, for other tabs to `dial`.
   *   `firewall` decides who may stay connected to the tab (default open; the bootstrap relays
   *   always may): `attested` peers, or `staked` ones whose operator the chain at the JSON-RPC
   *   URL `chain` recognises ('operator_checked' events; the others are 'banned').
   *   With `member`, the tab serves as a beacon member of that chain (connect rejects when the
   *   chain refuses to enrol it); its key shares stay in localStorage under the session key,
   *   so a reload with the same `keyHex` still serves its groups.
   *   Received envelopes' signatures are checked in `verifiers` Web Workers (default: one per
   *   core but one, 1 to 4, shared by the page's nodes; 0: on the main thread).
   * @returns {Promise<KeepLight>}
   */
  static async connect({ bootstrap, topics = [], keyHex, attestation, router, reachable,
    firewall, chain, member = false, verifiers = defaultVerifiers() } = {}) {
    await loadWasm();
    if (verifiers > 0) {
      verifierPool ??= new VerifierPool(verifiers);
      useVerifierWorkers((requests) => verifierPool.run(requests), verifierPool.size);
    } else {
      useVerifierWorkers(null, 0);
    }
    const client = await KeepClient.start(bootstrap ?? [], topics, keyHex,
      attestation ? JSON.stringify(attestation) : undefined, router, reachable, firewall, chain,
      member);
    return new KeepLight(client);
  }

  /**
   * What the page's verifier workers did so far: `{workers, batches, signatures, busyMs,
   * failures}` (all 0 before a node used them).
   */
  static verifierStats() {
    return { workers: verifierPool?.size ?? 0, ...(verifierPool?.stats ?? {
      batches: 0, signatures: 0, busyMs: 0, failures: 0 }) };
  }

  /**
   * The size of the wasm module's memory in bytes (it only grows): what the page's nodes hold
   * at their peak, for a memory budget.
   * @returns {Promise<number>}
   */
  static async memoryBytes() {
    return (await loadWasm()).memory.buffer.byteLength;
  }

  /**
   * The page's session key (hex secret), made and saved in localStorage on first use.
   * @returns {Promise<string>}
   */
  static async sessionKey() {
    await loadWasm();
    return sessionKey();
  }

  /**
   * Asks an EIP-1193 wallet (`window.ethereum`, or any `{request}` object) to delegate its
   * operator identity to the session key: eth_requestAccounts, eth_chainId, then personal_sign
   * of a Sign-In with Ethereum message naming the session key's peer ID.
   * @param {{request: (args: {method: string, params?: unknown[]}) => Promise<unknown>}} provider
   * @param {{sessionKey?: string, domain?: string, ttlSeconds?: number}} [options]
   * @returns {Promise<{message: string, signature: string}>} the verified attestation
   */
  static async requestAttestation(provider, { sessionKey: key, domain = location.host,
    ttlSeconds = 3600 } = {}) {
    await loadWasm();
    key ??= sessionKey();
    return JSON.parse(await requestAttestation(provider, key, domain, ttlSeconds));
  }

  /**
   * Decrypts an Ethereum V3 keystore (geth, ethers, MetaMask) in a Web Worker, so scrypt's
   * second or so of work never freezes the page.
   * @param {string} json the keystore file's text
   * @param {string} password
   * @returns {Promise<{secret: string, address: string, peer_id: string}>}
   */
  static decryptKeystore(json, password) {
    return new Promise((resolve, reject) => {
      const worker = new Worker(new URL('./keystore-worker.js', import.meta.url), { type: 'module' });
      const done = () => worker.terminate();
      worker.onmessage = ({ data }) => {
        done();
        if (data.error) reject(new Error(data.error));
        else resolve(data.key);
      };
      worker.onerror = (event) => {
        done();
        reject(new Error(event.message || 'keystore worker failed'));
      };
      worker.postMessage({ json, password });
    });
  }

  constructor(client) {
    super();
    this.#client = client;
  }

  addEventListener(type, listener, options) {
    super.addEventListener(type, listener, options);
    if (!this.#pumping) {
      this.#pumping = true;
      queueMicrotask(() =>
        this.#client.onEvent((json) => {
          const detail = JSON.parse(json);
          this.dispatchEvent(new CustomEvent(detail.event, { detail }));
          if (detail.event.startsWith('dkg')) this.dispatchEvent(new CustomEvent('dkg', { detail }));
          this.dispatchEvent(new CustomEvent('event', { detail }));
        }),
      );
    }
  }

  /** @returns {string} the node's peer ID (`16Uiu2…`). */
  get peerId() {
    return this.#client.peerId;
  }

  /** @returns {string} the node's operator address (EIP-55). */
  get address() {
    return this.#client.address;
  }

  /**
   * Dials a peer's address, e.g. another tab's circuit address; a 'connected' event follows.
   * @param {string} address
   */
  dial(address) {
    return this.#client.dial(address);
  }

  /**
   * Publishes text (or bytes) on a topic. Rejects when no peer is in the topic yet.
   * @param {string} topic
   * @param {string | Uint8Array} data
   */
  publish(topic, data) {
    return typeof data === 'string'
      ? this.#client.publish(topic, data)
      : this.#client.publishBytes(topic, data);
  }

  /**
   * Joins the group channel of `members` (every operator address, this node's included) and
   * calls `onMessage({topic, from, sender, sequence, text})` once for each text a member sends
   * (`sender`: the member whose signature the envelope carries; `from`: the peer that
   * forwarded it, often a relay).
   * @param {string[]} members
   * @param {(message: {topic: string, from: string, sender: string, sequence: number,
   *          text: string}) => void} onMessage
   * @returns {Promise<{topic: string, send: (text: string) => void, close: () => void}>}
   *   `send` republishes with backoff until `close`.
   */
  openGroup(members, onMessage) {
    return this.#client.openGroup(members, (json) => onMessage(JSON.parse(json)));
  }

  /** @param {string} topic */
  join(topic) {
    this.#client.join(topic);
  }

  /** @param {string} topic */
  leave(topic) {
    this.#client.leave(topic);
  }

  /** Closes every connection and stops the node. */
  close() {
    return this.#client.shutdown();
  }
}

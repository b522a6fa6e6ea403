// keep-light JS shell: loads the wasm node once and wraps it in a small, typed-by-JSDoc API.
//
// Usage:
//   import { KeepLight } from './src/keep-light.js';
//   const node = await KeepLight.connect({ bootstrap: ['/ip4/127.0.0.1/tcp/4001/ws/p2p/16Uiu2…'],
//                                          topics: ['keep-light/demo/1'] });
//   node.addEventListener('message', (e) => console.log(e.detail.from, e.detail.data));
//   await node.publish('keep-light/demo/1', 'hello');
//
// Contract:
// - Events are the objects the CLI prints (`{event: 'connected', peer}` …). Each is dispatched
//   twice: as its own type ('connected', 'message', …) and as 'event'. None is lost before the
//   first listener: the node buffers them, and delivery starts in the microtask after the first
//   addEventListener call, so listeners added in the same turn see every event.
// - Listeners must not block; the node's event loop shares the page's thread.
// - Errors from the node reject the returned promises with an Error whose message says why.

import init, { KeepClient } from '../pkg/keep_light.js';

let wasmReady;

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
   * @param {{bootstrap: string[], topics?: string[], keyHex?: string}} options
   * @returns {Promise<KeepLight>}
   */
  static async connect({ bootstrap, topics = [], keyHex } = {}) {
    await loadWasm();
    const client = await KeepClient.start(bootstrap ?? [], topics, keyHex);
    return new KeepLight(client);
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
   * Publishes text (or bytes) on a topic. Rejects when no peer is in the topic yet.
   * @param {string} topic
   * @param {string | Uint8Array} data
   */
  publish(topic, data) {
    return typeof data === 'string'
      ? this.#client.publish(topic, data)
      : this.#client.publishBytes(topic, data);
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

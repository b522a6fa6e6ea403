// keep-light: a beacon light client in the page. Loads the wasm node once and wraps it in the
// package's API (DESIGN.md section 9; types in keep-light.d.ts).
//
//   import { KeepLight } from 'keep-light';
//   const [wallet] = await KeepLight.wallets();                   // EIP-6963, or window.ethereum
//   const client = await KeepLight.connect({ bootstrap: [relayAddress], chain: rpcUrl,
//                                            identity: { wallet: wallet.provider }, member: true });
//   client.addEventListener('entry', (e) => console.log(e.detail.random, e.detail.verified));
//   const entry = await client.requestEntry();                    // resolves once on chain
//
// Identity (DESIGN.md section 3): `{wallet}` has an EIP-1193 wallet delegate its operator to
// the page's session key (a SIWE signature); `{keystore, password}` decrypts a V3 keystore in a
// Web Worker; `{keyHex}` is a key as it is. Without one, the page's session key acts alone.
//
// Events (EventTarget, and `for await (const e of client.events())`): every detail is an object
// whose `event` names it, keys in camelCase. The node's own: `connected`, `disconnected`,
// `health` (relays, over which transports), `dialFailed`, `listening`, `banned`, `unbanned`,
// `message`, `peerSubscribed`, `attestationAcknowledged`, `operatorChecked` …; derived here:
// `status` (`{state: 'connecting' | 'connected' | 'disconnected', relays, target}`) and `peer`
// (`{peer, connected}`); with `chain`: `block`, `entry` (every entry on chain, `verified` in
// this tab), `error` (`{source: 'chain', error}`, then `chainBack`); with `member`: `group`,
// `dkgJoined`, `dkgPhase`, `dkgFinished`, `dkgTimedOut` (all four also as `dkg`),
// `groupEntry`, `groupHealth`, `misbehaved`, `refused`, `submissionRefused`, `groupEnded`.
// None is lost before the first listener: the node buffers them, and delivery starts in the
// microtask after the first addEventListener or events() call. Listeners must not block: the
// node's event loop shares the page's thread.
//
// Worker mode (`worker: true`): the node runs in a dedicated Worker (node-worker.js) over
// WebSocket relays only (WebRTC needs the page); the same API and events, the page's main
// thread left to the page. Its localStorage entries are handed to the worker and written back.
//
// Numbers: a u64 past 2^53 arrives as a BigInt, never rounded (the others stay numbers).
//
// Speed: call loadWasm() as the page opens. The module then warms up in idle time (warmUp:
// V8 compiles wasm lazily), and a later connect reaches its relay in about 20 ms, not 70.
//
// Errors: promises reject with a KeepLightError subclass carrying a `code`. A Rust panic, in a
// call or in the node's own tasks, fails the node at once: one `error` event (`source:
// 'crash'`), events() iterators end, and every later call rejects with that same CrashError.
// On the main thread a panic poisons the page's module, so it fails all the page's nodes
// there (and later connects); a Worker node (worker: true) fails alone.

import init, {
  KeepClient, onPanic, requestAttestation, sessionKey, useVerifierWorkers, warmUp as warmUpModule,
} from '../pkg/keep_light.js';
import { VerifierPool } from './verifier-pool.js';

/** Every error the package raises; `code` says which. */
export class KeepLightError extends Error {
  /** @param {string} message @param {string} [code] @param {unknown} [cause] */
  constructor(message, code = 'keep_light', cause = undefined) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.code = code;
  }
}
/** The wallet's user refused (EIP-1193 code 4001). */
export class WalletRejectedError extends KeepLightError {
  constructor(message, cause) { super(message, 'wallet_rejected', cause); }
}
/** No relay to dial, or none could be reached. */
export class NoRelayError extends KeepLightError {
  constructor(message, cause) { super(message, 'no_relay', cause); }
}
/** The chain refused a call, answered garbage, or could not be reached. */
export class ChainError extends KeepLightError {
  constructor(message, cause) { super(message, 'chain', cause); }
}
/** The node cannot take more now (a full queue); try again later. */
export class QueueFullError extends KeepLightError {
  constructor(message, cause) { super(message, 'queue_full', cause); }
}
/** The wasm node panicked; the client is dead and refuses every later call. */
export class CrashError extends KeepLightError {
  constructor(message, cause) { super(message, 'crash', cause); }
}

/** The error a panic with `message` (Rust's panic text, or the trap's) becomes. */
function panicked(message, cause) {
  return new CrashError(`the keep-light node crashed: ${message}`, cause);
}

/** Maps an error from the wasm side (or a wallet) to the package's classes. */
function classify(err) {
  if (err instanceof KeepLightError) return err;
  const message = String(err?.message ?? err);
  if (err instanceof WebAssembly.RuntimeError || /unreachable|RuntimeError/.test(err?.name ?? '')) {
    return panicked(message, err);
  }
  if (err?.code === 4001 || /^wallet \S+ \(4001\)/.test(message)) {
    return new WalletRejectedError(message, err);
  }
  if (/^chain|chain (unreachable|answered|refused)/.test(message)) return new ChainError(message, err);
  if (/queues? (is |are )?full|back-pressure/i.test(message)) return new QueueFullError(message, err);
  return new KeepLightError(message, 'keep_light', err);
}

/**
 * JSON from the node, where a u64 past 2^53 (a block number, a sequence, a stake) becomes a
 * BigInt instead of a rounded number: the reviver sees each number's source text (JSON.parse
 * source text access: Chromium 114+, Firefox 135+, Safari 18.4+; an older browser rounds them).
 */
function parseLossless(json) {
  return JSON.parse(json, (_key, value, context) => (typeof value === 'number'
    && !Number.isSafeInteger(value) && /^-?\d+$/.test(context?.source ?? '')
    ? BigInt(context.source) : value));
}

/** `retry_in_ms` → `retryInMs`, for event names and keys alike. */
function camel(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

function camelKeys(value) {
  if (Array.isArray(value)) return value.map(camelKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [camel(k), camelKeys(v)]));
}

/**
 * The wasm client's interface, run in a dedicated Worker (node-worker.js): the same methods,
 * each a posted call. Events arrive batched, one post per worker task.
 */
class WorkerClient {
  #worker;
  #nextId = 1;
  #replies = new Map();
  #onEvent;
  #early = [];
  #groups = new Map();
  /** @type {CrashError | undefined} */
  #crashed;
  #onCrash;
  /** What the worker's own verifier pool did so far (its last report), if it has one. */
  verifierStats;

  static async start(args, verifiers) {
    const client = new WorkerClient();
    workerClients.add(client);
    const { peerId, address } = await client.#start(args, verifiers);
    client.peerId = peerId;
    client.address = address;
    return client;
  }

  #start(args, verifiers) {
    this.#worker = new Worker(new URL('./node-worker.js', import.meta.url), { type: 'module' });
    this.#worker.onmessage = ({ data }) => this.#receive(data);
    this.#worker.onerror = (event) => {
      this.#crash(new CrashError(`the node worker failed: ${event.message || 'script error'}`));
    };
    // The node's own entries in localStorage (its good relays, a member's key shares).
    const storage = {};
    for (let i = 0; i < localStorage.length; i += 1) {
      const key = localStorage.key(i);
      if (key.startsWith('keep-light/')) storage[key] = localStorage.getItem(key);
    }
    return new Promise((resolve, reject) => {
      this.#replies.set(0, { resolve, reject });
      this.#worker.postMessage({ type: 'start', args, storage, verifiers });
    });
  }

  #receive(data) {
    switch (data.type) {
      case 'reply': {
        const waiting = this.#replies.get(data.id);
        this.#replies.delete(data.id);
        if (!waiting) return;
        if (data.error) {
          const error = new Error(data.error.message);
          error.name = data.error.name;
          waiting.reject(error);
        } else {
          waiting.resolve(data.value);
        }
        break;
      }
      case 'batch':
        for (const item of data.list) {
          if (typeof item === 'string') this.#event(item);
          else this.#groups.get(item[0])?.(item[1]);
        }
        if (data.verifierStats) this.verifierStats = data.verifierStats;
        break;
      case 'crash':
        this.#crash(panicked(data.message));
        break;
      case 'store':
        try {
          localStorage.setItem(data.key, data.value);
        } catch {
          // Quota or private mode: the worker keeps its copy for this session.
        }
        break;
      default:
    }
  }

  #event(json) {
    if (this.#onEvent) this.#onEvent(json);
    else this.#early.push(json);
  }

  /** The worker's module panicked or the worker failed: nothing it says can be trusted now. */
  #crash(error) {
    if (this.#crashed) return;
    this.#crashed = error;
    for (const { reject } of this.#replies.values()) reject(error);
    this.#replies.clear();
    this.#retire();
    this.#onCrash?.(error);
  }

  /** `callback(error)` once, when the node crashes. */
  onCrash(callback) {
    this.#onCrash = callback;
    if (this.#crashed) callback(this.#crashed);
  }

  #call(method, ...args) {
    if (this.#crashed) return Promise.reject(this.#crashed);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#replies.set(id, { resolve, reject });
      this.#worker.postMessage({ type: 'call', id, method, args });
    });
  }

  onEvent(callback) {
    if (this.#onEvent) throw new Error('onEvent was already called');
    this.#onEvent = callback;
    this.#early.splice(0).forEach(callback);
  }

  requestEntry() { return this.#call('requestEntry'); }

  dial(address) { return this.#call('dial', address); }

  publish(topic, text) { return this.#call('publish', topic, text); }

  publishBytes(topic, bytes) { return this.#call('publishBytes', topic, bytes); }

  join(topic) { return this.#call('join', topic); }

  leave(topic) { return this.#call('leave', topic); }

  async openGroup(members, onMessage) {
    const { channel, topic } = await this.#call('openGroup', members);
    this.#groups.set(channel, onMessage);
    return {
      topic,
      send: (text) => { this.#call('groupSend', channel, text); },
      close: () => {
        this.#groups.delete(channel);
        this.#call('groupClose', channel);
      },
    };
  }

  async shutdown() {
    try {
      await this.#call('shutdown');
    } finally {
      this.#retire();
    }
  }

  /** Ends the worker; its pool's work stays counted in verifierStats(). */
  #retire() {
    this.#worker.terminate();
    if (workerClients.delete(this) && this.verifierStats) retiredWorkerStats.push(this.verifierStats);
  }
}

let wasmReady;
/** The page's signature verifiers, shared by its nodes (made on the first connect that wants them). */
let verifierPool;
/** Nodes running in Workers (worker: true), each with its own verifier pool, and the stopped ones' stats. */
const workerClients = new Set();
const retiredWorkerStats = [];

/** Workers by default: one per core but the main thread's, from 1 to 4. */
function defaultVerifiers() {
  return Math.max(1, Math.min(4, (navigator.hardwareConcurrency ?? 2) - 1));
}

/** The main thread's nodes, each told (a callback) when the page's module panics. */
const mainThreadNodes = new Set();
/** @type {CrashError | undefined} set once the page's module panicked */
let moduleCrash;

function moduleCrashed(message) {
  moduleCrash ??= panicked(message);
  for (const crash of mainThreadNodes) crash(moduleCrash);
}

/** The warm-up's promise, once started (`warmUp`). */
let warming;
/** Set by the first connect: a warm-up that has not started by then is not needed. */
let connecting = false;

/**
 * Loads and instantiates the wasm module once per page, then warms it up in idle time unless
 * a connect comes first.
 */
export function loadWasm() {
  wasmReady ??= init().then((wasm) => {
    onPanic(moduleCrashed);
    const idle = globalThis.requestIdleCallback ?? ((run) => setTimeout(run, 0));
    idle(() => { if (!connecting) warmUp(); }, { timeout: 500 });
    return wasm;
  });
  return wasmReady;
}

/**
 * Runs the connect path once inside the page (two nodes over an in-page memory transport,
 * src/browser/warm_up.rs): V8 compiles wasm functions on their first call, and that was most
 * of a first connect's time. Runs at most once per page; resolves with whether it ran to
 * the end, never rejects (a failed warm-up only leaves the compiling to the first connect).
 * @returns {Promise<boolean>}
 */
export function warmUp() {
  warming ??= loadWasm().then(() => warmUpModule()).then(() => true, (err) => {
    console.debug('keep-light: warm-up stopped:', err);
    return false;
  });
  return warming;
}

/** Decides the node's key and attestation from `identity` (see the module comment). */
async function resolveIdentity(identity, keyHex, attestation) {
  if (!identity) return { keyHex, attestation };
  if (identity.wallet) {
    const key = keyHex ?? sessionKey();
    return { keyHex: key, attestation: await KeepLight.requestAttestation(identity.wallet, { sessionKey: key }) };
  }
  if (identity.keystore !== undefined) {
    const json = typeof identity.keystore === 'string' ? identity.keystore : await identity.keystore.text();
    return { keyHex: (await KeepLight.decryptKeystore(json, identity.password ?? '')).secret };
  }
  if (identity.keyHex) return { keyHex: identity.keyHex, attestation };
  throw new KeepLightError('identity must be {wallet}, {keystore, password} or {keyHex}', 'bad_option');
}

export class KeepLight extends EventTarget {
  #client;
  /** The wallet's address when the key acts for one (an attestation), else undefined. */
  #operator;
  #pumping = false;
  /** @type {CrashError | undefined} */
  #crashed;
  /** Stops this node hearing of the page module's crash (main-thread nodes). */
  #forget = () => {};
  /** Async iterators waiting on events(). */
  #readers = new Set();
  #status = { state: 'connecting', relays: 0, target: 0 };

  /**
   * Starts a node and dials the bootstrap relays; see keep-light.d.ts for every option.
   * Rejects with NoRelayError when no bootstrap address is usable, WalletRejectedError when
   * the wallet's user refuses, ChainError when the chain refuses to enrol a member.
   * @returns {Promise<KeepLight>}
   */
  static async connect({ bootstrap = [], topics = [], identity, keyHex, attestation, router,
    reachable, firewall, chain, member = false, worker = false,
    verifiers = defaultVerifiers() } = {}) {
    if (!Array.isArray(bootstrap) || !bootstrap.some((a) => typeof a === 'string' && a.startsWith('/'))) {
      throw new NoRelayError('bootstrap must list at least one relay multiaddr (/ip4/…/ws/p2p/…)');
    }
    if (worker) {
      // A worker has no RTCPeerConnection: WebSocket relays only.
      bootstrap = bootstrap.filter((address) => !address.includes('/webrtc'));
      if (bootstrap.length === 0) {
        throw new NoRelayError('worker: true needs a WebSocket relay (a worker cannot use WebRTC)');
      }
    }
    connecting = true;
    try {
      await loadWasm();
      ({ keyHex, attestation } = await resolveIdentity(identity, keyHex, attestation));
      // The worker's node needs a key the page keeps: the session key, unless given one.
      if (worker) keyHex ??= sessionKey();
      const args = [bootstrap, topics, keyHex, attestation ? JSON.stringify(attestation) : undefined,
        router, reachable, firewall, chain, member];
      let client;
      if (worker) {
        client = await WorkerClient.start(args, verifiers);
      } else {
        if (moduleCrash) throw moduleCrash;
        if (verifiers > 0) {
          verifierPool ??= new VerifierPool(verifiers);
          useVerifierWorkers((requests) => verifierPool.run(requests), verifierPool.size);
        } else {
          useVerifierWorkers(null, 0);
        }
        client = await KeepClient.start(...args);
      }
      // A SIWE message's second line is the wallet's address: the operator the key acts for.
      return new KeepLight(client, attestation?.message.split('\n')[1]);
    } catch (err) {
      throw classify(err);
    }
  }

  /**
   * The wallets in the page (EIP-6963 announcements, collected for `waitMs`), or
   * `window.ethereum` when none announces itself.
   * @returns {Promise<Array<{info: {uuid: string, name: string, icon: string, rdns: string},
   *                          provider: object}>>}
   */
  static async wallets({ waitMs = 200 } = {}) {
    const found = new Map();
    const onAnnounce = (event) => {
      const { info, provider } = event.detail ?? {};
      if (info?.uuid && provider) found.set(info.uuid, { info, provider });
    };
    window.addEventListener('eip6963:announceProvider', onAnnounce);
    window.dispatchEvent(new Event('eip6963:requestProvider'));
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    window.removeEventListener('eip6963:announceProvider', onAnnounce);
    if (found.size === 0 && window.ethereum) {
      found.set('window.ethereum', {
        info: { uuid: 'window.ethereum', name: 'Browser wallet', icon: '', rdns: '' },
        provider: window.ethereum,
      });
    }
    return [...found.values()];
  }

  /**
   * What the page's verifier workers did so far: `{workers, batches, signatures, busyMs,
   * failures}` (all 0 before a node used them). A node in a Worker (`worker: true`) has a pool
   * of its own, counted here too: `workers` are those running now, the rest sums every pool's
   * work, stopped nodes' included.
   */
  static verifierStats() {
    const total = { workers: verifierPool?.size ?? 0, batches: 0, signatures: 0, busyMs: 0, failures: 0 };
    const add = (stats, running) => {
      if (running) total.workers += stats.workers ?? 0;
      for (const key of ['batches', 'signatures', 'busyMs', 'failures']) total[key] += stats[key];
    };
    if (verifierPool) add(verifierPool.stats, false);
    for (const client of workerClients) if (client.verifierStats) add(client.verifierStats, true);
    for (const stats of retiredWorkerStats) add(stats, false);
    return total;
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
   * of a Sign-In with Ethereum message naming the session key's peer ID. Rejects with
   * WalletRejectedError when the user refuses.
   * @returns {Promise<{message: string, signature: string}>} the verified attestation
   */
  static async requestAttestation(provider, { sessionKey: key, domain = location.host,
    ttlSeconds = 3600 } = {}) {
    try {
      await loadWasm();
      key ??= sessionKey();
      return JSON.parse(await requestAttestation(provider, key, domain, ttlSeconds));
    } catch (err) {
      throw classify(err);
    }
  }

  /**
   * Decrypts an Ethereum V3 keystore (geth, ethers, MetaMask) in a Web Worker, so scrypt's
   * second or so of work never freezes the page.
   * @returns {Promise<{secret: string, address: string, peerId: string}>}
   */
  static decryptKeystore(json, password) {
    return new Promise((resolve, reject) => {
      const worker = new Worker(new URL('./keystore-worker.js', import.meta.url), { type: 'module' });
      const done = () => worker.terminate();
      worker.onmessage = ({ data }) => {
        done();
        if (data.error) reject(new KeepLightError(data.error, 'bad_keystore'));
        else resolve(camelKeys(data.key));
      };
      worker.onerror = (event) => {
        done();
        reject(new KeepLightError(event.message || 'keystore worker failed', 'bad_keystore'));
      };
      worker.postMessage({ json, password });
    });
  }

  constructor(client, operator) {
    super();
    this.#client = client;
    this.#operator = operator;
    const crashed = (error) => this.#fail(error);
    if (client instanceof WorkerClient) {
      client.onCrash(crashed);
    } else {
      mainThreadNodes.add(crashed);
      this.#forget = () => mainThreadNodes.delete(crashed);
      if (moduleCrash) crashed(moduleCrash);
    }
  }

  /** Runs `call` on the wasm client; a panic turns the client into a CrashError for good. */
  async #guard(call) {
    if (this.#crashed) throw this.#crashed;
    try {
      return await call(this.#client);
    } catch (err) {
      throw this.#fail(err);
    }
  }

  #fail(err) {
    const error = classify(err);
    if (!(error instanceof CrashError)) return error;
    if (this.#crashed) return this.#crashed;
    this.#crashed = error;
    this.#forget();
    this.#emit({ event: 'error', source: 'crash', error: error.message });
    for (const reader of this.#readers) reader.end();
    this.#readers.clear();
    return error;
  }

  #emit(detail) {
    this.dispatchEvent(new CustomEvent(detail.event, { detail }));
    if (detail.event.startsWith('dkg')) this.dispatchEvent(new CustomEvent('dkg', { detail }));
    this.dispatchEvent(new CustomEvent('event', { detail }));
    for (const reader of this.#readers) reader.push(detail);
  }

  /** Derives `status` and `peer` from the node's own events. */
  #derive(detail) {
    switch (detail.event) {
      case 'health': {
        const state = detail.relays > 0 ? 'connected' : 'disconnected';
        if (state !== this.#status.state || detail.relays !== this.#status.relays) {
          this.#status = { state, relays: detail.relays, target: detail.target };
          this.#emit({ event: 'status', ...this.#status });
        }
        break;
      }
      case 'connected':
      case 'disconnected':
        this.#emit({ event: 'peer', peer: detail.peer, connected: detail.event === 'connected' });
        break;
      default:
    }
  }

  #pump() {
    if (this.#pumping) return;
    this.#pumping = true;
    queueMicrotask(() => {
      try {
        this.#client.onEvent((json) => {
          const detail = camelKeys(parseLossless(json));
          detail.event = camel(detail.event);
          this.#emit(detail);
          this.#derive(detail);
        });
      } catch (err) {
        this.#fail(err);
      }
    });
  }

  addEventListener(type, listener, options) {
    super.addEventListener(type, listener, options);
    this.#pump();
  }

  /**
   * Every event from now on, as an async iterator (`for await (const e of client.events())`);
   * breaking out of the loop stops it.
   * @returns {AsyncIterableIterator<object>}
   */
  events() {
    const queue = [];
    let wake;
    let ended = false;
    const reader = {
      push(detail) { queue.push(detail); wake?.(); },
      end() { ended = true; wake?.(); },
    };
    this.#readers.add(reader);
    this.#pump();
    const readers = this.#readers;
    return {
      [Symbol.asyncIterator]() { return this; },
      async next() {
        while (queue.length === 0) {
          if (ended) return { done: true, value: undefined };
          await new Promise((resolve) => { wake = resolve; });
          wake = undefined;
        }
        return { done: false, value: queue.shift() };
      },
      async return() {
        readers.delete(reader);
        reader.end();
        return { done: true, value: undefined };
      },
    };
  }

  /** The relays as last reported: `{state, relays, target}`. */
  get status() {
    return { ...this.#status };
  }

  /** @returns {string} the node's peer ID (`16Uiu2…`). */
  get peerId() {
    return this.#client.peerId;
  }

  /** @returns {string} the operator address (EIP-55): the wallet's when delegated, else the key's. */
  get operator() {
    return this.#operator ?? this.#client.address;
  }

  /** @returns {string} the node's own key's address (the session key's when delegated). */
  get address() {
    return this.#client.address;
  }

  /**
   * Asks the chain for a random number; resolves with the `entry` event's object once the
   * entry is on chain (`verified`: checked in this tab against its group's key).
   */
  requestEntry() {
    return this.#guard(async (client) => camelKeys(parseLossless(await client.requestEntry())));
  }

  /** Dials a peer's address, e.g. another tab's circuit address; a `connected` event follows. */
  dial(address) {
    return this.#guard((client) => client.dial(address));
  }

  /** Publishes text (or bytes) on a topic. Rejects when no peer is in the topic yet. */
  publish(topic, data) {
    return this.#guard((client) => (typeof data === 'string'
      ? client.publish(topic, data)
      : client.publishBytes(topic, data)));
  }

  /**
   * Joins the group channel of `members` (every operator address, this node's included) and
   * calls `onMessage({topic, from, sender, sequence, text})` once for each text a member sends
   * (`sender`: the member whose signature the envelope carries; `from`: the peer that
   * forwarded it, often a relay). Resolves with `{topic, send(text), close()}`; `send`
   * republishes with backoff until `close`.
   */
  joinGroup(members, onMessage) {
    return this.#guard((client) => client.openGroup(members, (json) => onMessage(parseLossless(json))));
  }

  /** @deprecated the same as `joinGroup`. */
  openGroup(members, onMessage) {
    return this.joinGroup(members, onMessage);
  }

  /** Subscribes to a topic. */
  join(topic) {
    return this.#guard((client) => client.join(topic));
  }

  /** Unsubscribes from a topic. */
  leave(topic) {
    return this.#guard((client) => client.leave(topic));
  }

  /** Closes every connection and stops the node; events() iterators end. */
  async stop() {
    for (const reader of this.#readers) reader.end();
    this.#readers.clear();
    this.#forget();
    await this.#guard((client) => client.shutdown());
  }

  /** @deprecated the same as `stop`. */
  close() {
    return this.stop();
  }
}

// Types of the keep-light package (keep-light.js). Written by hand; `npm run typecheck` checks
// them against examples/typed.ts with `tsc --noEmit --strict`.

/** A u64 from the node: a number while it is exact (below 2^53), past that a BigInt. */
export type U64 = number | bigint;

/** An EIP-1193 provider: a browser wallet, or anything with its `request`. */
export interface EIP1193Provider {
  request(args: { method: string; params?: unknown[] | object }): Promise<unknown>;
}

/** A wallet found by EIP-6963 discovery (or `window.ethereum`). */
export interface WalletInfo {
  info: { uuid: string; name: string; icon: string; rdns: string };
  provider: EIP1193Provider;
}

/** Who the node acts for (DESIGN.md section 3). */
export type Identity =
  | { wallet: EIP1193Provider }
  | { keystore: string | Blob; password: string }
  | { keyHex: string };

/** A wallet's delegation to a session key: a SIWE message and its EIP-191 signature. */
export interface Attestation {
  message: string;
  signature: string;
}

export interface ConnectOptions {
  /** Relay multiaddrs (`/ip4/…/tcp/…/ws/p2p/16Uiu2…`, `/webrtc-direct/…`); at least one. */
  bootstrap: string[];
  /** The chain's JSON-RPC URL: entries are followed (and verified) from it. */
  chain?: string;
  identity?: Identity;
  /** Serve as a beacon member of `chain`: enrol, join groups, run DKGs, sign entries. */
  member?: boolean;
  /** Run the node in a dedicated Worker, over WebSocket relays only (WebRTC needs the page). */
  worker?: boolean;
  /** Pubsub topics to join at start. */
  topics?: string[];
  /** The network's pubsub routing (default gossipsub). */
  router?: 'gossipsub' | 'floodsub';
  /** Listen through the relays (circuit relay v2), for other tabs to dial. */
  reachable?: boolean;
  /** Who may stay connected to the tab (the bootstrap relays always may). */
  firewall?: 'open' | 'attested' | 'staked';
  /** Web Workers checking envelope signatures (default: cores − 1, 1 to 4; 0: main thread). */
  verifiers?: number;
  /** Low-level identity: a key as it is, and a wallet's delegation to it. */
  keyHex?: string;
  attestation?: Attestation;
}

/** An entry on chain, as the `entry` event and `requestEntry()` give it. */
export interface Entry {
  event: 'entry';
  request: U64;
  group: U64;
  /** EIP-197 encodings, 0x-hex. */
  groupKey: string | null;
  entry: string;
  previous: string;
  /** keccak256(entry): the random number handed to the requester. */
  random: string;
  /** The group's operator addresses in seat order. */
  groupMembers: string[];
  requestBlock: U64;
  entryBlock: U64;
  /** Whether this tab checked `entry` as the group key's BLS signature over `previous`. */
  verified: boolean;
}

export type DkgPhase =
  | 'ephemeral_keys' | 'commitments' | 'share_accusations' | 'points'
  | 'point_accusations' | 'disclosure' | 'result_signing';

export type DkgEvent =
  | { event: 'dkgJoined'; session: string; seats: number[]; size: number; startBlock: U64 }
  | { event: 'dkgPhase'; session: string; phase: DkgPhase; block: U64 }
  | { event: 'dkgFinished'; session: string; ok: boolean; error: string | null; misbehaved: number[]; block: U64 }
  | { event: 'dkgTimedOut'; session: string };

export interface StatusEvent {
  event: 'status';
  state: 'connecting' | 'connected' | 'disconnected';
  relays: number;
  target: number;
}

/** The typed events' details by type; `event` names each. */
export interface EventMap {
  status: StatusEvent;
  health: { event: 'health'; state: string; relays: number; target: number; transports: Record<string, number> };
  peer: { event: 'peer'; peer: string; connected: boolean };
  banned: { event: 'banned'; peer: string; reason: string; durationMs: number; untilMs: number; offences: number };
  group: { event: 'group'; group: U64; groupKey: string; seats: number[]; operators: string[]; restored: boolean };
  dkg: DkgEvent;
  entry: Entry;
  /** Group-message latency: when the other seats' shares of one entry reached this tab, in
   * ms after its own share (negative: before it), in arrival order. */
  shareTimes: { event: 'shareTimes'; request: U64; group: U64; shares: { seat: number; afterMs: number }[] };
  error: { event: 'error'; source: 'chain' | 'crash'; error: string };
}

/** Any event's detail: the typed ones, or another event's record (see keep-light.js). */
export type KeepLightEvent = EventMap[keyof EventMap] | { event: string; [key: string]: unknown };

/** A group channel opened by `joinGroup`. */
export interface GroupChannel {
  topic: string;
  send(text: string): void;
  close(): void;
}

export interface GroupMessage {
  topic: string;
  /** The peer that forwarded the message (often a relay). */
  from: string;
  /** The member whose signature the envelope carries. */
  sender: string;
  sequence: U64;
  text: string;
}

export class KeepLightError extends Error {
  constructor(message: string, code?: string, cause?: unknown);
  readonly code: string;
}
export class WalletRejectedError extends KeepLightError { readonly code: 'wallet_rejected'; }
export class NoRelayError extends KeepLightError { readonly code: 'no_relay'; }
export class ChainError extends KeepLightError { readonly code: 'chain'; }
export class QueueFullError extends KeepLightError { readonly code: 'queue_full'; }
/** A Rust panic (in a call or in the node's own tasks): the node failed for good, and every later call rejects with this same error. */
export class CrashError extends KeepLightError { readonly code: 'crash'; }

/** Loads and instantiates the wasm module (once per page; connect does it too), then runs `warmUp` in idle time unless a connect comes first. */
export function loadWasm(): Promise<unknown>;
/** Runs the connect path once inside the page (two in-page nodes), so the first connect finds its code compiled; at most once per page. Resolves with whether it ran to the end; never rejects. */
export function warmUp(): Promise<boolean>;

export class KeepLight extends EventTarget {
  static connect(options: ConnectOptions): Promise<KeepLight>;
  static wallets(options?: { waitMs?: number }): Promise<WalletInfo[]>;
  static sessionKey(): Promise<string>;
  static requestAttestation(
    provider: EIP1193Provider,
    options?: { sessionKey?: string; domain?: string; ttlSeconds?: number },
  ): Promise<Attestation>;
  static decryptKeystore(json: string, password: string): Promise<{ secret: string; address: string; peerId: string }>;
  static verifierStats(): { workers: number; batches: number; signatures: number; busyMs: number; failures: number };
  static memoryBytes(): Promise<number>;

  /** The node's peer ID (`16Uiu2…`). */
  readonly peerId: string;
  /** The operator (EIP-55): the wallet's when delegated, else the key's. */
  readonly operator: string;
  /** The node's own key's address. */
  readonly address: string;
  /** The relays as last reported. */
  readonly status: Omit<StatusEvent, 'event'>;

  addEventListener<K extends keyof EventMap & string>(
    type: K,
    listener: (event: CustomEvent<EventMap[K]>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
  events(): AsyncIterableIterator<KeepLightEvent>;
  requestEntry(): Promise<Entry>;
  joinGroup(members: string[], onMessage: (message: GroupMessage) => void): Promise<GroupChannel>;
  /** @deprecated use joinGroup */
  openGroup(members: string[], onMessage: (message: GroupMessage) => void): Promise<GroupChannel>;
  dial(address: string): Promise<void>;
  publish(topic: string, data: string | Uint8Array): Promise<void>;
  join(topic: string): Promise<void>;
  leave(topic: string): Promise<void>;
  stop(): Promise<void>;
  /** @deprecated use stop */
  close(): Promise<void>;
}

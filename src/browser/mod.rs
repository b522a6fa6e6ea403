//! The wasm-bindgen API the JS shell (`www/src/keep-light.js`) wraps.
//!
//! # Boundary contract
//! - This layer only parses arguments, delegates to [`crate::net`] and maps errors to `Error`s
//!   with a readable message; no protocol logic lives here.
//! - The node's event loop runs on the page's event loop (`spawn_local`); nothing blocks.
//! - Events reach JS through the one callback given to [`KeepClient::on_event`], as a JSON
//!   string (the same objects the CLI prints). The callback must not call back into the client
//!   synchronously expecting an answer; queue work with a microtask instead.
//! - A Rust panic is printed to the console by `console_error_panic_hook`, reported to the
//!   callback given to [`on_panic`] and aborts the module: the shell then fails every node of
//!   this module with one `CrashError` rather than leave its calls to hang.

pub mod verifier;
pub mod wallet;
pub mod warm_up;

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use futures::{channel::mpsc, FutureExt, StreamExt};
use wasm_bindgen::prelude::*;

use libp2p::{multiaddr::Protocol, Multiaddr};

use crate::{
    chain::{rpc::RpcChain, watch, BeaconChain},
    identity::{attestation::Attestation, Address, OperatorKey},
    member::driver::{self as member_driver, KeyValueStore},
    net::{
        channel::{group_topic, Channel, ChannelConfig, Received, Registry},
        firewall::Policy,
        retransmit::Strategy,
        EventReceiver, Node, NodeConfig, NodeHandle, Router,
    },
    platform,
    wire::{Text, CHANNEL_TEXT_TYPE},
};

/// Relays a tab keeps connected (natives keep 3).
const BOOTSTRAP_TARGET: usize = 2;
/// Where a tab remembers the relays that worked (`localStorage`), tried first next time.
const GOOD_RELAYS_KEY: &str = "keep-light/good-relays";

/// How often an open group channel republishes what is due.
const GROUP_TICK: Duration = Duration::from_millis(250);

thread_local! {
    /// The shell's crash callback ([`on_panic`]).
    static ON_PANIC: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
}

/// Installs the panic hook and console logging once per page.
#[wasm_bindgen(start)]
pub fn init() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            console_error_panic_hook::hook(info);
            let message = info.to_string();
            ON_PANIC.with(|callback| {
                // A panic while the callback is being replaced has no one to tell.
                if let Ok(callback) = callback.try_borrow() {
                    if let Some(callback) = callback.as_ref() {
                        let _ = callback.call1(&JsValue::NULL, &JsValue::from_str(&message));
                    }
                }
            });
        }));
        tracing_wasm::set_as_global_default_with_config(
            tracing_wasm::WASMLayerConfigBuilder::new()
                .set_max_level(log_level())
                // Performance marks for every log line cost more than they tell.
                .set_report_logs_in_timings(false)
                .build(),
        )
    });
}

/// Where a page may raise the console's log level (`info`, `debug`) or lower it (`error`).
const LOG_LEVEL_KEY: &str = "keep-light/log";

/// Warnings and errors by default: a library should not fill its page's console, and the
/// start-up's INFO lines cost a cold connect several ms of console work.
fn log_level() -> tracing::Level {
    match platform::load(LOG_LEVEL_KEY).as_deref() {
        Some("error") => tracing::Level::ERROR,
        Some("info") => tracing::Level::INFO,
        Some("debug") => tracing::Level::DEBUG,
        _ => tracing::Level::WARN,
    }
}

/// Calls `callback(message)` when this module panics, just before it aborts; after that no
/// call into the module can be trusted.
#[wasm_bindgen(js_name = onPanic)]
pub fn on_panic(callback: js_sys::Function) {
    ON_PANIC.with(|slot| *slot.borrow_mut() = Some(callback));
}

/// Panics in the event loop, as a bug in a task would: the page test of `CrashError`. Only in
/// a module built with the `test-hooks` feature, never in the shipped one.
#[cfg(feature = "test-hooks")]
#[wasm_bindgen(js_name = panicForTests)]
pub fn panic_for_tests(message: String) {
    wasm_bindgen_futures::spawn_local(async move { panic!("{message}") });
}

/// Runs the connect path once between two nodes inside the page ([`warm_up`]), so that V8 has
/// compiled it before a real `connect`. The shell calls it once the module has loaded.
#[wasm_bindgen(js_name = warmUp)]
pub async fn warm_up_page() -> Result<(), JsError> {
    warm_up::run().await.map_err(|e| JsError::new(&e))
}

/// A running node in the page.
#[wasm_bindgen]
pub struct KeepClient {
    /// Shared weakly with the page's `online` listener, which must not keep the node alive.
    handle: Rc<NodeHandle>,
    /// Taken by `onEvent`, which borrows the client shared: a pending `openGroup` holds a
    /// shared borrow for as long as it runs, and a `&mut self` call meanwhile would fail.
    events: RefCell<Option<EventReceiver>>,
    /// The member service's and the beacon follower's events as JSON (none without a
    /// chain), taken with `events`.
    member_events: RefCell<Option<mpsc::UnboundedReceiver<String>>>,
    /// The chain's JSON-RPC client, for `requestEntry`.
    chain: Option<Arc<dyn BeaconChain>>,
    /// Set by `shutdown`: the beacon follower stops at its next event.
    stopped: Rc<Cell<bool>>,
}

#[wasm_bindgen]
impl KeepClient {
    /// Starts a node that dials `bootstrap` (multiaddrs, `/ws` or `/wss`) and joins `topics`.
    /// `key_hex` is the session key's secret; a fresh key is made when it is absent.
    /// `attestation_json` is the wallet's delegation to that key (from `requestAttestation`),
    /// sent to every peer right after connecting. `router` is the network's pubsub routing,
    /// `gossipsub` (the default) or `floodsub`. With `reachable`, the tab listens through each
    /// relay it connects to (`<relay>/p2p-circuit/p2p/<peer>`, announced in `listening`
    /// events), so other tabs can dial it. `firewall` is who may connect to the tab: `open`
    /// (the default), `attested` or `staked`; under `staked`, `chain` is the chain's JSON-RPC
    /// URL, asked with `fetch`. The bootstrap relays are always admitted.
    ///
    /// With `member`, the tab also serves as a beacon member on the chain at `chain`: it
    /// enrols first (registers the attested session key as the wallet operator's network key,
    /// or, without an attestation, asks a dev chain's faucet to stake the key itself; `start`
    /// rejects when the chain refuses), then runs DKGs and signs in the page, keeping its key
    /// shares in `localStorage` so a reloaded tab with the same session key still serves its
    /// groups. Member events (`dkgJoined`, `dkgPhase`, `dkgFinished`, `group`, `groupEntry`
    /// (an entry of the tab's group, with the seats it combined), `groupHealth`, …) reach
    /// `onEvent` with the node's.
    ///
    /// With `chain`, the tab also follows the beacon ([`watch::follow`]): an `entry` event
    /// for every entry the chain takes, verified in the tab against its group key.
    #[allow(clippy::too_many_arguments)] // JS callers pass them by position (keep-light.js)
    pub async fn start(
        bootstrap: Vec<String>,
        topics: Vec<String>,
        key_hex: Option<String>,
        attestation_json: Option<String>,
        router: Option<String>,
        reachable: Option<bool>,
        firewall: Option<String>,
        chain: Option<String>,
        member: Option<bool>,
    ) -> Result<KeepClient, JsError> {
        let key = match key_hex {
            Some(hex) => OperatorKey::from_hex(&hex)?,
            None => OperatorKey::generate(),
        };
        let router = match router {
            Some(name) => Router::from_str(&name).map_err(|e| JsError::new(&e))?,
            None => Router::default(),
        };
        let policy = match firewall {
            Some(name) => Policy::from_str(&name).map_err(|e| JsError::new(&e))?,
            None => Policy::Open,
        };
        // Relays route for everyone; the policy is about the peers that dial the tab.
        let relays = bootstrap
            .iter()
            .filter_map(|address| address.parse::<Multiaddr>().ok())
            .filter_map(|address| match address.iter().last() {
                Some(Protocol::P2p(peer)) => Some(peer),
                _ => None,
            })
            .collect();
        let mut config = NodeConfig::new(key.clone())
            .with_router(router)
            .with_bootstrap(bootstrap)
            .with_bootstrap_target(BOOTSTRAP_TARGET)
            .with_bootstrap_store(GOOD_RELAYS_KEY)
            .with_circuit_listen(reachable.unwrap_or(false))
            .with_firewall(policy, relays)
            .with_topics(topics);
        let chain = match chain {
            Some(url) => Some(Arc::new(
                RpcChain::new(&url).map_err(|e| JsError::new(&format!("chain: {e}")))?,
            )),
            None => None,
        };
        let beacon_chain = chain.clone().map(|c| c as Arc<dyn BeaconChain>);
        if let Some(chain) = &chain {
            config = config.with_chain(chain.clone());
        }
        let attestation = match attestation_json {
            Some(json) => Some(
                serde_json::from_str::<Attestation>(&json)
                    .map_err(|e| JsError::new(&format!("attestation: {e}")))?,
            ),
            None => None,
        };
        if let Some(attestation) = &attestation {
            config = config.with_attestation(attestation.clone());
        }
        let member = match (member.unwrap_or(false), chain) {
            (false, _) => None,
            (true, None) => {
                return Err(JsError::new(
                    "member: true needs chain (the chain's JSON-RPC URL)",
                ))
            }
            (true, Some(chain)) => {
                // Enrolled before the node starts: a refusal leaves nothing running.
                let chain: Arc<dyn BeaconChain> = chain;
                let info = chain
                    .info()
                    .await
                    .map_err(|e| JsError::new(&format!("chain: {e}")))?;
                member_driver::enrol(&*chain, &key, attestation.as_ref())
                    .await
                    .map_err(|e| JsError::new(&format!("chain refused the member: {e}")))?;
                Some((chain, info.chain_id))
            }
        };
        let (handle, events) = Node::start(config).await?;
        let (member_reports, member_events) = mpsc::unbounded();
        let stopped = Rc::new(Cell::new(false));
        if let Some(chain) = &beacon_chain {
            let (reports, stopped) = (member_reports.clone(), stopped.clone());
            platform::spawn(watch::follow(chain.clone(), move |event| {
                let json = serde_json::to_string(&event).unwrap_or_default();
                !stopped.get() && reports.unbounded_send(json).is_ok()
            }));
        }
        if let Some((chain, chain_id)) = member {
            // One identity's shares per chain: two session keys in one page keep apart.
            let store =
                KeyValueStore::new(format!("keep-light/member/{chain_id}/{}", handle.address()));
            platform::spawn(member_driver::serve(
                handle.clone(),
                key,
                chain,
                Rc::new(store),
                move |event| {
                    let mut json = serde_json::to_value(&event).unwrap_or_default();
                    // `entry` is the beacon follower's (every entry, verified here); the
                    // member's own is its group's answer, with the seats it combined.
                    if json["event"] == "entry" {
                        json["event"] = "groupEntry".into();
                    }
                    let _ = member_reports.unbounded_send(json.to_string());
                },
            ));
        }
        let handle = Rc::new(handle);
        // Offline: dial nothing (every dial would fail and grow its backoff). Back online:
        // redial at once.
        if let Some(window) = web_sys::window() {
            for (event, online) in [("online", true), ("offline", false)] {
                let node = Rc::downgrade(&handle);
                let listener = Closure::<dyn Fn()>::new(move || match node.upgrade() {
                    Some(node) if online => node.retry_bootstrap(),
                    Some(node) => node.pause_bootstrap(),
                    None => {}
                });
                let _ = window
                    .add_event_listener_with_callback(event, listener.as_ref().unchecked_ref());
                // Lives as long as the page: the node has no end the listener could follow.
                listener.forget();
            }
        }
        Ok(KeepClient {
            handle,
            events: RefCell::new(Some(events)),
            member_events: RefCell::new(Some(member_events)),
            chain: beacon_chain,
            stopped,
        })
    }

    /// Asks the chain for a random number and resolves with the entry that answers it, once
    /// it is on chain (the `entry` event's object, as JSON, verified in the tab). Rejects
    /// without `chain`, or when the chain refuses the request or stops answering.
    #[wasm_bindgen(js_name = requestEntry)]
    pub fn request_entry(&self) -> js_sys::Promise {
        let chain = self.chain.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let chain = chain.ok_or_else(|| {
                JsError::new("requestEntry needs chain (the chain's JSON-RPC URL)")
            })?;
            watch::request(&*chain)
                .await
                .map(|entry| {
                    let json = serde_json::to_string(&watch::Watched::Entry(entry));
                    JsValue::from_str(&json.unwrap_or_default())
                })
                .map_err(|e| JsError::new(&format!("chain: {e}")).into())
        })
    }

    /// This node's peer ID.
    #[wasm_bindgen(getter, js_name = peerId)]
    pub fn peer_id(&self) -> String {
        self.handle.peer_id().to_string()
    }

    /// This node's operator address (EIP-55).
    #[wasm_bindgen(getter)]
    pub fn address(&self) -> String {
        self.handle.address().to_string()
    }

    /// Delivers every event, as a JSON string, to `callback`. Can be called once.
    #[wasm_bindgen(js_name = onEvent)]
    pub fn on_event(&self, callback: js_sys::Function) -> Result<(), JsError> {
        let events = self
            .events
            .borrow_mut()
            .take()
            .ok_or_else(|| JsError::new("onEvent was already called"))?;
        let member_events = self.member_events.borrow_mut().take();
        let mut all = futures::stream::select(
            events.map(|event| event.to_json()),
            futures::stream::iter(member_events).flatten(),
        );
        platform::spawn(async move {
            while let Some(json) = all.next().await {
                if let Err(e) = callback.call1(&JsValue::NULL, &JsValue::from_str(&json)) {
                    web_sys::console::error_2(&"keep-light event callback threw".into(), &e);
                }
            }
        });
        Ok(())
    }

    /// Dials `address`, e.g. another tab's circuit address; resolves once the dial has started
    /// (a `connected` event follows), rejects when no transport takes the address.
    pub fn dial(&self, address: String) -> js_sys::Promise {
        let handle = self.handle.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            handle
                .dial(&address)
                .await
                .map(|()| JsValue::UNDEFINED)
                .map_err(|e| JsError::new(&e).into())
        })
    }

    /// Publishes UTF-8 `text` on `topic`. Rejects when no peer is in the topic yet.
    pub fn publish(&self, topic: String, text: String) -> js_sys::Promise {
        self.publish_bytes(topic, text.into_bytes())
    }

    /// Publishes raw bytes on `topic`.
    #[wasm_bindgen(js_name = publishBytes)]
    pub fn publish_bytes(&self, topic: String, data: Vec<u8>) -> js_sys::Promise {
        let handle = self.handle.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            handle
                .publish(&topic, data)
                .await
                .map(|()| JsValue::UNDEFINED)
                .map_err(|e| JsError::new(&e.to_string()).into())
        })
    }

    /// Joins the group channel of `members` (every operator address, this node's included) and
    /// calls `on_message` with each text a member sends, once, as a JSON string
    /// `{"topic","from","sender","sequence","text"}`. Texts sent with the returned channel's
    /// `send` are republished with backoff until it is closed.
    #[wasm_bindgen(js_name = openGroup)]
    pub async fn open_group(
        &self,
        members: Vec<String>,
        on_message: js_sys::Function,
    ) -> Result<KeepChannel, JsError> {
        let members = members
            .iter()
            .map(|m| Address::from_str(m).map_err(|e| JsError::new(&format!("member {m}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if !members.contains(&self.handle.address()) {
            return Err(JsError::new(
                "the member list must include this node's address",
            ));
        }
        let topic = group_topic(&members);
        let mut registry = Registry::new();
        let shown = topic.clone();
        registry.register(CHANNEL_TEXT_TYPE, move |m: Received<Text>| {
            let json = serde_json::json!({
                "topic": shown,
                "from": m.from.to_string(),
                "sender": m.sender.to_string(),
                "sequence": m.sequence,
                "text": m.message.text,
            });
            if let Err(e) = on_message.call1(&JsValue::NULL, &JsValue::from_str(&json.to_string()))
            {
                web_sys::console::error_2(&"keep-light group callback threw".into(), &e);
            }
        });
        let config = ChannelConfig::new(topic.clone()).with_members(members);
        let channel = Channel::open(&self.handle, config, registry)
            .await
            .map_err(|e| JsError::new(&e.to_string()))?;
        let (commands, requests) = mpsc::unbounded();
        platform::spawn(run_group(channel, requests));
        Ok(KeepChannel { topic, commands })
    }

    /// Joins `topic`.
    pub fn join(&self, topic: String) {
        self.handle.join(&topic);
    }

    /// Leaves `topic`.
    pub fn leave(&self, topic: String) {
        self.handle.leave(&topic);
    }

    /// Closes every connection and stops the node.
    pub fn shutdown(&self) -> js_sys::Promise {
        self.stopped.set(true);
        let handle = self.handle.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            handle.shutdown().await;
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// A group channel opened by [`KeepClient::open_group`].
#[wasm_bindgen]
pub struct KeepChannel {
    topic: String,
    commands: mpsc::UnboundedSender<GroupCommand>,
}

enum GroupCommand {
    Send(String),
    Close,
}

#[wasm_bindgen]
impl KeepChannel {
    /// The group's topic name.
    #[wasm_bindgen(getter)]
    pub fn topic(&self) -> String {
        self.topic.clone()
    }

    /// Sends `text` to the group (republished with backoff until the channel closes).
    pub fn send(&self, text: String) -> Result<(), JsError> {
        self.commands
            .unbounded_send(GroupCommand::Send(text))
            .map_err(|_| JsError::new("the channel is closed"))
    }

    /// Leaves the group.
    pub fn close(&self) {
        let _ = self.commands.unbounded_send(GroupCommand::Close);
    }
}

/// Owns the channel: delivers messages, sends texts, ticks retransmission.
async fn run_group(mut channel: Channel, mut requests: mpsc::UnboundedReceiver<GroupCommand>) {
    let mut tick = platform::sleep(GROUP_TICK).fuse();
    loop {
        futures::select! {
            delivered = channel.next().fuse() => {
                if delivered.is_none() {
                    return;
                }
            }
            request = requests.next() => match request {
                Some(GroupCommand::Send(text)) => {
                    let message = Text { text };
                    if let Err(e) = channel
                        .send_retransmitted("page", CHANNEL_TEXT_TYPE, &message, Strategy::Backoff)
                        .await
                    {
                        tracing::debug!(error = %e, "first copy not sent; retransmission will");
                    }
                }
                Some(GroupCommand::Close) | None => break,
            },
            _ = tick => {
                channel.tick().await;
                tick = platform::sleep(GROUP_TICK).fuse();
            }
        }
    }
    channel.close();
}

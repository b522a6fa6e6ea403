//! The wasm-bindgen API the JS shell (`www/src/keep-light.js`) wraps.
//!
//! # Boundary contract
//! - This layer only parses arguments, delegates to [`crate::net`] and maps errors to `Error`s
//!   with a readable message; no protocol logic lives here.
//! - The node's event loop runs on the page's event loop (`spawn_local`); nothing blocks.
//! - Events reach JS through the one callback given to [`KeepClient::on_event`], as a JSON
//!   string (the same objects the CLI prints). The callback must not call back into the client
//!   synchronously expecting an answer; queue work with a microtask instead.
//! - A Rust panic is printed to the console by `console_error_panic_hook` and aborts the module.

pub mod wallet;

use futures::StreamExt;
use wasm_bindgen::prelude::*;

use crate::{
    identity::{attestation::Attestation, OperatorKey},
    net::{EventReceiver, Node, NodeConfig, NodeHandle},
    platform,
};

/// Installs the panic hook and console logging once per page.
#[wasm_bindgen(start)]
pub fn init() {
    static LOGGING: std::sync::Once = std::sync::Once::new();
    console_error_panic_hook::set_once();
    LOGGING.call_once(|| {
        tracing_wasm::set_as_global_default_with_config(
            tracing_wasm::WASMLayerConfigBuilder::new()
                .set_max_level(tracing::Level::INFO)
                // Performance marks for every log line cost more than they tell.
                .set_report_logs_in_timings(false)
                .build(),
        )
    });
}

/// A running node in the page.
#[wasm_bindgen]
pub struct KeepClient {
    handle: NodeHandle,
    events: Option<EventReceiver>,
}

#[wasm_bindgen]
impl KeepClient {
    /// Starts a node that dials `bootstrap` (multiaddrs, `/ws` or `/wss`) and joins `topics`.
    /// `key_hex` is the session key's secret; a fresh key is made when it is absent.
    /// `attestation_json` is the wallet's delegation to that key (from `requestAttestation`),
    /// sent to every peer right after connecting.
    pub async fn start(
        bootstrap: Vec<String>,
        topics: Vec<String>,
        key_hex: Option<String>,
        attestation_json: Option<String>,
    ) -> Result<KeepClient, JsError> {
        let key = match key_hex {
            Some(hex) => OperatorKey::from_hex(&hex)?,
            None => OperatorKey::generate(),
        };
        let mut config = NodeConfig::new(key)
            .with_bootstrap(bootstrap)
            .with_topics(topics);
        if let Some(json) = attestation_json {
            let attestation: Attestation = serde_json::from_str(&json)
                .map_err(|e| JsError::new(&format!("attestation: {e}")))?;
            config = config.with_attestation(attestation);
        }
        let (handle, events) = Node::start(config).await?;
        Ok(KeepClient {
            handle,
            events: Some(events),
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
    pub fn on_event(&mut self, callback: js_sys::Function) -> Result<(), JsError> {
        let mut events = self
            .events
            .take()
            .ok_or_else(|| JsError::new("onEvent was already called"))?;
        platform::spawn(async move {
            while let Some(event) = events.next().await {
                if let Err(e) = callback.call1(&JsValue::NULL, &JsValue::from_str(&event.to_json()))
                {
                    web_sys::console::error_2(&"keep-light event callback threw".into(), &e);
                }
            }
        });
        Ok(())
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
        let handle = self.handle.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            handle.shutdown().await;
            Ok(JsValue::UNDEFINED)
        })
    }
}

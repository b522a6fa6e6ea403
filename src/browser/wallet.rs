//! The page's identity: a persisted session key, its delegation by the user's wallet over
//! EIP-1193, and keystore import (DESIGN.md section 3).
//!
//! # Boundary contract
//! - `provider` is any EIP-1193 object: `window.ethereum`, or one built on viem in tests. Only
//!   its `request({method, params})` is used: `eth_requestAccounts`, `eth_chainId`,
//!   `personal_sign`. A wallet error (user rejected, locked) rejects the returned promise with the
//!   wallet's message.
//! - Strings cross the boundary as JSON (the attestation is the `{"message","signature"}` object
//!   the CLI prints), chain ids as numbers (they fit in 2⁵³).
//! - [`decrypt_keystore`] is synchronous and takes about a second for geth's default scrypt: the
//!   JS shell runs it in a Web Worker (`www/src/keystore-worker.js`) so the page never freezes.

use std::str::FromStr;

use rand::{distributions::Alphanumeric, Rng};
use serde_json::json;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::{
    identity::{
        attestation::{self, Attestation, Expect},
        keystore, Address, OperatorKey,
    },
    platform,
};

/// Where the session key lives in `localStorage`.
pub const SESSION_KEY_STORAGE: &str = "keep-light/session-key";

/// The page's session key (hex secret): the persisted one, or a new one, persisted now.
#[wasm_bindgen(js_name = sessionKey)]
pub fn session_key() -> Result<String, JsError> {
    if let Some(saved) = platform::load(SESSION_KEY_STORAGE) {
        if OperatorKey::from_hex(&saved).is_ok() {
            return Ok(saved);
        }
        tracing::warn!("stored session key is corrupt; making a new one");
    }
    let hex = format!("0x{}", hex::encode(OperatorKey::generate().secret_bytes()));
    platform::store(SESSION_KEY_STORAGE, &hex).map_err(|e| JsError::new(&e))?;
    Ok(hex)
}

/// Asks the wallet behind `provider` to delegate its operator identity to the session key
/// `session_key_hex` for `ttl_seconds`, by signing a SIWE message for `domain`. Resolves to the
/// attestation JSON, already verified here (a wallet signing with another account is caught).
#[wasm_bindgen(js_name = requestAttestation)]
pub async fn request_attestation(
    provider: JsValue,
    session_key_hex: String,
    domain: String,
    ttl_seconds: u32,
) -> Result<String, JsError> {
    let session = OperatorKey::from_hex(&session_key_hex)?;
    let peer = session.peer_id();

    let accounts = call(&provider, "eth_requestAccounts", js_sys::Array::new()).await?;
    let account = js_sys::Array::from(&accounts)
        .get(0)
        .as_string()
        .ok_or_else(|| JsError::new("the wallet returned no account"))?;
    let operator = Address::from_str(&account)
        .map_err(|e| JsError::new(&format!("the wallet's account: {e}")))?;
    let chain = call(&provider, "eth_chainId", js_sys::Array::new())
        .await?
        .as_string()
        .ok_or_else(|| JsError::new("eth_chainId did not return a string"))?;
    let chain_id = u64::from_str_radix(chain.trim_start_matches("0x"), 16)
        .map_err(|e| JsError::new(&format!("eth_chainId {chain}: {e}")))?;

    let now = platform::utc_now();
    let nonce: String = platform::rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    let ttl = std::time::Duration::from_secs(ttl_seconds.into());
    let message =
        attestation::siwe_text(&operator, &peer, chain_id, &domain, &nonce, now, now + ttl);
    let params = js_sys::Array::of2(
        &JsValue::from_str(&format!("0x{}", hex::encode(message.as_bytes()))),
        &JsValue::from_str(&account),
    );
    let signature = call(&provider, "personal_sign", params)
        .await?
        .as_string()
        .ok_or_else(|| JsError::new("personal_sign did not return a string"))?;
    let attestation = Attestation { message, signature };
    attestation::verify(
        &attestation,
        now,
        &Expect::new().with_chain_id(chain_id).with_peer(peer),
    )
    .map_err(|e| JsError::new(&format!("the wallet's signature does not verify: {e}")))?;
    Ok(serde_json::to_string(&attestation)?)
}

/// Decrypts a V3 keystore: `{"secret","address","peer_id"}` as JSON. Slow by design (scrypt):
/// call it from a worker.
#[wasm_bindgen(js_name = decryptKeystore)]
pub fn decrypt_keystore(json: &str, password: &str) -> Result<String, JsError> {
    let key = keystore::decrypt_keystore(json.as_bytes(), password)?;
    Ok(json!({
        "secret": format!("0x{}", hex::encode(key.secret_bytes())),
        "address": key.address().to_string(),
        "peer_id": key.peer_id().to_string(),
    })
    .to_string())
}

/// `provider.request({method, params})`, awaited.
async fn call(provider: &JsValue, method: &str, params: js_sys::Array) -> Result<JsValue, JsError> {
    let request = js_sys::Reflect::get(provider, &"request".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| JsError::new("the provider has no request() method (not EIP-1193)"))?;
    let arguments = js_sys::Object::new();
    js_sys::Reflect::set(&arguments, &"method".into(), &method.into())
        .map_err(|_| JsError::new("cannot build the request"))?;
    js_sys::Reflect::set(&arguments, &"params".into(), &params)
        .map_err(|_| JsError::new("cannot build the request"))?;
    let promise = request
        .call1(provider, &arguments)
        .map_err(|e| wallet_error(method, e))?;
    JsFuture::from(js_sys::Promise::resolve(&promise))
        .await
        .map_err(|e| wallet_error(method, e))
}

/// A wallet's rejection (`{code, message}` per EIP-1193, or an Error) as a readable error:
/// `wallet METHOD (CODE): MESSAGE`, the code when the wallet gave one (the JS shell turns
/// 4001, the user's refusal, into `WalletRejectedError`).
fn wallet_error(method: &str, error: JsValue) -> JsError {
    let message = js_sys::Reflect::get(&error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "unknown error".into());
    let code = js_sys::Reflect::get(&error, &"code".into())
        .ok()
        .and_then(|c| c.as_f64())
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    JsError::new(&format!("wallet {method}{code}: {message}"))
}

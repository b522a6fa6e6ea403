//! A [`BeaconChain`] over HTTP JSON-RPC 2.0: [`serve`] answers for any chain (the dev chain in
//! `keep-light chain` and `keep-light dev`), [`RpcChain`] asks one: natively over hyper (a
//! relay's or a member's `--chain URL`), in a tab with `fetch`.
//!
//! Methods (params by position; amounts as decimal strings, since they exceed JSON's safe
//! integers; points, hashes and signatures as `0x` hex; objects in camelCase as in [`rules`]):
//!
//! | method | params | result |
//! |---|---|---|
//! | `keep_operatorStake` | `[address]` | `{"stake","minimum"}` |
//! | `keep_operator` | `[address]` | `{"stake","minimum","networkKey"}` |
//! | `keep_info` | `[]` | [`ChainInfo`] |
//! | `keep_blockNumber` | `[]` | the last mined block |
//! | `keep_getEvents` | `[fromBlock, waitMs?]` | [`EventPage`]; waits up to `waitMs` (at most 20 s) for a block with events |
//! | `keep_faucet` | `[address]` | the operator (dev chains) |
//! | `keep_registerNetworkKey` | `[{"message","signature"}]` | the operator |
//! | `keep_submitDkgResult` | `[DkgResult]` | `{"group"}` |
//! | `keep_requestEntry` | `[]` | `{"request"}` |
//! | `keep_submitEntry` | `[request, entry, submitterSeat]` | [`Served`] |
//! | `keep_groups` | `[]` | every [`GroupRecord`] |
//! | `keep_entry` | `[request?]` | [`Served`] or `null` |
//!
//! Errors follow JSON-RPC 2.0: -32700 parse error, -32600 invalid request (batches too),
//! -32601 unknown method, -32602 invalid params, -32000 refused by the chain's rules with
//! `data: {"reason": "<CallError::reason>"}`, -32603 the chain failed otherwise. The server
//! allows any origin (CORS), since pages on other origins are its first clients.
//!
//! [`rules`]: super::rules
//! [`ChainInfo`]: super::ChainInfo
//! [`EventPage`]: super::EventPage
//! [`Served`]: super::Served
//! [`GroupRecord`]: super::GroupRecord

use std::time::Duration;

use futures::future::{self, Either};
use serde_json::{json, Value};

use super::{
    BeaconChain, Chain, ChainError, ChainInfo, DkgResult, EventPage, GroupId, GroupRecord,
    OperatorStake, OperatorView, RequestId, Served,
};
use crate::{
    beacon::dkg::Index,
    identity::{attestation::Attestation, Address},
    platform,
};

#[cfg(not(target_arch = "wasm32"))]
pub use server::{dispatch, serve, spawn_server, MAX_REQUEST};

/// Replies larger than this are refused by the client (a page of 1,000 events is ≈ 1 MB at
/// worst: DKG starts of 64 seats).
const MAX_REPLY: usize = 8 * 1024 * 1024;
/// How long the client waits for a reply, beyond a long poll's own wait.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a `keep_getEvents` call may wait for a block.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// A chain reached over HTTP JSON-RPC (`http://host:port/path`; in a tab `https://` too).
#[derive(Debug, Clone)]
pub struct RpcChain {
    url: String,
    /// Where hyper connects (`host:port`); a tab leaves that to `fetch`.
    #[cfg(not(target_arch = "wasm32"))]
    authority: String,
}

impl RpcChain {
    pub fn new(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("chain URL {url:?}: {e}"))?;
        // hyper's client here speaks plain HTTP; a page on https must use https (mixed content).
        let schemes: &[&str] = if cfg!(target_arch = "wasm32") {
            &["http", "https"]
        } else {
            &["http"]
        };
        if !uri
            .scheme_str()
            .is_some_and(|scheme| schemes.contains(&scheme))
        {
            return Err(format!(
                "chain URL {url:?}: scheme must be {}",
                schemes.join(" or ")
            ));
        }
        if uri.host().is_none() {
            return Err(format!("chain URL {url:?}: no host"));
        }
        Ok(Self {
            url: url.to_owned(),
            #[cfg(not(target_arch = "wasm32"))]
            authority: format!(
                "{}:{}",
                uri.host().unwrap_or_default(),
                uri.port_u16().unwrap_or(80)
            ),
        })
    }

    /// Sends one request and returns its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ChainError> {
        self.call_waiting(method, params, TIMEOUT).await
    }

    /// [`call`](Self::call) giving up after `timeout`.
    async fn call_waiting(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, ChainError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let post = std::pin::pin!(self.post(body.to_string()));
        let reply = match future::select(post, platform::sleep(timeout)).await {
            Either::Left((reply, _)) => reply?,
            Either::Right(_) => {
                return Err(ChainError::Unreachable(format!(
                    "no reply within {timeout:?}"
                )))
            }
        };
        let mut reply: Value = serde_json::from_slice(&reply)
            .map_err(|e| ChainError::BadReply(format!("not JSON: {e}")))?;
        if let Some(error) = reply.get("error") {
            let reason = error["data"]["reason"].as_str();
            return Err(match reason {
                Some(reason) if error["code"] == json!(REFUSED) => ChainError::Refused {
                    reason: reason.to_owned(),
                    message: error["message"].as_str().unwrap_or_default().to_owned(),
                },
                _ => ChainError::BadReply(error.to_string()),
            });
        }
        reply
            .get_mut("result")
            .map(Value::take)
            .ok_or_else(|| ChainError::BadReply("no result".into()))
    }

    /// A call whose result is a `T`.
    fn typed<T: serde::de::DeserializeOwned + 'static>(
        &self,
        method: &'static str,
        params: Value,
    ) -> platform::BoxFuture<'static, Result<T, ChainError>> {
        let chain = self.clone();
        Box::pin(async move { decode(chain.call(method, params).await?) })
    }

    #[cfg(not(target_arch = "wasm32"))]
    async fn post(&self, body: String) -> Result<Vec<u8>, ChainError> {
        use http_body_util::{BodyExt, Full, Limited};
        use hyper::{body::Bytes, Request};
        use hyper_util::rt::TokioIo;

        let unreachable = |e: &dyn std::fmt::Display| ChainError::Unreachable(e.to_string());
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(connection);
        let request = Request::post(&self.url)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| unreachable(&e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(&e))?;
        if !response.status().is_success() {
            return Err(ChainError::Unreachable(format!(
                "HTTP {}",
                response.status()
            )));
        }
        Ok(Limited::new(response.into_body(), MAX_REPLY)
            .collect()
            .await
            .map_err(|e| ChainError::BadReply(e.to_string()))?
            .to_bytes()
            .to_vec())
    }

    #[cfg(target_arch = "wasm32")]
    async fn post(&self, body: String) -> Result<Vec<u8>, ChainError> {
        use wasm_bindgen::{prelude::wasm_bindgen, JsCast, JsValue};
        use wasm_bindgen_futures::JsFuture;

        #[wasm_bindgen]
        extern "C" {
            // The global `fetch`: a window's or a worker's alike.
            #[wasm_bindgen(js_name = fetch)]
            fn fetch_with_init(input: &str, init: &web_sys::RequestInit) -> js_sys::Promise;
        }
        // A failed fetch rejects with a TypeError whose message is all there is to say.
        let unreachable = |error: JsValue| {
            ChainError::Unreachable(
                js_sys::Reflect::get(&error, &"message".into())
                    .ok()
                    .and_then(|m| m.as_string())
                    .unwrap_or_else(|| format!("{error:?}")),
            )
        };
        let headers = web_sys::Headers::new().map_err(unreachable)?;
        headers
            .set("content-type", "application/json")
            .map_err(unreachable)?;
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(&body));
        let response: web_sys::Response = JsFuture::from(fetch_with_init(&self.url, &init))
            .await
            .map_err(unreachable)?
            .unchecked_into();
        if !response.ok() {
            return Err(ChainError::Unreachable(format!(
                "HTTP {}",
                response.status()
            )));
        }
        let text = JsFuture::from(response.text().map_err(unreachable)?)
            .await
            .map_err(unreachable)?
            .as_string()
            .unwrap_or_default();
        if text.len() > MAX_REPLY {
            return Err(ChainError::BadReply(format!(
                "reply of {} bytes, over {MAX_REPLY}",
                text.len()
            )));
        }
        Ok(text.into_bytes())
    }
}

impl Chain for RpcChain {
    fn operator_stake(
        &self,
        operator: Address,
    ) -> platform::BoxFuture<'static, Result<OperatorStake, ChainError>> {
        let chain = self.clone();
        Box::pin(async move {
            let result = chain
                .call("keep_operatorStake", json!([operator.to_string()]))
                .await?;
            let amount = |field: &str| {
                result
                    .get(field)
                    .and_then(Value::as_str)
                    .and_then(|text| text.parse::<u128>().ok())
                    .ok_or_else(|| ChainError::BadReply(format!("{field} missing or malformed")))
            };
            Ok(OperatorStake {
                stake: amount("stake")?,
                minimum: amount("minimum")?,
            })
        })
    }
}

/// The JSON-RPC error code of a call the chain's rules refused.
const REFUSED: i64 = -32000;

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ChainError> {
    serde_json::from_value(value).map_err(|e| ChainError::BadReply(format!("result: {e}")))
}

impl BeaconChain for RpcChain {
    fn info(&self) -> platform::BoxFuture<'static, Result<ChainInfo, ChainError>> {
        self.typed("keep_info", json!([]))
    }

    fn block_number(&self) -> platform::BoxFuture<'static, Result<u64, ChainError>> {
        self.typed("keep_blockNumber", json!([]))
    }

    fn events(
        &self,
        from_block: u64,
        wait: Duration,
    ) -> platform::BoxFuture<'static, Result<EventPage, ChainError>> {
        let chain = self.clone();
        let wait = wait.min(MAX_WAIT);
        Box::pin(async move {
            let params = json!([from_block, wait.as_millis() as u64]);
            decode(
                chain
                    .call_waiting("keep_getEvents", params, wait + TIMEOUT)
                    .await?,
            )
        })
    }

    fn operator(
        &self,
        operator: Address,
    ) -> platform::BoxFuture<'static, Result<OperatorView, ChainError>> {
        self.typed("keep_operator", json!([operator]))
    }

    fn faucet(
        &self,
        operator: Address,
    ) -> platform::BoxFuture<'static, Result<OperatorView, ChainError>> {
        self.typed("keep_faucet", json!([operator]))
    }

    fn register_network_key(
        &self,
        attestation: Attestation,
    ) -> platform::BoxFuture<'static, Result<OperatorView, ChainError>> {
        self.typed("keep_registerNetworkKey", json!([attestation]))
    }

    fn submit_dkg_result(
        &self,
        result: DkgResult,
    ) -> platform::BoxFuture<'static, Result<GroupId, ChainError>> {
        let call = self.typed::<Value>("keep_submitDkgResult", json!([result]));
        Box::pin(async move { decode(call.await?["group"].take()) })
    }

    fn request_entry(&self) -> platform::BoxFuture<'static, Result<RequestId, ChainError>> {
        let call = self.typed::<Value>("keep_requestEntry", json!([]));
        Box::pin(async move { decode(call.await?["request"].take()) })
    }

    fn submit_entry(
        &self,
        request: RequestId,
        entry: Vec<u8>,
        submitter: Index,
    ) -> platform::BoxFuture<'static, Result<Served, ChainError>> {
        let entry = format!("0x{}", hex::encode(entry));
        self.typed("keep_submitEntry", json!([request, entry, submitter]))
    }

    fn groups(&self) -> platform::BoxFuture<'static, Result<Vec<GroupRecord>, ChainError>> {
        self.typed("keep_groups", json!([]))
    }

    fn served(
        &self,
        request: Option<RequestId>,
    ) -> platform::BoxFuture<'static, Result<Option<Served>, ChainError>> {
        let params = match request {
            Some(request) => json!([request]),
            None => json!([]),
        };
        self.typed("keep_entry", params)
    }
}

/// The server: native only, on tokio sockets.
#[cfg(not(target_arch = "wasm32"))]
mod server {
    use std::{net::SocketAddr, sync::Arc, time::Duration};

    use http_body_util::{BodyExt, Full, Limited};
    use hyper::{
        body::Bytes,
        header::{self, HeaderValue},
        server::conn::http1,
        service::service_fn,
        Method, Request, Response, StatusCode,
    };
    use hyper_util::rt::TokioIo;
    use serde_json::{json, Value};
    use tokio::net::TcpListener;

    use super::{MAX_WAIT, REFUSED};
    use crate::{
        beacon::dkg::Index,
        chain::{BeaconChain, ChainError, DkgResult, RequestId},
        identity::attestation::Attestation,
    };

    /// Request bodies larger than this are refused (a 64-seat DKG result is ≈ 10 KiB).
    pub const MAX_REQUEST: usize = 64 * 1024;
    /// Connections served at once; further ones wait to be accepted (long polls hold theirs).
    pub const MAX_CONNECTIONS: usize = 1024;

    /// Serves `chain` on `listener` until the future is dropped. Each connection runs on its
    /// own task; a broken one ends alone.
    pub async fn serve(listener: TcpListener, chain: Arc<dyn BeaconChain>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors and the like: wait, the next accept may succeed.
                    tracing::warn!(%error, "chain rpc accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let chain = chain.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = service_fn(move |request| answer(chain.clone(), request));
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, "chain rpc connection ended");
                }
            });
        }
    }

    async fn answer(
        chain: Arc<dyn BeaconChain>,
        request: Request<hyper::body::Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let mut response = if request.method() == Method::OPTIONS {
            // A page's CORS preflight for its `content-type: application/json` POST.
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            let headers = response.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
            response
        } else {
            let reply = if request.method() != Method::POST {
                error_reply(Value::Null, -32600, "JSON-RPC requests are POSTed")
            } else {
                match Limited::new(request.into_body(), MAX_REQUEST)
                    .collect()
                    .await
                {
                    Ok(body) => dispatch(&*chain, &body.to_bytes()).await,
                    Err(error) => {
                        error_reply(Value::Null, -32600, &format!("request body: {error}"))
                    }
                }
            };
            let mut response = Response::new(Full::new(Bytes::from(reply.to_string())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        };
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        Ok(response)
    }

    fn error_reply(id: Value, code: i64, message: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
    }

    /// One JSON-RPC request → its reply object.
    pub async fn dispatch(chain: &dyn BeaconChain, body: &[u8]) -> Value {
        let request: Value = match serde_json::from_slice(body) {
            Ok(request) => request,
            Err(error) => {
                return error_reply(Value::Null, -32700, &format!("parse error: {error}"))
            }
        };
        let Some(object) = request.as_object() else {
            return error_reply(
                Value::Null,
                -32600,
                "not a request object (batches are not served)",
            );
        };
        let id = object.get("id").cloned().unwrap_or(Value::Null);
        if object.get("jsonrpc") != Some(&json!("2.0")) {
            return error_reply(id, -32600, "jsonrpc must be \"2.0\"");
        }
        let Some(method) = object.get("method").and_then(Value::as_str) else {
            return error_reply(id, -32600, "method missing");
        };
        let params = match object.get("params").cloned().unwrap_or(json!([])) {
            Value::Array(params) => Params(params),
            _ => return error_reply(id, -32602, "params must be an array"),
        };
        match call(chain, method, &params).await {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(Failure::UnknownMethod) => {
                error_reply(id, -32601, &format!("unknown method {method:?}"))
            }
            Err(Failure::Params(error)) => error_reply(id, -32602, &format!("params: {error}")),
            Err(Failure::Chain(ChainError::Refused { reason, message })) => json!({
                "jsonrpc": "2.0", "id": id,
                "error": {"code": REFUSED, "message": message, "data": {"reason": reason}},
            }),
            Err(Failure::Chain(error)) => error_reply(id, -32603, &error.to_string()),
        }
    }

    enum Failure {
        UnknownMethod,
        Params(String),
        Chain(ChainError),
    }

    impl From<ChainError> for Failure {
        fn from(error: ChainError) -> Self {
            Failure::Chain(error)
        }
    }

    /// Positional params, read by type.
    struct Params(Vec<Value>);

    impl Params {
        /// Exactly `count` params, else an error naming the expected shape.
        fn arity(&self, min: usize, max: usize, shape: &str) -> Result<(), Failure> {
            if (min..=max).contains(&self.0.len()) {
                Ok(())
            } else {
                Err(Failure::Params(format!("expected {shape}")))
            }
        }

        fn get<T: serde::de::DeserializeOwned>(&self, at: usize, name: &str) -> Result<T, Failure> {
            let value = self.0.get(at).cloned().unwrap_or(Value::Null);
            serde_json::from_value(value).map_err(|e| Failure::Params(format!("{name}: {e}")))
        }

        fn optional<T: serde::de::DeserializeOwned>(
            &self,
            at: usize,
            name: &str,
        ) -> Result<Option<T>, Failure> {
            match self.0.get(at) {
                None | Some(Value::Null) => Ok(None),
                Some(_) => self.get(at, name).map(Some),
            }
        }
    }

    fn to_value<T: serde::Serialize>(value: T) -> Result<Value, Failure> {
        serde_json::to_value(value).map_err(|e| Failure::Chain(ChainError::BadReply(e.to_string())))
    }

    async fn call(
        chain: &dyn BeaconChain,
        method: &str,
        params: &Params,
    ) -> Result<Value, Failure> {
        match method {
            "keep_operatorStake" => {
                params.arity(1, 1, "[address]")?;
                let stake = chain.operator_stake(params.get(0, "address")?).await?;
                Ok(json!({"stake": stake.stake.to_string(), "minimum": stake.minimum.to_string()}))
            }
            "keep_operator" => {
                params.arity(1, 1, "[address]")?;
                to_value(chain.operator(params.get(0, "address")?).await?)
            }
            "keep_info" => {
                params.arity(0, 0, "[]")?;
                to_value(chain.info().await?)
            }
            "keep_blockNumber" => {
                params.arity(0, 0, "[]")?;
                to_value(chain.block_number().await?)
            }
            "keep_getEvents" => {
                params.arity(1, 2, "[fromBlock, waitMs?]")?;
                let from: u64 = params.get(0, "fromBlock")?;
                let wait: u64 = params.optional(1, "waitMs")?.unwrap_or(0);
                let wait = Duration::from_millis(wait).min(MAX_WAIT);
                to_value(chain.events(from, wait).await?)
            }
            "keep_faucet" => {
                params.arity(1, 1, "[address]")?;
                to_value(chain.faucet(params.get(0, "address")?).await?)
            }
            "keep_registerNetworkKey" => {
                params.arity(1, 1, "[{message, signature}]")?;
                let attestation: Attestation = params.get(0, "attestation")?;
                to_value(chain.register_network_key(attestation).await?)
            }
            "keep_submitDkgResult" => {
                params.arity(1, 1, "[DkgResult]")?;
                let result: DkgResult = params.get(0, "result")?;
                Ok(json!({"group": chain.submit_dkg_result(result).await?}))
            }
            "keep_requestEntry" => {
                params.arity(0, 0, "[]")?;
                Ok(json!({"request": chain.request_entry().await?}))
            }
            "keep_submitEntry" => {
                params.arity(3, 3, "[request, entry, submitterSeat]")?;
                let request: RequestId = params.get(0, "request")?;
                let entry: String = params.get(1, "entry")?;
                let entry = entry
                    .strip_prefix("0x")
                    .and_then(|digits| hex::decode(digits).ok())
                    .ok_or_else(|| Failure::Params("entry: expected 0x hex".into()))?;
                let submitter: Index = params.get(2, "submitterSeat")?;
                to_value(chain.submit_entry(request, entry, submitter).await?)
            }
            "keep_groups" => {
                params.arity(0, 0, "[]")?;
                to_value(chain.groups().await?)
            }
            "keep_entry" => {
                params.arity(0, 1, "[request?]")?;
                to_value(chain.served(params.optional(0, "request")?).await?)
            }
            _ => Err(Failure::UnknownMethod),
        }
    }

    /// Binds `address` and serves `chain` on a background task; returns the URL it answers at.
    pub async fn spawn_server(
        address: SocketAddr,
        chain: Arc<dyn BeaconChain>,
    ) -> std::io::Result<String> {
        let listener = TcpListener::bind(address).await?;
        let url = format!("http://{}/", listener.local_addr()?);
        tokio::spawn(serve(listener, chain));
        Ok(url)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::sync::Arc;

    use tokio::net::TcpListener;

    use super::*;
    use crate::chain::local::LocalChain;

    #[tokio::test]
    async fn stakes_cross_http_and_bad_requests_get_json_rpc_errors() {
        let chain = LocalChain::new(10);
        let staked = Address([1; 20]);
        chain.set_stake(staked, 25).unwrap();
        let url = spawn_server("127.0.0.1:0".parse().unwrap(), Arc::new(chain.clone()))
            .await
            .unwrap();
        let client = RpcChain::new(&url).unwrap();
        let stake = client.operator_stake(staked).await.unwrap();
        assert_eq!(
            stake,
            OperatorStake {
                stake: 25,
                minimum: 10
            }
        );
        assert!(stake.eligible());
        assert_eq!(
            client.operator_stake(Address([2; 20])).await.unwrap().stake,
            0
        );

        let code = |reply: Value| reply["error"]["code"].as_i64().unwrap();
        assert_eq!(code(dispatch(&chain, b"{not json").await), -32700);
        assert_eq!(code(dispatch(&chain, b"[]").await), -32600);
        assert_eq!(
            code(dispatch(&chain, br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#).await),
            -32600
        );
        assert_eq!(
            code(dispatch(&chain, br#"{"jsonrpc":"2.0","id":1,"method":"x"}"#).await),
            -32601
        );
        let bad = br#"{"jsonrpc":"2.0","id":7,"method":"keep_operatorStake","params":["0x12"]}"#;
        let reply = dispatch(&chain, bad).await;
        assert_eq!(
            (code(reply.clone()), reply["id"].clone()),
            (-32602, json!(7))
        );
        match client.call("keep_nothing", json!([])).await {
            Err(ChainError::BadReply(text)) => assert!(text.contains("-32601"), "{text}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_chain_that_accepts_and_never_answers_times_out() {
        // Accepts connections and reads requests, answers nothing, closes nothing.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let started = crate::platform::now();
        let answer = RpcChain::new(&url)
            .unwrap()
            .operator_stake(Address([1; 20]))
            .await;
        match answer {
            Err(ChainError::Unreachable(text)) => assert!(text.contains("no reply within 5s")),
            other => panic!("{other:?}"),
        }
        // The client's own limit ended the wait, not anything the server did.
        assert!(started.elapsed() >= TIMEOUT, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn pages_on_other_origins_may_ask() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let url = spawn_server("127.0.0.1:0".parse().unwrap(), Arc::new(LocalChain::new(1)))
            .await
            .unwrap();
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        let ask = |request: String| async move {
            let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.unwrap();
            reply.to_ascii_lowercase()
        };
        let preflight = ask(format!(
            "OPTIONS / HTTP/1.1\r\nhost: {host}\r\norigin: http://page.test\r\n\
             access-control-request-method: POST\r\n\
             access-control-request-headers: content-type\r\nconnection: close\r\n\r\n"
        ))
        .await;
        assert!(preflight.starts_with("http/1.1 204"), "{preflight}");
        for line in [
            "access-control-allow-origin: *",
            "access-control-allow-methods: post",
            "access-control-allow-headers: content-type",
        ] {
            assert!(preflight.contains(line), "{line} missing: {preflight}");
        }
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"keep_operatorStake","params":["0x0000000000000000000000000000000000000001"]}"#;
        let reply = ask(format!(
            "POST / HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ))
        .await;
        assert!(reply.contains("access-control-allow-origin: *"), "{reply}");
        assert!(reply.contains(r#""minimum":"1""#), "{reply}");
    }

    /// The whole beacon cycle over HTTP: stake, genesis DKG, result, request, entry; each
    /// refusal arrives as a typed reason; a long poll wakes at the block.
    #[tokio::test]
    async fn the_beacon_contract_answers_over_http() {
        use std::collections::BTreeSet;

        use crate::{
            beacon::{dkg, entry, threshold},
            chain::{rules::SignatureBytes, Event},
            identity::OperatorKey,
        };

        let chain = LocalChain::new(1);
        let url = spawn_server("127.0.0.1:0".parse().unwrap(), Arc::new(chain.clone()))
            .await
            .unwrap();
        let client = RpcChain::new(&url).unwrap();
        assert_eq!(client.info().await.unwrap().group_size, 5);
        let keys: Vec<OperatorKey> = (0..5).map(|_| OperatorKey::generate()).collect();
        for key in &keys {
            let view = client.faucet(key.address()).await.unwrap();
            assert_eq!(view.stake, 1);
            assert_eq!(view.network_key, Some(key.address()));
        }
        // Block 1 holds the stakes; the genesis DKG starts in block 2.
        let poll = tokio::spawn({
            let client = client.clone();
            async move { client.events(1, Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        chain.mine();
        let page = poll.await.unwrap().unwrap();
        assert_eq!((page.events.len(), page.through), (5, 1));
        chain.mine();
        let page = client.events(2, Duration::ZERO).await.unwrap();
        let Event::DkgStarted {
            session, members, ..
        } = page.events[0].event.clone()
        else {
            panic!("{page:?}")
        };

        // A dealt group key, signed by every seat: the chain checks what a DKG would submit.
        let mut rng = rand::thread_rng();
        let dealing = threshold::deal(5, 3, &mut rng).unwrap();
        let hash = dkg::result_hash(&dealing.group_public_key, &BTreeSet::new());
        let key_of = |address: &Address| keys.iter().find(|k| k.address() == *address).unwrap();
        let result = DkgResult {
            session,
            group_key: dealing.group_public_key.to_bytes().to_vec(),
            misbehaved: vec![],
            signatures: (1..=5)
                .map(|i| {
                    let signature = dkg::sign_result(key_of(&members[i - 1]), &hash);
                    (i as u32, SignatureBytes(signature))
                })
                .collect(),
            submitter: 1,
        };
        let mut forged = result.clone();
        forged.signatures[2].1 .0[3] ^= 1;
        let refused = client.submit_dkg_result(forged).await.unwrap_err();
        assert_eq!(refused.refusal(), Some("bad_result_signature"), "{refused}");
        assert_eq!(client.submit_dkg_result(result.clone()).await.unwrap(), 0);
        let again = client.submit_dkg_result(result).await.unwrap_err();
        assert_eq!(again.refusal(), Some("already_submitted"));
        assert_eq!(client.groups().await.unwrap().len(), 1);

        let request = client.request_entry().await.unwrap();
        let message = entry::entry_message(&entry::genesis());
        let shares: Vec<_> = dealing.shares[..3]
            .iter()
            .map(|s| threshold::SignatureShare {
                index: s.index,
                signature: s.sign(&message).signature,
            })
            .collect();
        let made = threshold::combine(3, &shares).unwrap();
        let first = entry::first_submitter(&entry::genesis(), 5);
        let short = client
            .submit_entry(request, made.to_bytes()[..32].to_vec(), first)
            .await
            .unwrap_err();
        assert_eq!(short.refusal(), Some("bad_entry"));
        let served = client
            .submit_entry(request, made.to_bytes().to_vec(), first)
            .await
            .unwrap();
        assert_eq!(served.entry, made);
        assert_eq!(client.served(Some(request)).await.unwrap(), Some(served));
        assert_eq!(client.served(None).await.unwrap(), Some(served));
        assert_eq!(client.served(Some(99)).await.unwrap(), None);

        // Malformed params are -32602, not refusals.
        let code = |reply: Value| reply["error"]["code"].as_i64().unwrap();
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"keep_getEvents","params":["x"]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"keep_getEvents","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"keep_submitEntry","params":[0,"zz",1]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"keep_submitDkgResult","params":[{"session":"0x00"}]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"keep_registerNetworkKey","params":[{"message":1}]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"keep_requestEntry","params":[1]}"#,
        ] {
            assert_eq!(
                code(dispatch(&chain, body.as_bytes()).await),
                -32602,
                "{body}"
            );
        }
        let reply = dispatch(
            &chain,
            br#"{"jsonrpc":"2.0","id":3,"method":"keep_submitEntry","params":[7,"0x00",1]}"#,
        )
        .await;
        assert_eq!(code(reply.clone()), -32000);
        assert_eq!(reply["error"]["data"]["reason"], "unknown_request");
    }

    #[tokio::test]
    async fn an_unreachable_chain_is_an_error_not_a_hang() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let error = RpcChain::new(&url)
            .unwrap()
            .operator_stake(Address([1; 20]))
            .await
            .unwrap_err();
        assert!(matches!(error, ChainError::Unreachable(_)), "{error:?}");
        assert!(RpcChain::new("https://example.invalid/").is_err());
        assert!(RpcChain::new("not a url").is_err());
    }
}

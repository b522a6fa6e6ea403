//! A [`Chain`] over HTTP JSON-RPC 2.0: [`serve`] answers for any chain (the dev chain in
//! `keep-light chain`), [`RpcChain`] asks one: natively over hyper (a relay's `--chain URL`),
//! in a tab with `fetch` (a browser member's `staked` firewall).
//!
//! Methods (params by position, amounts as decimal strings since they exceed JSON's safe
//! integers):
//! - `keep_operatorStake ["0x<address>"]` → `{"stake":"…","minimum":"…"}`.
//!
//! Errors follow JSON-RPC 2.0: -32700 parse error, -32600 invalid request (batches too),
//! -32601 unknown method, -32602 invalid params. The server allows any origin (CORS), since
//! pages on other origins are its first clients.

use std::time::Duration;

use futures::future::{self, Either};
use serde_json::{json, Value};

use super::{Chain, ChainError, OperatorStake};
use crate::{identity::Address, platform};

#[cfg(not(target_arch = "wasm32"))]
pub use server::{dispatch, serve, spawn_server, MAX_REQUEST};

/// Replies larger than this are refused by the client.
const MAX_REPLY: usize = 1024 * 1024;
/// How long the client waits for a reply.
const TIMEOUT: Duration = Duration::from_secs(5);

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
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let post = std::pin::pin!(self.post(body.to_string()));
        let reply = match future::select(post, platform::sleep(TIMEOUT)).await {
            Either::Left((reply, _)) => reply?,
            Either::Right(_) => {
                return Err(ChainError::Unreachable(format!(
                    "no reply within {TIMEOUT:?}"
                )))
            }
        };
        let mut reply: Value = serde_json::from_slice(&reply)
            .map_err(|e| ChainError::BadReply(format!("not JSON: {e}")))?;
        if let Some(error) = reply.get("error") {
            return Err(ChainError::BadReply(error.to_string()));
        }
        reply
            .get_mut("result")
            .map(Value::take)
            .ok_or_else(|| ChainError::BadReply("no result".into()))
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

    use crate::{chain::Chain, identity::Address};

    /// Request bodies larger than this are refused (a stake query is under 200 bytes).
    pub const MAX_REQUEST: usize = 64 * 1024;

    /// Serves `chain` on `listener` until the future is dropped. Each connection runs on its
    /// own task; a broken one ends alone.
    pub async fn serve(listener: TcpListener, chain: Arc<dyn Chain>) {
        loop {
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
        chain: Arc<dyn Chain>,
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
    pub async fn dispatch(chain: &dyn Chain, body: &[u8]) -> Value {
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
        let params = object.get("params").cloned().unwrap_or(Value::Null);
        match object.get("method").and_then(Value::as_str) {
            Some("keep_operatorStake") => {
                let operator = params
                    .as_array()
                    .filter(|p| p.len() == 1)
                    .and_then(|p| p[0].as_str())
                    .ok_or_else(|| "params: [\"0x<address>\"]".to_owned())
                    .and_then(|text| text.parse::<Address>().map_err(|e| e.to_string()));
                match operator {
                    Err(error) => error_reply(id, -32602, &error),
                    Ok(operator) => match chain.operator_stake(operator).await {
                        Ok(stake) => json!({"jsonrpc": "2.0", "id": id, "result": {
                            "stake": stake.stake.to_string(),
                            "minimum": stake.minimum.to_string(),
                        }}),
                        Err(error) => error_reply(id, -32000, &error.to_string()),
                    },
                }
            }
            Some(method) => error_reply(id, -32601, &format!("unknown method {method:?}")),
            None => error_reply(id, -32600, "method missing"),
        }
    }

    /// Binds `address` and serves `chain` on a background task; returns the URL it answers at.
    pub async fn spawn_server(
        address: SocketAddr,
        chain: Arc<dyn Chain>,
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
        chain.set_stake(staked, 25);
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

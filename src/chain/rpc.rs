//! A [`Chain`] over HTTP JSON-RPC 2.0: [`serve`] answers for any chain (the dev chain in
//! `keep-light chain`), [`RpcChain`] asks one (a relay's `--chain URL`).
//!
//! Methods (params by position, amounts as decimal strings since they exceed JSON's safe
//! integers):
//! - `keep_operatorStake ["0x<address>"]` → `{"stake":"…","minimum":"…"}`.
//!
//! Errors follow JSON-RPC 2.0: -32700 parse error, -32600 invalid request (batches too),
//! -32601 unknown method, -32602 invalid params.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Bytes, server::conn::http1, service::service_fn, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use super::{Chain, ChainError, OperatorStake};
use crate::{identity::Address, platform};

/// Request bodies larger than this are refused (a stake query is under 200 bytes).
pub const MAX_REQUEST: usize = 64 * 1024;
/// Replies larger than this are refused by the client.
const MAX_REPLY: usize = 1024 * 1024;
/// How long the client waits for a reply.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `chain` on `listener` until the future is dropped. Each connection runs on its own
/// task; a broken one ends alone.
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
    let reply = if request.method() != hyper::Method::POST {
        error_reply(Value::Null, -32600, "JSON-RPC requests are POSTed")
    } else {
        match Limited::new(request.into_body(), MAX_REQUEST)
            .collect()
            .await
        {
            Ok(body) => dispatch(&*chain, &body.to_bytes()).await,
            Err(error) => error_reply(Value::Null, -32600, &format!("request body: {error}")),
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(reply.to_string())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
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
        Err(error) => return error_reply(Value::Null, -32700, &format!("parse error: {error}")),
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

/// A chain reached over HTTP JSON-RPC (`http://host:port/path`).
#[derive(Debug, Clone)]
pub struct RpcChain {
    uri: Uri,
    authority: String,
}

impl RpcChain {
    pub fn new(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("chain URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("chain URL {url:?}: only http:// is served"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("chain URL {url:?}: no host"))?
            .to_string();
        let authority = if authority.contains(':') {
            authority
        } else {
            format!("{authority}:80")
        };
        Ok(Self { uri, authority })
    }

    /// Sends one request and returns its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ChainError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let reply = tokio::time::timeout(TIMEOUT, self.post(body.to_string()))
            .await
            .map_err(|_| ChainError::Unreachable(format!("no reply within {TIMEOUT:?}")))??;
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

    async fn post(&self, body: String) -> Result<Bytes, ChainError> {
        let unreachable = |e: &dyn std::fmt::Display| ChainError::Unreachable(e.to_string());
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(connection);
        let request = Request::post(self.uri.clone())
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
            .to_bytes())
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

/// Binds `address` and serves `chain` on a background task; returns the URL it answers at.
pub async fn spawn_server(address: SocketAddr, chain: Arc<dyn Chain>) -> std::io::Result<String> {
    let listener = TcpListener::bind(address).await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(serve(listener, chain));
    Ok(url)
}

#[cfg(test)]
mod tests {
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

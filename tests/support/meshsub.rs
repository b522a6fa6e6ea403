//! Gossipsub's wire format by hand, for peers that must send what no honest node would: the
//! altered-in-transit tests and the flood test's junk sender (`examples/flood.rs`).

use std::io;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::{request_response, StreamProtocol};

/// The gossipsub protocol our nodes listen on.
pub const MESHSUB: StreamProtocol = StreamProtocol::new("/meshsub/1.1.0");

/// gossipsub's RPC (rpc.proto), only what a publisher sends.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Rpc {
    #[prost(message, repeated, tag = "2")]
    pub publish: Vec<PubsubMessage>,
}

/// A pubsub message; wire v1 leaves `from`, `seqno` and `signature` out (anonymous mode).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PubsubMessage {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub from: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub data: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub seqno: Option<Vec<u8>>,
    #[prost(string, required, tag = "4")]
    pub topic: String,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub signature: Option<Vec<u8>>,
}

/// An anonymous pubsub message (the wire-v1 form) carrying `data` on `topic`.
pub fn anonymous(topic: &str, data: Vec<u8>) -> PubsubMessage {
    PubsubMessage {
        from: None,
        data: Some(data),
        seqno: None,
        topic: topic.into(),
        signature: None,
    }
}

/// Writes a request's bytes as they are onto a `/meshsub/1.1.0` stream; reads nothing back
/// (gossipsub answers on streams of its own), so each exchange just waits out its timeout.
/// Inbound streams (the peer's own gossip) are read to their end and dropped.
#[derive(Clone, Default)]
pub struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = ();

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut sink = Vec::new();
        io.read_to_end(&mut sink).await?;
        Ok(sink)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> io::Result<()> {
        futures::future::pending().await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&bytes).await?;
        io.flush().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        (): (),
    ) -> io::Result<()> {
        Ok(())
    }
}

/// A request-response behaviour that writes raw frames on `/meshsub/1.1.0` streams, each
/// waiting an hour for the answer that never comes (so its stream stays open).
pub fn raw_behaviour() -> request_response::Behaviour<RawCodec> {
    request_response::Behaviour::with_codec(
        RawCodec,
        [(MESHSUB, request_response::ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(std::time::Duration::from_secs(3600)),
    )
}

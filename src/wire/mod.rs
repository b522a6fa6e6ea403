//! The wire: generated protobuf types, size-checked decoding and envelope signatures
//! ([`signature`]).
//!
//! Every byte that arrives from the network passes [`decode_envelope`] before anything else
//! looks at it: the size limit is checked before the decoder allocates, and every failure is a
//! [`WireError`] whose [`WireError::reason`] is the counter the node increments.

use prost::Message as _;

pub mod signature;

#[allow(clippy::all, missing_docs)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/keeplight.wire.rs"));
}

pub use generated::{Envelope, Text};

/// Envelope type of [`Text`] on group channels.
pub const CHANNEL_TEXT_TYPE: &str = "channel.Text";

/// Default hard limit for one pubsub message (DESIGN.md section 4).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Why a message was not accepted; each maps to a counted rejection reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The message is larger than the configured limit. Drop it; do not decode.
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    Oversize { size: usize, limit: usize },
    /// The bytes are not a valid envelope. Drop it and penalise the sender.
    #[error("undecodable envelope: {0}")]
    Undecodable(String),
}

impl WireError {
    /// Stable short name used in counters and events.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Oversize { .. } => "oversize",
            WireError::Undecodable(_) => "undecodable",
        }
    }
}

/// Decodes an envelope after checking `bytes` against `limit`.
pub fn decode_envelope(bytes: &[u8], limit: usize) -> Result<Envelope, WireError> {
    if bytes.len() > limit {
        return Err(WireError::Oversize {
            size: bytes.len(),
            limit,
        });
    }
    Envelope::decode(bytes).map_err(|e| WireError::Undecodable(e.to_string()))
}

/// Encodes an envelope; fails when the result would exceed `limit`, so a node never sends what
/// its peers must reject.
pub fn encode_envelope(envelope: &Envelope, limit: usize) -> Result<Vec<u8>, WireError> {
    let size = envelope.encoded_len();
    if size > limit {
        return Err(WireError::Oversize { size, limit });
    }
    Ok(envelope.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            r#type: "net.Text".into(),
            payload: b"hello".to_vec(),
            sender: vec![7; 20],
            sequence: 42,
            group: Vec::new(),
            signature: Vec::new(),
        }
    }

    #[test]
    fn round_trips() {
        let bytes = encode_envelope(&sample(), DEFAULT_MAX_MESSAGE_SIZE).unwrap();
        assert_eq!(
            decode_envelope(&bytes, DEFAULT_MAX_MESSAGE_SIZE).unwrap(),
            sample()
        );
    }

    #[test]
    fn oversize_is_rejected_before_decoding() {
        let bytes = encode_envelope(&sample(), DEFAULT_MAX_MESSAGE_SIZE).unwrap();
        let err = decode_envelope(&bytes, bytes.len() - 1).unwrap_err();
        assert_eq!(err.reason(), "oversize");
        assert!(encode_envelope(&sample(), 3).is_err());
    }

    #[test]
    fn garbage_is_undecodable() {
        // Field 1 declared as a length-delimited string running past the end.
        let err = decode_envelope(&[0x0a, 0xff, 0x01, 0x00], 1024).unwrap_err();
        assert_eq!(err.reason(), "undecodable");
    }
}

//! Wallet-delegated session keys: an operator's wallet signs an EIP-4361 (Sign-In with Ethereum)
//! message naming the session key's peer ID; peers verify it (DESIGN.md section 3).
//!
//! # Overview
//! An [`Attestation`] is `{"message": <exact SIWE text>, "signature": "0x<r‖s‖v>"}`. The message's
//! `Resources` list holds `urn:keep-light:peer:<peer-id>` for the session key, and it carries a
//! `Chain ID` and an `Expiration Time`. [`verify`] checks, in this order: sizes, the signature's
//! form and `v` (27/28 or 0/1), the address's EIP-55 checksum, the EIP-4361 grammar (via the
//! `siwe` crate, and the text must be in canonical form), ecrecover over the EIP-191 hash of the
//! exact text against the message's address, the chain id, the validity window, and the peer
//! resource. Each failure is its own [`AttestationError`] with a stable [`reason`](AttestationError::reason).
//!
//! # Usage
//! ```
//! use keep_light::identity::{attestation::{self, Expect}, OperatorKey};
//! let wallet = OperatorKey::generate();
//! let session = OperatorKey::generate();
//! let now = time::OffsetDateTime::now_utc();
//! let att = attestation::create(&wallet, &session.peer_id(), 1, "keep-light.example", now,
//!     std::time::Duration::from_secs(3600), "keeplight0001").unwrap();
//! let verified = attestation::verify(&att, now,
//!     &Expect::new().with_chain_id(1).with_peer(session.peer_id())).unwrap();
//! assert_eq!(verified.operator, wallet.address());
//! ```
//!
//! # Security notes
//! The domain and URI are not checked: any page may ask a wallet for a delegation, and what the
//! network trusts is the operator address that signed it, for the one peer it names, until it
//! expires. Time is an argument: callers pass the current time (tests pass a fixed one).

use std::{str::FromStr, time::Duration};

use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::{Address, OperatorKey};

/// The resource prefix naming the delegated peer.
pub const PEER_RESOURCE_PREFIX: &str = "urn:keep-light:peer:";
/// The longest SIWE text accepted (real ones are under 1 KiB).
pub const MAX_MESSAGE_LEN: usize = 8 * 1024;
/// The statement keep-light's messages carry.
pub const STATEMENT: &str = "Delegate my keep-light operator identity to this browser session key.";

/// A wallet's delegation to a session key, as exchanged and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// The exact EIP-4361 text the wallet signed.
    pub message: String,
    /// `0x` + 65 bytes r‖s‖v, hex.
    pub signature: String,
}

/// What a valid attestation establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The operator (wallet) address that signed.
    pub operator: Address,
    /// The session key's peer ID it names.
    pub peer_id: PeerId,
    /// The chain it is bound to.
    pub chain_id: u64,
    /// When it stops being valid.
    pub expires_at: OffsetDateTime,
}

/// What the verifier requires beyond validity. Defaults: any chain, any peer.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    chain_id: Option<u64>,
    peer: Option<PeerId>,
}

impl Expect {
    /// Requires nothing beyond validity.
    pub fn new() -> Self {
        Self::default()
    }
    /// Requires this chain id.
    pub fn with_chain_id(mut self, chain_id: u64) -> Self {
        self.chain_id = Some(chain_id);
        self
    }
    /// Requires the attestation to name this peer (the connecting one).
    pub fn with_peer(mut self, peer: PeerId) -> Self {
        self.peer = Some(peer);
        self
    }
}

/// Why an attestation was refused. All are final for this attestation: the caller should refuse
/// the peer (and, for a connecting peer, count and penalise it); a user seeing `expired` should
/// ask the wallet for a new one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// The message or signature exceeds the size limits.
    #[error("attestation too large: {0}")]
    TooLarge(String),
    /// The text is not a canonical EIP-4361 message.
    #[error("malformed SIWE message: {0}")]
    Malformed(String),
    /// The address line is not EIP-55 checksummed.
    #[error("address {0} is not EIP-55 checksummed")]
    BadChecksum(String),
    /// The signature is not 65 bytes of hex, or r/s are invalid.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// The recovery byte is not 27, 28, 0 or 1.
    #[error("invalid signature v = {0} (expected 27/28 or 0/1)")]
    WrongV(u8),
    /// The signature recovers to another address than the message's (tampered text or wrong signer).
    #[error("signed by {signer}, but the message names {stated}")]
    SignerMismatch {
        /// Recovered signer.
        signer: Address,
        /// The address in the message.
        stated: Address,
    },
    /// The chain id is not the expected one.
    #[error("chain id {got}, expected {expected}")]
    WrongChain {
        /// Expected chain id.
        expected: u64,
        /// The message's chain id.
        got: u64,
    },
    /// The message has no Expiration Time; keep-light requires one.
    #[error("the message has no Expiration Time")]
    NoExpiration,
    /// Now is at or after the Expiration Time.
    #[error("expired at {0}")]
    Expired(String),
    /// Now is before Not Before.
    #[error("not valid before {0}")]
    NotYetValid(String),
    /// No `urn:keep-light:peer:` resource, or more than one.
    #[error("the message must name exactly one keep-light peer resource, found {0}")]
    NoPeerResource(usize),
    /// The peer resource names another peer than the connecting one.
    #[error("the attestation is for peer {got}, not {expected}")]
    WrongPeer {
        /// The connecting peer (base58).
        expected: String,
        /// The peer the message names (base58).
        got: String,
    },
}

impl AttestationError {
    /// A short stable name for counters, events and JSON.
    pub fn reason(&self) -> &'static str {
        match self {
            AttestationError::TooLarge(_) => "too_large",
            AttestationError::Malformed(_) => "malformed",
            AttestationError::BadChecksum(_) => "bad_checksum",
            AttestationError::MalformedSignature(_) => "malformed_signature",
            AttestationError::WrongV(_) => "wrong_v",
            AttestationError::SignerMismatch { .. } => "signer_mismatch",
            AttestationError::WrongChain { .. } => "wrong_chain",
            AttestationError::NoExpiration => "no_expiration",
            AttestationError::Expired(_) => "expired",
            AttestationError::NotYetValid(_) => "not_yet_valid",
            AttestationError::NoPeerResource(_) => "no_peer_resource",
            AttestationError::WrongPeer { .. } => "wrong_peer",
        }
    }
}

/// keccak256("\x19Ethereum Signed Message:\n" ‖ len ‖ text): what `personal_sign` signs.
pub fn eip191_hash(text: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(format!("\x19Ethereum Signed Message:\n{}", text.len()).as_bytes());
    hasher.update(text);
    hasher.finalize().into()
}

/// The SIWE text keep-light asks a wallet to sign, in the canonical layout viem also writes.
pub fn siwe_text(
    operator: &Address,
    peer: &PeerId,
    chain_id: u64,
    domain: &str,
    nonce: &str,
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> String {
    format!(
        "{domain} wants you to sign in with your Ethereum account:\n{operator}\n\n{STATEMENT}\n\n\
         URI: https://{domain}/\nVersion: 1\nChain ID: {chain_id}\nNonce: {nonce}\n\
         Issued At: {}\nExpiration Time: {}\nResources:\n- {PEER_RESOURCE_PREFIX}{peer}",
        timestamp(issued_at),
        timestamp(expires_at),
    )
}

/// RFC 3339 in UTC with milliseconds, as JavaScript's `toISOString` (and so viem) writes it.
pub fn timestamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Signs a delegation to `peer` with the operator's own key (what a wallet does with
/// `personal_sign`; used by the CLI and tests). Validates its own output.
pub fn create(
    operator: &OperatorKey,
    peer: &PeerId,
    chain_id: u64,
    domain: &str,
    now: OffsetDateTime,
    ttl: Duration,
    nonce: &str,
) -> Result<Attestation, AttestationError> {
    let expires_at = now + ttl;
    let message = siwe_text(
        &operator.address(),
        peer,
        chain_id,
        domain,
        nonce,
        now,
        expires_at,
    );
    parse(&message)?;
    let signing = SigningKey::from_slice(&operator.secret_bytes())
        .map_err(|e| AttestationError::MalformedSignature(e.to_string()))?;
    let (signature, recovery) = signing.sign_prehash_recoverable(&eip191_hash(message.as_bytes()));
    let mut bytes = signature.to_bytes().to_vec();
    bytes.push(27 + recovery.to_byte());
    Ok(Attestation {
        message,
        signature: format!("0x{}", hex::encode(bytes)),
    })
}

/// Checks an attestation at time `now` against `expect` (see the module docs for the order).
pub fn verify(
    attestation: &Attestation,
    now: OffsetDateTime,
    expect: &Expect,
) -> Result<Verified, AttestationError> {
    let text = &attestation.message;
    if text.len() > MAX_MESSAGE_LEN {
        return Err(AttestationError::TooLarge(format!(
            "message of {} bytes exceeds {MAX_MESSAGE_LEN}",
            text.len()
        )));
    }
    if attestation.signature.len() > 2 + 2 * 65 + 2 {
        return Err(AttestationError::TooLarge(
            "signature longer than 65 bytes".into(),
        ));
    }
    let (signature, recovery) = parse_signature(&attestation.signature)?;
    let message = parse(text)?;

    let hash = eip191_hash(text.as_bytes());
    let key = VerifyingKey::recover_from_prehash(&hash, &signature, recovery)
        .map_err(|e| AttestationError::MalformedSignature(format!("no key recovers: {e}")))?;
    let signer = address_of(&key);
    let stated = Address(message.address);
    if signer != stated {
        return Err(AttestationError::SignerMismatch { signer, stated });
    }
    if let Some(expected) = expect.chain_id {
        if message.chain_id != expected {
            return Err(AttestationError::WrongChain {
                expected,
                got: message.chain_id,
            });
        }
    }
    let expires_at = *message
        .expiration_time
        .as_ref()
        .ok_or(AttestationError::NoExpiration)?
        .as_ref();
    if now >= expires_at {
        return Err(AttestationError::Expired(timestamp(expires_at)));
    }
    if let Some(not_before) = &message.not_before {
        if now < *not_before.as_ref() {
            return Err(AttestationError::NotYetValid(timestamp(
                *not_before.as_ref(),
            )));
        }
    }
    let peers: Vec<&str> = message
        .resources
        .iter()
        .filter_map(|r| r.as_str().strip_prefix(PEER_RESOURCE_PREFIX))
        .collect();
    let [peer] = peers[..] else {
        return Err(AttestationError::NoPeerResource(peers.len()));
    };
    let peer_id = PeerId::from_str(peer)
        .map_err(|e| AttestationError::Malformed(format!("peer resource {peer}: {e}")))?;
    if let Some(expected) = expect.peer {
        if peer_id != expected {
            return Err(AttestationError::WrongPeer {
                expected: expected.to_string(),
                got: peer_id.to_string(),
            });
        }
    }
    Ok(Verified {
        operator: signer,
        peer_id,
        chain_id: message.chain_id,
        expires_at,
    })
}

/// Parses RFC 3339 (for `--now` and JS timestamps).
pub fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

/// Strict EIP-4361: the address line must be EIP-55, the grammar must hold, and re-rendering the
/// parsed message must give back the exact text (no stray lines or spacing).
fn parse(text: &str) -> Result<siwe::Message, AttestationError> {
    if let Some(line) = text.split('\n').nth(1) {
        if let Some(digits) = line.strip_prefix("0x") {
            if digits.len() == 40 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                let bytes = hex::decode(digits).expect("checked hex");
                let address = Address::from_slice(&bytes).expect("20 bytes");
                if address.to_string() != line {
                    return Err(AttestationError::BadChecksum(line.into()));
                }
            }
        }
    }
    let message =
        siwe::Message::from_str(text).map_err(|e| AttestationError::Malformed(e.to_string()))?;
    if message.to_string() != text {
        return Err(AttestationError::Malformed(
            "not in canonical EIP-4361 form".into(),
        ));
    }
    Ok(message)
}

fn parse_signature(text: &str) -> Result<(Signature, RecoveryId), AttestationError> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    let bytes =
        hex::decode(digits).map_err(|e| AttestationError::MalformedSignature(e.to_string()))?;
    if bytes.len() != 65 {
        return Err(AttestationError::MalformedSignature(format!(
            "expected 65 bytes, got {}",
            bytes.len()
        )));
    }
    let v = bytes[64];
    let recovery = match v {
        0 | 1 => v,
        27 | 28 => v - 27,
        _ => return Err(AttestationError::WrongV(v)),
    };
    let signature = Signature::from_slice(&bytes[..64])
        .map_err(|e| AttestationError::MalformedSignature(e.to_string()))?;
    let recovery = RecoveryId::from_byte(recovery).expect("0 or 1");
    Ok((signature, recovery))
}

fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_sec1_point(false);
    let hash = Keccak256::digest(&point.as_bytes()[1..]);
    Address::from_slice(&hash[12..]).expect("20 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> OffsetDateTime {
        parse_time(text).unwrap()
    }

    #[test]
    fn created_attestations_verify_and_bind_peer_chain_and_time() {
        let wallet = OperatorKey::from_bytes(&[7; 32]).unwrap();
        let session = OperatorKey::from_bytes(&[8; 32]).unwrap();
        let now = at("2026-11-26T10:00:00Z");
        let att = create(
            &wallet,
            &session.peer_id(),
            31337,
            "localhost:8080",
            now,
            Duration::from_secs(3600),
            "abcdefgh1",
        )
        .unwrap();
        let expect = Expect::new()
            .with_chain_id(31337)
            .with_peer(session.peer_id());
        let verified = verify(&att, now, &expect).unwrap();
        assert_eq!(verified.operator, wallet.address());
        assert_eq!(timestamp(verified.expires_at), "2026-11-26T11:00:00.000Z");
        let reason =
            |now: &str, expect: &Expect| verify(&att, at(now), expect).unwrap_err().reason();
        assert_eq!(reason("2026-11-26T11:00:00Z", &expect), "expired");
        assert_eq!(
            reason("2026-11-26T10:30:00Z", &Expect::new().with_chain_id(1)),
            "wrong_chain"
        );
        assert_eq!(
            reason(
                "2026-11-26T10:30:00Z",
                &Expect::new().with_peer(wallet.peer_id())
            ),
            "wrong_peer"
        );
    }

    #[test]
    fn non_canonical_or_oversized_text_is_refused() {
        let wallet = OperatorKey::from_bytes(&[7; 32]).unwrap();
        let now = at("2026-11-26T10:00:00Z");
        let att = create(
            &wallet,
            &wallet.peer_id(),
            1,
            "a.example",
            now,
            Duration::from_secs(60),
            "abcdefgh1",
        )
        .unwrap();
        let mut extra = att.clone();
        extra.message.push('\n');
        assert_eq!(
            verify(&extra, now, &Expect::new()).unwrap_err().reason(),
            "malformed"
        );
        let mut big = att.clone();
        big.message = "x".repeat(10 << 20);
        assert_eq!(
            verify(&big, now, &Expect::new()).unwrap_err().reason(),
            "too_large"
        );
        let mut long_sig = att;
        long_sig.signature.push_str("00");
        assert_eq!(
            verify(&long_sig, now, &Expect::new()).unwrap_err().reason(),
            "malformed_signature"
        );
    }
}

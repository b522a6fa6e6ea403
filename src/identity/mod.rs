//! Operator identity: one secp256k1 secret is the libp2p identity and the Ethereum account.
//!
//! # Overview
//! - [`OperatorKey`] holds the 32-byte secret; it yields the libp2p [`Keypair`], the peer ID
//!   (`16Uiu2…`, identity multihash of the compressed key, as keep-core) and the [`Address`].
//! - [`Address::from_peer_id`] goes back from a peer ID to the operator address, which is how a
//!   receiver checks that a pubsub author is the envelope's sender.
//!
//! # Usage
//! ```
//! use keep_light::identity::OperatorKey;
//! let key = OperatorKey::from_hex("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318").unwrap();
//! assert_eq!(key.address().to_string(), "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23");
//! assert!(key.peer_id().to_string().starts_with("16Uiu2"));
//! ```

pub mod attestation;
pub mod keystore;

use std::{fmt, str::FromStr};

use libp2p::{
    identity::{secp256k1, Keypair, PublicKey},
    PeerId,
};
use sha3::{Digest, Keccak256};

/// Errors reading or converting key material. The caller should report the message and stop:
/// none of these is transient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The input is not hex (with or without `0x`).
    #[error("not hex: {0}")]
    NotHex(String),
    /// The secret is not 32 bytes long.
    #[error("a secp256k1 secret is 32 bytes, got {0}")]
    WrongLength(usize),
    /// The 32 bytes are not a valid scalar (zero or ≥ the curve order).
    #[error("not a valid secp256k1 secret key")]
    InvalidSecret,
    /// An address string that is not 20 hex bytes.
    #[error("malformed address: {0}")]
    MalformedAddress(String),
    /// A mixed-case address whose EIP-55 checksum does not match.
    #[error("bad EIP-55 checksum in {0}")]
    BadChecksum(String),
}

/// Parses hex with an optional `0x` prefix.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, KeyError> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    hex::decode(digits).map_err(|e| KeyError::NotHex(e.to_string()))
}

/// An operator's secp256k1 secret and everything derived from it.
#[derive(Clone)]
pub struct OperatorKey {
    keypair: secp256k1::Keypair,
}

impl OperatorKey {
    /// Wraps a 32-byte secret.
    pub fn from_bytes(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() != 32 {
            return Err(KeyError::WrongLength(secret.len()));
        }
        let mut copy = secret.to_vec();
        let secret =
            secp256k1::SecretKey::try_from_bytes(&mut copy).map_err(|_| KeyError::InvalidSecret)?;
        Ok(Self {
            keypair: secret.into(),
        })
    }

    /// Parses a 32-byte secret from hex (`0x` optional).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        Self::from_bytes(&parse_hex(text)?)
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self {
            keypair: secp256k1::Keypair::generate(),
        }
    }

    /// The secret as 32 bytes (for persisting it).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.keypair.secret().to_bytes()
    }

    /// The key as k256's ECDSA signing key (envelope signatures, attestations).
    pub fn signing_key(&self) -> k256::ecdsa::SigningKey {
        k256::ecdsa::SigningKey::from_slice(&self.secret_bytes()).expect("a valid secp256k1 secret")
    }

    /// The libp2p keypair used for transport security and pubsub signing.
    pub fn libp2p_keypair(&self) -> Keypair {
        self.keypair.clone().into()
    }

    /// The peer ID (`16Uiu2…`).
    pub fn peer_id(&self) -> PeerId {
        PeerId::from_public_key(&self.libp2p_keypair().public())
    }

    /// The 33-byte compressed public key.
    pub fn public_key_compressed(&self) -> [u8; 33] {
        self.keypair.public().to_bytes()
    }

    /// The operator's Ethereum address.
    pub fn address(&self) -> Address {
        Address::from_secp256k1(self.keypair.public())
    }
}

impl fmt::Debug for OperatorKey {
    // Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorKey")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

/// The secp256k1 public key inlined in a peer ID (identity multihash, as keep-light and
/// keep-core peer IDs are). `None` for other key types or hashed IDs.
pub fn secp256k1_key_of(peer: &PeerId) -> Option<secp256k1::PublicKey> {
    let multihash = peer.as_ref();
    // 0x00 = identity multihash: the digest is the protobuf-encoded public key.
    if multihash.code() != 0x00 {
        return None;
    }
    let public = PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    public.try_into_secp256k1().ok()
}

/// A 20-byte Ethereum address; `Display` prints EIP-55 mixed case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// keccak256 of the uncompressed key without its `0x04` prefix, last 20 bytes.
    pub fn from_secp256k1(public: &secp256k1::PublicKey) -> Self {
        let uncompressed = public.to_bytes_uncompressed();
        let hash = Keccak256::digest(&uncompressed[1..]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }

    /// The operator address behind a peer ID whose key is secp256k1 and inlined in the ID
    /// (identity multihash). `None` for other key types or hashed IDs.
    pub fn from_peer_id(peer: &PeerId) -> Option<Self> {
        secp256k1_key_of(peer).map(|key| Self::from_secp256k1(&key))
    }

    /// Raw bytes as carried in the envelope's `sender`.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// From the envelope's `sender` bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 20]>::try_from(bytes).ok().map(Address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lower = hex::encode(self.0);
        let hash = Keccak256::digest(lower.as_bytes());
        f.write_str("0x")?;
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                write!(f, "{}", c.to_ascii_uppercase())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Address {
    type Err = KeyError;

    /// Accepts all-lower or all-upper hex without a checksum; mixed case must be valid EIP-55.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text
            .strip_prefix("0x")
            .ok_or_else(|| KeyError::MalformedAddress(text.into()))?;
        if digits.len() != 40 {
            return Err(KeyError::MalformedAddress(text.into()));
        }
        let bytes = hex::decode(digits).map_err(|_| KeyError::MalformedAddress(text.into()))?;
        let address =
            Address::from_slice(&bytes).ok_or_else(|| KeyError::MalformedAddress(text.into()))?;
        let mixed = digits.chars().any(|c| c.is_ascii_lowercase())
            && digits.chars().any(|c| c.is_ascii_uppercase());
        if mixed && address.to_string() != text {
            return Err(KeyError::BadChecksum(text.into()));
        }
        Ok(address)
    }
}

/// As JSON: the EIP-55 string (any case is read back, as [`FromStr`] does).
impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known vector: the private key from the Web3 Secret Storage definition examples,
    // whose address is published alongside it.
    const SECRET: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    const ADDRESS: &str = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";

    #[test]
    fn derives_the_known_address() {
        let key = OperatorKey::from_hex(SECRET).unwrap();
        assert_eq!(key.address().to_string(), ADDRESS);
    }

    #[test]
    fn peer_id_maps_back_to_the_address() {
        let key = OperatorKey::from_hex(SECRET).unwrap();
        let peer = key.peer_id();
        assert!(peer.to_string().starts_with("16Uiu2"), "{peer}");
        assert_eq!(Address::from_peer_id(&peer), Some(key.address()));
        assert_eq!(
            secp256k1_key_of(&peer).map(|k| k.to_bytes().to_vec()),
            Some(key.public_key_compressed().to_vec())
        );
        // A peer ID that does not inline a secp256k1 key has no operator.
        assert_eq!(Address::from_peer_id(&PeerId::random()), None);
    }

    #[test]
    fn eip55_checksums_are_checked() {
        // The four mixed-case vectors listed in EIP-55 itself.
        for text in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let address: Address = text.parse().unwrap();
            assert_eq!(address.to_string(), text);
        }
        let broken = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        assert!(matches!(
            broken.parse::<Address>(),
            Err(KeyError::BadChecksum(_))
        ));
        assert!("0x1234".parse::<Address>().is_err());
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert_eq!(
            OperatorKey::from_hex("0x12").unwrap_err(),
            KeyError::WrongLength(1)
        );
        assert!(matches!(
            OperatorKey::from_hex("zz"),
            Err(KeyError::NotHex(_))
        ));
        assert_eq!(
            OperatorKey::from_bytes(&[0u8; 32]).unwrap_err(),
            KeyError::InvalidSecret
        );
    }
}

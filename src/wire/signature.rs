//! Envelope signatures (wire v1, DESIGN.md section 4): the author signs its envelope, bound to
//! the topic it is published on.
//!
//! # Overview
//! [`signing_hash`] is the 32-byte hash an author signs with its secp256k1 key:
//! `keccak256("keep-light/envelope/1" ‖ len(topic) ‖ topic ‖ len(type) ‖ type ‖ len(group) ‖
//! group ‖ sequence ‖ sender ‖ keccak256(payload))`, lengths u32 and the sequence u64, both big
//! endian. The `signature` field holds r ‖ s ‖ v (65 bytes, v ∈ {0, 1}, low s). [`verify`]
//! recovers the key and checks that its address is `sender`: a valid signature means that the
//! owner of `sender` published exactly this envelope on exactly this topic. Every failure is a
//! [`SignatureError`] counted as `bad_signature`.
//!
//! Verifying costs one public-key recovery (127 µs on one core of the 2-core test machine,
//! `examples/verify`), which is why the node runs it last, after de-duplication, and off the
//! main thread.
//!
//! # Usage
//! ```
//! use keep_light::{identity::OperatorKey, wire::{self, signature, Envelope}};
//! let key = OperatorKey::generate();
//! let mut envelope = Envelope { r#type: "net.Text".into(), payload: b"hi".to_vec(), sequence: 1, ..Default::default() };
//! signature::sign(&key.signing_key(), "keep-light/demo/1", &mut envelope);
//! assert_eq!(signature::verify("keep-light/demo/1", &envelope), Ok(key.address()));
//! assert!(signature::verify("keep-light/other/1", &envelope).is_err());
//! ```

use k256::ecdsa as recovery;
use k256::ecdsa::{SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

use super::Envelope;
use crate::identity::Address;

/// The domain tag every signing hash starts with.
pub const DOMAIN: &[u8] = b"keep-light/envelope/1";

/// Length of the `signature` field: r ‖ s ‖ v.
pub const SIGNATURE_LEN: usize = 65;

/// Why an envelope's signature does not hold (all counted as `bad_signature`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The field is not 65 bytes (or is missing).
    #[error("signature of {0} bytes, expected 65")]
    Length(usize),
    /// v is not 0 or 1.
    #[error("recovery byte {0}, expected 0 or 1")]
    RecoveryByte(u8),
    /// r or s is zero or out of range.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// s is in the upper half of the order: the other of two valid forms, refused so that one
    /// envelope has one signature.
    #[error("high-s signature")]
    HighS,
    /// No public key recovers from it.
    #[error("no key recovers from the signature")]
    NoKey,
    /// It was made by another key than the sender's (altered envelope, other topic, forgery).
    #[error("signed by {signer}, not by the sender 0x{sender}")]
    WrongSigner { signer: Address, sender: String },
}

impl SignatureError {
    /// The counter every signature failure increments.
    pub fn reason(&self) -> &'static str {
        "bad_signature"
    }
}

/// The hash `envelope`'s author signs to publish it on `topic` (its `signature` is not part of it).
pub fn signing_hash(topic: &str, envelope: &Envelope) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(DOMAIN);
    for field in [
        topic.as_bytes(),
        envelope.r#type.as_bytes(),
        envelope.group.as_slice(),
    ] {
        hasher.update((field.len() as u32).to_be_bytes());
        hasher.update(field);
    }
    hasher.update(envelope.sequence.to_be_bytes());
    hasher.update(&envelope.sender);
    hasher.update(Keccak256::digest(&envelope.payload));
    hasher.finalize().into()
}

/// Sets `envelope.sender` to `key`'s address and signs the envelope for `topic`.
pub fn sign(key: &SigningKey, topic: &str, envelope: &mut Envelope) {
    envelope.sender = address_of(key.verifying_key()).as_bytes().to_vec();
    let hash = signing_hash(topic, envelope);
    // RFC 6979 deterministic nonces; k256 normalises s to the lower half.
    let (signature, recovery) = key.sign_prehash_recoverable(&hash);
    let mut bytes = signature.to_bytes().to_vec();
    bytes.push(recovery.to_byte());
    envelope.signature = bytes;
}

/// Checks `envelope`'s signature for `topic`; on success, the sender's address. The same as
/// [`prepare`], [`recover`] and [`check_signer`] in turn, which let the costly middle step run
/// elsewhere (a thread, a Web Worker).
pub fn verify(topic: &str, envelope: &Envelope) -> Result<Address, SignatureError> {
    let prepared = prepare(topic, envelope)?;
    check_signer(recover(&prepared), &envelope.sender)
}

/// An envelope's signature with the hash it signs, its form checked: all a public-key recovery
/// needs, [`PREPARED_LEN`] bytes as [`Prepared::to_bytes`] writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    hash: [u8; 32],
    signature: [u8; SIGNATURE_LEN],
}

/// The length of [`Prepared::to_bytes`]: hash ‖ r ‖ s ‖ v.
pub const PREPARED_LEN: usize = 32 + SIGNATURE_LEN;

/// The length of [`encode_recovered`]'s output: a status byte, then an address.
pub const RECOVERED_LEN: usize = 21;

impl Prepared {
    /// hash ‖ r ‖ s ‖ v.
    pub fn to_bytes(&self) -> [u8; PREPARED_LEN] {
        let mut bytes = [0u8; PREPARED_LEN];
        bytes[..32].copy_from_slice(&self.hash);
        bytes[32..].copy_from_slice(&self.signature);
        bytes
    }

    /// The inverse of [`Prepared::to_bytes`]; `None` unless `bytes` has [`PREPARED_LEN`] bytes.
    /// (The form is checked again by [`recover`], so bytes from anywhere are safe.)
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != PREPARED_LEN {
            return None;
        }
        Some(Self {
            hash: bytes[..32].try_into().expect("32 bytes"),
            signature: bytes[32..].try_into().expect("65 bytes"),
        })
    }
}

/// The cheap part of [`verify`]: the signature's length and recovery byte, and the hash.
pub fn prepare(topic: &str, envelope: &Envelope) -> Result<Prepared, SignatureError> {
    let bytes = envelope.signature.as_slice();
    let signature: [u8; SIGNATURE_LEN] = bytes
        .try_into()
        .map_err(|_| SignatureError::Length(bytes.len()))?;
    if signature[64] > 1 {
        return Err(SignatureError::RecoveryByte(signature[64]));
    }
    Ok(Prepared {
        hash: signing_hash(topic, envelope),
        signature,
    })
}

/// The costly part of [`verify`]: the address of the key that made the signature.
pub fn recover(prepared: &Prepared) -> Result<Address, SignatureError> {
    let v = prepared.signature[64];
    let recovery = recovery::RecoveryId::from_byte(v).ok_or(SignatureError::RecoveryByte(v))?;
    let signature = recovery::Signature::from_slice(&prepared.signature[..64])
        .map_err(|_| SignatureError::Malformed(MALFORMED.into()))?;
    if signature.normalize_s() != signature {
        return Err(SignatureError::HighS);
    }
    recover_point(
        &prepared.hash,
        &prepared.signature[..64],
        &signature,
        recovery,
    )
    .map(|point| address_of_point(&point))
    .ok_or(SignatureError::NoKey)
}

/// The uncompressed public key (65 bytes) that made `signature` over `hash`, already checked
/// to be well-formed and low-s. Natively libsecp256k1's recovery (see Cargo.toml), about 3×
/// faster than k256's; the same key either way (tested).
#[cfg(not(target_arch = "wasm32"))]
fn recover_point(
    hash: &[u8; 32],
    compact: &[u8],
    _: &recovery::Signature,
    recovery: recovery::RecoveryId,
) -> Option<[u8; 65]> {
    use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
    let id = RecoveryId::try_from(i32::from(recovery.to_byte())).ok()?;
    let signature = RecoverableSignature::from_compact(compact, id).ok()?;
    let message = secp256k1::Message::from_digest(*hash);
    let key = secp256k1::SECP256K1
        .recover_ecdsa(message, &signature)
        .ok()?;
    Some(key.serialize_uncompressed())
}

/// In a tab: k256 0.14 (see Cargo.toml), variable-time, one double-scalar multiplication.
/// 0.13's `recover_from_prehash` is constant-time and verifies the signature again with the key
/// it found (which cannot fail), at 2.4× the cost per received message.
#[cfg(target_arch = "wasm32")]
fn recover_point(
    hash: &[u8; 32],
    _: &[u8],
    signature: &recovery::Signature,
    recovery: recovery::RecoveryId,
) -> Option<[u8; 65]> {
    let key = recovery::VerifyingKey::recover_from_prehash(hash, signature, recovery).ok()?;
    key.to_sec1_point(false).as_bytes().try_into().ok()
}

/// The last part of [`verify`]: the recovered signer must be the envelope's `sender`.
pub fn check_signer(
    recovered: Result<Address, SignatureError>,
    sender: &[u8],
) -> Result<Address, SignatureError> {
    let signer = recovered?;
    if signer.as_bytes() != sender {
        return Err(SignatureError::WrongSigner {
            signer,
            sender: hex::encode(sender),
        });
    }
    Ok(signer)
}

/// The detail of [`SignatureError::Malformed`] (one text, so that it survives [`encode_recovered`]).
const MALFORMED: &str = "r or s is zero or not below the group order";

/// [`recover`]'s result as [`RECOVERED_LEN`] bytes (for a worker's reply): status 0 and the
/// address, or the failure's code and zeros.
pub fn encode_recovered(recovered: &Result<Address, SignatureError>) -> [u8; RECOVERED_LEN] {
    let mut bytes = [0u8; RECOVERED_LEN];
    match recovered {
        Ok(address) => bytes[1..].copy_from_slice(address.as_bytes()),
        Err(SignatureError::Malformed(_)) => bytes[0] = 1,
        Err(SignatureError::HighS) => bytes[0] = 2,
        Err(SignatureError::NoKey) => bytes[0] = 3,
        // `recover` makes no other error; a reply that claims one is refused all the same.
        Err(_) => bytes[0] = 4,
    }
    bytes
}

/// The inverse of [`encode_recovered`]; anything else it could not have written is `NoKey`.
pub fn decode_recovered(bytes: &[u8]) -> Result<Address, SignatureError> {
    match bytes.split_first() {
        Some((0, address)) => Address::from_slice(address).ok_or(SignatureError::NoKey),
        Some((1, _)) => Err(SignatureError::Malformed(MALFORMED.into())),
        Some((2, _)) => Err(SignatureError::HighS),
        _ => Err(SignatureError::NoKey),
    }
}

fn address_of(key: &VerifyingKey) -> Address {
    address_of_point(key.to_sec1_point(false).as_bytes())
}

/// The address of an uncompressed SEC1 point (0x04 ‖ x ‖ y), whichever k256 version made it.
fn address_of_point(uncompressed: &[u8]) -> Address {
    let hash = Keccak256::digest(&uncompressed[1..]);
    Address::from_slice(&hash[12..]).expect("20 bytes")
}

#[cfg(test)]
mod tests {
    use k256::ecdsa::Signature;

    use super::*;
    use crate::identity::OperatorKey;

    fn signed(key: &OperatorKey) -> Envelope {
        let mut envelope = Envelope {
            r#type: "net.Text".into(),
            payload: b"hello".to_vec(),
            sequence: 7,
            group: vec![1, 2, 3],
            ..Default::default()
        };
        sign(&key.signing_key(), "t", &mut envelope);
        envelope
    }

    #[test]
    fn a_signature_binds_every_field_and_the_topic() {
        let key = OperatorKey::generate();
        let envelope = signed(&key);
        assert_eq!(verify("t", &envelope), Ok(key.address()));
        assert!(matches!(
            verify("u", &envelope),
            Err(SignatureError::WrongSigner { .. } | SignatureError::NoKey)
        ));
        let altered: [fn(&mut Envelope); 5] = [
            |e| e.payload.push(0),
            |e| e.r#type.push('x'),
            |e| e.group.clear(),
            |e| e.sequence += 1,
            |e| e.sender[0] ^= 1,
        ];
        for alter in altered {
            let mut copy = envelope.clone();
            alter(&mut copy);
            let error = verify("t", &copy).unwrap_err();
            assert_eq!(error.reason(), "bad_signature");
        }
    }

    #[test]
    fn libsecp256k1_recovery_agrees_with_k256_on_genuine_and_random_signatures() {
        use k256::ecdsa::RecoveryId;
        use rand::RngCore as _;
        let mut rng = rand::thread_rng();
        let key = OperatorKey::generate();
        let mut envelope = signed(&key);
        for round in 0..200u32 {
            envelope.sequence = u64::from(round);
            let hash = signing_hash("t", &envelope);
            // Half genuine signatures, half random r ‖ s in low-s form (most recover a key,
            // some name no point).
            let (signature, recovery) = if round % 2 == 0 {
                key.signing_key().sign_prehash_recoverable(&hash)
            } else {
                let mut bytes = [0u8; 64];
                rng.fill_bytes(&mut bytes);
                let Ok(s) = Signature::from_slice(&bytes) else {
                    continue;
                };
                let v = RecoveryId::from_byte((round / 2 % 2) as u8).unwrap();
                (s.normalize_s(), v)
            };
            let mut bytes = signature.to_bytes().to_vec();
            bytes.push(recovery.to_byte());
            envelope.signature = bytes;
            // The key k256 recovers is the one libsecp256k1 finds natively: the sender
            // itself for genuine signatures, someone else
            // (`WrongSigner`) for random ones, or none.
            let expected = VerifyingKey::recover_from_prehash(&hash, &signature, recovery)
                .ok()
                .map(|k| address_of(&k));
            let found = match verify("t", &envelope) {
                Ok(signer) | Err(SignatureError::WrongSigner { signer, .. }) => Some(signer),
                Err(SignatureError::NoKey) => None,
                Err(other) => panic!("round {round}: {other}"),
            };
            assert_eq!(found, expected, "round {round}");
            assert_eq!(found == Some(key.address()), round % 2 == 0);
        }
    }

    #[test]
    fn the_three_steps_through_their_byte_forms_agree_with_verify() {
        let key = OperatorKey::generate();
        let envelope = signed(&key);
        let mut high_s = envelope.clone();
        let signature = Signature::from_slice(&envelope.signature[..64]).unwrap();
        let (r, s) = signature.split_scalars();
        high_s.signature[..64]
            .copy_from_slice(&Signature::from_scalars(r, -*s).unwrap().to_bytes());
        let mut zero = envelope.clone();
        zero.signature[..64].fill(0);
        let mut other = envelope.clone();
        other.sequence += 1;
        for (topic, copy) in [
            ("t", &envelope),
            ("u", &envelope),
            ("t", &high_s),
            ("t", &zero),
            ("t", &other),
        ] {
            let prepared = prepare(topic, copy).unwrap();
            let sent = Prepared::from_bytes(&prepared.to_bytes()).unwrap();
            let reply = encode_recovered(&recover(&sent));
            let split = check_signer(decode_recovered(&reply), &copy.sender);
            assert_eq!(split, verify(topic, copy));
        }
        assert_eq!(Prepared::from_bytes(&[0; PREPARED_LEN - 1]), None);
        assert_eq!(decode_recovered(&[]), Err(SignatureError::NoKey));
        assert_eq!(
            decode_recovered(&[9; RECOVERED_LEN]),
            Err(SignatureError::NoKey)
        );
    }

    #[test]
    fn malformed_high_s_and_bit_flipped_signatures_are_refused() {
        let key = OperatorKey::generate();
        let envelope = signed(&key);
        let mut short = envelope.clone();
        short.signature.pop();
        assert_eq!(verify("t", &short), Err(SignatureError::Length(64)));
        let mut v = envelope.clone();
        v.signature[64] = 27;
        assert_eq!(verify("t", &v), Err(SignatureError::RecoveryByte(27)));
        // The same signature with s → n − s and v flipped is valid ECDSA, and refused.
        let signature = Signature::from_slice(&envelope.signature[..64]).unwrap();
        let (r, s) = signature.split_scalars();
        let high = Signature::from_scalars(r, -*s).unwrap();
        let mut flipped = envelope.clone();
        flipped.signature[..64].copy_from_slice(&high.to_bytes());
        flipped.signature[64] ^= 1;
        assert_eq!(verify("t", &flipped), Err(SignatureError::HighS));
        for bit in [0, 100, 300, 511] {
            let mut copy = envelope.clone();
            copy.signature[bit / 8] ^= 1 << (bit % 8);
            assert!(verify("t", &copy).is_err(), "bit {bit}");
        }
    }
}

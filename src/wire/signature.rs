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
//! Verifying costs one public-key recovery (about 50 µs natively), which is why the node runs
//! it last, after de-duplication, and off the main thread.
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

use k256::{
    ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey},
    elliptic_curve::{
        ops::{LinearCombination, Reduce},
        point::DecompressPoint,
        subtle::Choice,
        PrimeField,
    },
    AffinePoint, FieldBytes, ProjectivePoint, Scalar, U256,
};
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
    let (signature, recovery) = key
        .sign_prehash_recoverable(&hash)
        .expect("a 32-byte prehash is always signable");
    let mut bytes = signature.to_bytes().to_vec();
    bytes.push(recovery.to_byte());
    envelope.signature = bytes;
}

/// Checks `envelope`'s signature for `topic`; on success, the sender's address.
pub fn verify(topic: &str, envelope: &Envelope) -> Result<Address, SignatureError> {
    let bytes = envelope.signature.as_slice();
    if bytes.len() != SIGNATURE_LEN {
        return Err(SignatureError::Length(bytes.len()));
    }
    let v = bytes[64];
    let recovery = match v {
        0 | 1 => RecoveryId::from_byte(v).expect("0 or 1"),
        _ => return Err(SignatureError::RecoveryByte(v)),
    };
    let signature = Signature::from_slice(&bytes[..64])
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if signature.normalize_s().is_some() {
        return Err(SignatureError::HighS);
    }
    let hash = signing_hash(topic, envelope);
    let key = recover(&hash, &signature, recovery).ok_or(SignatureError::NoKey)?;
    let signer = address_of(&key);
    if signer.as_bytes() != envelope.sender.as_slice() {
        return Err(SignatureError::WrongSigner {
            signer,
            sender: hex::encode(&envelope.sender),
        });
    }
    Ok(signer)
}

/// The public key `signature` (over `hash`, with `recovery`) recovers to:
/// Q = r⁻¹·(s·R − z·G), R the curve point whose x is r and whose y has `recovery`'s parity.
///
/// `VerifyingKey::recover_from_prehash` computes the same, then verifies the signature against
/// the key it found: a second double-scalar multiplication, which doubled the cost of every
/// received message (364–422 µs of CPU per delivery in `examples/burst`, against 195–204 µs
/// with libp2p's own signatures). That check cannot fail: for any R on the curve and nonzero
/// r, s, the Q above satisfies the verification equation by construction (s·R = z·G + r·Q).
/// What the signature proves is then the address of Q, which must be the envelope's sender.
fn recover(hash: &[u8; 32], signature: &Signature, recovery: RecoveryId) -> Option<VerifyingKey> {
    let (r, s) = signature.split_scalars();
    let z = <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(*hash));
    // v ∈ {0, 1}: r is R's x itself (never the rare x ≥ n form), so R is r's point.
    let big_r = AffinePoint::decompress(&r.to_repr(), Choice::from(u8::from(recovery.is_y_odd())));
    let big_r = ProjectivePoint::from(Option::<AffinePoint>::from(big_r)?);
    let r_inv = Option::<Scalar>::from(r.invert())?;
    let q = ProjectivePoint::lincomb(
        &ProjectivePoint::GENERATOR,
        &-(r_inv * z),
        &big_r,
        &(r_inv * *s),
    );
    VerifyingKey::from_affine(q.to_affine()).ok()
}

fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let hash = Keccak256::digest(&point.as_bytes()[1..]);
    Address::from_slice(&hash[12..]).expect("20 bytes")
}

#[cfg(test)]
mod tests {
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
    fn recovery_finds_the_key_the_library_finds_for_any_signature() {
        use rand::RngCore as _;
        let mut rng = rand::thread_rng();
        let key = OperatorKey::generate().signing_key();
        for round in 0..200 {
            let mut hash = [0u8; 32];
            rng.fill_bytes(&mut hash);
            // Half genuine signatures, half random r ‖ s (most have a key; some no point), in
            // low-s form: the library's check refuses high s, and so does `verify`, first.
            let (signature, recovery) = if round % 2 == 0 {
                key.sign_prehash_recoverable(&hash).unwrap()
            } else {
                let mut bytes = [0u8; 64];
                rng.fill_bytes(&mut bytes);
                match Signature::from_slice(&bytes) {
                    Ok(s) => (
                        s.normalize_s().unwrap_or(s),
                        RecoveryId::from_byte((round / 2 % 2) as u8).unwrap(),
                    ),
                    Err(_) => continue,
                }
            };
            assert_eq!(
                recover(&hash, &signature, recovery),
                VerifyingKey::recover_from_prehash(&hash, &signature, recovery).ok(),
                "round {round}"
            );
        }
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

//! Relay entries: the beacon's chain of group signatures (DESIGN.md section 5).
//!
//! # Overview
//! `entry₀` is [`genesis`] = H("keep-light genesis"); the group selected by `entryₖ` signs
//! [`entry_message`]`(entryₖ)` (its 64-byte G1 encoding) and the combined signature is `entryₖ₊₁`.
//! A requester is handed [`random_number`]`(entryₖ₊₁)` = keccak256 of that encoding, a uint256.
//!
//! # Usage
//! ```
//! use keep_light::beacon::{bls::SecretKey, entry};
//! let group = SecretKey::generate(&mut rand::thread_rng());
//! let previous = entry::genesis();
//! let next = group.sign(&entry::entry_message(&previous));
//! assert!(entry::verify_entry(&group.public_key(), &previous, &next));
//! let _uint256_be = entry::random_number(&next);
//! ```

use sha3::{Digest, Keccak256};

use super::bls::{hash_to_g1, PublicKey, Signature, G1_LEN};

/// The message hashed to the genesis entry.
pub const GENESIS_SEED: &[u8] = b"keep-light genesis";

/// entry₀ = H("keep-light genesis").
pub fn genesis() -> Signature {
    Signature(hash_to_g1(GENESIS_SEED))
}

/// The bytes the next group signs: the previous entry's uncompressed G1 encoding.
pub fn entry_message(previous: &Signature) -> [u8; G1_LEN] {
    previous.to_bytes()
}

/// keccak256(serialize_G1(entry)), the big-endian uint256 handed to the requester.
pub fn random_number(entry: &Signature) -> [u8; 32] {
    Keccak256::digest(entry.to_bytes()).into()
}

/// [`random_number`]`(entry)` as a uint256, modulo `n`: which active group serves the request
/// after `entry`. Panics if `n` is 0.
pub fn random_mod(entry: &Signature, n: u64) -> u64 {
    assert!(n > 0, "modulo zero");
    uint256_mod(&random_number(entry), n)
}

/// The seat (1-based, of `n`) that submits the entry after `previous` first:
/// keccak256("keep-light/submitter/1" ‖ serialize_G1(previous)) mod n, plus 1. Known as soon
/// as the request is assigned, so only the members whose turn is near combine the shares;
/// the others stand by. Panics if `n` is 0.
pub fn first_submitter(previous: &Signature, n: u32) -> u32 {
    assert!(n > 0, "modulo zero");
    let mut hasher = Keccak256::new();
    hasher.update(b"keep-light/submitter/1");
    hasher.update(previous.to_bytes());
    uint256_mod(&hasher.finalize().into(), u64::from(n)) as u32 + 1
}

/// A big-endian uint256 modulo `n` (non-zero).
fn uint256_mod(value: &[u8; 32], n: u64) -> u64 {
    let n = u128::from(n);
    let remainder = value
        .iter()
        .fold(0u128, |acc, byte| (acc * 256 + u128::from(*byte)) % n);
    remainder as u64
}

/// Whether `entry` is the group's signature over `previous`.
pub fn verify_entry(group_key: &PublicKey, previous: &Signature, entry: &Signature) -> bool {
    group_key.verify(&entry_message(previous), entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beacon::threshold::{combine_verified, deal};
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn a_threshold_group_extends_the_chain() {
        let mut rng = StdRng::seed_from_u64(5);
        let dealing = deal(5, 3, &mut rng).unwrap();
        let mut previous = genesis();
        for _ in 0..3 {
            let message = entry_message(&previous);
            let shares: Vec<_> = dealing.shares[1..4]
                .iter()
                .map(|s| s.sign(&message))
                .collect();
            let next = combine_verified(&message, 3, &shares, &mut rng)
                .unwrap()
                .signature;
            assert!(verify_entry(&dealing.group_public_key, &previous, &next));
            assert!(!verify_entry(&dealing.group_public_key, &next, &previous));
            assert_ne!(random_number(&next), random_number(&previous));
            previous = next;
        }
    }
}

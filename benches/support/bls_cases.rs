//! The BLS operations both benchmarks time: `benches/bls.rs` (criterion, native) and
//! `benches/crypto_wasm.rs` (headless Chromium). One list, so the two report the same things.

use std::hint::black_box;

use keep_light::beacon::{
    bls::{hash_to_g1, PublicKey, SecretKey},
    threshold::{combine, combine_verified, deal, verify_share, CandidateShare, SignatureShare},
};
use rand::{rngs::StdRng, SeedableRng};

/// A named operation to time; each call does the operation once.
pub type Case = (&'static str, Box<dyn FnMut()>);

/// Group of 64 with threshold 33, as keep-core's beacon groups (DESIGN.md section 5).
pub const N: u32 = 64;
pub const T: usize = 33;

pub fn cases() -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(42);
    let message = [7u8; 64];
    let secret = SecretKey::generate(&mut rng);
    let public_key = secret.public_key();
    let signature = secret.sign(&message);
    let public_key_bytes = public_key.to_bytes();

    let dealing = deal(N, T as u32, &mut rng).expect("valid parameters");
    let candidates: Vec<CandidateShare> = dealing.shares.iter().map(|s| s.sign(&message)).collect();
    let shares: Vec<SignatureShare> = candidates
        .iter()
        .map(|c| SignatureShare {
            index: c.index,
            signature: c.signature,
        })
        .collect();
    let one = candidates[0];

    let sign_secret = secret.clone();
    let mut batch_rng = StdRng::seed_from_u64(7);
    let verified = candidates.clone();
    vec![
        (
            "hash_to_g1",
            Box::new(move || {
                let _ = black_box(hash_to_g1(black_box(&message)));
            }),
        ),
        (
            "sign",
            Box::new(move || {
                black_box(sign_secret.sign(black_box(&message)));
            }),
        ),
        (
            "verify",
            Box::new(move || {
                assert!(public_key.verify(black_box(&message), black_box(&signature)));
            }),
        ),
        (
            "share_verify",
            Box::new(move || {
                assert!(verify_share(
                    black_box(&message),
                    &one.signature,
                    &one.public_key
                ));
            }),
        ),
        (
            "decode_public_key",
            Box::new(move || {
                black_box(PublicKey::from_bytes(black_box(&public_key_bytes)).expect("valid"));
            }),
        ),
        (
            "combine_33_of_64",
            Box::new(move || {
                black_box(combine(T, black_box(&shares)).expect("enough shares"));
            }),
        ),
        (
            "combine_verified_33_of_64",
            Box::new(move || {
                black_box(
                    combine_verified(&message, T, black_box(&verified), &mut batch_rng)
                        .expect("valid"),
                );
            }),
        ),
    ]
}

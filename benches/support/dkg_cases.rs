//! One member's work in each DKG phase of a 64-member, T = 33 group (DESIGN.md section 5's cost
//! model), for `benches/dkg.rs` (criterion, native) and `benches/crypto_wasm.rs` (the browser).

use std::hint::black_box;

use ark_bn254::{Fr, G2Projective};
use ark_ec::CurveGroup;
use keep_light::{
    beacon::dkg::{crypto, result_hash, result_signer, sign_result},
    identity::OperatorKey,
};
use rand::{rngs::StdRng, SeedableRng};

/// A named operation to time; each call does the operation once.
pub type Case = (&'static str, Box<dyn FnMut()>);

pub const N: u32 = 64;
pub const T: usize = 33;

pub fn cases() -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(7);
    let me = 1;
    let session = [3u8; 32];
    // The other 63 dealers' polynomials, commitments, points, and their shares for `me`.
    let dealers: Vec<(Vec<Fr>, Vec<Fr>)> = (0..N - 1)
        .map(|_| {
            (
                crypto::random_polynomial(T, &mut rng),
                crypto::random_polynomial(T, &mut rng),
            )
        })
        .collect();
    let commitments: Vec<_> = dealers
        .iter()
        .map(|(a, b)| crypto::pedersen_commitments(a, b))
        .collect();
    let points: Vec<_> = dealers
        .iter()
        .map(|(a, _)| crypto::feldman_points(a))
        .collect();
    let x = Fr::from(me);
    let shares: Vec<(Fr, Fr)> = dealers
        .iter()
        .map(|(a, b)| (crypto::evaluate(a, x), crypto::evaluate(b, x)))
        .collect();
    let (mine, _) = crypto::ephemeral_key(&mut rng);
    let (_, theirs) = crypto::ephemeral_key(&mut rng);
    let key = crypto::pair_key(&mine, &theirs).unwrap();
    let ciphertexts: Vec<Vec<u8>> = shares
        .iter()
        .enumerate()
        .map(|(j, (s, t))| crypto::encrypt_shares(&key, &session, j as u32 + 2, me, s, t))
        .collect();
    let (a, b) = dealers[0].clone();
    let aggregate: Vec<_> = {
        let sums: Vec<G2Projective> = (0..T)
            .map(|k| points.iter().map(|p| G2Projective::from(p[k])).sum())
            .collect();
        G2Projective::normalize_batch(&sums)
    };
    let network = OperatorKey::from_bytes(&[5; 32]).unwrap();
    let group_key = keep_light::beacon::bls::SecretKey::generate(&mut rng).public_key();
    let hash = result_hash(&group_key, &Default::default());
    let signatures: Vec<[u8; 65]> = (0..N - 1).map(|_| sign_result(&network, &hash)).collect();

    let mut cases: Vec<Case> = Vec::new();
    cases.push((
        "phase1_63_ephemeral_keys",
        Box::new({
            let mut rng = StdRng::seed_from_u64(1);
            move || {
                for _ in 0..N - 1 {
                    black_box(crypto::ephemeral_key(&mut rng));
                }
            }
        }),
    ));
    cases.push((
        "phase2_63_pair_keys",
        Box::new(move || {
            for _ in 0..N - 1 {
                black_box(crypto::pair_key(&mine, &theirs));
            }
        }),
    ));
    cases.push((
        "phase3_commitments_and_63_encrypted_shares",
        Box::new(move || {
            black_box(crypto::pedersen_commitments(&a, &b));
            for j in 2..=N {
                let x = Fr::from(j);
                let (s, t) = (crypto::evaluate(&a, x), crypto::evaluate(&b, x));
                black_box(crypto::encrypt_shares(&key, &session, me, j, &s, &t));
            }
        }),
    ));
    let (check_commitments, check_shares) = (commitments.clone(), shares.clone());
    cases.push((
        "phase4_decrypt_and_check_63_dealers",
        Box::new({
            let mut rng = StdRng::seed_from_u64(2);
            move || {
                for (j, c) in ciphertexts.iter().enumerate() {
                    black_box(crypto::decrypt_shares(&key, &session, j as u32 + 2, me, c));
                }
                let cases: Vec<crypto::PedersenCase<'_>> = check_shares
                    .iter()
                    .zip(&check_commitments)
                    .map(|((s, t), c)| crypto::PedersenCase {
                        s: *s,
                        t: *t,
                        commitments: c,
                    })
                    .collect();
                assert!(crypto::pedersen_batch(me, &cases, &mut rng));
            }
        }),
    ));
    let first = dealers[0].0.clone();
    cases.push((
        "phase7_feldman_points",
        Box::new(move || {
            black_box(crypto::feldman_points(&first));
        }),
    ));
    let (all_points, sum) = (points.clone(), shares.iter().map(|(s, _)| *s).sum::<Fr>());
    cases.push((
        "phase8_aggregate_and_check_63_dealers",
        Box::new(move || {
            let sums: Vec<G2Projective> = (0..T)
                .map(|k| all_points.iter().map(|p| G2Projective::from(p[k])).sum())
                .collect();
            let aggregate = G2Projective::normalize_batch(&sums);
            assert!(crypto::feldman_holds(me, sum, &aggregate));
        }),
    ));
    cases.push((
        "phase12_64_public_key_shares",
        Box::new(move || {
            black_box(crypto::evaluate_g2_all(&aggregate, N));
        }),
    ));
    cases.push((
        "phase13_sign_and_recover_63_signatures",
        Box::new(move || {
            black_box(sign_result(&network, &hash));
            for signature in &signatures {
                black_box(result_signer(&hash, signature));
            }
        }),
    ));
    cases
}

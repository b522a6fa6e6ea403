//! The DKG's cryptographic pieces, each a pure function: polynomials over Fr, Pedersen
//! commitments on G1, Feldman points on G2, per-pair share encryption (secp256k1 ECDH, then
//! ChaCha20-Poly1305), batched share checks and Lagrange reconstruction.

use std::sync::OnceLock;

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{
    scalar_mul::BatchMulPreprocessing, AffineRepr, CurveGroup, PrimeGroup, VariableBaseMSM,
};
use ark_ff::{BigInteger, Field, PrimeField, UniformRand, Zero};
use chacha20poly1305::{aead::Aead, ChaCha20Poly1305, KeyInit};
use sha2::{Digest, Sha256};

use super::Index;
use crate::beacon::bls::{hash_to_g1, RngAdapter};

/// What the second Pedersen generator is hashed from: a point nobody knows the discrete log of
/// (hash-to-G1 by try-and-increment, as keep-core's `G1HashToPoint`).
const PEDERSEN_H_SEED: &[u8] = b"keep-light/dkg/pedersen-h/1";

/// H, the second generator of the Pedersen commitments.
pub fn pedersen_h() -> G1Affine {
    static H: OnceLock<G1Affine> = OnceLock::new();
    *H.get_or_init(|| hash_to_g1(PEDERSEN_H_SEED))
}

/// A random polynomial of `t` coefficients (degree t−1), constant term first.
pub fn random_polynomial<R: rand::RngCore + ?Sized>(t: usize, rng: &mut R) -> Vec<Fr> {
    let mut rng = RngAdapter(rng);
    (0..t).map(|_| Fr::rand(&mut rng)).collect()
}

/// Horner evaluation at `x` (constant term first).
pub fn evaluate(coefficients: &[Fr], x: Fr) -> Fr {
    coefficients
        .iter()
        .rev()
        .fold(Fr::zero(), |acc, c| acc * x + c)
}

/// Window tables for the fixed bases every member multiplies by T times per DKG (G and H on
/// G1, the generator on G2), made once: a multiplication is then additions only.
struct Tables {
    g1: BatchMulPreprocessing<G1Projective>,
    h: BatchMulPreprocessing<G1Projective>,
    g2: BatchMulPreprocessing<G2Projective>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| Tables {
        g1: BatchMulPreprocessing::new(G1Projective::generator(), 64),
        h: BatchMulPreprocessing::new(pedersen_h().into(), 64),
        g2: BatchMulPreprocessing::new(G2Projective::generator(), 64),
    })
}

/// Pedersen commitments Cₖ = aₖ·G + bₖ·H.
pub fn pedersen_commitments(a: &[Fr], b: &[Fr]) -> Vec<G1Affine> {
    let (ga, hb) = (tables().g1.batch_mul(a), tables().h.batch_mul(b));
    let points: Vec<G1Projective> = ga.iter().zip(&hb).map(|(g, h)| *g + h).collect();
    G1Projective::normalize_batch(&points)
}

/// Feldman points Aₖ = aₖ·G2.
pub fn feldman_points(a: &[Fr]) -> Vec<G2Affine> {
    tables().g2.batch_mul(a)
}

/// Σₖ xᵏ·Pₖ over G2 by Horner: a member's public key share from aggregated Feldman points.
/// `x` is a small member index, so each step is a short scalar multiplication.
pub fn evaluate_g2(points: &[G2Affine], x: Index) -> G2Projective {
    // A multiplication by the index's few bits, not by a 254-bit scalar.
    let x = [u64::from(x)];
    points
        .iter()
        .rev()
        .fold(G2Projective::zero(), |acc, p| acc.mul_bigint(x) + p)
}

/// [`evaluate_g2`] at every index 1..=n, normalised. A polynomial of degree d has a constant
/// d-th difference, so after d + 1 values by Horner each further one is d additions (Newton's
/// backward differences) instead of a Horner pass of d short multiplications: for 64 members
/// and T = 33, 31 of the 64 values come at a twelfth of their cost.
pub fn evaluate_g2_all(points: &[G2Affine], n: Index) -> Vec<G2Affine> {
    let degree = points.len().saturating_sub(1);
    let direct = (n as usize).min(degree + 1);
    let mut values: Vec<G2Projective> = (1..=direct as Index)
        .map(|x| evaluate_g2(points, x))
        .collect();
    if values.len() < n as usize {
        // ∇ᵏP(d + 1), k = 0..=d: the last entry of each row of the difference table.
        let mut nabla = Vec::with_capacity(degree + 1);
        let mut row = values.clone();
        while let Some(last) = row.last() {
            nabla.push(*last);
            row = row.windows(2).map(|w| w[1] - w[0]).collect();
        }
        for _ in values.len()..n as usize {
            // ∇ᵏP(x + 1) = ∇ᵏP(x) + ∇ᵏ⁺¹P(x + 1), the highest (constant) one first.
            for k in (0..degree).rev() {
                let next = nabla[k + 1];
                nabla[k] += next;
            }
            values.push(nabla[0]);
        }
    }
    G2Projective::normalize_batch(&values)
}

/// A dealer's shares (sᵢ, tᵢ) for receiver `i` against its Pedersen commitments.
pub struct PedersenCase<'a> {
    pub s: Fr,
    pub t: Fr,
    pub commitments: &'a [G1Affine],
}

/// Checks sⱼ·G + tⱼ·H == Σₖ iᵏ·Cⱼₖ for every case at once: one MSM over all commitments with
/// a random weight per case, so a wrong case passes only with negligible probability.
/// Returns whether all hold; on `false` the caller checks them one by one.
pub fn pedersen_batch<R: rand::RngCore + ?Sized>(
    receiver: Index,
    cases: &[PedersenCase<'_>],
    rng: &mut R,
) -> bool {
    if cases.is_empty() {
        return true;
    }
    let mut rng = RngAdapter(rng);
    let powers = powers(
        receiver,
        cases.iter().map(|c| c.commitments.len()).max().unwrap_or(0),
    );
    let (mut left_s, mut left_t) = (Fr::zero(), Fr::zero());
    let mut bases = Vec::new();
    let mut scalars = Vec::new();
    for case in cases {
        let weight = Fr::rand(&mut rng);
        left_s += weight * case.s;
        left_t += weight * case.t;
        for (c, power) in case.commitments.iter().zip(&powers) {
            bases.push(*c);
            scalars.push(-(weight * power));
        }
    }
    bases.push(G1Affine::generator());
    scalars.push(left_s);
    bases.push(pedersen_h());
    scalars.push(left_t);
    G1Projective::msm(&bases, &scalars)
        .map(|sum| sum.is_zero())
        .unwrap_or(false)
}

/// One Pedersen case alone.
pub fn pedersen_holds(receiver: Index, case: &PedersenCase<'_>) -> bool {
    let powers = powers(receiver, case.commitments.len());
    let right = G1Projective::msm(case.commitments, &powers).unwrap_or_default();
    G1Projective::generator() * case.s + G1Projective::from(pedersen_h()) * case.t == right
}

/// Whether s·G2 == Σₖ iᵏ·Aₖ.
pub fn feldman_holds(receiver: Index, s: Fr, points: &[G2Affine]) -> bool {
    G2Projective::generator() * s == evaluate_g2(points, receiver)
}

/// 1, x, x², … (`count` of them).
fn powers(x: Index, count: usize) -> Vec<Fr> {
    let x = Fr::from(x);
    let mut power = Fr::ONE;
    (0..count)
        .map(|_| {
            let this = power;
            power *= x;
            this
        })
        .collect()
}

/// The polynomial of degree < points.len() through `points` (xᵢ, yᵢ), as coefficients,
/// constant term first (Lagrange). The xᵢ must be distinct and non-zero.
pub fn interpolate(points: &[(Index, Fr)]) -> Vec<Fr> {
    let mut result = vec![Fr::zero(); points.len()];
    for (i, &(xi, yi)) in points.iter().enumerate() {
        // The basis polynomial ∏_{j≠i} (x − xⱼ)/(xᵢ − xⱼ), built up coefficient by coefficient.
        let mut basis = vec![Fr::ONE];
        let mut denominator = Fr::ONE;
        for (j, &(xj, _)) in points.iter().enumerate() {
            if i == j {
                continue;
            }
            let xj = Fr::from(xj);
            let mut next = vec![Fr::zero(); basis.len() + 1];
            for (k, c) in basis.iter().enumerate() {
                next[k + 1] += c;
                next[k] -= *c * xj;
            }
            basis = next;
            denominator *= Fr::from(xi) - xj;
        }
        let scale = yi * denominator.inverse().expect("distinct indices");
        for (r, c) in result.iter_mut().zip(&basis) {
            *r += *c * scale;
        }
    }
    result
}

/// A scalar as 32 big-endian bytes.
pub fn fr_to_bytes(value: &Fr) -> [u8; 32] {
    let bytes = value.into_bigint().to_bytes_be();
    let mut out = [0u8; 32];
    out[32 - bytes.len()..].copy_from_slice(&bytes);
    out
}

/// 32 big-endian bytes as a scalar, if canonical (below the group order).
pub fn fr_from_bytes(bytes: &[u8]) -> Option<Fr> {
    if bytes.len() != 32 {
        return None;
    }
    let value = Fr::from_be_bytes_mod_order(bytes);
    (fr_to_bytes(&value) == bytes).then_some(value)
}

/// An ephemeral secp256k1 key for one pair of members.
pub type EphemeralSecret = k256::SecretKey;

/// A fresh ephemeral key and its compressed (33-byte) public key.
pub fn ephemeral_key<R: rand::RngCore + rand::CryptoRng>(
    rng: &mut R,
) -> (EphemeralSecret, [u8; 33]) {
    // From our generator's bytes: k256 0.14 takes rand_core 0.10 generators, ours is 0.6.
    // A 32-byte string is a valid secret but with probability about 2^-128.
    let secret = loop {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        if let Ok(secret) = k256::SecretKey::from_slice(&bytes) {
            break secret;
        }
    };
    let public = compressed(&secret);
    (secret, public)
}

/// The compressed public key of `secret`.
pub fn compressed(secret: &EphemeralSecret) -> [u8; 33] {
    use k256::elliptic_curve::sec1::ToSec1Point;
    let point = secret.public_key().to_sec1_point(true);
    point.as_bytes().try_into().expect("33 bytes compressed")
}

/// The symmetric key of a pair: sha256(domain ‖ ECDH x-coordinate), the same from either side.
/// `None` when `their_public` is not a valid point.
pub fn pair_key(mine: &EphemeralSecret, their_public: &[u8; 33]) -> Option<[u8; 32]> {
    let theirs = k256::PublicKey::from_sec1_bytes(their_public).ok()?;
    let shared = k256::ecdh::diffie_hellman(mine.to_nonzero_scalar(), theirs.as_affine());
    let mut hasher = Sha256::new();
    hasher.update(b"keep-light/dkg/pair-key/1");
    hasher.update(shared.raw_secret_bytes());
    Some(hasher.finalize().into())
}

/// Nonce and associated data of the shares `dealer` sends `receiver` in DKG `session`: one key
/// serves both directions of a pair, and the nonce tells them apart.
fn nonce_and_aad(session: &[u8; 32], dealer: Index, receiver: Index) -> ([u8; 12], Vec<u8>) {
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&dealer.to_be_bytes());
    nonce[4..8].copy_from_slice(&receiver.to_be_bytes());
    let mut aad = session.to_vec();
    aad.extend_from_slice(&nonce[..8]);
    (nonce, aad)
}

/// Encrypts (s, t) from `dealer` to `receiver`.
pub fn encrypt_shares(
    key: &[u8; 32],
    session: &[u8; 32],
    dealer: Index,
    receiver: Index,
    s: &Fr,
    t: &Fr,
) -> Vec<u8> {
    let (nonce, aad) = nonce_and_aad(session, dealer, receiver);
    let mut plain = fr_to_bytes(s).to_vec();
    plain.extend_from_slice(&fr_to_bytes(t));
    ChaCha20Poly1305::new(key.into())
        .encrypt(
            &nonce.into(),
            chacha20poly1305::aead::Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .expect("in-memory encryption does not fail")
}

/// Decrypts the shares `dealer` sent `receiver`; `None` if they do not decrypt to two
/// canonical scalars (which is the dealer's fault once the key is known to be right).
pub fn decrypt_shares(
    key: &[u8; 32],
    session: &[u8; 32],
    dealer: Index,
    receiver: Index,
    ciphertext: &[u8],
) -> Option<(Fr, Fr)> {
    let (nonce, aad) = nonce_and_aad(session, dealer, receiver);
    let plain = ChaCha20Poly1305::new(key.into())
        .decrypt(
            &nonce.into(),
            chacha20poly1305::aead::Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .ok()?;
    if plain.len() != 64 {
        return None;
    }
    Some((fr_from_bytes(&plain[..32])?, fr_from_bytes(&plain[32..])?))
}

/// Whether `secret` is the private key of `public` (a revealed ephemeral key is genuine).
pub fn is_key_of(secret: &[u8; 32], public: &[u8; 33]) -> Option<EphemeralSecret> {
    let secret = k256::SecretKey::from_slice(secret).ok()?;
    (compressed(&secret) == *public).then_some(secret)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn every_index_at_once_matches_horner_at_each() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (t, n) in [(1, 1), (1, 4), (2, 2), (2, 3), (5, 5), (5, 40), (33, 64)] {
            let points = feldman_points(&random_polynomial(t, &mut rng));
            let all = evaluate_g2_all(&points, n);
            assert_eq!(all.len(), n as usize);
            for (x, value) in (1..=n).zip(&all) {
                assert_eq!(
                    *value,
                    evaluate_g2(&points, x).into_affine(),
                    "t {t}, n {n}, x {x}"
                );
            }
        }
    }

    #[test]
    fn interpolation_recovers_the_polynomial() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let poly = random_polynomial(5, &mut rng);
        let points: Vec<(Index, Fr)> = [2, 3, 7, 9, 11]
            .iter()
            .map(|&i| (i, evaluate(&poly, Fr::from(i))))
            .collect();
        assert_eq!(interpolate(&points), poly);
    }

    #[test]
    fn shares_cross_a_pair_key_both_ways_and_only_for_their_pair() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let (a, a_public) = ephemeral_key(&mut rng);
        let (b, b_public) = ephemeral_key(&mut rng);
        let key = pair_key(&a, &b_public).unwrap();
        assert_eq!(Some(key), pair_key(&b, &a_public));
        let session = [7; 32];
        let (s, t) = (Fr::from(5u64), Fr::from(6u64));
        let ciphertext = encrypt_shares(&key, &session, 1, 2, &s, &t);
        assert_eq!(
            decrypt_shares(&key, &session, 1, 2, &ciphertext),
            Some((s, t))
        );
        // Another direction, session or key: refused.
        assert_eq!(decrypt_shares(&key, &session, 2, 1, &ciphertext), None);
        assert_eq!(decrypt_shares(&key, &[8; 32], 1, 2, &ciphertext), None);
        assert_eq!(decrypt_shares(&[0; 32], &session, 1, 2, &ciphertext), None);
        assert!(is_key_of(&a.to_bytes().into(), &a_public).is_some());
        assert!(is_key_of(&a.to_bytes().into(), &b_public).is_none());
    }

    #[test]
    fn batched_pedersen_checks_catch_one_wrong_share_among_many() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let dealers: Vec<(Vec<Fr>, Vec<Fr>)> = (0..6)
            .map(|_| {
                (
                    random_polynomial(4, &mut rng),
                    random_polynomial(4, &mut rng),
                )
            })
            .collect();
        let commitments: Vec<Vec<G1Affine>> = dealers
            .iter()
            .map(|(a, b)| pedersen_commitments(a, b))
            .collect();
        let receiver = 3;
        let x = Fr::from(receiver);
        let mut cases: Vec<PedersenCase<'_>> = dealers
            .iter()
            .zip(&commitments)
            .map(|((a, b), c)| PedersenCase {
                s: evaluate(a, x),
                t: evaluate(b, x),
                commitments: c,
            })
            .collect();
        assert!(pedersen_batch(receiver, &cases, &mut rng));
        assert!(cases.iter().all(|c| pedersen_holds(receiver, c)));
        cases[4].s += Fr::ONE;
        assert!(!pedersen_batch(receiver, &cases, &mut rng));
        assert!(!pedersen_holds(receiver, &cases[4]));
        assert!(pedersen_holds(receiver, &cases[3]));
        // Feldman: the same polynomial's points on G2.
        let (a, _) = &dealers[0];
        assert!(feldman_holds(receiver, evaluate(a, x), &feldman_points(a)));
        assert!(!feldman_holds(
            receiver,
            evaluate(a, x) + Fr::ONE,
            &feldman_points(a)
        ));
    }
}

//! Threshold BLS: Shamir dealing over Fr, signature shares, and their Lagrange combination.
//!
//! # Overview
//! A group secret s is split as f(i) for member indices i = 1..=N of a random polynomial f of
//! degree T−1 with f(0) = s. Member i signs with its share (σᵢ = f(i)·H(m)) and publishes σᵢ;
//! anyone holding the public key shares pkᵢ = f(i)·G2 checks each σᵢ and combines any T valid ones
//! by Lagrange interpolation at 0 into the group signature, which verifies against s·G2.
//!
//! # Usage
//! ```
//! use keep_light::beacon::threshold::{combine_verified, deal};
//! let mut rng = rand::thread_rng();
//! let dealing = deal(5, 3, &mut rng).unwrap();
//! let shares: Vec<_> = dealing.shares.iter().map(|s| s.sign(b"entry")).collect();
//! let combined = combine_verified(b"entry", 3, &shares, &mut rng).unwrap();
//! assert!(dealing.group_public_key.verify(b"entry", &combined.signature));
//! ```
//!
//! [`deal`] is for tests and the dev chain's bootstrap group only: a real group runs the DKG so
//! that no one ever holds s.

use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{CurveGroup, VariableBaseMSM};
use ark_ff::{batch_inversion, UniformRand, Zero};

use super::bls::{hash_to_g1, pairing_check, PublicKey, RngAdapter, SecretKey, Signature};

/// The largest group [`deal`] will make (keep-core's groups are 64; this leaves room).
pub const MAX_GROUP_SIZE: u32 = 1024;

/// A dealt group: its public key and every member's share.
#[derive(Debug, Clone)]
pub struct Dealing {
    /// s·G2.
    pub group_public_key: PublicKey,
    /// Shares for indices 1..=N, in order.
    pub shares: Vec<KeyShare>,
}

/// One member's share of the group secret.
#[derive(Debug, Clone)]
pub struct KeyShare {
    /// The member index, 1-based.
    pub index: u32,
    /// f(index).
    pub secret: SecretKey,
    /// f(index)·G2, what others check this member's signature shares against.
    pub public_key: PublicKey,
}

impl KeyShare {
    /// This member's signature share over `message`, as the other members receive it.
    pub fn sign(&self, message: &[u8]) -> CandidateShare {
        CandidateShare {
            index: self.index,
            signature: self.secret.sign(message),
            public_key: self.public_key,
        }
    }
}

/// Refused dealing parameters; the caller should fix its arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DealError {
    /// N is 0 or above [`MAX_GROUP_SIZE`].
    #[error("group size must be between 1 and {MAX_GROUP_SIZE}, got {0}")]
    GroupSize(u32),
    /// T is 0 or above N.
    #[error("threshold must be between 1 and the group size {n}, got {t}")]
    Threshold {
        /// Group size.
        n: u32,
        /// Requested threshold.
        t: u32,
    },
}

/// Splits a fresh random secret into `n` shares, any `t` of which can sign.
pub fn deal<R: rand::RngCore + ?Sized>(n: u32, t: u32, rng: &mut R) -> Result<Dealing, DealError> {
    if n == 0 || n > MAX_GROUP_SIZE {
        return Err(DealError::GroupSize(n));
    }
    if t == 0 || t > n {
        return Err(DealError::Threshold { n, t });
    }
    let mut rng = RngAdapter(rng);
    // Redraw in the (negligible) case that the secret or a share is zero.
    loop {
        let coefficients: Vec<Fr> = (0..t).map(|_| Fr::rand(&mut rng)).collect();
        let Some(group_secret) = SecretKey::from_scalar(coefficients[0]) else {
            continue;
        };
        let shares: Option<Vec<KeyShare>> = (1..=n)
            .map(|index| {
                let secret = SecretKey::from_scalar(evaluate(&coefficients, Fr::from(index)))?;
                Some(KeyShare {
                    index,
                    public_key: secret.public_key(),
                    secret,
                })
            })
            .collect();
        if let Some(shares) = shares {
            return Ok(Dealing {
                group_public_key: group_secret.public_key(),
                shares,
            });
        }
    }
}

/// Horner evaluation of the polynomial with the given coefficients (constant term first).
fn evaluate(coefficients: &[Fr], x: Fr) -> Fr {
    coefficients
        .iter()
        .rev()
        .fold(Fr::zero(), |acc, coefficient| acc * x + coefficient)
}

/// Checks a member's signature share against its public key share (one pairing).
pub fn verify_share(message: &[u8], signature: &Signature, public_key: &PublicKey) -> bool {
    public_key.verify(message, signature)
}

/// A signature share whose validity is already established.
#[derive(Debug, Clone, Copy)]
pub struct SignatureShare {
    /// Member index, 1-based.
    pub index: u32,
    /// σᵢ.
    pub signature: Signature,
}

/// A signature share as received, with the public key share it must match.
#[derive(Debug, Clone, Copy)]
pub struct CandidateShare {
    /// Member index, 1-based.
    pub index: u32,
    /// σᵢ, decoded (decoding already checked the point).
    pub signature: Signature,
    /// pkᵢ.
    pub public_key: PublicKey,
}

/// Why one share was left out of a combination. The combination goes on without it; when the
/// share came from a peer, the net layer should penalise that peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareRejection {
    /// Index 0 is the group secret's own point, never a member.
    #[error("share index 0 is not a member index")]
    ZeroIndex,
    /// A second share for an index already seen; the first one counts.
    #[error("duplicate share index")]
    DuplicateIndex,
    /// σᵢ does not verify against pkᵢ.
    #[error("signature share does not verify against its public key share")]
    InvalidSignature,
    /// The share's bytes were not a valid point (filled in by callers that decode).
    #[error("malformed share: {0}")]
    Malformed(String),
}

impl ShareRejection {
    /// A short stable name for counters and JSON.
    pub fn reason(&self) -> &'static str {
        match self {
            ShareRejection::ZeroIndex => "zero_index",
            ShareRejection::DuplicateIndex => "duplicate_index",
            ShareRejection::InvalidSignature => "invalid_signature",
            ShareRejection::Malformed(_) => "malformed",
        }
    }
}

/// A share left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedShare {
    /// The index the share claimed.
    pub index: u32,
    /// Why it was left out.
    pub reason: ShareRejection,
}

/// Why no group signature came out. The caller should wait for more shares (or report the bad
/// ones it names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CombineError {
    /// The threshold is 0.
    #[error("threshold must be at least 1")]
    ZeroThreshold,
    /// Fewer usable shares than the threshold.
    #[error("{valid} valid shares, {needed} needed; rejected: {}", describe(.rejected))]
    NotEnoughShares {
        /// Valid shares available.
        valid: usize,
        /// The threshold.
        needed: usize,
        /// The shares left out, and why.
        rejected: Vec<RejectedShare>,
    },
    /// An index of 0 or a repeated index among shares given as valid ([`combine`] only).
    #[error("share set is not usable: {0}")]
    BadIndex(ShareRejection),
    /// The interpolation gave the identity: the shares cannot all be from one polynomial.
    #[error("the shares combine to the identity point")]
    Degenerate,
}

fn describe(rejected: &[RejectedShare]) -> String {
    if rejected.is_empty() {
        return "none".into();
    }
    rejected
        .iter()
        .map(|r| format!("index {} ({})", r.index, r.reason.reason()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The group signature and the accounting of the shares.
#[derive(Debug, Clone)]
pub struct Combined {
    /// The group signature.
    pub signature: Signature,
    /// The indices whose shares were combined (T of them).
    pub used: Vec<u32>,
    /// The shares examined and left out, with reasons.
    pub rejected: Vec<RejectedShare>,
}

/// Verifies shares and combines the first `threshold` valid ones; invalid shares are skipped and
/// reported, never fatal while enough valid ones remain.
///
/// Verification is batched: the next shares needed are checked together with one two-pairing
/// equation over a random linear combination (soundness error 2⁻¹²⁸ from `rng`); only if that
/// fails are its halves checked, and so on down to the bad shares (`bisect`). Shares beyond the first `threshold` valid ones are not
/// examined.
pub fn combine_verified<R: rand::RngCore + ?Sized>(
    message: &[u8],
    threshold: usize,
    shares: &[CandidateShare],
    rng: &mut R,
) -> Result<Combined, CombineError> {
    if threshold == 0 {
        return Err(CombineError::ZeroThreshold);
    }
    let mut rejected = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut distinct = Vec::with_capacity(shares.len());
    for share in shares {
        let reason = if share.index == 0 {
            Some(ShareRejection::ZeroIndex)
        } else if !seen.insert(share.index) {
            Some(ShareRejection::DuplicateIndex)
        } else {
            None
        };
        match reason {
            Some(reason) => rejected.push(RejectedShare {
                index: share.index,
                reason,
            }),
            None => distinct.push(*share),
        }
    }

    let hash = hash_to_g1(message);
    let mut valid: Vec<SignatureShare> = Vec::with_capacity(threshold);
    let mut next = 0;
    while valid.len() < threshold && next < distinct.len() {
        let take = (threshold - valid.len()).min(distinct.len() - next);
        let batch = &distinct[next..next + take];
        next += take;
        if batch_verify(hash, batch, rng) {
            valid.extend(batch.iter().map(|s| SignatureShare {
                index: s.index,
                signature: s.signature,
            }));
            continue;
        }
        bisect(hash, batch, rng, &mut valid, &mut rejected);
    }
    if valid.len() < threshold {
        return Err(CombineError::NotEnoughShares {
            valid: valid.len(),
            needed: threshold,
            rejected,
        });
    }
    let signature = combine(threshold, &valid)?;
    Ok(Combined {
        signature,
        used: valid.iter().map(|s| s.index).collect(),
        rejected,
    })
}

/// Sorts the shares of a batch that failed into valid and invalid by halving: a half whose batch
/// holds is valid as a whole, a single share is checked alone. With k bad shares among n this
/// costs about 2·k·log₂(n) batch checks instead of n pairing checks.
fn bisect<R: rand::RngCore + ?Sized>(
    hash: G1Affine,
    failed: &[CandidateShare],
    rng: &mut R,
    valid: &mut Vec<SignatureShare>,
    rejected: &mut Vec<RejectedShare>,
) {
    if let [share] = failed {
        if pairing_check(share.signature.0, hash, share.public_key.0) {
            valid.push(SignatureShare {
                index: share.index,
                signature: share.signature,
            });
        } else {
            rejected.push(RejectedShare {
                index: share.index,
                reason: ShareRejection::InvalidSignature,
            });
        }
        return;
    }
    for half in failed.chunks(failed.len().div_ceil(2)) {
        if batch_verify(hash, half, rng) {
            valid.extend(half.iter().map(|s| SignatureShare {
                index: s.index,
                signature: s.signature,
            }));
        } else {
            bisect(hash, half, rng, valid, rejected);
        }
    }
}

/// e(Σ rᵢσᵢ, G2) == e(H(m), Σ rᵢ pkᵢ) for random 128-bit rᵢ: all shares valid, except with
/// probability 2⁻¹²⁸, when it holds.
fn batch_verify<R: rand::RngCore + ?Sized>(
    hash: G1Affine,
    shares: &[CandidateShare],
    rng: &mut R,
) -> bool {
    if shares.len() == 1 {
        return pairing_check(shares[0].signature.0, hash, shares[0].public_key.0);
    }
    let weights: Vec<Fr> = shares
        .iter()
        .map(|_| {
            let mut bytes = [0u8; 16];
            rng.fill_bytes(&mut bytes);
            Fr::from(u128::from_le_bytes(bytes))
        })
        .collect();
    let signatures: Vec<G1Affine> = shares.iter().map(|s| s.signature.0).collect();
    let public_keys: Vec<G2Affine> = shares.iter().map(|s| s.public_key.0).collect();
    let sigma = G1Projective::msm_unchecked(&signatures, &weights).into_affine();
    let key = G2Projective::msm_unchecked(&public_keys, &weights).into_affine();
    pairing_check(sigma, hash, key)
}

/// Lagrange-combines the first `threshold` of `shares`, which the caller has already verified.
/// Indices must be non-zero and distinct.
pub fn combine(threshold: usize, shares: &[SignatureShare]) -> Result<Signature, CombineError> {
    if threshold == 0 {
        return Err(CombineError::ZeroThreshold);
    }
    if shares.len() < threshold {
        return Err(CombineError::NotEnoughShares {
            valid: shares.len(),
            needed: threshold,
            rejected: Vec::new(),
        });
    }
    let shares = &shares[..threshold];
    let mut seen = std::collections::HashSet::with_capacity(threshold);
    for share in shares {
        if share.index == 0 {
            return Err(CombineError::BadIndex(ShareRejection::ZeroIndex));
        }
        if !seen.insert(share.index) {
            return Err(CombineError::BadIndex(ShareRejection::DuplicateIndex));
        }
    }
    let indices: Vec<u32> = shares.iter().map(|s| s.index).collect();
    let coefficients = lagrange_at_zero(&indices);
    let bases: Vec<G1Affine> = shares.iter().map(|s| s.signature.0).collect();
    let point = G1Projective::msm_unchecked(&bases, &coefficients).into_affine();
    Signature::from_point(point).ok_or(CombineError::Degenerate)
}

/// λᵢ = Π_{j≠i} xⱼ / (xⱼ − xᵢ) for distinct non-zero xᵢ: O(T²) products, one batch inversion.
fn lagrange_at_zero(indices: &[u32]) -> Vec<Fr> {
    let xs: Vec<Fr> = indices.iter().map(|&i| Fr::from(i)).collect();
    let product: Fr = xs.iter().product();
    // λᵢ = product / (xᵢ · Π_{j≠i} (xⱼ − xᵢ)).
    let mut denominators: Vec<Fr> = xs
        .iter()
        .enumerate()
        .map(|(i, xi)| {
            xs.iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .fold(*xi, |acc, (_, xj)| acc * (*xj - xi))
        })
        .collect();
    batch_inversion(&mut denominators);
    denominators.into_iter().map(|d| d * product).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::One;
    use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};

    fn rng() -> StdRng {
        StdRng::seed_from_u64(64)
    }

    fn candidates(dealing: &Dealing, message: &[u8]) -> Vec<CandidateShare> {
        dealing.shares.iter().map(|s| s.sign(message)).collect()
    }

    #[test]
    fn lagrange_coefficients_sum_to_one_for_constant_polynomials() {
        // Interpolating f ≡ 1 at 0 gives Σλᵢ = 1 for any index set.
        for indices in [vec![1u32], vec![1, 2], vec![3, 7, 64], (1..=33).collect()] {
            let sum: Fr = lagrange_at_zero(&indices).into_iter().sum();
            assert!(sum.is_one(), "{indices:?}");
        }
    }

    #[test]
    fn any_t_of_n_shares_combine_to_the_group_signature() {
        let mut rng = rng();
        let dealing = deal(7, 4, &mut rng).unwrap();
        let mut shares = candidates(&dealing, b"m");
        let mut signatures = Vec::new();
        for _ in 0..5 {
            shares.shuffle(&mut rng);
            let combined = combine_verified(b"m", 4, &shares, &mut rng).unwrap();
            assert!(dealing.group_public_key.verify(b"m", &combined.signature));
            assert_eq!(combined.used.len(), 4);
            assert!(combined.rejected.is_empty());
            signatures.push(combined.signature);
        }
        // Unique signature: every subset gives the same point.
        assert!(signatures.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn threshold_one_and_threshold_n_work() {
        let mut rng = rng();
        for (n, t) in [(1, 1), (5, 1), (5, 5)] {
            let dealing = deal(n, t, &mut rng).unwrap();
            let combined =
                combine_verified(b"x", t as usize, &candidates(&dealing, b"x"), &mut rng).unwrap();
            assert!(dealing.group_public_key.verify(b"x", &combined.signature));
        }
    }

    #[test]
    fn invalid_duplicate_and_zero_index_shares_are_skipped_not_fatal() {
        let mut rng = rng();
        let dealing = deal(6, 3, &mut rng).unwrap();
        let mut shares = candidates(&dealing, b"m");
        // Member 1 signs another message; member 2's share is replayed under index 0; member 3
        // appears twice (the second copy is a forgery by member 4's key).
        shares[0].signature = dealing.shares[0].secret.sign(b"other");
        let zero = CandidateShare {
            index: 0,
            ..shares[1]
        };
        let duplicate = CandidateShare {
            signature: dealing.shares[3].secret.sign(b"m"),
            ..shares[2]
        };
        let list = vec![
            shares[0], zero, shares[2], duplicate, shares[1], shares[4], shares[5],
        ];
        let combined = combine_verified(b"m", 3, &list, &mut rng).unwrap();
        assert!(dealing.group_public_key.verify(b"m", &combined.signature));
        assert_eq!(combined.used, vec![3, 2, 5]);
        let reasons: Vec<_> = combined
            .rejected
            .iter()
            .map(|r| (r.index, r.reason.reason()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (0, "zero_index"),
                (3, "duplicate_index"),
                (1, "invalid_signature")
            ]
        );
    }

    #[test]
    fn a_failed_batch_is_halved_down_to_its_bad_shares_in_either_half() {
        let mut rng = rng();
        let dealing = deal(40, 33, &mut rng).unwrap();
        let mut shares = candidates(&dealing, b"m");
        // Bad shares at both ends of the first batch of 33 and one in its middle.
        for bad in [0, 16, 32] {
            shares[bad].signature = dealing.shares[bad].secret.sign(b"other");
        }
        let combined = combine_verified(b"m", 33, &shares, &mut rng).unwrap();
        assert!(dealing.group_public_key.verify(b"m", &combined.signature));
        let mut bad: Vec<u32> = combined.rejected.iter().map(|r| r.index).collect();
        bad.sort();
        assert_eq!(bad, vec![1, 17, 33]);
        assert_eq!(combined.used.len(), 33);
        assert!(combined.used.iter().all(|i| !bad.contains(i)));
    }

    #[test]
    fn too_few_valid_shares_names_the_bad_ones() {
        let mut rng = rng();
        let dealing = deal(4, 3, &mut rng).unwrap();
        let mut shares = candidates(&dealing, b"m");
        shares[1].signature = dealing.shares[1].secret.sign(b"x");
        shares[3].public_key = dealing.shares[0].public_key;
        let err = combine_verified(b"m", 3, &shares, &mut rng).unwrap_err();
        match &err {
            CombineError::NotEnoughShares {
                valid,
                needed,
                rejected,
            } => {
                assert_eq!((*valid, *needed), (2, 3));
                let bad: Vec<u32> = rejected.iter().map(|r| r.index).collect();
                assert_eq!(bad, vec![2, 4]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("index 2 (invalid_signature)"));
    }

    #[test]
    fn combine_refuses_bad_index_sets() {
        let mut rng = rng();
        let dealing = deal(3, 2, &mut rng).unwrap();
        let sig = dealing.shares[0].secret.sign(b"m");
        let share = |index| SignatureShare {
            index,
            signature: sig,
        };
        assert_eq!(
            combine(2, &[share(1), share(1)]),
            Err(CombineError::BadIndex(ShareRejection::DuplicateIndex))
        );
        assert_eq!(
            combine(2, &[share(0), share(1)]),
            Err(CombineError::BadIndex(ShareRejection::ZeroIndex))
        );
        assert_eq!(combine(0, &[share(1)]), Err(CombineError::ZeroThreshold));
        assert!(matches!(
            combine(3, &[share(1)]),
            Err(CombineError::NotEnoughShares { .. })
        ));
    }

    #[test]
    fn deal_refuses_bad_parameters() {
        let mut rng = rng();
        assert_eq!(deal(0, 0, &mut rng).unwrap_err(), DealError::GroupSize(0));
        assert_eq!(
            deal(5, 6, &mut rng).unwrap_err(),
            DealError::Threshold { n: 5, t: 6 }
        );
        assert_eq!(
            deal(5, 0, &mut rng).unwrap_err(),
            DealError::Threshold { n: 5, t: 0 }
        );
        assert_eq!(
            deal(MAX_GROUP_SIZE + 1, 1, &mut rng).unwrap_err(),
            DealError::GroupSize(MAX_GROUP_SIZE + 1)
        );
    }

    #[test]
    fn fewer_than_t_honest_shares_cannot_make_the_signature() {
        // T−1 shares plus an outsider's share verify individually only for their own keys;
        // combining T−1 real shares with a share from another dealing gives a signature the
        // group key rejects.
        let mut rng = rng();
        let dealing = deal(5, 3, &mut rng).unwrap();
        let other = deal(5, 3, &mut rng).unwrap();
        let shares = [
            SignatureShare {
                index: 1,
                signature: dealing.shares[0].secret.sign(b"m"),
            },
            SignatureShare {
                index: 2,
                signature: dealing.shares[1].secret.sign(b"m"),
            },
            SignatureShare {
                index: 3,
                signature: other.shares[2].secret.sign(b"m"),
            },
        ];
        let signature = combine(3, &shares).unwrap();
        assert!(!dealing.group_public_key.verify(b"m", &signature));
    }
}

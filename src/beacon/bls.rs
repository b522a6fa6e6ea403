//! BLS signatures on BN254 (alt_bn128), compatible with keep-core and the EVM precompiles.
//!
//! # Overview
//! - Signatures live in G1, public keys in G2, secrets in Fr (DESIGN.md section 5).
//! - [`hash_to_g1`] is keep-core's `G1HashToPoint` (try-and-increment on sha256), so a keep-core
//!   contract or client and this code agree on the point a message signs.
//! - Encodings: uncompressed G1 `x‖y` (64 bytes) and G2 `x.im‖x.re‖y.im‖y.re` (128 bytes), the
//!   EIP-197 precompile layout; compressed forms as keep-core (x only, top bit of byte 0 = parity
//!   of y, or of y's imaginary part for G2).
//!
//! # Usage
//! ```
//! use keep_light::beacon::bls::{PublicKey, SecretKey, Signature};
//! let secret = SecretKey::generate(&mut rand::thread_rng());
//! let signature = secret.sign(b"entry");
//! let public_key = PublicKey::from_bytes(&secret.public_key().to_bytes()).unwrap();
//! let signature = Signature::from_bytes(&signature.to_bytes()).unwrap();
//! assert!(public_key.verify(b"entry", &signature));
//! ```
//!
//! # Security notes
//! Every decoder validates fully: exact length, canonical coordinates (< p), on the curve, in the
//! prime-order subgroup (only G2 has a cofactor), and not the identity — a zero public key or
//! signature would make verification meaningless. Decoders never panic on any input.

use ark_bn254::{Bn254, Fq, Fq2, Fr, G1Affine, G2Affine, G2Projective};
use ark_ec::{
    pairing::Pairing, short_weierstrass::SWCurveConfig, AffineRepr, CurveGroup, PrimeGroup,
};
use ark_ff::{BigInteger, Field, PrimeField, UniformRand, Zero};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

type G2Prepared = <Bn254 as Pairing>::G2Prepared;

/// Uncompressed G1 point length (x‖y).
pub const G1_LEN: usize = 64;
/// Uncompressed G2 point length (x.im‖x.re‖y.im‖y.re).
pub const G2_LEN: usize = 128;
/// Compressed G1 point length.
pub const G1_COMPRESSED_LEN: usize = 32;
/// Compressed G2 point length.
pub const G2_COMPRESSED_LEN: usize = 64;
/// Secret key (scalar) length.
pub const SCALAR_LEN: usize = 32;

/// Why bytes were refused as a point or scalar. None is transient: the caller should reject the
/// input (and, if it came from a peer, count the reason with [`DecodeError::reason`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input has the wrong number of bytes.
    #[error("expected {expected} bytes, got {got}")]
    Length {
        /// The length the encoding requires.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A coordinate is not below the field modulus p (or, compressed, has stray flag bits).
    #[error("coordinate is not a canonical field element (not below the field modulus)")]
    NonCanonical,
    /// The coordinates do not satisfy the curve equation (compressed: x has no y on the curve).
    #[error("point is not on the curve")]
    NotOnCurve,
    /// The point is on the curve but outside the prime-order subgroup (G2 only).
    #[error("point is not in the prime-order subgroup")]
    NotInSubgroup,
    /// The point at infinity (all-zero encoding), never a valid key or signature.
    #[error("point is the identity (point at infinity)")]
    Identity,
    /// A secret scalar that is zero or not below the group order r.
    #[error("secret key must be a non-zero scalar below the group order")]
    InvalidScalar,
}

impl DecodeError {
    /// A short stable name for counters and JSON (`"not_on_curve"`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Length { .. } => "wrong_length",
            DecodeError::NonCanonical => "non_canonical",
            DecodeError::NotOnCurve => "not_on_curve",
            DecodeError::NotInSubgroup => "not_in_subgroup",
            DecodeError::Identity => "identity",
            DecodeError::InvalidScalar => "invalid_scalar",
        }
    }
}

/// A secret key: a non-zero scalar of Fr.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub(crate) Fr);

/// A public key: a G2 point in the prime-order subgroup, not the identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(pub(crate) G2Affine);

/// A signature (or a relay entry): a G1 point, not the identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature(pub(crate) G1Affine);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

impl SecretKey {
    /// A fresh uniformly random non-zero secret.
    pub fn generate<R: rand::RngCore + ?Sized>(rng: &mut R) -> Self {
        loop {
            let scalar = Fr::rand(&mut RngAdapter(rng));
            if !scalar.is_zero() {
                return SecretKey(scalar);
            }
        }
    }

    /// Reads a 32-byte big-endian scalar; it must be non-zero and below the group order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let limbs = be_limbs(bytes, SCALAR_LEN)?;
        match Fr::from_bigint(limbs) {
            Some(scalar) if !scalar.is_zero() => Ok(SecretKey(scalar)),
            _ => Err(DecodeError::InvalidScalar),
        }
    }

    /// Wraps a scalar; `None` for zero.
    pub(crate) fn from_scalar(scalar: Fr) -> Option<Self> {
        (!scalar.is_zero()).then_some(SecretKey(scalar))
    }

    /// The 32-byte big-endian scalar.
    pub fn to_bytes(&self) -> [u8; SCALAR_LEN] {
        to_be_32(self.0)
    }

    /// sk·G2.
    pub fn public_key(&self) -> PublicKey {
        PublicKey((G2Projective::generator() * self.0).into_affine())
    }

    /// sk·H(message).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature((hash_to_g1(message).into_group() * self.0).into_affine())
    }
}

impl PublicKey {
    /// Decodes the 128-byte EIP-197 layout, fully validated.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let bytes = point_bytes::<G2_LEN>(bytes)?;
        let x = fq2_from_be(&bytes[..64])?;
        let y = fq2_from_be(&bytes[64..])?;
        g2_checked(G2Affine::new_unchecked(x, y))
    }

    /// Decodes keep-core's 64-byte compressed form, fully validated.
    pub fn from_compressed(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (x_bytes, odd) = compressed_parts::<G2_COMPRESSED_LEN>(bytes)?;
        let x = fq2_from_be(&x_bytes)?;
        let rhs = x.square() * x + <ark_bn254::g2::Config as SWCurveConfig>::COEFF_B;
        let y = rhs.sqrt().ok_or(DecodeError::NotOnCurve)?;
        let y = if is_odd(y.c1) == odd { y } else { -y };
        g2_checked(G2Affine::new_unchecked(x, y))
    }

    /// The 128-byte EIP-197 layout.
    pub fn to_bytes(&self) -> [u8; G2_LEN] {
        let mut out = [0u8; G2_LEN];
        out[..64].copy_from_slice(&fq2_to_be(self.0.x));
        out[64..].copy_from_slice(&fq2_to_be(self.0.y));
        out
    }

    /// keep-core's 64-byte compressed form.
    pub fn to_compressed(&self) -> [u8; G2_COMPRESSED_LEN] {
        let mut out = fq2_to_be(self.0.x);
        if is_odd(self.0.y.c1) {
            out[0] |= 0x80;
        }
        out
    }

    /// e(σ, G2) == e(H(m), pk).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        pairing_check(signature.0, hash_to_g1(message), self.0)
    }

    /// The underlying point (for threshold arithmetic and benches).
    pub fn point(&self) -> G2Affine {
        self.0
    }
}

impl Signature {
    /// Decodes the 64-byte `x‖y` layout, fully validated.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let bytes = point_bytes::<G1_LEN>(bytes)?;
        let x = fq_from_be(&bytes[..32])?;
        let y = fq_from_be(&bytes[32..])?;
        let point = G1Affine::new_unchecked(x, y);
        if !point.is_on_curve() {
            return Err(DecodeError::NotOnCurve);
        }
        // G1 of BN254 has cofactor 1: every curve point is in the subgroup.
        Ok(Signature(point))
    }

    /// Decodes keep-core's 32-byte compressed form, fully validated.
    pub fn from_compressed(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (x_bytes, odd) = compressed_parts::<G1_COMPRESSED_LEN>(bytes)?;
        let x = fq_from_be(&x_bytes)?;
        let y = g1_y_from_x(x).ok_or(DecodeError::NotOnCurve)?;
        let y = if is_odd(y) == odd { y } else { -y };
        Ok(Signature(G1Affine::new_unchecked(x, y)))
    }

    /// The 64-byte `x‖y` layout (what a relay entry's successor signs).
    pub fn to_bytes(&self) -> [u8; G1_LEN] {
        g1_to_bytes(self.0)
    }

    /// keep-core's 32-byte compressed form.
    pub fn to_compressed(&self) -> [u8; G1_COMPRESSED_LEN] {
        let mut out = to_be_32(self.0.x);
        if is_odd(self.0.y) {
            out[0] |= 0x80;
        }
        out
    }

    /// The underlying point.
    pub fn point(&self) -> G1Affine {
        self.0
    }

    /// Wraps a point; `None` for the identity (a degenerate combination).
    pub(crate) fn from_point(point: G1Affine) -> Option<Self> {
        (!point.is_zero()).then_some(Signature(point))
    }
}

/// As JSON: `0x` + hex of the uncompressed EIP-197 encoding; read back with full checks.
macro_rules! hex_serde {
    ($type:ty) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&format_args!("0x{}", hex::encode(self.to_bytes())))
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                use serde::de::Error;
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                let digits = text.strip_prefix("0x").unwrap_or(&text);
                let bytes = hex::decode(digits).map_err(D::Error::custom)?;
                Self::from_bytes(&bytes).map_err(D::Error::custom)
            }
        }
    };
}
hex_serde!(PublicKey);
hex_serde!(Signature);

/// keep-core's `G1HashToPoint`: x = sha256(m) mod p; while x³+3 is not a square, x += 1;
/// y = (x³+3)^((p+1)/4). Never the identity.
pub fn hash_to_g1(message: &[u8]) -> G1Affine {
    let digest = Sha256::digest(message);
    let mut x = Fq::from_be_bytes_mod_order(&digest);
    loop {
        if let Some(y) = g1_y_from_x(x) {
            return G1Affine::new_unchecked(x, y);
        }
        x += Fq::ONE;
    }
}

/// The 64-byte `x‖y` encoding of a G1 point (all zeros for the identity, as EIP-197).
pub fn g1_to_bytes(point: G1Affine) -> [u8; G1_LEN] {
    let mut out = [0u8; G1_LEN];
    if let Some((x, y)) = point.xy() {
        out[..32].copy_from_slice(&to_be_32(x));
        out[32..].copy_from_slice(&to_be_32(y));
    }
    out
}

/// e(σ, G2) · e(−h, pk) == 1, one multi-pairing (one final exponentiation).
pub(crate) fn pairing_check(signature: G1Affine, hash: G1Affine, public_key: G2Affine) -> bool {
    let generator = g2_generator_prepared().clone();
    Bn254::multi_pairing([signature, -hash], [generator, public_key.into()]).is_zero()
}

/// The G2 generator's Miller-loop line coefficients, computed once: every check pairs with it.
pub(crate) fn g2_generator_prepared() -> &'static G2Prepared {
    static PREPARED: OnceLock<G2Prepared> = OnceLock::new();
    PREPARED.get_or_init(|| G2Affine::generator().into())
}

/// The y that keep-core picks for x: (x³+3)^((p+1)/4) (p ≡ 3 mod 4), if x³+3 is a square.
fn g1_y_from_x(x: Fq) -> Option<Fq> {
    let rhs = x.square() * x + Fq::from(3u64);
    let y = rhs.pow(SQRT_EXPONENT.as_ref());
    (y.square() == rhs).then_some(y)
}

/// (p+1)/4 for the base field p of BN254, as little-endian limbs.
const SQRT_EXPONENT: ark_ff::BigInt<4> = {
    // p = 0x30644e72e131a029b85045b68181585d97816a916871ca8d3c208c16d87cfd47
    let p = Fq::MODULUS.0;
    // p+1 does not carry out of the lowest limb (its low bits are ...fd47), then shift by 2.
    let low = p[0] + 1;
    ark_ff::BigInt::new([
        (low >> 2) | (p[1] << 62),
        (p[1] >> 2) | (p[2] << 62),
        (p[2] >> 2) | (p[3] << 62),
        p[3] >> 2,
    ])
};

/// A 128-byte EIP-197 G2 point on the curve, not checked for the subgroup and maybe the
/// identity: for the DKG's Feldman points, whose aggregate the protocol checks instead
/// (`dkg/phases.rs`, `Points::receive`).
pub(crate) fn g2_on_curve_from_bytes(bytes: &[u8]) -> Result<G2Affine, DecodeError> {
    let bytes = point_bytes::<G2_LEN>(bytes)?;
    if bytes.iter().all(|b| *b == 0) {
        return Ok(G2Affine::identity());
    }
    let point = G2Affine::new_unchecked(fq2_from_be(&bytes[..64])?, fq2_from_be(&bytes[64..])?);
    if !point.is_on_curve() {
        return Err(DecodeError::NotOnCurve);
    }
    Ok(point)
}

fn g2_checked(point: G2Affine) -> Result<PublicKey, DecodeError> {
    if !point.is_on_curve() {
        return Err(DecodeError::NotOnCurve);
    }
    if !point.is_in_correct_subgroup_assuming_on_curve() {
        return Err(DecodeError::NotInSubgroup);
    }
    Ok(PublicKey(point))
}

/// What every point decoder checks first: the exact length, and not the identity's all-zero
/// encoding.
fn point_bytes<const N: usize>(bytes: &[u8]) -> Result<[u8; N], DecodeError> {
    check_len(bytes, N)?;
    if bytes.iter().all(|b| *b == 0) {
        return Err(DecodeError::Identity);
    }
    Ok(bytes.try_into().expect("length checked"))
}

/// A compressed point: x's bytes with the flag bit cleared, and whether y is odd (the flag).
fn compressed_parts<const N: usize>(bytes: &[u8]) -> Result<([u8; N], bool), DecodeError> {
    let mut x = point_bytes::<N>(bytes)?;
    let odd = x[0] & 0x80 != 0;
    x[0] &= 0x7f;
    Ok((x, odd))
}

fn check_len(bytes: &[u8], expected: usize) -> Result<(), DecodeError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(DecodeError::Length {
            expected,
            got: bytes.len(),
        })
    }
}

/// 32 big-endian bytes as limbs, without reduction.
fn be_limbs(bytes: &[u8], expected: usize) -> Result<ark_ff::BigInt<4>, DecodeError> {
    check_len(bytes, expected)?;
    let mut limbs = [0u64; 4];
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        limbs[3 - i] = u64::from_be_bytes(chunk.try_into().expect("8-byte chunk"));
    }
    Ok(ark_ff::BigInt::new(limbs))
}

/// A canonical base-field element (< p) from 32 big-endian bytes.
fn fq_from_be(bytes: &[u8]) -> Result<Fq, DecodeError> {
    Fq::from_bigint(be_limbs(bytes, 32)?).ok_or(DecodeError::NonCanonical)
}

/// An Fq2 element from `im‖re` (64 bytes, EIP-197 order).
fn fq2_from_be(bytes: &[u8]) -> Result<Fq2, DecodeError> {
    let im = fq_from_be(&bytes[..32])?;
    let re = fq_from_be(&bytes[32..])?;
    Ok(Fq2::new(re, im))
}

fn fq2_to_be(value: Fq2) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&to_be_32(value.c1));
    out[32..].copy_from_slice(&to_be_32(value.c0));
    out
}

fn to_be_32<F: PrimeField>(value: F) -> [u8; 32] {
    let bytes = value.into_bigint().to_bytes_be();
    let mut out = [0u8; 32];
    out[32 - bytes.len()..].copy_from_slice(&bytes);
    out
}

fn is_odd(value: Fq) -> bool {
    value.into_bigint().is_odd()
}

/// ark's `UniformRand` wants a sized rng; this lets callers pass `&mut dyn RngCore` too.
pub(crate) struct RngAdapter<'a, R: rand::RngCore + ?Sized>(pub(crate) &'a mut R);

impl<R: rand::RngCore + ?Sized> rand::RngCore for RngAdapter<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.0.try_fill_bytes(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn rng() -> StdRng {
        StdRng::seed_from_u64(6)
    }

    #[test]
    fn sqrt_exponent_is_p_plus_one_over_four() {
        let mut p1 = Fq::MODULUS;
        p1.add_with_carry(&ark_ff::BigInt::from(1u64));
        p1.div2();
        p1.div2();
        assert_eq!(SQRT_EXPONENT, p1);
    }

    #[test]
    fn sign_and_verify_round_trip_through_both_encodings() {
        let mut rng = rng();
        let secret = SecretKey::generate(&mut rng);
        let public_key = secret.public_key();
        let signature = secret.sign(b"hello");
        assert!(public_key.verify(b"hello", &signature));
        assert!(!public_key.verify(b"hellp", &signature));
        assert_eq!(Signature::from_bytes(&signature.to_bytes()), Ok(signature));
        assert_eq!(
            Signature::from_compressed(&signature.to_compressed()),
            Ok(signature)
        );
        assert_eq!(
            PublicKey::from_bytes(&public_key.to_bytes()),
            Ok(public_key)
        );
        assert_eq!(
            PublicKey::from_compressed(&public_key.to_compressed()),
            Ok(public_key)
        );
        assert_eq!(SecretKey::from_bytes(&secret.to_bytes()), Ok(secret));
    }

    #[test]
    fn compression_round_trips_both_parities() {
        let mut rng = rng();
        let (mut odd_g1, mut even_g1, mut odd_g2, mut even_g2) = (0, 0, 0, 0);
        for _ in 0..40 {
            let secret = SecretKey::generate(&mut rng);
            let sig = secret.sign(&secret.to_bytes());
            let pk = secret.public_key();
            if sig.to_compressed()[0] & 0x80 != 0 {
                odd_g1 += 1
            } else {
                even_g1 += 1
            }
            if pk.to_compressed()[0] & 0x80 != 0 {
                odd_g2 += 1
            } else {
                even_g2 += 1
            }
            assert_eq!(Signature::from_compressed(&sig.to_compressed()), Ok(sig));
            assert_eq!(PublicKey::from_compressed(&pk.to_compressed()), Ok(pk));
        }
        assert!(odd_g1 > 0 && even_g1 > 0 && odd_g2 > 0 && even_g2 > 0);
    }

    #[test]
    fn g2_generator_is_the_eip197_one() {
        // The EIP-197 G2 generator, x.im‖x.re‖y.im‖y.re.
        let expected = concat!(
            "198e9393920d483a7260bfb731fb5d25f1aa493335a9e71297e485b7aef312c2",
            "1800deef121f1e76426a00665e5c4479674322d4f75edadd46debd5cd992f6ed",
            "090689d0585ff075ec9e99ad690c3395bc4b313370b38ef355acdadcd122975b",
            "12c85ea5db8c6deb4aab71808dcb408fe3d1e7690c43d37b4ce6cc0166fa7daa",
        );
        let one = SecretKey::from_bytes(&{
            let mut b = [0u8; 32];
            b[31] = 1;
            b
        })
        .unwrap();
        assert_eq!(hex::encode(one.public_key().to_bytes()), expected);
    }

    #[test]
    fn hash_to_g1_is_on_curve_and_deterministic() {
        for m in [&b""[..], b"a", b"keep-light genesis", &[0xff; 100]] {
            let p = hash_to_g1(m);
            assert!(p.is_on_curve());
            assert!(!p.is_zero());
            assert_eq!(p, hash_to_g1(m));
            // keep-core's root choice: y = (x³+3)^((p+1)/4), which is itself a square.
            assert_eq!(p.y.legendre(), ark_ff::LegendreSymbol::QuadraticResidue);
        }
    }

    #[test]
    fn decoders_reject_bad_points_with_specific_errors() {
        let sig = SecretKey::generate(&mut rng()).sign(b"m").to_bytes();
        // Wrong lengths.
        assert_eq!(
            Signature::from_bytes(&sig[..63]),
            Err(DecodeError::Length {
                expected: 64,
                got: 63
            })
        );
        assert!(matches!(
            PublicKey::from_bytes(&[1; 127]),
            Err(DecodeError::Length { .. })
        ));
        // Identity.
        assert_eq!(Signature::from_bytes(&[0; 64]), Err(DecodeError::Identity));
        assert_eq!(PublicKey::from_bytes(&[0; 128]), Err(DecodeError::Identity));
        assert_eq!(
            Signature::from_compressed(&[0; 32]),
            Err(DecodeError::Identity)
        );
        assert_eq!(
            PublicKey::from_compressed(&[0; 64]),
            Err(DecodeError::Identity)
        );
        // Off the curve: y + 1.
        let mut off = sig;
        off[63] ^= 1;
        assert_eq!(Signature::from_bytes(&off), Err(DecodeError::NotOnCurve));
        // Non-canonical: x + p encodes the same residue but is not canonical.
        let mut big = sig;
        big[..32].copy_from_slice(&[0xff; 32]);
        assert_eq!(Signature::from_bytes(&big), Err(DecodeError::NonCanonical));
        let mut flags = [0u8; 32];
        flags[0] = 0x40; // x ≥ 2^254 > p after the parity bit is stripped
        assert_eq!(
            Signature::from_compressed(&flags),
            Err(DecodeError::NonCanonical)
        );
        // x = 0 has no y (3 is not a square mod p).
        let mut zero_x = [0u8; 32];
        zero_x[0] = 0x80;
        assert_eq!(
            Signature::from_compressed(&zero_x),
            Err(DecodeError::NotOnCurve)
        );
        // Scalars.
        assert_eq!(
            SecretKey::from_bytes(&[0; 32]),
            Err(DecodeError::InvalidScalar)
        );
        assert_eq!(
            SecretKey::from_bytes(&[0xff; 32]),
            Err(DecodeError::InvalidScalar)
        );
    }

    #[test]
    fn g2_point_outside_the_subgroup_is_rejected() {
        // Find a point on the twist with a random x; with overwhelming probability it is not in
        // the order-r subgroup (the twist's cofactor is large).
        let mut rng = rng();
        let point = loop {
            let x = Fq2::rand(&mut rng);
            let rhs = x.square() * x + <ark_bn254::g2::Config as SWCurveConfig>::COEFF_B;
            if let Some(y) = rhs.sqrt() {
                break G2Affine::new_unchecked(x, y);
            }
        };
        assert!(point.is_on_curve());
        let mut bytes = [0u8; 128];
        bytes[..64].copy_from_slice(&fq2_to_be(point.x));
        bytes[64..].copy_from_slice(&fq2_to_be(point.y));
        assert_eq!(
            PublicKey::from_bytes(&bytes),
            Err(DecodeError::NotInSubgroup)
        );
        let mut compressed = fq2_to_be(point.x);
        if is_odd(point.y.c1) {
            compressed[0] |= 0x80;
        }
        assert_eq!(
            PublicKey::from_compressed(&compressed),
            Err(DecodeError::NotInSubgroup)
        );
    }

    #[test]
    fn decoders_never_panic_on_random_bytes() {
        use rand::RngCore;
        let mut rng = rng();
        for len in [0usize, 1, 31, 32, 33, 63, 64, 65, 127, 128, 129] {
            for _ in 0..50 {
                let mut bytes = vec![0u8; len];
                rng.fill_bytes(&mut bytes);
                let _ = Signature::from_bytes(&bytes);
                let _ = Signature::from_compressed(&bytes);
                let _ = PublicKey::from_bytes(&bytes);
                let _ = PublicKey::from_compressed(&bytes);
                let _ = SecretKey::from_bytes(&bytes);
            }
        }
    }
}

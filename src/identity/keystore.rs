//! Ethereum V3 keystores ("Web3 Secret Storage"), as geth, ethers, MetaMask and ethereumjs write them.
//!
//! # Overview
//! A keystore holds a secp256k1 secret encrypted with AES-128-CTR under a key derived from a
//! password by scrypt or PBKDF2-HMAC-SHA256. A Keccak-256 MAC over (derived key[16..32] ‖ ciphertext)
//! tells a wrong password from a right one before anything is decrypted.
//!
//! # Usage
//! ```no_run
//! use keep_light::identity::keystore::Keystore;
//! let json = std::fs::read("UTC--2026-…").unwrap();
//! let key = Keystore::parse(&json)?.decrypt("password")?;
//! println!("{}", key.address());
//! # Ok::<(), keep_light::identity::keystore::KeystoreError>(())
//! ```
//!
//! # Security notes
//! - Bounded work: [`Keystore::parse`] refuses inputs over [`MAX_KEYSTORE_LEN`] and KDF parameters
//!   that would need more than [`MAX_SCRYPT_MEMORY`] of memory or more than
//!   [`MAX_PBKDF2_ROUNDS`] rounds, before any derivation starts. A hostile file cannot make the
//!   caller allocate gigabytes or spin for minutes.
//! - Wrong password: the MAC check fails, [`KeystoreError::WrongPassword`] comes back and no key
//!   material leaves this module.
//! - The password is tried as given, then NFKC-normalised if that differs: ethers normalises
//!   passwords (NFKC) before deriving, geth does not.
//! - Cost: geth's default scrypt (n = 2¹⁸, r = 8) takes 256 MiB and about a second. In a page,
//!   run it off the main thread (the JS shell uses a Web Worker; see `www/src/keystore-worker.js`).

use aes::cipher::{KeyIvInit, StreamCipher};
use serde::Deserialize;
use sha2::Sha256;
use sha3::{Digest, Keccak256};
use unicode_normalization::UnicodeNormalization;

use super::{Address, OperatorKey};

/// The largest keystore file accepted (real ones are under 1 KiB).
pub const MAX_KEYSTORE_LEN: usize = 64 * 1024;
/// The most memory scrypt may use (128·n·r bytes): twice geth's default of 256 MiB.
pub const MAX_SCRYPT_MEMORY: u64 = 512 << 20;
/// The most scrypt work accepted, n·r·p (geth's default is 2²¹).
pub const MAX_SCRYPT_WORK: u64 = 1 << 23;
/// The most PBKDF2 rounds accepted (geth writes 262,144).
pub const MAX_PBKDF2_ROUNDS: u32 = 1 << 23;
/// The longest salt accepted (real ones are 32 bytes).
pub const MAX_SALT_LEN: usize = 1024;

/// Why a keystore was refused. Every variant is final for this file and password: report it to
/// the user; only [`KeystoreError::WrongPassword`] is worth asking again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoreError {
    /// The file exceeds [`MAX_KEYSTORE_LEN`].
    #[error("keystore is {0} bytes, more than the {MAX_KEYSTORE_LEN}-byte limit")]
    TooLarge(usize),
    /// Not JSON, or JSON without the V3 fields.
    #[error("malformed keystore: {0}")]
    Malformed(String),
    /// `version` is not 3.
    #[error("unsupported keystore version {0} (only 3)")]
    Version(u64),
    /// A cipher, KDF or PRF this module does not implement.
    #[error("unsupported {what} {name:?}")]
    Unsupported {
        /// `cipher`, `kdf` or `prf`.
        what: &'static str,
        /// The name in the file.
        name: String,
    },
    /// KDF parameters that are invalid or exceed the limits (absurd n, dklen, rounds…).
    #[error("refused KDF parameters: {0}")]
    KdfParams(String),
    /// A hex field that does not decode or has the wrong length.
    #[error("field {field}: {problem}")]
    Field {
        /// The JSON field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The MAC does not match: the password is wrong (or the file corrupted).
    #[error("wrong password (MAC mismatch)")]
    WrongPassword,
    /// The decrypted bytes are not a valid secp256k1 secret.
    #[error("decrypted secret is not a valid secp256k1 key")]
    InvalidKey,
    /// The file's `address` is not the decrypted key's address.
    #[error("keystore address {stated} does not match the decrypted key's {actual}")]
    AddressMismatch {
        /// The address in the file.
        stated: Address,
        /// The key's address.
        actual: Address,
    },
}

/// A parsed, bounds-checked keystore, ready to decrypt.
#[derive(Debug, Clone)]
pub struct Keystore {
    kdf: Kdf,
    iv: [u8; 16],
    ciphertext: [u8; 32],
    mac: [u8; 32],
    address: Option<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kdf {
    Scrypt {
        log_n: u8,
        r: u32,
        p: u32,
        salt: Vec<u8>,
    },
    Pbkdf2 {
        rounds: u32,
        salt: Vec<u8>,
    },
}

#[derive(Deserialize)]
struct File {
    version: u64,
    #[serde(default)]
    address: Option<String>,
    // geth writes `crypto`, ethers `Crypto`.
    #[serde(alias = "Crypto")]
    crypto: CryptoSection,
}

#[derive(Deserialize)]
struct CryptoSection {
    cipher: String,
    cipherparams: CipherParams,
    ciphertext: String,
    kdf: String,
    kdfparams: serde_json::Map<String, serde_json::Value>,
    mac: String,
}

#[derive(Deserialize)]
struct CipherParams {
    iv: String,
}

impl Keystore {
    /// Parses and checks a keystore file; runs no KDF.
    pub fn parse(json: &[u8]) -> Result<Self, KeystoreError> {
        if json.len() > MAX_KEYSTORE_LEN {
            return Err(KeystoreError::TooLarge(json.len()));
        }
        let file: File =
            serde_json::from_slice(json).map_err(|e| KeystoreError::Malformed(e.to_string()))?;
        if file.version != 3 {
            return Err(KeystoreError::Version(file.version));
        }
        let crypto = file.crypto;
        if !crypto.cipher.eq_ignore_ascii_case("aes-128-ctr") {
            return Err(KeystoreError::Unsupported {
                what: "cipher",
                name: crypto.cipher,
            });
        }
        let kdf = parse_kdf(&crypto.kdf, &crypto.kdfparams)?;
        let address = match file.address.as_deref() {
            None | Some("") => None,
            Some(text) => Some(Address::from_slice(&hex_field("address", text)?).ok_or(
                KeystoreError::Field {
                    field: "address",
                    problem: "not 20 bytes".into(),
                },
            )?),
        };
        Ok(Keystore {
            kdf,
            iv: fixed("cipherparams.iv", &crypto.cipherparams.iv)?,
            ciphertext: fixed("ciphertext", &crypto.ciphertext)?,
            mac: fixed("mac", &crypto.mac)?,
            address,
        })
    }

    /// The address the file states, if any (not yet checked against the key).
    pub fn stated_address(&self) -> Option<Address> {
        self.address
    }

    /// Derives the key from `password`, checks the MAC and decrypts. Takes as long as the KDF
    /// (about a second for geth's defaults): call it off any UI thread.
    pub fn decrypt(&self, password: &str) -> Result<OperatorKey, KeystoreError> {
        let normalised: String = password.nfkc().collect();
        let mut candidates = vec![password.as_bytes()];
        if normalised != password {
            candidates.push(normalised.as_bytes());
        }
        for candidate in candidates {
            let derived = self.derive(candidate)?;
            let mut hasher = Keccak256::new();
            hasher.update(&derived[16..32]);
            hasher.update(self.ciphertext);
            let mac: [u8; 32] = hasher.finalize().into();
            if !constant_time_eq(&mac, &self.mac) {
                continue;
            }
            let mut secret = self.ciphertext;
            let mut cipher =
                ctr::Ctr128BE::<aes::Aes128>::new(derived[..16].into(), (&self.iv).into());
            cipher.apply_keystream(&mut secret);
            let key = OperatorKey::from_bytes(&secret).map_err(|_| KeystoreError::InvalidKey)?;
            if let Some(stated) = self.address {
                if stated != key.address() {
                    return Err(KeystoreError::AddressMismatch {
                        stated,
                        actual: key.address(),
                    });
                }
            }
            return Ok(key);
        }
        Err(KeystoreError::WrongPassword)
    }

    fn derive(&self, password: &[u8]) -> Result<[u8; 32], KeystoreError> {
        let mut derived = [0u8; 32];
        match &self.kdf {
            Kdf::Scrypt { log_n, r, p, salt } => {
                let params = scrypt::Params::new(*log_n, *r, *p, 32)
                    .map_err(|e| KeystoreError::KdfParams(e.to_string()))?;
                scrypt::scrypt(password, salt, &params, &mut derived)
                    .map_err(|e| KeystoreError::KdfParams(e.to_string()))?;
            }
            Kdf::Pbkdf2 { rounds, salt } => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, *rounds, &mut derived);
            }
        }
        Ok(derived)
    }
}

/// Parses a keystore and decrypts it in one call.
pub fn decrypt_keystore(json: &[u8], password: &str) -> Result<OperatorKey, KeystoreError> {
    Keystore::parse(json)?.decrypt(password)
}

fn parse_kdf(
    name: &str,
    params: &serde_json::Map<String, serde_json::Value>,
) -> Result<Kdf, KeystoreError> {
    let number = |field: &str| -> Result<u64, KeystoreError> {
        params
            .get(field)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| KeystoreError::KdfParams(format!("{field} missing or not an integer")))
    };
    let dklen = number("dklen")?;
    if dklen != 32 {
        return Err(KeystoreError::KdfParams(format!(
            "dklen must be 32, got {dklen}"
        )));
    }
    let salt_text = params
        .get("salt")
        .and_then(|v| v.as_str())
        .ok_or_else(|| KeystoreError::KdfParams("salt missing".into()))?;
    let salt = hex_field("kdfparams.salt", salt_text)?;
    if salt.len() > MAX_SALT_LEN {
        return Err(KeystoreError::KdfParams(format!(
            "salt of {} bytes exceeds {MAX_SALT_LEN}",
            salt.len()
        )));
    }
    match name.to_ascii_lowercase().as_str() {
        "scrypt" => {
            let (n, r, p) = (number("n")?, number("r")?, number("p")?);
            if n < 2 || !n.is_power_of_two() {
                return Err(KeystoreError::KdfParams(format!(
                    "n must be a power of two ≥ 2, got {n}"
                )));
            }
            if r == 0 || p == 0 {
                return Err(KeystoreError::KdfParams("r and p must be positive".into()));
            }
            let memory = 128u64.saturating_mul(n).saturating_mul(r);
            if memory > MAX_SCRYPT_MEMORY {
                return Err(KeystoreError::KdfParams(format!(
                    "scrypt n={n} r={r} needs {memory} bytes, more than {MAX_SCRYPT_MEMORY}"
                )));
            }
            let work = n.saturating_mul(r).saturating_mul(p);
            if work > MAX_SCRYPT_WORK {
                return Err(KeystoreError::KdfParams(format!(
                    "scrypt n·r·p = {work} exceeds {MAX_SCRYPT_WORK}"
                )));
            }
            Ok(Kdf::Scrypt {
                log_n: n.trailing_zeros() as u8,
                r: r as u32,
                p: p as u32,
                salt,
            })
        }
        "pbkdf2" => {
            let prf = params.get("prf").and_then(|v| v.as_str()).unwrap_or("");
            if prf != "hmac-sha256" {
                return Err(KeystoreError::Unsupported {
                    what: "prf",
                    name: prf.into(),
                });
            }
            let rounds = number("c")?;
            if rounds == 0 || rounds > u64::from(MAX_PBKDF2_ROUNDS) {
                return Err(KeystoreError::KdfParams(format!(
                    "pbkdf2 c must be between 1 and {MAX_PBKDF2_ROUNDS}, got {rounds}"
                )));
            }
            Ok(Kdf::Pbkdf2 {
                rounds: rounds as u32,
                salt,
            })
        }
        _ => Err(KeystoreError::Unsupported {
            what: "kdf",
            name: name.into(),
        }),
    }
}

fn hex_field(field: &'static str, text: &str) -> Result<Vec<u8>, KeystoreError> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    hex::decode(digits).map_err(|e| KeystoreError::Field {
        field,
        problem: e.to_string(),
    })
}

fn fixed<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], KeystoreError> {
    let bytes = hex_field(field, text)?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeystoreError::Field {
            field,
            problem: format!("expected {N} bytes, got {}", bytes.len()),
        })
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PBKDF2 test vector of the Web3 Secret Storage definition (password "testpassword").
    const SPEC_PBKDF2: &str = r#"{"crypto":{"cipher":"aes-128-ctr","cipherparams":{"iv":"6087dab2f9fdbbfaddc31a909735c1e6"},"ciphertext":"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46","kdf":"pbkdf2","kdfparams":{"c":262144,"dklen":32,"prf":"hmac-sha256","salt":"ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"},"mac":"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"},"id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#;

    fn with(field: &str, value: serde_json::Value) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(SPEC_PBKDF2).unwrap();
        let mut target = &mut v;
        let parts: Vec<&str> = field.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            target = &mut target[*part];
        }
        target[parts[parts.len() - 1]] = value;
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn decrypts_the_specification_vector() {
        let key = decrypt_keystore(SPEC_PBKDF2.as_bytes(), "testpassword").unwrap();
        assert_eq!(
            hex::encode(key.secret_bytes()),
            "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d"
        );
        assert_eq!(
            decrypt_keystore(SPEC_PBKDF2.as_bytes(), "testpassworD").unwrap_err(),
            KeystoreError::WrongPassword
        );
    }

    #[test]
    fn refuses_absurd_or_unsupported_parameters_before_deriving() {
        use serde_json::json;
        let scrypt = |n: u64, r: u64, p: u64, dklen: u64| {
            with(
                "crypto",
                json!({"cipher":"aes-128-ctr","cipherparams":{"iv":"00".repeat(16)},
                       "ciphertext":"00".repeat(32),"kdf":"scrypt",
                       "kdfparams":{"n":n,"r":r,"p":p,"dklen":dklen,"salt":"ab"},
                       "mac":"00".repeat(32)}),
            )
        };
        let kdf_params = |json: Vec<u8>| match Keystore::parse(&json) {
            Err(KeystoreError::KdfParams(text)) => text,
            other => panic!("expected KdfParams, got {other:?}"),
        };
        assert!(kdf_params(scrypt(1 << 40, 8, 1, 32)).contains("needs"));
        assert!(kdf_params(scrypt(1 << 18, 8, 1 << 20, 32)).contains("exceeds"));
        assert!(kdf_params(scrypt(1000, 8, 1, 32)).contains("power of two"));
        assert!(kdf_params(scrypt(1 << 10, 0, 1, 32)).contains("positive"));
        assert!(kdf_params(scrypt(1 << 10, 8, 1, 1 << 40)).contains("dklen"));
        assert!(kdf_params(with("crypto.kdfparams.c", json!(1u64 << 40))).contains("pbkdf2 c"));
        assert!(kdf_params(with("crypto.kdfparams.c", json!(-1))).contains("c missing"));
        assert!(
            kdf_params(with("crypto.kdfparams.salt", json!("ab".repeat(2000)))).contains("salt")
        );
        // Geth's default is accepted.
        assert!(Keystore::parse(&scrypt(1 << 18, 8, 1, 32)).is_ok());

        assert!(matches!(
            Keystore::parse(&with("crypto.kdf", json!("argon2"))),
            Err(KeystoreError::Unsupported { what: "kdf", .. })
        ));
        assert!(matches!(
            Keystore::parse(&with("crypto.kdfparams.prf", json!("hmac-sha1"))),
            Err(KeystoreError::Unsupported { what: "prf", .. })
        ));
        assert!(matches!(
            Keystore::parse(&with("crypto.cipher", json!("aes-128-cbc"))),
            Err(KeystoreError::Unsupported { what: "cipher", .. })
        ));
        assert_eq!(
            Keystore::parse(&with("version", json!(1))).unwrap_err(),
            KeystoreError::Version(1)
        );
    }

    #[test]
    fn refuses_malformed_files_with_the_field_named() {
        use serde_json::json;
        let field = |json: Vec<u8>| match Keystore::parse(&json) {
            Err(KeystoreError::Field { field, .. }) => field,
            other => panic!("expected Field, got {other:?}"),
        };
        assert_eq!(
            field(with("crypto.ciphertext", json!("5318b4d5bcd28"))),
            "ciphertext"
        );
        assert_eq!(field(with("crypto.ciphertext", json!("00"))), "ciphertext");
        assert_eq!(field(with("crypto.mac", json!("zz"))), "mac");
        assert_eq!(
            field(with("crypto.cipherparams.iv", json!("00"))),
            "cipherparams.iv"
        );
        assert_eq!(field(with("address", json!("0x1234"))), "address");
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"version\":3}",
            &[0xff, 0xfe, 0x00],
            b"",
        ] {
            assert!(
                matches!(Keystore::parse(bad), Err(KeystoreError::Malformed(_))),
                "{bad:?}"
            );
        }
        let huge = vec![b' '; 10 << 20];
        assert_eq!(
            Keystore::parse(&huge).unwrap_err(),
            KeystoreError::TooLarge(10 << 20)
        );
    }

    #[test]
    fn a_wrong_stated_address_is_caught() {
        let json = with(
            "address",
            serde_json::json!("0000000000000000000000000000000000000001"),
        );
        assert!(matches!(
            decrypt_keystore(&json, "testpassword"),
            Err(KeystoreError::AddressMismatch { .. })
        ));
    }
}

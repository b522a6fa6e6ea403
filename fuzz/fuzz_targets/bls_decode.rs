//! Every BN254 decoder on arbitrary bytes: never a panic; whatever decodes re-encodes to the same
//! bytes (canonical encodings only) and is a usable point.
#![no_main]

use keep_light::beacon::bls::{PublicKey, SecretKey, Signature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(signature) = Signature::from_bytes(data) {
        assert_eq!(&signature.to_bytes()[..], data);
        assert_eq!(Signature::from_compressed(&signature.to_compressed()), Ok(signature));
    }
    if let Ok(signature) = Signature::from_compressed(data) {
        assert_eq!(&signature.to_compressed()[..], data);
    }
    if let Ok(key) = PublicKey::from_bytes(data) {
        assert_eq!(&key.to_bytes()[..], data);
        assert_eq!(PublicKey::from_compressed(&key.to_compressed()), Ok(key));
    }
    if let Ok(key) = PublicKey::from_compressed(data) {
        assert_eq!(&key.to_compressed()[..], data);
    }
    if let Ok(secret) = SecretKey::from_bytes(data) {
        assert_eq!(&secret.to_bytes()[..], data);
    }
});

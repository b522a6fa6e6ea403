//! Keystores written by real wallet libraries (ethers: scrypt; @ethereumjs/wallet: pbkdf2 and
//! scrypt), made by www/tools/make-keystores.mjs into tests/vectors/keystores/: each decrypts to
//! its secret, and refuses a wrong password.
#![cfg(not(target_arch = "wasm32"))]

use keep_light::identity::keystore::{decrypt_keystore, KeystoreError};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/keystores");

#[test]
fn keystores_from_ethers_and_ethereumjs_decrypt() {
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/index.json")).unwrap())
            .unwrap();
    let cases = index.as_array().unwrap();
    let kdfs: Vec<&str> = cases.iter().map(|c| c["kdf"].as_str().unwrap()).collect();
    assert!(kdfs.contains(&"scrypt") && kdfs.contains(&"pbkdf2"));
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let json = std::fs::read(format!("{DIR}/{file}")).unwrap();
        let password = case["password"].as_str().unwrap();
        let key = decrypt_keystore(&json, password).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            format!("0x{}", hex::encode(key.secret_bytes())),
            case["secret"].as_str().unwrap(),
            "{file}"
        );
        assert_eq!(
            key.address().to_string(),
            case["address"].as_str().unwrap(),
            "{file}"
        );
        assert_eq!(
            decrypt_keystore(&json, &format!("{password}!")).unwrap_err(),
            KeystoreError::WrongPassword,
            "{file}"
        );
    }
}

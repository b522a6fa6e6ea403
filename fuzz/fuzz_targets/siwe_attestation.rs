//! Arbitrary bytes as a wallet attestation: as the JSON a peer sends (first byte 0), or as the
//! EIP-4361 text itself under a well-formed signature (otherwise), so the text parser runs on
//! every input. Never a panic; a verified attestation names the key that signed it and verifies
//! the same way again.
#![no_main]

use keep_light::identity::attestation::{self, Attestation, Expect};
use libfuzzer_sys::fuzz_target;
use time::{macros::datetime, OffsetDateTime};

/// The vectors' `now` (tests/vectors/siwe.json), inside the seeds' validity.
const NOW: OffsetDateTime = datetime!(2026-06-01 12:00:00 UTC);

/// 65 bytes r ‖ s ‖ v (v = 27): well-formed, so verification goes on to parse the text.
const SIGNATURE: &str = "0x2e8dcd33467dbdded98a3fb61c748e063df93d709321798b21c066e63463b4010c209ac19c336afb4a5ae5a83540583731e3454cae7e121e763a17be7b2a49911b";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let attestation = if mode == 0 {
        match serde_json::from_slice::<Attestation>(rest) {
            Ok(attestation) => attestation,
            Err(_) => return,
        }
    } else {
        Attestation {
            message: String::from_utf8_lossy(rest).into_owned(),
            signature: SIGNATURE.to_owned(),
        }
    };
    let expect = Expect::new();
    let first = attestation::verify(&attestation, NOW, &expect);
    if let Err(error) = &first {
        assert!(!error.reason().is_empty());
    }
    assert_eq!(first, attestation::verify(&attestation, NOW, &expect));
});

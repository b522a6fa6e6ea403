//! Arbitrary bytes as a DKG message from any seat, arriving at any phase of an honest member's
//! run: never a panic, nobody but the sender blamed, nothing changed unless the sender is
//! (`keep_light::beacon::probe` states and checks the invariants).
#![no_main]

use std::sync::OnceLock;

use keep_light::beacon::probe::MessageProbe;
use libfuzzer_sys::fuzz_target;

fn probe() -> &'static MessageProbe {
    static PROBE: OnceLock<MessageProbe> = OnceLock::new();
    PROBE.get_or_init(|| MessageProbe::new(3, 2, 1))
}

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = probe().probe(data) {
        panic!("{violation}");
    }
});

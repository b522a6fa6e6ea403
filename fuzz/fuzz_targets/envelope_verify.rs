//! Arbitrary bytes as a pubsub message on a group channel's topic and on a plain one, through
//! the validation pipeline a node runs (decode, the channel's checks before the signature, the
//! signature, delivery): never a panic; a signature holds only for its sender; whatever
//! decodes re-encodes to bytes that decode to the same envelope; nothing stays in flight.
#![no_main]

use futures::channel::mpsc;
use keep_light::{
    identity::Address,
    net::validation::{verify, KindSpec, MembershipFilter, Outcome, Pipeline},
    wire::{self, signature},
};
use libfuzzer_sys::fuzz_target;
use libp2p::{gossipsub::MessageId, PeerId};

const GROUP: &str = "keep-light/group/00/1";
const PLAIN: &str = "keep-light/demo/1";
/// 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266, the seeds' signer.
const ANVIL_0: [u8; 20] = [
    0xf3, 0x9f, 0xd6, 0xe5, 0x1a, 0xad, 0x88, 0xf6, 0xf4, 0xce, 0x6a, 0xb8, 0x82, 0x72, 0x79, 0xcf,
    0xff, 0xb9, 0x22, 0x66,
];

fn accepts_anything(_: &[u8]) -> Result<(), String> {
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let limit = wire::DEFAULT_MAX_MESSAGE_SIZE;
    if let Ok(envelope) = wire::decode_envelope(data, limit) {
        let again = wire::encode_envelope(&envelope, limit).expect("what decoded encodes");
        assert_eq!(wire::decode_envelope(&again, limit).as_ref(), Ok(&envelope));
        for topic in [GROUP, PLAIN] {
            if let Ok(signer) = signature::verify(topic, &envelope) {
                assert_eq!(signer.as_bytes(), envelope.sender.as_slice());
            }
        }
    }

    let mut pipeline = Pipeline::new(limit);
    let (sink, _inbox) = mpsc::channel(4);
    // The seeds' signer (tests/vectors/envelope.json) is a member, so valid seeds are delivered.
    let members = [Address(ANVIL_0), Address([0x22; 20])];
    pipeline
        .channels
        .open(GROUP, MembershipFilter::members(members), sink, 4);
    for kind in ["net.Text", "beacon.signing.Share"] {
        pipeline.channels.register(
            GROUP,
            KindSpec {
                kind: kind.into(),
                check: accepts_anything,
                app_validated: false,
            },
        );
    }
    let source = PeerId::random();
    for (n, topic) in [GROUP, PLAIN].into_iter().enumerate() {
        let id = MessageId::new(&[n as u8]);
        let mut pending = vec![pipeline.judge(topic, &id, source, data)];
        while let Some(outcome) = pending.pop() {
            match outcome {
                Outcome::Verify(job) => {
                    pending.extend(pipeline.verified(verify(job)).into_iter().map(|f| f.3))
                }
                Outcome::Plain { envelope, sender } => {
                    assert_eq!(sender.as_bytes(), envelope.sender.as_slice())
                }
                _ => {}
            }
        }
    }
    assert_eq!(pipeline.in_flight(), 0);
});

//! One honest member's DKG, recorded phase by phase, replayed with one extra message: the
//! harness of the DKG fuzz target (`fuzz/fuzz_targets/dkg_message.rs`) and of the bad-input
//! test in `tests/dkg.rs`.
//!
//! # Overview
//! [`MessageProbe::new`] runs an honest simulated DKG and keeps, for one member, a snapshot of
//! its machine as each phase began and every message it got. [`MessageProbe::probe`] decodes
//! arbitrary bytes as a wire payload, hands the message to a snapshot as if a chosen seat had
//! sent it (a member, the probed member itself, or a non-member), replays the rest of the
//! recorded run and checks what a hostile message may and may not do:
//! - whatever decodes re-encodes to a payload that decodes to the same message;
//! - every misbehaviour the member reports names the message's sender, never anyone else
//!   (except the one artefact of replaying alone: once the sender is blamed and this
//!   member's result changes, the recorded peers' signatures of the old result are refused
//!   and they count as silent in result signing);
//! - if the sender is not blamed, the member does exactly what it did without the message;
//! - if it is, the member still finishes and lists no one else (it may end without enough
//!   result signatures, or unable to rebuild the sender alone: the recorded peers never saw
//!   the message, which a broadcast channel would have shown them too).
//!
//! One replay costs one member's remaining phases, so a small group keeps the fuzzer fast.
//!
//! # Usage
//! ```
//! use keep_light::beacon::probe::MessageProbe;
//! let probe = MessageProbe::new(3, 2, 1);
//! probe.probe(&[2, 2, 3, 0xff, 0x00]).unwrap();
//! ```

use super::{
    dkg::{Action, Body, Dkg, DkgError, Index, Message, Misbehaviour, Offence, Phase},
    sim::{DkgSimulation, SimConfig},
    wire::{decode_dkg, encode_dkg},
};

/// The probed member.
const ME: Index = 1;

/// A recorded honest run of one member, ready to replay from any phase.
pub struct MessageProbe {
    members: u32,
    session: [u8; 32],
    /// The member's machine as each phase began (index = phase ordinal), and after the end.
    starts: Vec<Dkg>,
    /// Where in `deliveries` each entry of `starts` stands.
    positions: Vec<usize>,
    /// Every message the member got, in order, with its authenticated sender.
    deliveries: Vec<(Index, Message)>,
    /// What the member did from each start on, in the honest run.
    baseline: Vec<Vec<Action>>,
}

/// An invariant a hostile message broke (the fuzz target panics with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Violation(pub String);

impl MessageProbe {
    /// Records member 1 of an honest `members`/`threshold` DKG derived from `seed`.
    pub fn new(members: u32, threshold: u32, seed: u64) -> Self {
        let mut sim = DkgSimulation::new(SimConfig::new(members, threshold, seed));
        let mut member = sim.member(ME).expect("member 1 exists").clone();
        sim.run(10_000).expect("an honest DKG finishes");
        let session = sim.sent()[0].session;
        let mut deliveries = Vec::new();
        for phase in Phase::ALL {
            deliveries.extend(
                sim.sent()
                    .iter()
                    .filter(|m| m.sender != ME && m.body.phase() == phase)
                    .map(|m| (m.sender, m.clone())),
            );
        }
        let mut starts = Vec::new();
        let mut positions = Vec::new();
        let mut step = 0;
        let mut actions = drain(&mut member);
        for phase in Phase::ALL {
            starts.push(member.clone());
            positions.push(step);
            while deliveries
                .get(step)
                .is_some_and(|(_, m)| m.body.phase() == phase)
            {
                let (from, message) = deliveries[step].clone();
                member.handle_message(0, from, message);
                step += 1;
            }
            actions.extend(drain(&mut member));
        }
        starts.push(member.clone());
        positions.push(step);
        let replayed: Vec<&Message> = actions.iter().filter_map(broadcast).collect();
        let sent: Vec<&Message> = sim.sent().iter().filter(|m| m.sender == ME).collect();
        assert_eq!(replayed, sent, "the replay repeats the simulation");
        assert_eq!(
            member.outcome(),
            sim.result(ME),
            "the replay ends as the simulation"
        );
        let mut probe = Self {
            members,
            session,
            starts,
            positions,
            deliveries,
            baseline: Vec::new(),
        };
        probe.baseline = (0..probe.starts.len())
            .map(|at| probe.replay(at, None))
            .collect();
        probe
    }

    /// Every encoded message the member got: seeds for the fuzzer.
    pub fn payloads(&self) -> Vec<Vec<u8>> {
        self.deliveries.iter().map(|(_, m)| encode_dkg(m)).collect()
    }

    /// Replays with one message made from `input`: byte 0 picks the phase it arrives at (the
    /// start of a phase, or after the last), byte 1 the seat it comes from (0 and N+1 are not
    /// seats; 1 is the probed member itself), byte 2's low bits whether to put the real
    /// session and that seat into it (so mutations reach past those checks); the rest is the
    /// payload.
    pub fn probe(&self, input: &[u8]) -> Result<(), Violation> {
        let [at, from, fix, payload @ ..] = input else {
            return Ok(());
        };
        let at = *at as usize % self.starts.len();
        let from = Index::from(*from) % (self.members + 2);
        let Ok(mut message) = decode_dkg(payload) else {
            return Ok(());
        };
        if decode_dkg(&encode_dkg(&message)).as_ref() != Ok(&message) {
            return Err(Violation(format!(
                "{message:?} does not survive re-encoding"
            )));
        }
        if fix & 1 != 0 {
            message.session = self.session;
        }
        if fix & 2 != 0 {
            message.sender = from;
        }
        let actions = self.replay(at, Some((from, message.clone())));
        let reports: Vec<&Misbehaviour> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Misbehaved(m) => Some(m),
                _ => None,
            })
            .collect();
        let blamed = reports.iter().any(|m| m.member == from);
        // Blaming the sender may change the result this member signs; the recorded peers,
        // who never saw the message, signed the old one, so their signatures are refused
        // and, at the deadline, they count as silent: all it may hold against them.
        let result_changed = result_hash(&actions) != result_hash(&self.baseline[at]);
        if let Some(wrong) = reports.iter().find(|m| {
            m.member != from
                && !(blamed
                    && result_changed
                    && m.phase == Phase::ResultSigning
                    && matches!(m.offence, Offence::BadResultSignature | Offence::Silent))
        }) {
            return Err(Violation(format!(
                "{wrong:?} after {message:?} from {from}"
            )));
        }
        if !blamed {
            return match actions == self.baseline[at] {
                true => Ok(()),
                false => Err(Violation(format!(
                    "{message:?} from {from} changed what member {ME} did, unblamed"
                ))),
            };
        }
        let finished = actions.iter().rev().find_map(|a| match a {
            Action::Finished(result) => Some(result),
            _ => None,
        });
        match finished {
            // It came after the end: reported, nothing else to check.
            None if at + 1 == self.starts.len() => Ok(()),
            Some(Ok(outcome)) if outcome.misbehaved.iter().all(|i| *i == from) => Ok(()),
            Some(Err(
                DkgError::NotEnoughSignatures { .. } | DkgError::CannotReconstruct { .. },
            )) => Ok(()),
            other => Err(Violation(format!(
                "{message:?} from {from}: member {ME} ended with {other:?}"
            ))),
        }
    }

    /// The member from start `at` on, with `extra` delivered first, to the end (deadlines
    /// passed if the recorded messages no longer complete a phase).
    fn replay(&self, at: usize, extra: Option<(Index, Message)>) -> Vec<Action> {
        let mut member = self.starts[at].clone();
        let mut actions = Vec::new();
        let probing = extra.is_some();
        if let Some((from, message)) = extra {
            member.handle_message(0, from, message);
            actions.extend(drain(&mut member));
        }
        for step in self.positions[at]..=self.deliveries.len() {
            // Back where the recording stood at a phase start (a refused message that left no
            // trace, or one whose effect has washed out): the machine is deterministic, so the
            // rest is the recorded run, and replaying it would only repeat its crypto.
            if probing {
                if let Some(k) = (at..self.starts.len())
                    .find(|&k| self.positions[k] == step && member.same_state(&self.starts[k]))
                {
                    actions.extend(self.baseline[k].iter().cloned());
                    return actions;
                }
            }
            if let Some((from, message)) = self.deliveries.get(step) {
                member.handle_message(0, *from, message.clone());
                actions.extend(drain(&mut member));
            }
        }
        while let Some(deadline) = member.poll_timeout() {
            member.handle_block(deadline);
            actions.extend(drain(&mut member));
        }
        actions
    }
}

fn drain(member: &mut Dkg) -> Vec<Action> {
    std::iter::from_fn(|| member.poll_action()).collect()
}

/// The result hash this member signed among `actions`, if it signed in them.
fn result_hash(actions: &[Action]) -> Option<[u8; 32]> {
    actions
        .iter()
        .filter_map(broadcast)
        .find_map(|m| match m.body {
            Body::ResultSignature { hash, .. } => Some(hash),
            _ => None,
        })
}

fn broadcast(action: &Action) -> Option<&Message> {
    match action {
        Action::Broadcast(message) => Some(message),
        _ => None,
    }
}

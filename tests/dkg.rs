//! GJKR DKG with many members in one process on the virtual block clock (`beacon::sim`):
//! honest groups, and one scenario per misbehaviour in the manner of keep-core's
//! interception tests.

use std::collections::BTreeSet;

use ark_ec::{AffineRepr, CurveGroup};
use keep_light::beacon::{
    dkg::{Body, DkgError, Index, Offence, Outcome, Phase},
    probe::MessageProbe,
    sim::{constant_term_point, corrupt_shares_to, DkgSimulation, Fate, SimConfig},
    threshold::{combine_verified, CandidateShare},
};

/// Every finished honest member's outcome, checked to be the same everywhere.
fn agreed(sim: &DkgSimulation, honest: &[Index]) -> Outcome {
    let first = sim
        .outcome(honest[0])
        .unwrap_or_else(|| panic!("member {} failed: {:?}", honest[0], sim.result(honest[0])))
        .clone();
    for member in honest {
        let outcome = sim
            .outcome(*member)
            .unwrap_or_else(|| panic!("member {member} failed: {:?}", sim.result(*member)));
        assert_eq!(
            outcome.group_public_key, first.group_public_key,
            "member {member}"
        );
        assert_eq!(outcome.misbehaved, first.misbehaved, "member {member}");
        assert_eq!(outcome.qualified, first.qualified, "member {member}");
        assert_eq!(
            outcome.public_key_shares, first.public_key_shares,
            "member {member}"
        );
        assert_eq!(outcome.result_hash, first.result_hash, "member {member}");
    }
    first
}

/// Any T of the operating members sign a message that verifies under the group key.
fn threshold_signs(sim: &DkgSimulation, outcome: &Outcome, signers: &[Index]) {
    let message = b"the previous entry";
    let shares: Vec<CandidateShare> = signers
        .iter()
        .map(|i| {
            let mine = sim.outcome(*i).unwrap();
            CandidateShare {
                index: *i,
                signature: mine.share.sign(message),
                public_key: outcome.public_key_shares[i],
            }
        })
        .collect();
    let mut rng = rand::thread_rng();
    let combined = combine_verified(
        message,
        sim.parameters().threshold as usize,
        &shares,
        &mut rng,
    )
    .expect("T valid shares combine");
    assert!(outcome
        .group_public_key
        .verify(message, &combined.signature));
}

/// Y is the sum of the qualified members' constant-term points, as they broadcast them.
fn key_is_sum_of_qualified(sim: &DkgSimulation, outcome: &Outcome) {
    let sum = sim
        .sent()
        .iter()
        .filter(|m| outcome.qualified.contains(&m.sender))
        .filter_map(constant_term_point)
        .fold(ark_bn254::G2Projective::default(), |acc, p| acc + p);
    assert_eq!(sum.into_affine(), outcome.group_public_key.point());
}

fn honest(n: u32, t: u32) {
    let mut sim = DkgSimulation::new(SimConfig::new(n, t, 42));
    sim.run(1_000_000).unwrap();
    let all: Vec<Index> = (1..=n).collect();
    let outcome = agreed(&sim, &all);
    assert!(outcome.misbehaved.is_empty(), "{:?}", sim.reports());
    assert_eq!(outcome.qualified.len(), n as usize);
    assert!(sim.reports().is_empty(), "{:?}", sim.reports());
    key_is_sum_of_qualified(&sim, &outcome);
    // Every member's share matches its public key share.
    for i in &all {
        let mine = sim.outcome(*i).unwrap();
        assert_eq!(mine.share.public_key(), outcome.public_key_shares[i]);
        assert_eq!(mine.signatures.len(), n as usize);
    }
    // The first T, and the last T.
    threshold_signs(&sim, &outcome, &all[..t as usize]);
    threshold_signs(&sim, &outcome, &all[(n - t) as usize..]);
    // Every phase ended early (all messages in): the clock never moved.
    assert_eq!(sim.block(), 0);
}

#[test]
fn honest_dkg_of_3_members() {
    honest(3, 2);
}

#[test]
fn honest_dkg_of_5_members() {
    honest(5, 3);
}

#[test]
fn honest_dkg_of_16_members() {
    honest(16, 9);
}

#[test]
fn the_same_seed_gives_the_same_outcome() {
    let run = |seed| {
        let mut sim = DkgSimulation::new(SimConfig::new(5, 3, seed));
        sim.run(100_000).unwrap();
        let o = sim.outcome(2).unwrap();
        (
            o.group_public_key.to_bytes(),
            o.share.to_bytes(),
            o.result_hash,
        )
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

/// Runs a 7-member, T = 4 DKG built by `build`; returns it finished.
fn run_seven(build: impl FnOnce(DkgSimulation) -> DkgSimulation) -> DkgSimulation {
    let mut sim = build(DkgSimulation::new(SimConfig::new(7, 4, 11)));
    sim.run(1_000_000).unwrap();
    sim
}

/// The members other than `bad`.
fn others(bad: &[Index]) -> Vec<Index> {
    (1..=7).filter(|i| !bad.contains(i)).collect()
}

/// Whether every honest member reported `member` for `offence` in `phase`.
fn all_reported(
    sim: &DkgSimulation,
    honest: &[Index],
    member: Index,
    phase: Phase,
    offence: &Offence,
) {
    for reporter in honest {
        assert!(
            sim.reports().iter().any(|(r, m)| r == reporter
                && m.member == member
                && m.phase == phase
                && m.offence == *offence),
            "member {reporter} did not report {member} for {offence:?} in {phase:?}: {:?}",
            sim.reports()
        );
    }
}

#[test]
fn a_member_silent_in_any_broadcasting_phase_is_listed_and_the_rest_agree() {
    for phase in Phase::ALL {
        let sim = run_seven(|s| s.silence(5, phase));
        let honest = others(&[5]);
        let outcome = agreed(&sim, &honest);
        all_reported(&sim, &honest, 5, phase, &Offence::Silent);
        // Silent only when the result is already signed: not listed, one signature fewer.
        if phase == Phase::ResultSigning {
            assert!(outcome.misbehaved.is_empty(), "{phase:?}");
            assert_eq!(outcome.signatures.len(), 6);
        } else {
            assert_eq!(outcome.misbehaved, BTreeSet::from([5]), "{phase:?}");
        }
        // Before QUAL is fixed, silence keeps it out; after, its polynomial stays in the key
        // (rebuilt from the others' disclosed shares when its points never came).
        let in_qual = !matches!(
            phase,
            Phase::EphemeralKeys | Phase::Commitments | Phase::ShareAccusations
        );
        assert_eq!(outcome.qualified.contains(&5), in_qual, "{phase:?}");
        threshold_signs(&sim, &outcome, &honest[..4]);
        if phase != Phase::Points {
            key_is_sum_of_qualified(&sim, &outcome);
        }
        // Everyone waited out the silent phase's deadline.
        assert!(sim.block() >= 10, "{phase:?}: block {}", sim.block());
    }
}

#[test]
fn a_wrong_share_to_one_peer_gets_the_dealer_accused_and_disqualified() {
    let sim = run_seven(|s| s.with_interceptor(corrupt_shares_to(vec![3], 1)));
    let honest = others(&[3]);
    let outcome = agreed(&sim, &honest);
    assert_eq!(outcome.misbehaved, BTreeSet::from([3]));
    assert!(!outcome.qualified.contains(&3));
    all_reported(
        &sim,
        &honest,
        3,
        Phase::ShareAccusations,
        &Offence::WrongShares,
    );
    // (Member 3 holds its own unaltered copy, so it blames its accuser: a cheater's view.)
    key_is_sum_of_qualified(&sim, &outcome);
    threshold_signs(&sim, &outcome, &honest[2..]);
}

#[test]
fn a_false_accusation_gets_the_accuser_disqualified() {
    // Member 2 accuses member 4, revealing a key that is not its own for the pair.
    let sim = run_seven(|s| {
        s.with_interceptor(|message, _| match &message.body {
            Body::ShareAccusations { .. } if message.sender == 2 => {
                let mut altered = message.clone();
                altered.body = Body::ShareAccusations {
                    accused: vec![(4, [9; 32])],
                };
                Fate::Replace(altered)
            }
            _ => Fate::Deliver,
        })
    });
    let honest = others(&[2]);
    let outcome = agreed(&sim, &honest);
    assert_eq!(outcome.misbehaved, BTreeSet::from([2]));
    all_reported(
        &sim,
        &honest,
        2,
        Phase::ShareAccusations,
        &Offence::FalseAccusation,
    );
    assert!(outcome.qualified.contains(&4));
    threshold_signs(&sim, &outcome, &honest[..4]);
}

#[test]
fn an_accusation_with_the_accusers_real_key_over_a_share_that_decrypts_convicts_the_accuser() {
    // Member 4's broadcast reaches member 2 altered (one byte of 2's ciphertext flipped), so
    // member 2 accuses 4 in good faith and reveals its real ephemeral key for the pair. Everyone
    // else holds 4's broadcast as sent: with that key, 2's share decrypts and matches 4's
    // commitments, so the accusation is false and 2 is disqualified, not 4.
    let mut altered_to_2 = corrupt_shares_to(vec![4], 2);
    let sim = run_seven(|s| {
        s.with_interceptor(move |message, to| {
            if to == 2 {
                altered_to_2(message, to)
            } else {
                Fate::Deliver
            }
        })
    });
    let accusation = sim
        .sent()
        .iter()
        .find(|m| m.sender == 2 && matches!(m.body, Body::ShareAccusations { .. }))
        .expect("member 2 accused");
    let Body::ShareAccusations { accused } = &accusation.body else {
        unreachable!()
    };
    assert_eq!(accused.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [4]);
    let honest = others(&[2]);
    let outcome = agreed(&sim, &honest);
    assert_eq!(outcome.misbehaved, BTreeSet::from([2]));
    assert!(outcome.qualified.contains(&4));
    all_reported(
        &sim,
        &honest,
        2,
        Phase::ShareAccusations,
        &Offence::FalseAccusation,
    );
    // By its own altered copy member 4 cheated, so member 2 signs a different result, alone.
    let misled = sim.result(2).expect("member 2 finished");
    assert!(
        matches!(
            misled,
            Err(DkgError::NotEnoughSignatures { signatures: 1, .. })
        ),
        "{misled:?}"
    );
    threshold_signs(&sim, &outcome, &honest[..4]);
}

#[test]
fn inconsistent_commitments_get_the_dealer_disqualified_by_everyone() {
    let sim = run_seven(|s| {
        s.with_interceptor(|message, _| match &message.body {
            Body::Commitments {
                commitments,
                shares,
            } if message.sender == 6 => {
                let mut commitments = commitments.clone();
                commitments[1] = (commitments[1] + ark_bn254::G1Affine::generator()).into_affine();
                let mut altered = message.clone();
                altered.body = Body::Commitments {
                    commitments,
                    shares: shares.clone(),
                };
                Fate::Replace(altered)
            }
            _ => Fate::Deliver,
        })
    });
    let honest = others(&[6]);
    let outcome = agreed(&sim, &honest);
    assert_eq!(outcome.misbehaved, BTreeSet::from([6]));
    assert!(!outcome.qualified.contains(&6));
    all_reported(
        &sim,
        &honest,
        6,
        Phase::ShareAccusations,
        &Offence::WrongShares,
    );
    threshold_signs(&sim, &outcome, &honest[..4]);
}

#[test]
fn bad_public_key_points_get_the_dealer_accused_and_its_polynomial_rebuilt() {
    let sim = run_seven(|s| {
        s.with_interceptor(|message, _| match &message.body {
            Body::Points { points } if message.sender == 3 => {
                let mut points = points.clone();
                points[2] = (points[2] + ark_bn254::G2Affine::generator()).into_affine();
                let mut altered = message.clone();
                altered.body = Body::Points { points };
                Fate::Replace(altered)
            }
            _ => Fate::Deliver,
        })
    });
    let honest = others(&[3]);
    let outcome = agreed(&sim, &honest);
    assert_eq!(outcome.misbehaved, BTreeSet::from([3]));
    all_reported(
        &sim,
        &honest,
        3,
        Phase::PointAccusations,
        &Offence::BadPoints,
    );
    // Still in QUAL: its real polynomial, rebuilt from disclosed shares, is in the key.
    assert!(outcome.qualified.contains(&3));
    key_is_sum_of_qualified(&sim, &outcome);
    threshold_signs(&sim, &outcome, &honest[..4]);
    threshold_signs(&sim, &outcome, &honest[2..]);
}

#[test]
fn a_message_forged_with_another_members_index_is_refused_and_its_sender_reported() {
    // Member 2's phase-1 broadcast claims seat 4.
    let sim = run_seven(|s| {
        s.with_interceptor(|message, _| match &message.body {
            Body::EphemeralKeys { .. } if message.sender == 2 => {
                let mut forged = message.clone();
                forged.sender = 4;
                Fate::Replace(forged)
            }
            _ => Fate::Deliver,
        })
    });
    let honest = others(&[2]);
    let outcome = agreed(&sim, &honest);
    all_reported(
        &sim,
        &honest,
        2,
        Phase::EphemeralKeys,
        &Offence::Forged { claimed: 4 },
    );
    // Seat 4 is unharmed; the forger counts as silent.
    assert_eq!(outcome.misbehaved, BTreeSet::from([2]));
    assert!(outcome.qualified.contains(&4));
}

#[test]
fn a_message_replayed_from_an_earlier_dkg_is_refused_and_changes_nothing() {
    // An earlier DKG of the same seats (another seed, another session).
    let mut earlier = DkgSimulation::new(SimConfig::new(7, 4, 99));
    earlier.run(1_000_000).unwrap();
    let old: Vec<_> = earlier
        .sent()
        .iter()
        .filter(|m| m.sender == 2)
        .cloned()
        .collect();
    let honest: Vec<Index> = (1..=7).collect();
    let reference = agreed(&run_seven(|s| s), &honest);
    let sim = run_seven(move |s| {
        s.with_interceptor(move |message, _| {
            match old.iter().find(|m| m.body.phase() == message.body.phase()) {
                Some(replay) if message.sender == 2 => Fate::Also(replay.clone()),
                _ => Fate::Deliver,
            }
        })
    });
    let outcome = agreed(&sim, &honest);
    assert_eq!(outcome.result_hash, reference.result_hash);
    assert!(outcome.misbehaved.is_empty());
    all_reported(
        &sim,
        &others(&[2]),
        2,
        Phase::EphemeralKeys,
        &Offence::WrongSession,
    );
}

#[test]
fn messages_for_a_later_phase_that_arrive_first_are_kept_not_dropped() {
    // Member 7's phase-1 keys reach member 1 a block late: by then the others' phase-3
    // messages are already there.
    let sim = run_seven(|s| {
        s.with_interceptor(|message, to| match &message.body {
            Body::EphemeralKeys { .. } if message.sender == 7 && to == 1 => Fate::Delay(1),
            _ => Fate::Deliver,
        })
    });
    let all: Vec<Index> = (1..=7).collect();
    let outcome = agreed(&sim, &all);
    assert!(outcome.misbehaved.is_empty(), "{:?}", sim.reports());
    assert!(sim.reports().is_empty(), "{:?}", sim.reports());
    assert_eq!(sim.block(), 1);
}

#[test]
fn more_than_n_minus_t_members_misbehaving_fails_cleanly_with_the_reason() {
    let sim = run_seven(|s| (4..=7).fold(s, |s, member| s.silence(member, Phase::Commitments)));
    for member in 1..=3 {
        assert_eq!(
            sim.result(member).unwrap().as_ref().unwrap_err(),
            &DkgError::TooFewQualified {
                qualified: 3,
                threshold: 4
            }
        );
    }
}

#[test]
fn honest_dkg_of_64_members_with_threshold_33() {
    honest(64, 33);
}

#[test]
fn a_dkg_groups_members_sign_the_next_entry_with_their_shares() {
    use keep_light::beacon::{
        entry::{genesis, verify_entry},
        signing::{EntrySigning, GroupKeys, SigningAction},
    };
    // Member 6 misbehaved in the DKG: it holds no share the others accept.
    let sim = run_seven(|s| s.silence(6, Phase::Points));
    let honest = others(&[6]);
    let outcome = agreed(&sim, &honest);
    let mut members: Vec<EntrySigning> = honest
        .iter()
        .map(|i| {
            let keys = GroupKeys::from_outcome(sim.outcome(*i).unwrap(), 7, 4);
            EntrySigning::new(keys, &genesis(), 10, 2, [*i as u8; 32])
        })
        .collect();
    let shares: Vec<(Index, [u8; 64])> = members
        .iter_mut()
        .map(|m| match m.poll_action() {
            Some(SigningAction::Broadcast { index, share }) => (index, share.to_bytes()),
            other => panic!("{other:?}"),
        })
        .collect();
    for member in &mut members {
        for (from, share) in &shares {
            member.handle_share(*from, share);
        }
        // A member combines once its submission turn is near: bring each one to its turn.
        let turn = member.submission_block();
        member.handle_block(turn);
        let entry = member.entry().expect("T shares");
        assert!(verify_entry(&outcome.group_public_key, &genesis(), entry));
    }
    let entries: BTreeSet<[u8; 64]> = members
        .iter()
        .map(|m| m.entry().unwrap().to_bytes())
        .collect();
    assert_eq!(entries.len(), 1, "one entry, whoever combined it");
}

/// The probe's inputs for every recorded message: arriving at every phase, from every seat,
/// with and without the real session and seat put in.
fn probe_inputs(probe: &MessageProbe) -> Vec<Vec<u8>> {
    let mut inputs = Vec::new();
    for payload in probe.payloads() {
        for at in 0..8u8 {
            for from in 0..5u8 {
                for fix in 0..4u8 {
                    inputs.push([&[at, from, fix][..], &payload].concat());
                }
            }
        }
    }
    inputs
}

#[test]
fn hostile_bytes_from_any_seat_at_any_phase_blame_only_their_sender() {
    // The fuzz target's check (fuzz/fuzz_targets/dkg_message.rs), over every recorded
    // message from every seat at every phase, then seeded mutations of them.
    use rand::{Rng, SeedableRng};
    let probe = MessageProbe::new(3, 2, 11);
    let inputs = probe_inputs(&probe);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut checked = 0;
    for input in &inputs {
        probe.probe(input).unwrap();
        let mut mutated = input.clone();
        for _ in 0..rng.gen_range(1..4) {
            let at = rng.gen_range(3..mutated.len());
            mutated[at] ^= 1 << rng.gen_range(0..8);
        }
        probe.probe(&mutated).unwrap();
        checked += 2;
    }
    assert_eq!(checked, 2 * 14 * 8 * 5 * 4);
}

#[test]
#[ignore = "writes the fuzzer's seeds: cargo test --release --test dkg -- --ignored"]
fn write_fuzz_seeds() {
    let probe = MessageProbe::new(3, 2, 1);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/dkg_message");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, payload) in probe.payloads().iter().enumerate() {
        // Arriving as its phase begins... from its own sender, session and seat as they are.
        let message = keep_light::beacon::wire::decode_dkg(payload).unwrap();
        let at = message.body.phase().ordinal() as u8;
        let input = [&[at, message.sender as u8, 0][..], payload].concat();
        std::fs::write(dir.join(format!("{i:02}")), input).unwrap();
    }
}

//! GJKR DKG with many members in one process on the virtual block clock (`beacon::sim`):
//! honest groups, and one scenario per misbehaviour in the manner of keep-core's
//! interception tests.

use std::collections::BTreeSet;

use ark_ec::{CurveGroup, PrimeGroup};
use keep_light::beacon::{
    dkg::{Body, DkgError, Index, Offence, Outcome, Phase},
    sim::{constant_term_point, DkgSimulation, Fate, SimConfig},
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

//! A group's life after its DKG: its record (seats, keys, creation, expiry) and how reliably
//! each member delivers what the protocols expect of it (the seed: "groups must have high
//! delivery rate").
//!
//! # Overview
//! A [`Group`] is made from a DKG result once the chain has accepted it. It serves relay entries
//! until it expires, after `lifetime.entries` entries or `lifetime.blocks` blocks, whichever
//! comes first. [`Delivery`] counts, per member, the messages expected of it and those that came
//! in time (a DKG phase, a signature share before the entry was made); the member service
//! feeds it and reports the rates. A member of several groups keeps one `Group`, and one set
//! of protocol machines, per group: nothing here is shared between groups.
//!
//! # Usage
//! ```
//! use keep_light::beacon::group::{Delivery, Lifetime};
//! let mut delivery = Delivery::default();
//! delivery.expected(3);
//! delivery.on_time(3);
//! delivery.expected(4);
//! assert_eq!(delivery.rate(3), Some(1.0));
//! assert_eq!(delivery.rate(4), Some(0.0));
//! let lifetime = Lifetime { entries: 10, blocks: 1_000 };
//! assert!(lifetime.expired(5_000, 0, 4_000));
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::{
    bls::PublicKey,
    dkg::{Index, Outcome},
};
use crate::identity::Address;

/// When a group stops serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Entries it may serve.
    pub entries: u64,
    /// Blocks it may live, from its creation.
    pub blocks: u64,
}

impl Lifetime {
    /// Whether a group created at `created` that has served `served` entries is expired at
    /// `block`.
    pub fn expired(&self, block: u64, served: u64, created: u64) -> bool {
        served >= self.entries || block >= created.saturating_add(self.blocks)
    }
}

/// A group as the chain and its members know it.
#[derive(Debug, Clone)]
pub struct Group {
    /// The network-key address of each seat, index i at position i−1.
    pub seats: Vec<Address>,
    pub group_public_key: PublicKey,
    /// Every seat's public key share, for the members still operating.
    pub public_key_shares: BTreeMap<Index, PublicKey>,
    /// Seats the DKG result lists as misbehaved: no share of theirs counts.
    pub misbehaved: BTreeSet<Index>,
    /// The block the chain accepted the DKG result at.
    pub created: u64,
    pub lifetime: Lifetime,
    /// Entries served so far.
    pub served: u64,
}

impl Group {
    /// The group a DKG made, accepted on chain at `created`.
    pub fn from_dkg(
        seats: Vec<Address>,
        outcome: &Outcome,
        created: u64,
        lifetime: Lifetime,
    ) -> Self {
        Self {
            seats,
            group_public_key: outcome.group_public_key,
            public_key_shares: outcome.public_key_shares.clone(),
            misbehaved: outcome.misbehaved.clone(),
            created,
            lifetime,
            served: 0,
        }
    }

    /// Whether it no longer serves at `block`.
    pub fn expired(&self, block: u64) -> bool {
        self.lifetime.expired(block, self.served, self.created)
    }

    /// An entry it signed was accepted.
    pub fn entry_served(&mut self) {
        self.served += 1;
    }

    /// The seats of `address` (an operator may hold several).
    pub fn seats_of(&self, address: &Address) -> Vec<Index> {
        self.seats
            .iter()
            .enumerate()
            .filter(|(_, a)| *a == address)
            .map(|(i, _)| i as Index + 1)
            .collect()
    }
}

/// Per member: messages expected of it, and those that came in time.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    counts: BTreeMap<Index, (u64, u64)>,
}

impl Delivery {
    /// A message was due from `member`.
    pub fn expected(&mut self, member: Index) {
        self.counts.entry(member).or_default().0 += 1;
    }

    /// It came in time (call after [`Delivery::expected`] for the same message).
    pub fn on_time(&mut self, member: Index) {
        let (expected, on_time) = self.counts.entry(member).or_default();
        *on_time = (*on_time + 1).min(*expected);
    }

    /// The fraction of `member`'s expected messages that came in time; `None` if none was due.
    pub fn rate(&self, member: Index) -> Option<f64> {
        let (expected, on_time) = self.counts.get(&member)?;
        (*expected > 0).then(|| *on_time as f64 / *expected as f64)
    }

    /// The whole group's fraction.
    pub fn group_rate(&self) -> Option<f64> {
        let (expected, on_time) = self
            .counts
            .values()
            .fold((0, 0), |(e, o), (de, dt)| (e + de, o + dt));
        (expected > 0).then(|| on_time as f64 / expected as f64)
    }

    /// Members whose rate is below `threshold`, lowest first.
    pub fn below(&self, threshold: f64) -> Vec<(Index, f64)> {
        let mut low: Vec<(Index, f64)> = self
            .counts
            .keys()
            .filter_map(|m| Some((*m, self.rate(*m)?)))
            .filter(|(_, rate)| *rate < threshold)
            .collect();
        low.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        low
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beacon::{
        dkg::Phase,
        sim::{DkgSimulation, SimConfig},
    };

    #[test]
    fn a_group_expires_after_its_entries_or_its_blocks_whichever_first() {
        let mut sim = DkgSimulation::new(SimConfig::new(5, 3, 3));
        sim.run(100_000).unwrap();
        let lifetime = Lifetime {
            entries: 2,
            blocks: 100,
        };
        let mut group = Group::from_dkg(
            sim.parameters().members.clone(),
            sim.outcome(1).unwrap(),
            50,
            lifetime,
        );
        assert!(!group.expired(149));
        assert!(group.expired(150), "by blocks");
        group.entry_served();
        assert!(!group.expired(60));
        group.entry_served();
        assert!(group.expired(60), "by entries");
        let seat = group.seats[2];
        assert_eq!(group.seats_of(&seat), vec![3]);
    }

    #[test]
    fn delivery_rates_name_the_members_that_missed_a_dkg_phase() {
        // Member 4 is silent in phase 3; every other member's messages all came.
        let mut sim = DkgSimulation::new(SimConfig::new(5, 3, 4)).silence(4, Phase::Commitments);
        sim.run(100_000).unwrap();
        // Member 1's view: each member was due one message per phase it was still in; the
        // silent ones are what the DKG reported.
        let mut delivery = Delivery::default();
        let silent: Vec<(Index, Phase)> = sim
            .reports()
            .iter()
            .filter(|(reporter, _)| *reporter == 1)
            .map(|(_, m)| (m.member, m.phase))
            .collect();
        for phase in [Phase::EphemeralKeys, Phase::Commitments] {
            for member in 2..=5 {
                delivery.expected(member);
                if !silent.contains(&(member, phase)) {
                    delivery.on_time(member);
                }
            }
        }
        assert_eq!(delivery.rate(4), Some(0.5));
        assert_eq!(delivery.rate(2), Some(1.0));
        assert_eq!(delivery.below(0.9), vec![(4, 0.5)]);
        assert_eq!(delivery.group_rate(), Some(7.0 / 8.0));
        assert_eq!(delivery.rate(9), None);
    }
}

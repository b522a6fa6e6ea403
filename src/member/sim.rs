//! The chain's rules and many members on one virtual block clock, over an in-memory bus.
//!
//! # Overview
//! [`BeaconSimulation`] mines a block, hands every member the block's events, then runs their
//! actions until nothing moves: channel joins, messages delivered to every other member on the
//! topic (through an interceptor that may drop or alter them), submissions executed against
//! the rules, key shares kept in a per-member store. Requests are made every
//! `request_every` blocks. Members can be silenced (they send nothing, ever), stopped (they
//! stop entirely) and restarted from their store, as a real member restarted from its
//! `--data-dir`. Everything is deterministic for a seed: no clock, no threads.
//!
//! This is the many-member test of the whole beacon (chain rules, member service, DKG and
//! signing machines); the real network and the real chain server are tested in
//! `tests/beacon_network.rs`.
//!
//! # Usage
//! ```
//! use keep_light::{chain::rules::Config, member::sim::BeaconSimulation};
//! let mut sim = BeaconSimulation::new(Config::dev().with_group(4, 3), 5, 1);
//! let entries = sim.run_until_entries(2, 400).unwrap();
//! assert_eq!(entries.len(), 2);
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::service::{Member, MemberAction, MemberEvent, Outgoing, SavedGroup, Submission};
use crate::{
    beacon::{dkg::Index, sim::derive},
    chain::{
        rules::{Config, Rules},
        Event, GroupId, Served,
    },
    identity::{Address, OperatorKey},
};

/// What the interceptor does with one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Deliver,
    Drop,
    /// Deliver this instead.
    Replace(Outgoing),
}

/// One message on its way: from which member, on which topic.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub topic: String,
    pub from: Address,
    pub message: Outgoing,
}

type Interceptor = Box<dyn FnMut(&InFlight, Address) -> Fate>;

struct SimMember {
    key: OperatorKey,
    member: Option<Member>,
    topics: BTreeSet<String>,
    /// Events read through this block.
    cursor: u64,
    silent: bool,
    store: BTreeMap<GroupId, SavedGroup>,
    restarts: u32,
}

/// Why the simulation stopped short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{got} entries after {blocks} blocks")]
pub struct Unfinished {
    pub got: usize,
    pub blocks: u64,
}

/// See the module docs.
pub struct BeaconSimulation {
    rules: Rules,
    members: Vec<SimMember>,
    seed: u64,
    clock: u64,
    request_every: u64,
    bus: VecDeque<InFlight>,
    interceptor: Option<Interceptor>,
    reports: Vec<(Address, MemberEvent)>,
    refusals: BTreeMap<String, u64>,
}

impl BeaconSimulation {
    /// `members` native operators, each staked the minimum (one seat), on a chain with
    /// `config`; a request every 10 blocks.
    pub fn new(config: Config, members: u32, seed: u64) -> Self {
        let mut rules = Rules::new(config).expect("a valid config");
        let members = (0..members)
            .map(|i| {
                let key = OperatorKey::from_bytes(&derive(b"operator", seed, i))
                    .expect("a hash is a valid key");
                rules.faucet(key.address()).expect("a dev config");
                SimMember {
                    member: Some(Member::new(key.clone(), derive(b"member", seed, i))),
                    key,
                    topics: BTreeSet::new(),
                    cursor: 0,
                    silent: false,
                    store: BTreeMap::new(),
                    restarts: 0,
                }
            })
            .collect();
        Self {
            rules,
            members,
            seed,
            clock: 1_800_000_000,
            request_every: 10,
            bus: VecDeque::new(),
            interceptor: None,
            reports: Vec::new(),
            refusals: BTreeMap::new(),
        }
    }

    /// A request every `blocks` blocks (0: none).
    pub fn with_request_every(mut self, blocks: u64) -> Self {
        self.request_every = blocks;
        self
    }

    /// Routes every delivery through `interceptor` (the message, and its receiver).
    pub fn with_interceptor(
        mut self,
        interceptor: impl FnMut(&InFlight, Address) -> Fate + 'static,
    ) -> Self {
        self.interceptor = Some(Box::new(interceptor));
        self
    }

    /// Member `i` (0-based) never sends a message.
    pub fn silence(&mut self, i: usize) {
        self.members[i].silent = true;
    }

    /// Member `i` stops: it reads nothing and sends nothing until restarted.
    pub fn stop(&mut self, i: usize) {
        self.members[i].member = None;
        self.members[i].topics.clear();
    }

    /// Member `i` starts again from its store, reading the chain from block 0.
    pub fn restart(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.restarts += 1;
        let mut member = Member::new(m.key.clone(), derive(b"restart", self.seed, m.restarts));
        for saved in m.store.values() {
            member
                .restore(saved.clone())
                .expect("kept shares are valid");
        }
        m.member = Some(member);
        m.topics.clear();
        m.cursor = 0;
        self.act(i);
    }

    /// Each member's operator address.
    pub fn addresses(&self) -> Vec<Address> {
        self.members.iter().map(|m| m.key.address()).collect()
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Every member's reports, in order.
    pub fn reports(&self) -> &[(Address, MemberEvent)] {
        &self.reports
    }

    /// Refused messages by reason.
    pub fn refusals(&self) -> &BTreeMap<String, u64> {
        &self.refusals
    }

    /// The groups member `i` keeps shares of.
    pub fn stored_groups(&self, i: usize) -> Vec<GroupId> {
        self.members[i].store.keys().copied().collect()
    }

    /// Mines blocks until `entries` entries are on chain, at most `max_blocks`; returns them.
    pub fn run_until_entries(
        &mut self,
        entries: usize,
        max_blocks: u64,
    ) -> Result<Vec<Served>, Unfinished> {
        for _ in 0..max_blocks {
            self.step();
            let served = self.served();
            if served.len() >= entries {
                return Ok(served);
            }
        }
        Err(Unfinished {
            got: self.served().len(),
            blocks: max_blocks,
        })
    }

    /// Mines until a group exists, at most `max_blocks`.
    pub fn run_until_group(&mut self, max_blocks: u64) -> Result<GroupId, Unfinished> {
        for _ in 0..max_blocks {
            self.step();
            if let Some(group) = self.rules.groups().last() {
                return Ok(group.id);
            }
        }
        Err(Unfinished {
            got: 0,
            blocks: max_blocks,
        })
    }

    /// Every entry on chain, oldest first.
    pub fn served(&self) -> Vec<Served> {
        (0..self.rules.head() + 1)
            .filter_map(|r| self.rules.served(r).copied())
            .collect()
    }

    /// One block: mine, make a request when due, let every member read and act.
    pub fn step(&mut self) {
        self.clock += 1;
        let head = self.rules.mine(self.clock);
        if self.request_every > 0 && head % self.request_every == 0 {
            // A full queue waits, as a requester would.
            let _ = self.rules.request_entry();
        }
        for i in 0..self.members.len() {
            let from = self.members[i].cursor + 1;
            let Some(member) = self.members[i].member.as_mut() else {
                continue;
            };
            let page = self
                .rules
                .events(from, usize::MAX)
                .expect("the simulation keeps every event");
            member.handle_events(page.through, &page.events);
            self.members[i].cursor = page.through;
        }
        self.settle();
    }

    /// Runs actions and deliveries until nothing moves.
    fn settle(&mut self) {
        loop {
            for i in 0..self.members.len() {
                self.act(i);
            }
            if self.bus.is_empty() {
                return;
            }
            while let Some(message) = self.bus.pop_front() {
                self.deliver(message);
            }
        }
    }

    fn act(&mut self, i: usize) {
        // At once: on the virtual clock signing needs no head start.
        if let Some(member) = self.members[i].member.as_mut() {
            member.finish_dkg_work();
        }
        while let Some(action) = self.members[i]
            .member
            .as_mut()
            .and_then(Member::poll_action)
        {
            let from = self.members[i].key.address();
            match action {
                MemberAction::Join { topic, .. } => {
                    self.members[i].topics.insert(topic);
                }
                MemberAction::Leave { topic } => {
                    self.members[i].topics.remove(&topic);
                }
                MemberAction::Send { topic, message, .. } => {
                    if !self.members[i].silent {
                        self.bus.push_back(InFlight {
                            topic,
                            from,
                            message,
                        });
                    }
                }
                MemberAction::EndContext { .. } => {}
                MemberAction::SubmitDkgResult(result) => {
                    if self.members[i].silent {
                        continue;
                    }
                    let answer = self
                        .rules
                        .submit_dkg_result(&result)
                        .map(|_| ())
                        .map_err(|e| e.reason().to_owned());
                    let submission = Submission::DkgResult {
                        session: result.session,
                    };
                    self.member(i).handle_submission(submission, answer);
                }
                MemberAction::SubmitEntry {
                    request,
                    entry,
                    submitter,
                } => {
                    if self.members[i].silent {
                        continue;
                    }
                    let answer = self
                        .rules
                        .submit_entry(request, &entry.to_bytes(), submitter)
                        .map(|_| ())
                        .map_err(|e| e.reason().to_owned());
                    self.member(i)
                        .handle_submission(Submission::Entry { request }, answer);
                }
                MemberAction::Persist(saved) => {
                    self.members[i].store.insert(saved.group, *saved);
                }
                MemberAction::Forget(group) => {
                    self.members[i].store.remove(&group);
                }
                MemberAction::Report(event) => self.reports.push((from, event)),
            }
        }
    }

    fn member(&mut self, i: usize) -> &mut Member {
        self.members[i].member.as_mut().expect("acting members run")
    }

    fn deliver(&mut self, message: InFlight) {
        for i in 0..self.members.len() {
            let to = self.members[i].key.address();
            if to == message.from || !self.members[i].topics.contains(&message.topic) {
                continue;
            }
            let fate = match &mut self.interceptor {
                Some(intercept) => intercept(&message, to),
                None => Fate::Deliver,
            };
            let outgoing = match fate {
                Fate::Deliver => message.message.clone(),
                Fate::Drop => continue,
                Fate::Replace(other) => other,
            };
            let Some(member) = self.members[i].member.as_mut() else {
                continue;
            };
            let result = match outgoing {
                Outgoing::Dkg(m) => member.handle_dkg_message(message.from, m),
                Outgoing::Share(s) => member.handle_entry_share(message.from, s),
            };
            if let Err(refusal) = result {
                *self.refusals.entry(refusal.reason.to_owned()).or_default() += 1;
            }
        }
    }

    /// The seats each operator holds in group `group`, by operator.
    pub fn seats(&self, group: GroupId) -> BTreeMap<Address, Vec<Index>> {
        let mut seats: BTreeMap<Address, Vec<Index>> = BTreeMap::new();
        if let Some(record) = self.rules.groups().get(group as usize) {
            for (i, operator) in record.operators.iter().enumerate() {
                seats.entry(*operator).or_default().push(i as Index + 1);
            }
        }
        seats
    }

    /// Whether any event of kind `f` was logged.
    pub fn logged(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.rules
            .events(0, usize::MAX)
            .map(|page| page.events.iter().any(|l| f(&l.event)))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beacon::{
        dkg::Phase,
        entry,
        wire::{dkg_from_proto, EntryShare},
    };

    fn config() -> Config {
        Config::dev().with_group(5, 3)
    }

    #[test]
    fn seven_members_make_a_group_of_five_and_three_chained_entries() {
        let mut sim = BeaconSimulation::new(config(), 7, 1);
        let served = sim.run_until_entries(3, 300).unwrap();
        let mut previous = entry::genesis();
        for entry in &served {
            let group = &sim.rules().groups()[entry.group as usize];
            assert!(entry::verify_entry(
                &group.group_key,
                &previous,
                &entry.entry
            ));
            assert_eq!(entry.random, entry::random_number(&entry.entry));
            assert_eq!(entry.previous, previous);
            previous = entry.entry;
        }
        // Members reported each entry (they read the last entry's event in the next block);
        // the ones whose turn came combined T shares, the others stood by.
        sim.step();
        let reported: Vec<_> = sim
            .reports()
            .iter()
            .filter_map(|(_, e)| match e {
                MemberEvent::Entry {
                    request, signers, ..
                } => Some((*request, signers.len())),
                _ => None,
            })
            .collect();
        assert!(reported.len() >= 3 * 5, "{reported:?}");
        assert!(
            reported.iter().all(|(_, n)| *n == 3 || *n == 0),
            "{reported:?}"
        );
        for request in 0..3 {
            assert!(
                reported.iter().any(|(r, n)| *r == request && *n == 3),
                "someone combined entry {request}: {reported:?}"
            );
        }
        assert!(sim.refusals().is_empty(), "{:?}", sim.refusals());
    }

    #[test]
    fn a_silent_member_is_marked_misbehaved_and_the_group_still_signs() {
        let mut sim = BeaconSimulation::new(config(), 5, 2);
        sim.silence(3);
        let silent = sim.addresses()[3];
        let served = sim.run_until_entries(2, 400).unwrap();
        let group = &sim.rules().groups()[served[0].group as usize];
        let seat = group.operators.iter().position(|o| *o == silent).unwrap() as Index + 1;
        assert_eq!(group.misbehaved, vec![seat]);
    }

    #[test]
    fn a_member_gone_mid_dkg_is_left_out_and_the_dkg_completes() {
        // Member 1 goes quiet from the Feldman points on, as if killed after phase 4.
        let gone = BeaconSimulation::new(config(), 5, 3).addresses()[1];
        let mut sim =
            BeaconSimulation::new(config(), 5, 3).with_interceptor(move |m, _| match &m.message {
                Outgoing::Dkg(message) if m.from == gone => {
                    let phase = dkg_from_proto(message.clone()).unwrap().body.phase();
                    if phase >= Phase::Points {
                        Fate::Drop
                    } else {
                        Fate::Deliver
                    }
                }
                _ => Fate::Deliver,
            });
        let group = sim.run_until_group(200).unwrap();
        let record = &sim.rules().groups()[group as usize];
        assert_eq!(record.misbehaved.len(), 1, "{record:?}");
        sim.run_until_entries(1, 200).unwrap();
    }

    #[test]
    fn a_member_still_gathering_result_signatures_takes_its_seat() {
        // Member 2 hears no result signature, so its last phase runs to its deadline, long
        // after the group's result is on chain. T = N: the entry needs its share.
        let slow = BeaconSimulation::new(Config::dev().with_group(4, 4), 4, 6).addresses()[2];
        let mut sim = BeaconSimulation::new(Config::dev().with_group(4, 4), 4, 6).with_interceptor(
            move |m, to| match &m.message {
                Outgoing::Dkg(message) if to == slow => {
                    let phase = dkg_from_proto(message.clone()).unwrap().body.phase();
                    if phase == Phase::ResultSigning {
                        Fate::Drop
                    } else {
                        Fate::Deliver
                    }
                }
                _ => Fate::Deliver,
            },
        );
        let group = sim.run_until_group(200).unwrap();
        assert!(sim.rules().groups()[group as usize].misbehaved.is_empty());
        sim.run_until_entries(1, 200).unwrap();
        assert!(!sim.stored_groups(2).is_empty());
    }

    #[test]
    fn a_member_restarted_from_its_store_signs_the_next_entry() {
        // T = N: every share is needed, so the restarted member's counts.
        let mut sim = BeaconSimulation::new(Config::dev().with_group(4, 4), 4, 4);
        sim.run_until_entries(1, 300).unwrap();
        assert!(!sim.stored_groups(2).is_empty());
        sim.stop(2);
        sim.restart(2);
        let served = sim.run_until_entries(2, 300).unwrap();
        assert_eq!(served.len(), 2);
    }

    #[test]
    fn forged_and_altered_shares_are_refused_and_the_honest_entry_lands() {
        let mut sim = BeaconSimulation::new(config(), 5, 5).with_interceptor(|m, to| {
            match &m.message {
                // Every share also arrives altered: a flipped bit in the point.
                Outgoing::Share(share) if share.index == 1 => {
                    let mut bad = share.clone();
                    bad.share[10] ^= 1;
                    Fate::Replace(Outgoing::Share(bad))
                }
                // Seat 2's shares claim seat 3 (seat 0 for some receivers).
                Outgoing::Share(share) if share.index == 2 => {
                    Fate::Replace(Outgoing::Share(EntryShare {
                        index: if to < m.from { 0 } else { 3 },
                        ..share.clone()
                    }))
                }
                _ => Fate::Deliver,
            }
        });
        let served = sim.run_until_entries(2, 300).unwrap();
        assert_eq!(served.len(), 2);
        assert!(sim.refusals()["forged_seat"] > 0, "{:?}", sim.refusals());
        let refused_shares = sim
            .reports()
            .iter()
            .filter(|(_, e)| matches!(e, MemberEvent::Refused { .. }))
            .count();
        assert!(refused_shares > 0);
    }
}

//! A deterministic many-member harness for the beacon protocols: N members in one process, a
//! virtual block clock, seeded randomness, and an interceptor that may drop, delay, alter,
//! replay or forge any member's messages.
//!
//! # Overview
//! Every broadcast goes to every other member through the interceptor, at the block it was
//! sent (or later, if delayed). When nothing is left to deliver, the clock jumps to the next
//! deadline or delayed delivery. The same seed gives byte-identical outcomes.
//!
//! # Usage
//! ```
//! use keep_light::beacon::sim::{DkgSimulation, SimConfig};
//! let mut sim = DkgSimulation::new(SimConfig::new(5, 3, 7));
//! sim.run(10_000).unwrap();
//! let outcome = sim.outcome(1).unwrap();
//! assert!(outcome.misbehaved.is_empty());
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use sha2::{Digest, Sha256};

use super::dkg::{
    Action, Body, Dkg, DkgError, Index, Message, Misbehaviour, Outcome, Parameters, Phase,
};
use crate::{identity::OperatorKey, platform};

/// A simulated DKG's shape.
#[derive(Debug, Clone)]
pub struct SimConfig {
    members: u32,
    threshold: u32,
    seed: u64,
    phase_blocks: u64,
}

impl SimConfig {
    /// `members` seats, `threshold` T, everything derived from `seed`; phases of 10 blocks.
    pub fn new(members: u32, threshold: u32, seed: u64) -> Self {
        Self {
            members,
            threshold,
            seed,
            phase_blocks: 10,
        }
    }

    /// Blocks each broadcasting phase may last.
    pub fn with_phase_blocks(mut self, blocks: u64) -> Self {
        self.phase_blocks = blocks;
        self
    }
}

/// What the interceptor does with one message on its way to one member.
#[derive(Debug, Clone)]
pub enum Fate {
    Deliver,
    Drop,
    /// Delivered this many blocks later.
    Delay(u64),
    /// This message is delivered instead (altered, replayed or forged).
    Replace(Message),
    /// The message, then this one too (a replay or an injection beside the real thing).
    Also(Message),
}

/// Decides each message's fate: (message, receiver) → fate.
pub type Interceptor = Box<dyn FnMut(&Message, Index) -> Fate>;

/// The run went on past its step bound (a livelock, or too small a bound).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not finished after {0} steps")]
pub struct Unfinished(pub usize);

/// N members running one DKG.
pub struct DkgSimulation {
    members: BTreeMap<Index, Dkg>,
    keys: Vec<OperatorKey>,
    parameters: Parameters,
    block: u64,
    /// block → deliveries (receiver, authenticated sender, message), in send order.
    in_flight: BTreeMap<u64, VecDeque<(Index, Index, Message)>>,
    interceptor: Option<Interceptor>,
    /// Members that send nothing in a phase.
    silent: BTreeSet<(Index, Phase)>,
    /// Every broadcast, as sent (before the interceptor).
    sent: Vec<Message>,
    /// Every misbehaviour report: (reporter, what).
    reports: Vec<(Index, Misbehaviour)>,
    outcomes: BTreeMap<Index, Result<Box<Outcome>, DkgError>>,
}

/// sha256(label ‖ seed ‖ i).
pub(crate) fn derive(label: &[u8], seed: u64, i: u32) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(label);
    hasher.update(seed.to_be_bytes());
    hasher.update(i.to_be_bytes());
    hasher.finalize().into()
}

impl DkgSimulation {
    /// Every member starts at block 0.
    pub fn new(config: SimConfig) -> Self {
        let keys: Vec<OperatorKey> = (1..=config.members)
            .map(|i| {
                OperatorKey::from_bytes(&derive(b"network-key", config.seed, i))
                    .expect("a hash is a valid key")
            })
            .collect();
        let parameters = Parameters {
            members: keys.iter().map(OperatorKey::address).collect(),
            threshold: config.threshold,
            phase_blocks: config.phase_blocks,
        };
        let session = derive(b"session", config.seed, 0);
        let members = (1..=config.members)
            .map(|i| {
                let dkg = Dkg::new(
                    parameters.clone(),
                    i,
                    keys[i as usize - 1].clone(),
                    session,
                    0,
                    derive(b"member-randomness", config.seed, i),
                )
                .expect("valid simulation parameters");
                (i, dkg)
            })
            .collect();
        Self {
            members,
            keys,
            parameters,
            block: 0,
            in_flight: BTreeMap::new(),
            interceptor: None,
            silent: BTreeSet::new(),
            sent: Vec::new(),
            reports: Vec::new(),
            outcomes: BTreeMap::new(),
        }
    }

    /// Routes every message through `interceptor`.
    pub fn with_interceptor(
        mut self,
        interceptor: impl FnMut(&Message, Index) -> Fate + 'static,
    ) -> Self {
        self.interceptor = Some(Box::new(interceptor));
        self
    }

    /// `member` sends nothing in `phase`.
    pub fn silence(mut self, member: Index, phase: Phase) -> Self {
        self.silent.insert((member, phase));
        self
    }

    /// The DKG's parameters (seat addresses, threshold).
    pub fn parameters(&self) -> &Parameters {
        &self.parameters
    }

    /// A member's network key.
    pub fn key(&self, member: Index) -> &OperatorKey {
        &self.keys[member as usize - 1]
    }

    /// A member's machine as it stands (before [`DkgSimulation::run`], as it starts).
    pub fn member(&self, member: Index) -> Option<&Dkg> {
        self.members.get(&member)
    }

    /// The block the virtual clock stands at.
    pub fn block(&self) -> u64 {
        self.block
    }

    /// Every broadcast, as its sender made it.
    pub fn sent(&self) -> &[Message] {
        &self.sent
    }

    /// Every misbehaviour report, with its reporter.
    pub fn reports(&self) -> &[(Index, Misbehaviour)] {
        &self.reports
    }

    /// A member's result, once it has finished.
    pub fn result(&self, member: Index) -> Option<&Result<Box<Outcome>, DkgError>> {
        self.outcomes.get(&member)
    }

    /// A member's outcome, if it finished with one.
    pub fn outcome(&self, member: Index) -> Option<&Outcome> {
        self.outcomes.get(&member)?.as_ref().ok().map(|o| &**o)
    }

    /// Runs until every member has finished, at most `steps` rounds of deliveries and clock
    /// jumps.
    pub fn run(&mut self, steps: usize) -> Result<(), Unfinished> {
        for _ in 0..steps {
            self.collect();
            if self.outcomes.len() == self.members.len() {
                return Ok(());
            }
            // Everything due now, each member taking its own in order, members side by side
            // (their work is independent; the order each sees is fixed, so runs repeat).
            let mut due: BTreeMap<Index, Vec<(Index, Message)>> = BTreeMap::new();
            while let Some((receiver, from, message)) = self.next_delivery() {
                due.entry(receiver).or_default().push((from, message));
            }
            if !due.is_empty() {
                let block = self.block;
                let work: Vec<(&mut Dkg, Vec<(Index, Message)>)> = self
                    .members
                    .iter_mut()
                    .filter_map(|(i, dkg)| Some((dkg, due.remove(i)?)))
                    .collect();
                platform::run_parallel(work, |(dkg, messages)| {
                    for (from, message) in messages {
                        dkg.handle_message(block, from, message);
                    }
                });
                continue;
            }
            // Nothing to deliver now: jump to the next deadline or delayed delivery.
            let deadline = self.members.values().filter_map(Dkg::poll_timeout).min();
            let delayed = self.in_flight.keys().next().copied();
            let Some(next) = [deadline, delayed].into_iter().flatten().min() else {
                return Err(Unfinished(steps));
            };
            self.block = next.max(self.block);
            for dkg in self.members.values_mut() {
                dkg.handle_block(self.block);
            }
        }
        Err(Unfinished(steps))
    }

    fn next_delivery(&mut self) -> Option<(Index, Index, Message)> {
        let mut entry = self.in_flight.first_entry()?;
        if *entry.key() > self.block {
            return None;
        }
        let delivery = entry.get_mut().pop_front();
        if entry.get().is_empty() {
            entry.remove();
        }
        delivery
    }

    /// Takes every member's actions: broadcasts into flight, reports and results recorded.
    fn collect(&mut self) {
        let indices: Vec<Index> = self.members.keys().copied().collect();
        for from in indices {
            while let Some(action) = self.members.get_mut(&from).and_then(Dkg::poll_action) {
                match action {
                    Action::Broadcast(message) => self.broadcast(from, message),
                    Action::Misbehaved(m) => self.reports.push((from, m)),
                    Action::Finished(result) => {
                        self.outcomes.insert(from, result);
                    }
                }
            }
        }
    }

    fn broadcast(&mut self, from: Index, message: Message) {
        if self.silent.contains(&(from, message.body.phase())) {
            return;
        }
        self.sent.push(message.clone());
        for to in self.members.keys().copied().filter(|to| *to != from) {
            let fate = match &mut self.interceptor {
                Some(intercept) => intercept(&message, to),
                None => Fate::Deliver,
            };
            let deliveries = match fate {
                Fate::Deliver => vec![(self.block, message.clone())],
                Fate::Drop => continue,
                Fate::Delay(blocks) => vec![(self.block + blocks, message.clone())],
                Fate::Replace(other) => vec![(self.block, other)],
                Fate::Also(other) => vec![(self.block, message.clone()), (self.block, other)],
            };
            for (at, message) in deliveries {
                self.in_flight
                    .entry(at)
                    .or_default()
                    .push_back((to, from, message));
            }
        }
    }
}

/// The sender's phase-7 constant-term point, for tests that check Y = Σ_QUAL Aⱼ₀.
pub fn constant_term_point(message: &Message) -> Option<ark_bn254::G2Affine> {
    match &message.body {
        Body::Points { points } => points.first().copied(),
        _ => None,
    }
}

/// An interceptor in which each dealer of `dealers` sends `victim` a share that does not
/// decrypt (one byte of its ciphertext flipped), in every copy of its phase-3 broadcast, as a
/// cheating dealer's broadcast looks the same to everyone.
pub fn corrupt_shares_to(
    dealers: Vec<Index>,
    victim: Index,
) -> impl FnMut(&Message, Index) -> Fate {
    move |message, _| match &message.body {
        Body::Commitments {
            commitments,
            shares,
        } if dealers.contains(&message.sender) => {
            let mut shares = shares.clone();
            if let Some((_, ciphertext)) = shares.iter_mut().find(|(i, _)| *i == victim) {
                if let Some(byte) = ciphertext.first_mut() {
                    *byte ^= 1;
                }
            }
            let mut altered = message.clone();
            altered.body = Body::Commitments {
                commitments: commitments.clone(),
                shares,
            };
            Fate::Replace(altered)
        }
        _ => Fate::Deliver,
    }
}

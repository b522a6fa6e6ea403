//! Who may stay connected: the admission gate of the firewall policy (sans-IO), and
//! [`Firewall`], the behaviour that runs the gate.
//!
//! # Overview
//! [`Gate`] applies the policy: under [`Policy::Attested`] a peer that is not allow-listed must
//! present a valid attestation within a grace period after connecting, and again before its
//! attestation expires; [`Gate::check`] names the peers that failed, whom the node bans
//! (`policy_unattested`). Under [`Policy::Staked`] the peer's operator (attested, or its own
//! key) must also be recognised by the chain (stake at least the minimum): the node asks the
//! chain through a [`Recognition`] cache (12 h for a yes, 1 h for a no, as keep-core) and asks
//! again when an admission runs out, keeping the peer admitted while it does.
//!
//! [`Firewall`] owns the gate, the chain cache, the chain queries in flight and who each
//! connected peer is ([`PeerOperators`]: its own key, or the operator its attestation names,
//! which the node hands over with [`Firewall::attested`]). On its own timer it checks the gate:
//! a peer that failed the policy is an [`Event::Offence`] (the node bans it), unless the chain
//! could not answer for it, which is not the peer's fault: that one is disconnected, unbanned.
//! Every change of a connected peer's admission is reported ([`Event::Admitted`],
//! [`Event::Revoked`]): the node hands it to pubsub, which drops the messages of anyone not
//! admitted. It is polled before pubsub, so an admission is known before the peer's messages.
//!
//! Timed bans with escalation are in [`super::bans`], per-address limits in
//! [`super::ip_limits`] (both re-exported here).
//!
//! # Usage
//! ```
//! use std::time::Duration;
//! use keep_light::net::firewall::{Gate, Policy, ATTESTATION_GRACE};
//! let (peer, now) = (libp2p::PeerId::random(), Duration::from_secs(1_800_000_000));
//! let mut gate = Gate::new(Policy::Attested, [], ATTESTATION_GRACE);
//! gate.connected(peer, now);
//! assert!(!gate.admitted(&peer));
//! assert_eq!(gate.check(now + ATTESTATION_GRACE).failed, vec![peer]);
//! ```

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::Duration,
};

use futures::{channel::mpsc, StreamExt as _};
use libp2p::{
    swarm::{dummy, CloseConnection, FromSwarm, NetworkBehaviour, THandlerInEvent, ToSwarm},
    PeerId,
};

// Their earlier paths (`net::firewall::IpLimits`, …) stay valid.
use super::{
    attest::PeerOperators,
    types::{Counts, Offence},
    wrap::dummy_connection_hooks,
};
pub use super::{
    bans::{Ban, BanList, BanPolicy, BanRecord},
    ip_limits::{IpLimitExceeded, IpLimits},
    rate_limit::RateLimit,
};
use crate::{
    chain::{Chain, ChainError, OperatorStake},
    identity::{attestation::Verified, Address},
    platform::{self, WallDeadline},
};

/// Who may connect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Policy {
    /// Everyone (bans aside).
    #[default]
    Open,
    /// Peers with a valid attestation (a wallet's delegation, or an operator attesting its own
    /// key), and allow-listed peers.
    Attested,
    /// As `Attested`, and the operator must be recognised by the chain (stake ≥ minimum).
    Staked,
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "attested" => Ok(Self::Attested),
            "staked" => Ok(Self::Staked),
            other => Err(format!(
                "unknown firewall policy {other:?}: open, attested or staked"
            )),
        }
    }
}

/// How long a connected peer has to present its attestation (and, under [`Policy::Staked`], be
/// recognised by the chain).
pub const ATTESTATION_GRACE: Duration = Duration::from_secs(10);

/// How long the chain's answer about an operator is trusted (keep-core's firewall cache).
pub const RECOGNISED_FOR: Duration = Duration::from_secs(12 * 3600);
pub const UNRECOGNISED_FOR: Duration = Duration::from_secs(3600);

/// What [`Gate::check`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GateCheck {
    /// Peers whose grace ran out unadmitted: they fail the policy.
    pub failed: Vec<PeerId>,
    /// Peers whose admission ran out: under `Staked` ask the chain again (they stay admitted
    /// for a grace period meanwhile); under `Attested` the peer must attest again.
    pub recheck: Vec<PeerId>,
}

/// The policy's admission state of connected peers. Call order: [`Gate::connected`] on a
/// peer's first connection, [`Gate::admit`] when it meets the policy (attestation verified;
/// under `Staked`, operator recognised), [`Gate::disconnected`] when its last connection
/// closes, [`Gate::check`] at or after [`Gate::poll_timeout`].
#[derive(Debug, Clone)]
pub struct Gate {
    policy: Policy,
    allowed: HashSet<PeerId>,
    grace: Duration,
    /// Peers that must meet the policy by then, and whether they are admitted meanwhile
    /// (a staked peer being checked again).
    awaiting: HashMap<PeerId, (Duration, bool)>,
    /// Admitted peers whose admission expires then.
    expiring: HashMap<PeerId, Duration>,
    /// No deadline above is earlier (exact after `check`, else possibly earlier): the node asks
    /// on every turn of its loop, so `check` and `poll_timeout` must not scan every peer.
    next: Option<Duration>,
}

impl Gate {
    pub fn new(policy: Policy, allowed: impl IntoIterator<Item = PeerId>, grace: Duration) -> Self {
        Self {
            policy,
            allowed: allowed.into_iter().collect(),
            grace,
            awaiting: HashMap::new(),
            expiring: HashMap::new(),
            next: None,
        }
    }

    fn lower_next(&mut self, at: Duration) {
        self.next = Some(self.next.map_or(at, |next| next.min(at)));
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// A peer's first connection.
    pub fn connected(&mut self, peer: PeerId, now: Duration) {
        if self.policy != Policy::Open && !self.allowed.contains(&peer) {
            let (by, _) = *self
                .awaiting
                .entry(peer)
                .or_insert((now + self.grace, false));
            self.lower_next(by);
        }
    }

    /// Whether the peer still has to meet the policy (first time or again).
    pub fn pending(&self, peer: &PeerId) -> bool {
        self.awaiting.contains_key(peer)
    }

    /// The peer meets the policy until `until`.
    pub fn admit(&mut self, peer: PeerId, until: Duration) {
        if self.awaiting.remove(&peer).is_some() || self.expiring.contains_key(&peer) {
            self.expiring.insert(peer, until);
            self.lower_next(until);
        }
    }

    /// The peer's last connection closed.
    pub fn disconnected(&mut self, peer: &PeerId) {
        self.awaiting.remove(peer);
        self.expiring.remove(peer);
    }

    /// Whether the peer may use the node now (its messages count).
    pub fn admitted(&self, peer: &PeerId) -> bool {
        self.awaiting
            .get(peer)
            .is_none_or(|(_, admitted)| *admitted)
    }

    /// The next moment [`Gate::check`] may have something to do.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.next
    }

    /// Peers whose grace ran out unadmitted fail the policy. Peers whose admission expired get
    /// a new grace period to meet it again; under `Staked` they stay admitted meanwhile.
    pub fn check(&mut self, now: Duration) -> GateCheck {
        let mut found = GateCheck::default();
        if self.next.is_none_or(|next| next > now) {
            return found;
        }
        found.recheck = self
            .expiring
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(peer, _)| *peer)
            .collect();
        let keep_admitted = self.policy == Policy::Staked;
        for peer in &found.recheck {
            self.expiring.remove(peer);
            self.awaiting
                .insert(*peer, (now + self.grace, keep_admitted));
        }
        found.failed = self
            .awaiting
            .iter()
            .filter(|(_, (by, _))| *by <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &found.failed {
            self.awaiting.remove(peer);
        }
        self.next = self
            .awaiting
            .values()
            .map(|(by, _)| by)
            .chain(self.expiring.values())
            .min()
            .copied();
        found
    }
}

/// The chain's answers about operators, each trusted for a while (sans-IO; `now` is time
/// since the Unix epoch). Bounded: when full, expired answers go first, then all.
#[derive(Debug, Clone)]
pub struct Recognition {
    recognised_for: Duration,
    unrecognised_for: Duration,
    answers: HashMap<Address, (bool, Duration)>,
}

impl Recognition {
    /// Operators remembered at most.
    pub const MAX_ENTRIES: usize = 65_536;

    pub fn new(recognised_for: Duration, unrecognised_for: Duration) -> Self {
        Self {
            recognised_for,
            unrecognised_for,
            answers: HashMap::new(),
        }
    }

    /// The answer about `operator` if still trusted at `now`, and until when.
    pub fn get(&self, operator: &Address, now: Duration) -> Option<(bool, Duration)> {
        self.answers
            .get(operator)
            .filter(|(_, until)| *until > now)
            .copied()
    }

    /// Records the chain's answer at `now`; returns until when it is trusted.
    pub fn record(&mut self, operator: Address, recognised: bool, now: Duration) -> Duration {
        if self.answers.len() >= Self::MAX_ENTRIES && !self.answers.contains_key(&operator) {
            self.answers.retain(|_, (_, until)| *until > now);
            if self.answers.len() >= Self::MAX_ENTRIES {
                self.answers.clear();
            }
        }
        let until = now
            + if recognised {
                self.recognised_for
            } else {
                self.unrecognised_for
            };
        self.answers.insert(operator, (recognised, until));
        until
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.answers.len()
    }
}

impl Default for Recognition {
    fn default() -> Self {
        Self::new(RECOGNISED_FOR, UNRECOGNISED_FOR)
    }
}

/// What [`Firewall`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The chain's answer about an operator (`staked`).
    OperatorChecked {
        operator: Address,
        recognised: bool,
        stake: OperatorStake,
    },
    /// `peer` failed the policy ([`Offence::Unattested`], [`Offence::Unstaked`]): ban it.
    Offence { peer: PeerId, offence: Offence },
    /// A connected `peer` meets the policy now: its messages count.
    Admitted { peer: PeerId },
    /// A connected `peer` no longer does (its admission ran out, or it failed).
    Revoked { peer: PeerId },
}

/// What [`Firewall`] counts: the chain's answers (`staked`).
pub const COUNTERS: &[&str] = &["chain_unavailable", "recognised", "unrecognised"];

/// A chain answer back from its query task.
type Answer = (Address, Result<OperatorStake, ChainError>);

/// The behaviour that runs the [`Gate`]; see the module docs.
pub struct Firewall {
    gate: Gate,
    /// Who each connected peer is.
    peers: PeerOperators,
    chain: Option<std::sync::Arc<dyn Chain>>,
    recognition: Recognition,
    /// Operators asked about, and the peers waiting for the answer.
    asking: HashMap<Address, Vec<PeerId>>,
    answers: (
        mpsc::UnboundedSender<Answer>,
        mpsc::UnboundedReceiver<Answer>,
    ),
    /// Peers the chain could not answer for: disconnected, not banned, when the gate fails them.
    chain_failed: HashSet<PeerId>,
    /// Chain answers by outcome (`recognised`, `unrecognised`, `chain_unavailable`).
    counts: Counts,
    /// Connected peers and whether they were last reported admitted. A peer that failed is
    /// left out until it connects again.
    admission: HashMap<PeerId, bool>,
    /// The gate's next deadline (wall clock).
    timer: WallDeadline,
    out: VecDeque<ToSwarm<Event, std::convert::Infallible>>,
    waker: Option<std::task::Waker>,
}

impl Firewall {
    /// Runs `gate`; under `staked`, asks `chain` through a cache of `recognition` lengths.
    pub fn new(
        gate: Gate,
        chain: Option<std::sync::Arc<dyn Chain>>,
        recognition: Recognition,
    ) -> Self {
        Self {
            gate,
            peers: PeerOperators::default(),
            chain,
            recognition,
            asking: HashMap::new(),
            answers: mpsc::unbounded(),
            chain_failed: HashSet::new(),
            counts: Counts::new(COUNTERS),
            admission: HashMap::new(),
            timer: WallDeadline::default(),
            out: VecDeque::new(),
            waker: None,
        }
    }

    /// Whether messages from `peer` may be forwarded and delivered.
    pub fn admitted(&self, peer: &PeerId) -> bool {
        self.gate.admitted(peer)
    }

    /// The operator address behind a connected `peer`, if known and current.
    pub fn operator(&self, peer: &PeerId) -> Option<Address> {
        self.peers.operator(peer, platform::utc_now())
    }

    /// Chain answers by outcome.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// `peer` presented a verified attestation: it acts for `verified.operator` until it expires.
    pub fn attested(&mut self, peer: PeerId, verified: &Verified) {
        self.peers.attested(peer, verified);
        match self.gate.policy() {
            Policy::Staked => self.recognise(peer),
            _ => {
                let until = (verified.expires_at - time::OffsetDateTime::UNIX_EPOCH).unsigned_abs();
                self.admit(peer, until);
            }
        }
        self.wake();
    }

    fn admit(&mut self, peer: PeerId, until: Duration) {
        self.gate.admit(peer, until);
        self.report(peer);
    }

    /// Reports a connected peer's admission if it changed.
    fn report(&mut self, peer: PeerId) {
        let Some(reported) = self.admission.get_mut(&peer) else {
            return;
        };
        let admitted = self.gate.admitted(&peer);
        if *reported != admitted {
            *reported = admitted;
            let event = if admitted {
                Event::Admitted { peer }
            } else {
                Event::Revoked { peer }
            };
            self.out.push_back(ToSwarm::GenerateEvent(event));
        }
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Under `staked`: admits `peer` if the chain recognises its operator (attested, else its
    /// own key), from the cache or by asking. A no admits nothing; the gate fails the peer
    /// when its grace runs out (an attestation for a staked operator may still come).
    fn recognise(&mut self, peer: PeerId) {
        let Some(chain) = &self.chain else { return };
        if self.gate.policy() != Policy::Staked || !self.gate.pending(&peer) {
            return;
        }
        let Some(operator) = self.operator(&peer) else {
            return;
        };
        let now = platform::unix_time();
        if let Some((recognised, until)) = self.recognition.get(&operator, now) {
            if recognised {
                self.admit(peer, until);
            }
            return;
        }
        let waiting = self.asking.entry(operator).or_default();
        if !waiting.contains(&peer) {
            waiting.push(peer);
        }
        if waiting.len() == 1 {
            let answers = self.answers.0.clone();
            let query = chain.operator_stake(operator);
            platform::spawn(async move {
                let _ = answers.unbounded_send((operator, query.await));
            });
        }
    }

    fn on_answer(&mut self, operator: Address, answer: Result<OperatorStake, ChainError>) {
        let waiting = self.asking.remove(&operator).unwrap_or_default();
        let now = platform::unix_time();
        let until = match answer {
            Ok(stake) => {
                let recognised = stake.eligible();
                let until = self.recognition.record(operator, recognised, now);
                let outcome = if recognised {
                    "recognised"
                } else {
                    "unrecognised"
                };
                self.counts.add(outcome, 1);
                tracing::info!(%operator, stake = stake.stake, minimum = stake.minimum, outcome, "operator checked");
                self.out
                    .push_back(ToSwarm::GenerateEvent(Event::OperatorChecked {
                        operator,
                        recognised,
                        stake,
                    }));
                recognised.then_some(until)
            }
            Err(error) => {
                self.counts.add("chain_unavailable", 1);
                tracing::warn!(%operator, %error, "operator check failed");
                // Only peers still waiting at the gate (one may have gone meanwhile).
                let gate = &self.gate;
                self.chain_failed
                    .extend(waiting.iter().copied().filter(|p| gate.pending(p)));
                None
            }
        };
        let Some(until) = until else { return };
        for peer in waiting {
            // Only if the peer still acts for this operator (its attestation may have come since).
            if self.operator(&peer) == Some(operator) {
                self.chain_failed.remove(&peer);
                self.admit(peer, until);
            }
        }
    }

    /// Applies the gate's verdicts due now.
    fn check(&mut self) {
        let checked = self.gate.check(platform::unix_time());
        for peer in checked.recheck {
            self.report(peer);
            self.recognise(peer);
        }
        for peer in checked.failed {
            if self.admission.remove(&peer) == Some(true) {
                self.out
                    .push_back(ToSwarm::GenerateEvent(Event::Revoked { peer }));
            }
            // The chain could not answer, or has not yet (its client gives up after 5 s, the
            // grace may end first): not the peer's fault, so no ban.
            let asking = self.asking.values().any(|w| w.contains(&peer));
            if self.chain_failed.remove(&peer) || asking {
                tracing::warn!(%peer, asking, "chain unavailable: peer disconnected unchecked");
                self.out.push_back(ToSwarm::CloseConnection {
                    peer_id: peer,
                    connection: CloseConnection::All,
                });
                continue;
            }
            let offence = match self.gate.policy() {
                Policy::Staked => Offence::Unstaked,
                _ => Offence::Unattested,
            };
            self.out
                .push_back(ToSwarm::GenerateEvent(Event::Offence { peer, offence }));
        }
    }
}

impl NetworkBehaviour for Firewall {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Event;

    dummy_connection_hooks!();

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) if e.other_established == 0 => {
                self.peers.connected(e.peer_id);
                self.gate.connected(e.peer_id, platform::unix_time());
                self.admission.insert(e.peer_id, false);
                self.report(e.peer_id);
                self.recognise(e.peer_id);
                self.wake();
            }
            FromSwarm::ConnectionClosed(e) if e.remaining_established == 0 => {
                self.peers.disconnected(&e.peer_id);
                self.gate.disconnected(&e.peer_id);
                self.chain_failed.remove(&e.peer_id);
                self.admission.remove(&e.peer_id);
            }
            _ => {}
        }
    }

    fn poll(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        use std::task::Poll;
        loop {
            if let Some(out) = self.out.pop_front() {
                return Poll::Ready(out.map_in(|never| match never {}));
            }
            if let Poll::Ready(Some((operator, answer))) = self.answers.1.poll_next_unpin(cx) {
                self.on_answer(operator, answer);
                continue;
            }
            self.timer.set(self.gate.poll_timeout(), None);
            match self.timer.poll(cx) {
                Poll::Ready(()) => {
                    self.check();
                    if self.out.is_empty() {
                        self.timer.fired_early();
                    }
                }
                Poll::Pending => {
                    self.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(peers: &[PeerId]) -> GateCheck {
        GateCheck {
            failed: peers.to_vec(),
            recheck: vec![],
        }
    }

    #[test]
    fn the_gate_admits_allowed_and_attested_peers_and_fails_the_rest_after_grace() {
        let (allowed, attested, silent) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut gate = Gate::new(Policy::Attested, [allowed], ATTESTATION_GRACE);
        for peer in [allowed, attested, silent] {
            gate.connected(peer, at(0));
        }
        assert!(gate.admitted(&allowed) && !gate.pending(&allowed));
        assert!(!gate.admitted(&attested) && !gate.admitted(&silent));
        gate.admit(attested, at(30));
        assert!(gate.admitted(&attested));
        assert_eq!(gate.poll_timeout(), Some(at(0) + ATTESTATION_GRACE));
        assert_eq!(
            gate.check(at(0) + ATTESTATION_GRACE - Duration::from_millis(1)),
            failed(&[])
        );
        assert_eq!(gate.check(at(0) + ATTESTATION_GRACE), failed(&[silent]));
        // The attestation expires: a new grace period to renew it, unadmitted, then failure.
        assert_eq!(gate.poll_timeout(), Some(at(30)));
        assert_eq!(
            gate.check(at(30)),
            GateCheck {
                failed: vec![],
                recheck: vec![attested]
            }
        );
        assert!(!gate.admitted(&attested));
        gate.admit(attested, at(90));
        assert!(gate.admitted(&attested));
        assert_eq!(gate.check(at(90)).failed, vec![]);
        assert_eq!(
            gate.check(at(90) + ATTESTATION_GRACE).failed,
            vec![attested]
        );
        assert_eq!(gate.poll_timeout(), None);
    }

    #[test]
    fn a_staked_peer_stays_admitted_while_the_chain_is_asked_again() {
        let (staked, unstaked) = (PeerId::random(), PeerId::random());
        let mut gate = Gate::new(Policy::Staked, [], ATTESTATION_GRACE);
        gate.connected(staked, at(0));
        gate.connected(unstaked, at(0));
        assert!(gate.pending(&staked) && !gate.admitted(&staked));
        gate.admit(staked, at(0) + RECOGNISED_FOR);
        assert_eq!(gate.check(at(0) + ATTESTATION_GRACE), failed(&[unstaked]));
        // The recognition runs out: asked again, admitted meanwhile.
        let expiry = at(0) + RECOGNISED_FOR;
        assert_eq!(gate.check(expiry).recheck, vec![staked]);
        assert!(gate.admitted(&staked) && gate.pending(&staked));
        // No answer in time (or a no): it fails.
        assert_eq!(gate.check(expiry + ATTESTATION_GRACE), failed(&[staked]));
        assert!(!gate.pending(&staked));
        // A yes in time keeps it.
        gate.connected(staked, expiry);
        gate.admit(staked, expiry + RECOGNISED_FOR);
        assert_eq!(gate.check(expiry + ATTESTATION_GRACE), failed(&[]));
        assert!(gate.admitted(&staked) && !gate.pending(&staked));
    }

    #[test]
    fn recognition_answers_are_trusted_12_hours_if_yes_1_hour_if_no_and_bounded() {
        let t = |secs: u64| at(0) + Duration::from_secs(secs);
        let mut cache = Recognition::default();
        let (yes, no) = (Address([1; 20]), Address([2; 20]));
        assert_eq!(cache.get(&yes, t(0)), None);
        assert_eq!(cache.record(yes, true, t(0)), t(0) + RECOGNISED_FOR);
        cache.record(no, false, t(0));
        assert_eq!(cache.get(&yes, t(0)), Some((true, t(0) + RECOGNISED_FOR)));
        assert_eq!(cache.get(&no, t(3599)).map(|(r, _)| r), Some(false));
        assert_eq!(cache.get(&no, t(3600)), None);
        assert!(cache.get(&yes, t(12 * 3600 - 1)).is_some());
        assert_eq!(cache.get(&yes, t(12 * 3600)), None);
        // Full: expired answers make room first; the live ones stay.
        let mut cache = Recognition::new(Duration::from_secs(10), Duration::from_secs(1));
        for i in 0..Recognition::MAX_ENTRIES as u32 {
            let mut bytes = [0; 20];
            bytes[..4].copy_from_slice(&i.to_be_bytes());
            cache.record(Address(bytes), i % 2 == 0, t(0));
        }
        cache.record(Address([9; 20]), true, t(5));
        assert_eq!(cache.len(), Recognition::MAX_ENTRIES / 2 + 1);
        assert!(cache.get(&Address([0; 20]), t(5)).is_some());
    }

    #[test]
    fn an_open_gate_admits_everyone_and_waits_for_nothing() {
        let mut gate = Gate::new(Policy::Open, [], ATTESTATION_GRACE);
        let peer = PeerId::random();
        gate.connected(peer, at(0));
        gate.admit(peer, at(1));
        assert!(gate.admitted(&peer) && !gate.pending(&peer));
        assert_eq!(gate.poll_timeout(), None);
        assert_eq!(gate.check(at(100)), GateCheck::default());
        assert_eq!("attested".parse(), Ok(Policy::Attested));
        assert_eq!("staked".parse(), Ok(Policy::Staked));
        assert!("bonded".parse::<Policy>().is_err());
    }

    const MIN: Duration = Duration::from_secs(60);

    fn at(minutes: u64) -> Duration {
        // An arbitrary epoch offset, so nothing depends on time starting at zero.
        Duration::from_secs(1_800_000_000) + MIN * minutes as u32
    }
}

// The shell against real swarms: tokio and the memory transport exist only natively.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod shell_tests {
    use std::sync::Arc;

    use futures::StreamExt as _;
    use libp2p::swarm::SwarmEvent;

    use super::*;
    use crate::net::test_support::{memory_address, memory_swarm};

    /// A swarm whose peer ID is a secp256k1 operator key (the firewall can name its operator).
    fn swarm<B: NetworkBehaviour + Send>(behaviour: B) -> libp2p::Swarm<B> {
        memory_swarm(
            crate::identity::OperatorKey::generate().libp2p_keypair(),
            behaviour,
        )
    }

    /// A chain that never answers with a stake.
    struct Down;

    impl Chain for Down {
        fn operator_stake(
            &self,
            _: Address,
        ) -> platform::BoxFuture<'static, Result<OperatorStake, ChainError>> {
            Box::pin(async { Err(ChainError::Unreachable("down".into())) })
        }
    }

    /// Two peers dial a firewall; returns what it reported and which peers it let go, once
    /// both have been dealt with or the grace is well over.
    async fn run(
        policy: Policy,
        chain: Option<Arc<dyn Chain>>,
        allow_first: bool,
    ) -> (
        Vec<Event>,
        Vec<PeerId>,
        [PeerId; 2],
        libp2p::Swarm<Firewall>,
    ) {
        let address = memory_address();
        let mut dialers = [swarm(dummy::Behaviour), swarm(dummy::Behaviour)];
        let peers = [*dialers[0].local_peer_id(), *dialers[1].local_peer_id()];
        let allowed: Vec<PeerId> = allow_first.then_some(peers[0]).into_iter().collect();
        let gate = Gate::new(policy, allowed, Duration::from_millis(300));
        let mut firewall = swarm(Firewall::new(
            gate,
            chain,
            Recognition::new(RECOGNISED_FOR, UNRECOGNISED_FOR),
        ));
        firewall.listen_on(address.clone()).unwrap();
        for dialer in &mut dialers {
            dialer.dial(address.clone()).unwrap();
        }
        let (mut events, mut closed) = (Vec::new(), Vec::new());
        let end = tokio::time::sleep(Duration::from_secs(3));
        tokio::pin!(end);
        let [a, b] = &mut dialers;
        loop {
            tokio::select! {
                event = firewall.select_next_some() => match event {
                    SwarmEvent::Behaviour(e) => events.push(e),
                    SwarmEvent::ConnectionClosed { peer_id, .. } => closed.push(peer_id),
                    _ => {}
                },
                _ = a.select_next_some() => {}
                _ = b.select_next_some() => {}
                _ = &mut end => break,
            }
        }
        (events, closed, peers, firewall)
    }

    #[tokio::test]
    async fn an_unattested_peer_is_an_offence_after_the_grace_an_allowed_one_stays() {
        let (events, closed, [allowed, silent], firewall) = run(Policy::Attested, None, true).await;
        assert_eq!(
            events,
            [
                Event::Admitted { peer: allowed },
                Event::Offence {
                    peer: silent,
                    offence: Offence::Unattested
                }
            ]
        );
        // The offence is the node's to punish (bans); the firewall closes nothing itself.
        assert!(closed.is_empty());
        assert!(firewall.behaviour().admitted(&allowed));
    }

    #[tokio::test]
    async fn when_the_chain_cannot_answer_a_peer_is_let_go_unpunished() {
        let (events, closed, peers, firewall) =
            run(Policy::Staked, Some(Arc::new(Down)), false).await;
        assert!(events.is_empty(), "no offence, no answer: {events:?}");
        let mut closed = closed;
        closed.sort();
        let mut peers = peers.to_vec();
        peers.sort();
        assert_eq!(closed, peers);
        assert_eq!(firewall.behaviour().counts().get("chain_unavailable"), 2);
    }
}

//! Who may stay connected (sans-IO): the admission gate of the firewall policy.
//!
//! [`Gate`] applies the policy: under [`Policy::Attested`] a peer that is not allow-listed must
//! present a valid attestation within a grace period after connecting, and again before its
//! attestation expires; [`Gate::check`] names the peers that failed, whom the node bans
//! (`policy_unattested`). Under [`Policy::Staked`] the peer's operator (attested, or its own
//! key) must also be recognised by the chain (stake at least the minimum): the node asks the
//! chain through a [`Recognition`] cache (12 h for a yes, 1 h for a no, as keep-core) and asks
//! again when an admission runs out, keeping the peer admitted while it does.
//!
//! Timed bans with escalation are in [`super::bans`] (re-exported here).

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use libp2p::{swarm::ConnectionId, PeerId};

pub use super::bans::{Ban, BanList, BanPolicy, BanRecord};
use crate::identity::Address;

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

/// Connections per remote IP address (sans-IO), so a dial storm from one address cannot take
/// the handshake queue or the connection table from everyone else. Pending = inbound
/// connections still in their handshake; established = inbound connections. Circuit
/// connections carry the relay's address and are not counted (see `behaviour::PerIp`).
#[derive(Debug, Clone)]
pub struct IpLimits {
    max_pending: usize,
    max_established: usize,
    pending: HashMap<IpAddr, usize>,
    established: HashMap<IpAddr, usize>,
    /// Each counted connection: its address and whether it is established.
    connections: HashMap<ConnectionId, (IpAddr, bool)>,
}

/// Which per-IP bound refused a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ip} has {count} {stage} connections, the most one address may have")]
pub struct IpLimitExceeded {
    pub ip: IpAddr,
    pub stage: &'static str,
    pub count: usize,
}

impl IpLimits {
    pub fn new(max_pending: usize, max_established: usize) -> Self {
        Self {
            max_pending,
            max_established,
            pending: HashMap::new(),
            established: HashMap::new(),
            connections: HashMap::new(),
        }
    }

    /// An inbound connection starts its handshake.
    pub fn pending(&mut self, id: ConnectionId, ip: IpAddr) -> Result<(), IpLimitExceeded> {
        let count = self.pending.get(&ip).copied().unwrap_or(0);
        if count >= self.max_pending {
            return Err(IpLimitExceeded {
                ip,
                stage: "pending",
                count,
            });
        }
        self.pending.insert(ip, count + 1);
        self.connections.insert(id, (ip, false));
        Ok(())
    }

    /// The handshake finished: whether one more established connection from `ip` is allowed.
    /// (It is counted by [`IpLimits::established`] once the swarm has it.)
    pub fn handshake_done(&mut self, id: ConnectionId, ip: IpAddr) -> Result<(), IpLimitExceeded> {
        self.ended(id);
        let count = self.established.get(&ip).copied().unwrap_or(0);
        if count >= self.max_established {
            return Err(IpLimitExceeded {
                ip,
                stage: "established",
                count,
            });
        }
        Ok(())
    }

    /// An inbound connection is established.
    pub fn established(&mut self, id: ConnectionId, ip: IpAddr) {
        self.ended(id);
        *self.established.entry(ip).or_default() += 1;
        self.connections.insert(id, (ip, true));
    }

    /// A connection failed, was denied or closed.
    pub fn ended(&mut self, id: ConnectionId) {
        let Some((ip, established)) = self.connections.remove(&id) else {
            return;
        };
        let counts = if established {
            &mut self.established
        } else {
            &mut self.pending
        };
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }

    /// Addresses with connections counted.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.pending.len().max(self.established.len())
    }
}

/// A per-peer message rate limit: a token bucket per peer (sustained `per_second`, bursts up
/// to `burst`). Time is an argument, in seconds since any fixed origin.
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    buckets: HashMap<PeerId, (f64, f64)>,
}

impl RateLimit {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// One message from `peer` at `now`: whether it is within the limit.
    pub fn allow(&mut self, peer: PeerId, now: Duration) -> bool {
        let now = now.as_secs_f64();
        let (tokens, last) = self.buckets.entry(peer).or_insert((self.burst, now));
        *tokens = (*tokens + (now - *last).max(0.0) * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets a peer whose last connection closed.
    pub fn forget(&mut self, peer: &PeerId) {
        self.buckets.remove(peer);
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
    fn one_address_gets_its_share_of_handshakes_and_connections_and_no_more() {
        let mut limits = IpLimits::new(2, 3);
        let (storm, other): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let ids: Vec<ConnectionId> = (0..8)
            .map(|_| ConnectionId::new_unchecked(rand_id()))
            .collect();
        assert!(limits.pending(ids[0], storm).is_ok());
        assert!(limits.pending(ids[1], storm).is_ok());
        let refused = limits.pending(ids[2], storm).unwrap_err();
        assert_eq!((refused.stage, refused.count), ("pending", 2));
        // Another address is untouched by the storm.
        assert!(limits.pending(ids[3], other).is_ok());
        // A failed handshake frees its slot.
        limits.ended(ids[0]);
        assert!(limits.pending(ids[2], storm).is_ok());
        // Established: at most 3 from one address; closing one makes room.
        for id in [ids[1], ids[2]] {
            limits.handshake_done(id, storm).unwrap();
            limits.established(id, storm);
        }
        assert!(limits.pending(ids[4], storm).is_ok());
        limits.handshake_done(ids[4], storm).unwrap();
        limits.established(ids[4], storm);
        assert!(limits.pending(ids[5], storm).is_ok());
        assert_eq!(
            limits.handshake_done(ids[5], storm).unwrap_err().stage,
            "established"
        );
        limits.ended(ids[5]);
        limits.ended(ids[1]);
        assert!(limits.pending(ids[6], storm).is_ok());
        assert!(limits.handshake_done(ids[6], storm).is_ok());
        // Everything ended: nothing stays on record.
        for id in &ids {
            limits.ended(*id);
        }
        assert_eq!(limits.addresses(), 0);
    }

    fn rand_id() -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1 << 30);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn the_rate_limit_allows_bursts_then_the_sustained_rate() {
        let mut limit = RateLimit::new(10, 20);
        let (peer, other) = (PeerId::random(), PeerId::random());
        let t = |ms: u64| Duration::from_millis(ms);
        assert_eq!((0..25).filter(|_| limit.allow(peer, t(0))).count(), 20);
        // Other peers have their own bucket.
        assert!(limit.allow(other, t(0)));
        // Half a second refills five.
        assert_eq!((0..10).filter(|_| limit.allow(peer, t(500))).count(), 5);
        // A long pause refills to the burst, not beyond.
        assert_eq!((0..50).filter(|_| limit.allow(peer, t(60_000))).count(), 20);
        limit.forget(&peer);
        assert_eq!((0..25).filter(|_| limit.allow(peer, t(60_000))).count(), 20);
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

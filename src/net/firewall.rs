//! Who may stay connected (sans-IO): the admission gate of the firewall policy, and timed bans
//! with escalation.
//!
//! [`Gate`] applies the policy: under [`Policy::Attested`] a peer that is not allow-listed must
//! present a valid attestation within a grace period after connecting, and again before its
//! attestation expires; [`Gate::check`] names the peers that failed, whom the node bans
//! (`policy_unattested`). Under [`Policy::Staked`] the peer's operator (attested, or its own
//! key) must also be recognised by the chain (stake at least the minimum): the node asks the
//! chain through a [`Recognition`] cache (12 h for a yes, 1 h for a no, as keep-core) and asks
//! again when an admission runs out, keeping the peer admitted while it does.
//!
//! [`BanList`] is a plain state machine over wall-clock time (`now` = time since the Unix epoch,
//! passed in, so bans survive a restart and tests jump time freely). Call order: [`BanList::ban`]
//! or [`BanList::ban_for`] when a peer offends; [`BanList::banned`] to gate a connection;
//! [`BanList::poll_timeout`] for the next expiry and [`BanList::expire`] at or after it, which
//! returns the bans that ended. The node (`node.rs`) turns bans into severed connections, refused
//! dials and `banned`/`unbanned` events; the relay CLI persists [`BanList::records`] in
//! `--data-dir`.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use libp2p::{swarm::ConnectionId, PeerId};
use serde::{Deserialize, Serialize};

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

/// How long offences ban a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanPolicy {
    /// Ban length for the 1st, 2nd, … offence; the last applies to every later one.
    pub steps: Vec<Duration>,
    /// Offences are forgotten this long after the last one: the next starts from the first step.
    pub forget_after: Duration,
    /// Peers remembered at most (banned or with offences on record).
    pub max_entries: usize,
}

impl Default for BanPolicy {
    /// 1 min → 10 min → 1 h, forgotten after a day without offence, 65,536 peers.
    fn default() -> Self {
        Self {
            steps: vec![
                Duration::from_secs(60),
                Duration::from_secs(600),
                Duration::from_secs(3600),
            ],
            forget_after: Duration::from_secs(24 * 3600),
            max_entries: 1 << 16,
        }
    }
}

/// One peer's standing, as persisted (times in ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    pub peer: String,
    pub reason: String,
    /// Banned until then; in the past when the ban has ended but offences are remembered.
    pub until_ms: u64,
    pub offences: u32,
    pub last_offence_ms: u64,
}

/// A ban that was just imposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub until: Duration,
    pub duration: Duration,
    /// Offences on record, this one included.
    pub offences: u32,
}

#[derive(Debug, Clone)]
struct Entry {
    reason: String,
    until: Duration,
    offences: u32,
    last_offence: Duration,
    /// A ban whose end has not been reported by [`BanList::expire`] yet.
    running: bool,
}

/// Banned peers and remembered offences; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct BanList {
    policy: BanPolicy,
    entries: HashMap<PeerId, Entry>,
    /// No running ban ends earlier (exact after `expire`; a replaced or evicted ban can leave it
    /// earlier, which only costs one scan): the node asks on every turn of its loop, so
    /// `poll_timeout` and `expire` must not scan up to `max_entries` peers each time.
    next: Option<Duration>,
    /// When the next scan forgets old offences even if no ban ends (hourly by default).
    sweep_at: Duration,
}

impl BanList {
    pub fn new(policy: BanPolicy) -> Self {
        Self {
            policy,
            entries: HashMap::new(),
            next: None,
            sweep_at: Duration::ZERO,
        }
    }

    /// Recomputes the earliest end of a running ban.
    fn recompute_next(&mut self) {
        self.next = self
            .entries
            .values()
            .filter(|e| e.running)
            .map(|e| e.until)
            .min();
    }

    /// Restores persisted records at `now` (malformed peer IDs are skipped and counted in the
    /// result; bans that ended meanwhile are not reported again).
    pub fn restore(policy: BanPolicy, records: &[BanRecord], now: Duration) -> (Self, usize) {
        let mut list = Self::new(policy);
        let mut skipped = 0;
        for record in records {
            match record.peer.parse::<PeerId>() {
                Ok(peer) => {
                    list.insert(
                        peer,
                        Entry {
                            reason: record.reason.clone(),
                            until: Duration::from_millis(record.until_ms),
                            offences: record.offences,
                            last_offence: Duration::from_millis(record.last_offence_ms),
                            running: Duration::from_millis(record.until_ms) > now,
                        },
                    );
                }
                Err(_) => skipped += 1,
            }
        }
        list.recompute_next();
        (list, skipped)
    }

    /// An offence: bans `peer` for the policy's next step. `None` when it is already banned
    /// (offences during a ban, such as the rest of a burst already in flight, do not escalate).
    pub fn ban(&mut self, peer: PeerId, reason: &str, now: Duration) -> Option<Ban> {
        if self.banned(&peer, now).is_some() {
            return None;
        }
        let offences = self.offences_after(&peer, now) + 1;
        let step = (offences as usize - 1).min(self.policy.steps.len().saturating_sub(1));
        let duration = self.policy.steps.get(step).copied().unwrap_or_default();
        Some(self.impose(peer, reason, now, duration, offences))
    }

    /// An offence with an explicit ban length (an operator's decision); it still counts
    /// towards escalation. Replaces a running ban.
    pub fn ban_for(
        &mut self,
        peer: PeerId,
        duration: Duration,
        reason: &str,
        now: Duration,
    ) -> Ban {
        let offences = self.offences_after(&peer, now) + 1;
        self.impose(peer, reason, now, duration, offences)
    }

    /// Ends a ban now (offences stay on record). Whether one was running.
    pub fn unban(&mut self, peer: &PeerId, now: Duration) -> bool {
        match self.entries.get_mut(peer) {
            Some(entry) if entry.until > now => {
                entry.until = now;
                entry.running = false;
                self.recompute_next();
                true
            }
            _ => false,
        }
    }

    /// Why and until when `peer` is banned, if it is.
    pub fn banned(&self, peer: &PeerId, now: Duration) -> Option<(&str, Duration)> {
        self.entries
            .get(peer)
            .filter(|e| e.until > now)
            .map(|e| (e.reason.as_str(), e.until))
    }

    /// When [`BanList::expire`] may next end a ban.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.next
    }

    /// Ends the bans due at `now`; returns each ended ban's peer and reason, once. Forgets
    /// peers whose offences are older than the policy remembers.
    pub fn expire(&mut self, now: Duration) -> Vec<(PeerId, String)> {
        if self.next.is_none_or(|next| next > now) && now < self.sweep_at {
            return Vec::new();
        }
        self.sweep_at = now + self.policy.forget_after / 24;
        let mut ended = Vec::new();
        for (peer, entry) in &mut self.entries {
            if entry.running && entry.until <= now {
                entry.running = false;
                ended.push((*peer, entry.reason.clone()));
            }
        }
        let forget_after = self.policy.forget_after;
        self.entries
            .retain(|_, e| e.until > now || now.saturating_sub(e.last_offence) < forget_after);
        self.recompute_next();
        ended
    }

    /// Every entry, for persistence.
    pub fn records(&self) -> Vec<BanRecord> {
        let mut records: Vec<BanRecord> = self
            .entries
            .iter()
            .map(|(peer, e)| BanRecord {
                peer: peer.to_string(),
                reason: e.reason.clone(),
                until_ms: e.until.as_millis() as u64,
                offences: e.offences,
                last_offence_ms: e.last_offence.as_millis() as u64,
            })
            .collect();
        records.sort_by(|a, b| a.peer.cmp(&b.peer));
        records
    }

    /// Peers on record (banned or remembered).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Offences on record that still count at `now`.
    fn offences_after(&self, peer: &PeerId, now: Duration) -> u32 {
        self.entries
            .get(peer)
            .filter(|e| now.saturating_sub(e.last_offence) < self.policy.forget_after)
            .map_or(0, |e| e.offences)
    }

    fn impose(
        &mut self,
        peer: PeerId,
        reason: &str,
        now: Duration,
        duration: Duration,
        offences: u32,
    ) -> Ban {
        let until = now + duration;
        self.insert(
            peer,
            Entry {
                reason: reason.to_owned(),
                until,
                offences,
                last_offence: now,
                running: true,
            },
        );
        self.next = Some(self.next.map_or(until, |next| next.min(until)));
        Ban {
            until,
            duration,
            offences,
        }
    }

    /// Inserts, making room first: the entry with the oldest offence that is not banned goes,
    /// else the ban that ends first.
    fn insert(&mut self, peer: PeerId, entry: Entry) {
        if !self.entries.contains_key(&peer) && self.entries.len() >= self.policy.max_entries.max(1)
        {
            let now = entry.last_offence;
            let victim = self
                .entries
                .iter()
                .min_by_key(|(_, e)| (e.until > now, e.last_offence, e.until))
                .map(|(p, _)| *p);
            if let Some(victim) = victim {
                self.entries.remove(&victim);
            }
        }
        self.entries.insert(peer, entry);
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

    #[test]
    fn offences_escalate_one_minute_ten_minutes_one_hour_then_stay_at_an_hour() {
        let mut bans = BanList::default();
        let peer = PeerId::random();
        let mut now = at(0);
        let mut lengths = Vec::new();
        for _ in 0..5 {
            let ban = bans
                .ban(peer, "spoofed_sender", now)
                .expect("not banned yet");
            lengths.push(ban.duration.as_secs() / 60);
            assert_eq!(bans.banned(&peer, now), Some(("spoofed_sender", ban.until)));
            // Still banned a moment before the end, free at it.
            assert!(bans
                .banned(&peer, ban.until - Duration::from_millis(1))
                .is_some());
            now = ban.until;
            assert_eq!(bans.banned(&peer, now), None);
        }
        assert_eq!(lengths, vec![1, 10, 60, 60, 60]);
    }

    #[test]
    fn offences_during_a_ban_do_not_escalate_it() {
        let mut bans = BanList::default();
        let peer = PeerId::random();
        let first = bans.ban(peer, "spoofed_sender", at(0)).unwrap();
        assert_eq!(bans.ban(peer, "spoofed_sender", at(0)), None);
        assert_eq!(bans.banned(&peer, at(0)).unwrap().1, first.until);
        assert_eq!(bans.ban(peer, "x", at(1)).unwrap().offences, 2);
    }

    #[test]
    fn offences_are_forgotten_after_a_quiet_day() {
        let mut bans = BanList::default();
        let peer = PeerId::random();
        bans.ban(peer, "a", at(0)).unwrap();
        bans.ban(peer, "a", at(2)).unwrap();
        let day = 24 * 60;
        // Counted from the last offence (minute 2), not from the end of its ban.
        let third = 2 + day - 1;
        assert_eq!(bans.ban(peer, "a", at(third)).unwrap().offences, 3);
        let ban = bans.ban(peer, "a", at(third + day + 1)).unwrap();
        assert_eq!((ban.offences, ban.duration), (1, MIN));
    }

    #[test]
    fn expiry_reports_each_ended_ban_once_and_the_next_deadline() {
        let mut bans = BanList::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        bans.ban(a, "first", at(0)).unwrap();
        bans.ban_for(b, MIN * 5, "operator", at(0));
        assert_eq!(bans.poll_timeout(), Some(at(1)));
        assert_eq!(bans.expire(at(1)), vec![(a, "first".to_owned())]);
        assert_eq!(bans.poll_timeout(), Some(at(5)));
        assert_eq!(bans.expire(at(2)), vec![]);
        assert_eq!(bans.expire(at(6)), vec![(b, "operator".to_owned())]);
        assert_eq!(bans.expire(at(7)), vec![]);
        assert_eq!(bans.poll_timeout(), None);
        // Still remembered for escalation until the day is over.
        assert_eq!(bans.len(), 2);
        bans.expire(at(6 + 24 * 60));
        assert!(bans.is_empty());
    }

    #[test]
    fn unban_ends_the_ban_but_keeps_the_offence() {
        let mut bans = BanList::default();
        let peer = PeerId::random();
        bans.ban(peer, "a", at(0)).unwrap();
        assert!(bans.unban(&peer, at(0)));
        assert!(!bans.unban(&peer, at(0)));
        assert_eq!(
            bans.expire(at(1)),
            vec![],
            "an ended ban is not reported again"
        );
        assert_eq!(bans.banned(&peer, at(0)), None);
        assert_eq!(bans.ban(peer, "a", at(0)).unwrap().offences, 2);
    }

    #[test]
    fn records_round_trip_and_skip_malformed_peers() {
        let mut bans = BanList::default();
        let peer = PeerId::random();
        bans.ban(peer, "spoofed_sender", at(0)).unwrap();
        let mut records = bans.records();
        records.push(BanRecord {
            peer: "not a peer".into(),
            reason: "x".into(),
            until_ms: 0,
            offences: 1,
            last_offence_ms: 0,
        });
        let json = serde_json::to_string(&records).unwrap();
        let parsed: Vec<BanRecord> = serde_json::from_str(&json).unwrap();
        let (restored, skipped) = BanList::restore(BanPolicy::default(), &parsed, at(0));
        assert_eq!(skipped, 1);
        assert_eq!(restored.records(), bans.records());
        assert!(restored.banned(&peer, at(0)).is_some());
        // The restored list escalates from where it was.
        let mut restored = restored;
        assert_eq!(restored.ban(peer, "a", at(1)).unwrap().offences, 2);
    }

    #[test]
    fn the_list_is_bounded_and_evicts_unbanned_offenders_first() {
        let policy = BanPolicy {
            max_entries: 2,
            ..BanPolicy::default()
        };
        let mut bans = BanList::new(policy);
        let (old, banned, new) = (PeerId::random(), PeerId::random(), PeerId::random());
        bans.ban_for(old, MIN, "a", at(0));
        bans.ban_for(banned, MIN * 60, "b", at(1));
        bans.ban(new, "c", at(10)).unwrap();
        assert_eq!(bans.len(), 2);
        assert!(bans.banned(&banned, at(10)).is_some());
        assert!(bans.banned(&new, at(10)).is_some());
    }
}

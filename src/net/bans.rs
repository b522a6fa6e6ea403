//! Timed bans with escalation: the sans-IO [`BanList`] and [`Bans`], the behaviour that
//! enforces it (first in the node's composed behaviour, so a banned peer costs nothing else).
//!
//! # Overview
//! [`BanList`] is a plain state machine over wall-clock time (`now` = time since the Unix epoch,
//! passed in, so bans survive a restart and tests jump time freely). Call order: [`BanList::ban`]
//! or [`BanList::ban_for`] when a peer offends; [`BanList::banned`] to gate a connection;
//! [`BanList::poll_timeout`] for the next expiry and [`BanList::expire`] at or after it, which
//! returns the bans that ended. [`Bans`] turns bans into severed connections, refused
//! connections and dials, and [`Event`]s (the node's `banned`/`unbanned`); the relay CLI persists [`BanList::records`] in
//! `--data-dir`.
//!
//! [`Bans`] owns the list, the bans that wait a moment ([`Bans::punish`] with a delay: an
//! offence answered first, so the peer can read why) and one timer for the next expiry or
//! delayed ban. It keeps no other copy of who is banned. Every part's offences reach it typed
//! ([`Offence`]), through the node's one wiring point.
//!
//! # Usage
//! ```
//! use std::time::Duration;
//! use keep_light::net::bans::{BanList, BanPolicy};
//! let mut bans = BanList::new(BanPolicy::default());
//! let (peer, now) = (libp2p::PeerId::random(), Duration::from_secs(1_800_000_000));
//! let ban = bans.ban(peer, "bad_signature", now).unwrap();
//! assert_eq!(ban.duration, Duration::from_secs(60));
//! assert!(bans.banned(&peer, now).is_some());
//! assert_eq!(bans.expire(now + ban.duration), vec![(peer, "bad_signature".to_owned())]);
//! ```

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    task::{Context, Poll, Waker},
    time::Duration,
};

use libp2p::{
    core::{transport::PortUse, Endpoint},
    swarm::{
        dummy, CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour,
        THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId,
};
use serde::{Deserialize, Serialize};

use super::types::Offence;
use crate::platform::{self, Instant, WallDeadline};

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

/// What [`Bans`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `peer` was banned: its connections are being closed, new ones are denied.
    Banned {
        peer: PeerId,
        reason: String,
        ban: Ban,
    },
    /// `peer`'s ban ended (expired, or lifted by [`Bans::unban`]).
    Unbanned { peer: PeerId, reason: String },
}

/// Why a connection was denied: its peer is banned.
#[derive(Debug, thiserror::Error)]
#[error("peer {peer} is banned ({reason})")]
pub struct Banned {
    pub peer: PeerId,
    pub reason: String,
}

/// The behaviour that enforces a [`BanList`]; see the module docs.
pub struct Bans {
    list: BanList,
    /// Offences whose ban waits until then.
    delayed: Vec<(Instant, PeerId, String)>,
    out: VecDeque<ToSwarm<Event, Infallible>>,
    /// The next ban end (wall clock) or delayed ban (monotonic).
    timer: WallDeadline,
    waker: Option<Waker>,
}

impl Bans {
    /// Enforces `list` (a restored one: its running bans hold from the start).
    pub fn new(list: BanList) -> Self {
        Self {
            list,
            delayed: Vec::new(),
            out: VecDeque::new(),
            timer: WallDeadline::default(),
            waker: None,
        }
    }

    /// Bans `peer` now, for `duration` or for the policy's next step, and closes its
    /// connections. An offence during a running policy ban changes nothing.
    pub fn ban(&mut self, peer: PeerId, duration: Option<Duration>, reason: &str) {
        let now = platform::unix_time();
        let ban = match duration {
            Some(duration) => Some(self.list.ban_for(peer, duration, reason, now)),
            None => self.list.ban(peer, reason, now),
        };
        let Some(ban) = ban else { return };
        tracing::warn!(%peer, reason, seconds = ban.duration.as_secs(), offences = ban.offences, "peer banned");
        self.out.push_back(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::All,
        });
        self.out.push_back(ToSwarm::GenerateEvent(Event::Banned {
            peer,
            reason: reason.to_owned(),
            ban,
        }));
        self.wake();
    }

    /// Bans `peer` for `offence`, for the policy's next step, after `delay` (time for it to
    /// read our answer; zero: now).
    pub fn punish(&mut self, peer: PeerId, offence: Offence, delay: Duration) {
        let reason = offence.reason();
        if delay.is_zero() {
            self.ban(peer, None, &reason);
        } else {
            self.delayed
                .push((platform::now() + delay, peer, reason.into_owned()));
            self.wake();
        }
    }

    /// Lifts `peer`'s ban now (its offences stay on record).
    pub fn unban(&mut self, peer: &PeerId) {
        let now = platform::unix_time();
        let Some((reason, _)) = self.list.banned(peer, now) else {
            return;
        };
        let reason = reason.to_owned();
        self.list.unban(peer, now);
        tracing::info!(%peer, reason, "ban lifted");
        self.out.push_back(ToSwarm::GenerateEvent(Event::Unbanned {
            peer: *peer,
            reason,
        }));
        self.wake();
    }

    /// Why `peer` is banned, if it is.
    pub fn banned(&self, peer: &PeerId) -> Option<&str> {
        self.list
            .banned(peer, platform::unix_time())
            .map(|(reason, _)| reason)
    }

    /// Ends the bans that are due now and returns them, instead of reporting them on the next
    /// poll: a peer whose ban just ran out may connect before the timer fires, and its `Unbanned`
    /// must come before its `Connected`.
    pub fn take_ended(&mut self) -> Vec<Event> {
        self.list
            .expire(platform::unix_time())
            .into_iter()
            .map(|(peer, reason)| {
                tracing::info!(%peer, reason, "ban ended");
                Event::Unbanned { peer, reason }
            })
            .collect()
    }

    /// Every entry, for persistence.
    pub fn records(&self) -> Vec<BanRecord> {
        self.list.records()
    }

    fn deny(&self, peer: &PeerId) -> Result<(), ConnectionDenied> {
        match self.banned(peer) {
            Some(reason) => Err(ConnectionDenied::new(Banned {
                peer: *peer,
                reason: reason.to_owned(),
            })),
            None => Ok(()),
        }
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Imposes the delayed bans that are due and reports the bans that ended.
    fn catch_up(&mut self) {
        let now = platform::now();
        let (due, later) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition::<Vec<_>, _>(|(at, ..)| *at <= now);
        self.delayed = later;
        for (_, peer, reason) in due {
            self.ban(peer, None, &reason);
        }
        for (peer, reason) in self.list.expire(platform::unix_time()) {
            tracing::info!(%peer, reason, "ban ended");
            self.out
                .push_back(ToSwarm::GenerateEvent(Event::Unbanned { peer, reason }));
        }
    }
}

impl NetworkBehaviour for Bans {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.deny(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = peer {
            self.deny(&peer)?;
        }
        Ok(vec![])
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.deny(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(out) = self.out.pop_front() {
                return Poll::Ready(out.map_in(|never| match never {}));
            }
            let delayed = self.delayed.iter().map(|(at, ..)| *at).min();
            self.timer.set(self.list.poll_timeout(), delayed);
            match self.timer.poll(cx) {
                Poll::Ready(()) => {
                    self.catch_up();
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
                .ban(peer, "bad_signature", now)
                .expect("not banned yet");
            lengths.push(ban.duration.as_secs() / 60);
            assert_eq!(bans.banned(&peer, now), Some(("bad_signature", ban.until)));
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
        let first = bans.ban(peer, "bad_signature", at(0)).unwrap();
        assert_eq!(bans.ban(peer, "bad_signature", at(0)), None);
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
        bans.ban(peer, "bad_signature", at(0)).unwrap();
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

// The shell against real swarms: tokio and the memory transport exist only natively.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod shell_tests {
    use super::*;
    use crate::net::test_support::{memory_address, memory_swarm};

    /// A swarm running only [`Bans`], listening at `address` if given.
    fn swarm(address: Option<&Multiaddr>) -> libp2p::Swarm<Bans> {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let mut swarm = memory_swarm(key, Bans::new(BanList::default()));
        if let Some(address) = address {
            swarm.listen_on(address.clone()).unwrap();
        }
        swarm
    }

    /// Drives both swarms until `a` reports an event `want` accepts.
    async fn until<T>(
        a: &mut libp2p::Swarm<Bans>,
        b: &mut libp2p::Swarm<Bans>,
        mut want: impl FnMut(libp2p::swarm::SwarmEvent<Event>) -> Option<T>,
    ) -> T {
        use futures::StreamExt as _;
        let wait = async {
            loop {
                tokio::select! {
                    event = a.select_next_some() => if let Some(found) = want(event) { return found },
                    _ = b.select_next_some() => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .expect("the swarm reported what was waited for")
    }

    #[tokio::test]
    async fn a_ban_closes_the_connection_denies_both_ways_and_ends_by_its_own_timer() {
        use libp2p::swarm::{DialError, ListenError, SwarmEvent};
        let address = memory_address();
        let (mut a, mut b) = (swarm(Some(&address)), swarm(None));
        let peer = *b.local_peer_id();
        until(&mut a, &mut b, |e| {
            matches!(e, SwarmEvent::NewListenAddr { .. }).then_some(())
        })
        .await;
        b.dial(address.clone()).unwrap();
        until(&mut a, &mut b, |e| {
            matches!(e, SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer)
                .then_some(())
        })
        .await;

        a.behaviour_mut()
            .ban(peer, Some(Duration::from_millis(400)), "test");
        let banned = until(&mut a, &mut b, |e| match e {
            SwarmEvent::Behaviour(Event::Banned {
                peer: p, reason, ..
            }) if p == peer => Some(reason),
            _ => None,
        })
        .await;
        assert_eq!(banned, "test");
        until(&mut a, &mut b, |e| {
            matches!(e, SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == peer)
                .then_some(())
        })
        .await;
        assert_eq!(a.behaviour().banned(&peer), Some("test"));

        // Its dial in is refused once it is known who dialled, ours out before dialling.
        b.dial(address.clone()).unwrap();
        let cause = until(&mut a, &mut b, |e| match e {
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                ..
            } => Some(cause),
            _ => None,
        })
        .await;
        assert_eq!(cause.downcast::<Banned>().unwrap().peer, peer);
        // Refused before dialling, so the swarm answers at once.
        let dial = a.dial(
            libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(vec![address.clone()])
                .build(),
        );
        let Err(DialError::Denied { cause }) = dial else {
            panic!("a dial to a banned peer went ahead: {dial:?}");
        };
        assert!(cause.downcast::<Banned>().is_ok());

        // Nobody ticks it: the ban ends on the behaviour's own timer.
        let ended = until(&mut a, &mut b, |e| match e {
            SwarmEvent::Behaviour(Event::Unbanned { peer: p, reason }) if p == peer => Some(reason),
            _ => None,
        })
        .await;
        assert_eq!(ended, "test");
        b.dial(address.clone()).unwrap();
        until(&mut a, &mut b, |e| {
            matches!(e, SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer)
                .then_some(())
        })
        .await;

        // A delayed ban waits, then closes the connection like any other.
        a.behaviour_mut()
            .punish(peer, Offence::RateLimited, Duration::from_millis(100));
        assert_eq!(a.behaviour().banned(&peer), None);
        let banned = until(&mut a, &mut b, |e| match e {
            SwarmEvent::Behaviour(Event::Banned {
                peer: p,
                reason,
                ban,
            }) if p == peer => Some((reason, ban.offences)),
            _ => None,
        })
        .await;
        assert_eq!(banned, ("rate_limited".to_owned(), 2));
        until(&mut a, &mut b, |e| {
            matches!(e, SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == peer)
                .then_some(())
        })
        .await;
    }

    #[tokio::test]
    async fn with_no_ban_due_the_behaviour_sleeps_instead_of_polling() {
        use std::task::Context;
        // A fired timer must not leave `poll` ready: after the ban has ended, polling again
        // yields nothing until something changes.
        let mut bans = Bans::new(BanList::default());
        let peer = PeerId::random();
        bans.ban(peer, Some(Duration::from_millis(20)), "short");
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let event = futures::future::poll_fn(|cx| bans.poll(cx)).await;
            seen.push(event);
        }
        assert!(matches!(seen[0], ToSwarm::CloseConnection { .. }));
        assert!(matches!(
            seen[1],
            ToSwarm::GenerateEvent(Event::Banned { .. })
        ));
        assert!(matches!(
            seen[2],
            ToSwarm::GenerateEvent(Event::Unbanned { .. })
        ));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            assert!(bans.poll(&mut cx).is_pending());
        }
    }
}

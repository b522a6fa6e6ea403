//! Plain types the node's parts share.
//!
//! # Overview
//! A node's [`Role`], its pubsub [`Router`], why a publish failed, the free-text message type,
//! the [`Offence`]s that get a peer banned and each part's [`Counts`]. A leaf: it imports nothing
//! from `net`, so every part may import it without a cycle.
//!
//! # Usage
//! ```
//! use keep_light::net::types::{Counts, Offence};
//! let mut counts = Counts::new(&["rate_limited"]);
//! counts.add("rate_limited", 1);
//! assert_eq!(Offence::RateLimited.reason(), "rate_limited");
//! ```

use std::{borrow::Cow, collections::HashMap};

/// Envelope type of free-text messages (`publish TOPIC TEXT`).
pub const TEXT_TYPE: &str = "net.Text";

/// What a node does in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An operator: joins its own topics, publishes and receives.
    Member,
    /// Infrastructure: joins every topic a peer joins so it can route it, originates nothing and
    /// delivers nothing to the application.
    Relay,
}

/// How a network routes pubsub messages; every node of a network must use the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Router {
    /// Gossipsub: a mesh per topic plus lazy gossip, flood publishing (the default).
    #[default]
    Gossipsub,
    /// Floodsub routing: every message goes to every neighbour in its topic at once, with no
    /// mesh and no gossip (each connected peer is a gossipsub "explicit peer"), on the same
    /// wire: signed envelopes, and our checks before anything is forwarded. rust-libp2p's
    /// floodsub crate is not used: it forwards before validation, caps frames at 2 KiB, and
    /// reads one RPC per stream, so it cannot even follow gossipsub's long-lived streams
    /// (tried: it sees only the first RPC).
    Floodsub,
}

impl std::str::FromStr for Router {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gossipsub" => Ok(Self::Gossipsub),
            "floodsub" => Ok(Self::Floodsub),
            other => Err(format!("unknown router {other:?}: gossipsub or floodsub")),
        }
    }
}

/// An envelope as published by `NodeHandle::publish_envelope`: its bytes (to republish), and
/// whether this first publish went out.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The envelope bytes, sequence number included.
    pub bytes: Vec<u8>,
    /// The first publish's outcome (`NoPeers` when nobody is in the topic yet).
    pub sent: Result<(), PublishError>,
}

/// Why a publish failed. The node keeps running in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No connected peer is in the topic yet: wait for a `peer_subscribed` event and retry.
    #[error("no peer subscribed to the topic yet")]
    NoPeers,
    /// The envelope exceeds the size limit: send less.
    #[error("message too large: {0}")]
    TooLarge(String),
    /// The node has stopped.
    #[error("node stopped")]
    Stopped,
    /// Anything else gossipsub refused (duplicate, queues full, signing).
    #[error("{0}")]
    Other(String),
}

/// What a peer did to be banned. The concern that finds it reports it; the node hands every
/// offence to the bans in one place, and the ban's reason is [`Offence::reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    /// Its attestation was refused, for this reason (`expired`, `wrong_chain`, …).
    Attestation(&'static str),
    /// Its grace ran out without a verified attestation (`attested` firewall).
    Unattested,
    /// Its grace ran out without the chain recognising its operator (`staked` firewall).
    Unstaked,
    /// It forwarded an envelope whose signature does not hold (forged, altered, another
    /// topic's): every honest forwarder checks signatures before forwarding.
    BadSignature,
    /// It sent more messages than the per-peer rate limit allows.
    RateLimited,
}

impl Offence {
    /// The ban's reason, as `banned` events and ban records name it.
    pub fn reason(&self) -> Cow<'static, str> {
        match self {
            Self::Attestation(reason) => Cow::Owned(format!("attestation_{reason}")),
            Self::Unattested => Cow::Borrowed("policy_unattested"),
            Self::Unstaked => Cow::Borrowed("policy_unstaked"),
            Self::BadSignature => Cow::Borrowed("bad_signature"),
            Self::RateLimited => Cow::Borrowed("rate_limited"),
        }
    }
}

/// One concern's counters. Each concern declares the names it may count; the node merges all
/// concerns in one place ([`Counts::merge`]), where a name two concerns declare is a bug that
/// fails loudly instead of adding up silently.
#[derive(Debug, Clone)]
pub struct Counts {
    names: &'static [&'static str],
    values: HashMap<&'static str, u64>,
}

impl Counts {
    /// Counters named `names` (each starts at 0 and is reported once it is not).
    pub fn new(names: &'static [&'static str]) -> Self {
        Self {
            names,
            values: HashMap::new(),
        }
    }

    /// The names this concern may count.
    pub fn names(&self) -> &'static [&'static str] {
        self.names
    }

    /// Adds `n` to `name`; returns its new total.
    pub fn add(&mut self, name: &'static str, n: u64) -> u64 {
        debug_assert!(
            self.names.contains(&name),
            "counter {name:?} is not declared by its concern"
        );
        let total = self.values.entry(name).or_default();
        *total += n;
        *total
    }

    /// `name`'s total so far.
    pub fn get(&self, name: &str) -> u64 {
        self.values.get(name).copied().unwrap_or(0)
    }

    /// The counters that are not 0.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.values.iter().map(|(name, n)| (*name, *n))
    }

    /// Every concern's counters in one map.
    ///
    /// # Panics
    /// If two concerns declare the same name (a programming error: their totals would mix).
    pub fn merge<'a>(concerns: impl IntoIterator<Item = &'a Counts>) -> HashMap<String, u64> {
        let mut declared: Vec<&str> = Vec::new();
        let mut all = HashMap::new();
        for counts in concerns {
            for name in counts.names {
                assert!(
                    !declared.contains(name),
                    "counter {name:?} is declared by two concerns"
                );
                declared.push(name);
            }
            all.extend(counts.iter().map(|(name, n)| (name.to_owned(), n)));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_name_and_merge_without_mixing_concerns() {
        let mut a = Counts::new(&["x", "y"]);
        let mut b = Counts::new(&["z"]);
        assert_eq!(a.add("x", 2), 2);
        assert_eq!(a.add("x", 1), 3);
        b.add("z", 5);
        let all = Counts::merge([&a, &b]);
        assert_eq!(
            all.len(),
            2,
            "a counter still at 0 is not reported: {all:?}"
        );
        assert_eq!((all["x"], all["z"]), (3, 5));
        assert_eq!(a.get("y"), 0);
    }

    #[test]
    #[should_panic(expected = "declared by two concerns")]
    fn a_name_two_concerns_declare_fails_loudly() {
        Counts::merge([&Counts::new(&["x"]), &Counts::new(&["x", "y"])]);
    }

    #[test]
    fn offences_name_their_bans_as_before() {
        assert_eq!(
            Offence::Attestation("wrong_chain").reason(),
            "attestation_wrong_chain"
        );
        assert_eq!(Offence::Unstaked.reason(), "policy_unstaked");
        assert_eq!(Offence::BadSignature.reason(), "bad_signature");
    }
}

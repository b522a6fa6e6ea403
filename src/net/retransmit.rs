//! Retransmission and de-duplication (sans-IO), after keep-core's `pkg/net/retransmission`.
//!
//! # Overview
//! Pubsub may lose a message (a peer joined the mesh late, a queue overflowed). A sender
//! therefore republishes each message on ticks until its *context* ends (a DKG phase, a signing
//! round): [`Retransmitter`]. Ticks come from chain blocks or a timer; the caller decides.
//! Receivers see every copy, so each handler keeps a [`Deduplicator`] keyed by
//! (sender, sequence): a handler sees each message once, and old sequences (replays) are refused.
//!
//! # Usage
//! ```
//! use keep_light::net::retransmit::{Retransmitter, Strategy};
//! let mut out = Retransmitter::new();
//! out.send("phase-1", b"share".to_vec(), Strategy::Backoff);
//! for tick in 1..=6 {
//!     for (_context, bytes) in out.on_tick() {
//!         // republish `bytes` on the channel's topic
//!         # let _ = (tick, bytes);
//!     }
//! }
//! out.end_context("phase-1");
//! ```
//! Call order: `send` any time; `on_tick` once per tick; `end_context` when the context is over.

use std::collections::HashMap;

use crate::identity::Address;

/// When to republish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// On every tick.
    EveryTick,
    /// On ticks 1, 3, 6, 11, 20, 37, … after sending: the gap starts at 2 and grows as
    /// gap' = 2·gap − 1, so a long context costs O(log ticks) copies.
    Backoff,
}

#[derive(Debug)]
struct Outgoing {
    context: String,
    bytes: Vec<u8>,
    strategy: Strategy,
    /// Ticks since the message was sent.
    age: u64,
    /// The age at which it is next republished.
    next: u64,
    /// Backoff's current gap.
    gap: u64,
}

/// The sender's side: messages to republish, grouped by context.
#[derive(Debug, Default)]
pub struct Retransmitter {
    outgoing: Vec<Outgoing>,
    /// Most messages kept; a new one beyond it replaces the oldest (bounded memory).
    limit: usize,
}

/// How many messages a [`Retransmitter`] keeps by default.
pub const DEFAULT_RETRANSMIT_LIMIT: usize = 1024;

impl Retransmitter {
    /// An empty retransmitter keeping at most [`DEFAULT_RETRANSMIT_LIMIT`] messages.
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_RETRANSMIT_LIMIT)
    }

    /// An empty retransmitter keeping at most `limit` messages (at least 1).
    pub fn with_limit(limit: usize) -> Self {
        Self {
            outgoing: Vec::new(),
            limit: limit.max(1),
        }
    }

    /// Registers a message just published in `context` for republication.
    pub fn send(&mut self, context: &str, bytes: Vec<u8>, strategy: Strategy) {
        if self.outgoing.len() == self.limit {
            self.outgoing.remove(0);
        }
        self.outgoing.push(Outgoing {
            context: context.to_owned(),
            bytes,
            strategy,
            age: 0,
            next: 1,
            gap: 2,
        });
    }

    /// Advances one tick; returns the messages to republish now, with their contexts.
    pub fn on_tick(&mut self) -> Vec<(String, Vec<u8>)> {
        let mut due = Vec::new();
        for message in &mut self.outgoing {
            message.age += 1;
            if message.age < message.next {
                continue;
            }
            due.push((message.context.clone(), message.bytes.clone()));
            match message.strategy {
                Strategy::EveryTick => message.next = message.age + 1,
                Strategy::Backoff => {
                    message.next = message.age + message.gap;
                    message.gap = message.gap * 2 - 1;
                }
            }
        }
        due
    }

    /// Stops republishing everything sent in `context`.
    pub fn end_context(&mut self, context: &str) {
        self.outgoing.retain(|m| m.context != context);
    }

    /// Messages still being republished.
    pub fn len(&self) -> usize {
        self.outgoing.len()
    }

    /// Whether nothing is being republished.
    pub fn is_empty(&self) -> bool {
        self.outgoing.is_empty()
    }
}

/// Why a received message was not new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Duplicate {
    /// The same (sender, sequence) was seen already: a retransmission; drop it quietly.
    #[error("already seen")]
    Seen,
    /// The sequence is older than the window kept for this sender: a replay; count it.
    #[error("sequence older than the de-duplication window (replay)")]
    Replay,
}

/// How many sequences below the highest one seen are remembered per sender.
pub const WINDOW: u64 = 128;

#[derive(Debug, Clone, Copy, Default)]
struct SenderWindow {
    /// Highest sequence seen.
    highest: u64,
    /// Bit i set: sequence `highest − i` seen (i < 128).
    seen: u128,
}

/// A handler's memory of what it has seen: per sender, the highest sequence and a 128-wide
/// window below it. Memory is O(senders); senders beyond `max_senders` evict the least recently
/// active one.
#[derive(Debug)]
pub struct Deduplicator {
    senders: HashMap<Address, (SenderWindow, u64)>,
    max_senders: usize,
    clock: u64,
}

impl Default for Deduplicator {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl Deduplicator {
    /// Remembers up to `max_senders` senders (at least 1).
    pub fn new(max_senders: usize) -> Self {
        Self {
            senders: HashMap::new(),
            max_senders: max_senders.max(1),
            clock: 0,
        }
    }

    /// What [`Deduplicator::check`] would say, without recording anything: lets a message be
    /// refused before its (costly) signature check and recorded only once it holds.
    pub fn peek(&self, sender: Address, sequence: u64) -> Result<(), Duplicate> {
        let Some((window, _)) = self.senders.get(&sender) else {
            return Ok(());
        };
        if window.seen == 0 || sequence > window.highest {
            return Ok(());
        }
        let offset = window.highest - sequence;
        if offset >= WINDOW {
            Err(Duplicate::Replay)
        } else if window.seen & (1u128 << offset) != 0 {
            Err(Duplicate::Seen)
        } else {
            Ok(())
        }
    }

    /// Records (sender, sequence); `Ok` when it is new and the handler should see it.
    pub fn check(&mut self, sender: Address, sequence: u64) -> Result<(), Duplicate> {
        self.clock += 1;
        if !self.senders.contains_key(&sender) && self.senders.len() >= self.max_senders {
            if let Some(oldest) = self
                .senders
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(a, _)| *a)
            {
                self.senders.remove(&oldest);
            }
        }
        let clock = self.clock;
        let (window, used) = self.senders.entry(sender).or_default();
        *used = clock;
        if window.seen == 0 {
            // First message from this sender.
            window.highest = sequence;
            window.seen = 1;
            return Ok(());
        }
        if sequence > window.highest {
            let shift = sequence - window.highest;
            window.seen = if shift >= 128 {
                0
            } else {
                window.seen << shift
            };
            window.seen |= 1;
            window.highest = sequence;
            return Ok(());
        }
        let offset = window.highest - sequence;
        if offset >= WINDOW {
            return Err(Duplicate::Replay);
        }
        let bit = 1u128 << offset;
        if window.seen & bit != 0 {
            return Err(Duplicate::Seen);
        }
        window.seen |= bit;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire_ticks(strategy: Strategy, ticks: u64) -> Vec<u64> {
        let mut out = Retransmitter::new();
        out.send("c", vec![1], strategy);
        (1..=ticks).filter(|_| !out.on_tick().is_empty()).collect()
    }

    #[test]
    fn backoff_republishes_on_ticks_1_3_6_11_20_37() {
        assert_eq!(fire_ticks(Strategy::Backoff, 40), vec![1, 3, 6, 11, 20, 37]);
        assert_eq!(fire_ticks(Strategy::EveryTick, 4), vec![1, 2, 3, 4]);
    }

    #[test]
    fn ending_a_context_stops_only_its_messages() {
        let mut out = Retransmitter::new();
        out.send("a", vec![1], Strategy::EveryTick);
        out.send("b", vec![2], Strategy::EveryTick);
        assert_eq!(out.on_tick().len(), 2);
        out.end_context("a");
        assert_eq!(out.on_tick(), vec![("b".to_string(), vec![2])]);
        out.end_context("b");
        assert!(out.is_empty());
    }

    #[test]
    fn the_limit_drops_the_oldest() {
        let mut out = Retransmitter::with_limit(2);
        for i in 0..3u8 {
            out.send("c", vec![i], Strategy::EveryTick);
        }
        let due: Vec<u8> = out.on_tick().into_iter().map(|(_, b)| b[0]).collect();
        assert_eq!(due, vec![1, 2]);
    }

    #[test]
    fn duplicates_are_seen_once_and_replays_refused() {
        let a = Address([1; 20]);
        let b = Address([2; 20]);
        let mut dedup = Deduplicator::default();
        assert_eq!(dedup.peek(a, 5), Ok(()));
        assert_eq!(dedup.check(a, 5), Ok(()));
        assert_eq!(
            dedup.peek(a, 5),
            Err(Duplicate::Seen),
            "peek says what check would"
        );
        assert_eq!(dedup.check(a, 5), Err(Duplicate::Seen));
        assert_eq!(dedup.check(b, 5), Ok(()), "senders are independent");
        // Out of order within the window is fine, once.
        assert_eq!(dedup.check(a, 9), Ok(()));
        assert_eq!(dedup.check(a, 7), Ok(()));
        assert_eq!(dedup.check(a, 7), Err(Duplicate::Seen));
        // A big jump forgets the window; anything that far back is a replay.
        assert_eq!(dedup.check(a, 9 + 500), Ok(()));
        assert_eq!(dedup.peek(a, 9), Err(Duplicate::Replay));
        assert_eq!(dedup.peek(a, 9 + 499), Ok(()), "peek records nothing");
        assert_eq!(dedup.check(a, 9), Err(Duplicate::Replay));
        assert_eq!(dedup.check(a, 9 + 500 - 127), Ok(()));
        assert_eq!(dedup.check(a, 9 + 500 - 128), Err(Duplicate::Replay));
    }

    #[test]
    fn sender_memory_is_bounded() {
        let mut dedup = Deduplicator::new(2);
        let (a, b, c) = (Address([1; 20]), Address([2; 20]), Address([3; 20]));
        dedup.check(a, 1).unwrap();
        dedup.check(b, 1).unwrap();
        dedup.check(a, 2).unwrap(); // a is now the most recent
        dedup.check(c, 1).unwrap(); // evicts b
        assert_eq!(dedup.senders.len(), 2);
        assert_eq!(dedup.check(a, 2), Err(Duplicate::Seen));
        assert_eq!(dedup.check(b, 1), Ok(()), "b was forgotten");
    }
}

//! When a group's signature shares reached this member, round by round: the group-message
//! latency the page plots. The driver feeds it (it owns the clock); this is plain data in,
//! data out, so `now` is an input.
//!
//! A round is keyed by the entry it extends. Times are measured from this member's own share
//! (every member sends one as soon as it sees the request), so a share's time is how much
//! later than ours it arrived: propagation plus the sender's lag in seeing the request.
//! Negative: it came before ours. A round with no share of ours measures from its first share.

use std::collections::VecDeque;

use serde::Serialize;

use crate::{beacon::dkg::Index, platform::Instant};

/// Rounds remembered at once; a round whose entry never lands is forgotten after this many.
const MAX_ROUNDS: usize = 16;

/// One share's arrival in a finished round.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareTime {
    /// The sender's seat.
    pub seat: Index,
    /// Milliseconds after this member's own share (negative: before it).
    pub after_ms: f64,
}

struct Round {
    previous: Vec<u8>,
    ours: Option<Instant>,
    arrived: Vec<(Index, Instant)>,
}

/// The open rounds, oldest first.
#[derive(Default)]
pub struct ShareTimes {
    rounds: VecDeque<Round>,
}

impl ShareTimes {
    fn round(&mut self, previous: &[u8]) -> &mut Round {
        match self.rounds.iter().position(|r| r.previous == previous) {
            Some(i) => &mut self.rounds[i],
            None => {
                if self.rounds.len() == MAX_ROUNDS {
                    self.rounds.pop_front();
                }
                self.rounds.push_back(Round {
                    previous: previous.to_vec(),
                    ours: None,
                    arrived: Vec::new(),
                });
                self.rounds.back_mut().expect("just pushed")
            }
        }
    }

    /// This member sent its share extending `previous` (a republication keeps the first time).
    pub fn sent(&mut self, previous: &[u8], now: Instant) {
        self.round(previous).ours.get_or_insert(now);
    }

    /// Another seat's share extending `previous` arrived (a seat counts once).
    pub fn arrived(&mut self, previous: &[u8], seat: Index, now: Instant) {
        let round = self.round(previous);
        if !round.arrived.iter().any(|(s, _)| *s == seat) {
            round.arrived.push((seat, now));
        }
    }

    /// The entry extending `previous` is on chain: the round's share times, in arrival order
    /// (`None` if nothing of it was seen).
    pub fn finish(&mut self, previous: &[u8]) -> Option<Vec<ShareTime>> {
        let i = self.rounds.iter().position(|r| r.previous == previous)?;
        let round = self.rounds.remove(i).expect("found");
        let first = round.arrived.iter().map(|(_, at)| *at).min();
        let reference = round.ours.or(first)?;
        Some(
            round
                .arrived
                .iter()
                .map(|&(seat, at)| ShareTime {
                    seat,
                    after_ms: signed_ms(at, reference),
                })
                .collect(),
        )
    }
}

/// `at − reference` in milliseconds, negative when `at` came first.
fn signed_ms(at: Instant, reference: Instant) -> f64 {
    if at >= reference {
        at.duration_since(reference).as_secs_f64() * 1e3
    } else {
        -(reference.duration_since(at).as_secs_f64() * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn shares_are_timed_from_our_own_and_may_come_first() {
        let t0 = crate::platform::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut times = ShareTimes::default();
        times.arrived(b"e1", 2, at(10));
        times.sent(b"e1", at(40));
        times.sent(b"e1", at(900)); // a republication
        times.arrived(b"e1", 3, at(55));
        times.arrived(b"e1", 3, at(70)); // counted once
        times.arrived(b"e2", 2, at(60)); // another round
        let round = times.finish(b"e1").unwrap();
        assert_eq!(
            round,
            vec![
                ShareTime {
                    seat: 2,
                    after_ms: -30.0
                },
                ShareTime {
                    seat: 3,
                    after_ms: 15.0
                },
            ]
        );
        assert_eq!(times.finish(b"e1"), None);
        // Without a share of ours, the first share is the reference.
        times.arrived(b"e2", 4, at(100));
        let round = times.finish(b"e2").unwrap();
        assert_eq!(round[0].after_ms, 0.0);
        assert_eq!(round[1].after_ms, 40.0);
    }

    #[test]
    fn rounds_whose_entry_never_lands_are_forgotten() {
        let mut times = ShareTimes::default();
        let now = crate::platform::now();
        for i in 0..=MAX_ROUNDS as u32 {
            times.sent(&i.to_be_bytes(), now);
        }
        assert_eq!(times.rounds.len(), MAX_ROUNDS);
        assert_eq!(times.finish(&0u32.to_be_bytes()), None);
        assert!(times.finish(&1u32.to_be_bytes()).is_some());
    }
}

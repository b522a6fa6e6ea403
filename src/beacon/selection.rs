//! Group selection: which operators' seats form the group an entry selects (DESIGN.md section 5).
//!
//! # Overview
//! r = keccak256(serialize_G1(entry)). Each operator holds stake / min_stake virtual stakers
//! i = 1..=k; each gets ticket(operator, i) = the first 8 bytes (big-endian u64) of
//! keccak256(r ‖ pad32(address) ‖ pad32(i)). The group is the `group_size` lowest tickets; an
//! operator may hold several seats; seats are ordered by ticket, and seat s (1-based) is member
//! index s. Equal tickets (probability ~2⁻⁶⁴) are ordered by address, then i, so every node
//! computes the same group.
//!
//! # Usage
//! ```
//! use keep_light::beacon::{entry, selection::{select_group, Operator}};
//! use keep_light::identity::Address;
//! let operators: Vec<Operator> = (1u8..=8)
//!     .map(|b| Operator { address: Address([b; 20]), stake: 3 })
//!     .collect();
//! let seats = select_group(&entry::genesis(), &operators, 1, 5).unwrap();
//! assert_eq!(seats.len(), 5);
//! assert!(seats.windows(2).all(|w| w[0].ticket <= w[1].ticket));
//! ```
//!
//! Cost is one keccak per virtual staker; [`MAX_TICKETS`] bounds it (memory stays O(group_size)).

use std::collections::BinaryHeap;

use sha3::{Digest, Keccak256};

use super::bls::Signature;
use crate::identity::Address;

/// The most virtual stakers one selection will hash (≈ 1 s of keccak natively).
pub const MAX_TICKETS: u128 = 1 << 22;

/// An operator as the chain reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    /// Operator address.
    pub address: Address,
    /// Stake, in the chain's smallest unit.
    pub stake: u128,
}

/// One seat of the selected group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seat {
    /// The ticket value (lower wins).
    pub ticket: u64,
    /// The operator holding the seat.
    pub operator: Address,
    /// Which of the operator's virtual stakers won it (1-based).
    pub virtual_staker: u64,
}

/// Why no group could be selected; the caller should wait for more stake or fix its parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// `min_stake` is 0 (every operator would hold infinitely many tickets).
    #[error("minimum stake must be positive")]
    ZeroMinimumStake,
    /// The group size is 0.
    #[error("group size must be positive")]
    ZeroGroupSize,
    /// Fewer virtual stakers than seats.
    #[error("{available} tickets for {needed} seats")]
    NotEnoughTickets {
        /// Virtual stakers in total.
        available: u128,
        /// The group size.
        needed: usize,
    },
    /// More virtual stakers than [`MAX_TICKETS`]; raise `min_stake`.
    #[error("{0} tickets exceed the limit of {MAX_TICKETS}")]
    TooManyTickets(u128),
}

/// ticket(operator, i) for seed r.
pub fn ticket(seed: &[u8; 32], operator: &Address, virtual_staker: u64) -> u64 {
    let mut hasher = Keccak256::new();
    hasher.update(seed);
    hasher.update([0u8; 12]);
    hasher.update(operator.as_bytes());
    hasher.update([0u8; 24]);
    hasher.update(virtual_staker.to_be_bytes());
    let digest = hasher.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("32-byte digest"))
}

/// The seats of the group `entry` selects, in seat order.
pub fn select_group(
    entry: &Signature,
    operators: &[Operator],
    min_stake: u128,
    group_size: usize,
) -> Result<Vec<Seat>, SelectionError> {
    if min_stake == 0 {
        return Err(SelectionError::ZeroMinimumStake);
    }
    if group_size == 0 {
        return Err(SelectionError::ZeroGroupSize);
    }
    let available = operators
        .iter()
        .fold(0u128, |sum, o| sum.saturating_add(o.stake / min_stake));
    if available > MAX_TICKETS {
        return Err(SelectionError::TooManyTickets(available));
    }
    if available < group_size as u128 {
        return Err(SelectionError::NotEnoughTickets {
            available,
            needed: group_size,
        });
    }
    let seed: [u8; 32] = Keccak256::digest(entry.to_bytes()).into();
    // A max-heap of the best `group_size` seats so far: memory O(group_size).
    let mut best = BinaryHeap::with_capacity(group_size + 1);
    for operator in operators {
        // Bounded by MAX_TICKETS above, so it fits in u64.
        let count = (operator.stake / min_stake) as u64;
        for virtual_staker in 1..=count {
            let seat = Seat {
                ticket: ticket(&seed, &operator.address, virtual_staker),
                operator: operator.address,
                virtual_staker,
            };
            if best.len() < group_size {
                best.push(seat);
            } else if seat < *best.peek().expect("heap is full") {
                best.pop();
                best.push(seat);
            }
        }
    }
    Ok(best.into_sorted_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beacon::entry;

    fn operators(count: u8, stake: u128) -> Vec<Operator> {
        (1..=count)
            .map(|b| Operator {
                address: Address([b; 20]),
                stake,
            })
            .collect()
    }

    #[test]
    fn selection_is_the_lowest_tickets_in_order() {
        let ops = operators(10, 250);
        let entry = entry::genesis();
        let seats = select_group(&entry, &ops, 100, 7).unwrap();
        // Brute force: every ticket, sorted.
        let seed: [u8; 32] = Keccak256::digest(entry.to_bytes()).into();
        let mut all: Vec<Seat> = ops
            .iter()
            .flat_map(|o| {
                (1..=2).map(move |i| Seat {
                    ticket: ticket(&seed, &o.address, i),
                    operator: o.address,
                    virtual_staker: i,
                })
            })
            .collect();
        all.sort();
        assert_eq!(seats, all[..7]);
    }

    #[test]
    fn ticket_hashes_the_padded_fields() {
        let seed = [7u8; 32];
        let address = Address([0xab; 20]);
        let mut input = seed.to_vec();
        input.extend([0u8; 12]);
        input.extend([0xab; 20]);
        input.extend([0u8; 31]);
        input.push(3);
        let digest = Keccak256::digest(&input);
        assert_eq!(
            ticket(&seed, &address, 3),
            u64::from_be_bytes(digest[..8].try_into().unwrap())
        );
    }

    #[test]
    fn different_entries_select_different_groups() {
        let ops = operators(50, 1);
        let a = select_group(&entry::genesis(), &ops, 1, 5).unwrap();
        let other = crate::beacon::bls::Signature(crate::beacon::bls::hash_to_g1(b"other"));
        let b = select_group(&other, &ops, 1, 5).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn refuses_impossible_selections() {
        let entry = entry::genesis();
        assert_eq!(
            select_group(&entry, &operators(3, 1), 1, 4),
            Err(SelectionError::NotEnoughTickets {
                available: 3,
                needed: 4
            })
        );
        assert_eq!(
            select_group(&entry, &operators(3, 1), 0, 1),
            Err(SelectionError::ZeroMinimumStake)
        );
        assert_eq!(
            select_group(&entry, &operators(3, 1), 1, 0),
            Err(SelectionError::ZeroGroupSize)
        );
        assert_eq!(
            select_group(&entry, &operators(2, u128::MAX), 1, 1),
            Err(SelectionError::TooManyTickets(u128::MAX))
        );
        // Stake below the minimum earns no ticket.
        assert_eq!(
            select_group(&entry, &operators(9, 99), 100, 1),
            Err(SelectionError::NotEnoughTickets {
                available: 0,
                needed: 1
            })
        );
    }
}

//! Relay-entry signing for one member of one group, as a sans-IO state machine.
//!
//! # Overview
//! Asked for an entry after `previous`, every member broadcasts its signature share
//! σᵢ = xᵢ·H(previous). Members submit in turn: the seat
//! [`first_submitter`](super::entry::first_submitter)`(previous)` first, at the request's block,
//! then one `step` later for each seat after it, until the entry is on chain; a member whose
//! turn has not come when it is stands down. Each member collects the others' shares; once T
//! are in and its turn is at most a block away, it checks them in one batched pairing equation
//! (halved down to the bad shares only if it fails, see
//! [`threshold::combine_verified`](super::threshold::combine_verified)) and combines T valid
//! ones into the entry, submitted at once when its turn has come (the first submitter's is the
//! request's block, so its T-th share makes the submission). So in a healthy group one member
//! combines, not N: in a group of 64 on shared cores, N batched checks of T shares were most
//! of an entry's time.
//!
//! # Usage
//! ```text
//! let mut signing = EntrySigning::new(keys, previous, request_block, step, seed);
//! while let Some(action) = signing.poll_action() { … }   // Broadcast(own share) first
//! signing.handle_share(from, &bytes);                    // each share: Submit at T in its turn
//! signing.handle_block(block);                           // each block: Submit when its turn
//! signing.entry_on_chain();                              // someone submitted: stand down
//! ```

use std::collections::{BTreeMap, VecDeque};

use rand::SeedableRng;

use super::{
    bls::{PublicKey, SecretKey, Signature},
    dkg::{Index, Outcome},
    entry::{entry_message, first_submitter},
    threshold::{combine_verified, CandidateShare, CombineError},
};

/// What a member of a group holds after its DKG: enough to sign and to check others.
#[derive(Debug, Clone)]
pub struct GroupKeys {
    pub threshold: usize,
    /// N, the group's seats.
    pub size: u32,
    pub group_public_key: PublicKey,
    /// The public key share of every member whose shares count.
    pub public_key_shares: BTreeMap<Index, PublicKey>,
    pub index: Index,
    pub share: SecretKey,
}

impl GroupKeys {
    /// A DKG's outcome, for a group of `size` seats and threshold `threshold`.
    pub fn from_outcome(outcome: &Outcome, size: u32, threshold: usize) -> Self {
        Self {
            threshold,
            size,
            group_public_key: outcome.group_public_key,
            public_key_shares: outcome.public_key_shares.clone(),
            index: outcome.index,
            share: outcome.share.clone(),
        }
    }
}

/// Why a share was refused; the sender is to be penalised (except for `Late`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareRefusal {
    /// Not a point (or the identity).
    #[error("malformed share: {0}")]
    Malformed(String),
    /// The sender has no public key share in this group (not a member, or misbehaved in DKG).
    #[error("seat {0} holds no share in this group")]
    NotAMember(Index),
    /// A second, different share from the same seat; the first one counts (shares are only
    /// compared, not checked, until this member combines).
    #[error("a second, different share")]
    Duplicate,
    /// It does not verify against the sender's public key share.
    #[error("share does not verify against its public key share")]
    Invalid,
    /// It came after the entry was made (ignored, not an offence).
    #[error("the entry is already made")]
    Late,
}

impl ShareRefusal {
    /// A short stable name for counters and JSON.
    pub fn reason(&self) -> &'static str {
        match self {
            ShareRefusal::Malformed(_) => "malformed",
            ShareRefusal::NotAMember(_) => "non_member",
            ShareRefusal::Duplicate => "duplicate",
            ShareRefusal::Invalid => "invalid_signature",
            ShareRefusal::Late => "late",
        }
    }
}

/// What the machine asks of its driver.
#[derive(Debug, Clone)]
pub enum SigningAction {
    /// Broadcast this member's share (the EIP-197 G1 bytes of σᵢ).
    Broadcast { index: Index, share: Signature },
    /// A share was refused.
    Refused { member: Index, reason: ShareRefusal },
    /// The entry, combined from `signers`' shares and verified under the group key.
    Entry {
        entry: Signature,
        signers: Vec<Index>,
    },
    /// This member's turn: submit the entry to the chain.
    Submit { entry: Signature },
}

/// One member's signing of one entry.
pub struct EntrySigning {
    keys: GroupKeys,
    message: [u8; 64],
    request_block: u64,
    step: u64,
    /// The seat that submits first, from the previous entry.
    first: Index,
    /// The latest block seen.
    head: u64,
    shares: BTreeMap<Index, Signature>,
    entry: Option<Signature>,
    /// Whether this member has submitted or stood down.
    over: bool,
    rng: rand::rngs::StdRng,
    actions: VecDeque<SigningAction>,
}

impl EntrySigning {
    /// Starts signing the entry after `previous`, requested at `request_block`; submitters
    /// follow each other every `step` blocks. `seed` drives the batch checks' random weights.
    /// This member's own share is queued for broadcast at once.
    pub fn new(
        keys: GroupKeys,
        previous: &Signature,
        request_block: u64,
        step: u64,
        seed: [u8; 32],
    ) -> Self {
        let message = entry_message(previous);
        let first = first_submitter(previous, keys.size);
        let own = keys.share.sign(&message);
        let mut actions = VecDeque::new();
        actions.push_back(SigningAction::Broadcast {
            index: keys.index,
            share: own,
        });
        let mut shares = BTreeMap::new();
        shares.insert(keys.index, own);
        let mut signing = Self {
            keys,
            message,
            request_block,
            step,
            first,
            head: request_block,
            shares,
            entry: None,
            over: false,
            rng: rand::rngs::StdRng::from_seed(seed),
            actions,
        };
        signing.try_combine();
        signing.try_submit();
        signing
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<SigningAction> {
        self.actions.pop_front()
    }

    /// The entry, once combined.
    pub fn entry(&self) -> Option<&Signature> {
        self.entry.as_ref()
    }

    /// The next block this member acts at, until it is over: a block before its turn it
    /// combines (if T shares are in), at its turn it submits.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.over {
            return None;
        }
        let at = self.submission_block();
        Some(if self.entry.is_some() {
            at
        } else {
            at.saturating_sub(1).max(self.head)
        })
    }

    /// A share from seat `from` (as the net layer authenticated it), as its 64 bytes.
    pub fn handle_share(&mut self, from: Index, bytes: &[u8]) {
        if let Err(reason) = self.take_share(from, bytes) {
            self.actions.push_back(SigningAction::Refused {
                member: from,
                reason,
            });
        }
    }

    fn take_share(&mut self, from: Index, bytes: &[u8]) -> Result<(), ShareRefusal> {
        let share =
            Signature::from_bytes(bytes).map_err(|e| ShareRefusal::Malformed(e.to_string()))?;
        if !self.keys.public_key_shares.contains_key(&from) {
            return Err(ShareRefusal::NotAMember(from));
        }
        if let Some(kept) = self.shares.get(&from) {
            return if *kept == share {
                Ok(())
            } else {
                Err(ShareRefusal::Duplicate)
            };
        }
        if self.entry.is_some() {
            return Err(ShareRefusal::Late);
        }
        self.shares.insert(from, share);
        self.try_combine();
        // The T-th share of the member whose turn it is: submit now, not at the next block.
        self.try_submit();
        Ok(())
    }

    /// With T shares in and this member's turn at most a block away, checks them (batched)
    /// and combines; refuses the invalid ones.
    fn try_combine(&mut self) {
        if self.entry.is_some()
            || self.over
            || self.shares.len() < self.keys.threshold
            || self.head + 1 < self.submission_block()
        {
            return;
        }
        let candidates: Vec<CandidateShare> = self
            .shares
            .iter()
            .map(|(index, signature)| CandidateShare {
                index: *index,
                signature: *signature,
                public_key: self.keys.public_key_shares[index],
            })
            .collect();
        let rejected = match combine_verified(
            &self.message,
            self.keys.threshold,
            &candidates,
            &mut self.rng,
        ) {
            Ok(combined) => {
                self.entry = Some(combined.signature);
                self.actions.push_back(SigningAction::Entry {
                    entry: combined.signature,
                    signers: combined.used,
                });
                combined.rejected
            }
            Err(CombineError::NotEnoughShares { rejected, .. }) => rejected,
            Err(other) => unreachable!("shares are distinct and non-zero: {other}"),
        };
        for refused in rejected {
            self.shares.remove(&refused.index);
            self.actions.push_back(SigningAction::Refused {
                member: refused.index,
                reason: ShareRefusal::Invalid,
            });
        }
    }

    /// The seat that submits first.
    pub fn first_submitter(&self) -> Index {
        self.first
    }

    /// When this member submits: its place in seat order from the first submitter.
    pub fn submission_block(&self) -> u64 {
        let n = self.keys.size;
        let place = (self.keys.index + n - self.first) % n;
        self.request_block + u64::from(place) * self.step
    }

    /// The chain reached `block`: combine when the turn is near, submit when it has come.
    pub fn handle_block(&mut self, block: u64) {
        self.head = self.head.max(block);
        self.try_combine();
        self.try_submit();
    }

    /// Submits the entry once it is combined and this member's turn has come.
    fn try_submit(&mut self) {
        let Some(entry) = self.entry else { return };
        if !self.over && self.head >= self.submission_block() {
            self.over = true;
            self.actions.push_back(SigningAction::Submit { entry });
        }
    }

    /// The entry is on chain (someone's submission was accepted): nothing left to do.
    pub fn entry_on_chain(&mut self) {
        self.over = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beacon::{entry::genesis, threshold::deal};

    /// Every member's signing of the entry after genesis in a dealt 7/4 group.
    fn group() -> (Vec<EntrySigning>, PublicKey) {
        let dealing = deal(7, 4, &mut rand::thread_rng()).unwrap();
        let shares: BTreeMap<Index, PublicKey> = dealing
            .shares
            .iter()
            .map(|s| (s.index, s.public_key))
            .collect();
        let members = dealing
            .shares
            .iter()
            .map(|s| {
                let keys = GroupKeys {
                    threshold: 4,
                    size: 7,
                    group_public_key: dealing.group_public_key,
                    public_key_shares: shares.clone(),
                    index: s.index,
                    share: s.secret.clone(),
                };
                EntrySigning::new(keys, &genesis(), 100, 3, [s.index as u8; 32])
            })
            .collect();
        (members, dealing.group_public_key)
    }

    fn own_share(signing: &mut EntrySigning) -> Signature {
        match signing.poll_action() {
            Some(SigningAction::Broadcast { share, .. }) => share,
            other => panic!("{other:?}"),
        }
    }

    fn drain(signing: &mut EntrySigning) -> Vec<SigningAction> {
        std::iter::from_fn(|| signing.poll_action()).collect()
    }

    /// The seats in turn order from the first submitter, and the machines' positions.
    fn turn_order(members: &[EntrySigning]) -> Vec<usize> {
        let first = members[0].first_submitter() as usize;
        (0..members.len())
            .map(|place| (first - 1 + place) % members.len())
            .collect()
    }

    #[test]
    fn the_first_submitter_combines_at_exactly_t_valid_shares_and_the_entry_verifies() {
        let (mut members, group_key) = group();
        let shares: Vec<Signature> = members.iter_mut().map(own_share).collect();
        let order = turn_order(&members);
        let me = &mut members[order[0]];
        let others: Vec<usize> = order[1..].to_vec();
        me.handle_share(others[0] as Index + 1, &shares[others[0]].to_bytes());
        me.handle_share(others[1] as Index + 1, &shares[others[1]].to_bytes());
        assert!(me.entry().is_none(), "three of four");
        me.handle_share(others[2] as Index + 1, &shares[others[2]].to_bytes());
        let entry = *me.entry().expect("four of four");
        assert!(crate::beacon::entry::verify_entry(
            &group_key,
            &genesis(),
            &entry
        ));
        let mut signers: Vec<Index> = [order[0], others[0], others[1], others[2]]
            .iter()
            .map(|i| *i as Index + 1)
            .collect();
        signers.sort_unstable();
        let actions = drain(me);
        // Its turn is the request's block: it submits at once.
        assert!(matches!(
            &actions[..],
            [SigningAction::Entry { signers: used, .. }, SigningAction::Submit { .. }]
                if used == &signers
        ));
        // A share after the entry: late, not an offence to count against anyone else.
        me.handle_share(others[3] as Index + 1, &shares[others[3]].to_bytes());
        assert!(matches!(
            drain(me)[..],
            [SigningAction::Refused {
                reason: ShareRefusal::Late,
                ..
            }]
        ));
    }

    #[test]
    fn invalid_duplicate_malformed_and_non_member_shares_are_refused_with_reasons() {
        let (mut members, _) = group();
        let shares: Vec<Signature> = members.iter_mut().map(own_share).collect();
        let order = turn_order(&members);
        let seat = |place: usize| order[place] as Index + 1;
        let share = |place: usize| shares[order[place]].to_bytes();
        let me = &mut members[order[0]];
        // The second seat sends the third's share: invalid for it (found when the batch fails).
        me.handle_share(seat(1), &share(2));
        me.handle_share(seat(1), &share(1));
        me.handle_share(8, &share(1));
        me.handle_share(seat(3), &[0u8; 10]);
        me.handle_share(seat(2), &share(2));
        me.handle_share(seat(3), &share(3));
        let refused: Vec<(Index, &'static str)> = drain(me)
            .into_iter()
            .filter_map(|a| match a {
                SigningAction::Refused { member, reason } => Some((member, reason.reason())),
                _ => None,
            })
            .collect();
        assert_eq!(
            refused,
            vec![
                (seat(1), "duplicate"),
                (8, "non_member"),
                (seat(3), "malformed"),
                (seat(1), "invalid_signature")
            ]
        );
        assert!(me.entry().is_none(), "only three valid");
        me.handle_share(seat(4), &share(4));
        assert!(me.entry().is_some());
    }

    #[test]
    fn members_submit_in_turn_from_the_first_submitter_and_stand_down_once_on_chain() {
        let (mut members, _) = group();
        let shares: Vec<Signature> = members.iter_mut().map(own_share).collect();
        let mut taken = Vec::new();
        for me in &mut members {
            for (i, share) in shares.iter().enumerate() {
                me.handle_share(i as Index + 1, &share.to_bytes());
            }
            taken.push(drain(me));
        }
        let order = turn_order(&members);
        // Seat order from the first, one step apart; the first is known before any entry.
        let first = members[0].first_submitter();
        assert_eq!(first, crate::beacon::entry::first_submitter(&genesis(), 7));
        for (place, i) in order.iter().enumerate() {
            assert_eq!(members[*i].submission_block(), 100 + 3 * place as u64);
            assert_eq!(members[*i].first_submitter(), first);
        }
        // Only the first combined; the others stand by with every share in.
        assert!(members[order[0]].entry().is_some());
        assert!(order[1..].iter().all(|i| members[*i].entry().is_none()));
        // The first submits with its T-th share, its turn being the request's block, not a
        // block later.
        assert!(matches!(
            taken[order[0]][..],
            [
                SigningAction::Entry { .. },
                SigningAction::Submit { .. },
                ..
            ]
        ));
        members[order[0]].handle_block(100);
        assert!(drain(&mut members[order[0]]).is_empty());
        // The second combines a block before its turn (103) and submits at it.
        let second = &mut members[order[1]];
        assert_eq!(second.poll_timeout(), Some(102));
        second.handle_block(101);
        assert!(second.entry().is_none() && drain(second).is_empty());
        second.handle_block(102);
        assert!(second.entry().is_some(), "combined a block early");
        assert!(matches!(drain(second)[..], [SigningAction::Entry { .. }]));
        assert_eq!(second.poll_timeout(), Some(103));
        second.handle_block(103);
        assert!(matches!(drain(second)[..], [SigningAction::Submit { .. }]));
        // The third's turn comes after the entry is on chain: it stands down uncombined.
        let third = &mut members[order[2]];
        third.entry_on_chain();
        third.handle_block(106);
        assert!(
            third.entry().is_none() && drain(third).is_empty(),
            "stood down"
        );
        assert_eq!(third.poll_timeout(), None);
    }
}

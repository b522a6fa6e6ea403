//! Relay-entry signing for one member of one group, as a sans-IO state machine.
//!
//! # Overview
//! Asked for an entry after `previous`, every member broadcasts its signature share
//! σᵢ = xᵢ·H(previous). Each member collects the others' shares; once T are in, it checks them
//! in one batched pairing equation (halved down to the bad shares only if it fails, see
//! [`threshold::combine_verified`](super::threshold::combine_verified)) and combines T valid ones into the entry. Members submit in
//! turn: the member at seat (random(entry) mod N) + 1 first, at the request's block, then one
//! `step` later for each seat after it, until the entry is on chain; a member whose turn has not
//! come when it is stands down.
//!
//! # Usage
//! ```text
//! let mut signing = EntrySigning::new(keys, previous, request_block, step, seed);
//! while let Some(action) = signing.poll_action() { … }   // Broadcast(own share) first
//! signing.handle_share(from, &bytes);                    // each share that arrives
//! signing.handle_block(block);                           // each block: Submit when its turn
//! signing.entry_on_chain();                              // someone submitted: stand down
//! ```

use std::collections::{BTreeMap, VecDeque};

use rand::SeedableRng;

use super::{
    bls::{PublicKey, SecretKey, Signature},
    dkg::{Index, Outcome},
    entry::{entry_message, random_mod},
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
    /// A second, different share from the same seat; the first one counts.
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
            shares,
            entry: None,
            over: false,
            rng: rand::rngs::StdRng::from_seed(seed),
            actions,
        };
        signing.try_combine();
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

    /// The block at which this member submits, once the entry is known and until it is over.
    pub fn poll_timeout(&self) -> Option<u64> {
        let entry = self.entry.as_ref()?;
        (!self.over).then(|| self.submission_block(entry))
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
        Ok(())
    }

    /// With T shares in, checks them (batched) and combines; refuses the invalid ones.
    fn try_combine(&mut self) {
        if self.entry.is_some() || self.shares.len() < self.keys.threshold {
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

    /// The seat that submits first for `entry`: (random(entry) mod N) + 1.
    pub fn first_submitter(&self, entry: &Signature) -> Index {
        random_mod(entry, u64::from(self.keys.size)) as Index + 1
    }

    /// When this member submits `entry`: its place in seat order from the first submitter.
    pub fn submission_block(&self, entry: &Signature) -> u64 {
        let n = self.keys.size;
        let place = (self.keys.index + n - self.first_submitter(entry)) % n;
        self.request_block + u64::from(place) * self.step
    }

    /// The chain reached `block`: submit if it is this member's turn.
    pub fn handle_block(&mut self, block: u64) {
        let Some(entry) = self.entry else { return };
        if !self.over && block >= self.submission_block(&entry) {
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

    #[test]
    fn the_entry_comes_at_exactly_t_valid_shares_and_verifies() {
        let (mut members, group_key) = group();
        let shares: Vec<Signature> = members.iter_mut().map(own_share).collect();
        let me = &mut members[0];
        me.handle_share(2, &shares[1].to_bytes());
        me.handle_share(3, &shares[2].to_bytes());
        assert!(me.entry().is_none(), "three of four");
        me.handle_share(4, &shares[3].to_bytes());
        let entry = *me.entry().expect("four of four");
        assert!(crate::beacon::entry::verify_entry(
            &group_key,
            &genesis(),
            &entry
        ));
        let actions = drain(me);
        assert!(
            matches!(&actions[..], [SigningAction::Entry { signers, .. }] if signers == &[1, 2, 3, 4])
        );
        // A share after the entry: late, not an offence to count against anyone else.
        me.handle_share(5, &shares[4].to_bytes());
        assert!(matches!(
            drain(me)[..],
            [SigningAction::Refused {
                member: 5,
                reason: ShareRefusal::Late
            }]
        ));
    }

    #[test]
    fn invalid_duplicate_malformed_and_non_member_shares_are_refused_with_reasons() {
        let (mut members, _) = group();
        let shares: Vec<Signature> = members.iter_mut().map(own_share).collect();
        let me = &mut members[0];
        // Seat 2 sends seat 3's share: invalid for seat 2 (found when the batch fails).
        me.handle_share(2, &shares[2].to_bytes());
        me.handle_share(2, &shares[1].to_bytes());
        me.handle_share(8, &shares[1].to_bytes());
        me.handle_share(4, &[0u8; 10]);
        me.handle_share(3, &shares[2].to_bytes());
        me.handle_share(4, &shares[3].to_bytes());
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
                (2, "duplicate"),
                (8, "non_member"),
                (4, "malformed"),
                (2, "invalid_signature")
            ]
        );
        assert!(me.entry().is_none(), "only three valid");
        me.handle_share(5, &shares[4].to_bytes());
        assert!(me.entry().is_some());
    }

    #[test]
    fn members_submit_in_turn_from_the_first_submitter_and_stand_down_once_on_chain() {
        let (mut members, _) = group();
        let shares: Vec<Signature> = members.iter_mut().map(own_share).collect();
        for me in &mut members {
            for (i, share) in shares.iter().enumerate() {
                me.handle_share(i as Index + 1, &share.to_bytes());
            }
            drain(me);
        }
        let entry = *members[0].entry().unwrap();
        let first = members[0].first_submitter(&entry);
        // Seat order from the first, one step apart.
        let mut blocks: Vec<(u64, Index)> = members
            .iter()
            .map(|m| (m.submission_block(&entry), m.keys.index))
            .collect();
        blocks.sort_unstable();
        assert_eq!(blocks[0], (100, first));
        for (place, (block, seat)) in blocks.iter().enumerate() {
            assert_eq!(*block, 100 + 3 * place as u64);
            assert_eq!(*seat, (first - 1 + place as Index) % 7 + 1);
        }
        // The first submits at its block; the second's turn comes after the entry is on
        // chain, so it stands down.
        let (first_member, second_member) = (first as usize - 1, first as usize % 7);
        members[first_member].handle_block(100);
        assert!(matches!(
            drain(&mut members[first_member])[..],
            [SigningAction::Submit { .. }]
        ));
        members[second_member].handle_block(102);
        assert!(
            drain(&mut members[second_member]).is_empty(),
            "not yet its turn"
        );
        members[second_member].entry_on_chain();
        members[second_member].handle_block(103);
        assert!(drain(&mut members[second_member]).is_empty(), "stood down");
        assert_eq!(members[second_member].poll_timeout(), None);
    }
}

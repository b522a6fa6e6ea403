//! The signing half of [`Member`]: one signing machine per seat for each request its groups
//! are asked, shares that come early, and the group's health once the entry is on chain.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Member, MemberAction, MemberEvent, Outgoing, Refusal, MAX_EARLY_SHARES};
use crate::{
    beacon::{
        bls::Signature,
        dkg::Index,
        entry,
        signing::{EntrySigning, ShareRefusal, SigningAction},
        wire::EntryShare,
    },
    chain::{GroupId, RequestId},
    identity::Address,
};

pub(super) struct SigningRun {
    pub(super) group: GroupId,
    previous: Signature,
    pub(super) seats: BTreeMap<Index, EntrySigning>,
    arrived: BTreeSet<Index>,
    signers: Vec<Index>,
    pub(super) submitted: bool,
}

impl Member {
    pub(super) fn start_signing(
        &mut self,
        request: RequestId,
        group: GroupId,
        previous: Signature,
        block: u64,
        relay_step: u64,
    ) {
        if self.signings.contains_key(&request) {
            return;
        }
        let Some(keys) = self.groups.get(&group).map(|g| g.keys.clone()) else {
            return;
        };
        let mut seats = BTreeMap::new();
        for (seat, keys) in keys {
            let seed = self.seed();
            seats.insert(
                seat,
                EntrySigning::new(keys, &previous, block, relay_step, seed),
            );
        }
        self.signings.insert(
            request,
            SigningRun {
                group,
                previous,
                seats,
                arrived: BTreeSet::new(),
                signers: Vec::new(),
                submitted: false,
            },
        );
        self.drain_signing(request);
        // Shares that came before this member saw the assignment.
        let previous_bytes = previous.to_bytes();
        let (mine, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.early)
            .into_iter()
            .partition(|(_, share)| share.previous == previous_bytes);
        self.early = rest;
        for (sender, share) in mine {
            let _ = self.take_share(request, sender, share);
        }
    }

    /// A signature share from `sender` (the envelope's proven author) on a group channel.
    pub fn handle_entry_share(
        &mut self,
        sender: Address,
        share: EntryShare,
    ) -> Result<(), Refusal> {
        let request = self
            .signings
            .iter()
            .find(|(_, run)| run.previous.to_bytes()[..] == share.previous[..])
            .map(|(request, _)| *request);
        match request {
            Some(request) => self.take_share(request, sender, share),
            None => {
                if share.previous.len() != 64 || share.share.len() != 64 {
                    return Err(Refusal {
                        sender,
                        reason: "malformed",
                    });
                }
                // Early (or late, after the entry: then it is never claimed and ages out).
                if self.early.len() == MAX_EARLY_SHARES {
                    self.early.pop_front();
                }
                self.early.push_back((sender, share));
                Ok(())
            }
        }
    }

    fn take_share(
        &mut self,
        request: RequestId,
        sender: Address,
        share: EntryShare,
    ) -> Result<(), Refusal> {
        let run = self.signings.get_mut(&request).expect("caller found it");
        let group = self
            .groups
            .get(&run.group)
            .expect("signing groups are kept");
        let seat = (share.index as usize).checked_sub(1);
        if seat.and_then(|seat| group.saved.members.get(seat)) != Some(&sender) {
            return Err(Refusal {
                sender,
                reason: "forged_seat",
            });
        }
        run.arrived.insert(share.index);
        for signing in run.seats.values_mut() {
            signing.handle_share(share.index, &share.share);
        }
        self.drain_signing(request);
        Ok(())
    }

    pub(super) fn drain_signing(&mut self, request: RequestId) {
        let Some(run) = self.signings.get_mut(&request) else {
            return;
        };
        let Some(group) = self.groups.get(&run.group) else {
            return;
        };
        let topic = group.topic.clone();
        let mut actions = Vec::new();
        loop {
            let mut any = false;
            let seats: Vec<Index> = run.seats.keys().copied().collect();
            for seat in seats {
                while let Some(action) =
                    run.seats.get_mut(&seat).and_then(EntrySigning::poll_action)
                {
                    any = true;
                    match action {
                        SigningAction::Broadcast { index, share } => {
                            run.arrived.insert(index);
                            let bytes = share.to_bytes();
                            for (other, signing) in run.seats.iter_mut() {
                                if *other != seat {
                                    signing.handle_share(index, &bytes);
                                }
                            }
                            actions.push(MemberAction::Send {
                                topic: topic.clone(),
                                context: format!("entry/{request}"),
                                message: Outgoing::Share(EntryShare {
                                    previous: run.previous.to_bytes().to_vec(),
                                    index,
                                    share: bytes.to_vec(),
                                }),
                            });
                        }
                        // A share after the entry was made is normal (T of N suffice).
                        SigningAction::Refused {
                            reason: ShareRefusal::Late,
                            ..
                        } => {}
                        SigningAction::Refused { member, reason } => {
                            let sender = group.saved.members[member as usize - 1];
                            actions.push(MemberAction::Report(MemberEvent::Refused {
                                sender,
                                reason: reason.reason().to_owned(),
                            }));
                        }
                        SigningAction::Entry { signers, .. } => {
                            if run.signers.is_empty() {
                                run.signers = signers;
                            }
                        }
                        SigningAction::Submit { entry } => {
                            // One submission per member; the next seat's turn retries.
                            if !run.submitted {
                                run.submitted = true;
                                actions.push(MemberAction::SubmitEntry {
                                    request,
                                    entry,
                                    submitter: seat,
                                });
                            }
                        }
                    }
                }
            }
            if !any {
                break;
            }
        }
        self.actions.extend(actions);
    }

    pub(super) fn end_signing(&mut self, request: RequestId) -> Option<SigningRun> {
        let run = self.signings.remove(&request)?;
        if let Some(group) = self.groups.get(&run.group) {
            self.actions.push_back(MemberAction::EndContext {
                topic: group.topic.clone(),
                context: format!("entry/{request}"),
            });
        }
        Some(run)
    }

    pub(super) fn entry_on_chain(
        &mut self,
        request: RequestId,
        group: GroupId,
        entry: Signature,
        previous: Signature,
        random: [u8; 32],
        block: u64,
    ) {
        let Some(mut run) = self.end_signing(request) else {
            return;
        };
        for signing in run.seats.values_mut() {
            signing.entry_on_chain();
        }
        let Some(my_group) = self.groups.get_mut(&group) else {
            return;
        };
        // Health: every seat whose share counts owed one before the entry was made.
        for seat in my_group.saved.public_key_shares.keys() {
            my_group.delivery.expected(*seat);
            if run.arrived.contains(seat) {
                my_group.delivery.on_time(*seat);
            }
        }
        let health = MemberEvent::GroupHealth {
            group,
            rate: my_group.delivery.group_rate().unwrap_or(1.0),
            below_half: my_group
                .delivery
                .below(0.5)
                .into_iter()
                .map(|(seat, _)| seat)
                .collect(),
        };
        let operators = my_group.saved.operators.clone();
        let ended = my_group.ended;
        debug_assert_eq!(entry::random_number(&entry), random);
        self.report(MemberEvent::Entry {
            request,
            group,
            entry,
            previous,
            random,
            signers: run.signers,
            operators,
            block,
        });
        self.report(health);
        if ended {
            self.end_group(group);
        }
    }
}

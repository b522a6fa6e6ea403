//! The DKG half of [`Member`]: one DKG machine per seat in a selection, and the group its
//! outcome makes.

use std::collections::BTreeMap;

use super::{Member, MemberAction, MemberEvent, MyGroup, Outgoing, Refusal, SavedGroup};
use crate::{
    beacon::{
        bls::PublicKey,
        dkg::{self, Dkg, DkgError, Index, Outcome, Phase},
        group::Delivery,
        signing::GroupKeys,
        wire::{dkg_from_proto, dkg_to_proto, DkgMessage},
    },
    chain::{DkgResult, GroupId},
    identity::Address,
    net::channel::{dkg_topic, group_topic},
};

/// A piece of DKG work, queued as it came ([`Member::run_dkg_work`]).
pub(super) enum DkgWork {
    /// A checked message for every seat, which arrived at `block`.
    Message { block: u64, message: dkg::Message },
    /// The chain reached `block`: a deadline may have passed.
    Block(u64),
}

pub(super) struct DkgRun {
    pub(super) topic: String,
    members: Vec<Address>,
    start_block: u64,
    result_step: u64,
    pub(super) seats: BTreeMap<Index, Dkg>,
    outcomes: BTreeMap<Index, Result<Box<Outcome>, DkgError>>,
    threshold: u32,
    /// The phase last reported (the slowest of this member's seats).
    phase: Option<Phase>,
    /// Every seat's machine has finished.
    finished: bool,
    /// When and what this member submits.
    pub(super) submission: Option<(u64, DkgResult)>,
    pub(super) submitted: bool,
}

impl Member {
    pub(super) fn start_dkg(
        &mut self,
        session: [u8; 32],
        parameters: dkg::Parameters,
        start_block: u64,
        result_step: u64,
    ) {
        if self.dkgs.contains_key(&session) {
            return;
        }
        let seats: Vec<Index> = parameters
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| **m == self.me)
            .map(|(i, _)| i as Index + 1)
            .collect();
        if seats.is_empty() {
            return;
        }
        let mut machines = BTreeMap::new();
        for seat in &seats {
            let seed = self.seed();
            match Dkg::new(
                parameters.clone(),
                *seat,
                self.key.clone(),
                session,
                start_block,
                seed,
            ) {
                Ok(dkg) => {
                    machines.insert(*seat, dkg);
                }
                Err(error) => {
                    // The chain's own parameters: nothing this member can do but say so.
                    self.report(MemberEvent::DkgFinished {
                        session,
                        ok: false,
                        error: Some(error.to_string()),
                        misbehaved: Vec::new(),
                        block: start_block,
                    });
                    return;
                }
            }
        }
        let topic = dkg_topic(&session);
        self.join(&topic, &parameters.members);
        self.report(MemberEvent::DkgJoined {
            session,
            seats,
            size: parameters.size(),
            start_block,
        });
        self.dkgs.insert(
            session,
            DkgRun {
                topic,
                members: parameters.members,
                start_block,
                result_step,
                threshold: parameters.threshold,
                seats: machines,
                outcomes: BTreeMap::new(),
                phase: None,
                finished: false,
                submission: None,
                submitted: false,
            },
        );
        self.drain_dkg(session, self.head);
    }

    /// A DKG message from `sender` (the envelope's proven author) on a DKG channel.
    pub fn handle_dkg_message(
        &mut self,
        sender: Address,
        message: DkgMessage,
    ) -> Result<(), Refusal> {
        let refuse = |reason| Refusal { sender, reason };
        let message = dkg_from_proto(message).map_err(|e| refuse(e.reason()))?;
        let run = self
            .dkgs
            .get(&message.session)
            .ok_or_else(|| refuse("unknown_session"))?;
        if run.members.get(message.sender as usize - 1) != Some(&sender) {
            return Err(refuse("forged_seat"));
        }
        self.dkg_work.push_back(DkgWork::Message {
            block: self.head,
            message,
        });
        Ok(())
    }

    /// Whether DKG work waits for [`Member::run_dkg_work`].
    pub fn has_dkg_work(&self) -> bool {
        !self.dkg_work.is_empty()
    }

    /// Does the oldest piece of DKG work: one message for every seat, or one block for every
    /// DKG. Messages and blocks are only checked and queued as they come, and the share checks
    /// and phase ends they cause happen here, so a driver can let signing, which must be fast,
    /// go first: a deferred message is still judged at the block it came in. Returns whether
    /// more waits.
    pub fn run_dkg_work(&mut self) -> bool {
        match self.dkg_work.pop_front() {
            Some(DkgWork::Message { block, message }) => {
                let session = message.session;
                if let Some(run) = self.dkgs.get_mut(&session) {
                    for dkg in run.seats.values_mut() {
                        dkg.handle_message(block, message.sender, message.clone());
                    }
                    self.drain_dkg(session, block);
                }
            }
            Some(DkgWork::Block(block)) => {
                let sessions: Vec<[u8; 32]> = self.dkgs.keys().copied().collect();
                for session in sessions {
                    if let Some(run) = self.dkgs.get_mut(&session) {
                        for dkg in run.seats.values_mut() {
                            dkg.handle_block(block);
                        }
                    }
                    self.drain_dkg(session, block);
                }
            }
            None => return false,
        }
        self.submit_due_results();
        self.has_dkg_work()
    }

    /// Does all the DKG work that waits.
    pub fn finish_dkg_work(&mut self) {
        while self.run_dkg_work() {}
    }

    /// Asks for the submission of every DKG result whose turn has come.
    pub(super) fn submit_due_results(&mut self) {
        let head = self.head;
        for run in self.dkgs.values_mut() {
            if let Some((at, result)) = &run.submission {
                if !run.submitted && head >= *at {
                    run.submitted = true;
                    let result = result.clone();
                    self.actions
                        .push_back(MemberAction::SubmitDkgResult(result));
                }
            }
        }
    }

    /// Takes every machine's actions of DKG `session` at `head`, handing each seat's
    /// broadcasts to this member's other seats, until none has anything left.
    pub(super) fn drain_dkg(&mut self, session: [u8; 32], head: u64) {
        let Some(run) = self.dkgs.get_mut(&session) else {
            return;
        };
        // Until the first phase's block, the other members may still be joining the channel:
        // the machines take what arrives, and what they would send waits.
        if head < run.start_block {
            return;
        }
        let mut reports = Vec::new();
        let mut sends = Vec::new();
        loop {
            let mut any = false;
            let seats: Vec<Index> = run.seats.keys().copied().collect();
            for seat in seats {
                while let Some(action) = run.seats.get_mut(&seat).and_then(Dkg::poll_action) {
                    any = true;
                    match action {
                        dkg::Action::Broadcast(message) => {
                            let context = format!("dkg/{:?}", message.body.phase());
                            sends.push((context, dkg_to_proto(&message)));
                            for (other, dkg) in run.seats.iter_mut() {
                                if *other != seat {
                                    dkg.handle_message(head, seat, message.clone());
                                }
                            }
                        }
                        dkg::Action::Misbehaved(m) => {
                            // Every seat of this member sees the same; the first one reports.
                            if run.seats.keys().next() == Some(&seat) {
                                reports.push(MemberEvent::Misbehaved {
                                    session,
                                    seat: m.member,
                                    phase: m.phase,
                                    offence: m.offence,
                                });
                            }
                        }
                        dkg::Action::Finished(result) => {
                            run.outcomes.insert(seat, result);
                        }
                    }
                }
            }
            if !any {
                break;
            }
        }
        let topic = run.topic.clone();
        // Progress: the slowest seat's phase.
        let phase = run
            .seats
            .iter()
            .filter(|(seat, _)| !run.outcomes.contains_key(seat))
            .filter_map(|(_, dkg)| dkg.phase())
            .min();
        let mut ended = Vec::new();
        if phase != run.phase {
            if let Some(old) = run.phase {
                ended.push(format!("dkg/{old:?}"));
            }
            if let Some(phase) = phase {
                reports.push(MemberEvent::DkgPhase {
                    session,
                    phase,
                    block: head,
                });
            }
            run.phase = phase;
        }
        let mut outcome_report = None;
        if !run.finished && run.outcomes.len() == run.seats.len() {
            run.finished = true;
            let best = run
                .outcomes
                .values()
                .filter_map(|o| o.as_ref().ok())
                .min_by_key(|o| o.submission_block(head.max(run.start_block), run.result_step));
            match best {
                Some(outcome) => {
                    let at = outcome.submission_block(head.max(run.start_block), run.result_step);
                    let result = DkgResult {
                        session,
                        group_key: outcome.group_public_key.to_bytes().to_vec(),
                        misbehaved: outcome.misbehaved.iter().copied().collect(),
                        signatures: outcome
                            .signatures
                            .iter()
                            .map(|(i, s)| (*i, crate::chain::rules::SignatureBytes(*s)))
                            .collect(),
                        submitter: outcome.index,
                    };
                    outcome_report = Some(MemberEvent::DkgFinished {
                        session,
                        ok: true,
                        error: None,
                        misbehaved: result.misbehaved.clone(),
                        block: head,
                    });
                    run.submission = Some((at, result));
                }
                None => {
                    let error = run
                        .outcomes
                        .values()
                        .find_map(|o| o.as_ref().err())
                        .map(ToString::to_string);
                    outcome_report = Some(MemberEvent::DkgFinished {
                        session,
                        ok: false,
                        error,
                        misbehaved: Vec::new(),
                        block: head,
                    });
                    // Nothing to submit; the chain says how the DKG ended.
                }
            }
            for phase in Phase::ALL {
                ended.push(format!("dkg/{phase:?}"));
            }
            ended.sort();
            ended.dedup();
        }
        for (context, message) in sends {
            self.actions.push_back(MemberAction::Send {
                topic: topic.clone(),
                context,
                message: Outgoing::Dkg(message),
            });
        }
        for context in ended {
            self.actions.push_back(MemberAction::EndContext {
                topic: topic.clone(),
                context,
            });
        }
        for report in reports.into_iter().chain(outcome_report) {
            self.report(report);
        }
    }

    pub(super) fn group_created(
        &mut self,
        group: GroupId,
        session: [u8; 32],
        group_key: PublicKey,
        operators: &[Address],
        members: &[Address],
        misbehaved: &[Index],
    ) {
        let Some(run) = self.dkgs.remove(&session) else {
            return;
        };
        self.leave(&run.topic);
        let threshold = run.threshold;
        let size = members.len() as u32;
        let mut keys = BTreeMap::new();
        let mut public_key_shares = BTreeMap::new();
        let mut mismatch = false;
        // A seat whose machine is still gathering result signatures (this member is slower
        // than the one that submitted) holds its outcome already.
        let outcomes = run.seats.iter().filter_map(|(seat, dkg)| {
            let finished = run.outcomes.get(seat).and_then(|o| o.as_deref().ok());
            Some((seat, finished.or(dkg.fixed_outcome())?))
        });
        for (seat, outcome) in outcomes {
            if misbehaved.contains(seat) {
                continue;
            }
            if outcome.group_public_key != group_key {
                mismatch = true;
                continue;
            }
            public_key_shares = outcome.public_key_shares.clone();
            keys.insert(
                *seat,
                GroupKeys::from_outcome(outcome, size, threshold as usize),
            );
        }
        if keys.is_empty() {
            if mismatch {
                self.report(MemberEvent::GroupMismatch { group });
            }
            return;
        }
        let saved = SavedGroup {
            group,
            group_key,
            threshold,
            members: members.to_vec(),
            operators: operators.to_vec(),
            public_key_shares,
            shares: keys
                .iter()
                .map(|(seat, k)| (*seat, hex::encode(k.share.to_bytes())))
                .collect(),
        };
        let topic = group_topic(members);
        self.join(&topic, members);
        self.report(MemberEvent::Group {
            group,
            group_key,
            seats: keys.keys().copied().collect(),
            operators: operators.to_vec(),
            restored: false,
        });
        self.actions
            .push_back(MemberAction::Persist(Box::new(saved.clone())));
        self.groups.insert(
            group,
            MyGroup {
                saved,
                topic,
                keys,
                delivery: Delivery::default(),
                ended: false,
            },
        );
    }
}

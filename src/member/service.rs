//! One operator's beacon membership as a sans-IO state machine: what the chain's events and
//! the group channels' messages mean for this member, and what it must do about them.
//!
//! # Overview
//! [`Member`] holds one network key. Fed the chain's events ([`Member::handle_events`], a page
//! at a time, in block order) and the messages its channels deliver
//! ([`Member::handle_dkg_message`], [`Member::handle_entry_share`]), it runs one DKG machine per
//! seat it holds in a selection, and one signing machine per seat for each request its groups
//! are asked, and asks its driver for I/O through [`MemberAction`]s: join or leave a channel,
//! send a message (republished until its context ends), submit a result or an entry, keep or
//! forget a group's key shares, report an event. Nothing here touches a socket, a clock or
//! storage: the block number is the only time, and randomness comes from the seed.
//!
//! - A member holding several seats runs a machine per seat and hands each seat's broadcasts
//!   to its other seats itself (pubsub does not deliver a node its own messages).
//! - A page of events is read whole before acting: a DKG or a request that the same page
//!   shows finished is not started, so a member replaying the chain after a restart does not
//!   speak in DKGs long over.
//! - Shares that arrive before this member has seen the request's assignment (its chain
//!   follower lags another member's) are kept, a bounded number, until it has.
//! - DKG messages and blocks are checked and queued as they come; the share checks and phase
//!   ends they cause wait for [`Member::run_dkg_work`], so the driver can let an entry's
//!   signing go first (a queued message is judged at the block it came in).
//! - Refusals ([`Refusal`]) name the author; the driver counts them. The DKG machines report
//!   misbehaviour as data ([`MemberEvent::Misbehaved`]), and the result lists it on chain.
//!
//! # Usage
//! ```text
//! let mut member = Member::new(network_key, seed);
//! member.restore(saved_group);                        // key shares kept from an earlier run
//! loop {
//!     let page = chain.events(from, wait).await?;     // whole blocks
//!     member.handle_events(page.through, &page.events);
//!     // … channel deliveries: member.handle_dkg_message(sender, message) / handle_entry_share
//!     while let Some(action) = member.poll_action() { … }
//!     if !member.is_signing() { member.run_dkg_work(); }   // a slice at a time
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::{
    beacon::{
        bls::{PublicKey, SecretKey, Signature},
        dkg::{Index, Offence, Parameters, Phase},
        group::Delivery,
        signing::GroupKeys,
        wire::{DkgMessage, EntryShare},
    },
    chain::{DkgResult, Event, GroupId, Logged, RequestId},
    identity::{Address, OperatorKey},
    net::channel::group_topic,
};

mod dkg;
mod signing;

use dkg::DkgRun;
use signing::SigningRun;

/// Early shares kept per member before their request's assignment is seen.
pub const MAX_EARLY_SHARES: usize = 1024;

/// A message this member sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Dkg(DkgMessage),
    Share(EntryShare),
}

/// What the member asks of its driver, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberAction {
    /// Open the channel `topic`, admitting these network keys.
    Join {
        topic: String,
        members: Vec<Address>,
    },
    /// Close the channel (no DKG or group of this member uses it any more).
    Leave { topic: String },
    /// Publish `message` on `topic`, and republish it (with backoff) until `context` ends.
    Send {
        topic: String,
        context: String,
        message: Outgoing,
    },
    /// Stop republishing what was sent in `context` on `topic`.
    EndContext { topic: String, context: String },
    /// Submit a DKG result; answer with [`Member::handle_submission`].
    SubmitDkgResult(DkgResult),
    /// Submit an entry; answer with [`Member::handle_submission`].
    SubmitEntry {
        request: RequestId,
        entry: Signature,
        submitter: Index,
    },
    /// Keep this group's key shares (storage), replacing an earlier copy.
    Persist(Box<SavedGroup>),
    /// The group no longer serves: its key shares may go.
    Forget(GroupId),
    /// Tell the user.
    Report(MemberEvent),
}

/// What happened, for the shell, the CLI and health metrics. JSON: `"event"` names the
/// variant in camelCase, fields in camelCase.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "event",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum MemberEvent {
    /// Selected: this member's seats start a DKG.
    DkgJoined {
        #[serde(with = "crate::chain::rules::hex32")]
        session: [u8; 32],
        seats: Vec<Index>,
        size: u32,
        start_block: u64,
    },
    /// Every seat of this member is now in `phase`.
    DkgPhase {
        #[serde(with = "crate::chain::rules::hex32")]
        session: [u8; 32],
        phase: Phase,
        block: u64,
    },
    /// The DKG ended for this member: with a result to submit, or an error.
    DkgFinished {
        #[serde(with = "crate::chain::rules::hex32")]
        session: [u8; 32],
        ok: bool,
        error: Option<String>,
        misbehaved: Vec<Index>,
        block: u64,
    },
    /// The chain took no result in time.
    DkgTimedOut {
        #[serde(with = "crate::chain::rules::hex32")]
        session: [u8; 32],
    },
    /// A group this member holds seats in is active: made by its DKG, or `restored` from
    /// kept key shares.
    Group {
        group: GroupId,
        group_key: PublicKey,
        seats: Vec<Index>,
        operators: Vec<Address>,
        restored: bool,
    },
    /// The member's DKG made another key than the chain took (it cannot sign for the group).
    GroupMismatch { group: GroupId },
    /// A seat misbehaved in a DKG (reported by this member's machines).
    Misbehaved {
        #[serde(with = "crate::chain::rules::hex32")]
        session: [u8; 32],
        seat: Index,
        phase: Phase,
        offence: Offence,
    },
    /// This member's group answered a request: the entry is on chain. `signers` are the
    /// seats whose shares this member combined (empty if it had not combined yet).
    Entry {
        request: RequestId,
        group: GroupId,
        entry: Signature,
        previous: Signature,
        #[serde(with = "crate::chain::rules::hex32")]
        random: [u8; 32],
        signers: Vec<Index>,
        operators: Vec<Address>,
        block: u64,
    },
    /// Delivery of the group's shares so far: the group's rate and members below half.
    /// (Not `health`: that name is the node's, for its relays.)
    GroupHealth {
        group: GroupId,
        rate: f64,
        below_half: Vec<Index>,
    },
    /// A message was refused (counted by reason).
    Refused { sender: Address, reason: String },
    /// The chain refused this member's submission.
    SubmissionRefused { what: &'static str, reason: String },
    /// The group stopped serving (expired or terminated).
    GroupEnded { group: GroupId },
    /// When the other seats' shares of an entry reached this member, measured from its own
    /// ([`crate::member::share_times`]); reported by the driver, which has the clock, right
    /// after the member's [`MemberEvent::Entry`].
    ShareTimes {
        request: RequestId,
        group: GroupId,
        shares: Vec<crate::member::share_times::ShareTime>,
    },
}

/// Why a message was refused. `sender` is its author as the envelope proved it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message from {sender} refused: {reason}")]
pub struct Refusal {
    pub sender: Address,
    pub reason: &'static str,
}

/// What a driver's submission came to: `Err(reason)` as the chain refused it.
pub type SubmissionResult = Result<(), String>;

/// Which submission [`Member::handle_submission`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submission {
    DkgResult { session: [u8; 32] },
    Entry { request: RequestId },
}

/// A group's key shares as kept in storage (JSON; the shares are secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedGroup {
    pub group: GroupId,
    pub group_key: PublicKey,
    pub threshold: u32,
    /// Network keys in seat order.
    pub members: Vec<Address>,
    pub operators: Vec<Address>,
    pub public_key_shares: BTreeMap<Index, PublicKey>,
    /// This member's seats and their secret shares (hex scalars).
    pub shares: BTreeMap<Index, String>,
}

struct MyGroup {
    saved: SavedGroup,
    topic: String,
    keys: BTreeMap<Index, GroupKeys>,
    delivery: Delivery,
    ended: bool,
}

/// One network key's membership; see the module docs.
pub struct Member {
    key: OperatorKey,
    me: Address,
    rng: rand::rngs::StdRng,
    head: u64,
    dkgs: BTreeMap<[u8; 32], DkgRun>,
    groups: BTreeMap<GroupId, MyGroup>,
    signings: BTreeMap<RequestId, SigningRun>,
    /// Shares whose request this member has not seen assigned yet, by the entry they extend.
    early: VecDeque<(Address, EntryShare)>,
    /// Channels open, with how many of this member's DKGs and groups use each.
    topics: BTreeMap<String, usize>,
    /// DKG work not yet done, in arrival order ([`Member::run_dkg_work`]).
    dkg_work: VecDeque<dkg::DkgWork>,
    actions: VecDeque<MemberAction>,
}

impl Member {
    /// A member with `key` as its network key; `seed` (32 bytes from a CSPRNG) drives every
    /// DKG's secrets and the batch checks' weights.
    pub fn new(key: OperatorKey, seed: [u8; 32]) -> Self {
        Self {
            me: key.address(),
            key,
            rng: rand::rngs::StdRng::from_seed(seed),
            head: 0,
            dkgs: BTreeMap::new(),
            groups: BTreeMap::new(),
            signings: BTreeMap::new(),
            early: VecDeque::new(),
            topics: BTreeMap::new(),
            dkg_work: VecDeque::new(),
            actions: VecDeque::new(),
        }
    }

    /// The network key's address.
    pub fn address(&self) -> Address {
        self.me
    }

    /// Whether this member is signing an entry (from its assignment until it is on chain).
    pub fn is_signing(&self) -> bool {
        !self.signings.is_empty()
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<MemberAction> {
        self.actions.pop_front()
    }

    /// The groups this member serves.
    pub fn groups(&self) -> impl Iterator<Item = &SavedGroup> {
        self.groups.values().filter(|g| !g.ended).map(|g| &g.saved)
    }

    /// Whether a DKG of this member runs.
    pub fn in_dkg(&self) -> bool {
        !self.dkgs.is_empty()
    }

    /// Serves a group from kept key shares (a restarted node, a reloaded tab). Refuses shares
    /// that do not match the group's public key shares.
    pub fn restore(&mut self, saved: SavedGroup) -> Result<(), String> {
        let size = saved.members.len() as u32;
        let mut keys = BTreeMap::new();
        for (index, share) in &saved.shares {
            let bytes = hex::decode(share).map_err(|e| format!("share {index}: {e}"))?;
            let share = SecretKey::from_bytes(&bytes).map_err(|e| format!("share {index}: {e}"))?;
            if saved.public_key_shares.get(index) != Some(&share.public_key()) {
                return Err(format!("share {index} does not match its public key share"));
            }
            keys.insert(
                *index,
                GroupKeys {
                    threshold: saved.threshold as usize,
                    size,
                    group_public_key: saved.group_key,
                    public_key_shares: saved.public_key_shares.clone(),
                    index: *index,
                    share,
                },
            );
        }
        let topic = group_topic(&saved.members);
        self.join(&topic, &saved.members);
        self.report(MemberEvent::Group {
            group: saved.group,
            group_key: saved.group_key,
            seats: keys.keys().copied().collect(),
            operators: saved.operators.clone(),
            restored: true,
        });
        self.groups.insert(
            saved.group,
            MyGroup {
                topic,
                keys,
                saved,
                delivery: Delivery::default(),
                ended: false,
            },
        );
        Ok(())
    }

    fn seed(&mut self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        seed
    }

    fn report(&mut self, event: MemberEvent) {
        self.actions.push_back(MemberAction::Report(event));
    }

    fn join(&mut self, topic: &str, members: &[Address]) {
        let users = self.topics.entry(topic.to_owned()).or_insert(0);
        *users += 1;
        if *users == 1 {
            let mut members = members.to_vec();
            members.sort();
            members.dedup();
            self.actions.push_back(MemberAction::Join {
                topic: topic.to_owned(),
                members,
            });
        }
    }

    fn leave(&mut self, topic: &str) {
        if let Some(users) = self.topics.get_mut(topic) {
            *users -= 1;
            if *users == 0 {
                self.topics.remove(topic);
                self.actions.push_back(MemberAction::Leave {
                    topic: topic.to_owned(),
                });
            }
        }
    }

    // ---- chain ----

    /// The chain's events of whole blocks through `through` (one [`EventPage`]), in order.
    ///
    /// [`EventPage`]: crate::chain::EventPage
    pub fn handle_events(&mut self, through: u64, events: &[Logged]) {
        // What this page shows already finished is not started.
        let mut finished_dkgs = BTreeSet::new();
        let mut finished_requests = BTreeSet::new();
        for logged in events {
            match &logged.event {
                Event::GroupCreated { session, .. } | Event::DkgTimedOut { session } => {
                    finished_dkgs.insert(*session);
                }
                Event::EntrySubmitted { request, .. } | Event::EntryTimedOut { request, .. } => {
                    finished_requests.insert(*request);
                }
                _ => {}
            }
        }
        for logged in events {
            self.head = self.head.max(logged.block);
            match &logged.event {
                Event::DkgStarted { session, .. } if finished_dkgs.contains(session) => {}
                Event::EntryAssigned { request, .. } if finished_requests.contains(request) => {}
                event => self.handle_event(logged.block, event),
            }
        }
        self.handle_block(through);
    }

    fn handle_event(&mut self, block: u64, event: &Event) {
        match event {
            Event::DkgStarted {
                session,
                members,
                threshold,
                start_block,
                phase_blocks,
                result_step,
                timeout_block,
                ..
            } => {
                if block < *timeout_block {
                    let parameters = Parameters {
                        members: members.clone(),
                        threshold: *threshold,
                        phase_blocks: *phase_blocks,
                    };
                    self.start_dkg(*session, parameters, *start_block, *result_step);
                }
            }
            Event::GroupCreated {
                group,
                session,
                group_key,
                operators,
                members,
                misbehaved,
                ..
            } => {
                // This member's outcome may still wait in its DKG work.
                self.finish_dkg_work();
                self.group_created(*group, *session, *group_key, operators, members, misbehaved)
            }
            Event::DkgTimedOut { session } => {
                if let Some(run) = self.dkgs.remove(session) {
                    self.leave(&run.topic);
                    self.report(MemberEvent::DkgTimedOut { session: *session });
                }
            }
            Event::EntryAssigned {
                request,
                group,
                previous,
                relay_step,
                ..
            } => self.start_signing(*request, *group, *previous, block, *relay_step),
            Event::EntrySubmitted {
                request,
                group,
                entry,
                previous,
                random,
                ..
            } => self.entry_on_chain(*request, *group, *entry, *previous, *random, block),
            Event::EntryTimedOut { request, group } => {
                self.end_signing(*request);
                // The group failed to answer: the chain terminated it.
                self.end_group(*group);
            }
            Event::GroupExpired { group } => {
                // A request it is still answering keeps it until the entry is on chain.
                if self.signings.values().any(|s| s.group == *group) {
                    if let Some(g) = self.groups.get_mut(group) {
                        g.ended = true;
                    }
                } else {
                    self.end_group(*group);
                }
            }
            Event::OperatorStaked { .. }
            | Event::NetworkKeyRegistered { .. }
            | Event::EntryRequested { .. } => {}
        }
    }

    /// The chain's head reached `head`: submission turns now, DKG phase deadlines as DKG work
    /// ([`Member::run_dkg_work`]).
    pub fn handle_block(&mut self, head: u64) {
        self.head = self.head.max(head);
        if !self.dkgs.is_empty() {
            self.dkg_work.push_back(dkg::DkgWork::Block(head));
        }
        self.submit_due_results();
        let requests: Vec<RequestId> = self.signings.keys().copied().collect();
        for request in requests {
            if let Some(run) = self.signings.get_mut(&request) {
                for signing in run.seats.values_mut() {
                    signing.handle_block(head);
                }
            }
            self.drain_signing(request);
        }
    }

    /// The chain's answer to a submission this member made.
    pub fn handle_submission(&mut self, submission: Submission, result: SubmissionResult) {
        let Err(reason) = result else { return };
        let what = match submission {
            Submission::DkgResult { session } => {
                // Not yet its turn by the chain's count: try again at the next block.
                if reason == "not_your_turn" {
                    if let Some(run) = self.dkgs.get_mut(&session) {
                        run.submitted = false;
                    }
                }
                "dkg_result"
            }
            Submission::Entry { request } => {
                if reason == "not_your_turn" {
                    if let Some(run) = self.signings.get_mut(&request) {
                        run.submitted = false;
                    }
                }
                "entry"
            }
        };
        // Someone else was first: the normal end of a race, not worth a report.
        if reason != "already_submitted" && reason != "already_served" {
            self.report(MemberEvent::SubmissionRefused { what, reason });
        }
    }

    // ---- groups ----

    fn end_group(&mut self, group: GroupId) {
        if let Some(g) = self.groups.remove(&group) {
            self.leave(&g.topic);
            self.actions.push_back(MemberAction::Forget(group));
            self.report(MemberEvent::GroupEnded { group });
        }
    }
}

//! Runs a [`Member`] over a running node and a chain: the I/O half of the member service.
//!
//! # Overview
//! [`run`] follows the chain's events with long polls, opens a [`Channel`] for every DKG and
//! group the member joins (admitting only their network keys), feeds the channels' messages
//! to the member, publishes what it sends (republished with backoff until its context ends,
//! so a message published before the mesh formed still arrives), ticks every channel once
//! per block, submits what it submits, keeps its key shares in a [`GroupStore`], and hands
//! every [`MemberEvent`] to the caller. The member's DKG work runs in short slices, and not
//! while any member in the process signs an entry ([`priority`]), at most a second behind.
//! It uses only the Channel API and the [`BeaconChain`] trait, never the swarm, so the same
//! driver runs natively and in a tab.
//!
//! Channels hold non-`Send` futures: run it on a local executor (natively a
//! `tokio::task::LocalSet`, in a tab the page's event loop). It ends when the node stops or
//! the future is dropped.
//!
//! [`enrol`] makes a key a member the chain can select first: it registers a wallet's session
//! key (from its attestation) or asks a dev chain's faucet to stake a native operator.
//!
//! # Usage
//! ```text
//! let view = member::driver::enrol(&*chain, &key, attestation.as_ref()).await?;
//! let store = KeyValueStore::new("keep-light/groups");
//! tokio::task::spawn_local(member::driver::serve(node, key, chain, Rc::new(store), |event| …));
//! ```

use std::{cell::RefCell, collections::BTreeMap, rc::Rc, sync::Arc, time::Duration};

use futures::{
    future::{self, Either, LocalBoxFuture},
    stream::FuturesUnordered,
    FutureExt, StreamExt,
};

use rand::RngCore;

use super::{
    priority,
    service::{Member, MemberAction, MemberEvent, Outgoing, SavedGroup, Submission},
    share_times::ShareTimes,
};
use crate::{
    beacon::wire::{DkgMessage, EntryShare, DKG_TYPE, ENTRY_SHARE_TYPE},
    chain::{BeaconChain, ChainError, EventPage, GroupId, OperatorView},
    identity::{attestation::Attestation, Address, OperatorKey},
    net::{
        channel::{Channel, ChannelConfig, Received, Registry},
        retransmit::Strategy,
        NodeHandle, PublishError,
    },
    platform::{self, Instant},
};

/// How long one events request waits for a block.
const EVENTS_WAIT: Duration = Duration::from_secs(10);
/// How long to wait before asking a chain that failed again.
const RETRY: Duration = Duration::from_secs(1);
/// How long DKG work runs before the driver lets the other tasks run (in a tab, the page).
const DKG_SLICE: Duration = Duration::from_millis(8);

/// Where a member keeps its groups' key shares between runs.
pub trait GroupStore {
    /// Every group kept (unreadable entries are skipped and reported by the caller's log).
    fn load(&self) -> Vec<SavedGroup>;
    fn save(&self, group: &SavedGroup) -> Result<(), String>;
    fn forget(&self, group: GroupId) -> Result<(), String>;
}

/// A [`GroupStore`] over the platform's small-value storage (the page's `localStorage`; an
/// in-process map natively): one key per group under `prefix`, and an index.
pub struct KeyValueStore {
    prefix: String,
}

impl KeyValueStore {
    /// `prefix` should name the chain and the network key, so two identities in one page
    /// keep apart.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    fn index(&self) -> Vec<GroupId> {
        platform::load(&format!("{}/index", self.prefix))
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    fn write_index(&self, index: &[GroupId]) -> Result<(), String> {
        let text = serde_json::to_string(index).map_err(|e| e.to_string())?;
        platform::store(&format!("{}/index", self.prefix), &text)
    }
}

impl GroupStore for KeyValueStore {
    fn load(&self) -> Vec<SavedGroup> {
        self.index()
            .into_iter()
            .filter_map(|group| platform::load(&format!("{}/{group}", self.prefix)))
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect()
    }

    fn save(&self, group: &SavedGroup) -> Result<(), String> {
        let text = serde_json::to_string(group).map_err(|e| e.to_string())?;
        platform::store(&format!("{}/{}", self.prefix, group.group), &text)?;
        let mut index = self.index();
        if !index.contains(&group.group) {
            index.push(group.group);
            self.write_index(&index)?;
        }
        Ok(())
    }

    fn forget(&self, group: GroupId) -> Result<(), String> {
        let mut index = self.index();
        index.retain(|g| *g != group);
        self.write_index(&index)?;
        platform::store(&format!("{}/{group}", self.prefix), "")
    }
}

/// A message a channel handed over, for the member.
enum Incoming {
    Dkg(Address, DkgMessage),
    Share(Address, EntryShare),
}

type Inbox = Rc<RefCell<Vec<Incoming>>>;

/// Opens the channel of `topic`: DKG messages on DKG topics, entry shares on group topics.
async fn open(
    node: &NodeHandle,
    topic: &str,
    members: Vec<Address>,
    inbox: &Inbox,
) -> Result<Channel, PublishError> {
    let mut registry = Registry::new();
    if topic.starts_with("keep-light/dkg/") {
        let inbox = inbox.clone();
        registry.register(DKG_TYPE, move |m: Received<DkgMessage>| {
            inbox.borrow_mut().push(Incoming::Dkg(m.sender, m.message));
        });
    } else {
        let inbox = inbox.clone();
        registry.register(ENTRY_SHARE_TYPE, move |m: Received<EntryShare>| {
            inbox
                .borrow_mut()
                .push(Incoming::Share(m.sender, m.message));
        });
    }
    let config = ChannelConfig::new(topic).with_members(members);
    Channel::open(node, config, registry).await
}

/// What the driver waits for.
enum Woken {
    Events(Result<EventPage, ChainError>),
    Submitted(Submission, Result<(), String>),
    Message,
    Closed,
}

/// Makes `key` selectable: with a wallet's `attestation` (delegating to `key`), registers
/// `key` as the wallet operator's network key; without, `key` is its own operator and a dev
/// chain's faucet stakes it the minimum (a real chain refuses with `no_faucet`, and the stake
/// must come from elsewhere). Returns the operator's standing.
pub async fn enrol(
    chain: &dyn BeaconChain,
    key: &OperatorKey,
    attestation: Option<&Attestation>,
) -> Result<OperatorView, ChainError> {
    match attestation {
        Some(attestation) => chain.register_network_key(attestation.clone()).await,
        None => match chain.faucet(key.address()).await {
            Err(error) if error.refusal() == Some("no_faucet") => {
                chain.operator(key.address()).await
            }
            other => other,
        },
    }
}

/// Serves as the member whose network key is `key` (its DKG randomness fresh from the
/// platform's CSPRNG) until the node stops: [`run`] with a new [`Member`].
pub async fn serve(
    node: NodeHandle,
    key: OperatorKey,
    chain: Arc<dyn BeaconChain>,
    store: Rc<dyn GroupStore>,
    report: impl FnMut(MemberEvent),
) {
    let mut seed = [0u8; 32];
    platform::rng().fill_bytes(&mut seed);
    run(node, chain, Member::new(key, seed), store, report).await
}

/// Serves `member` until the node stops; see the module docs. Groups kept in `store` are
/// served from the start.
pub async fn run(
    node: NodeHandle,
    chain: Arc<dyn BeaconChain>,
    mut member: Member,
    store: Rc<dyn GroupStore>,
    mut report: impl FnMut(MemberEvent),
) {
    for saved in store.load() {
        if let Err(error) = member.restore(saved) {
            tracing::warn!(%error, "kept group shares refused");
        }
    }
    let mut signing = priority::Signing::default();
    let mut dkg_turn = DkgTurn::default();
    let inbox: Inbox = Rc::default();
    let mut channels: BTreeMap<String, Channel> = BTreeMap::new();
    let mut share_times = ShareTimes::default();
    let mut cursor = 0u64;
    let mut events = chain.events(cursor + 1, EVENTS_WAIT);
    let mut submissions: FuturesUnordered<
        LocalBoxFuture<'static, (Submission, Result<(), String>)>,
    > = FuturesUnordered::new();
    loop {
        // Act until the member has nothing more to say.
        loop {
            let mut moved = false;
            while let Some(action) = member.poll_action() {
                moved = true;
                match action {
                    MemberAction::Join { topic, members } => {
                        match open(&node, &topic, members, &inbox).await {
                            Ok(channel) => {
                                channels.insert(topic, channel);
                            }
                            // The node stopped.
                            Err(_) => return,
                        }
                    }
                    MemberAction::Leave { topic } => {
                        if let Some(channel) = channels.remove(&topic) {
                            channel.close();
                        }
                    }
                    MemberAction::Send {
                        topic,
                        context,
                        message,
                    } => {
                        let Some(channel) = channels.get_mut(&topic) else {
                            continue;
                        };
                        let sent = match &message {
                            Outgoing::Dkg(m) => {
                                channel
                                    .send_retransmitted(&context, DKG_TYPE, m, Strategy::Backoff)
                                    .await
                            }
                            Outgoing::Share(m) => {
                                share_times.sent(&m.previous, platform::now());
                                channel
                                    .send_retransmitted(
                                        &context,
                                        ENTRY_SHARE_TYPE,
                                        m,
                                        Strategy::Backoff,
                                    )
                                    .await
                            }
                        };
                        match sent {
                            // Nobody subscribed yet: the block ticks republish it.
                            Ok(()) | Err(PublishError::NoPeers) => {}
                            Err(PublishError::Stopped) => return,
                            Err(error) => tracing::warn!(%error, %topic, "member send failed"),
                        }
                    }
                    MemberAction::EndContext { topic, context } => {
                        if let Some(channel) = channels.get_mut(&topic) {
                            channel.end_context(&context);
                        }
                    }
                    MemberAction::SubmitDkgResult(result) => {
                        let submission = Submission::DkgResult {
                            session: result.session,
                        };
                        let call = chain.submit_dkg_result(result);
                        submissions.push(
                            async move { (submission, refusal(call.await.map(|_| ()))) }
                                .boxed_local(),
                        );
                    }
                    MemberAction::SubmitEntry {
                        request,
                        entry,
                        submitter,
                    } => {
                        let call =
                            chain.submit_entry(request, entry.to_bytes().to_vec(), submitter);
                        submissions.push(
                            async move {
                                (
                                    Submission::Entry { request },
                                    refusal(call.await.map(|_| ())),
                                )
                            }
                            .boxed_local(),
                        );
                    }
                    MemberAction::Persist(saved) => {
                        if let Err(error) = store.save(&saved) {
                            tracing::warn!(%error, group = saved.group, "cannot keep group shares");
                        }
                    }
                    MemberAction::Forget(group) => {
                        if let Err(error) = store.forget(group) {
                            tracing::warn!(%error, group, "cannot forget group shares");
                        }
                    }
                    MemberAction::Report(event) => {
                        let round = match &event {
                            MemberEvent::Entry {
                                request,
                                group,
                                previous,
                                ..
                            } => share_times.finish(&previous.to_bytes()).map(|shares| {
                                MemberEvent::ShareTimes {
                                    request: *request,
                                    group: *group,
                                    shares,
                                }
                            }),
                            _ => None,
                        };
                        report(event);
                        if let Some(round) = round {
                            report(round);
                        }
                    }
                }
            }
            let arrived = std::mem::take(&mut *inbox.borrow_mut());
            for incoming in arrived {
                moved = true;
                let result = match incoming {
                    Incoming::Dkg(sender, message) => member.handle_dkg_message(sender, message),
                    Incoming::Share(sender, share) => {
                        let (previous, seat) = (share.previous.clone(), share.index);
                        let taken = member.handle_entry_share(sender, share);
                        if taken.is_ok() {
                            share_times.arrived(&previous, seat, platform::now());
                        }
                        taken
                    }
                };
                if let Err(refusal) = result {
                    report(MemberEvent::Refused {
                        sender: refusal.sender,
                        reason: refusal.reason.to_owned(),
                    });
                }
            }
            if !moved {
                break;
            }
        }
        signing.set(member.is_signing());
        // DKG work in slices, while no member in the process signs: an entry's round is
        // short and its deadline near, a DKG phase long.
        if member.has_dkg_work() && dkg_turn.may_run() {
            let slice = platform::now();
            while member.run_dkg_work() && slice.elapsed() < DKG_SLICE && dkg_turn.may_run() {}
            platform::yield_now().await;
            continue;
        }
        let dkg_waits = member.has_dkg_work();

        let woken = {
            let messages = if channels.is_empty() {
                Either::Left(future::pending())
            } else {
                Either::Right(
                    future::select_all(channels.values_mut().map(|c| c.next().boxed_local()))
                        .map(|(next, _, _)| next),
                )
            };
            let submitted = if submissions.is_empty() {
                Either::Left(future::pending())
            } else {
                Either::Right(submissions.next())
            };
            let turn = if dkg_waits {
                Either::Right(future::select(
                    Box::pin(priority::done()),
                    platform::sleep(dkg_turn.left()),
                ))
            } else {
                Either::Left(future::pending())
            };
            futures::select_biased! {
                page = (&mut events).fuse() => Woken::Events(page),
                done = submitted.fuse() => match done {
                    Some((submission, result)) => Woken::Submitted(submission, result),
                    None => Woken::Message,
                },
                next = messages.fuse() => match next {
                    Some(_) => Woken::Message,
                    None => Woken::Closed,
                },
                _ = turn.fuse() => Woken::Message,
            }
        };
        match woken {
            Woken::Events(Ok(page)) => {
                let new_block = page.through > cursor;
                member.handle_events(page.through, &page.events);
                cursor = cursor.max(page.through);
                if new_block {
                    for channel in channels.values_mut() {
                        channel.tick().await;
                    }
                }
                events = chain.events(cursor + 1, EVENTS_WAIT);
            }
            Woken::Events(Err(error)) => {
                tracing::warn!(%error, "chain events");
                let chain = chain.clone();
                let from = cursor + 1;
                events = Box::pin(async move {
                    platform::sleep(RETRY).await;
                    chain.events(from, EVENTS_WAIT).await
                });
            }
            Woken::Submitted(submission, result) => member.handle_submission(submission, result),
            Woken::Message => {}
            // A channel ended: the node stopped.
            Woken::Closed => return,
        }
    }
}

/// When this driver's DKG work may run: while no member in the process signs, or once it has
/// waited [`priority::MAX_DEFER`] for a signing round that goes on (then until it ends).
#[derive(Default)]
struct DkgTurn {
    waiting_since: Option<Instant>,
}

impl DkgTurn {
    fn may_run(&mut self) -> bool {
        if !priority::signing() {
            self.waiting_since = None;
            return true;
        }
        let since = *self.waiting_since.get_or_insert_with(platform::now);
        since.elapsed() >= priority::MAX_DEFER
    }

    /// How long until the work runs anyway.
    fn left(&self) -> Duration {
        self.waiting_since.map_or(priority::MAX_DEFER, |since| {
            priority::MAX_DEFER.saturating_sub(since.elapsed())
        })
    }
}

/// A chain call's outcome as the member takes it: the refusal's reason, or the failure.
fn refusal(result: Result<(), ChainError>) -> Result<(), String> {
    result.map_err(|error| match error {
        ChainError::Refused { reason, .. } => reason,
        other => other.to_string(),
    })
}

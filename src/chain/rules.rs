//! The beacon contract's rules: operators and stakes, network keys, group selection, DKG
//! results, relay requests and entries — pure and block-driven, written as a contract is, so
//! a Solidity contract can mirror them line by line.
//!
//! # Overview
//! [`Rules`] is the contract's state. Its calls ([`Rules::faucet`],
//! [`Rules::register_network_key`], [`Rules::submit_dkg_result`], [`Rules::request_entry`],
//! [`Rules::submit_entry`]) succeed or fail with a [`CallError`] whose [`CallError::reason`] is
//! machine-readable, and they change nothing when they fail. What happened is told by
//! [`Event`]s, each logged with its block number.
//!
//! Blocks: `head` is the last mined block. Calls take effect in the pending block `head + 1`
//! and their events carry that number; [`Rules::mine`] seals it (its events become visible to
//! [`Rules::events`]) and applies the new pending block's deadlines. So a reader that has seen
//! everything up to `head` never misses an event, as with an Ethereum node's logs.
//!
//! The lifecycle (DESIGN.md section 5, keep-core v1's shape):
//! 1. Operators stake (seats = stake / minimum). A wallet operator registers its page's session
//!    key as its *network key* with a SIWE attestation; a native operator's network key is its
//!    own address. With the faucet on (dev chains), registering also stakes the minimum.
//! 2. Genesis: once at least N seats exist, a selection starts from the genesis entry:
//!    [`Event::DkgStarted`] with the session, the seats' operators and network keys, T, and
//!    the blocks members time their phases by.
//! 3. A DKG result signed (EIP-191) by at least H + (N−H)/2 seats' network keys is submitted
//!    by one of its signers in its turn (the signer at position p among the signers' indices
//!    from block `start + p·result_step`); the first valid one makes a new active group
//!    ([`Event::GroupCreated`]). No result by `start + dkg_timeout` ends it
//!    ([`Event::DkgTimedOut`]).
//! 4. A relay request ([`Rules::request_entry`]) is queued; the one at the front is assigned to
//!    the active group at index `random(previous entry) mod active groups`
//!    ([`Event::EntryAssigned`]). The group's members sign the previous entry; a member submits
//!    the entry in its turn (seat [`entry::first_submitter`]`(previous)` first, from the
//!    assignment's block, then one `relay_step` later per seat after it: known before the
//!    entry, so only the members whose turn is near combine shares). The chain checks it against the group key
//!    ([`Event::EntrySubmitted`]; the random number is keccak256 of the entry).
//! 5. Every accepted entry starts the next selection (unless a DKG is running). A selection
//!    also starts whenever no group is active and none runs (genesis, or after every group
//!    expired or failed), from the last entry.
//! 6. A request unserved `relay_timeout` blocks after its assignment is re-assigned; the group
//!    that failed is terminated ([`Event::EntryTimedOut`]). Groups expire after
//!    `lifetime.entries` entries or `lifetime.blocks` blocks ([`Event::GroupExpired`]); a
//!    request already assigned to one is still served by it.
//!
//! Submissions name their submitter by seat: on an EVM the contract reads `msg.sender`; here
//! the turn is checked against the claimed seat, and since the result or entry itself is
//! checked in full, a false claim can only reorder honest work, never forge it.
//!
//! # Usage
//! ```text
//! let mut rules = Rules::new(Config::dev())?;
//! rules.faucet(operator)?;                      // or register_network_key(attestation)
//! rules.mine(unix_seconds);                     // every block
//! for logged in rules.events(from_block, 100)? { … }
//! rules.submit_dkg_result(result)?;             // a member, in its turn
//! let request = rules.request_entry()?;
//! rules.submit_entry(request, &entry_bytes, seat)?;
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};

use super::EventPage;
use crate::{
    beacon::{
        bls::{DecodeError, PublicKey, Signature},
        dkg::{self, Index, MAX_MEMBERS},
        entry,
        group::Lifetime,
        selection::{self, Operator, SelectionError},
    },
    identity::{
        attestation::{self, Attestation, AttestationError},
        Address,
    },
};

/// A group's number, in the order groups were created (0 first).
pub type GroupId = u64;
/// A relay request's number, in the order requests were made (0 first).
pub type RequestId = u64;

/// Events kept for readers; older ones are dropped first ([`CallError::Pruned`]).
pub const MAX_EVENTS: usize = 100_000;
/// Served requests whose entries [`Rules::served`] still answers for.
pub const MAX_SERVED: usize = 10_000;

/// The contract's parameters.
///
/// Defaults ([`Config::dev`]): chain id 31337; minimum stake 1; groups of 5 with threshold 3;
/// the DKG starting 1 block after its event (time for the members to join its channel);
/// DKG phases of 4 blocks; result submitters 2 blocks apart; entry submitters 2 blocks apart;
/// relay timeout N·relay_step + 4 blocks; DKG timeout 7 phases + N·result_step + 4 blocks;
/// groups live 8 entries or 10,000 blocks; the faucet on; 32 queued requests; 4,096 operators.
#[derive(Debug, Clone)]
pub struct Config {
    chain_id: u64,
    minimum_stake: u128,
    group_size: u32,
    threshold: u32,
    join_blocks: u64,
    phase_blocks: u64,
    result_step: u64,
    relay_step: u64,
    relay_timeout: Option<u64>,
    dkg_timeout: Option<u64>,
    lifetime: Lifetime,
    faucet: bool,
    max_pending_requests: usize,
    max_operators: usize,
}

impl Config {
    /// A dev chain's parameters (listed on [`Config`]).
    pub fn dev() -> Self {
        Self {
            chain_id: 31337,
            minimum_stake: 1,
            group_size: 5,
            threshold: 3,
            join_blocks: 1,
            phase_blocks: 4,
            result_step: 2,
            relay_step: 2,
            relay_timeout: None,
            dkg_timeout: None,
            lifetime: Lifetime {
                entries: 8,
                blocks: 10_000,
            },
            faucet: true,
            max_pending_requests: 32,
            max_operators: 4096,
        }
    }

    pub fn with_chain_id(mut self, chain_id: u64) -> Self {
        self.chain_id = chain_id;
        self
    }
    pub fn with_minimum_stake(mut self, minimum: u128) -> Self {
        self.minimum_stake = minimum;
        self
    }
    /// N seats and threshold T.
    pub fn with_group(mut self, size: u32, threshold: u32) -> Self {
        self.group_size = size;
        self.threshold = threshold;
        self
    }
    /// Blocks between a DKG's start event and its first phase. Members subscribe to the DKG's
    /// channel when they see the event; a member that published at once would lose its first
    /// message to every member that had not joined yet (pubsub does not deliver a message
    /// twice, so republishing it does not reach them either).
    pub fn with_join_blocks(mut self, blocks: u64) -> Self {
        self.join_blocks = blocks;
        self
    }
    pub fn with_phase_blocks(mut self, blocks: u64) -> Self {
        self.phase_blocks = blocks;
        self
    }
    pub fn with_result_step(mut self, blocks: u64) -> Self {
        self.result_step = blocks;
        self
    }
    pub fn with_relay_step(mut self, blocks: u64) -> Self {
        self.relay_step = blocks;
        self
    }
    pub fn with_relay_timeout(mut self, blocks: u64) -> Self {
        self.relay_timeout = Some(blocks);
        self
    }
    pub fn with_dkg_timeout(mut self, blocks: u64) -> Self {
        self.dkg_timeout = Some(blocks);
        self
    }
    pub fn with_lifetime(mut self, lifetime: Lifetime) -> Self {
        self.lifetime = lifetime;
        self
    }
    /// Whether registering (and [`Rules::faucet`]) stakes the minimum, as a dev chain does.
    pub fn with_faucet(mut self, faucet: bool) -> Self {
        self.faucet = faucet;
        self
    }
    pub fn with_max_pending_requests(mut self, requests: usize) -> Self {
        self.max_pending_requests = requests;
        self
    }
    pub fn with_max_operators(mut self, operators: usize) -> Self {
        self.max_operators = operators;
        self
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }
    pub fn minimum_stake(&self) -> u128 {
        self.minimum_stake
    }
    pub fn group_size(&self) -> u32 {
        self.group_size
    }
    pub fn threshold(&self) -> u32 {
        self.threshold
    }
    pub fn join_blocks(&self) -> u64 {
        self.join_blocks
    }
    pub fn phase_blocks(&self) -> u64 {
        self.phase_blocks
    }
    pub fn result_step(&self) -> u64 {
        self.result_step
    }
    pub fn relay_step(&self) -> u64 {
        self.relay_step
    }
    pub fn lifetime(&self) -> Lifetime {
        self.lifetime
    }
    /// Blocks from an assignment until the request is re-assigned.
    pub fn relay_timeout(&self) -> u64 {
        self.relay_timeout
            .unwrap_or(u64::from(self.group_size) * self.relay_step + 4)
    }
    /// Blocks from a DKG's start until the chain gives up on it.
    pub fn dkg_timeout(&self) -> u64 {
        self.dkg_timeout.unwrap_or(
            dkg::Phase::ALL.len() as u64 * self.phase_blocks
                + u64::from(self.group_size) * self.result_step
                + 4,
        )
    }

    fn check(&self) -> Result<(), String> {
        let n = self.group_size;
        if !(2..=MAX_MEMBERS).contains(&n) {
            return Err(format!("group size must be 2..={MAX_MEMBERS}, got {n}"));
        }
        if self.threshold == 0 || self.threshold > n {
            return Err(format!("threshold must be 1..={n}, got {}", self.threshold));
        }
        if self.minimum_stake == 0 {
            return Err("minimum stake must be positive".into());
        }
        if self.phase_blocks == 0 || self.result_step == 0 || self.relay_step == 0 {
            return Err("phase and step lengths must be at least one block".into());
        }
        if self.relay_timeout() == 0 || self.dkg_timeout() == 0 {
            return Err("timeouts must be at least one block".into());
        }
        Ok(())
    }
}

/// Why a call failed. The chain's state is unchanged; each variant says what the caller
/// should do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// This chain has no faucet (not a dev chain): stake by other means.
    #[error("this chain has no faucet")]
    NoFaucet,
    /// The chain holds as many operators as it may: nothing to do but wait.
    #[error("the chain holds its limit of {0} operators")]
    TooManyOperators(usize),
    /// The attestation is invalid (ask the wallet for a new one if it expired).
    #[error("attestation refused: {0}")]
    BadAttestation(AttestationError),
    /// The attestation's peer is not a secp256k1 key, so it has no address.
    #[error("the attested peer has no secp256k1 key")]
    PeerWithoutAddress,
    /// The network key belongs to another operator (or is an operator itself): use another key.
    #[error("network key {0} is taken")]
    NetworkKeyTaken(Address),
    /// No DKG is running: the result came too late or too early.
    #[error("no DKG is running")]
    NoDkg,
    /// The result names another DKG than the running one (a replay, or a stale member).
    #[error("the result is for another DKG")]
    WrongSession,
    /// This DKG's result is already on chain (the submitter should stand down).
    #[error("this DKG's result is already on chain")]
    AlreadySubmitted,
    /// The seat is not in the group (out of range, or listed as misbehaved).
    #[error("seat {0} is not a member")]
    NotAMember(Index),
    /// The submitter did not sign the result it submits.
    #[error("seat {0} submits a result it did not sign")]
    SubmitterNotSigner(Index),
    /// The submitter's turn comes at `from_block`: submit then, if nobody has.
    #[error("not this seat's turn before block {from_block}")]
    NotYourTurn { from_block: u64 },
    /// The group public key is not a valid G2 point (fix the submitter).
    #[error("group key: {0}")]
    BadGroupKey(DecodeError),
    /// The misbehaved list is not strictly ascending seats of this group.
    #[error("misbehaved list: {0}")]
    BadMisbehaved(String),
    /// Fewer supporting signatures than the rule asks.
    #[error("{got} result signatures, {required} needed")]
    TooFewSignatures { got: usize, required: usize },
    /// Two signatures for one seat.
    #[error("two signatures for seat {0}")]
    DuplicateSigner(Index),
    /// A signature for a seat outside the group or listed as misbehaved.
    #[error("signature for seat {0}, which may not sign")]
    BadSigner(Index),
    /// A signature that does not recover to its seat's network key over the result hash.
    #[error("seat {0}'s result signature does not verify")]
    BadResultSignature(Index),
    /// Too many requests wait already: ask again later.
    #[error("{0} requests are queued already")]
    TooManyRequests(usize),
    /// No such request was ever made.
    #[error("request {0} is unknown")]
    UnknownRequest(RequestId),
    /// The request's entry is on chain already (the submitter should stand down).
    #[error("request {0} is already served")]
    AlreadyServed(RequestId),
    /// The request waits for its turn or for a group: no entry can answer it yet.
    #[error("request {0} is not assigned to a group yet")]
    NotAssigned(RequestId),
    /// The entry is not a valid G1 point.
    #[error("entry: {0}")]
    BadEntry(DecodeError),
    /// The entry is a point, but not the assigned group's signature over the previous entry.
    #[error("the entry does not verify under the assigned group's key")]
    InvalidEntry,
    /// Events before `oldest_block` are no longer kept: read from there.
    #[error("events before block {oldest_block} are no longer kept")]
    Pruned { oldest_block: u64 },
}

impl CallError {
    /// A short stable name for JSON-RPC error data and counters.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::NoFaucet => "no_faucet",
            CallError::TooManyOperators(_) => "too_many_operators",
            CallError::BadAttestation(_) => "bad_attestation",
            CallError::PeerWithoutAddress => "peer_without_address",
            CallError::NetworkKeyTaken(_) => "network_key_taken",
            CallError::NoDkg => "no_dkg",
            CallError::WrongSession => "wrong_session",
            CallError::AlreadySubmitted => "already_submitted",
            CallError::NotAMember(_) => "not_a_member",
            CallError::SubmitterNotSigner(_) => "submitter_not_signer",
            CallError::NotYourTurn { .. } => "not_your_turn",
            CallError::BadGroupKey(_) => "bad_group_key",
            CallError::BadMisbehaved(_) => "bad_misbehaved",
            CallError::TooFewSignatures { .. } => "too_few_signatures",
            CallError::DuplicateSigner(_) => "duplicate_signer",
            CallError::BadSigner(_) => "bad_signer",
            CallError::BadResultSignature(_) => "bad_result_signature",
            CallError::TooManyRequests(_) => "too_many_requests",
            CallError::UnknownRequest(_) => "unknown_request",
            CallError::AlreadyServed(_) => "already_served",
            CallError::NotAssigned(_) => "not_assigned",
            CallError::BadEntry(_) => "bad_entry",
            CallError::InvalidEntry => "invalid_entry",
            CallError::Pruned { .. } => "pruned",
        }
    }
}

/// What happened, as a contract's events say it. Serialised as JSON with `"event"` naming
/// the variant in camelCase, fields in camelCase, points and hashes as `0x` hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "event",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    /// An operator's stake changed.
    OperatorStaked {
        operator: Address,
        #[serde(with = "decimal")]
        stake: u128,
    },
    /// A wallet operator's session key is its network key until `expires_at` (unix seconds).
    NetworkKeyRegistered {
        operator: Address,
        network_key: Address,
        expires_at: u64,
    },
    /// A selection's members join the DKG's channel now and run its first phase from
    /// `start_block`.
    DkgStarted {
        #[serde(with = "hex32")]
        session: [u8; 32],
        /// The entry whose random number selected the seats.
        entry: Signature,
        /// Each seat's operator, in seat order.
        operators: Vec<Address>,
        /// Each seat's network key, in seat order (the DKG's members).
        members: Vec<Address>,
        threshold: u32,
        /// The first phase's first block; phase deadlines and result turns count from it.
        start_block: u64,
        phase_blocks: u64,
        result_step: u64,
        /// The block from which the chain refuses results and gives up.
        timeout_block: u64,
    },
    /// A DKG result was accepted: a new active group.
    GroupCreated {
        group: GroupId,
        #[serde(with = "hex32")]
        session: [u8; 32],
        group_key: PublicKey,
        operators: Vec<Address>,
        members: Vec<Address>,
        misbehaved: Vec<Index>,
        submitter: Index,
    },
    /// No valid result came in time.
    DkgTimedOut {
        #[serde(with = "hex32")]
        session: [u8; 32],
    },
    /// A random number was asked for.
    EntryRequested { request: RequestId },
    /// The request is the group's to answer: its members sign `previous`.
    EntryAssigned {
        request: RequestId,
        group: GroupId,
        group_key: PublicKey,
        previous: Signature,
        relay_step: u64,
        /// The block from which the request is re-assigned and the group terminated.
        timeout_block: u64,
    },
    /// The entry is on chain.
    EntrySubmitted {
        request: RequestId,
        group: GroupId,
        group_key: PublicKey,
        entry: Signature,
        previous: Signature,
        /// keccak256(entry), the uint256 handed to the requester.
        #[serde(with = "hex32")]
        random: [u8; 32],
        submitter: Index,
        request_block: u64,
    },
    /// The group did not answer in time: it is terminated and the request re-assigned.
    EntryTimedOut { request: RequestId, group: GroupId },
    /// The group served its lifetime and takes no new requests.
    GroupExpired { group: GroupId },
}

/// An event and the block it happened in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logged {
    pub block: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// An operator as the chain holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorView {
    #[serde(with = "decimal")]
    pub stake: u128,
    #[serde(with = "decimal")]
    pub minimum: u128,
    /// The key its envelopes and DKG signatures must carry; `None` while a registered session
    /// key has expired (the operator is not selected until it registers a new one).
    pub network_key: Option<Address>,
}

/// The running DKG.
#[derive(Debug, Clone)]
pub struct Selection {
    pub session: [u8; 32],
    pub entry: Signature,
    pub operators: Vec<Address>,
    /// The members (network keys in seat order), T and the phase length.
    pub parameters: dkg::Parameters,
    pub start_block: u64,
    pub timeout_block: u64,
}

/// Whether a group takes requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupStatus {
    Active,
    /// Served its lifetime.
    Expired,
    /// Failed to answer a request in time.
    Terminated,
}

/// A group as the chain records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRecord {
    pub id: GroupId,
    #[serde(with = "hex32")]
    pub session: [u8; 32],
    pub group_key: PublicKey,
    pub operators: Vec<Address>,
    pub members: Vec<Address>,
    pub misbehaved: Vec<Index>,
    pub created: u64,
    pub served: u64,
    pub status: GroupStatus,
}

/// A served request's entry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Served {
    pub request: RequestId,
    pub group: GroupId,
    pub entry: Signature,
    pub previous: Signature,
    #[serde(with = "hex32")]
    pub random: [u8; 32],
    pub request_block: u64,
    pub entry_block: u64,
}

/// A DKG result as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DkgResult {
    #[serde(with = "hex32")]
    pub session: [u8; 32],
    /// The group key, EIP-197 G2 bytes (checked by the chain).
    #[serde(with = "hex_bytes")]
    pub group_key: Vec<u8>,
    /// Seats that misbehaved, ascending.
    pub misbehaved: Vec<Index>,
    /// EIP-191 signatures of the result hash, by seat (r‖s‖v, v 27/28).
    pub signatures: Vec<(Index, SignatureBytes)>,
    /// The seat submitting (one of the signers).
    pub submitter: Index,
}

/// 65 signature bytes, `0x` hex in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureBytes(#[serde(with = "hex65")] pub [u8; 65]);

#[derive(Debug, Clone)]
struct OperatorRecord {
    stake: u128,
    registration: Option<Registration>,
}

#[derive(Debug, Clone, Copy)]
struct Registration {
    key: Address,
    expires_at: u64,
}

#[derive(Debug, Clone)]
struct Request {
    id: RequestId,
    requested: u64,
    assignment: Option<Assignment>,
}

#[derive(Debug, Clone, Copy)]
struct Assignment {
    group: GroupId,
    previous: Signature,
    block: u64,
}

/// The contract's state; see the module docs.
#[derive(Debug, Clone)]
pub struct Rules {
    config: Config,
    head: u64,
    /// Unix seconds of the head block (attestations are checked at this time).
    timestamp: u64,
    operators: BTreeMap<Address, OperatorRecord>,
    /// Registered network key → its operator.
    network_keys: BTreeMap<Address, Address>,
    entry: Signature,
    /// Whether the latest entry has started a selection already.
    entry_selected: bool,
    selection: Option<Selection>,
    groups: Vec<GroupRecord>,
    /// The front one is being served (or waits for a group); the rest wait their turn.
    requests: VecDeque<Request>,
    next_request: RequestId,
    served: BTreeMap<RequestId, Served>,
    events: VecDeque<Logged>,
}

impl Rules {
    /// A chain at block 0 whose only entry is the genesis entry.
    pub fn new(config: Config) -> Result<Self, String> {
        config.check()?;
        Ok(Self {
            config,
            head: 0,
            timestamp: 0,
            operators: BTreeMap::new(),
            network_keys: BTreeMap::new(),
            entry: entry::genesis(),
            entry_selected: false,
            selection: None,
            groups: Vec::new(),
            requests: VecDeque::new(),
            next_request: 0,
            served: BTreeMap::new(),
            events: VecDeque::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The last mined block.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The head block's unix seconds.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The block calls take effect in.
    fn pending(&self) -> u64 {
        self.head + 1
    }

    fn log(&mut self, event: Event) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        let block = self.pending();
        self.events.push_back(Logged { block, event });
    }

    /// Seals the pending block at `timestamp` (unix seconds; a clock that goes back is held at
    /// the last value) and applies the next one's deadlines. Returns the new head.
    pub fn mine(&mut self, timestamp: u64) -> u64 {
        self.head += 1;
        self.timestamp = self.timestamp.max(timestamp);
        let block = self.pending();
        self.expire_groups(block);
        self.time_out_dkg(block);
        self.time_out_request(block);
        self.start_selection();
        self.assign_request();
        self.head
    }

    /// The events of mined blocks from `from_block` on, oldest first, in whole blocks: no
    /// block is started once `limit` events are in (a block's events always come together).
    pub fn events(&self, from_block: u64, limit: usize) -> Result<EventPage, CallError> {
        if let Some(oldest) = self.events.front() {
            // Only a full log has dropped anything.
            if self.events.len() == MAX_EVENTS && from_block < oldest.block {
                return Err(CallError::Pruned {
                    oldest_block: oldest.block,
                });
            }
        }
        let start = self.events.partition_point(|e| e.block < from_block);
        let mut page = EventPage {
            through: self.head,
            events: Vec::new(),
        };
        for logged in self.events.range(start..) {
            if logged.block > self.head {
                break;
            }
            if let Some(last) = page.events.last() {
                if page.events.len() >= limit && logged.block != last.block {
                    page.through = last.block;
                    break;
                }
            }
            page.events.push(logged.clone());
        }
        Ok(page)
    }

    // ---- operators ----

    /// The stake, minimum and network key of `operator` (zero stake if unknown).
    pub fn operator(&self, operator: &Address) -> OperatorView {
        let record = self.operators.get(operator);
        OperatorView {
            stake: record.map_or(0, |r| r.stake),
            minimum: self.config.minimum_stake,
            network_key: self.network_key_of(operator),
        }
    }

    fn network_key_of(&self, operator: &Address) -> Option<Address> {
        match self.operators.get(operator).and_then(|r| r.registration) {
            None => Some(*operator),
            Some(registration) if registration.expires_at > self.timestamp => {
                Some(registration.key)
            }
            Some(_) => None,
        }
    }

    /// Sets `operator`'s stake: the staking contract's business, here an administrator's (the
    /// dev chain's `--stake`). 0 withdraws it.
    pub fn set_stake(&mut self, operator: Address, stake: u128) -> Result<(), CallError> {
        if !self.operators.contains_key(&operator) {
            if stake == 0 {
                return Ok(());
            }
            if self.operators.len() >= self.config.max_operators {
                return Err(CallError::TooManyOperators(self.config.max_operators));
            }
            if self.network_keys.contains_key(&operator) {
                return Err(CallError::NetworkKeyTaken(operator));
            }
        }
        let record = self.operators.entry(operator).or_insert(OperatorRecord {
            stake: 0,
            registration: None,
        });
        if record.stake == stake {
            return Ok(());
        }
        record.stake = stake;
        self.log(Event::OperatorStaked { operator, stake });
        Ok(())
    }

    /// Dev chains only: raises `operator`'s stake to the minimum if it has less.
    pub fn faucet(&mut self, operator: Address) -> Result<(), CallError> {
        if !self.config.faucet {
            return Err(CallError::NoFaucet);
        }
        let minimum = self.config.minimum_stake;
        if self.operator(&operator).stake >= minimum {
            return Ok(());
        }
        self.set_stake(operator, minimum)
    }

    /// Registers the attestation's session key as its operator's network key (replacing an
    /// earlier one), checked at the head block's time against this chain's id. With the faucet
    /// on, also stakes the operator the minimum.
    pub fn register_network_key(
        &mut self,
        attestation: &Attestation,
    ) -> Result<OperatorView, CallError> {
        let now = time::OffsetDateTime::from_unix_timestamp(self.timestamp as i64)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let expect = attestation::Expect::new().with_chain_id(self.config.chain_id);
        let verified =
            attestation::verify(attestation, now, &expect).map_err(CallError::BadAttestation)?;
        let operator = verified.operator;
        let key = Address::from_peer_id(&verified.peer_id).ok_or(CallError::PeerWithoutAddress)?;
        let taken = match self.network_keys.get(&key) {
            Some(holder) => *holder != operator,
            None => key != operator && self.operators.contains_key(&key),
        };
        if taken {
            return Err(CallError::NetworkKeyTaken(key));
        }
        if !self.operators.contains_key(&operator)
            && self.operators.len() >= self.config.max_operators
        {
            return Err(CallError::TooManyOperators(self.config.max_operators));
        }
        let expires_at = verified.expires_at.unix_timestamp().max(0) as u64;
        let record = self.operators.entry(operator).or_insert(OperatorRecord {
            stake: 0,
            registration: None,
        });
        if let Some(old) = record
            .registration
            .replace(Registration { key, expires_at })
        {
            self.network_keys.remove(&old.key);
        }
        self.network_keys.insert(key, operator);
        self.log(Event::NetworkKeyRegistered {
            operator,
            network_key: key,
            expires_at,
        });
        if self.config.faucet {
            self.faucet(operator)?;
        }
        Ok(self.operator(&operator))
    }

    /// Seats the eligible operators hold together.
    fn eligible(&self) -> Vec<Operator> {
        self.operators
            .iter()
            .filter(|(address, record)| {
                record.stake >= self.config.minimum_stake && self.network_key_of(address).is_some()
            })
            .map(|(address, record)| Operator {
                address: *address,
                stake: record.stake,
            })
            .collect()
    }

    // ---- selection and DKG ----

    /// The running DKG, if any.
    pub fn selection(&self) -> Option<&Selection> {
        self.selection.as_ref()
    }

    fn start_selection(&mut self) {
        if self.selection.is_some() || (self.entry_selected && self.has_active_group()) {
            return;
        }
        let operators = self.eligible();
        let size = self.config.group_size as usize;
        let seats =
            match selection::select_group(&self.entry, &operators, self.config.minimum_stake, size)
            {
                Ok(seats) => seats,
                // Too few seats yet: try again next block. Too many tickets cannot happen below
                // the operator limit unless stakes are huge; it waits for them to change.
                Err(
                    SelectionError::NotEnoughTickets { .. } | SelectionError::TooManyTickets(_),
                ) => return,
                Err(SelectionError::ZeroMinimumStake | SelectionError::ZeroGroupSize) => {
                    unreachable!("the config is checked")
                }
            };
        let operators: Vec<Address> = seats.iter().map(|s| s.operator).collect();
        let members: Vec<Address> = operators
            .iter()
            .map(|o| {
                self.network_key_of(o)
                    .expect("eligible operators have keys")
            })
            .collect();
        let start_block = self.pending() + self.config.join_blocks;
        let mut hasher = Keccak256::new();
        hasher.update(b"keep-light/dkg/1");
        hasher.update(self.entry.to_bytes());
        hasher.update(start_block.to_be_bytes());
        let session: [u8; 32] = hasher.finalize().into();
        let timeout_block = start_block + self.config.dkg_timeout();
        let selection = Selection {
            session,
            entry: self.entry,
            operators: operators.clone(),
            parameters: dkg::Parameters {
                members: members.clone(),
                threshold: self.config.threshold,
                phase_blocks: self.config.phase_blocks,
            },
            start_block,
            timeout_block,
        };
        self.entry_selected = true;
        self.selection = Some(selection);
        self.log(Event::DkgStarted {
            session,
            entry: self.entry,
            operators,
            members,
            threshold: self.config.threshold,
            start_block,
            phase_blocks: self.config.phase_blocks,
            result_step: self.config.result_step,
            timeout_block,
        });
    }

    fn time_out_dkg(&mut self, block: u64) {
        if let Some(selection) = &self.selection {
            if block >= selection.timeout_block {
                let session = selection.session;
                self.selection = None;
                self.log(Event::DkgTimedOut { session });
            }
        }
    }

    /// Checks `result` against the running DKG and, if it holds, makes its group. Checks run
    /// cheapest first: session, submitter and turn, encodings, then the signatures.
    pub fn submit_dkg_result(&mut self, result: &DkgResult) -> Result<GroupId, CallError> {
        let Some(selection) = &self.selection else {
            return Err(if self.groups.iter().any(|g| g.session == result.session) {
                CallError::AlreadySubmitted
            } else {
                CallError::NoDkg
            });
        };
        if selection.session != result.session {
            return Err(if self.groups.iter().any(|g| g.session == result.session) {
                CallError::AlreadySubmitted
            } else {
                CallError::WrongSession
            });
        }
        let parameters = &selection.parameters;
        let n = parameters.size();
        let mut misbehaved = BTreeSet::new();
        for (position, index) in result.misbehaved.iter().enumerate() {
            if *index == 0 || *index > n {
                return Err(CallError::BadMisbehaved(format!(
                    "seat {index} is not in 1..={n}"
                )));
            }
            if position > 0 && result.misbehaved[position - 1] >= *index {
                return Err(CallError::BadMisbehaved("not strictly ascending".into()));
            }
            misbehaved.insert(*index);
        }
        let submitter = result.submitter;
        if submitter == 0 || submitter > n || misbehaved.contains(&submitter) {
            return Err(CallError::NotAMember(submitter));
        }
        let mut signers = BTreeMap::new();
        for (index, signature) in &result.signatures {
            if *index == 0 || *index > n || misbehaved.contains(index) {
                return Err(CallError::BadSigner(*index));
            }
            if signers.insert(*index, signature.0).is_some() {
                return Err(CallError::DuplicateSigner(*index));
            }
        }
        if !signers.contains_key(&submitter) {
            return Err(CallError::SubmitterNotSigner(submitter));
        }
        let position = signers.range(..submitter).count() as u64;
        let from_block = selection.start_block + position * self.config.result_step;
        if self.pending() < from_block {
            return Err(CallError::NotYourTurn { from_block });
        }
        let required = parameters.signatures_required();
        if signers.len() < required {
            return Err(CallError::TooFewSignatures {
                got: signers.len(),
                required,
            });
        }
        let group_key = PublicKey::from_bytes(&result.group_key).map_err(CallError::BadGroupKey)?;
        let hash = dkg::result_hash(&group_key, &misbehaved);
        for (index, signature) in &signers {
            let member = parameters.members[*index as usize - 1];
            if dkg::result_signer(&hash, signature) != Some(member) {
                return Err(CallError::BadResultSignature(*index));
            }
        }

        let selection = self.selection.take().expect("checked above");
        let id = self.groups.len() as GroupId;
        let group = GroupRecord {
            id,
            session: selection.session,
            group_key,
            operators: selection.operators,
            members: selection.parameters.members,
            misbehaved: misbehaved.into_iter().collect(),
            created: self.pending(),
            served: 0,
            status: GroupStatus::Active,
        };
        self.log(Event::GroupCreated {
            group: id,
            session: group.session,
            group_key,
            operators: group.operators.clone(),
            members: group.members.clone(),
            misbehaved: group.misbehaved.clone(),
            submitter,
        });
        self.groups.push(group);
        self.assign_request();
        Ok(id)
    }

    // ---- groups ----

    /// Every group ever made, by id.
    pub fn groups(&self) -> &[GroupRecord] {
        &self.groups
    }

    fn has_active_group(&self) -> bool {
        self.groups.iter().any(|g| g.status == GroupStatus::Active)
    }

    fn expire_groups(&mut self, block: u64) {
        let lifetime = self.config.lifetime;
        let expired: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|g| {
                g.status == GroupStatus::Active && lifetime.expired(block, g.served, g.created)
            })
            .map(|g| g.id)
            .collect();
        for id in expired {
            self.groups[id as usize].status = GroupStatus::Expired;
            self.log(Event::GroupExpired { group: id });
        }
    }

    // ---- requests and entries ----

    /// The latest entry (genesis until the first is served).
    pub fn entry(&self) -> Signature {
        self.entry
    }

    /// Queues a request for a random number; it is assigned once it is at the front and a
    /// group is active.
    pub fn request_entry(&mut self) -> Result<RequestId, CallError> {
        if self.requests.len() >= self.config.max_pending_requests {
            return Err(CallError::TooManyRequests(self.requests.len()));
        }
        let id = self.next_request;
        self.next_request += 1;
        self.requests.push_back(Request {
            id,
            requested: self.pending(),
            assignment: None,
        });
        self.log(Event::EntryRequested { request: id });
        self.assign_request();
        Ok(id)
    }

    /// The entry that answered `request`, once on chain (the last [`MAX_SERVED`] are kept).
    pub fn served(&self, request: RequestId) -> Option<&Served> {
        self.served.get(&request)
    }

    /// The latest served entry.
    pub fn last_served(&self) -> Option<&Served> {
        self.served.values().next_back()
    }

    fn assign_request(&mut self) {
        let Some(front) = self.requests.front() else {
            return;
        };
        if front.assignment.is_some() {
            return;
        }
        let active: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|g| g.status == GroupStatus::Active)
            .map(|g| g.id)
            .collect();
        if active.is_empty() {
            return;
        }
        let previous = self.entry;
        let group = active[entry::random_mod(&previous, active.len() as u64) as usize];
        let block = self.pending();
        let request = front.id;
        self.requests[0].assignment = Some(Assignment {
            group,
            previous,
            block,
        });
        self.log(Event::EntryAssigned {
            request,
            group,
            group_key: self.groups[group as usize].group_key,
            previous,
            relay_step: self.config.relay_step,
            timeout_block: block + self.config.relay_timeout(),
        });
    }

    fn time_out_request(&mut self, block: u64) {
        let Some(front) = self.requests.front_mut() else {
            return;
        };
        let Some(assignment) = front.assignment else {
            return;
        };
        if block < assignment.block + self.config.relay_timeout() {
            return;
        }
        front.assignment = None;
        let request = front.id;
        self.groups[assignment.group as usize].status = GroupStatus::Terminated;
        self.log(Event::EntryTimedOut {
            request,
            group: assignment.group,
        });
        // Re-assigned below (`assign_request` in `mine`), or when a group exists again.
    }

    /// Checks `entry` (EIP-197 G1 bytes) as the answer to `request`, submitted by seat
    /// `submitter` of the assigned group, and puts it on chain.
    pub fn submit_entry(
        &mut self,
        request: RequestId,
        entry: &[u8],
        submitter: Index,
    ) -> Result<Served, CallError> {
        let current = self.requests.front().filter(|r| r.id == request);
        let Some(current) = current else {
            return Err(if self.requests.iter().any(|r| r.id == request) {
                CallError::NotAssigned(request)
            } else if request < self.next_request {
                // Served (its record may have been pruned already).
                CallError::AlreadyServed(request)
            } else {
                CallError::UnknownRequest(request)
            });
        };
        let Some(assignment) = current.assignment else {
            return Err(CallError::NotAssigned(request));
        };
        let entry = Signature::from_bytes(entry).map_err(CallError::BadEntry)?;
        let group = &self.groups[assignment.group as usize];
        let n = group.members.len() as u32;
        if submitter == 0 || submitter > n || group.misbehaved.contains(&submitter) {
            return Err(CallError::NotAMember(submitter));
        }
        let first = entry::first_submitter(&assignment.previous, n);
        let place = u64::from((submitter + n - first) % n);
        let from_block = assignment.block + place * self.config.relay_step;
        if self.pending() < from_block {
            return Err(CallError::NotYourTurn { from_block });
        }
        if !entry::verify_entry(&group.group_key, &assignment.previous, &entry) {
            return Err(CallError::InvalidEntry);
        }

        let requested = current.requested;
        self.requests.pop_front();
        let served = Served {
            request,
            group: assignment.group,
            entry,
            previous: assignment.previous,
            random: entry::random_number(&entry),
            request_block: requested,
            entry_block: self.pending(),
        };
        if self.served.len() == MAX_SERVED {
            self.served.pop_first();
        }
        self.served.insert(request, served);
        let group = &mut self.groups[assignment.group as usize];
        group.served += 1;
        let group_key = group.group_key;
        self.entry = entry;
        self.entry_selected = false;
        self.log(Event::EntrySubmitted {
            request,
            group: assignment.group,
            group_key,
            entry,
            previous: assignment.previous,
            random: served.random,
            submitter,
            request_block: requested,
        });
        // Expiry by entries shows at once; by blocks, at the next block.
        self.expire_groups(self.pending());
        self.start_selection();
        self.assign_request();
        Ok(served)
    }
}

/// u128 as a decimal string (JSON numbers are not safe past 2⁵³).
pub(crate) mod decimal {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// Byte strings as `0x` hex.
mod hex_bytes {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("0x{}", hex::encode(bytes)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let digits = text
            .strip_prefix("0x")
            .ok_or_else(|| D::Error::custom("hex must start with 0x"))?;
        hex::decode(digits).map_err(D::Error::custom)
    }
}

macro_rules! hex_array {
    ($name:ident, $len:literal) => {
        /// A fixed-length byte array as `0x` hex.
        pub(crate) mod $name {
            use serde::{de::Error, Deserializer, Serializer};

            pub fn serialize<S: Serializer>(
                bytes: &[u8; $len],
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                super::hex_bytes::serialize(bytes, serializer)
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(
                deserializer: D,
            ) -> Result<[u8; $len], D::Error> {
                let bytes = super::hex_bytes::deserialize(deserializer)?;
                <[u8; $len]>::try_from(bytes.as_slice()).map_err(|_| {
                    D::Error::custom(format!("expected {} bytes, got {}", $len, bytes.len()))
                })
            }
        }
    };
}
hex_array!(hex32, 32);
hex_array!(hex65, 65);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        beacon::{
            dkg::sign_result,
            threshold::{combine, deal, Dealing},
        },
        identity::OperatorKey,
    };
    use rand::{rngs::StdRng, SeedableRng};

    /// A dev chain of `operators` native operators (one seat each), groups of 5 / T 3.
    struct Fixture {
        rules: Rules,
        keys: BTreeMap<Address, OperatorKey>,
        rng: StdRng,
        clock: u64,
    }

    impl Fixture {
        fn new(operators: usize) -> Self {
            Self::with_config(operators, Config::dev())
        }

        fn with_config(operators: usize, config: Config) -> Self {
            let mut rules = Rules::new(config).unwrap();
            let mut keys = BTreeMap::new();
            for _ in 0..operators {
                let key = OperatorKey::generate();
                rules.faucet(key.address()).unwrap();
                keys.insert(key.address(), key);
            }
            Self {
                rules,
                keys,
                rng: StdRng::seed_from_u64(7),
                clock: 1_800_000_000,
            }
        }

        fn mine(&mut self, blocks: u64) {
            for _ in 0..blocks {
                self.clock += 1;
                self.rules.mine(self.clock);
            }
        }

        fn events(&self) -> Vec<Event> {
            self.rules
                .events(0, usize::MAX)
                .unwrap()
                .events
                .into_iter()
                .map(|l| l.event)
                .collect()
        }

        fn last_dkg(&self) -> Selection {
            self.rules.selection().expect("a DKG runs").clone()
        }

        /// What an honest group would submit for the running DKG: a dealt key, and the
        /// result hash signed by `signers`' network keys.
        fn result(&mut self, signers: &[Index], submitter: Index) -> (DkgResult, Dealing) {
            let selection = self.last_dkg();
            let n = selection.parameters.size();
            let dealing = deal(n, selection.parameters.threshold, &mut self.rng).unwrap();
            let hash = dkg::result_hash(&dealing.group_public_key, &BTreeSet::new());
            let signatures = signers
                .iter()
                .map(|index| {
                    let member = selection.parameters.members[*index as usize - 1];
                    (
                        *index,
                        SignatureBytes(sign_result(&self.keys[&member], &hash)),
                    )
                })
                .collect();
            let result = DkgResult {
                session: selection.session,
                group_key: dealing.group_public_key.to_bytes().to_vec(),
                misbehaved: Vec::new(),
                signatures,
                submitter,
            };
            (result, dealing)
        }

        /// Mines until the running DKG's first phase is the pending block (its join delay).
        fn mine_to_start(&mut self) {
            let start = self.last_dkg().start_block;
            while self.rules.pending() < start {
                self.mine(1);
            }
        }

        /// Runs the DKG to a group with every seat signing, submitted by seat 1.
        fn make_group(&mut self) -> (GroupId, Dealing) {
            self.mine_to_start();
            let (result, dealing) = self.result(&[1, 2, 3, 4, 5], 1);
            let id = self.rules.submit_dkg_result(&result).unwrap();
            (id, dealing)
        }
    }

    /// The entry a dealt group makes over `previous`, from shares of seats 1..=T.
    fn sign_entry(dealing: &Dealing, threshold: usize, previous: &Signature) -> Signature {
        let message = entry::entry_message(previous);
        let shares: Vec<_> = dealing.shares[..threshold]
            .iter()
            .map(|s| crate::beacon::threshold::SignatureShare {
                index: s.index,
                signature: s.sign(&message).signature,
            })
            .collect();
        combine(threshold, &shares).unwrap()
    }

    fn first_submitter(previous: &Signature, n: u32) -> Index {
        entry::first_submitter(previous, n)
    }

    #[test]
    fn genesis_waits_for_enough_seats_then_starts_one_dkg() {
        let mut chain = Fixture::new(4);
        chain.mine(3);
        assert!(
            chain.rules.selection().is_none(),
            "4 seats for a group of 5"
        );
        let fifth = OperatorKey::generate();
        chain.rules.faucet(fifth.address()).unwrap();
        chain.keys.insert(fifth.address(), fifth);
        chain.mine(1);
        let selection = chain.last_dkg();
        assert_eq!(selection.entry, entry::genesis());
        assert_eq!(selection.parameters.size(), 5);
        // Native operators: network key = operator address.
        assert_eq!(selection.operators, selection.parameters.members);
        let started = chain.rules.events(0, 100).unwrap().events;
        let logged = started
            .iter()
            .find(|l| matches!(l.event, Event::DkgStarted { .. }));
        // Logged in the block that was pending when it started, visible once mined.
        assert!(logged.is_none(), "not mined yet");
        chain.mine(1);
        let events = chain.rules.events(0, 100).unwrap().events;
        let started = events
            .iter()
            .find(|l| matches!(l.event, Event::DkgStarted { .. }))
            .unwrap();
        // The first phase runs a join delay after the event.
        let Event::DkgStarted { start_block, .. } = started.event else {
            unreachable!()
        };
        assert_eq!(start_block, selection.start_block);
        assert_eq!(
            started.block + chain.rules.config().join_blocks(),
            start_block
        );
        // Later blocks start no second DKG.
        chain.mine(3);
        assert_eq!(chain.last_dkg().session, selection.session);
    }

    #[test]
    fn an_honest_result_makes_a_group_and_a_replay_is_refused() {
        let mut chain = Fixture::new(6);
        chain.mine(1);
        let (result, dealing) = chain.result(&[1, 2, 3, 4], 2);
        // Nobody's turn comes during the join delay.
        let (first, _) = chain.result(&[1, 2, 3, 4], 1);
        assert!(matches!(
            chain.rules.submit_dkg_result(&first),
            Err(CallError::NotYourTurn { .. })
        ));
        chain.mine_to_start();
        // Seat 2 is second among the signers: one result step after the start.
        assert!(matches!(
            chain.rules.submit_dkg_result(&result),
            Err(CallError::NotYourTurn { .. })
        ));
        chain.mine(2);
        let id = chain.rules.submit_dkg_result(&result).unwrap();
        assert_eq!(id, 0);
        let group = &chain.rules.groups()[0];
        assert_eq!(group.group_key, dealing.group_public_key);
        assert_eq!(group.status, GroupStatus::Active);
        assert_eq!(
            chain.rules.submit_dkg_result(&result),
            Err(CallError::AlreadySubmitted)
        );
        chain.mine(1);
        assert!(chain
            .events()
            .iter()
            .any(|e| matches!(e, Event::GroupCreated { submitter: 2, .. })));
    }

    #[test]
    fn results_are_refused_with_their_reason_and_change_nothing() {
        let mut chain = Fixture::new(5);
        chain.mine(1);
        chain.mine_to_start();
        let (good, _) = chain.result(&[1, 2, 3, 4], 1);
        let selection = chain.last_dkg();
        let refused = |chain: &mut Fixture, result: &DkgResult| {
            let error = chain.rules.submit_dkg_result(result).unwrap_err();
            assert!(chain.rules.groups().is_empty());
            error.reason()
        };

        let mut r = good.clone();
        r.session[0] ^= 1;
        assert_eq!(refused(&mut chain, &r), "wrong_session");
        // N = 5, H = 3: 3 + 1 signatures needed.
        let (three, _) = chain.result(&[1, 2, 3], 1);
        assert_eq!(refused(&mut chain, &three), "too_few_signatures");
        let mut r = good.clone();
        r.signatures.push(r.signatures[0]);
        assert_eq!(refused(&mut chain, &r), "duplicate_signer");
        let mut r = good.clone();
        r.signatures[1].0 = 9;
        assert_eq!(refused(&mut chain, &r), "bad_signer");
        let mut r = good.clone();
        r.submitter = 5;
        assert_eq!(refused(&mut chain, &r), "submitter_not_signer");
        let mut r = good.clone();
        r.submitter = 0;
        assert_eq!(refused(&mut chain, &r), "not_a_member");
        // Seat 4 is fourth among the signers: its turn is 3 result steps after the start.
        let mut r = good.clone();
        r.submitter = 4;
        match chain.rules.submit_dkg_result(&r) {
            Err(CallError::NotYourTurn { from_block }) => {
                assert_eq!(from_block, selection.start_block + 3 * 2)
            }
            other => panic!("{other:?}"),
        }
        let mut r = good.clone();
        r.group_key.truncate(64);
        assert_eq!(refused(&mut chain, &r), "bad_group_key");
        let mut r = good.clone();
        r.group_key[5] ^= 1;
        assert_eq!(refused(&mut chain, &r), "bad_group_key");
        // Another valid key than the one signed.
        let mut r = good.clone();
        r.group_key = deal(5, 3, &mut chain.rng)
            .unwrap()
            .group_public_key
            .to_bytes()
            .to_vec();
        assert_eq!(refused(&mut chain, &r), "bad_result_signature");
        // The signers signed an empty misbehaved list; this one names seat 5.
        let mut r = good.clone();
        r.misbehaved = vec![5];
        assert_eq!(refused(&mut chain, &r), "bad_result_signature");
        let mut r = good.clone();
        r.misbehaved = vec![3, 2];
        assert_eq!(refused(&mut chain, &r), "bad_misbehaved");
        // A non-member's key signing for seat 3.
        let outsider = OperatorKey::generate();
        let mut r = good.clone();
        let hash = dkg::result_hash(
            &PublicKey::from_bytes(&good.group_key).unwrap(),
            &BTreeSet::new(),
        );
        r.signatures[2].1 = SignatureBytes(sign_result(&outsider, &hash));
        assert_eq!(refused(&mut chain, &r), "bad_result_signature");
        // A flipped bit in a signature.
        let mut r = good.clone();
        r.signatures[0].1 .0[10] ^= 0x40;
        assert_eq!(refused(&mut chain, &r), "bad_result_signature");

        // The honest result still goes through.
        chain.rules.submit_dkg_result(&good).unwrap();
    }

    #[test]
    fn a_dkg_without_a_result_times_out_and_starts_again() {
        let mut chain = Fixture::new(5);
        chain.mine(1);
        let first = chain.last_dkg();
        let timeout = chain.rules.config().dkg_timeout();
        chain.mine_to_start();
        chain.mine(timeout);
        let second = chain.last_dkg();
        assert_ne!(first.session, second.session);
        assert!(second.start_block >= first.timeout_block);
        let (late, _) = {
            // A result for the first DKG is refused as stale.
            let mut r = chain.result(&[1, 2, 3, 4], 1).0;
            r.session = first.session;
            (r, ())
        };
        assert_eq!(
            chain.rules.submit_dkg_result(&late),
            Err(CallError::WrongSession)
        );
        chain.mine(1);
        assert!(chain.events().contains(&Event::DkgTimedOut {
            session: first.session
        }));
    }

    #[test]
    fn entries_chain_from_genesis_and_each_starts_the_next_selection() {
        let mut chain = Fixture::new(7);
        chain.mine(1);
        let (group, dealing) = chain.make_group();
        let mut previous = entry::genesis();
        let mut dkg_entry = None;
        for round in 0..3u64 {
            let request = chain.rules.request_entry().unwrap();
            assert_eq!(request, round);
            let entry = sign_entry(&dealing, 3, &previous);
            let first = first_submitter(&previous, 5);
            let served = chain
                .rules
                .submit_entry(request, &entry.to_bytes(), first)
                .unwrap();
            assert_eq!(served.random, entry::random_number(&entry));
            assert_eq!(served.group, group);
            assert_eq!(chain.rules.entry(), entry);
            assert_eq!(
                chain.rules.submit_entry(request, &entry.to_bytes(), first),
                Err(CallError::AlreadyServed(request))
            );
            // The first entry started a selection from itself; later ones find it running.
            let first_entry = *dkg_entry.get_or_insert(entry);
            assert_eq!(chain.last_dkg().entry, first_entry);
            // Only one group exists, so the next request goes to it again.
            previous = entry;
            chain.mine(1);
        }
        let submitted = chain
            .events()
            .into_iter()
            .filter(|e| matches!(e, Event::EntrySubmitted { .. }))
            .count();
        assert_eq!(submitted, 3);
        assert_eq!(chain.rules.groups()[0].served, 3);
    }

    #[test]
    fn entries_are_refused_with_their_reason() {
        let mut chain = Fixture::new(5);
        assert_eq!(
            chain.rules.submit_entry(0, &[0; 64], 1),
            Err(CallError::UnknownRequest(0))
        );
        // A request made before any group exists waits.
        let request = chain.rules.request_entry().unwrap();
        assert_eq!(
            chain.rules.submit_entry(request, &[0; 64], 1),
            Err(CallError::NotAssigned(request))
        );
        chain.mine(1);
        let (_, dealing) = chain.make_group();
        let previous = entry::genesis();
        let entry = sign_entry(&dealing, 3, &previous);
        let first = first_submitter(&previous, 5);
        let bytes = entry.to_bytes();
        let reason = |result: Result<Served, CallError>| result.unwrap_err().reason();
        assert_eq!(
            reason(chain.rules.submit_entry(request, &bytes[..63], first)),
            "bad_entry"
        );
        assert_eq!(
            reason(chain.rules.submit_entry(request, &[0; 64], first)),
            "bad_entry"
        );
        let mut flipped = bytes;
        flipped[63] ^= 1;
        assert_eq!(
            reason(chain.rules.submit_entry(request, &flipped, first)),
            "bad_entry"
        );
        // A valid point that is not the group's signature (another group's, a replayed one).
        let other = deal(5, 3, &mut chain.rng).unwrap();
        let forged = sign_entry(&other, 3, &previous);
        assert_eq!(
            reason(chain.rules.submit_entry(request, &forged.to_bytes(), first)),
            "invalid_entry"
        );
        // The right entry from a seat whose turn has not come.
        let next = first % 5 + 1;
        match chain.rules.submit_entry(request, &bytes, next) {
            Err(CallError::NotYourTurn { from_block }) => {
                assert_eq!(from_block, chain.rules.head() + 1 + 2)
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            reason(chain.rules.submit_entry(request, &bytes, 6)),
            "not_a_member"
        );
        // Two blocks later it is the next seat's turn too.
        chain.mine(2);
        chain.rules.submit_entry(request, &bytes, next).unwrap();
    }

    #[test]
    fn a_group_that_does_not_answer_is_terminated_and_the_request_reassigned() {
        let mut chain = Fixture::new(5);
        chain.mine(1);
        let (dead, _) = chain.make_group();
        // The group's entry would start the next selection; none yet, so make a second
        // group from a restarted DKG: let the first group fail first.
        let request = chain.rules.request_entry().unwrap();
        let timeout = chain.rules.config().relay_timeout();
        chain.mine(timeout);
        assert_eq!(
            chain.rules.groups()[dead as usize].status,
            GroupStatus::Terminated
        );
        // No group is active: a selection starts again from the same entry.
        let (alive, dealing) = chain.make_group();
        chain.mine(1);
        let events = chain.events();
        assert!(events.contains(&Event::EntryTimedOut {
            request,
            group: dead
        }));
        let assigned: Vec<GroupId> = events
            .iter()
            .filter_map(|e| match e {
                Event::EntryAssigned {
                    request: r, group, ..
                } if *r == request => Some(*group),
                _ => None,
            })
            .collect();
        assert_eq!(assigned, vec![dead, alive]);
        let entry = sign_entry(&dealing, 3, &entry::genesis());
        chain
            .rules
            .submit_entry(
                request,
                &entry.to_bytes(),
                first_submitter(&entry::genesis(), 5),
            )
            .unwrap();
    }

    #[test]
    fn groups_expire_after_their_entries_and_a_new_selection_follows() {
        let config = Config::dev().with_lifetime(Lifetime {
            entries: 2,
            blocks: 1_000,
        });
        let mut chain = Fixture::with_config(5, config);
        chain.mine(1);
        let (group, dealing) = chain.make_group();
        let mut previous = entry::genesis();
        for _ in 0..2 {
            let request = chain.rules.request_entry().unwrap();
            let entry = sign_entry(&dealing, 3, &previous);
            chain
                .rules
                .submit_entry(request, &entry.to_bytes(), first_submitter(&previous, 5))
                .unwrap();
            previous = entry;
        }
        assert_eq!(
            chain.rules.groups()[group as usize].status,
            GroupStatus::Expired
        );
        // A request now waits for the DKG the last entry started.
        let request = chain.rules.request_entry().unwrap();
        assert_eq!(
            chain.rules.submit_entry(request, &[0; 64], 1),
            Err(CallError::NotAssigned(request))
        );
        // The first entry started that DKG; the second found it running.
        assert_ne!(chain.last_dkg().entry, previous);
        let (next, dealing) = chain.make_group();
        let entry = sign_entry(&dealing, 3, &previous);
        let served = chain
            .rules
            .submit_entry(request, &entry.to_bytes(), first_submitter(&previous, 5))
            .unwrap();
        assert_eq!(served.group, next);
        // Expiry by blocks.
        chain.mine(1_000);
        assert_eq!(
            chain.rules.groups()[next as usize].status,
            GroupStatus::Expired
        );
    }

    #[test]
    fn the_request_queue_is_bounded() {
        let mut chain = Fixture::with_config(0, Config::dev().with_max_pending_requests(2));
        chain.rules.request_entry().unwrap();
        chain.rules.request_entry().unwrap();
        assert_eq!(
            chain.rules.request_entry(),
            Err(CallError::TooManyRequests(2))
        );
    }

    #[test]
    fn a_wallet_registers_its_session_key_and_the_faucet_stakes_it() {
        let mut chain = Fixture::new(0);
        chain.mine(1);
        let wallet = OperatorKey::generate();
        let session = OperatorKey::generate();
        let now =
            time::OffsetDateTime::from_unix_timestamp(chain.rules.timestamp() as i64).unwrap();
        let attest = |chain_id: u64, peer: &OperatorKey| {
            attestation::create(
                &wallet,
                &peer.peer_id(),
                chain_id,
                "keep-light.test",
                now - time::Duration::minutes(1),
                std::time::Duration::from_secs(3600),
                "nonce0001",
            )
            .unwrap()
        };
        let view = chain
            .rules
            .register_network_key(&attest(31337, &session))
            .unwrap();
        assert_eq!(view.network_key, Some(session.address()));
        assert_eq!(view.stake, 1);
        // Wrong chain: refused, nothing changes.
        let other = OperatorKey::generate();
        assert_eq!(
            chain
                .rules
                .register_network_key(&attest(1, &other))
                .unwrap_err()
                .reason(),
            "bad_attestation"
        );
        assert_eq!(
            chain.rules.operator(&wallet.address()).network_key,
            Some(session.address())
        );
        // Another wallet cannot take the same session key.
        let thief = OperatorKey::generate();
        let stolen = attestation::create(
            &thief,
            &session.peer_id(),
            31337,
            "keep-light.test",
            now,
            std::time::Duration::from_secs(3600),
            "nonce0002",
        )
        .unwrap();
        assert_eq!(
            chain.rules.register_network_key(&stolen),
            Err(CallError::NetworkKeyTaken(session.address()))
        );
        // A new session key replaces the old one.
        chain
            .rules
            .register_network_key(&attest(31337, &other))
            .unwrap();
        assert_eq!(
            chain.rules.operator(&wallet.address()).network_key,
            Some(other.address())
        );
        // After the attestation expires the operator holds no network key (not selectable).
        chain.mine(1);
        chain.rules.mine(chain.rules.timestamp() + 3_600);
        assert_eq!(chain.rules.operator(&wallet.address()).network_key, None);
        chain.mine(1);
        assert!(chain
            .events()
            .iter()
            .any(|e| matches!(e, Event::NetworkKeyRegistered { .. })));
    }

    #[test]
    fn selection_seats_the_session_keys_of_wallet_operators() {
        let mut chain = Fixture::new(4);
        chain.mine(1);
        let wallet = OperatorKey::generate();
        let session = OperatorKey::generate();
        let now =
            time::OffsetDateTime::from_unix_timestamp(chain.rules.timestamp() as i64).unwrap();
        let attestation = attestation::create(
            &wallet,
            &session.peer_id(),
            31337,
            "keep-light.test",
            now,
            std::time::Duration::from_secs(3600),
            "nonce0003",
        )
        .unwrap();
        chain.rules.register_network_key(&attestation).unwrap();
        chain.mine(1);
        let selection = chain.last_dkg();
        let seat = selection
            .operators
            .iter()
            .position(|o| *o == wallet.address())
            .expect("five seats, five operators");
        assert_eq!(selection.parameters.members[seat], session.address());
    }

    #[test]
    fn events_serialise_as_documented_and_read_back() {
        let mut chain = Fixture::new(5);
        chain.mine(1);
        chain.make_group();
        chain.rules.request_entry().unwrap();
        chain.mine(1);
        let events = chain.rules.events(0, 100).unwrap().events;
        assert!(events.len() >= 8, "{events:?}");
        for logged in &events {
            let json = serde_json::to_value(logged).unwrap();
            assert!(
                json["block"].is_u64() && json["event"].is_string(),
                "{json}"
            );
            let back: Logged = serde_json::from_value(json).unwrap();
            assert_eq!(&back, logged);
        }
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["event"], "operatorStaked");
        assert!(json["stake"].is_string());
        let started = events
            .iter()
            .map(|l| serde_json::to_value(l).unwrap())
            .find(|j| j["event"] == "dkgStarted")
            .unwrap();
        assert_eq!(started["session"].as_str().unwrap().len(), 66);
        assert_eq!(started["entry"].as_str().unwrap().len(), 2 + 128);
        assert!(started["phaseBlocks"].is_u64());
        // Reading from a later block skips earlier events.
        let last = events.last().unwrap().block;
        assert!(chain.rules.events(last + 1, 100).unwrap().events.is_empty());
        // Pages hold whole blocks: a limit of 1 still brings all of block `first`'s events.
        let first = events[0].block;
        let page = chain.rules.events(first, 1).unwrap();
        let in_first = events.iter().filter(|e| e.block == first).count();
        assert_eq!(page.events.len(), in_first);
        assert_eq!(page.through, first);
    }

    #[test]
    fn configs_that_cannot_work_are_refused() {
        assert!(Rules::new(Config::dev().with_group(1, 1)).is_err());
        assert!(Rules::new(Config::dev().with_group(5, 6)).is_err());
        assert!(Rules::new(Config::dev().with_group(256, 3)).is_err());
        assert!(Rules::new(Config::dev().with_minimum_stake(0)).is_err());
        assert!(Rules::new(Config::dev().with_relay_step(0)).is_err());
        assert!(Rules::new(Config::dev().with_faucet(false))
            .unwrap()
            .faucet(Address([1; 20]))
            .is_err());
    }
}

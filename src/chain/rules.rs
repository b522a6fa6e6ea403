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

use sha3::{Digest, Keccak256};

use super::EventPage;
use crate::{
    beacon::{
        bls::{PublicKey, Signature},
        dkg::{self, Index},
        entry,
        selection::{self, Operator, SelectionError},
    },
    identity::{
        attestation::{self, Attestation},
        Address,
    },
};

mod calls;
mod config;
mod events;
mod serde_hex;
#[cfg(test)]
mod tests;
mod views;

pub use calls::{CallError, DkgResult, SignatureBytes};
pub use config::Config;
pub use events::{Event, Logged};
pub(crate) use serde_hex::{decimal, hex32, hex65};
pub use views::{GroupRecord, GroupStatus, OperatorView, Selection, Served};

/// A group's number, in the order groups were created (0 first).
pub type GroupId = u64;
/// A relay request's number, in the order requests were made (0 first).
pub type RequestId = u64;

/// Events kept for readers; older ones are dropped first ([`CallError::Pruned`]).
pub const MAX_EVENTS: usize = 100_000;
/// Served requests whose entries [`Rules::served`] still answers for.
pub const MAX_SERVED: usize = 10_000;

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
            minimum: self.config.minimum_stake(),
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
        let minimum = self.config.minimum_stake();
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
        let expect = attestation::Expect::new().with_chain_id(self.config.chain_id());
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
                record.stake >= self.config.minimum_stake()
                    && self.network_key_of(address).is_some()
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
        let size = self.config.group_size() as usize;
        let seats = match selection::select_group(
            &self.entry,
            &operators,
            self.config.minimum_stake(),
            size,
        ) {
            Ok(seats) => seats,
            // Too few seats yet: try again next block. Too many tickets cannot happen below
            // the operator limit unless stakes are huge; it waits for them to change.
            Err(SelectionError::NotEnoughTickets { .. } | SelectionError::TooManyTickets(_)) => {
                return
            }
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
        let start_block = self.pending() + self.config.join_blocks();
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
                threshold: self.config.threshold(),
                phase_blocks: self.config.phase_blocks(),
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
            threshold: self.config.threshold(),
            start_block,
            phase_blocks: self.config.phase_blocks(),
            result_step: self.config.result_step(),
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
        let from_block = selection.start_block + position * self.config.result_step();
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
        let lifetime = self.config.lifetime();
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
            relay_step: self.config.relay_step(),
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
        let from_block = assignment.block + place * self.config.relay_step();
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

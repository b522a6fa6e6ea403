//! What the contract logs: [`Event`]s and [`Logged`] (an event with its block).

use serde::{Deserialize, Serialize};

use super::{decimal, hex32, GroupId, RequestId};
use crate::{
    beacon::{
        bls::{PublicKey, Signature},
        dkg::Index,
    },
    identity::Address,
};

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

//! What the contract's getters answer with: operators, the running selection, groups and served
//! entries.

use serde::{Deserialize, Serialize};

use super::{decimal, hex32, GroupId, RequestId};
use crate::{
    beacon::{
        bls::{PublicKey, Signature},
        dkg::{self, Index},
    },
    identity::Address,
};

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

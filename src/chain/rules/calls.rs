//! What calls take and how they fail: [`CallError`], [`DkgResult`] and [`SignatureBytes`].

use serde::{Deserialize, Serialize};

use super::{hex32, hex65, serde_hex::hex_bytes, RequestId};
use crate::{
    beacon::{bls::DecodeError, dkg::Index},
    identity::{attestation::AttestationError, Address},
};

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

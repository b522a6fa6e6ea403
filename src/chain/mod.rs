//! The chain as the node sees it: operators and stakes ([`Chain`], what the firewall asks) and
//! the beacon contract ([`BeaconChain`]: network keys, DKG results, requests and entries).
//!
//! [`rules`] is the contract itself, pure and block-driven; [`local::LocalChain`] is the
//! embedded dev chain that executes it and mines blocks (kept on disk, if asked, by
//! [`journal`]); [`rpc`] serves any `BeaconChain` over
//! HTTP JSON-RPC 2.0 (natively) and reads one back ([`rpc::RpcChain`], natively and in a tab),
//! so a member in its own process and a page ask the dev chain, later an EVM node, the same
//! way. Users: the firewall's `staked` policy (`net/firewall.rs`) and the member service.

pub mod journal;
pub mod local;
pub mod rpc;
pub mod rules;
pub mod watch;

use std::time::Duration;

use crate::{
    beacon::dkg::Index,
    identity::{attestation::Attestation, Address},
    platform,
};
pub use rules::{
    CallError, DkgResult, Event, GroupId, GroupRecord, Logged, OperatorView, RequestId, Served,
};

/// An operator's stake and the minimum the chain asks of an operator, in the token's smallest
/// unit (`u128` holds 3.4·10²⁰ whole tokens of 18 decimals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorStake {
    pub stake: u128,
    pub minimum: u128,
}

impl OperatorStake {
    /// Whether the chain recognises the operator: stake at least the minimum, and not zero.
    pub fn eligible(&self) -> bool {
        self.stake > 0 && self.stake >= self.minimum
    }
}

/// Why a chain query got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The chain could not be reached (connection refused, timeout, HTTP error).
    #[error("chain unreachable: {0}")]
    Unreachable(String),
    /// The chain answered, but not with what was asked (malformed reply, JSON-RPC error).
    #[error("chain answered badly: {0}")]
    BadReply(String),
    /// The chain refused the call ([`CallError`]); `reason` is its stable name.
    #[error("chain refused the call ({reason}): {message}")]
    Refused { reason: String, message: String },
}

impl ChainError {
    /// The refusal's reason (`"not_your_turn"`, …), if the chain refused the call.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            ChainError::Refused { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

impl From<CallError> for ChainError {
    fn from(error: CallError) -> Self {
        ChainError::Refused {
            reason: error.reason().to_owned(),
            message: error.to_string(),
        }
    }
}

/// The chain operations the node needs. Answers are futures so a remote chain fits; the
/// node caches them (see `firewall::Recognition`).
pub trait Chain: Send + Sync {
    /// The stake `operator` holds, and the minimum.
    fn operator_stake(
        &self,
        operator: Address,
    ) -> platform::BoxFuture<'static, Result<OperatorStake, ChainError>>;
}

/// The contract's parameters, as members need them (JSON: camelCase, stake as a decimal string).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainInfo {
    pub chain_id: u64,
    #[serde(with = "rules::decimal")]
    pub minimum_stake: u128,
    pub group_size: u32,
    pub threshold: u32,
    pub phase_blocks: u64,
    pub result_step: u64,
    pub relay_step: u64,
    pub relay_timeout: u64,
    pub dkg_timeout: u64,
    pub lifetime_entries: u64,
    pub lifetime_blocks: u64,
    /// How often the chain mines a block, where it says.
    pub block_time_ms: Option<u64>,
}

impl ChainInfo {
    /// What a chain with `config` tells its members (`block_time_ms` where it mines on a
    /// timer).
    pub fn of(config: &rules::Config, block_time_ms: Option<u64>) -> Self {
        Self {
            chain_id: config.chain_id(),
            minimum_stake: config.minimum_stake(),
            group_size: config.group_size(),
            threshold: config.threshold(),
            phase_blocks: config.phase_blocks(),
            result_step: config.result_step(),
            relay_step: config.relay_step(),
            relay_timeout: config.relay_timeout(),
            dkg_timeout: config.dkg_timeout(),
            lifetime_entries: config.lifetime().entries,
            lifetime_blocks: config.lifetime().blocks,
            block_time_ms,
        }
    }
}

/// Events of whole blocks, oldest first: everything from the asked block through `through`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventPage {
    /// The last block this page covers in full (the next page starts after it).
    pub through: u64,
    pub events: Vec<Logged>,
}

type Reply<T> = platform::BoxFuture<'static, Result<T, ChainError>>;

/// The beacon contract's calls (DESIGN.md section 5); [`rules`] says what each checks. Every
/// future is independent of `self`'s borrow, so a remote chain fits.
pub trait BeaconChain: Chain {
    fn info(&self) -> Reply<ChainInfo>;
    /// The last mined block.
    fn block_number(&self) -> Reply<u64>;
    /// Events from `from_block` on; if there are none yet, waits up to `wait` for a block
    /// that brings some (a long poll: a tab waits for the next block without asking again).
    fn events(&self, from_block: u64, wait: Duration) -> Reply<EventPage>;
    fn operator(&self, operator: Address) -> Reply<OperatorView>;
    /// Dev chains: stakes `operator` the minimum if it has less.
    fn faucet(&self, operator: Address) -> Reply<OperatorView>;
    fn register_network_key(&self, attestation: Attestation) -> Reply<OperatorView>;
    fn submit_dkg_result(&self, result: DkgResult) -> Reply<GroupId>;
    fn request_entry(&self) -> Reply<RequestId>;
    /// `entry`: EIP-197 G1 bytes, checked by the chain.
    fn submit_entry(&self, request: RequestId, entry: Vec<u8>, submitter: Index) -> Reply<Served>;
    fn groups(&self) -> Reply<Vec<GroupRecord>>;
    /// The entry that served `request`, or the latest entry served if `None`.
    fn served(&self, request: Option<RequestId>) -> Reply<Option<Served>>;
}

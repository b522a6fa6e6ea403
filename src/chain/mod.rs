//! The chain as the node sees it: who is an operator and with how much stake.
//!
//! [`Chain`] is the seam: [`local::LocalChain`] is the embedded dev chain; [`rpc`] serves any
//! `Chain` over HTTP JSON-RPC 2.0 (natively) and reads one back ([`rpc::RpcChain`], natively
//! and in a tab), so a relay in its own process and a page ask the dev chain, later an EVM
//! node, the same way. The firewall's `staked` policy (`net/firewall.rs`) is the first user;
//! groups, requests and entries join the trait with the beacon protocols.

pub mod local;
pub mod rpc;

use crate::{identity::Address, platform};

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

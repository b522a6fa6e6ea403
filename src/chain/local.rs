//! The embedded dev chain: chain state in memory, shared by everything in one process
//! (`keep-light chain` serves it to other processes over JSON-RPC, `rpc.rs`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::{Chain, ChainError, OperatorStake};
use crate::{identity::Address, platform};

/// Stake of every operator, and the minimum stake. Cloning shares the state.
#[derive(Debug, Clone, Default)]
pub struct LocalChain {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    minimum: u128,
    stakes: HashMap<Address, u128>,
}

impl LocalChain {
    /// An empty chain whose operators need at least `minimum` stake.
    pub fn new(minimum: u128) -> Self {
        let chain = Self::default();
        chain.state().minimum = minimum;
        chain
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent if a holder panicked: every update is one assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `operator`'s stake (0 withdraws it).
    pub fn set_stake(&self, operator: Address, stake: u128) {
        let mut state = self.state();
        if stake == 0 {
            state.stakes.remove(&operator);
        } else {
            state.stakes.insert(operator, stake);
        }
    }

    /// The stake and minimum as the chain holds them now.
    pub fn stake_of(&self, operator: &Address) -> OperatorStake {
        let state = self.state();
        OperatorStake {
            stake: state.stakes.get(operator).copied().unwrap_or(0),
            minimum: state.minimum,
        }
    }
}

impl Chain for LocalChain {
    fn operator_stake(
        &self,
        operator: Address,
    ) -> platform::BoxFuture<'static, Result<OperatorStake, ChainError>> {
        let stake = self.stake_of(&operator);
        Box::pin(async move { Ok(stake) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stakes_are_set_withdrawn_and_compared_with_the_minimum() {
        let chain = LocalChain::new(100);
        let operator = Address([7; 20]);
        assert!(!chain.stake_of(&operator).eligible());
        chain.set_stake(operator, 99);
        assert!(!chain.stake_of(&operator).eligible());
        chain.clone().set_stake(operator, 100);
        assert_eq!(
            chain.stake_of(&operator),
            OperatorStake {
                stake: 100,
                minimum: 100
            }
        );
        assert!(chain.stake_of(&operator).eligible());
        chain.set_stake(operator, 0);
        assert_eq!(chain.stake_of(&operator).stake, 0);
        // A zero minimum still asks for some stake.
        assert!(!LocalChain::new(0).stake_of(&operator).eligible());
    }
}

//! The contract's parameters ([`Config`]): its builder and getters.

use crate::beacon::{
    dkg::{self, MAX_MEMBERS},
    group::Lifetime,
};

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
    pub(super) faucet: bool,
    pub(super) max_pending_requests: usize,
    pub(super) max_operators: usize,
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
    /// Whether registering (and [`Rules::faucet`](super::Rules::faucet)) stakes the minimum, as
    /// a dev chain does.
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

    pub(super) fn check(&self) -> Result<(), String> {
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

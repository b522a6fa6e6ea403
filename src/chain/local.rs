//! The embedded dev chain: the beacon contract's [`Rules`] in memory, shared by everything in
//! one process, with blocks mined on a timer ([`LocalChain::spawn_miner`]) or by hand
//! ([`LocalChain::mine`], for tests). `keep-light chain` and `keep-light dev` serve it to
//! other processes and pages over JSON-RPC (`rpc.rs`). [`LocalChain::open`] keeps it in a
//! directory: every change is journaled ([`super::journal`]) and replayed on the next start.
//!
//! # Usage
//! ```text
//! let chain = LocalChain::from_config(Config::dev())?;
//! chain.spawn_miner(Duration::from_secs(1));   // or chain.mine() in a test
//! let page = chain.events(0, Duration::from_secs(5)).await?;
//! ```

use std::{
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use futures::{channel::oneshot, future};

use super::{
    journal::{Call, Journal},
    rules::{CallError, Config, Rules},
    BeaconChain, Chain, ChainError, ChainInfo, DkgResult, EventPage, GroupId, GroupRecord,
    OperatorStake, OperatorView, RequestId, Served,
};
use crate::{
    beacon::{bls::Signature, dkg::Index},
    identity::{attestation::Attestation, Address},
    platform,
};

/// Events one [`BeaconChain::events`] answer carries at most (in whole blocks).
const PAGE_EVENTS: usize = 1_000;

/// The dev chain. Cloning shares it.
#[derive(Clone)]
pub struct LocalChain {
    shared: Arc<Shared>,
}

struct Shared {
    /// The rules and, for a chain kept on disk, its journal: one lock, so the journal's order
    /// is the order calls took effect.
    rules: Mutex<Rules>,
    journal: Mutex<Option<Journal>>,
    /// Readers waiting for the next block.
    waiting: Mutex<Vec<oneshot::Sender<()>>>,
    block_time: Mutex<Option<Duration>>,
}

impl std::fmt::Debug for LocalChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChain")
            .field("head", &self.rules().head())
            .finish()
    }
}

impl LocalChain {
    /// A dev chain ([`Config::dev`]) whose operators need at least `minimum` stake (0 counts
    /// as 1: an operator always needs some stake).
    pub fn new(minimum: u128) -> Self {
        Self::from_config(Config::dev().with_minimum_stake(minimum.max(1)))
            .expect("the dev config is valid")
    }

    /// A chain with these rules; refuses a config that cannot work.
    pub fn from_config(config: Config) -> Result<Self, String> {
        Ok(Self {
            shared: Arc::new(Shared {
                rules: Mutex::new(Rules::new(config)?),
                journal: Mutex::new(None),
                waiting: Mutex::new(Vec::new()),
                block_time: Mutex::new(None),
            }),
        })
    }

    /// A chain with these rules kept in `dir`: what an earlier run journaled there is replayed
    /// first (refused if it was kept under other parameters). Returns the chain and how many
    /// calls were replayed.
    pub fn open(config: Config, dir: &std::path::Path) -> Result<(Self, usize), String> {
        let chain = Self::from_config(config)?;
        let parameters = chain.info_now();
        let (journal, replayed) = Journal::open(dir, &parameters, &mut chain.rules())?;
        *chain.journal() = Some(journal);
        Ok((chain, replayed))
    }

    fn journal(&self) -> MutexGuard<'_, Option<Journal>> {
        self.shared
            .journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `call` on the rules and, when it succeeds, journals it (under the rules' lock).
    /// A journal that cannot be written stops nothing: it is logged, and the chain runs on in
    /// memory.
    fn call<R>(
        &self,
        call: impl FnOnce() -> Call,
        make: impl FnOnce(&mut Rules) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let mut rules = self.rules();
        let result = make(&mut rules)?;
        let mut journal = self.journal();
        if let Some(kept) = journal.as_mut() {
            if let Err(error) = kept.append(&call()) {
                tracing::error!(%error, "the chain journal failed; no longer kept on disk");
                *journal = None;
            }
        }
        Ok(result)
    }

    fn rules(&self) -> MutexGuard<'_, Rules> {
        // Every call either fails before changing anything or completes under the lock, so a
        // holder that panicked left the state consistent.
        self.shared.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the rules under the lock (for tests and the CLI's administration).
    pub fn with_rules<R>(&self, f: impl FnOnce(&mut Rules) -> R) -> R {
        f(&mut self.rules())
    }

    /// Sets `operator`'s stake as an administrator (0 withdraws it).
    pub fn set_stake(&self, operator: Address, stake: u128) -> Result<(), ChainError> {
        Ok(self.call(
            || Call::SetStake { operator, stake },
            |rules| rules.set_stake(operator, stake),
        )?)
    }

    /// The stake and minimum as the chain holds them now.
    pub fn stake_of(&self, operator: &Address) -> OperatorStake {
        let view = self.rules().operator(operator);
        OperatorStake {
            stake: view.stake,
            minimum: view.minimum,
        }
    }

    /// Mines one block at the wall clock's time and wakes the readers waiting for it.
    pub fn mine(&self) -> u64 {
        let timestamp = platform::unix_time().as_secs();
        let head = self
            .call(
                || Call::Mine { timestamp },
                |rules| Ok(rules.mine(timestamp)),
            )
            .expect("mining does not fail");
        let waiting = std::mem::take(
            &mut *self
                .shared
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for waiter in waiting {
            let _ = waiter.send(());
        }
        head
    }

    /// Mines a block every `block_time` on a background task, until the last clone of this
    /// chain is dropped.
    pub fn spawn_miner(&self, block_time: Duration) {
        *self
            .shared
            .block_time
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(block_time);
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        platform::spawn(async move {
            loop {
                platform::sleep(block_time).await;
                let Some(shared) = weak.upgrade() else { return };
                LocalChain { shared }.mine();
            }
        });
    }

    /// Resolves at the next mined block (or never, if nothing mines).
    fn next_block(&self) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sender);
        receiver
    }

    fn info_now(&self) -> ChainInfo {
        let block_time = *self
            .shared
            .block_time
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        ChainInfo::of(
            self.rules().config(),
            block_time.map(|t| t.as_millis() as u64),
        )
    }
}

/// An answer computed now, as the trait's future.
fn ready<T: Send + 'static>(
    value: Result<T, ChainError>,
) -> platform::BoxFuture<'static, Result<T, ChainError>> {
    Box::pin(future::ready(value))
}

impl Chain for LocalChain {
    fn operator_stake(
        &self,
        operator: Address,
    ) -> platform::BoxFuture<'static, Result<OperatorStake, ChainError>> {
        ready(Ok(self.stake_of(&operator)))
    }
}

type Reply<T> = platform::BoxFuture<'static, Result<T, ChainError>>;

impl BeaconChain for LocalChain {
    fn info(&self) -> Reply<ChainInfo> {
        ready(Ok(self.info_now()))
    }

    fn block_number(&self) -> Reply<u64> {
        ready(Ok(self.rules().head()))
    }

    fn events(&self, from_block: u64, wait: Duration) -> Reply<EventPage> {
        let chain = self.clone();
        Box::pin(async move {
            // Register for the next block before reading, so a block mined in between wakes us.
            let next = chain.next_block();
            let page = chain.rules().events(from_block, PAGE_EVENTS)?;
            if !page.events.is_empty() || wait.is_zero() {
                return Ok(page);
            }
            let timeout = std::pin::pin!(platform::sleep(wait));
            future::select(next, timeout).await;
            Ok(chain.rules().events(from_block, PAGE_EVENTS)?)
        })
    }

    fn operator(&self, operator: Address) -> Reply<OperatorView> {
        ready(Ok(self.rules().operator(&operator)))
    }

    fn faucet(&self, operator: Address) -> Reply<OperatorView> {
        let result = self.call(
            || Call::Faucet { operator },
            |rules| rules.faucet(operator).map(|()| rules.operator(&operator)),
        );
        ready(result.map_err(ChainError::from))
    }

    fn register_network_key(&self, attestation: Attestation) -> Reply<OperatorView> {
        let result = self.call(
            || Call::RegisterNetworkKey {
                attestation: attestation.clone(),
            },
            |rules| rules.register_network_key(&attestation),
        );
        ready(result.map_err(ChainError::from))
    }

    fn submit_dkg_result(&self, result: DkgResult) -> Reply<GroupId> {
        let outcome = self.call(
            || Call::SubmitDkgResult {
                result: result.clone(),
            },
            |rules| rules.submit_dkg_result(&result),
        );
        ready(outcome.map_err(ChainError::from))
    }

    fn request_entry(&self) -> Reply<RequestId> {
        let result = self.call(|| Call::RequestEntry, Rules::request_entry);
        ready(result.map_err(ChainError::from))
    }

    fn submit_entry(&self, request: RequestId, entry: Vec<u8>, submitter: Index) -> Reply<Served> {
        let result = self.call(
            || Call::SubmitEntry {
                request,
                entry: Signature::from_bytes(&entry).expect("the chain accepted it as a point"),
                submitter,
            },
            |rules| rules.submit_entry(request, &entry, submitter),
        );
        ready(result.map_err(ChainError::from))
    }

    fn groups(&self) -> Reply<Vec<GroupRecord>> {
        ready(Ok(self.rules().groups().to_vec()))
    }

    fn served(&self, request: Option<RequestId>) -> Reply<Option<Served>> {
        let rules = self.rules();
        let served = match request {
            Some(request) => rules.served(request),
            None => rules.last_served(),
        };
        ready(Ok(served.copied()))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn stakes_are_set_withdrawn_and_compared_with_the_minimum() {
        let chain = LocalChain::new(100);
        let operator = Address([7; 20]);
        assert!(!chain.stake_of(&operator).eligible());
        chain.set_stake(operator, 99).unwrap();
        assert!(!chain.stake_of(&operator).eligible());
        chain.clone().set_stake(operator, 100).unwrap();
        assert_eq!(
            chain.stake_of(&operator),
            OperatorStake {
                stake: 100,
                minimum: 100
            }
        );
        assert!(chain.stake_of(&operator).eligible());
        chain.set_stake(operator, 0).unwrap();
        assert_eq!(chain.stake_of(&operator).stake, 0);
        // A zero minimum still asks for some stake.
        assert!(!LocalChain::new(0).stake_of(&operator).eligible());
    }

    #[tokio::test]
    async fn a_reader_waits_for_the_next_block_and_no_longer() {
        let chain = LocalChain::new(1);
        // Nothing mined, nothing to read: the wait ends at its limit.
        let page = chain.events(1, Duration::from_millis(50)).await.unwrap();
        assert!(page.events.is_empty());
        assert_eq!(page.through, 0);
        // A faucet call lands in block 1; the reader is woken by the block that seals it.
        let reader = tokio::spawn({
            let chain = chain.clone();
            async move { chain.events(1, Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        chain.faucet(Address([3; 20])).await.unwrap();
        let started = platform::now();
        chain.mine();
        let page = reader.await.unwrap().unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].block, 1);
        // Refusals cross as typed reasons.
        let refused = chain.submit_entry(5, vec![0; 64], 1).await.unwrap_err();
        assert_eq!(refused.refusal(), Some("unknown_request"));
    }

    #[tokio::test]
    async fn the_miner_mines_until_the_chain_is_dropped() {
        let chain = LocalChain::new(1);
        chain.spawn_miner(Duration::from_millis(10));
        let page = chain.events(0, Duration::from_secs(5)).await.unwrap();
        assert!(page.events.is_empty());
        let head = loop {
            let head = chain.block_number().await.unwrap();
            if head >= 3 {
                break head;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(head >= 3);
        assert_eq!(chain.info().await.unwrap().block_time_ms, Some(10));
        drop(chain);
    }
}

//! The beacon as a reader sees it: every entry the chain takes, checked here against its
//! group's key before it is reported, and requests that resolve with their entry. Only the
//! [`BeaconChain`] seam, so a tab (over JSON-RPC) and a native test (the local chain) run the
//! same code; the JS package's `entry` events and `requestEntry()` are these.
//!
//! JSON of [`Watched`] (camelCase, as the JS package documents):
//! - `{"event":"block","number"}` once per long-poll page that moved the head;
//! - `{"event":"entry","request","group","groupKey","entry","previous","random",
//!   "groupMembers","requestBlock","entryBlock","verified"}` for each entry, oldest first
//!   (first those of the last [`HISTORY_BLOCKS`] blocks, so a page opened late shows some);
//! - `{"event":"error","source":"chain","error"}` once when the chain stops answering, then
//!   `{"event":"chainBack","number"}` when it answers again.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::Serialize;

use crate::{
    beacon::{
        bls::{PublicKey, Signature},
        entry::verify_entry,
    },
    chain::{BeaconChain, ChainError, Event, GroupId, GroupRecord, RequestId, Served},
    identity::Address,
    platform,
};

/// How far back a new follower looks for entries to show.
pub const HISTORY_BLOCKS: u64 = 600;
/// How long one long poll waits for a block with events.
const POLL_WAIT: Duration = Duration::from_secs(5);
/// Retry delays while the chain does not answer.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// An entry on chain, checked by the reader.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryView {
    pub request: RequestId,
    pub group: GroupId,
    /// `None` when the chain named a group it does not list.
    pub group_key: Option<PublicKey>,
    pub entry: Signature,
    pub previous: Signature,
    #[serde(with = "crate::chain::rules::hex32")]
    pub random: [u8; 32],
    /// The group's operators in seat order.
    pub group_members: Vec<Address>,
    pub request_block: u64,
    pub entry_block: u64,
    /// Whether `entry` is the group key's BLS signature over `previous`, checked here.
    pub verified: bool,
}

impl EntryView {
    fn new(served: &Served, group: Option<&GroupRecord>) -> Self {
        Self {
            request: served.request,
            group: served.group,
            group_key: group.map(|g| g.group_key),
            entry: served.entry,
            previous: served.previous,
            random: served.random,
            group_members: group.map(|g| g.operators.clone()).unwrap_or_default(),
            request_block: served.request_block,
            entry_block: served.entry_block,
            verified: group
                .is_some_and(|g| verify_entry(&g.group_key, &served.previous, &served.entry)),
        }
    }
}

/// What a follower reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Watched {
    Block {
        number: u64,
    },
    Entry(EntryView),
    /// The chain stopped answering (reported once per outage).
    Error {
        source: &'static str,
        error: String,
    },
    ChainBack {
        number: u64,
    },
}

/// The groups seen so far, fetched again when an entry names a new one.
#[derive(Default)]
struct Groups(BTreeMap<GroupId, GroupRecord>);

impl Groups {
    async fn view(
        &mut self,
        chain: &dyn BeaconChain,
        served: &Served,
    ) -> Result<EntryView, ChainError> {
        if !self.0.contains_key(&served.group) {
            self.0 = chain
                .groups()
                .await?
                .into_iter()
                .map(|g| (g.id, g))
                .collect();
        }
        Ok(EntryView::new(served, self.0.get(&served.group)))
    }
}

/// Follows the chain for as long as `report` accepts what it sees (it returns false once the
/// reader stopped).
pub async fn follow(chain: Arc<dyn BeaconChain>, mut report: impl FnMut(Watched) -> bool) {
    let mut groups = Groups::default();
    let mut cursor = None;
    let mut retry = RETRY_MIN;
    let mut down = false;
    loop {
        let step = async {
            let from = match cursor {
                Some(block) => block,
                None => chain.block_number().await?.saturating_sub(HISTORY_BLOCKS),
            };
            let page = chain.events(from, POLL_WAIT).await?;
            let mut entries = Vec::new();
            for logged in &page.events {
                if let Event::EntrySubmitted { request, .. } = logged.event {
                    if let Some(served) = chain.served(Some(request)).await? {
                        entries.push(groups.view(&*chain, &served).await?);
                    }
                }
            }
            Ok::<_, ChainError>((page.through, entries))
        };
        match step.await {
            Ok((through, entries)) => {
                retry = RETRY_MIN;
                let mut out = Vec::new();
                if std::mem::take(&mut down) {
                    out.push(Watched::ChainBack { number: through });
                }
                if cursor != Some(through + 1) {
                    out.push(Watched::Block { number: through });
                }
                cursor = Some(through + 1);
                out.extend(entries.into_iter().map(Watched::Entry));
                if !out.into_iter().all(&mut report) {
                    return;
                }
            }
            Err(error) => {
                if !down {
                    down = true;
                    let error = error.to_string();
                    if !report(Watched::Error {
                        source: "chain",
                        error,
                    }) {
                        return;
                    }
                }
                platform::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Asks the chain for an entry and waits until one answers it.
pub async fn request(chain: &dyn BeaconChain) -> Result<EntryView, ChainError> {
    let request = chain.request_entry().await?;
    let mut cursor = chain.block_number().await?;
    let mut groups = Groups::default();
    loop {
        if let Some(served) = chain.served(Some(request)).await? {
            return groups.view(chain, &served).await;
        }
        // Wait for the next block (or one with events) before asking again.
        cursor = chain.events(cursor + 1, POLL_WAIT).await?.through;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        beacon::{bls::SecretKey, entry},
        chain::rules::GroupStatus,
    };
    use rand::{rngs::StdRng, SeedableRng};

    fn served_by(key: &SecretKey) -> Served {
        let previous = entry::genesis();
        let signed = key.sign(&entry::entry_message(&previous));
        Served {
            request: 0,
            group: 0,
            entry: signed,
            previous,
            random: entry::random_number(&signed),
            request_block: 3,
            entry_block: 5,
        }
    }

    fn group(key: PublicKey) -> GroupRecord {
        GroupRecord {
            id: 0,
            session: [0; 32],
            group_key: key,
            operators: vec![],
            members: vec![],
            misbehaved: vec![],
            created: 1,
            served: 1,
            status: GroupStatus::Active,
        }
    }

    #[test]
    fn an_entry_is_verified_against_its_group_key_and_only_that() {
        let mut rng = StdRng::seed_from_u64(7);
        let (signer, other) = (SecretKey::generate(&mut rng), SecretKey::generate(&mut rng));
        let served = served_by(&signer);
        assert!(EntryView::new(&served, Some(&group(signer.public_key()))).verified);
        assert!(!EntryView::new(&served, Some(&group(other.public_key()))).verified);
        // A group the chain does not list: nothing to check against, so not verified.
        let unknown = EntryView::new(&served, None);
        assert!(!unknown.verified && unknown.group_key.is_none());
        let json = serde_json::to_value(Watched::Entry(unknown)).unwrap();
        assert_eq!(json["event"], "entry");
        assert_eq!(
            (json["requestBlock"].as_u64(), json["entryBlock"].as_u64()),
            (Some(3), Some(5))
        );
    }
}

//! `keep-light member` (a standalone native beacon member) and `keep-light beacon request`
//! (ask the chain for a random number and print the entry once it lands), plus what
//! `keep-light dev` shares with them: starting a member's service on a node, keeping its key
//! shares in a directory, and the entry line of DESIGN.md section 6.

use std::{
    path::{Path, PathBuf},
    rc::Rc,
    sync::Arc,
    time::Duration,
};

use clap::{Args, Subcommand};
use futures::StreamExt;
use keep_light::{
    chain::{rpc::RpcChain, BeaconChain, ChainError, Event, GroupRecord, Served},
    identity::{Address, OperatorKey},
    member::{
        driver::{self, GroupStore},
        MemberEvent, SavedGroup,
    },
    net::{Node, NodeConfig, NodeHandle},
    platform,
};
use serde_json::{json, Value};

/// Key shares as files: `DIR/groups/<id>.json` (0600), written whole then renamed into place.
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    pub fn new(data_dir: &Path) -> Result<Self, String> {
        let dir = data_dir.join("groups");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self { dir })
    }

    fn path(&self, group: u64) -> PathBuf {
        self.dir.join(format!("{group}.json"))
    }
}

impl GroupStore for DirStore {
    fn load(&self) -> Vec<SavedGroup> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                match serde_json::from_str(&text) {
                    Ok(saved) => Some(saved),
                    Err(error) => {
                        tracing::warn!(%error, path = %e.path().display(), "unreadable group file");
                        None
                    }
                }
            })
            .collect()
    }

    fn save(&self, group: &SavedGroup) -> Result<(), String> {
        let path = self.path(group.group);
        let temporary = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(group).map_err(|e| e.to_string())?;
        // A leftover from a crash mid-write is stale: start it again.
        let _ = std::fs::remove_file(&temporary);
        crate::cli::write_secret(&temporary, &text)?;
        std::fs::rename(&temporary, &path).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn forget(&self, group: u64) -> Result<(), String> {
        match std::fs::remove_file(self.path(group)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
            _ => Ok(()),
        }
    }
}

/// Starts `key`'s member service on `node` against `chain`, on the current `LocalSet`;
/// `report` sees every member event.
pub fn spawn_member(
    node: NodeHandle,
    key: OperatorKey,
    chain: Arc<dyn BeaconChain>,
    store: Rc<dyn GroupStore>,
    report: impl FnMut(MemberEvent) + 'static,
) {
    tokio::task::spawn_local(driver::serve(node, key, chain, store, report));
}

/// The entry line (DESIGN.md section 6) for an entry on chain: `signers` are operators, and
/// the timings are what the caller measured (absent when unknown).
pub fn entry_line(
    served: &Served,
    group: &GroupRecord,
    signers: &[Address],
    dkg_ms: Option<u64>,
    entry_ms: Option<u64>,
) -> Value {
    json!({
        "entry": format!("0x{}", hex::encode(served.entry.to_bytes())),
        "previous": format!("0x{}", hex::encode(served.previous.to_bytes())),
        "group_key": format!("0x{}", hex::encode(group.group_key.to_bytes())),
        "random": format!("0x{}", hex::encode(served.random)),
        "group_members": group.operators,
        "signers": signers,
        "request_block": served.request_block,
        "entry_block": served.entry_block,
        "dkg_ms": dkg_ms,
        "entry_ms": entry_ms,
    })
}

#[derive(Args)]
pub struct MemberArgs {
    /// The chain's JSON-RPC URL (`keep-light chain` or `keep-light dev` prints it).
    #[arg(long)]
    chain: String,
    /// Relay address to connect to (repeatable).
    #[arg(long = "bootstrap", required = true)]
    bootstrap: Vec<String>,
    /// Where key shares are kept (`groups/<id>.json`), so a restart serves its groups.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Serves as a beacon member until stopped, printing its events as JSON lines.
pub async fn run_member(key: OperatorKey, args: MemberArgs) -> Result<(), String> {
    let chain: Arc<dyn BeaconChain> = Arc::new(RpcChain::new(&args.chain)?);
    let info = chain.info().await.map_err(|e| e.to_string())?;
    // A dev chain stakes whoever asks; a real one refuses, and stake comes from elsewhere.
    let view = driver::enrol(&*chain, &key, None)
        .await
        .map_err(|error| format!("chain: {error}"))?;
    println!(
        "{}",
        json!({"event": "staked", "operator": key.address(), "stake": view.stake.to_string()})
    );
    let store: Rc<dyn GroupStore> = match &args.data_dir {
        Some(dir) => Rc::new(DirStore::new(dir)?),
        None => Rc::new(driver::KeyValueStore::new("member")),
    };
    let config = NodeConfig::new(key.clone())
        .with_bootstrap(args.bootstrap)
        .with_chain_id(info.chain_id);
    let (node, mut events) = Node::start(config).await.map_err(|e| e.to_string())?;
    println!(
        "{}",
        json!({"event": "started", "peer_id": node.peer_id().to_string(), "operator": key.address()})
    );
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            spawn_member(node.clone(), key, chain, store, |event| {
                println!("{}", serde_json::to_string(&event).unwrap_or_default());
            });
            let shutdown = crate::cli::shutdown_signal()?;
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        Some(event) => tracing::debug!("{}", event.to_json()),
                        None => return Err("the node stopped".to_owned()),
                    },
                    () = &mut shutdown => break,
                }
            }
            node.shutdown().await;
            Ok(())
        })
        .await
}

#[derive(Subcommand)]
pub enum BeaconCommand {
    /// Ask for a random number; prints the entry line once it is on chain.
    Request {
        /// The chain's JSON-RPC URL.
        #[arg(long)]
        chain: String,
        /// Give up after this long.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

pub async fn run_beacon(command: BeaconCommand) -> Result<(), String> {
    let BeaconCommand::Request { chain, timeout } = command;
    let chain = RpcChain::new(&chain)?;
    let started = platform::now();
    let from = chain.block_number().await.map_err(|e| e.to_string())? + 1;
    let request = chain.request_entry().await.map_err(|e| e.to_string())?;
    println!("{}", json!({"event": "requested", "request": request}));
    let mut cursor = from;
    loop {
        if started.elapsed() > timeout {
            return Err(format!("no entry for request {request} within {timeout:?}"));
        }
        let page = match chain.events(cursor, Duration::from_secs(10)).await {
            Ok(page) => page,
            Err(ChainError::Unreachable(error)) => {
                tracing::warn!(%error, "chain unreachable, asking again");
                platform::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(error) => return Err(error.to_string()),
        };
        cursor = page.through + 1;
        let landed = page
            .events
            .iter()
            .any(|l| matches!(&l.event, Event::EntrySubmitted { request: r, .. } if *r == request));
        if landed {
            let served = chain
                .served(Some(request))
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the entry is on chain but not served")?;
            let groups = chain.groups().await.map_err(|e| e.to_string())?;
            let group = groups
                .get(served.group as usize)
                .ok_or("the chain does not know the entry's group")?;
            let entry_ms = started.elapsed().as_millis() as u64;
            println!("{}", entry_line(&served, group, &[], None, Some(entry_ms)));
            return Ok(());
        }
    }
}

//! `keep-light dev`: the main job (DESIGN.md section 8) in one process — the dev chain mining
//! blocks, two relays (TCP, WebSocket, WebRTC-direct), native members (some silent), a request
//! every `--request-every` blocks, and (without `--headless`) an HTTP server for `www/` and the
//! chain's JSON-RPC at `/rpc`. Prints `{"url":…}` once the relays run and the members are
//! staked (not headless): a tab may enrol and be selected into the first group. Then one line
//! per entry (section 6); `--entries K` exits 0 after K of them. With
//! `--data-dir`, the chain and the members' key shares outlive the process.

use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    rc::Rc,
    sync::{Arc, Mutex},
    time::Duration,
};

use clap::Args;
use futures::{channel::oneshot, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    body::Bytes, header, server::conn::http1, service::service_fn, Method, Request, Response,
    StatusCode,
};
use hyper_util::rt::TokioIo;
use keep_light::{
    chain::{local::LocalChain, rpc, BeaconChain, Event, GroupId, RequestId},
    identity::{Address, OperatorKey},
    member::{
        driver::{GroupStore, KeyValueStore},
        MemberEvent,
    },
    net::{Node, NodeConfig, NodeEvent, NodeHandle, Role},
    platform::{self, Instant},
};
use serde_json::json;
use sha3::{Digest, Keccak256};

use crate::{
    chain::RulesArgs,
    member::{entry_line, spawn_member, DirStore},
};

#[derive(Args)]
pub struct DevArgs {
    /// Serve no page: print entry lines only.
    #[arg(long)]
    headless: bool,
    /// Native members (the silent ones included).
    #[arg(long, default_value_t = 7)]
    members: u32,
    /// Members that are staked and selected but never send a message (fault tolerance).
    #[arg(long, default_value_t = 0)]
    silent_members: u32,
    /// Exit 0 after this many entries.
    #[arg(long)]
    entries: Option<usize>,
    /// Milliseconds between blocks.
    #[arg(long, default_value_t = 1000)]
    block_time: u64,
    /// A relay request every this many blocks.
    #[arg(long, default_value_t = 10)]
    request_every: u64,
    /// The page's (and JSON-RPC's) port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The directory served as the page (the built wasm in `www/pkg`).
    #[arg(long, default_value = "www")]
    www: PathBuf,
    /// Writes every member event to FILE as a JSON line with the member's index and the
    /// milliseconds since start (`"member"`, `"ms"`): for profiling a DKG phase by phase.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Keep the chain (`DIR/chain`) and each member's key shares (`DIR/members/<i>`), so a
    /// restarted `dev` with the same arguments goes on with its groups and entries.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    rules: RulesArgs,
}

/// What the members reported, for the entry lines.
#[derive(Default)]
struct Tracker {
    /// Per DKG: when the first seat joined, when the last seat finished.
    dkg: BTreeMap<[u8; 32], (Instant, Option<Instant>)>,
    /// Per request: the signers' seats some member combined.
    signers: BTreeMap<RequestId, Vec<u32>>,
}

/// A dev member's key: fixed per index, so a restarted `dev` has the same operators.
fn member_key(i: u32) -> OperatorKey {
    let secret = Keccak256::digest(format!("keep-light/dev/member/{i}"));
    OperatorKey::from_bytes(&secret).expect("a hash is a valid key")
}

async fn start_relay(bootstrap: Vec<String>) -> Result<(NodeHandle, Vec<String>), String> {
    let listen = [
        "/ip4/127.0.0.1/tcp/0",
        "/ip4/127.0.0.1/tcp/0/ws",
        "/ip4/127.0.0.1/udp/0/webrtc-direct",
    ];
    let config = NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_bootstrap(bootstrap)
        .with_listen(
            listen
                .iter()
                .map(|a| a.parse().expect("valid literal"))
                .collect(),
        );
    let (relay, mut events) = Node::start(config).await.map_err(|e| e.to_string())?;
    let mut addresses = Vec::new();
    while addresses.len() < listen.len() {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(NodeEvent::Listening { address })) => addresses.push(address),
            Ok(Some(_)) => {}
            _ => return Err("a relay did not start listening".into()),
        }
    }
    tokio::spawn(async move { while events.next().await.is_some() {} });
    Ok((relay, addresses))
}

fn find<'a>(addresses: &'a [String], transport: &str) -> &'a str {
    addresses
        .iter()
        .find(|a| match transport {
            "tcp" => !a.contains("/ws") && a.contains("/tcp/"),
            other => a.contains(other),
        })
        .map(String::as_str)
        .unwrap_or_default()
}

pub async fn run(args: DevArgs) -> Result<(), String> {
    let config = args.rules.config(args.block_time);
    let chain = match &args.data_dir {
        Some(dir) => LocalChain::open(config, &dir.join("chain"))?.0,
        None => LocalChain::from_config(config)?,
    };
    chain.spawn_miner(Duration::from_millis(args.block_time.max(1)));
    let beacon: Arc<dyn BeaconChain> = Arc::new(chain.clone());

    let (relay, first) = start_relay(Vec::new()).await?;
    let (relay2, second) = start_relay(vec![find(&first, "tcp").to_owned()]).await?;
    let bootstrap = vec![
        find(&first, "tcp").to_owned(),
        find(&second, "tcp").to_owned(),
    ];

    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .await
        .map_err(|e| format!("cannot listen on port {}: {e}", args.port))?;
    let origin = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let www = (!args.headless).then(|| args.www.clone());
    tokio::spawn(serve(listener, www, beacon.clone()));

    let tracker: Arc<Mutex<Tracker>> = Arc::default();
    let trace = match &args.trace {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| format!("--trace {}: {e}", path.display()))?;
            Some(Arc::new(Mutex::new(std::io::BufWriter::new(file))))
        }
        None => None,
    };
    let setup = MemberSetup {
        bootstrap: bootstrap.clone(),
        beacon: beacon.clone(),
        data_dir: args.data_dir.clone(),
        tracker: tracker.clone(),
        trace: trace.clone(),
        started: platform::now(),
    };
    // The members' drivers hold non-Send channels, so they run on local executors: one thread
    // per core, each with its own LocalSet, the members dealt out among them. (On one
    // thread, 64 members' DKG work ran one after another while the runtime's workers, which
    // run the swarms and relays, waited.)
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, args.members.max(1) as usize);
    let speaking = args.members.saturating_sub(args.silent_members);
    let mut member_threads = Vec::new();
    for t in 0..threads {
        let mine = (0..speaking)
            .filter(|i| *i as usize % threads == t)
            .collect();
        member_threads.push(MembersThread::spawn(t, mine, setup.clone())?);
    }
    let mut result = Ok(());
    for thread in &mut member_threads {
        let started = (&mut thread.ready)
            .await
            .unwrap_or_else(|_| Err("a members thread ended".into()));
        if result.is_ok() {
            result = started;
        }
    }
    if result.is_ok() {
        // Nodes first, stakes after: the genesis DKG starts once every member can hear it.
        result = serve_members(&chain, &beacon, &args, &first, &second, &origin, &tracker).await;
    }
    for thread in member_threads {
        thread.stop().await;
    }
    if let Some(trace) = &trace {
        lock(trace).flush().map_err(|e| format!("--trace: {e}"))?;
    }
    relay.shutdown().await;
    relay2.shutdown().await;
    result
}

/// What a members thread needs to start its members and report their events.
#[derive(Clone)]
struct MemberSetup {
    bootstrap: Vec<String>,
    beacon: Arc<dyn BeaconChain>,
    data_dir: Option<PathBuf>,
    tracker: Arc<Mutex<Tracker>>,
    trace: Option<Arc<Mutex<std::io::BufWriter<std::fs::File>>>>,
    started: Instant,
}

/// A thread serving some of the members on its own `LocalSet` (their swarms run on the
/// runtime's workers) until it is stopped.
struct MembersThread {
    /// Once its members' nodes are up (or one failed to start).
    ready: oneshot::Receiver<Result<(), String>>,
    stop: oneshot::Sender<()>,
    /// Once its nodes have shut down.
    done: oneshot::Receiver<()>,
}

impl MembersThread {
    /// Starts thread `index` for the members numbered `members`.
    fn spawn(index: usize, members: Vec<u32>, setup: MemberSetup) -> Result<Self, String> {
        let (ready_tx, ready) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel();
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name(format!("members-{index}"))
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                runtime.block_on(local.run_until(async move {
                    let mut nodes = Vec::new();
                    let started = start_members(members, &setup, &mut nodes).await;
                    let serve = started.is_ok();
                    let _ = ready_tx.send(started);
                    if serve {
                        let _ = stop_rx.await;
                    }
                    for node in nodes {
                        node.shutdown().await;
                    }
                    let _ = done_tx.send(());
                }));
            })
            .map_err(|e| format!("cannot start a members thread: {e}"))?;
        Ok(Self { ready, stop, done })
    }

    /// Stops its members and waits for their nodes to shut down.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.done.await;
    }
}

/// Starts a node and the member service for each of `members` on the current `LocalSet`,
/// keeping the nodes in `nodes`.
async fn start_members(
    members: Vec<u32>,
    setup: &MemberSetup,
    nodes: &mut Vec<NodeHandle>,
) -> Result<(), String> {
    for i in members {
        let key = member_key(i);
        let config = NodeConfig::new(key.clone()).with_bootstrap(setup.bootstrap.clone());
        let (node, mut events) = Node::start(config).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move { while events.next().await.is_some() {} });
        let store: Rc<dyn GroupStore> = match &setup.data_dir {
            Some(dir) => Rc::new(DirStore::new(&dir.join("members").join(i.to_string()))?),
            None => Rc::new(KeyValueStore::new(format!("dev/{}", key.address()))),
        };
        let (tracker, trace, started) = (setup.tracker.clone(), setup.trace.clone(), setup.started);
        spawn_member(
            node.clone(),
            key,
            setup.beacon.clone(),
            store,
            move |event| {
                track(&mut lock(&tracker), &event);
                if let Some(trace) = &trace {
                    let mut line = serde_json::to_value(&event).unwrap_or_default();
                    line["member"] = i.into();
                    line["ms"] = (started.elapsed().as_millis() as u64).into();
                    let _ = writeln!(lock(trace), "{line}");
                }
            },
        );
        nodes.push(node);
    }
    Ok(())
}

/// With every member's node up: stakes them, says where everything is, and follows the chain
/// ([`follow`]).
async fn serve_members(
    chain: &LocalChain,
    beacon: &Arc<dyn BeaconChain>,
    args: &DevArgs,
    first: &[String],
    second: &[String],
    origin: &str,
    tracker: &Mutex<Tracker>,
) -> Result<(), String> {
    for i in 0..args.members {
        let operator = member_key(i).address();
        beacon.faucet(operator).await.map_err(|e| e.to_string())?;
    }
    eprintln!(
        "keep-light dev: {} members ({} silent), groups of {} (threshold {}), a block every {} ms; \
         chain JSON-RPC at {origin}/rpc; relays {} and {}",
        args.members,
        args.silent_members,
        args.rules.group_size,
        args.rules.threshold,
        args.block_time,
        find(first, "/ws"),
        find(second, "/ws"),
    );
    if !args.headless {
        let relays = [find(first, "/ws"), find(second, "webrtc-direct")];
        let query: Vec<String> = relays
            .iter()
            .map(|r| format!("relay={}", urlencode(r)))
            .chain([format!("chain={}", urlencode(&format!("{origin}/rpc")))])
            .collect();
        let url = format!("{origin}/?{}", query.join("&"));
        println!("{}", json!({ "url": url }));
        eprintln!("open {url}");
    }
    follow(chain, args, tracker).await
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A member's report that panicked left the tracker as it was: keep using it.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn track(tracker: &mut Tracker, event: &MemberEvent) {
    match event {
        MemberEvent::DkgJoined { session, .. } => {
            tracker
                .dkg
                .entry(*session)
                .or_insert((platform::now(), None));
        }
        MemberEvent::DkgFinished {
            session, ok: true, ..
        } => {
            if let Some((_, finished)) = tracker.dkg.get_mut(session) {
                *finished = Some(platform::now());
            }
        }
        MemberEvent::Entry {
            request, signers, ..
        } if !signers.is_empty() => {
            tracker
                .signers
                .entry(*request)
                .or_insert_with(|| signers.clone());
        }
        _ => {}
    }
}

/// Follows the chain: requests entries and prints a line per entry; returns after
/// `--entries` entries, or at Ctrl-C.
async fn follow(
    chain: &LocalChain,
    args: &DevArgs,
    tracker: &Mutex<Tracker>,
) -> Result<(), String> {
    let shutdown = crate::cli::shutdown_signal()?;
    tokio::pin!(shutdown);
    // A chain kept from an earlier run: its entries were printed then, and its groups serve.
    let mut cursor = chain.with_rules(|rules| rules.head()) + 1;
    let mut requested: BTreeMap<RequestId, Instant> = BTreeMap::new();
    let mut dkg_ms: BTreeMap<GroupId, u64> = BTreeMap::new();
    // Entries on chain whose line waits for a member's report of its signers.
    let mut waiting: Vec<(RequestId, Instant)> = Vec::new();
    let mut printed = 0;
    let mut last_request: Option<u64> = None;
    loop {
        let poll = chain.events(cursor, Duration::from_millis(200));
        let events = tokio::select! {
            page = poll => page.map_err(|e| e.to_string())?,
            () = &mut shutdown => return Ok(()),
        };
        cursor = events.through + 1;
        for logged in &events.events {
            match &logged.event {
                Event::GroupCreated { group, session, .. } => {
                    let tracker = lock(tracker);
                    if let Some((joined, Some(finished))) = tracker.dkg.get(session) {
                        dkg_ms.insert(*group, finished.duration_since(*joined).as_millis() as u64);
                    }
                }
                Event::EntrySubmitted { request, .. } => waiting.push((*request, platform::now())),
                _ => {}
            }
        }
        // The first request as soon as a group exists, then one every `--request-every`
        // blocks while none is pending.
        let head = events.through;
        let has_group = chain.with_rules(|rules| !rules.groups().is_empty());
        let pending = requested
            .keys()
            .any(|r| chain.with_rules(|rules| rules.served(*r).is_none()));
        let due = last_request.is_none_or(|at| head >= at + args.request_every);
        if has_group && args.request_every > 0 && !pending && due {
            if let Ok(request) = chain.request_entry().await {
                requested.insert(request, platform::now());
                last_request = Some(head);
            }
        }
        // Print entries whose signers are known, or that waited two seconds for them.
        let mut still = Vec::new();
        for (request, seen) in waiting.drain(..) {
            let signers = lock(tracker).signers.get(&request).cloned();
            if signers.is_none() && seen.elapsed() < Duration::from_secs(2) {
                still.push((request, seen));
                continue;
            }
            let Some((served, group)) = chain.with_rules(|rules| {
                let served = *rules.served(request)?;
                Some((served, rules.groups()[served.group as usize].clone()))
            }) else {
                continue;
            };
            let signers: Vec<Address> = signers
                .unwrap_or_default()
                .iter()
                .filter_map(|seat| group.operators.get(*seat as usize - 1).copied())
                .collect();
            let entry_ms = requested
                .get(&request)
                .map(|at| seen.duration_since(*at).as_millis() as u64);
            let line = entry_line(
                &served,
                &group,
                &signers,
                dkg_ms.get(&served.group).copied(),
                entry_ms,
            );
            println!("{line}");
            printed += 1;
            if args.entries.is_some_and(|k| printed >= k) {
                return Ok(());
            }
        }
        waiting = still;
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Serves `www` (GET, without it 404) and the chain's JSON-RPC (POST, any path; `/rpc` by
/// convention) on one origin, so the page needs no CORS.
async fn serve(
    listener: tokio::net::TcpListener,
    www: Option<PathBuf>,
    chain: Arc<dyn BeaconChain>,
) {
    let www = Arc::new(www);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (www, chain) = (www.clone(), chain.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, www.clone(), chain.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    www: Arc<Option<PathBuf>>,
    chain: Arc<dyn BeaconChain>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let respond = |status: StatusCode, kind: &'static str, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-cache"),
        );
        Ok(response)
    };
    if request.method() == Method::POST {
        let reply = match Limited::new(request.into_body(), rpc::MAX_REQUEST)
            .collect()
            .await
        {
            Ok(body) => rpc::dispatch(&*chain, &body.to_bytes()).await,
            Err(error) => json!({"jsonrpc": "2.0", "id": null,
                                 "error": {"code": -32600, "message": format!("request body: {error}")}}),
        };
        return respond(
            StatusCode::OK,
            "application/json",
            reply.to_string().into_bytes(),
        );
    }
    let not_found = || respond(StatusCode::NOT_FOUND, "text/plain", b"not found".to_vec());
    let Some(root) = www.as_ref() else {
        return not_found();
    };
    let path = request.uri().path();
    let relative = if path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_owned()
    };
    // Only plain names below the root: no `..`, no hidden files.
    if relative
        .split('/')
        .any(|part| part == ".." || part.starts_with('.'))
    {
        return not_found();
    }
    let file = root.join(relative.trim_start_matches('/'));
    match tokio::fs::read(&file).await {
        Ok(bytes) => respond(StatusCode::OK, content_type(&file), bytes),
        Err(_) => not_found(),
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

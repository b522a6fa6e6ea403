//! The `keep-light` command line (DESIGN.md section 6): JSON lines on stdout, logs on stderr.

#[cfg(target_arch = "wasm32")]
fn main() {}

// A relay or a `keep-light dev` process allocates for every frame of every connection, on
// several threads at once. With mimalloc's per-thread heaps, `keep-light dev` with 64 members
// needs about a tenth less CPU than with glibc's malloc, for up to a fifth more resident
// memory (docs/benchmarks.md has the runs).
#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod attest;
#[cfg(not(target_arch = "wasm32"))]
mod bls;
#[cfg(not(target_arch = "wasm32"))]
mod chain;
#[cfg(not(target_arch = "wasm32"))]
mod dev;
#[cfg(not(target_arch = "wasm32"))]
mod member;

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::{path::PathBuf, process::ExitCode};

    use clap::{Parser, Subcommand};
    use futures::StreamExt;
    use keep_light::{
        identity::{keystore, Address, OperatorKey},
        net::{firewall::Policy, Node, NodeConfig, NodeEvent, NodeHandle, Role, Router},
        platform,
    };
    use libp2p::{Multiaddr, PeerId};
    use serde_json::json;
    use tokio::io::AsyncBufReadExt;

    #[derive(Parser)]
    #[command(
        name = "keep-light",
        version,
        about = "keep-light relay, member node and tools"
    )]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Print the peer ID and Ethereum address of a key.
        Id {
            #[command(flatten)]
            key: KeyArgs,
        },
        /// Run a relay: routes pubsub for every topic its peers join.
        Relay {
            /// Listen address (repeatable). Default: WebSocket, TCP and WebRTC-direct on 127.0.0.1,
            /// random ports.
            #[arg(long = "listen")]
            listen: Vec<Multiaddr>,
            /// Directory holding the relay's identity (created when missing). Without it the relay
            /// uses a fresh key.
            #[arg(long)]
            data_dir: Option<PathBuf>,
            /// Identity key; overrides the one in --data-dir.
            #[arg(long)]
            key_hex: Option<String>,
            /// Who may connect: `open`; `attested` (a valid attestation within 10 s of
            /// connecting, renewed before it expires); `staked` (as attested, or the peer's own
            /// key, and the operator's stake on --chain at least the minimum, checked again
            /// every 12 h). --allow peers are exempt; peers failing it are banned.
            #[arg(long, default_value = "open")]
            firewall: Policy,
            /// The chain's JSON-RPC URL (`keep-light chain` prints it); needed by `staked`.
            #[arg(long)]
            chain: Option<String>,
            /// Inbound handshakes one IP address may have in flight (a dial storm gets this
            /// share of the 256, no more).
            #[arg(long, default_value_t = 32)]
            max_pending_per_ip: usize,
            /// Inbound connections one IP address may keep (raise it for load tests, where
            /// every client comes from one address).
            #[arg(long, default_value_t = 256)]
            max_per_ip: usize,
            /// A peer always admitted (another relay), by peer ID (repeatable).
            #[arg(long = "allow")]
            allow: Vec<PeerId>,
            /// An address others reach this relay at, e.g. behind NAT (repeatable); circuits
            /// are served there. Default: the listen addresses.
            #[arg(long = "external")]
            external: Vec<Multiaddr>,
            /// Accept only attestations for this chain id.
            #[arg(long)]
            chain_id: Option<u64>,
            /// Pubsub routing of the network: gossipsub or floodsub (all nodes alike).
            #[arg(long, default_value = "gossipsub")]
            router: Router,
        },
        /// Run a member node: join topics, print events, publish lines read on stdin.
        Node {
            /// Relay address to connect to (repeatable).
            #[arg(long = "bootstrap")]
            bootstrap: Vec<String>,
            #[command(flatten)]
            key: KeyArgs,
            /// Topic to join (repeatable).
            #[arg(long = "join")]
            join: Vec<String>,
            /// Listen address (repeatable); members normally only dial.
            #[arg(long = "listen")]
            listen: Vec<Multiaddr>,
            /// Pubsub routing of the network: gossipsub or floodsub (all nodes alike).
            #[arg(long, default_value = "gossipsub")]
            router: Router,
            /// A wallet's delegation to this key (`attest create` output, or the page's), sent
            /// to every peer right after connecting.
            #[arg(long)]
            attestation: Option<PathBuf>,
            /// Directory where the relays that worked are remembered (`good-relays.json`) and
            /// tried first on the next start.
            #[arg(long)]
            data_dir: Option<PathBuf>,
            /// Republish every received message on its topic (a peer for round-trip benchmarks;
            /// never run two echo nodes in one topic). With --member: answer each group text
            /// with `echo:<text>` on the group channel, and a text `burst:N` with N texts
            /// `burst-<i>` sent at once without retransmission (the browser channel harness).
            #[arg(long)]
            echo: bool,
            /// Member of a group channel: every operator address of the group, this node's
            /// included (repeatable). Stdin `send TEXT` then publishes on the group's topic
            /// (retransmitted with backoff); received texts print as `channel_message`.
            #[arg(long = "member")]
            members: Vec<Address>,
        },
        /// The dev chain alone (the beacon contract's rules, mining blocks), over JSON-RPC.
        Chain(crate::chain::ChainArgs),
        /// The main job: dev chain, two relays, native members, entries; the page (not
        /// --headless).
        Dev(crate::dev::DevArgs),
        /// A native beacon member: staked on a dev chain, selected, runs DKG and signing.
        Member {
            #[command(flatten)]
            key: KeyArgs,
            #[command(flatten)]
            args: crate::member::MemberArgs,
        },
        /// Ask the beacon for a random number.
        Beacon {
            #[command(subcommand)]
            command: crate::member::BeaconCommand,
        },
        /// Wallet delegations (SIWE attestations): create, verify.
        Attest {
            #[command(subcommand)]
            command: crate::attest::AttestCommand,
        },
        /// BN254 threshold BLS: keygen, sign, verify, deal, combine.
        Bls {
            #[command(subcommand)]
            command: crate::bls::BlsCommand,
        },
    }

    /// Where the operator key comes from: exactly one of a hex secret or a V3 keystore file.
    #[derive(clap::Args)]
    struct KeyArgs {
        /// 32-byte secp256k1 secret, hex (0x optional).
        #[arg(
            long,
            required_unless_present = "keystore",
            conflicts_with = "keystore"
        )]
        key_hex: Option<String>,
        /// Ethereum V3 keystore (geth, ethers, MetaMask export); password from
        /// KEEP_LIGHT_PASSWORD or --password-file.
        #[arg(long)]
        keystore: Option<PathBuf>,
        /// File whose first line is the keystore password.
        #[arg(long, requires = "keystore")]
        password_file: Option<PathBuf>,
    }

    impl KeyArgs {
        fn load(&self) -> Result<OperatorKey, String> {
            if let Some(hex) = &self.key_hex {
                return OperatorKey::from_hex(hex).map_err(|e| e.to_string());
            }
            let path = self.keystore.as_ref().ok_or("no key given")?;
            let password = match &self.password_file {
                Some(file) => {
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| format!("{}: {e}", file.display()))?;
                    text.lines().next().unwrap_or("").to_string()
                }
                None => std::env::var("KEEP_LIGHT_PASSWORD").map_err(|_| {
                    "a keystore needs a password: set KEEP_LIGHT_PASSWORD or pass --password-file"
                        .to_string()
                })?,
            };
            // Read at most one byte past the limit so a huge file is refused without loading it.
            let mut json = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(
                    std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?,
                    keystore::MAX_KEYSTORE_LEN as u64 + 1,
                ),
                &mut json,
            )
            .map_err(|e| format!("{}: {e}", path.display()))?;
            keystore::decrypt_keystore(&json, &password)
                .map_err(|e| format!("{}: {e}", path.display()))
        }
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        // Pure computations: no runtime, no log set-up.
        let cli = match cli.command {
            Command::Bls { command } => return crate::bls::run(command),
            Command::Attest { command } => return crate::attest::run(command),
            other => Cli { command: other },
        };
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info,libp2p_gossipsub=warn".into()),
            )
            .init();
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => return fail(&format!("cannot start the runtime: {e}")),
        };
        let result = runtime.block_on(async {
            match cli.command {
                Command::Id { key } => id(&key),
                Command::Chain(args) => crate::chain::run(args).await,
                Command::Dev(args) => crate::dev::run(args).await,
                Command::Member { key, args } => crate::member::run_member(key.load()?, args).await,
                Command::Beacon { command } => crate::member::run_beacon(command).await,
                Command::Relay {
                    listen,
                    data_dir,
                    key_hex,
                    firewall,
                    allow,
                    external,
                    chain,
                    max_pending_per_ip,
                    max_per_ip,
                    chain_id,
                    router,
                } => {
                    let mut config = NodeConfig::new(relay_key(data_dir.clone(), key_hex)?)
                        .with_role(Role::Relay)
                        .with_router(router)
                        .with_firewall(firewall, allow)
                        .with_external(external)
                        .with_ip_limits(max_pending_per_ip, max_per_ip);
                    if let Some(url) = chain {
                        let chain = keep_light::chain::rpc::RpcChain::new(&url)?;
                        config = config.with_chain(std::sync::Arc::new(chain));
                    }
                    if let Some(chain_id) = chain_id {
                        config = config.with_chain_id(chain_id);
                    }
                    relay(config, listen, data_dir).await
                }
                Command::Node {
                    bootstrap,
                    key,
                    join,
                    listen,
                    router,
                    attestation,
                    data_dir,
                    echo,
                    members,
                } => {
                    let mut config = NodeConfig::new(key.load()?)
                        .with_router(router)
                        .with_bootstrap(bootstrap)
                        .with_topics(join)
                        .with_listen(listen);
                    if let Some(file) = attestation {
                        config = config.with_attestation(crate::attest::read(&file)?);
                    }
                    if let Some(dir) = &data_dir {
                        good_relays::load(dir);
                        config = config.with_bootstrap_store(good_relays::KEY);
                    }
                    node(config, echo, members, data_dir).await
                }
                Command::Bls { .. } | Command::Attest { .. } => {
                    unreachable!("handled before the runtime starts")
                }
            }
        });
        // Not a plain drop: that waits for every blocking task, and a pending read of stdin
        // (`node`'s commands) never ends while stdin stays open, so SIGTERM or Ctrl-C would
        // leave the process running until the next line or EOF.
        runtime.shutdown_background();
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        }
    }

    fn fail(error: &str) -> ExitCode {
        println!("{}", json!({ "error": error }));
        tracing::error!("{error}");
        ExitCode::FAILURE
    }

    fn id(key: &KeyArgs) -> Result<(), String> {
        let key = key.load()?;
        println!(
            "{}",
            json!({
                "address": key.address().to_string(),
                "peer_id": key.peer_id().to_string(),
                "public_key": format!("0x{}", hex::encode(key.public_key_compressed())),
            })
        );
        Ok(())
    }

    /// The relay's identity: `--key-hex`, else `DIR/identity.key`, else (and saved there) a new one.
    fn relay_key(
        data_dir: Option<PathBuf>,
        key_hex: Option<String>,
    ) -> Result<OperatorKey, String> {
        if let Some(hex) = key_hex {
            return OperatorKey::from_hex(&hex).map_err(|e| e.to_string());
        }
        let Some(dir) = data_dir else {
            return Ok(OperatorKey::generate());
        };
        let path = dir.join("identity.key");
        let text = read_or_create_secret(&path, || {
            Ok(hex::encode(OperatorKey::generate().secret_bytes()))
        })?;
        OperatorKey::from_hex(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The text of the secret file `path`; made by `make` and written (0600, directory
    /// created) when there is none yet.
    fn read_or_create_secret(
        path: &std::path::Path,
        make: impl FnOnce() -> Result<String, String>,
    ) -> Result<String, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = make()?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                write_secret(path, &text)?;
                Ok(text)
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// The relay's WebRTC-direct certificate in `--data-dir` (`webrtc.pem`), made on first use:
    /// its hash is in the relay's `/webrtc-direct/certhash/…` address, which must not change.
    fn webrtc_certificate(dir: &std::path::Path) -> Result<String, String> {
        read_or_create_secret(
            &dir.join("webrtc.pem"),
            keep_light::net::transport::new_webrtc_certificate,
        )
    }

    /// A member's good relays in `--data-dir` (`good-relays.json`): loaded into the node's
    /// bootstrap store at start and written back when the relays change.
    mod good_relays {
        use std::path::Path;

        use keep_light::platform;

        /// The bootstrap store key (the same the page uses in `localStorage`).
        pub const KEY: &str = "keep-light/good-relays";
        const FILE: &str = "good-relays.json";

        pub fn load(dir: &Path) {
            // At most a few KiB; anything unreadable is ignored (the relays are only an order).
            if let Ok(text) = std::fs::read_to_string(dir.join(FILE)) {
                if text.len() <= 64 * 1024 && serde_json::from_str::<Vec<String>>(&text).is_ok() {
                    let _ = platform::store(KEY, &text);
                }
            }
        }

        pub fn save(dir: &Path) {
            if let Some(text) = platform::load(KEY) {
                let temporary = dir.join(format!("{FILE}.tmp"));
                let written = std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(&temporary, text))
                    .and_then(|()| std::fs::rename(&temporary, dir.join(FILE)));
                if let Err(e) = written {
                    tracing::warn!(%e, "good relays not saved");
                }
            }
        }
    }

    /// The relay's ban list in `--data-dir` (`bans.json`).
    mod bans {
        use std::path::Path;

        use keep_light::net::firewall::BanRecord;
        use serde_json::json;

        const FILE: &str = "bans.json";
        /// Larger files are not read (65,536 records take about 12 MiB).
        const MAX_LEN: u64 = 32 << 20;

        /// The saved records; none when there is no file. An unreadable file is set aside as
        /// `bans.json.unreadable` (kept for the operator) and reported, and the relay starts
        /// without it rather than not at all.
        pub fn load(dir: &Path) -> Vec<BanRecord> {
            let path = dir.join(FILE);
            let text = match std::fs::metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
                Ok(meta) if meta.len() > MAX_LEN => Err(format!("larger than {MAX_LEN} bytes")),
                _ => std::fs::read_to_string(&path).map_err(|e| e.to_string()),
            };
            match text.and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string())) {
                Ok(records) => records,
                Err(error) => {
                    let aside = dir.join(format!("{FILE}.unreadable"));
                    let _ = std::fs::rename(&path, &aside);
                    println!(
                        "{}",
                        json!({"event": "bans_unreadable", "file": path.display().to_string(),
                               "moved_to": aside.display().to_string(), "error": error})
                    );
                    Vec::new()
                }
            }
        }

        /// Replaces the file atomically (write aside, then rename).
        pub fn save(dir: &Path, records: &[BanRecord]) -> Result<(), String> {
            let path = dir.join(FILE);
            let temporary = dir.join(format!("{FILE}.tmp"));
            let text = serde_json::to_string_pretty(records).map_err(|e| e.to_string())?;
            std::fs::write(&temporary, text)
                .and_then(|()| std::fs::rename(&temporary, &path))
                .map_err(|e| format!("{}: {e}", path.display()))
        }
    }

    /// Writes a new file (refusing an existing one) readable by its owner only, flushed to disk.
    pub(crate) fn write_secret(path: &std::path::Path, text: &str) -> Result<(), String> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Runs a relay with `config` (identity, role, router, firewall set) on `listen`, keeping
    /// its bans in `data_dir`.
    async fn relay(
        config: NodeConfig,
        listen: Vec<Multiaddr>,
        data_dir: Option<PathBuf>,
    ) -> Result<(), String> {
        let listen = if listen.is_empty() {
            vec![
                "/ip4/127.0.0.1/tcp/0/ws".parse().expect("valid literal"),
                "/ip4/127.0.0.1/tcp/0".parse().expect("valid literal"),
                "/ip4/127.0.0.1/udp/0/webrtc-direct"
                    .parse()
                    .expect("valid literal"),
            ]
        } else {
            listen
        };
        let config = match &data_dir {
            Some(dir) => config.with_webrtc_certificate(webrtc_certificate(dir)?),
            None => config,
        };
        let bans = data_dir.as_deref().map(bans::load).unwrap_or_default();
        let running = bans
            .iter()
            .filter(|b| b.until_ms > platform::unix_time().as_millis() as u64)
            .count();
        if !bans.is_empty() {
            println!(
                "{}",
                json!({"event": "bans_restored", "running": running, "remembered": bans.len()})
            );
        }
        let config = config.with_bans(bans).with_listen(listen);
        let shutdown = shutdown_signal()?;
        tokio::pin!(shutdown);
        let (handle, mut events) = Node::start(config).await.map_err(|e| e.to_string())?;
        tracing::info!(peer = %handle.peer_id(), "relay started");
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(NodeEvent::Listening { address }) => {
                        println!("{}", json!({ "listening": address }));
                    }
                    // Who a peer acts for, and refusals: what an operator audits.
                    Some(event @ (NodeEvent::PeerAttested { .. }
                        | NodeEvent::AttestationRejected { .. }
                        | NodeEvent::OperatorChecked { .. })) => {
                        println!("{}", event.to_json());
                    }
                    // Bans, kept in --data-dir so a restart does not pardon anyone.
                    Some(event @ (NodeEvent::Banned { .. } | NodeEvent::Unbanned { .. })) => {
                        println!("{}", event.to_json());
                        if let Some(dir) = &data_dir {
                            if let Err(e) = bans::save(dir, &handle.bans().await) {
                                println!("{}", json!({"event": "bans_not_saved", "error": e}));
                            }
                        }
                    }
                    Some(other) => tracing::debug!("{}", other.to_json()),
                    None => return Err("the node stopped".into()),
                },
                () = &mut shutdown => break,
            }
        }
        tracing::info!("shutting down");
        handle.shutdown().await;
        Ok(())
    }

    async fn node(
        config: NodeConfig,
        echo: bool,
        members: Vec<Address>,
        data_dir: Option<PathBuf>,
    ) -> Result<(), String> {
        let address = config.address();
        if !members.is_empty() && !members.contains(&address) {
            return Err(format!(
                "--member must list this node's own address {address}"
            ));
        }
        let shutdown = shutdown_signal()?;
        tokio::pin!(shutdown);
        let (handle, mut events) = Node::start(config).await.map_err(|e| e.to_string())?;
        let mut group = if members.is_empty() {
            None
        } else {
            Some(group::open(&handle, &members, echo).await?)
        };
        let mut ticks = tokio::time::interval(group::TICK);
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut stdin_open = true;
        loop {
            tokio::select! {
                event = events.next() => {
                    let Some(event) = event else { return Err("the node stopped".into()) };
                    println!("{}", event.to_json());
                    // A relay connected: the node has updated its good list; keep it.
                    if let (Some(dir), NodeEvent::Health { .. }) = (&data_dir, &event) {
                        good_relays::save(dir);
                    }
                    if let (true, NodeEvent::Message { topic, data, .. }) = (echo, &event) {
                        report_publish(&handle, topic, data.clone()).await;
                    }
                }
                line = stdin.next_line(), if stdin_open => match line {
                    Ok(Some(line)) => match (line.trim().strip_prefix("send "), group.as_mut()) {
                        (Some(text), Some(group)) => group.send(text).await,
                        _ => run_line(&handle, &line).await,
                    },
                    // End of input: keep serving until a signal.
                    Ok(None) | Err(_) => stdin_open = false,
                },
                _ = ticks.tick(), if group.is_some() => {
                    if let Some(group) = group.as_mut() {
                        group.tick().await;
                    }
                }
                () = &mut shutdown => break,
            }
        }
        if let Some(group) = group {
            group.channel.close();
        }
        handle.shutdown().await;
        Ok(())
    }

    /// `node --member …`: one group channel carrying text.
    mod group {
        use std::{cell::RefCell, rc::Rc, time::Duration};

        use keep_light::{
            identity::Address,
            net::{
                channel::{group_topic, Channel, ChannelConfig, Received, Registry},
                retransmit::Strategy,
                NodeHandle, PublishError,
            },
            wire::{Text, CHANNEL_TEXT_TYPE},
        };
        use serde_json::json;

        /// How often the channel republishes and delivers.
        pub const TICK: Duration = Duration::from_millis(100);

        /// Texts that `echo:` answers are never answered again (two echo nodes would loop).
        const ECHO_PREFIX: &str = "echo:";
        /// `burst:N` asks an echo member for N texts at once.
        const BURST_PREFIX: &str = "burst:";
        /// The texts a burst is made of: `burst-<i>`.
        const BURST_TEXT_PREFIX: &str = "burst-";
        /// The largest burst one request may ask for.
        const MAX_BURST: usize = 100_000;

        pub struct Group {
            pub channel: Channel,
            /// Texts to answer, filled by the handler (which cannot send itself).
            to_echo: Option<Rc<RefCell<Vec<String>>>>,
        }

        pub async fn open(
            node: &NodeHandle,
            members: &[Address],
            echo: bool,
        ) -> Result<Group, String> {
            let topic = group_topic(members);
            let to_echo = echo.then(Rc::<RefCell<Vec<String>>>::default);
            let mut registry = Registry::new();
            let printed = topic.clone();
            let queue = to_echo.clone();
            registry.register(CHANNEL_TEXT_TYPE, move |m: Received<Text>| {
                println!(
                    "{}",
                    json!({
                        "event": "channel_message",
                        "topic": printed,
                        "from": m.from.to_string(),
                        "sender": m.sender.to_string(),
                        "sequence": m.sequence,
                        "text": m.message.text,
                    })
                );
                if let Some(queue) = &queue {
                    // Burst texts are a harness's load, not requests: answering them would
                    // multiply the burst and bury the tab's measurement under echoes.
                    let text = &m.message.text;
                    if !text.starts_with(ECHO_PREFIX) && !text.starts_with(BURST_TEXT_PREFIX) {
                        queue
                            .borrow_mut()
                            .push(format!("{ECHO_PREFIX}{}", m.message.text));
                    }
                }
            });
            let config = ChannelConfig::new(topic).with_members(members.iter().copied());
            let channel = Channel::open(node, config, registry)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Group { channel, to_echo })
        }

        impl Group {
            /// Sends `text`, republished with backoff for the rest of the run.
            pub async fn send(&mut self, text: &str) {
                let message = Text {
                    text: text.to_owned(),
                };
                match self
                    .channel
                    .send_retransmitted("sent", CHANNEL_TEXT_TYPE, &message, Strategy::Backoff)
                    .await
                {
                    // Nobody in the topic yet: the ticks will send it.
                    Ok(()) | Err(PublishError::NoPeers) => {}
                    Err(e) => println!(
                        "{}",
                        json!({"event": "publish_failed", "topic": self.channel.topic(),
                               "error": e.to_string()})
                    ),
                }
            }

            /// Sends `n` texts `burst-<i>` at once, each once (no retransmission).
            async fn burst(&mut self, n: usize) {
                for i in 0..n {
                    let message = Text {
                        text: format!("{BURST_TEXT_PREFIX}{i}"),
                    };
                    if let Err(e) = self.channel.send(CHANNEL_TEXT_TYPE, &message).await {
                        println!(
                            "{}",
                            json!({"event": "publish_failed", "topic": self.channel.topic(),
                                   "error": e.to_string()})
                        );
                        return;
                    }
                }
            }

            /// Republishes what is due, runs handlers, answers what is to be echoed.
            pub async fn tick(&mut self) {
                self.channel.tick().await;
                self.channel.drain();
                let answers = self
                    .to_echo
                    .as_ref()
                    .map(|queue| std::mem::take(&mut *queue.borrow_mut()))
                    .unwrap_or_default();
                for text in answers {
                    let burst = text
                        .strip_prefix(ECHO_PREFIX)
                        .and_then(|t| t.strip_prefix(BURST_PREFIX))
                        .and_then(|n| n.parse::<usize>().ok());
                    match burst {
                        Some(n) => self.burst(n.min(MAX_BURST)).await,
                        None => self.send(&text).await,
                    }
                }
            }
        }
    }

    /// One stdin command: `publish TOPIC TEXT`, `join TOPIC`, `leave TOPIC`.
    async fn run_line(handle: &NodeHandle, line: &str) {
        let line = line.trim();
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("publish"), Some(topic), text) => {
                report_publish(handle, topic, text.unwrap_or("").as_bytes().to_vec()).await;
            }
            (Some("join"), Some(topic), None) => handle.join(topic),
            (Some("leave"), Some(topic), None) => handle.leave(topic),
            (None | Some(""), ..) => {}
            _ => println!(
                "{}",
                json!({"event": "command_error", "line": line,
                       "error": "expected `publish TOPIC TEXT`, `join TOPIC` or `leave TOPIC`"})
            ),
        }
    }

    async fn report_publish(handle: &NodeHandle, topic: &str, data: Vec<u8>) {
        if let Err(e) = handle.publish(topic, data).await {
            println!(
                "{}",
                json!({"event": "publish_failed", "topic": topic, "error": e.to_string()})
            );
        }
    }

    /// Installs the SIGINT/SIGTERM handlers now (so a signal arriving right after start is not
    /// fatal) and returns a future that completes on the first of them.
    pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
            let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
            Ok(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            })
        }
        #[cfg(not(unix))]
        {
            Ok(async {
                let _ = tokio::signal::ctrl_c().await;
            })
        }
    }
}

//! `keep-light chain`: the dev chain on its own (the beacon contract's rules, mining a block
//! every `--block-time`), served over JSON-RPC so relays, members and pages in other processes
//! can use it. Stakes are set with `--stake ADDRESS=AMOUNT` and changed at run time by stdin
//! lines `stake ADDRESS AMOUNT`; with `--block-time 0` blocks are mined by stdin lines `mine`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use clap::Args;
use keep_light::{
    beacon::group::Lifetime,
    chain::{local::LocalChain, rpc, rules::Config},
    identity::Address,
};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

/// The contract's parameters, shared by `chain` and `dev`.
#[derive(Args, Clone)]
pub struct RulesArgs {
    /// The least stake the chain recognises (smallest unit); a seat per minimum staked.
    #[arg(long, default_value_t = 1)]
    pub minimum_stake: u128,
    /// Seats per group (N).
    #[arg(long, default_value_t = 5)]
    pub group_size: u32,
    /// Shares needed to sign (T).
    #[arg(long, default_value_t = 3)]
    pub threshold: u32,
    /// Blocks each DKG phase may last when a member is silent (default: 5 s of blocks, at
    /// least 4).
    #[arg(long)]
    pub phase_blocks: Option<u64>,
    /// Blocks between a DKG's start event and its first phase, for the members to join its
    /// channel (default: 1 s of blocks, at least 1).
    #[arg(long)]
    pub join_blocks: Option<u64>,
    /// Blocks between successive submitters of a result or an entry.
    #[arg(long, default_value_t = 2)]
    pub submission_step: u64,
    /// Entries a group serves before it expires.
    #[arg(long, default_value_t = 8)]
    pub group_lifetime: u64,
    /// Chain id attestations must name (31337, as anvil and hardhat).
    #[arg(long, default_value_t = 31337)]
    pub chain_id: u64,
    /// Refuse `keep_faucet` and do not stake registering operators (as a real chain).
    #[arg(long)]
    pub no_faucet: bool,
}

impl RulesArgs {
    /// The rules for a chain mining a block every `block_time_ms`.
    pub fn config(&self, block_time_ms: u64) -> Config {
        let phase_blocks = self
            .phase_blocks
            .unwrap_or_else(|| 5_000u64.div_ceil(block_time_ms.max(1)).max(4));
        // Mined by hand (block time 0), one block is as long as the miner waits.
        let join_blocks = self.join_blocks.unwrap_or_else(|| match block_time_ms {
            0 => 1,
            ms => 1_000u64.div_ceil(ms).max(1),
        });
        Config::dev()
            .with_chain_id(self.chain_id)
            .with_minimum_stake(self.minimum_stake)
            .with_group(self.group_size, self.threshold)
            .with_join_blocks(join_blocks)
            .with_phase_blocks(phase_blocks)
            .with_result_step(self.submission_step)
            .with_relay_step(self.submission_step)
            .with_lifetime(Lifetime {
                entries: self.group_lifetime,
                blocks: Config::dev().lifetime().blocks,
            })
            .with_faucet(!self.no_faucet)
    }
}

#[derive(Args)]
pub struct ChainArgs {
    /// Where the JSON-RPC endpoint listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Milliseconds between blocks (0: mine on stdin `mine` lines only).
    #[arg(long, default_value_t = 1000)]
    block_time: u64,
    #[command(flatten)]
    rules: RulesArgs,
    /// An operator's stake, `ADDRESS=AMOUNT` (repeatable).
    #[arg(long = "stake", value_parser = parse_stake)]
    stakes: Vec<(Address, u128)>,
    /// Keep the chain in DIR (`chain.jsonl`: every change, replayed on the next start with
    /// the same parameters), so a restarted chain goes on where it stopped.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
}

fn parse_stake(text: &str) -> Result<(Address, u128), String> {
    let (address, amount) = text
        .split_once(['=', ' '])
        .ok_or_else(|| format!("{text:?}: expected ADDRESS=AMOUNT"))?;
    let address = address
        .trim()
        .parse::<Address>()
        .map_err(|e| e.to_string())?;
    let amount = amount
        .trim()
        .parse::<u128>()
        .map_err(|e| format!("{amount:?}: {e}"))?;
    Ok((address, amount))
}

/// Serves until stdin closes (or the process is stopped).
pub async fn run(args: ChainArgs) -> Result<(), String> {
    let config = args.rules.config(args.block_time);
    let chain = match &args.data_dir {
        Some(dir) => {
            let (chain, replayed) = LocalChain::open(config, dir)?;
            let head = chain.with_rules(|rules| rules.head());
            println!(
                "{}",
                json!({"event": "replayed", "calls": replayed, "head": head})
            );
            chain
        }
        None => LocalChain::from_config(config)?,
    };
    for (operator, stake) in args.stakes {
        chain
            .set_stake(operator, stake)
            .map_err(|e| e.to_string())?;
    }
    if args.block_time > 0 {
        chain.spawn_miner(Duration::from_millis(args.block_time));
    }
    let url = rpc::spawn_server(args.listen, Arc::new(chain.clone()))
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!("{}", json!({ "rpc": url }));
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = match stdin.next_line().await {
            Ok(Some(line)) => line,
            // Stdin closed (e.g. started in the background): keep serving.
            Ok(None) | Err(_) => return std::future::pending().await,
        };
        let line = line.trim();
        let reply = if line == "mine" {
            json!({"event": "mined", "block": chain.mine()})
        } else {
            match line.strip_prefix("stake ").map(parse_stake) {
                Some(Ok((operator, stake))) => match chain.set_stake(operator, stake) {
                    Ok(()) => {
                        json!({"event": "stake", "operator": operator.to_string(), "stake": stake.to_string()})
                    }
                    Err(error) => json!({"error": error.to_string()}),
                },
                Some(Err(error)) => json!({"error": error}),
                None if line.is_empty() => continue,
                None => {
                    json!({"error": format!("unknown command {line:?}: stake ADDRESS AMOUNT, or mine")})
                }
            }
        };
        println!("{reply}");
    }
}

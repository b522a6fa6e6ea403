//! `keep-light chain`: the embedded dev chain on its own, served over JSON-RPC so relays in
//! other processes can ask it (`relay --firewall staked --chain URL`). Stakes are set with
//! `--stake ADDRESS=AMOUNT` and changed at run time by stdin lines `stake ADDRESS AMOUNT`.

use std::{net::SocketAddr, sync::Arc};

use clap::Args;
use keep_light::{
    chain::{local::LocalChain, rpc},
    identity::Address,
};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

#[derive(Args)]
pub struct ChainArgs {
    /// Where the JSON-RPC endpoint listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The least stake the chain recognises (smallest unit).
    #[arg(long, default_value_t = 1)]
    minimum_stake: u128,
    /// An operator's stake, `ADDRESS=AMOUNT` (repeatable).
    #[arg(long = "stake", value_parser = parse_stake)]
    stakes: Vec<(Address, u128)>,
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
    let chain = LocalChain::new(args.minimum_stake);
    for (operator, stake) in args.stakes {
        chain.set_stake(operator, stake);
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
        let reply = match line.trim().strip_prefix("stake ").map(parse_stake) {
            Some(Ok((operator, stake))) => {
                chain.set_stake(operator, stake);
                json!({"event": "stake", "operator": operator.to_string(), "stake": stake.to_string()})
            }
            Some(Err(error)) => json!({"error": error}),
            None if line.trim().is_empty() => continue,
            None => {
                json!({"error": format!("unknown command {:?}: stake ADDRESS AMOUNT", line.trim())})
            }
        };
        println!("{reply}");
    }
}

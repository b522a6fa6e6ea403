//! `keep-light attest …`: make and check SIWE delegations (DESIGN.md sections 3 and 6).

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
    str::FromStr,
    time::Duration,
};

use clap::Subcommand;
use keep_light::{
    identity::{
        attestation::{self, Attestation, Expect},
        OperatorKey,
    },
    platform,
};
use libp2p::PeerId;
use rand::{distributions::Alphanumeric, Rng};
use serde_json::json;

/// The most `verify` reads; an attestation is under 1 KiB.
const MAX_INPUT: u64 = 64 * 1024;

#[derive(Subcommand)]
pub enum AttestCommand {
    /// Sign a delegation of KEY's operator identity to PEER: prints {"message","signature"}.
    Create {
        /// The operator (wallet) secret, hex.
        #[arg(long)]
        key_hex: String,
        /// The session key's peer ID.
        #[arg(long)]
        peer: String,
        /// EIP-155 chain id.
        #[arg(long)]
        chain_id: u64,
        /// The SIWE domain (an RFC 3986 authority).
        #[arg(long, default_value = "localhost")]
        domain: String,
        /// Lifetime, e.g. 1h, 30m, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Check an attestation file (or - for stdin): exit 0 {"valid":true,…}, or exit 1.
    Verify {
        /// File holding {"message","signature"}, or - for stdin.
        file: PathBuf,
        /// Required chain id.
        #[arg(long)]
        chain_id: Option<u64>,
        /// Required peer ID (the connecting peer).
        #[arg(long)]
        peer: Option<String>,
        /// Check as of this RFC 3339 time instead of now.
        #[arg(long)]
        now: Option<String>,
    },
}

pub fn run(command: AttestCommand) -> ExitCode {
    match command {
        AttestCommand::Create {
            key_hex,
            peer,
            chain_id,
            domain,
            ttl,
        } => match create(&key_hex, &peer, chain_id, &domain, ttl) {
            Ok(attestation) => {
                println!(
                    "{}",
                    serde_json::to_string(&attestation).expect("serialisable")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("{}", json!({ "error": e }));
                ExitCode::FAILURE
            }
        },
        AttestCommand::Verify {
            file,
            chain_id,
            peer,
            now,
        } => match verify(&file, chain_id, peer.as_deref(), now.as_deref()) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("{}", json!({ "valid": false, "error": e }));
                ExitCode::FAILURE
            }
        },
    }
}

fn create(
    key_hex: &str,
    peer: &str,
    chain_id: u64,
    domain: &str,
    ttl: Duration,
) -> Result<Attestation, String> {
    let key = OperatorKey::from_hex(key_hex).map_err(|e| e.to_string())?;
    let peer = PeerId::from_str(peer).map_err(|e| format!("--peer: {e}"))?;
    let nonce: String = platform::rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    attestation::create(
        &key,
        &peer,
        chain_id,
        domain,
        platform::utc_now(),
        ttl,
        &nonce,
    )
    .map_err(|e| e.to_string())
}

/// Reads an attestation's JSON from `file` (`-`: stdin), at most 64 KiB.
pub fn read(file: &Path) -> Result<Attestation, String> {
    let mut input = Vec::new();
    let reader: Box<dyn Read> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?)
    };
    reader
        .take(MAX_INPUT + 1)
        .read_to_end(&mut input)
        .map_err(|e| format!("reading {}: {e}", file.display()))?;
    if input.len() as u64 > MAX_INPUT {
        return Err(format!("{} exceeds {MAX_INPUT} bytes", file.display()));
    }
    serde_json::from_slice(&input).map_err(|e| format!("malformed attestation JSON: {e}"))
}

fn verify(
    file: &Path,
    chain_id: Option<u64>,
    peer: Option<&str>,
    now: Option<&str>,
) -> Result<serde_json::Value, String> {
    let attestation = read(file)?;
    let mut expect = Expect::new();
    if let Some(chain_id) = chain_id {
        expect = expect.with_chain_id(chain_id);
    }
    if let Some(peer) = peer {
        expect = expect.with_peer(PeerId::from_str(peer).map_err(|e| format!("--peer: {e}"))?);
    }
    let now = match now {
        Some(text) => attestation::parse_time(text).map_err(|e| format!("--now: {e}"))?,
        None => platform::utc_now(),
    };
    let verified = attestation::verify(&attestation, now, &expect)
        .map_err(|e| format!("{}: {e}", e.reason()))?;
    Ok(json!({
        "valid": true,
        "operator": verified.operator.to_string(),
        "peer_id": verified.peer_id.to_string(),
        "chain_id": verified.chain_id,
        "expires_at": attestation::timestamp(verified.expires_at),
    }))
}

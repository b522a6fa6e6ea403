//! `keep-light bls …`: BN254 threshold BLS tools (DESIGN.md section 6). 0x-hex in, one JSON line
//! out, points in the uncompressed EIP-197 layout.

use std::{io::Read, process::ExitCode};

use clap::Subcommand;
use keep_light::{
    beacon::{
        bls::{PublicKey, SecretKey, Signature},
        threshold::{
            combine_verified, deal, CandidateShare, CombineError, RejectedShare, ShareRejection,
            MAX_GROUP_SIZE,
        },
    },
    identity::parse_hex,
    platform,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// The most `combine` reads from stdin; a group of MAX_GROUP_SIZE shares is far below it.
const MAX_COMBINE_INPUT: u64 = 4 << 20;

#[derive(Subcommand)]
pub enum BlsCommand {
    /// Make a key pair: {"secret","public_key"}.
    Keygen,
    /// Sign a message: {"signature"}.
    Sign {
        /// 32-byte secret, 0x-hex.
        #[arg(long)]
        secret: String,
        /// Message bytes, 0x-hex.
        #[arg(long)]
        message: String,
    },
    /// Check a signature: exit 0 and {"valid":true}, or exit 1 and {"valid":false,"error"}.
    Verify {
        /// 128-byte G2 public key, 0x-hex.
        #[arg(long)]
        public_key: String,
        /// Message bytes, 0x-hex.
        #[arg(long)]
        message: String,
        /// 64-byte G1 signature, 0x-hex.
        #[arg(long)]
        signature: String,
    },
    /// Split a fresh group secret into N shares, any T of which sign (tests, dev chain).
    Deal {
        /// Group size N.
        #[arg(long)]
        n: u32,
        /// Threshold T.
        #[arg(long)]
        t: u32,
    },
    /// Read {"message","threshold","shares":[{"index","signature","public_key"}]} on stdin, verify
    /// each share, skip invalid ones, combine T valid ones: {"signature","used","rejected"}.
    Combine,
}

/// Runs one `bls` command; prints its JSON line and returns the exit code.
pub fn run(command: BlsCommand) -> ExitCode {
    let result = match command {
        BlsCommand::Keygen => Ok(keygen()),
        BlsCommand::Sign { secret, message } => sign(&secret, &message),
        BlsCommand::Verify {
            public_key,
            message,
            signature,
        } => return verify(&public_key, &message, &signature),
        BlsCommand::Deal { n, t } => dealing(n, t),
        BlsCommand::Combine => combine(std::io::stdin().lock()),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(line) => {
            println!("{line}");
            ExitCode::FAILURE
        }
    }
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn error(text: impl std::fmt::Display) -> Value {
    json!({ "error": text.to_string() })
}

/// Hex argument → bytes, the error naming the argument.
fn bytes_arg(name: &str, text: &str) -> Result<Vec<u8>, String> {
    parse_hex(text).map_err(|e| format!("{name}: {e}"))
}

fn keygen() -> Value {
    let secret = SecretKey::generate(&mut platform::rng());
    json!({
        "secret": hex0x(&secret.to_bytes()),
        "public_key": hex0x(&secret.public_key().to_bytes()),
    })
}

fn sign(secret: &str, message: &str) -> Result<Value, Value> {
    let secret = bytes_arg("secret", secret).map_err(error)?;
    let secret = SecretKey::from_bytes(&secret).map_err(|e| error(format!("secret: {e}")))?;
    let message = bytes_arg("message", message).map_err(error)?;
    Ok(json!({ "signature": hex0x(&secret.sign(&message).to_bytes()) }))
}

fn verify(public_key: &str, message: &str, signature: &str) -> ExitCode {
    let checked = (|| {
        let public_key = PublicKey::from_bytes(&bytes_arg("public_key", public_key)?)
            .map_err(|e| format!("public_key: {e}"))?;
        let signature = Signature::from_bytes(&bytes_arg("signature", signature)?)
            .map_err(|e| format!("signature: {e}"))?;
        let message = bytes_arg("message", message)?;
        if public_key.verify(&message, &signature) {
            Ok(())
        } else {
            Err("signature does not verify against the public key".to_string())
        }
    })();
    match checked {
        Ok(()) => {
            println!("{}", json!({ "valid": true }));
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", json!({ "valid": false, "error": e }));
            ExitCode::FAILURE
        }
    }
}

fn dealing(n: u32, t: u32) -> Result<Value, Value> {
    let dealing = deal(n, t, &mut platform::rng()).map_err(error)?;
    let shares: Vec<Value> = dealing
        .shares
        .iter()
        .map(|s| {
            json!({
                "index": s.index,
                "secret": hex0x(&s.secret.to_bytes()),
                "public_key": hex0x(&s.public_key.to_bytes()),
            })
        })
        .collect();
    Ok(json!({
        "group_public_key": hex0x(&dealing.group_public_key.to_bytes()),
        "shares": shares,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CombineInput {
    message: String,
    threshold: usize,
    shares: Vec<ShareInput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareInput {
    index: u32,
    signature: String,
    public_key: String,
}

fn rejected_json(rejected: &[RejectedShare]) -> Vec<Value> {
    rejected
        .iter()
        .map(|r| json!({ "index": r.index, "reason": r.reason.reason(), "error": r.reason.to_string() }))
        .collect()
}

fn combine(input: impl Read) -> Result<Value, Value> {
    let mut text = Vec::new();
    input
        .take(MAX_COMBINE_INPUT + 1)
        .read_to_end(&mut text)
        .map_err(|e| error(format!("reading stdin: {e}")))?;
    if text.len() as u64 > MAX_COMBINE_INPUT {
        return Err(error(format!("input exceeds {MAX_COMBINE_INPUT} bytes")));
    }
    let input: CombineInput =
        serde_json::from_slice(&text).map_err(|e| error(format!("malformed input: {e}")))?;
    if input.shares.len() > MAX_GROUP_SIZE as usize {
        return Err(error(format!(
            "{} shares exceed the group size limit {MAX_GROUP_SIZE}",
            input.shares.len()
        )));
    }
    let message = bytes_arg("message", &input.message).map_err(error)?;

    // Shares that do not decode are rejected here, the others in combine_verified.
    let mut malformed = Vec::new();
    let mut candidates = Vec::with_capacity(input.shares.len());
    for share in &input.shares {
        let decoded = (|| {
            let signature = Signature::from_bytes(&bytes_arg("signature", &share.signature)?)
                .map_err(|e| format!("signature: {e}"))?;
            let public_key = PublicKey::from_bytes(&bytes_arg("public_key", &share.public_key)?)
                .map_err(|e| format!("public_key: {e}"))?;
            Ok::<_, String>(CandidateShare {
                index: share.index,
                signature,
                public_key,
            })
        })();
        match decoded {
            Ok(candidate) => candidates.push(candidate),
            Err(e) => malformed.push(RejectedShare {
                index: share.index,
                reason: ShareRejection::Malformed(e),
            }),
        }
    }
    match combine_verified(&message, input.threshold, &candidates, &mut platform::rng()) {
        Ok(combined) => {
            malformed.extend(combined.rejected);
            Ok(json!({
                "signature": hex0x(&combined.signature.to_bytes()),
                "used": combined.used,
                "rejected": rejected_json(&malformed),
            }))
        }
        Err(CombineError::NotEnoughShares {
            valid,
            needed,
            rejected,
        }) => {
            malformed.extend(rejected);
            let listed = rejected_json(&malformed);
            let err = CombineError::NotEnoughShares {
                valid,
                needed,
                rejected: malformed,
            };
            Err(json!({ "error": err.to_string(), "rejected": listed }))
        }
        Err(other) => Err(error(other)),
    }
}

//! DKG benchmark: the whole GJKR DKG of every member of one group, in this process, on the
//! simulator's virtual block clock (no network), then one threshold-signed entry.
//!
//! `cargo run --release --example dkg -- --members 64 --threshold 33 [--silent K] [--cheating K] [--seed S]`
//!
//! `--silent K`: the last K members send nothing from phase 3 on; `--cheating K`: members 2..=K+1
//! send member 1 a share that does not decrypt (accused, disqualified). Prints one JSON line
//! `{"members","threshold","qualified","disqualified","inactive","group_public_key",
//! "share_public_keys":[{"index","public_key"}],"message","signature","dkg_ms",
//! "cpu_ms_per_member","entry_ms"}` (points in the EIP-197 layout). Members run side by side on
//! the machine's cores; `cpu_ms_per_member` is the process's CPU time over the members (what
//! one member's part costs a core). `entry_ms` is checking T signature shares against their
//! members' public key shares (batched) and combining them.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

#[cfg(not(target_arch = "wasm32"))]
#[path = "support/cpu.rs"]
mod cpu;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::time::Instant;

    use clap::Parser;
    use keep_light::beacon::{
        dkg::{Index, Offence, Phase},
        sim::{corrupt_shares_to, DkgSimulation, SimConfig},
        threshold::{combine_verified, CandidateShare},
    };
    use serde_json::json;

    #[derive(Parser)]
    struct Args {
        /// Group size.
        #[arg(long, default_value_t = 64)]
        members: u32,
        /// Shares needed to sign.
        #[arg(long, default_value_t = 33)]
        threshold: u32,
        /// Members silent from phase 3 on (the last ones).
        #[arg(long, default_value_t = 0)]
        silent: u32,
        /// Members sending member 1 a bad share (members 2..).
        #[arg(long, default_value_t = 0)]
        cheating: u32,
        /// Seed of every key and random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    }

    fn hex(bytes: &[u8]) -> String {
        let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("0x{digits}")
    }

    pub fn main() {
        let args = Args::parse();
        let n = args.members;
        let cheaters: Vec<Index> = (2..2 + args.cheating).collect();
        let mut sim = DkgSimulation::new(SimConfig::new(n, args.threshold, args.seed))
            .with_interceptor(corrupt_shares_to(cheaters, 1));
        for member in n + 1 - args.silent..=n {
            for phase in Phase::ALL.into_iter().skip(1) {
                sim = sim.silence(member, phase);
            }
        }
        let (started, cpu_before) = (Instant::now(), super::cpu::cpu_seconds());
        sim.run(100_000_000).expect("the DKG finishes");
        let dkg_ms = started.elapsed().as_secs_f64() * 1e3;
        let cpu_ms = (super::cpu::cpu_seconds() - cpu_before) * 1e3;

        let outcome = match sim.result(1).expect("member 1 finished") {
            Ok(outcome) => outcome.clone(),
            Err(error) => {
                println!("{}", json!({"error": error.to_string()}));
                std::process::exit(1);
            }
        };
        let mut disqualified = Vec::new();
        let mut inactive = Vec::new();
        for (reporter, m) in sim.reports() {
            if *reporter != 1 || !outcome.misbehaved.contains(&m.member) {
                continue;
            }
            let list = match m.offence {
                Offence::Silent => &mut inactive,
                _ => &mut disqualified,
            };
            if !list.contains(&m.member) {
                list.push(m.member);
            }
        }
        disqualified.sort_unstable();
        inactive.sort_unstable();

        let message = b"keep-light dkg benchmark";
        let signers: Vec<Index> = outcome
            .public_key_shares
            .keys()
            .copied()
            .take(args.threshold as usize)
            .collect();
        let shares: Vec<CandidateShare> = signers
            .iter()
            .map(|i| CandidateShare {
                index: *i,
                signature: sim.outcome(*i).expect("operating").share.sign(message),
                public_key: outcome.public_key_shares[i],
            })
            .collect();
        let started = Instant::now();
        let combined = combine_verified(
            message,
            args.threshold as usize,
            &shares,
            &mut rand::thread_rng(),
        )
        .expect("T valid shares");
        let entry_ms = started.elapsed().as_secs_f64() * 1e3;
        assert!(outcome
            .group_public_key
            .verify(message, &combined.signature));

        println!(
            "{}",
            json!({
                "members": n,
                "threshold": args.threshold,
                "qualified": outcome.qualified,
                "disqualified": disqualified,
                "inactive": inactive,
                "group_public_key": hex(&outcome.group_public_key.to_bytes()),
                "share_public_keys": outcome.public_key_shares.iter().map(|(i, k)| {
                    json!({"index": i, "public_key": hex(&k.to_bytes())})
                }).collect::<Vec<_>>(),
                "message": hex(message),
                "signature": hex(&combined.signature.to_bytes()),
                "dkg_ms": (dkg_ms * 10.0).round() / 10.0,
                "cpu_ms_per_member": (cpu_ms / n as f64 * 100.0).round() / 100.0,
                "entry_ms": (entry_ms * 100.0).round() / 100.0,
            })
        );
    }
}

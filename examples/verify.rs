//! Envelope signature benchmark (wire v1, issue: validator pipeline): what checking author
//! signatures costs, on the caller's thread and through the verifier pool (`platform::Offload`).
//!
//! `cargo run --release --example verify -- --envelopes 20000 [--threads N] [--batch B]`
//!
//! Signs `envelopes` distinct envelopes (a 200-byte payload each, as a DKG share message) with
//! 64 keys, then verifies all of them twice: inline, one after the other, and through a pool of
//! `threads` workers (default: the cores) fed through a bounded queue of 1,024. Prints one JSON
//! line `{"envelopes","threads","batch","sign_us","inline_us","inline_per_s","pool_per_s",
//! "pool_speedup","caller_cpu_share"}`: `inline_us` is one verification's wall time alone,
//! `caller_cpu_share` an estimate of the pool run's process CPU that was not verifying (its CPU
//! less the inline run's time, over its CPU): submitting, collecting, the queue's locking; what
//! an event loop still pays per message.

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
    use keep_light::{
        identity::OperatorKey,
        net::validation::Unverified,
        platform::{self, Offload},
        wire::{signature, Envelope},
    };
    use serde_json::json;

    #[derive(Parser)]
    struct Args {
        /// Envelopes to sign and verify.
        #[arg(long, default_value_t = 20_000)]
        envelopes: usize,
        /// Pool workers (default: the cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Jobs a worker takes at once.
        #[arg(long, default_value_t = 16)]
        batch: usize,
    }

    const TOPIC: &str = "keep-light/dkg/00/1";

    fn check(envelope: &Envelope) -> bool {
        signature::verify(TOPIC, envelope).is_ok()
    }

    /// The pool's job, as the node makes it (`Pipeline::judge` prepares the hash).
    fn job(ticket: usize, envelope: Envelope) -> Unverified {
        let prepared = signature::prepare(TOPIC, &envelope).expect("well-formed");
        Unverified {
            ticket: ticket as u64,
            envelope,
            prepared,
        }
    }

    pub fn main() {
        let args = Args::parse();
        let threads = args.threads.unwrap_or_else(platform::cores);
        let keys: Vec<_> = (0..64)
            .map(|_| OperatorKey::generate().signing_key())
            .collect();
        let started = Instant::now();
        let envelopes: Vec<Envelope> = (0..args.envelopes)
            .map(|i| {
                let mut envelope = Envelope {
                    r#type: "beacon.dkg.Shares".into(),
                    payload: vec![i as u8; 200],
                    sequence: i as u64,
                    ..Default::default()
                };
                signature::sign(&keys[i % keys.len()], TOPIC, &mut envelope);
                envelope
            })
            .collect();
        let sign_us = started.elapsed().as_secs_f64() * 1e6 / args.envelopes as f64;

        let started = Instant::now();
        let valid = envelopes.iter().filter(|e| check(e)).count();
        let inline_s = started.elapsed().as_secs_f64();
        assert_eq!(valid, args.envelopes, "every envelope verifies");

        let mut pool = Offload::<Unverified>::with_threads(threads, 1024, args.batch);
        let (cpu0, started) = (crate::cpu::cpu_seconds(), Instant::now());
        // (Preparing, the signing hash, is the caller's part, as in the node.)
        let mut pending = envelopes.into_iter().enumerate().map(|(i, e)| job(i, e));
        let mut held = None;
        let mut verified = 0;
        futures::executor::block_on(futures::future::poll_fn(|cx| {
            loop {
                // Keep the pool full; what does not fit waits for a result.
                while let Some(envelope) = held.take().or_else(|| pending.next()) {
                    if let Err(envelope) = pool.try_submit(envelope) {
                        held = Some(envelope);
                        break;
                    }
                }
                match pool.poll_done(cx) {
                    std::task::Poll::Ready(done) => {
                        assert!(done.signer.is_ok());
                        verified += 1;
                        if verified == args.envelopes {
                            return std::task::Poll::Ready(());
                        }
                    }
                    std::task::Poll::Pending => return std::task::Poll::Pending,
                }
            }
        }));
        let pool_s = started.elapsed().as_secs_f64();
        let cpu = crate::cpu::cpu_seconds() - cpu0;
        // The workers' share is what the inline run took, the rest is the caller's.
        let caller_cpu_share = ((cpu - inline_s) / cpu).max(0.0);
        println!(
            "{}",
            json!({
                "envelopes": args.envelopes,
                "threads": threads,
                "batch": args.batch,
                "sign_us": (sign_us * 10.0).round() / 10.0,
                "inline_us": (inline_s * 1e6 / args.envelopes as f64 * 10.0).round() / 10.0,
                "inline_per_s": (args.envelopes as f64 / inline_s).round(),
                "pool_per_s": (args.envelopes as f64 / pool_s).round(),
                "pool_speedup": ((inline_s / pool_s) * 100.0).round() / 100.0,
                "caller_cpu_share": (caller_cpu_share * 1000.0).round() / 1000.0,
            })
        );
    }
}

//! The one seam between the node core and where it runs (DESIGN.md section 2).
//!
//! Spawning, sleeping, the clock and randomness reach the rest of the crate only through here, so
//! the same core runs on tokio natively and on the browser's event loop in wasm. Apart from
//! transport construction (`net/transport.rs`) no other module writes `cfg(target_arch)`.
//!
//! - [`now`] is `web_time::Instant`: `std::time::Instant` panics in wasm32; [`unix_time`] is the
//!   wall clock, from `web_time::SystemTime` for the same reason.
//! - [`load`]/[`store`] keep small values (the browser session key) in `localStorage`.
//! - [`sleep`] is a `futures-timer` delay (backed by `setTimeout` in the browser; hidden tabs
//!   throttle it, so protocol deadlines must follow chain blocks, not this clock).
//! - [`spawn`] needs `Send` natively (tokio's multi-threaded runtime) and not in wasm
//!   (single-threaded `spawn_local`); code written against the native bound compiles on both.

use std::{future::Future, time::Duration};

pub use web_time::Instant;

/// The monotonic clock.
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock time since the Unix epoch (`Date.now()` in the browser), for validity windows such
/// as attestation expiry. Protocol code takes it as an argument; only drivers call this.
pub fn unix_time() -> Duration {
    web_time::SystemTime::now()
        .duration_since(web_time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The wall clock as a UTC date-time (what attestation checks take).
pub fn utc_now() -> time::OffsetDateTime {
    time::OffsetDateTime::UNIX_EPOCH + unix_time()
}

/// Reads a small persisted value (the page's `localStorage` in wasm; an in-process map natively,
/// where the CLI keeps its state in `--data-dir` instead). `None` when absent or unavailable
/// (a worker has no `localStorage`).
pub fn load(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        web_sys::window()?
            .local_storage()
            .ok()??
            .get_item(key)
            .ok()?
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        memory_store().lock().ok()?.get(key).cloned()
    }
}

/// Persists a small value; see [`load`]. Fails when the storage refuses (quota, private mode).
pub fn store(key: &str, value: &str) -> Result<(), String> {
    #[cfg(target_arch = "wasm32")]
    {
        let storage = web_sys::window()
            .ok_or("no window")?
            .local_storage()
            .map_err(|_| "localStorage is not available")?
            .ok_or("localStorage is not available")?;
        storage
            .set_item(key, value)
            .map_err(|_| format!("localStorage refused {key}"))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        memory_store()
            .lock()
            .map_err(|e| e.to_string())?
            .insert(key.to_owned(), value.to_owned());
        Ok(())
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn memory_store() -> &'static std::sync::Mutex<std::collections::HashMap<String, String>> {
    static STORE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
        std::sync::OnceLock::new();
    STORE.get_or_init(Default::default)
}

/// A future that completes after `duration`.
pub fn sleep(duration: Duration) -> futures_timer::Delay {
    futures_timer::Delay::new(duration)
}

/// A cryptographically secure random generator (OS or `crypto.getRandomValues`).
pub fn rng() -> impl rand::RngCore + rand::CryptoRng {
    rand::rngs::OsRng
}

/// A boxed future the platform's [`spawn`] accepts: `Send` natively (tokio's worker threads),
/// not in wasm (browser futures hold JS values).
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = futures::future::BoxFuture<'a, T>;
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = futures::future::LocalBoxFuture<'a, T>;

/// Runs `task` in the background on the current executor.
///
/// Natively this must be called from inside a tokio runtime.
#[cfg(not(target_arch = "wasm32"))]
pub fn spawn<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(task);
}

/// Runs `task` in the background on the browser's event loop.
#[cfg(target_arch = "wasm32")]
pub fn spawn<F>(task: F)
where
    F: Future<Output = ()> + 'static,
{
    wasm_bindgen_futures::spawn_local(task);
}

/// Runs `work` on every item, spread over the machine's cores (natively; a tab has one thread
/// here, so in order). For CPU-bound simulations whose items are independent.
#[cfg(not(target_arch = "wasm32"))]
pub fn run_parallel<T: Send>(items: Vec<T>, work: impl Fn(T) + Sync) {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    if workers < 2 || items.len() < 2 {
        items.into_iter().for_each(work);
        return;
    }
    let mut queues: Vec<Vec<T>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        queues[i % workers].push(item);
    }
    std::thread::scope(|scope| {
        for queue in queues {
            let work = &work;
            scope.spawn(move || queue.into_iter().for_each(work));
        }
    });
}

#[cfg(target_arch = "wasm32")]
pub fn run_parallel<T: Send>(items: Vec<T>, work: impl Fn(T) + Sync) {
    items.into_iter().for_each(work);
}

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
/// where the CLI keeps its state in `--data-dir` instead). `None` when absent or unavailable.
/// A worker has no `localStorage`: there the global `keepLightStorage` (`getItem`/`setItem`,
/// which the node worker of `www/src/node-worker.js` backs with the page's) stands in.
pub fn load(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        storage()?.get_item(key).ok()?
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
        storage()
            .ok_or("localStorage is not available")?
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

/// The page's `localStorage`, or in a worker the `keepLightStorage` its script provides (the
/// same two methods, so it passes for a `Storage`).
#[cfg(target_arch = "wasm32")]
fn storage() -> Option<web_sys::Storage> {
    use wasm_bindgen::JsCast;
    if let Some(window) = web_sys::window() {
        return window.local_storage().ok()?;
    }
    let stand_in = js_sys::Reflect::get(&js_sys::global(), &"keepLightStorage".into()).ok()?;
    (!stand_in.is_undefined()).then(|| stand_in.unchecked_into())
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

/// Lets the executor run its other tasks before this one goes on: natively the task goes to
/// the back of its executor's queue; in a tab it waits for a timer task, so the page's events
/// (sockets, input, rendering) run first, which a microtask would not let them.
pub async fn yield_now() {
    #[cfg(target_arch = "wasm32")]
    sleep(Duration::ZERO).await;
    #[cfg(not(target_arch = "wasm32"))]
    {
        let mut yielded = false;
        futures::future::poll_fn(|cx| {
            if yielded {
                return std::task::Poll::Ready(());
            }
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await
    }
}

/// One timer for one deadline, for a behaviour's `poll`: re-armed only when the deadline
/// changes, and spent once it fires. A fired `Delay` stays ready, so a timer kept after firing
/// would make every later poll ready and spin the event loop.
#[derive(Debug, Default)]
pub struct Deadline {
    at: Option<Instant>,
    delay: Option<futures_timer::Delay>,
}

impl Deadline {
    /// Aims the timer at `at` (`None`: no deadline). The same deadline again keeps the timer.
    pub fn set(&mut self, at: Option<Instant>) {
        if at != self.at {
            self.at = at;
            self.delay = at.map(|at| sleep(at.saturating_duration_since(now())));
        }
    }

    /// Ready once when the deadline passes (then unset until the next [`Deadline::set`]);
    /// pending, with `cx` woken then, before it.
    pub fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        use futures::FutureExt as _;
        match self.delay.as_mut().map(|delay| delay.poll_unpin(cx)) {
            Some(std::task::Poll::Ready(())) => {
                self.at = None;
                self.delay = None;
                std::task::Poll::Ready(())
            }
            _ => std::task::Poll::Pending,
        }
    }
}

/// A [`Deadline`] for wall-clock moments (time since the Unix epoch: ban ends, admission
/// deadlines), put on the monotonic clock through one reading of both clocks. A fixed reading
/// gives the same instant for the same moment, so the timer is not re-armed on every poll.
#[derive(Debug)]
pub struct WallDeadline {
    anchor: (Instant, Duration),
    timer: Deadline,
}

impl Default for WallDeadline {
    fn default() -> Self {
        Self {
            anchor: (now(), unix_time()),
            timer: Deadline::default(),
        }
    }
}

impl WallDeadline {
    /// The monotonic instant of wall-clock moment `at`.
    pub fn instant(&self, at: Duration) -> Instant {
        let (instant, unix) = self.anchor;
        instant + at.saturating_sub(unix)
    }

    /// Aims the timer at the earlier of wall-clock `wall` and monotonic `instant`.
    pub fn set(&mut self, wall: Option<Duration>, instant: Option<Instant>) {
        let wall = wall.map(|at| self.instant(at));
        self.timer.set(match (wall, instant) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        });
    }

    /// As [`Deadline::poll`].
    pub fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.timer.poll(cx)
    }

    /// The timer fired with nothing due: the wall clock runs behind the monotonic one (it was
    /// adjusted). Reads both again, so the next deadline is ahead instead of firing at once.
    pub fn fired_early(&mut self) {
        self.anchor = (now(), unix_time());
    }
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

/// A CPU-heavy job an [`Offload`] runs off the caller's thread. Natively a thread runs it
/// whole ([`Task::run`]); in a tab a Web Worker runs only its costly core: the job writes a
/// fixed-size request, a worker answers it with [`Task::serve`] (a separate wasm instance, so
/// nothing but bytes crosses), and the job turns the reply into its output ([`Task::finish`]).
pub trait Task: Send + 'static {
    type Output: Send + 'static;
    /// Bytes of one request in a worker batch.
    const REQUEST_LEN: usize;
    /// Bytes of one reply.
    const REPLY_LEN: usize;
    /// The whole job, where it runs in-process.
    fn run(self) -> Self::Output;
    /// Appends this job's request ([`Task::REQUEST_LEN`] bytes).
    fn write_request(&self, out: &mut Vec<u8>);
    /// The worker's side: answers one request (any bytes: they come from another context)
    /// with [`Task::REPLY_LEN`] bytes appended to `reply`.
    fn serve(request: &[u8], reply: &mut Vec<u8>);
    /// The output, from this job's reply.
    fn finish(self, reply: &[u8]) -> Self::Output;
}

/// A worker's side of a batch: every [`Task::REQUEST_LEN`]-byte request in `requests`
/// answered in order (what the worker script calls).
pub fn serve_batch<T: Task>(requests: &[u8]) -> Vec<u8> {
    let mut replies = Vec::with_capacity(requests.len() / T::REQUEST_LEN.max(1) * T::REPLY_LEN);
    for request in requests.chunks_exact(T::REQUEST_LEN.max(1)) {
        T::serve(request, &mut replies);
    }
    replies
}

/// Work handed off the caller's thread, at most `capacity` jobs at a time: natively a pool of
/// threads (the process's own, one per core, or one of its own); each takes up to `batch` jobs
/// at a time. In a tab the page's
/// Web Workers ([`use_workers`]) get batches of up to `batch` requests: a full batch is posted
/// at once, a partial one when the caller next polls and a worker has no batch of this
/// Offload's (so a lone message waits for nothing, and under a burst jobs gather into full
/// batches while the workers are busy: a post costs the main thread about as much as a
/// message's own work); without workers (tests), jobs run at once on the
/// caller's thread. What comes back arrives through [`Offload::poll_done`], which wakes the
/// caller's task, so an event loop can hand off CPU-heavy checks (signatures) and go on serving.
/// Results come back in the order their jobs were submitted, whichever thread or worker
/// finished first: a node that forwards messages as their signatures are checked keeps each
/// author's order (a receiver's sequence window would take a message overtaken by more than
/// its width for a replay).
pub struct Offload<T: Task> {
    #[cfg(not(target_arch = "wasm32"))]
    pool: std::sync::mpsc::Sender<PoolJob>,
    #[cfg(target_arch = "wasm32")]
    workers: Option<(js_sys::Function, usize)>,
    /// Batches posted and not yet answered.
    #[cfg(target_arch = "wasm32")]
    posted: std::rc::Rc<std::cell::Cell<usize>>,
    /// Jobs for the next batch to the workers.
    #[cfg(target_arch = "wasm32")]
    queued: Vec<(u64, T)>,
    #[cfg(target_arch = "wasm32")]
    batch: usize,
    /// Finished jobs, each with its submission number.
    done_tx: futures::channel::mpsc::UnboundedSender<(u64, T::Output)>,
    done: futures::channel::mpsc::UnboundedReceiver<(u64, T::Output)>,
    /// Finished ahead of an earlier job, waiting for it (at most `capacity`).
    early: std::collections::BTreeMap<u64, T::Output>,
    /// The number the next submitted job gets, and the next one to hand back.
    submitted: u64,
    returned: u64,
    in_flight: usize,
    capacity: usize,
}

#[cfg(target_arch = "wasm32")]
thread_local! {
    /// The page's worker pool: `run(requests: Uint8Array) -> Promise<Uint8Array>`, and its size.
    static WORKERS: std::cell::RefCell<Option<(js_sys::Function, usize)>> =
        const { std::cell::RefCell::new(None) };
}

/// Hands this page's [`Offload`]s made from now on to a pool of `size` Web Workers (`None`:
/// none, jobs run on the caller's thread): `run` takes a batch of requests (`Uint8Array`) and
/// resolves with the replies in order (the JS shell's `www/src/verifier-pool.js`). A batch
/// that fails runs on the caller's thread instead, so nothing is lost.
#[cfg(target_arch = "wasm32")]
pub fn use_workers(run: Option<js_sys::Function>, size: usize) {
    WORKERS.with(|workers| *workers.borrow_mut() = run.map(|run| (run, size.max(1))));
}

/// The number of cores, for sizing an [`Offload`] (1 when unknown; in a tab, the workers).
pub fn cores() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
    #[cfg(target_arch = "wasm32")]
    {
        WORKERS.with(|workers| workers.borrow().as_ref().map_or(1, |(_, size)| *size))
    }
}

/// A job for a pool's threads: runs one [`Task`] and sends its output to its [`Offload`].
#[cfg(not(target_arch = "wasm32"))]
type PoolJob = Box<dyn FnOnce() + Send>;

/// Starts `threads` threads taking jobs from one queue, up to `batch` at a time; they end
/// when every sender of the queue is gone.
#[cfg(not(target_arch = "wasm32"))]
fn start_pool(threads: usize, batch: usize) -> std::sync::mpsc::Sender<PoolJob> {
    let (jobs, queue) = std::sync::mpsc::channel::<PoolJob>();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
    for _ in 0..threads.max(1) {
        let queue = queue.clone();
        std::thread::spawn(move || loop {
            // Wait for one job, take what else is queued (up to `batch`), then let go of the
            // queue so the other threads can take theirs while these run.
            let taken = {
                let Ok(queue) = queue.lock() else { return };
                let Ok(first) = queue.recv() else { return };
                let mut taken = vec![first];
                taken.extend(
                    std::iter::from_fn(|| queue.try_recv().ok()).take(batch.saturating_sub(1)),
                );
                taken
            };
            for job in taken {
                // A job that panics loses its own result, not the thread the others need.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        });
    }
    jobs
}

/// The process's pool, shared by every [`Offload::new`]: one thread per core, however many
/// nodes the process runs (a test or benchmark runs dozens; a thread pool each would crowd
/// out the event loops that must answer pings).
#[cfg(not(target_arch = "wasm32"))]
fn shared_pool() -> std::sync::mpsc::Sender<PoolJob> {
    static POOL: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<PoolJob>>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| std::sync::Mutex::new(start_pool(cores(), SHARED_BATCH)))
        .lock()
        .expect("the pool's sender is never poisoned")
        .clone()
}

/// Jobs a thread of the shared pool takes at once.
#[cfg(not(target_arch = "wasm32"))]
const SHARED_BATCH: usize = 32;

impl<T: Task> Offload<T> {
    /// At most `capacity` jobs submitted and not yet returned, run natively by the process's
    /// shared pool (one thread per core), in a tab by the page's workers ([`use_workers`],
    /// `batch` requests per post).
    pub fn new(capacity: usize, batch: usize) -> Self {
        // (Natively the shared pool's threads take SHARED_BATCH jobs at a time.)
        #[cfg(not(target_arch = "wasm32"))]
        return {
            let _ = batch;
            Self::on(shared_pool(), capacity)
        };
        #[cfg(target_arch = "wasm32")]
        return Self::with_threads(1, capacity, batch);
    }

    /// As [`Offload::new`], natively with `threads` threads of its own taking up to `batch`
    /// jobs at a time (benchmarks compare sizes); they end when it is dropped.
    pub fn with_threads(threads: usize, capacity: usize, batch: usize) -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        return Self::on(start_pool(threads, batch), capacity);
        #[cfg(target_arch = "wasm32")]
        {
            let _ = threads;
            let (done_tx, done) = futures::channel::mpsc::unbounded();
            Self {
                workers: WORKERS.with(|workers| workers.borrow().clone()),
                posted: Default::default(),
                queued: Vec::new(),
                batch: batch.max(1),
                done_tx,
                done,
                early: Default::default(),
                submitted: 0,
                returned: 0,
                in_flight: 0,
                capacity: capacity.max(1),
            }
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn on(pool: std::sync::mpsc::Sender<PoolJob>, capacity: usize) -> Self {
        let (done_tx, done) = futures::channel::mpsc::unbounded();
        Self {
            pool,
            done_tx,
            done,
            early: Default::default(),
            submitted: 0,
            returned: 0,
            in_flight: 0,
            capacity: capacity.max(1),
        }
    }

    /// Hands `job` over; gives it back when `capacity` jobs are already in flight (hold it and
    /// try again after [`Offload::poll_done`] returned something).
    pub fn try_submit(&mut self, job: T) -> Result<(), T> {
        if self.in_flight >= self.capacity {
            return Err(job);
        }
        let number = self.submitted;
        self.submitted += 1;
        #[cfg(not(target_arch = "wasm32"))]
        {
            let done = self.done_tx.clone();
            let run: PoolJob = Box::new(move || {
                let _ = done.unbounded_send((number, job.run()));
            });
            // Its threads gone (a private pool's are never while we hold its sender): run it
            // here, lose nothing.
            if let Err(std::sync::mpsc::SendError(run)) = self.pool.send(run) {
                run();
            }
        }
        #[cfg(target_arch = "wasm32")]
        if self.workers.is_some() {
            self.queued.push((number, job));
            if self.queued.len() >= self.batch {
                self.post();
            }
        } else {
            let _ = self.done_tx.unbounded_send((number, job.run()));
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Posts the queued jobs' requests to the workers as one batch; their outputs come back
    /// through `done` (run here instead if the batch fails: a worker crashed or never loaded).
    #[cfg(target_arch = "wasm32")]
    fn post(&mut self) {
        let Some((run, _)) = &self.workers else {
            return;
        };
        let jobs = std::mem::take(&mut self.queued);
        if jobs.is_empty() {
            return;
        }
        let posted = self.posted.clone();
        posted.set(posted.get() + 1);
        let mut requests = Vec::with_capacity(jobs.len() * T::REQUEST_LEN);
        for (_, job) in &jobs {
            job.write_request(&mut requests);
        }
        let reply = run.call1(
            &wasm_bindgen::JsValue::NULL,
            &js_sys::Uint8Array::from(requests.as_slice()),
        );
        let done = self.done_tx.clone();
        spawn(async move {
            let replies = match reply {
                Ok(promise) => wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
                    .await
                    .ok()
                    .map(|bytes| js_sys::Uint8Array::new(&bytes).to_vec())
                    .filter(|bytes| bytes.len() == jobs.len() * T::REPLY_LEN),
                Err(_) => None,
            };
            // Before the results wake the caller: its next poll may post the next batch.
            posted.set(posted.get() - 1);
            match replies {
                Some(replies) => {
                    let replies = replies.chunks_exact(T::REPLY_LEN);
                    for ((number, job), reply) in jobs.into_iter().zip(replies) {
                        let _ = done.unbounded_send((number, job.finish(reply)));
                    }
                }
                None => {
                    tracing::warn!(jobs = jobs.len(), "a worker batch failed: run here");
                    for (number, job) in jobs {
                        let _ = done.unbounded_send((number, job.run()));
                    }
                }
            }
        });
    }

    /// Jobs submitted and not yet returned.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The result of the earliest submitted job not yet handed back, once it is finished;
    /// pending (woken then) until it is. In a tab, first posts what is queued for the workers
    /// if one of them has no batch of ours.
    pub fn poll_done(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<T::Output> {
        use futures::StreamExt as _;
        #[cfg(target_arch = "wasm32")]
        if matches!(&self.workers, Some((_, size)) if self.posted.get() < *size) {
            self.post();
        }
        loop {
            if let Some(result) = self.early.remove(&self.returned) {
                self.returned += 1;
                self.in_flight -= 1;
                return std::task::Poll::Ready(result);
            }
            match self.done.poll_next_unpin(cx) {
                std::task::Poll::Ready(Some((number, result))) => {
                    self.early.insert(number, result);
                }
                // It ends only when the workers are gone, which they are not while we exist.
                _ => return std::task::Poll::Pending,
            }
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::task::{Context, Poll};

    use super::*;

    #[test]
    fn a_wall_deadline_fires_at_the_earlier_of_its_wall_and_monotonic_moments() {
        let mut deadline = WallDeadline::default();
        let far = unix_time() + Duration::from_secs(3600);
        // The wall-clock moment is an hour away; the monotonic one 5 ms: it fires on the latter.
        deadline.set(Some(far), Some(now() + Duration::from_millis(5)));
        futures::executor::block_on(futures::future::poll_fn(|cx| deadline.poll(cx)));
        let soon = unix_time() + Duration::from_millis(5);
        deadline.set(Some(soon), None);
        let started = now();
        futures::executor::block_on(futures::future::poll_fn(|cx| deadline.poll(cx)));
        assert!(deadline.instant(far) > started + Duration::from_secs(3000));
        deadline.fired_early();
    }

    #[test]
    fn a_deadline_fires_once_and_stays_quiet_until_it_is_set_again() {
        let mut deadline = Deadline::default();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(
            deadline.poll(&mut cx),
            Poll::Pending,
            "no deadline: never ready"
        );
        let at = now() + Duration::from_millis(5);
        deadline.set(Some(at));
        futures::executor::block_on(futures::future::poll_fn(|cx| deadline.poll(cx)));
        // Spent: neither a later poll nor the same deadline again makes it ready (a kept
        // `Delay` would be ready on every poll from now on).
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(deadline.poll(&mut cx), Poll::Pending);
        deadline.set(Some(now() + Duration::from_millis(5)));
        futures::executor::block_on(futures::future::poll_fn(|cx| deadline.poll(cx)));
        assert_eq!(deadline.poll(&mut cx), Poll::Pending);
        deadline.set(Some(now() + Duration::from_secs(3600)));
        deadline.set(None);
        assert_eq!(deadline.poll(&mut cx), Poll::Pending);
    }

    #[derive(Debug, PartialEq)]
    struct Square(u64);

    impl Task for Square {
        type Output = (u64, std::thread::ThreadId);
        const REQUEST_LEN: usize = 8;
        const REPLY_LEN: usize = 8;
        fn run(self) -> Self::Output {
            (self.0 * self.0, std::thread::current().id())
        }
        fn write_request(&self, out: &mut Vec<u8>) {
            out.extend(self.0.to_be_bytes());
        }
        fn serve(request: &[u8], reply: &mut Vec<u8>) {
            let n = u64::from_be_bytes(request.try_into().unwrap());
            reply.extend((n * n).to_be_bytes());
        }
        fn finish(self, reply: &[u8]) -> Self::Output {
            (
                u64::from_be_bytes(reply.try_into().unwrap()),
                std::thread::current().id(),
            )
        }
    }

    #[test]
    fn a_batch_is_served_in_order_and_finished_from_its_replies() {
        let mut requests = Vec::new();
        for n in [3u64, 5, 7] {
            Square(n).write_request(&mut requests);
        }
        let replies = serve_batch::<Square>(&requests);
        let squares: Vec<u64> = [3u64, 5, 7]
            .into_iter()
            .zip(replies.chunks_exact(8))
            .map(|(n, reply)| Square(n).finish(reply).0)
            .collect();
        assert_eq!(squares, [9, 25, 49]);
    }

    #[test]
    fn every_offload_shares_the_process_pool_and_gets_its_own_results() {
        let caller = std::thread::current().id();
        let mut offloads: Vec<_> = (0..20).map(|_| Offload::<Square>::new(16, 4)).collect();
        for (i, offload) in offloads.iter_mut().enumerate() {
            for n in 0..16 {
                assert!(offload.try_submit(Square(i as u64 * 100 + n)).is_ok());
            }
            assert!(offload.try_submit(Square(0)).is_err(), "its own bound");
        }
        let mut threads = std::collections::HashSet::new();
        for (i, offload) in offloads.iter_mut().enumerate() {
            let mut squares = Vec::new();
            while squares.len() < 16 {
                let (square, thread) =
                    futures::executor::block_on(futures::future::poll_fn(|cx| {
                        offload.poll_done(cx)
                    }));
                assert_ne!(thread, caller);
                threads.insert(thread);
                squares.push(square);
            }
            let expected: Vec<u64> = (0..16).map(|n| (i as u64 * 100 + n).pow(2)).collect();
            assert_eq!(squares, expected);
        }
        // Twenty offloads, no more threads than the cores.
        assert!(threads.len() <= cores(), "{} threads", threads.len());
    }

    /// A job that takes `.1` ms and answers its number `.0`.
    struct Nap(u64, u64);

    impl Task for Nap {
        type Output = u64;
        const REQUEST_LEN: usize = 8;
        const REPLY_LEN: usize = 8;
        fn run(self) -> u64 {
            std::thread::sleep(Duration::from_millis(self.1));
            self.0
        }
        fn write_request(&self, out: &mut Vec<u8>) {
            out.extend(self.0.to_be_bytes());
        }
        fn serve(request: &[u8], reply: &mut Vec<u8>) {
            reply.extend_from_slice(request);
        }
        fn finish(self, reply: &[u8]) -> u64 {
            u64::from_be_bytes(reply.try_into().unwrap())
        }
    }

    #[test]
    fn results_come_back_in_submission_order_whichever_thread_finishes_first() {
        // One job at a time per thread: the first naps while the other thread finishes the rest.
        let mut pool = Offload::<Nap>::with_threads(2, 16, 1);
        assert!(pool.try_submit(Nap(0, 100)).is_ok());
        for n in 1..8 {
            assert!(pool.try_submit(Nap(n, 0)).is_ok());
        }
        let order: Vec<u64> = (0..8)
            .map(|_| futures::executor::block_on(futures::future::poll_fn(|cx| pool.poll_done(cx))))
            .collect();
        assert_eq!(order, (0..8).collect::<Vec<_>>());
        assert_eq!(pool.in_flight(), 0);
    }

    #[test]
    fn offloaded_work_runs_on_other_threads_bounded_and_every_result_comes_back() {
        let caller = std::thread::current().id();
        let mut pool = Offload::<Square>::with_threads(2, 8, 4);
        // Bounded: the ninth job in flight is handed back.
        for n in 0..8 {
            assert!(pool.try_submit(Square(n)).is_ok());
        }
        assert_eq!(pool.try_submit(Square(8)), Err(Square(8)));
        let mut results = Vec::new();
        while results.len() < 8 {
            let (square, thread) =
                futures::executor::block_on(futures::future::poll_fn(|cx| pool.poll_done(cx)));
            assert_ne!(thread, caller, "the work ran on the caller's thread");
            results.push(square);
        }
        assert_eq!(results, (0..8).map(|n| n * n).collect::<Vec<_>>());
        assert_eq!(pool.in_flight(), 0);
        assert!(
            pool.try_submit(Square(9)).is_ok(),
            "room again once results are taken"
        );
    }
}

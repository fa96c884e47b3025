//! The elastic, bounded thread pool that every uberpool scheduler runs on.
//!
//! A [`ThreadPool`] follows Java `ThreadPoolExecutor` admission, as Mule uses it:
//!
//! 1. `core_size` threads start with the pool and never retire.
//! 2. A task goes to an idle thread if there is one.
//! 3. With no idle thread, a pool with `queue_size == 0` starts a new thread for the task, up to
//!    `max_size`; a pool with `queue_size > 0` queues the task while fewer than `queue_size` wait,
//!    and grows to `max_size` only when the queue is full.
//! 4. Beyond that the task is refused: [`Rejected`] carries the closure back to the caller. The
//!    pool itself never waits and never runs a task on the caller's thread; deciding that is the
//!    scheduler's job.
//! 5. Threads above `core_size` retire after `keep_alive` without work.
//! 6. If the operating system refuses a thread, the submission is refused as if the pool were at
//!    its maximum; the failure is counted (`spawn_failures`) and logged.
//!
//! The hot path is lock-free: an atomic admission word, crossbeam-deque queues, and exactly one
//! targeted wake-up when (and only when) no awake idle worker can take the task. The protocol,
//! with its invariants and the argument that no task is lost, is in `src/pool/README.md`.
//!
//! ```
//! use std::time::Duration;
//! use uberpool::pool::ThreadPool;
//!
//! let pool = ThreadPool::builder()
//!     .name("mailer.io")
//!     .core_size(2)
//!     .max_size(8)
//!     .keep_alive(Duration::from_secs(30))
//!     .build()?;
//! let handle = pool.submit(|| std::thread::current().name().map(str::to_owned))?;
//! assert!(handle.join()?.unwrap().starts_with("mailer.io."));
//! let report = pool.shutdown();
//! assert_eq!(report.completed, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod queue;
mod shutdown;
mod sleep;
mod state;
mod worker;

#[cfg(all(test, loom))]
mod loom_tests;

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::loom::{Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, RwLock};
use crate::rejected::{RejectKind, Rejected};
use crate::task::{HandleJob, Job, PlainJob, TaskHandle};

pub use shutdown::ShutdownReport;
use state::{EnqueueError, State};

pub(crate) use state::{MAX_QUEUE, MAX_THREADS};

/// A hook run on each pool thread when it starts or stops.
pub type ThreadHook = std::sync::Arc<dyn Fn() + Send + Sync + 'static>;

/// Creates the OS thread for a pool thread; see [`PoolBuilder::spawn_handler`].
pub type SpawnHandler =
    std::sync::Arc<dyn Fn(ThreadSpawn) -> io::Result<()> + Send + Sync + 'static>;

/// Everything a [`SpawnHandler`] needs to start one pool thread.
///
/// The handler must either start a thread that calls [`run`](ThreadSpawn::run), or return an
/// error. Dropping a `ThreadSpawn` without running it counts as a refusal, like an error.
pub struct ThreadSpawn {
    name: String,
    stack_size: Option<usize>,
    main: Option<Box<dyn FnOnce() + Send + 'static>>,
    abandoned: Arc<AtomicBool>,
}

impl ThreadSpawn {
    /// The name the thread should carry (`{pool}.{NN}`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stack size configured for the pool, if any.
    pub fn stack_size(&self) -> Option<usize> {
        self.stack_size
    }

    /// Runs the pool thread's body; call it on the new thread.
    pub fn run(mut self) {
        if let Some(main) = self.main.take() {
            main();
        }
    }
}

impl Drop for ThreadSpawn {
    fn drop(&mut self) {
        if self.main.is_some() {
            self.abandoned.store(true, Ordering::SeqCst);
        }
    }
}

impl fmt::Debug for ThreadSpawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadSpawn")
            .field("name", &self.name)
            .field("stack_size", &self.stack_size)
            .finish_non_exhaustive()
    }
}

/// The sizes of one pool, after clamping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) core_size: usize,
    pub(crate) max_size: usize,
    pub(crate) queue_size: usize,
    pub(crate) keep_alive: Duration,
}

/// Thread hooks a pool (or a service, for all its pools) applies to its threads.
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) on_thread_start: Option<ThreadHook>,
    pub(crate) on_thread_stop: Option<ThreadHook>,
    pub(crate) spawn_handler: Option<SpawnHandler>,
    pub(crate) stack_size: Option<usize>,
}

/// Event counters. Submit-side and worker-side counters sit on different cache lines.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) submitted: CachePadded<AtomicU64>,
    pub(crate) rejected: AtomicU64,
    pub(crate) spawn_failures: AtomicU64,
    pub(crate) completed: CachePadded<AtomicU64>,
    pub(crate) panicked: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) threads_started: AtomicU64,
    pub(crate) threads_retired: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    pub(crate) peak_threads: AtomicUsize,
    /// Tasks a scheduler ran on the submitting thread because this pool was full.
    pub(crate) caller_ran: AtomicU64,
    /// Submissions that waited for this pool to accept them.
    pub(crate) waited: AtomicU64,
    /// CPU_LIGHT tasks that ran longer than the light budget on this pool.
    pub(crate) light_overruns: AtomicU64,
    /// Flow steps dispatched to this pool (a thread switch).
    pub(crate) hops_switched: AtomicU64,
    /// Flow steps that ran in place on a thread of this pool (no switch).
    pub(crate) hops_elided: AtomicU64,
}

/// Threads that exited, waiting to be joined.
#[derive(Default)]
pub(crate) struct Exits {
    /// Join handles of threads started by the built-in spawner, by thread number.
    handles: Vec<(usize, crate::loom::thread::JoinHandle<()>)>,
    /// Numbers of built-in-spawned threads that have exited: joining them returns at once.
    exited: Vec<usize>,
}

/// The state all handles and threads of one pool share.
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) spec: Spec,
    /// The admission word (see `state.rs`).
    pub(crate) state: State,
    /// Tasks submitted from outside the pool.
    pub(crate) injector: queue::Injector<Job>,
    /// Stealers of every live worker's deque, by thread number.
    pub(crate) stealers: RwLock<Vec<(usize, queue::Stealer<Job>)>>,
    pub(crate) sleep: sleep::Sleep,
    /// Threads reserved or alive. Incremented before a thread is spawned, decremented when it
    /// exits (or its spawn failed); never above `spec.max_size`.
    pub(crate) threads: CachePadded<AtomicUsize>,
    /// Numbers thread names; starts at 1 and never goes back.
    thread_seq: AtomicUsize,
    exits: Mutex<Exits>,
    /// Signalled (with `exits` held) whenever `threads` decreases.
    exit_signal: Condvar,
    pub(crate) counters: Counters,
    /// Set when the shutdown grace period ends: read by workers before every task, so it lives
    /// on its own cache line instead of the busy admission word.
    pub(crate) aborting: CachePadded<AtomicBool>,
    pub(crate) hooks: Hooks,
    shutdown_timeout: Duration,
    /// Callers blocked in [`Shared::admit_waiting`]; workers signal only when it is non-zero.
    capacity_waiters: CachePadded<AtomicUsize>,
    /// Bumped by every signal that found a waiter: a waiter that sees it change between its
    /// admission attempt and its wait retries instead of waiting.
    capacity_epoch: AtomicU64,
    capacity_lock: Mutex<()>,
    /// Signalled (with `capacity_lock` held) when the pool may accept again: a worker became idle,
    /// a queued task was claimed, a thread exited, or shutdown began.
    capacity_signal: Condvar,
    /// Idle workers in their search back-off now (bounded: see `worker.rs`).
    pub(crate) backing_off: CachePadded<AtomicUsize>,
}

impl Shared {
    /// Admits `job`: to the queues if an idle thread or queue room is free for it, else to a new
    /// thread if the pool may grow. Refusals give the job back and are counted in `rejected`.
    pub(crate) fn admit(this: &Arc<Self>, job: Job) -> Result<(), (Job, RejectKind)> {
        let result = Self::try_admit(this, job);
        if result.is_err() {
            this.counters.rejected.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// [`admit`](Self::admit) without counting a refusal (the retries of a waiting submission,
    /// whose first refusal was counted).
    fn try_admit(this: &Arc<Self>, job: Job) -> Result<(), (Job, RejectKind)> {
        match this.state.try_enqueue(this.spec.queue_size) {
            Ok(after) => {
                this.counters.submitted.fetch_add(1, Ordering::Relaxed);
                let job = worker::with_current(|current| match current {
                    Some(ctx) if Arc::ptr_eq(&ctx.shared, this) => {
                        ctx.local.push(job);
                        None
                    }
                    _ => Some(job),
                });
                if let Some(job) = job {
                    this.injector.push(job);
                }
                if after.needs_wake() && this.sleep.wake_one(&this.state) {
                    this.counters.wakeups.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(EnqueueError::Shutdown) => Err((job, RejectKind::Shutdown)),
            Err(EnqueueError::Full) => Self::grow(this, job),
        }
    }

    /// Starts a new thread for `job`, if the pool is below its maximum.
    fn grow(this: &Arc<Self>, job: Job) -> Result<(), (Job, RejectKind)> {
        let max = this.spec.max_size;
        if this
            .threads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err((job, RejectKind::Busy));
        }
        // The reservation is visible to a shutdown before this check (both SeqCst): either we
        // see the flag, or the shutdown waits for this thread.
        if this.state.load().is_shutdown() {
            this.release_reservation();
            return Err((job, RejectKind::Shutdown));
        }
        this.counters.submitted.fetch_add(1, Ordering::Relaxed);
        match Self::spawn_thread(this, Some(job)) {
            Ok(()) => Ok(()),
            Err((job, error)) => {
                this.counters.submitted.fetch_sub(1, Ordering::Relaxed);
                this.counters.spawn_failures.fetch_add(1, Ordering::Relaxed);
                this.release_reservation();
                tracing::warn!(pool = %this.name, %error, "could not start a pool thread; task refused as if the pool were full");
                let job = job.expect("a growth spawn always carries its first task");
                Err((job, RejectKind::Busy))
            }
        }
    }

    /// Starts one thread (whose slot in `threads` is already reserved).
    fn spawn_thread(this: &Arc<Self>, first: Option<Job>) -> Result<(), (Option<Job>, io::Error)> {
        this.join_exited(None, false);
        let seq = this.thread_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let name = format!("{}.{:02}", this.name, seq);
        let slot = Arc::new(Mutex::new(first));
        let joinable = this.hooks.spawn_handler.is_none();
        let main = {
            let shared = Arc::clone(this);
            let slot = slot.clone();
            move || {
                let first = slot.lock().take();
                drop(slot);
                worker::run(shared, first, seq, joinable)
            }
        };
        let result = match &this.hooks.spawn_handler {
            None => {
                let mut builder = crate::loom::thread::Builder::new().name(name);
                if let Some(size) = this.hooks.stack_size {
                    builder = builder.stack_size(size);
                }
                // Held across the spawn so the thread cannot report its exit before its handle
                // is stored.
                let mut exits = this.exits.lock();
                builder
                    .spawn(main)
                    .map(|handle| exits.handles.push((seq, handle)))
            }
            Some(handler) => {
                let abandoned = Arc::new(AtomicBool::new(false));
                let spawn = ThreadSpawn {
                    name,
                    stack_size: this.hooks.stack_size,
                    main: Some(Box::new(main)),
                    abandoned: abandoned.clone(),
                };
                match handler(spawn) {
                    Ok(()) if abandoned.load(Ordering::SeqCst) => Err(io::Error::other(
                        "the spawn handler dropped the thread without running it",
                    )),
                    other => other,
                }
            }
        };
        match result {
            Ok(()) => {
                this.counters
                    .threads_started
                    .fetch_add(1, Ordering::Relaxed);
                this.counters
                    .peak_threads
                    .fetch_max(this.threads.load(Ordering::Relaxed), Ordering::Relaxed);
                Ok(())
            }
            Err(error) => {
                let first = slot.lock().take();
                Err((first, error))
            }
        }
    }

    /// Gives back a thread slot that never got a running thread (its spawn failed, or shutdown
    /// began) and wakes shutdown waiters. It does not signal waiting submitters: nothing was
    /// freed that they were waiting for, and a waiter whose own spawn failed must go back to
    /// sleep rather than retry at once in a loop.
    fn release_reservation(&self) {
        self.threads.fetch_sub(1, Ordering::SeqCst);
        let _exits = self.exits.lock();
        self.exit_signal.notify_all();
    }

    /// Wakes callers blocked in [`admit_waiting`](Self::admit_waiting), if there are any.
    ///
    /// Called after the capacity change (a `SeqCst` read-modify-write). The `SeqCst` load pairs
    /// with the waiter's `SeqCst` increment made before it reads the epoch and tries to admit:
    /// either its attempt sees the capacity, or this load sees the waiter, bumps the epoch and
    /// notifies under `capacity_lock` — which the waiter holds from its epoch check until it is
    /// inside the wait. The lock is never held while admitting, so a signal from inside an
    /// admission (a failed spawn releasing its slot) cannot deadlock.
    #[inline]
    ///
    /// One unit of capacity wakes one waiter (thousands of IO threads may be waiting for a small
    /// CPU pool: waking them all for one slot would be a stampede). A waiter that leaves without
    /// taking capacity (its deadline passed) passes the signal on; shutdown wakes them all.
    pub(crate) fn signal_capacity(&self) {
        self.signal_waiters(false);
    }

    fn signal_waiters(&self, all: bool) {
        if self.capacity_waiters.load(Ordering::SeqCst) > 0 {
            self.capacity_epoch.fetch_add(1, Ordering::SeqCst);
            let _guard = self.capacity_lock.lock();
            if all {
                self.capacity_signal.notify_all();
            } else {
                self.capacity_signal.notify_one();
            }
        }
    }

    /// Wakes every waiting submitter (shutdown: they all leave with `Shutdown`).
    pub(crate) fn signal_capacity_all(&self) {
        self.signal_waiters(true);
    }

    /// Admits `job`, blocking while the pool is full, until `deadline` (forever without one).
    /// Returns the job when the deadline passes (`Busy`) or the pool shuts down (`Shutdown`).
    /// Only the caller's first refusal is counted in `rejected` (by the caller's own `admit`).
    pub(crate) fn admit_waiting(
        this: &Arc<Self>,
        job: Job,
        deadline: Option<Instant>,
    ) -> Result<(), (Job, RejectKind)> {
        this.capacity_waiters.fetch_add(1, Ordering::SeqCst);
        this.counters.waited.fetch_add(1, Ordering::Relaxed);
        let mut job = job;
        let result = loop {
            let epoch = this.capacity_epoch.load(Ordering::SeqCst);
            match Self::try_admit(this, job) {
                Ok(()) => break Ok(()),
                Err((back, RejectKind::Busy)) => {
                    job = back;
                    let left = match deadline {
                        Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                        None => Duration::from_secs(3600),
                    };
                    if left.is_zero() {
                        // a signal meant for this waiter may be lost with it: pass it on
                        this.capacity_waiters.fetch_sub(1, Ordering::SeqCst);
                        this.signal_capacity();
                        return Err((job, RejectKind::Busy));
                    }
                    let mut guard = this.capacity_lock.lock();
                    if this.capacity_epoch.load(Ordering::SeqCst) == epoch {
                        crate::loom::wait_timeout(&this.capacity_signal, &mut guard, left);
                    }
                }
                Err(other) => break Err(other),
            }
        };
        this.capacity_waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Called by a worker as its very last act.
    pub(crate) fn thread_exited(&self, seq: usize, already_released: bool, joinable: bool) {
        if !already_released {
            self.threads.fetch_sub(1, Ordering::SeqCst);
        }
        {
            let mut exits = self.exits.lock();
            if joinable {
                exits.exited.push(seq);
            }
            self.exit_signal.notify_all();
        }
        self.signal_capacity();
    }

    /// Joins the built-in spawner's threads that have exited (or, with `all`, every one of
    /// them), except the calling thread `me`.
    pub(crate) fn join_exited(&self, me: Option<usize>, all: bool) {
        let joinable = {
            let mut exits = self.exits.lock();
            if exits.exited.is_empty() && !all {
                return;
            }
            let exited = std::mem::take(&mut exits.exited);
            let (done, alive): (Vec<_>, Vec<_>) = std::mem::take(&mut exits.handles)
                .into_iter()
                .partition(|(seq, _)| (all || exited.contains(seq)) && Some(*seq) != me);
            exits.handles = alive;
            done
        };
        for (_, handle) in joinable {
            let _ = handle.join();
        }
    }

    /// See [`ThreadPool::free_slots`].
    pub(crate) fn free_slots(&self) -> usize {
        let state = self.state.load();
        if state.is_shutdown() {
            return 0;
        }
        let queueable = (state.idle() + self.spec.queue_size).saturating_sub(state.pending());
        let growable = self
            .spec
            .max_size
            .saturating_sub(self.threads.load(Ordering::SeqCst));
        queueable.saturating_add(growable)
    }

    fn metrics(&self) -> PoolMetrics {
        let state = self.state.load();
        let threads = self.threads.load(Ordering::Relaxed);
        PoolMetrics {
            name: self.name.clone(),
            core_size: self.spec.core_size,
            max_size: self.spec.max_size,
            queue_size: self.spec.queue_size,
            threads,
            idle: state.idle(),
            active: threads.saturating_sub(state.idle()),
            queued: state.pending(),
            submitted: self.counters.submitted.load(Ordering::Relaxed),
            completed: self.counters.completed.load(Ordering::Relaxed),
            cancelled: self.counters.cancelled.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
            panicked: self.counters.panicked.load(Ordering::Relaxed),
            spawn_failures: self.counters.spawn_failures.load(Ordering::Relaxed),
            peak_threads: self.counters.peak_threads.load(Ordering::Relaxed),
            threads_started: self.counters.threads_started.load(Ordering::Relaxed),
            threads_retired: self.counters.threads_retired.load(Ordering::Relaxed),
            wakeups: self.counters.wakeups.load(Ordering::Relaxed),
            caller_ran: self.counters.caller_ran.load(Ordering::Relaxed),
            waited: self.counters.waited.load(Ordering::Relaxed),
            light_overruns: self.counters.light_overruns.load(Ordering::Relaxed),
            hops_switched: self.counters.hops_switched.load(Ordering::Relaxed),
            hops_elided: self.counters.hops_elided.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of one pool's gauges and counters, taken without stopping the pool.
///
/// Gauges (`threads`, `idle`, `active`, `queued`) are read one after the other while the pool
/// runs, so they are individually exact but may not add up at a single instant. Counters only
/// grow. `completed` counts tasks that ran to their end, including those that panicked
/// (`panicked` is a subset of `completed`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolMetrics {
    /// The pool's name (the thread-name prefix).
    pub name: String,
    /// Threads that never retire.
    pub core_size: usize,
    /// Most threads the pool may have.
    pub max_size: usize,
    /// Tasks that may wait in the queue when no thread is idle.
    pub queue_size: usize,
    /// Threads alive (or being started) now.
    pub threads: usize,
    /// Threads without a task now.
    pub idle: usize,
    /// Threads running a task now.
    pub active: usize,
    /// Tasks accepted and waiting for a thread now.
    pub queued: usize,
    /// Tasks accepted since the pool started.
    pub submitted: u64,
    /// Tasks that ran to their end (panicked or not).
    pub completed: u64,
    /// Tasks that never ran: cancelled through their handle, or at shutdown.
    pub cancelled: u64,
    /// Submissions refused (pool full, thread refused by the OS, or shut down).
    pub rejected: u64,
    /// Tasks that panicked.
    pub panicked: u64,
    /// Threads the OS (or the spawn handler) refused to start.
    pub spawn_failures: u64,
    /// Most threads alive at once.
    pub peak_threads: usize,
    /// Threads started since the pool was built.
    pub threads_started: u64,
    /// Threads that retired after their keep-alive.
    pub threads_retired: u64,
    /// Parked threads woken by a submission (at most one per accepted task; none while an awake
    /// idle thread can take the task).
    pub wakeups: u64,
    /// Tasks a scheduler ran on the submitting thread because this pool was full (always zero
    /// for a bare pool, which never runs work on the caller's thread).
    pub caller_ran: u64,
    /// Submissions through a scheduler that had to wait for this pool to accept them.
    pub waited: u64,
    /// CPU_LIGHT tasks that ran longer than 10 ms on this pool: misclassified work.
    pub light_overruns: u64,
    /// Flow steps dispatched to this pool: each one a thread switch (flow entries included).
    pub hops_switched: u64,
    /// Flow steps that ran in place on one of this pool's threads, with no switch.
    pub hops_elided: u64,
}

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `core_size` was zero: a pool needs at least one thread.
    #[error("pool '{pool}': core_size must be at least 1")]
    ZeroCoreSize {
        /// The pool's name.
        pool: String,
    },
    /// A core thread could not be started.
    #[error("pool '{pool}': could not start core thread: {source}")]
    Spawn {
        /// The pool's name.
        pool: String,
        /// The error from the OS or the spawn handler.
        #[source]
        source: io::Error,
    },
}

/// Configures and builds a [`ThreadPool`].
///
/// Values are clamped rather than refused where a sensible reading exists: `max_size` below
/// `core_size` is raised to `core_size`; sizes above the pool's limits (32,767 threads,
/// 2³¹ − 1 queued tasks) are lowered to them.
pub struct PoolBuilder {
    name: String,
    core_size: usize,
    max_size: Option<usize>,
    queue_size: usize,
    keep_alive: Duration,
    shutdown_timeout: Duration,
    hooks: Hooks,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        Self {
            name: "uberpool".to_owned(),
            core_size: 1,
            max_size: None,
            queue_size: 0,
            keep_alive: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(15),
            hooks: Hooks::default(),
        }
    }
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("name", &self.name)
            .field("core_size", &self.core_size)
            .field("max_size", &self.max_size)
            .field("queue_size", &self.queue_size)
            .field("keep_alive", &self.keep_alive)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

impl PoolBuilder {
    /// The pool's name; threads are named `{name}.01`, `{name}.02`, … Default `"uberpool"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Threads started with the pool, which never retire. Default 1; must be at least 1.
    pub fn core_size(mut self, n: usize) -> Self {
        self.core_size = n;
        self
    }

    /// Most threads the pool may have. Default: `core_size` (a fixed pool).
    pub fn max_size(mut self, n: usize) -> Self {
        self.max_size = Some(n);
        self
    }

    /// Tasks that may wait when no thread is idle; `0` (the default) is a direct hand-off.
    pub fn queue_size(mut self, n: usize) -> Self {
        self.queue_size = n;
        self
    }

    /// How long a thread above `core_size` stays without work before it retires. Default 30 s.
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// The grace period of [`ThreadPool::shutdown`] and of dropping the pool. Default 15 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Stack size of the pool's threads, in bytes.
    pub fn thread_stack_size(mut self, bytes: usize) -> Self {
        self.hooks.stack_size = Some(bytes);
        self
    }

    /// Runs `hook` on each pool thread when it starts, before it takes any task.
    pub fn on_thread_start(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.hooks.on_thread_start = Some(std::sync::Arc::new(hook));
        self
    }

    /// Runs `hook` on each pool thread just before it exits.
    pub fn on_thread_stop(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.hooks.on_thread_stop = Some(std::sync::Arc::new(hook));
        self
    }

    /// Replaces how pool threads are created. The handler gets a [`ThreadSpawn`] and must start
    /// a thread that calls [`ThreadSpawn::run`], or return an error; an error makes the
    /// submission that needed the thread be refused (`RejectKind::Busy`) and is counted in
    /// `spawn_failures`. Threads created this way are waited for at shutdown but not joined.
    ///
    /// ```
    /// use uberpool::pool::ThreadPool;
    ///
    /// let pool = ThreadPool::builder()
    ///     .spawn_handler(|spawn| {
    ///         std::thread::Builder::new()
    ///             .name(spawn.name().to_owned())
    ///             .spawn(move || spawn.run())
    ///             .map(|_| ())
    ///     })
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.submit(|| 1).unwrap().join(), Ok(1));
    /// ```
    pub fn spawn_handler(
        mut self,
        handler: impl Fn(ThreadSpawn) -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.hooks.spawn_handler = Some(std::sync::Arc::new(handler));
        self
    }

    /// Builds the pool and starts its core threads.
    pub fn build(self) -> Result<ThreadPool, BuildError> {
        if self.core_size == 0 {
            return Err(BuildError::ZeroCoreSize { pool: self.name });
        }
        let core_size = self.core_size.min(MAX_THREADS);
        let max_size = self
            .max_size
            .unwrap_or(core_size)
            .clamp(core_size, MAX_THREADS);
        let spec = Spec {
            core_size,
            max_size,
            queue_size: self.queue_size.min(MAX_QUEUE),
            keep_alive: self.keep_alive,
        };
        let shared = Arc::new(Shared {
            name: self.name,
            spec,
            state: State::new(),
            injector: queue::Injector::new(),
            stealers: RwLock::new(Vec::new()),
            sleep: sleep::Sleep::new(),
            threads: CachePadded::new(AtomicUsize::new(core_size)),
            thread_seq: AtomicUsize::new(0),
            exits: Mutex::new(Exits::default()),
            exit_signal: Condvar::new(),
            counters: Counters::default(),
            aborting: CachePadded::new(AtomicBool::new(false)),
            hooks: self.hooks,
            shutdown_timeout: self.shutdown_timeout,
            capacity_waiters: CachePadded::new(AtomicUsize::new(0)),
            capacity_epoch: AtomicU64::new(0),
            capacity_lock: Mutex::new(()),
            capacity_signal: Condvar::new(),
            backing_off: CachePadded::new(AtomicUsize::new(0)),
        });
        // Core threads are counted idle before they exist, so the first submissions find them
        // even if the threads have not been scheduled yet.
        shared.state.add_idle(core_size);
        for started in 0..core_size {
            if let Err((_, source)) = Shared::spawn_thread(&shared, None) {
                // Undo the slots of the threads that were never started, then stop the others.
                for _ in started..core_size {
                    shared.state.try_leave_idle().ok();
                    shared.release_reservation();
                }
                let pool = ThreadPool { shared };
                pool.shutdown_timeout(Duration::ZERO);
                return Err(BuildError::Spawn {
                    pool: pool.shared.name.clone(),
                    source,
                });
            }
        }
        Ok(ThreadPool { shared })
    }
}

/// An elastic, bounded thread pool with Java `ThreadPoolExecutor` admission.
///
/// See the [module documentation](self) for the admission rules. Submitting takes `&self`, so a
/// pool is shared across threads by reference or in an `Arc`. Dropping the pool shuts it down
/// with its configured grace period (see [`ThreadPool::shutdown`]).
pub struct ThreadPool {
    shared: Arc<Shared>,
}

impl ThreadPool {
    /// A builder with the defaults: name `"uberpool"`, one core thread, no growth, hand-off.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Runs `f` on the pool, without a handle. One allocation per task.
    ///
    /// Refused (pool full, or shut down) returns the closure in [`Rejected`]. A panic in `f` is
    /// caught, logged and counted; the thread survives.
    pub fn execute<F>(&self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        Shared::admit(&self.shared, PlainJob::job(f, ()))
            .map_err(|(job, kind)| Rejected::new(PlainJob::<F>::recover(job), kind, self.name()))
    }

    /// Runs `f` on the pool and returns a handle to its value. One allocation per task: the
    /// closure and the cell the handle reads share it.
    ///
    /// Refused (pool full, or shut down) returns the closure in [`Rejected`].
    pub fn submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (job, handle) = HandleJob::job(f);
        match Shared::admit(&self.shared, job) {
            Ok(()) => Ok(handle),
            Err((job, kind)) => Err(Rejected::new(
                HandleJob::<F, T>::recover(job),
                kind,
                self.name(),
            )),
        }
    }

    /// How many more tasks the pool would accept right now without refusing: idle threads and
    /// queue room not yet taken by pending tasks, plus the threads it may still start. A
    /// snapshot: by the time the caller acts, other submitters may have taken the room. Zero
    /// once the pool is shutting down.
    ///
    /// ```
    /// use uberpool::pool::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().core_size(2).max_size(4).queue_size(3).build()?;
    /// assert_eq!(pool.free_slots(), 2 + 3 + 2);
    /// pool.shutdown();
    /// assert_eq!(pool.free_slots(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn free_slots(&self) -> usize {
        self.shared.free_slots()
    }

    /// The state the pool's handles and threads share (for the schedulers built on the pool).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// A snapshot of the pool's gauges and counters.
    pub fn metrics(&self) -> PoolMetrics {
        self.shared.metrics()
    }

    /// `true` if the calling thread is one of this pool's threads.
    pub fn is_current(&self) -> bool {
        worker::with_current(|ctx| ctx.is_some_and(|ctx| Arc::ptr_eq(&ctx.shared, &self.shared)))
    }

    /// `true` once shutdown has begun: new work is refused.
    pub fn is_shutdown(&self) -> bool {
        self.shared.state.load().is_shutdown()
    }

    /// `true` once shutdown has begun and every thread has exited.
    pub fn is_terminated(&self) -> bool {
        self.is_shutdown() && self.shared.threads.load(Ordering::SeqCst) == 0
    }

    /// Shuts down with the grace period configured by [`PoolBuilder::shutdown_timeout`].
    pub fn shutdown(&self) -> ShutdownReport {
        self.shutdown_timeout(self.shared.shutdown_timeout)
    }

    /// Stops accepting work, lets queued and running tasks finish within `timeout`, then cancels
    /// what never started and reports. See [`ShutdownReport`].
    ///
    /// Called from one of the pool's own threads, it does not wait for that thread (which is
    /// busy running the caller): that task is reported in `still_running`.
    pub fn shutdown_timeout(&self, timeout: Duration) -> ShutdownReport {
        Shared::shutdown(&self.shared, timeout)
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        if !self.is_terminated() {
            self.shutdown();
        }
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("name", &self.shared.name)
            .field("spec", &self.shared.spec)
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}

/// The name of the pool the calling thread belongs to, if it is a pool thread.
pub fn current_pool_name() -> Option<String> {
    worker::with_current(|ctx| ctx.map(|ctx| ctx.shared.name.clone()))
}

/// `true` when the calling thread is a pool thread whose pool has begun shutting down.
///
/// Long tasks can poll it to finish early. It is `false` on threads that are not pool threads.
pub fn shutdown_requested() -> bool {
    worker::with_current(|ctx| ctx.is_some_and(|ctx| ctx.shared.state.load().is_shutdown()))
}

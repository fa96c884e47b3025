//! The elastic, bounded thread pool that every uberpool scheduler runs on: the facade.
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
//! User code cannot break a pool: a task's panic, a panicking `Drop` of anything the pool drops,
//! a panicking waker, thread hook or spawn handler is contained and logged; the worker thread
//! carries on, and the shutdown report still accounts for every task.
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
//!
//! Files: `builder.rs` (configuration and start), `admit.rs` (admission and growth),
//! `capacity.rs` (callers waiting for room), `threads.rs` (starting, losing, exiting and joining
//! threads), `worker.rs` (the worker loop), `sleep.rs` (parking), `state.rs` (the admission
//! word), `queue.rs`, `shutdown.rs`, `metrics.rs`.

mod admit;
mod builder;
mod capacity;
mod cpu;
mod metrics;
mod queue;
mod shutdown;
mod sleep;
mod state;
mod threads;
mod worker;

#[cfg(all(test, loom))]
mod loom_tests;

use std::fmt;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::loom::{Arc, AtomicBool, AtomicUsize, Condvar, Mutex, Ordering, RwLock};
use crate::rejected::Rejected;
use crate::task::{HandleJob, Job, PlainJob, TaskHandle};

pub use builder::{BuildError, PoolBuilder};
pub(crate) use builder::{Hooks, Spec};
use metrics::Counters;
pub use metrics::ThreadPoolMetrics;
pub use shutdown::ShutdownReport;
pub use state::MAX_THREADS;
use state::State;
use threads::Exits;
pub use threads::ThreadSpawn;
pub(crate) use worker::boundary;

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
    /// exits, when its spawn failed, or when its spawn was dropped unrun; never above
    /// `spec.max_size`. `SeqCst`: shutdown's argument orders it with the admission word.
    pub(crate) threads: CachePadded<AtomicUsize>,
    /// Numbers thread names; starts at 1 and never goes back. `Relaxed`: only uniqueness counts.
    thread_seq: AtomicUsize,
    /// Exited threads to join, and this pool's threads waiting inside a shutdown.
    exits: Mutex<Exits>,
    /// Signalled (with `exits` held) whenever `threads` decreases, and when one of this pool's
    /// threads starts waiting inside a shutdown (see `shutdown.rs`).
    exit_signal: Condvar,
    pub(crate) counters: Counters,
    /// Set when the shutdown grace period ends: read by workers before every task, so it lives
    /// on its own cache line instead of the busy admission word. `Relaxed` reads: a worker that
    /// misses it runs one more task, which the report counts.
    pub(crate) aborting: CachePadded<AtomicBool>,
    pub(crate) hooks: Hooks,
    shutdown_timeout: Duration,
    /// Callers blocked until the pool has room (see `capacity.rs`).
    capacity: capacity::Capacity,
    /// Idle workers in their search back-off now (bounded: see `worker.rs`). `Relaxed`: a
    /// bound on spinning, not a protocol variable.
    pub(crate) backing_off: CachePadded<AtomicUsize>,
    /// Threads running CPU work, and the limit past which CPU work queues (see `cpu.rs`).
    pub(crate) cpu: cpu::CpuLoad,
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
    /// Refused (pool full, or shut down) returns the closure in [`Rejected`] and counts the
    /// refusal in `rejected`. A panic in `f` is caught, logged and counted; the thread survives.
    pub fn execute<F>(&self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        Shared::admit(&self.shared, PlainJob::job(f, ())).map_err(|(job, kind)| {
            self.shared.count_rejected();
            Rejected::new(PlainJob::<F>::recover(job), kind, self.name())
        })
    }

    /// Runs `f` on the pool and returns a handle to its value. One allocation per task: the
    /// closure and the cell the handle reads share it.
    ///
    /// Refused (pool full, or shut down) returns the closure in [`Rejected`] and counts the
    /// refusal in `rejected`.
    pub fn submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (job, handle) = HandleJob::job(f);
        match Shared::admit(&self.shared, job) {
            Ok(()) => Ok(handle),
            Err((job, kind)) => {
                self.shared.count_rejected();
                Err(Rejected::new(
                    HandleJob::<F, T>::recover(job),
                    kind,
                    self.name(),
                ))
            }
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
    pub fn metrics(&self) -> ThreadPoolMetrics {
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
    /// what never started and reports. See [`ShutdownReport`]. Any `timeout` is accepted: one
    /// too long for the clock waits without a deadline.
    ///
    /// Called from a pool thread (of this pool or any other), it waits neither for its own
    /// thread nor for threads that are themselves waiting inside a shutdown, so two tasks that
    /// shut down each other's pools, or their own, never wait for each other; those tasks are
    /// reported in `still_running`.
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

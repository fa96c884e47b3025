//! How a pool is configured and started: [`PoolBuilder`], its checks and [`BuildError`].
//!
//! Values are clamped where a sensible reading exists and refused where none does:
//!
//! - `core_size` 0 is refused (a pool needs a thread), and so is a `core_size` above
//!   [`MAX_THREADS`]: core threads all start at once, and starting tens of thousands of threads
//!   one by one, only to hit the pool's limit (or the machine's), is never what was meant.
//! - `max_size` below `core_size` is raised to `core_size`. A `max_size` above [`MAX_THREADS`]
//!   is lowered to it: the maximum is a bound reached only on demand, thread by thread, and
//!   `usize::MAX` is a natural way to write "no bound of mine".
//! - `queue_size` above 2³¹ − 1 is lowered to it (the width of the pending count).
//! - Durations are taken as given: every deadline computed from them saturates (a keep-alive or
//!   grace period too long for the clock means "no deadline"), so none can overflow later.

use std::fmt;
use std::io;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::metrics::Counters;
use super::state::{MAX_QUEUE, MAX_THREADS, State};
use super::threads::Exits;
use super::{Shared, ThreadPool, ThreadSpawn, capacity, queue, sleep};
use crate::loom::{Arc, AtomicBool, AtomicUsize, Condvar, Mutex, RwLock};

/// A hook run on each pool thread when it starts or stops.
pub(crate) type ThreadHook = std::sync::Arc<dyn Fn() + Send + Sync + 'static>;

/// Creates the OS thread for a pool thread; see [`PoolBuilder::spawn_handler`].
pub(crate) type SpawnHandler =
    std::sync::Arc<dyn Fn(ThreadSpawn) -> io::Result<()> + Send + Sync + 'static>;

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
    /// `core_size` was above [`MAX_THREADS`], the most threads one pool may have.
    #[error(
        "pool '{pool}': core_size {core_size} is above the most threads a pool may have ({max})"
    )]
    TooManyThreads {
        /// The pool's name.
        pool: String,
        /// The `core_size` asked for.
        core_size: usize,
        /// The limit ([`MAX_THREADS`]).
        max: usize,
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
/// `core_size` must be between 1 and [`MAX_THREADS`]; other values are clamped where a sensible
/// reading exists: `max_size` below `core_size` is raised to `core_size`, above
/// [`MAX_THREADS`] lowered to it (growth is on demand, so a large maximum starts nothing); a
/// `queue_size` above 2³¹ − 1 is lowered to it. Any duration is accepted.
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder {
    name: String,
    core_size: usize,
    max_size: Option<usize>,
    queue_size: usize,
    keep_alive: Duration,
    shutdown_timeout: Duration,
    hooks: Hooks,
    cpu_limit: usize,
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
            cpu_limit: 0,
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

    /// Runs `hook` on each pool thread when it starts, before it takes any task. A panic in the
    /// hook is logged and contained: the thread carries on.
    pub fn on_thread_start(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.hooks.on_thread_start = Some(std::sync::Arc::new(hook));
        self
    }

    /// Runs `hook` on each pool thread just before it exits. A panic in the hook is logged and
    /// contained: the thread still gives its slot back.
    pub fn on_thread_stop(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.hooks.on_thread_stop = Some(std::sync::Arc::new(hook));
        self
    }

    /// Replaces how pool threads are created. The handler gets a [`ThreadSpawn`] and must start
    /// a thread that calls [`ThreadSpawn::run`], or return an error; an error makes the
    /// submission that needed the thread be refused (`RejectKind::Busy`) and is counted in
    /// `spawn_failures`. A handler that panics refuses the same way. Threads created this way
    /// are waited for at shutdown but not joined.
    ///
    /// A handler may also keep the [`ThreadSpawn`] and run it later (on a thread it starts
    /// itself). Dropping it unrun at any time counts as a refusal after the fact: the slot is
    /// given back and the task the thread was started for is cancelled (its handle yields
    /// `Cancelled`); a core thread lost this way is not replaced.
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

    /// Most of the pool's threads that run CPU work at once before further CPU work queues for
    /// them instead of waking or starting another thread (see `cpu.rs`); 0, the default, for no
    /// limit. Only the service marks work as CPU work; the pool's own `execute` and `submit`
    /// never do.
    pub(crate) fn cpu_limit(mut self, n: usize) -> Self {
        self.cpu_limit = n;
        self
    }

    /// Builds the pool and starts its core threads.
    pub fn build(self) -> Result<ThreadPool, BuildError> {
        if self.core_size == 0 {
            return Err(BuildError::ZeroCoreSize { pool: self.name });
        }
        if self.core_size > MAX_THREADS {
            return Err(BuildError::TooManyThreads {
                pool: self.name,
                core_size: self.core_size,
                max: MAX_THREADS,
            });
        }
        let core_size = self.core_size;
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
            capacity: capacity::Capacity::new(),
            backing_off: CachePadded::new(AtomicUsize::new(0)),
            cpu: super::cpu::CpuLoad::new(self.cpu_limit, &spec),
        });
        // Core threads are counted idle before they exist, so the first submissions find them
        // even if the threads have not been scheduled yet.
        shared.state.add_idle(core_size);
        for started in 0..core_size {
            if let Err((_, source)) = Shared::spawn_thread(&shared, None, true) {
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

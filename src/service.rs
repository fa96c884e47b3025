//! [`SchedulerService`]: turns a [`PoolsConfig`] into one UBER pool or three DEDICATED pools, and
//! hands out [`Scheduler`]s per task class.
//!
//! The service owns the pools; schedulers are views over them. Dropping the last service handle
//! shuts the pools down with the configured graceful timeout.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::TaskClass;
use crate::config::{ConfigError, PoolSpec, PoolsConfig, Resources, Strategy};
use crate::policy::{Target, ThreadRole};
use crate::pool::{
    BuildError, Hooks, PoolBuilder, ShutdownReport, ThreadPool, ThreadPoolMetrics, ThreadSpawn,
};
use crate::scheduler::{DispatchCounters, PoolEntry, Scheduler, ViewShared};
use crate::throttle::Throttle;
use crate::timer::{Fire, Timer, TimerAction};

/// Options of a scheduler: its name, and for custom schedulers their pool and flags.
///
/// ```
/// use uberpool::SchedulerConfig;
///
/// let config = SchedulerConfig::new()
///     .name("smtp-relay")
///     .max_concurrent_tasks(16)
///     .wait_allowed(true);
/// assert_eq!(config.get_name(), Some("smtp-relay"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerConfig {
    name: Option<String>,
    max_concurrent_tasks: Option<usize>,
    queue_size: Option<usize>,
    wait_allowed: bool,
    direct_run_cpu_light_when_target_busy: bool,
    shutdown_timeout: Option<Duration>,
    class: Option<TaskClass>,
    rate_limit: Option<(u32, Duration)>,
}

impl SchedulerConfig {
    /// A configuration with nothing set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The scheduler's name, used in logs, rejections and (for custom schedulers) thread names.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The most tasks of the scheduler in flight at once.
    ///
    /// - For [`SchedulerService::scheduler_with`]: a **throttled** view when `n` is below the
    ///   pool's maximum size (at or above it, the pool's own limit already applies and a plain
    ///   view is returned, as in Mule). Beyond the limit, callers that may wait (your own
    ///   threads, IO and UBER threads) wait for a slot and the others are refused with
    ///   [`RejectKind::Throttled`](crate::RejectKind::Throttled); with
    ///   [`queue_size`](Self::queue_size) the excess first waits in the scheduler's own queue.
    /// - For [`SchedulerService::custom`]: the size of its own pool (required).
    ///
    /// ```
    /// use uberpool::{RejectKind, SchedulerConfig, SchedulerService, TaskClass};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let smtp = service.scheduler_with(
    ///     TaskClass::Io,
    ///     SchedulerConfig::new().name("smtp").max_concurrent_tasks(4),
    /// )?;
    /// let sent = smtp.submit(|| "250 OK")?; // at most 4 SMTP connections at once
    /// assert_eq!(sent.join()?, "250 OK");
    /// assert_eq!(smtp.throttle().unwrap().limit, Some(4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_concurrent_tasks(mut self, n: usize) -> Self {
        self.max_concurrent_tasks = Some(n);
        self
    }

    /// How many tasks may wait.
    ///
    /// - For a throttled or rate-limited view ([`max_concurrent_tasks`](Self::max_concurrent_tasks)
    ///   below the pool's maximum, or [`rate_limit`](Self::rate_limit)): the capacity of the
    ///   view's own queue. Tasks beyond the limit wait there, accepted, and start in order as
    ///   slots free (or the rate allows); no caller is blocked or refused until it is full.
    ///   Default: 0 for a throttled view, `n` (one period's worth) for a rate-limited one.
    /// - For a custom scheduler: how many tasks may wait when all its threads are busy
    ///   (default: `max_concurrent_tasks`, as in Mule).
    ///
    /// ```
    /// use uberpool::{SchedulerConfig, SchedulerService, TaskClass};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let relay = service.scheduler_with(
    ///     TaskClass::Io,
    ///     SchedulerConfig::new().max_concurrent_tasks(2).queue_size(100),
    /// )?;
    /// let handles: Vec<_> = (0..10).map(|i| relay.submit(move || i)).collect::<Result<_, _>>()?;
    /// let total: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    /// assert_eq!(total, 45);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn queue_size(mut self, n: usize) -> Self {
        self.queue_size = Some(n);
        self
    }

    /// Custom schedulers only: their threads may block waiting for a busy target.
    pub fn wait_allowed(mut self, allowed: bool) -> Self {
        self.wait_allowed = allowed;
        self
    }

    /// Custom schedulers only: their threads run CPU_LIGHT work inline when its pool is busy.
    pub fn direct_run_cpu_light_when_target_busy(mut self, direct: bool) -> Self {
        self.direct_run_cpu_light_when_target_busy = direct;
        self
    }

    /// Tasks of the scheduler start no faster than `n` per `per`: a burst of `n`, then one
    /// every `per / n`. Tasks over the rate wait, accepted, in the view's own queue
    /// ([`queue_size`](Self::queue_size), default `n`) and are started by the service's timer
    /// when the rate allows; no pool thread ever sleeps waiting for its turn. When the queue is
    /// full, callers that may wait wait, the others are refused with
    /// [`RejectKind::Throttled`](crate::RejectKind::Throttled). Combines with
    /// [`max_concurrent_tasks`](Self::max_concurrent_tasks). Class schedulers only
    /// ([`SchedulerService::scheduler_with`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use uberpool::{SchedulerConfig, SchedulerService, TaskClass};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// // The relay accepts 50 messages a second.
    /// let relay = service.scheduler_with(
    ///     TaskClass::Io,
    ///     SchedulerConfig::new().rate_limit(50, Duration::from_secs(1)).queue_size(1000),
    /// )?;
    /// let sent: Vec<_> = (0..60).map(|_| relay.submit(|| ())).collect::<Result<_, _>>()?;
    /// for handle in sent {
    ///     handle.join()?; // the last 10 start over the following 200 ms
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rate_limit(mut self, n: u32, per: Duration) -> Self {
        self.rate_limit = Some((n, per));
        self
    }

    /// How long [`Scheduler::stop`] waits for the scheduler's tasks (default 5 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// Custom schedulers: the class their tasks report in [`current_class`](crate::current_class)
    /// and that decides CPU_LIGHT overrun checks (default IO). Class schedulers take their class
    /// from the service call instead.
    pub fn class(mut self, class: TaskClass) -> Self {
        self.class = Some(class);
        self
    }

    /// The configured name, if any.
    pub fn get_name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// Why a scheduler could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// An option only custom schedulers accept was given to a class scheduler.
    #[error("Only custom schedulers may define '{option}' behaviour")]
    CustomOnly {
        /// The option's name as Mule spells it.
        option: &'static str,
    },
    /// A custom scheduler without a pool size.
    #[error(
        "Custom schedulers must define a thread pool size by calling `SchedulerConfig::max_concurrent_tasks`"
    )]
    MissingPoolSize,
    /// `rate_limit(n, per)` with `n == 0` or a zero `per`.
    #[error(
        "scheduler '{name}': rate_limit({n}, {per:?}) must allow at least one task per non-zero period"
    )]
    InvalidRateLimit {
        /// The scheduler's name.
        name: String,
        /// The number of tasks per period asked for.
        n: u32,
        /// The period asked for.
        per: Duration,
    },
    /// `max_concurrent_tasks(0)` on a class scheduler: no task could ever run.
    #[error("scheduler '{name}': max_concurrent_tasks must be at least 1")]
    ZeroConcurrency {
        /// The scheduler's name.
        name: String,
    },
    /// `queue_size` on a class scheduler that is neither throttled nor rate-limited (only a
    /// throttled or rate-limited view has a queue of its own).
    #[error(
        "scheduler '{name}': queue_size needs max_concurrent_tasks below the pool's maximum ({max}) or a rate_limit"
    )]
    QueueWithoutThrottle {
        /// The scheduler's name.
        name: String,
        /// The pool's maximum size.
        max: usize,
    },
    /// `rate_limit` on a custom scheduler (its pool size is its limit; rate-limit a view
    /// instead).
    #[error("Only class schedulers may define 'rateLimit' behaviour")]
    RateLimitOnCustom,
    /// The service has been shut down.
    #[error("the scheduler service '{0}' is shut down")]
    ServiceShutdown(String),
    /// The custom scheduler's pool could not start.
    #[error(transparent)]
    Start(#[from] BuildError),
}

/// Why a service could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The configuration file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A pool could not start its core threads.
    #[error(transparent)]
    Start(#[from] BuildError),
}

/// Gives a pool's threads their role in the rejection policy: set from the thread-start hook,
/// before the service's own start hook runs (the pool itself knows nothing of roles).
fn with_role(builder: PoolBuilder, hooks: &Hooks, role: ThreadRole) -> PoolBuilder {
    let user_start = hooks.on_thread_start.clone();
    builder.on_thread_start(move || {
        crate::policy::set_thread_role(role);
        if let Some(hook) = &user_start {
            hook();
        }
    })
}

/// A snapshot of one of the service's pools: the pool's own gauges and counters, and what the
/// schedulers counted on it.
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
    /// Submissions refused for good: the work went back to the caller.
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
    /// Parked threads woken by a submission.
    pub wakeups: u64,
    /// Tasks a scheduler ran on the submitting thread because this pool was full.
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

impl PoolMetrics {
    fn new(pool: ThreadPoolMetrics, dispatch: &DispatchCounters) -> Self {
        let read = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        PoolMetrics {
            name: pool.name,
            core_size: pool.core_size,
            max_size: pool.max_size,
            queue_size: pool.queue_size,
            threads: pool.threads,
            idle: pool.idle,
            active: pool.active,
            queued: pool.queued,
            submitted: pool.submitted,
            completed: pool.completed,
            cancelled: pool.cancelled,
            rejected: pool.rejected,
            panicked: pool.panicked,
            spawn_failures: pool.spawn_failures,
            peak_threads: pool.peak_threads,
            threads_started: pool.threads_started,
            threads_retired: pool.threads_retired,
            wakeups: pool.wakeups,
            caller_ran: read(&dispatch.caller_ran),
            waited: pool.waited,
            light_overruns: read(&dispatch.light_overruns),
            hops_switched: read(&dispatch.hops_switched),
            hops_elided: read(&dispatch.hops_elided),
        }
    }
}

/// A snapshot of the service's pools.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceMetrics {
    /// The strategy the service runs.
    pub strategy: Strategy,
    /// One entry per pool: UBER's pool, or DEDICATED's cpuLight, io and cpuIntensive pools,
    /// then every live custom scheduler's pool.
    pub pools: Vec<PoolMetrics>,
    /// Flow steps dispatched to a pool (a thread switch), flow entries included, over all pools.
    pub hops_switched: u64,
    /// Flow steps that ran in place on the thread that finished the previous step.
    pub hops_elided: u64,
}

/// Configures and builds a [`SchedulerService`].
pub struct ServiceBuilder {
    config: Option<PoolsConfig>,
    name: String,
    hooks: Hooks,
}

impl fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ServiceBuilder {
    /// The pools configuration. Default: Mule's built-in defaults (UBER) for this machine.
    pub fn config(mut self, config: PoolsConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// The service's name: the prefix of pool and thread names (`{name}.uber.01`). Default
    /// `"uberpool"`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Stack size of every pool thread, in bytes.
    pub fn thread_stack_size(mut self, bytes: usize) -> Self {
        self.hooks.stack_size = Some(bytes);
        self
    }

    /// Runs `hook` on each pool thread when it starts.
    pub fn on_thread_start(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.hooks.on_thread_start = Some(Arc::new(hook));
        self
    }

    /// Runs `hook` on each pool thread just before it exits.
    pub fn on_thread_stop(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.hooks.on_thread_stop = Some(Arc::new(hook));
        self
    }

    /// Replaces how pool threads are created (see
    /// [`PoolBuilder::spawn_handler`](crate::pool::PoolBuilder::spawn_handler)). A refused
    /// thread makes the submission that needed it be treated as "pool full".
    pub fn spawn_handler(
        mut self,
        handler: impl Fn(ThreadSpawn) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.hooks.spawn_handler = Some(Arc::new(handler));
        self
    }

    /// Builds the pools and starts their core threads.
    pub fn build(self) -> Result<SchedulerService, BuildError> {
        let config = match self.config {
            Some(config) => config,
            None => PoolsConfig::defaults(&Resources::detect()),
        };
        let name = self.name;
        let shutdown_timeout = config.graceful_shutdown_timeout;
        let make = |label: &str, spec: &PoolSpec, role: ThreadRole, target: Target| {
            let builder = ThreadPool::builder()
                .name(format!("{name}.{label}"))
                .core_size(spec.core_size.max(1))
                .max_size(spec.max_size)
                .queue_size(spec.queue_size)
                .keep_alive(spec.keep_alive)
                .shutdown_timeout(shutdown_timeout)
                .hooks_from(&self.hooks);
            with_role(builder, &self.hooks, role).build().map(|pool| {
                Arc::new(PoolEntry {
                    pool,
                    dispatch: DispatchCounters::default(),
                    target,
                    label: label.to_owned(),
                    schedulers: AtomicUsize::new(0),
                })
            })
        };
        let pools = match config.strategy {
            Strategy::Uber => {
                Pools::Uber(make("uber", &config.uber, ThreadRole::Uber, Target::Uber)?)
            }
            Strategy::Dedicated => Pools::Dedicated {
                cpu_light: make(
                    "cpuLight",
                    &config.cpu_light,
                    ThreadRole::CpuLight,
                    Target::CpuLight,
                )?,
                io: make("io", &config.io, ThreadRole::Io, Target::Io)?,
                cpu_intensive: make(
                    "cpuIntensive",
                    &config.cpu_intensive,
                    ThreadRole::CpuIntensive,
                    Target::CpuIntensive,
                )?,
            },
        };
        tracing::info!(service = %name, "{}", config.splash());
        let timer = Timer::new(format!("{name}.timer"));
        Ok(SchedulerService {
            inner: Arc::new(ServiceInner {
                timer,
                gated: Mutex::new(Vec::new()),
                name,
                config,
                pools,
                customs: Mutex::new(Vec::new()),
                hooks: self.hooks,
                shut: AtomicBool::new(false),
            }),
        })
    }
}

enum Pools {
    Uber(Arc<PoolEntry>),
    Dedicated {
        cpu_light: Arc<PoolEntry>,
        io: Arc<PoolEntry>,
        cpu_intensive: Arc<PoolEntry>,
    },
}

struct ServiceInner {
    name: String,
    config: PoolsConfig,
    pools: Pools,
    /// Custom schedulers' pools, held weakly: a custom pool lives as long as its scheduler.
    customs: Mutex<Vec<Weak<PoolEntry>>>,
    hooks: Hooks,
    shut: AtomicBool,
    /// The service's one timer thread (`{name}.timer`): delayed, periodic and cron tasks, rate
    /// limits, retries. Shut down first when the service shuts down.
    timer: Timer,
    /// Throttled and rate-limited views, held weakly: their gates hold accepted tasks outside
    /// the pools, which the shutdown report must account for.
    gated: Mutex<Vec<Weak<ViewShared>>>,
}

impl ServiceInner {
    fn entries(&self) -> Vec<Arc<PoolEntry>> {
        let mut entries = match &self.pools {
            Pools::Uber(uber) => vec![uber.clone()],
            Pools::Dedicated {
                cpu_light,
                io,
                cpu_intensive,
            } => vec![cpu_light.clone(), io.clone(), cpu_intensive.clone()],
        };
        let mut customs = self.customs.lock();
        customs.retain(|weak| weak.strong_count() > 0);
        entries.extend(customs.iter().filter_map(Weak::upgrade));
        entries
    }

    fn entry_for(&self, class: TaskClass) -> &Arc<PoolEntry> {
        match &self.pools {
            Pools::Uber(uber) => uber,
            Pools::Dedicated {
                cpu_light,
                io,
                cpu_intensive,
            } => match class {
                TaskClass::CpuLight => cpu_light,
                TaskClass::Io => io,
                TaskClass::CpuIntensive => cpu_intensive,
            },
        }
    }

    fn shutdown_timeout(&self, timeout: Duration) -> ShutdownReport {
        if !self.shut.swap(true, Ordering::SeqCst) {
            tracing::info!(service = %self.name, ?timeout, "scheduler service shutting down");
        }
        // Periodic and cron schedules end, pending delayed tasks are cancelled (and counted).
        let delayed_cancelled = self.timer.shutdown();
        let entries = self.entries();
        // Stop admissions everywhere first, then wait for each pool within one deadline.
        for entry in &entries {
            entry.pool.shared().begin_shutdown();
        }
        // The gates' held tasks can no longer reach a pool.
        let gated: Vec<_> = self.gated.lock().iter().filter_map(Weak::upgrade).collect();
        for view in &gated {
            view.cancel_held_tasks();
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut report: Option<ShutdownReport> = None;
        for entry in &entries {
            let left = deadline
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(timeout);
            let pool_report = entry.pool.shutdown_timeout(left);
            match &mut report {
                Some(report) => report.merge(&pool_report),
                None => report = Some(pool_report),
            }
        }
        let mut report = report.expect("a service has at least one pool");
        // Accepted tasks the gates cancelled before they reached a pool (above, or when a
        // retry or rate release met the shut-down pool or timer).
        let held_cancelled: u64 = gated.iter().map(|view| view.held_cancelled()).sum();
        report.cancelled += delayed_cancelled + held_cancelled;
        report
    }
}

impl Drop for ServiceInner {
    fn drop(&mut self) {
        if !self.shut.load(Ordering::SeqCst) {
            self.shutdown_timeout(self.config.graceful_shutdown_timeout);
        }
    }
}

/// The scheduler service: one elastic UBER pool or three DEDICATED pools, and schedulers per
/// task class over them. Cheap to clone; dropping the last handle shuts the pools down.
///
/// The strategy comes from the configuration, so switching between UBER and DEDICATED is a
/// change to `scheduler-pools.conf`, not to code.
///
/// ```
/// use uberpool::{SchedulerService, TaskClass};
///
/// let service = SchedulerService::builder().name("mailer").build()?;
/// let rendered = service.cpu_intensive().submit(|| "Hello, Ada".to_uppercase())?;
/// let sent = service.io().submit(|| 250)?;
/// assert_eq!(rendered.join()?, "HELLO, ADA");
/// assert_eq!(sent.join()?, 250);
/// assert_eq!(service.scheduler(TaskClass::CpuLight).class(), TaskClass::CpuLight);
/// let report = service.shutdown();
/// assert_eq!(report.completed, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SchedulerService {
    inner: Arc<ServiceInner>,
}

static NEXT_CUSTOM_ID: AtomicUsize = AtomicUsize::new(1);

impl SchedulerService {
    /// A builder: Mule's defaults for this machine, name `"uberpool"`.
    pub fn builder() -> ServiceBuilder {
        ServiceBuilder {
            config: None,
            name: "uberpool".to_owned(),
            hooks: Hooks::default(),
        }
    }

    /// A service configured by the `scheduler-pools.conf` at `path`, sized for this machine.
    pub fn from_conf_file(path: impl AsRef<Path>) -> Result<Self, ServiceError> {
        let config = PoolsConfig::load(path.as_ref(), &Resources::detect())?;
        Ok(Self::builder().config(config).build()?)
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The resolved configuration.
    pub fn config(&self) -> &PoolsConfig {
        &self.inner.config
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.inner.config.strategy
    }

    /// A new CPU_LIGHT scheduler.
    pub fn cpu_light(&self) -> Scheduler {
        self.scheduler(TaskClass::CpuLight)
    }

    /// A new CPU_INTENSIVE scheduler.
    pub fn cpu_intensive(&self) -> Scheduler {
        self.scheduler(TaskClass::CpuIntensive)
    }

    /// A new IO scheduler.
    pub fn io(&self) -> Scheduler {
        self.scheduler(TaskClass::Io)
    }

    /// A new scheduler for `class`, named `{service}.{class}`.
    pub fn scheduler(&self, class: TaskClass) -> Scheduler {
        let name = format!("{}.{}", self.inner.name, class);
        Scheduler::new(
            self.inner.entry_for(class).clone(),
            class,
            name,
            false,
            None,
            self.inner.timer.clone(),
            None,
        )
    }

    /// A new scheduler for `class` with options: a name, a stop timeout, and throttling —
    /// [`max_concurrent_tasks`](SchedulerConfig::max_concurrent_tasks) below the pool's maximum,
    /// [`queue_size`](SchedulerConfig::queue_size) and
    /// [`rate_limit`](SchedulerConfig::rate_limit). Options only custom schedulers accept are
    /// refused with Mule's message.
    ///
    /// ```
    /// use uberpool::{RejectKind, SchedulerConfig, SchedulerService, TaskClass};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let one_at_a_time = service.scheduler_with(
    ///     TaskClass::Io,
    ///     SchedulerConfig::new().name("mailbox-writer").max_concurrent_tasks(1),
    /// )?;
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let first = one_at_a_time.submit(move || { rx.recv().ok(); })?;
    /// // This thread may wait, but `try_submit` never does: the second task is throttled.
    /// let refused = one_at_a_time.try_submit(|| ()).unwrap_err();
    /// assert_eq!(refused.kind(), RejectKind::Throttled);
    /// tx.send(())?;
    /// first.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scheduler_with(
        &self,
        class: TaskClass,
        config: SchedulerConfig,
    ) -> Result<Scheduler, SchedulerError> {
        if config.wait_allowed {
            return Err(SchedulerError::CustomOnly {
                option: "waitAllowed",
            });
        }
        if config.direct_run_cpu_light_when_target_busy {
            return Err(SchedulerError::CustomOnly {
                option: "directRunCpuLightWhenTargetBusy",
            });
        }
        let entry = self.inner.entry_for(class).clone();
        let name = config
            .name
            .clone()
            .unwrap_or_else(|| format!("{}.{}", self.inner.name, class));
        let max = entry.pool.metrics().max_size;
        if config.max_concurrent_tasks == Some(0) {
            return Err(SchedulerError::ZeroConcurrency { name });
        }
        let limit = config.max_concurrent_tasks.filter(|n| *n < max);
        if let Some((n, per)) = config.rate_limit
            && (n == 0 || per.is_zero())
        {
            return Err(SchedulerError::InvalidRateLimit { name, n, per });
        }
        let throttle = match (limit, config.rate_limit) {
            (None, None) => {
                if config.queue_size.is_some() && config.max_concurrent_tasks.is_none() {
                    return Err(SchedulerError::QueueWithoutThrottle { name, max });
                }
                None
            }
            (limit, rate) => {
                let default_queue = rate.map_or(0, |(n, _)| n as usize);
                let queue = config.queue_size.unwrap_or(default_queue);
                Some(Throttle::new(limit, rate, queue))
            }
        };
        let scheduler = Scheduler::new(
            entry,
            class,
            name,
            false,
            config.shutdown_timeout,
            self.inner.timer.clone(),
            throttle,
        );
        if scheduler.view().is_gated() {
            let mut gated = self.inner.gated.lock();
            gated.retain(|view| view.strong_count() > 0);
            gated.push(Arc::downgrade(scheduler.view()));
        }
        Ok(scheduler)
    }

    /// A custom scheduler with its own fixed pool of `max_concurrent_tasks` threads, named after
    /// the scheduler (`{name}.01`, …), queueing up to `queue_size` tasks (default: as many as
    /// threads). Its threads follow the rejection rules their flags give (`wait_allowed`,
    /// `direct_run_cpu_light_when_target_busy`). Its tasks report the class set with
    /// [`SchedulerConfig::class`] (default IO, the work custom pools usually take).
    ///
    /// Shutting the scheduler down shuts its pool down; [`Scheduler::stop`] also joins its
    /// threads.
    ///
    /// ```
    /// use uberpool::{SchedulerConfig, SchedulerService};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let relay = service.custom(SchedulerConfig::new().name("relay").max_concurrent_tasks(2))?;
    /// let thread = relay.submit(|| std::thread::current().name().map(str::to_owned))?.join()?;
    /// assert!(thread.unwrap().starts_with("relay."));
    /// assert!(relay.stop());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn custom(&self, config: SchedulerConfig) -> Result<Scheduler, SchedulerError> {
        if self.inner.shut.load(Ordering::SeqCst) {
            return Err(SchedulerError::ServiceShutdown(self.inner.name.clone()));
        }
        let size = config
            .max_concurrent_tasks
            .filter(|n| *n > 0)
            .ok_or(SchedulerError::MissingPoolSize)?;
        if config.rate_limit.is_some() {
            return Err(SchedulerError::RateLimitOnCustom);
        }
        let id = NEXT_CUSTOM_ID.fetch_add(1, Ordering::Relaxed);
        let name = config
            .name
            .clone()
            .unwrap_or_else(|| format!("{}.custom{id}", self.inner.name));
        let builder = ThreadPool::builder()
            .name(name.clone())
            .core_size(size)
            .max_size(size)
            .queue_size(config.queue_size.unwrap_or(size))
            .shutdown_timeout(
                config
                    .shutdown_timeout
                    .unwrap_or(crate::scheduler::DEFAULT_STOP_TIMEOUT),
            )
            .hooks_from(&self.inner.hooks);
        let role = ThreadRole::Custom {
            id,
            wait_allowed: config.wait_allowed,
            direct_run_cpu_light: config.direct_run_cpu_light_when_target_busy,
        };
        let pool = with_role(builder, &self.inner.hooks, role).build()?;
        let entry = Arc::new(PoolEntry {
            pool,
            dispatch: DispatchCounters::default(),
            target: Target::Custom { id },
            label: name.clone(),
            schedulers: AtomicUsize::new(0),
        });
        self.inner.customs.lock().push(Arc::downgrade(&entry));
        Ok(Scheduler::new(
            entry,
            config.class.unwrap_or(TaskClass::Io),
            name,
            true,
            config.shutdown_timeout,
            self.inner.timer.clone(),
            None,
        ))
    }

    /// A snapshot of every pool.
    pub fn metrics(&self) -> ServiceMetrics {
        let pools: Vec<PoolMetrics> = self
            .inner
            .entries()
            .iter()
            .map(|entry| PoolMetrics::new(entry.pool.metrics(), &entry.dispatch))
            .collect();
        ServiceMetrics {
            strategy: self.inner.config.strategy,
            hops_switched: pools.iter().map(|p| p.hops_switched).sum(),
            hops_elided: pools.iter().map(|p| p.hops_elided).sum(),
            pools,
        }
    }

    /// Mule's usage table: per pool, the schedulers using it, idle and used threads, queued
    /// tasks and the share of submissions refused.
    ///
    /// ```
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let _io = service.io();
    /// let report = service.usage_report();
    /// assert!(report.contains("Rejection %"));
    /// assert!(report.contains("uber"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn usage_report(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<24} | {:>10} | {:>12} | {:>12} | {:>12} | {:>11}\n",
            "Pool", "Schedulers", "Idle threads", "Used threads", "Queued tasks", "Rejection %"
        ));
        out.push_str(&format!("{}\n", "-".repeat(24 + 10 + 12 * 3 + 11 + 15)));
        for entry in self.inner.entries() {
            let m = entry.pool.metrics();
            let offered = m.submitted + m.rejected;
            let rejection = if offered == 0 {
                0.0
            } else {
                100.0 * m.rejected as f64 / offered as f64
            };
            out.push_str(&format!(
                "{:<24} | {:>10} | {:>12} | {:>12} | {:>12} | {:>11.2}\n",
                entry.label,
                entry.schedulers.load(Ordering::Relaxed),
                m.idle,
                m.active,
                m.queued,
                rejection
            ));
        }
        out
    }

    /// The resolved configuration in the shape of Mule's startup splash.
    pub fn splash(&self) -> String {
        self.inner.config.splash()
    }

    /// Shuts down with the configured `gracefulShutdownTimeout`.
    pub fn shutdown(&self) -> ShutdownReport {
        self.inner
            .shutdown_timeout(self.inner.config.graceful_shutdown_timeout)
    }

    /// Stops every pool (custom ones included): new work is refused, queued and running tasks
    /// get `timeout` to finish, what never started is cancelled. The timer stops first:
    /// periodic and cron tasks end, and pending delayed tasks are cancelled, as are tasks
    /// waiting in throttled schedulers' own queues (the pools would no longer take them). The
    /// report accounts for every accepted task: those of every pool, plus those delayed and
    /// held tasks in `cancelled`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let later = service.io().schedule(Duration::from_secs(3600), || ())?;
    /// let report = service.shutdown_timeout(Duration::from_secs(5));
    /// assert_eq!(report.cancelled, 1);
    /// assert!(later.is_cancelled());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> ShutdownReport {
        self.inner.shutdown_timeout(timeout)
    }

    /// `true` once [`shutdown`](Self::shutdown) (or a drop of the last handle) began.
    pub fn is_shutdown(&self) -> bool {
        self.inner.shut.load(Ordering::SeqCst)
    }

    /// Calls `action` exactly once: with [`Fire::Due`] on the timer thread after `delay`, or
    /// with [`Fire::Cancelled`] if the service shuts down first (on the thread shutting it down)
    /// or the timer refuses it (already shut down, or `delay` overflows: at once, on this
    /// thread). Flow retries use it.
    ///
    /// On [`Fire::Due`] the action runs on the timer thread and must only dispatch — never
    /// block, sleep or run user code (see [`Timer::defer`]); the ordinary `Scheduler` entry
    /// points refuse there rather than wait or run inline, because the thread's role is
    /// `ThreadRole::Timer`.
    pub(crate) fn defer(&self, delay: Duration, action: TimerAction) {
        if let Err(refused) = self.inner.timer.defer(delay, action) {
            (refused.action)(Fire::Cancelled);
        }
    }
}

impl fmt::Debug for SchedulerService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerService")
            .field("name", &self.inner.name)
            .field("strategy", &self.inner.config.strategy)
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}

/// A handle to a service that does not keep it alive (flows and async tasks hold one, so that
/// dropping the last [`SchedulerService`] still shuts the pools down).
#[derive(Clone)]
pub(crate) struct WeakService(Weak<ServiceInner>);

impl WeakService {
    /// The service, if it still exists and has not been shut down.
    pub(crate) fn upgrade(&self) -> Option<SchedulerService> {
        self.0
            .upgrade()
            .filter(|inner| !inner.shut.load(Ordering::SeqCst))
            .map(|inner| SchedulerService { inner })
    }
}

impl SchedulerService {
    /// A handle that does not keep the service alive.
    pub(crate) fn downgrade(&self) -> WeakService {
        WeakService(Arc::downgrade(&self.inner))
    }

    /// The pool serving `class` (the uber pool for every class under UBER).
    pub(crate) fn pool_for(&self, class: TaskClass) -> Arc<PoolEntry> {
        self.inner.entry_for(class).clone()
    }
}

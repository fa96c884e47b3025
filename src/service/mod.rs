//! [`SchedulerService`]: one UBER pool or three DEDICATED pools built from a [`PoolsConfig`],
//! the schedulers handed out over them, and the shutdown that accounts for every task.
//!
//! The pieces: `builder.rs` (building the pools, thread roles and hooks), `scheduler_config.rs`
//! ([`SchedulerConfig`] and its checks), `report.rs` (metrics and the usage table), `error.rs`.
//! The service owns the pools; schedulers are views over them (`view/`). Dropping the last
//! service handle shuts the pools down with the configured graceful timeout.

mod builder;
mod error;
mod report;
mod scheduler_config;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::loom::Mutex;

use crate::TaskClass;
use crate::config::{PoolsConfig, Resources, Strategy};
use crate::dispatch::ServicePool;
use crate::loom::{AtomicBool, Ordering};
#[cfg(feature = "metrics")]
use crate::observe::Observed;
use crate::policy::Target;
use crate::pool::ShutdownReport;
use crate::role::ThreadRole;
use crate::scheduler::Scheduler;
use crate::task::{Completer, TaskHandle};
use crate::timer::Timer;
use crate::view::{DEFAULT_STOP_TIMEOUT, View, ViewSpec, WeakViews};

pub use builder::ServiceBuilder;
pub(crate) use builder::ThreadHooks;
pub use error::{SchedulerError, ServiceError};
pub use report::{PoolMetrics, ServiceMetrics};
pub use scheduler_config::SchedulerConfig;

/// The service's class pools.
pub(crate) enum Pools {
    Uber(Arc<ServicePool>),
    Dedicated {
        cpu_light: Arc<ServicePool>,
        io: Arc<ServicePool>,
        cpu_intensive: Arc<ServicePool>,
    },
}

struct ServiceInner {
    name: String,
    config: PoolsConfig,
    pools: Pools,
    /// Custom schedulers' pools, held weakly: a custom pool lives as long as its scheduler.
    customs: Mutex<Vec<Weak<ServicePool>>>,
    hooks: ThreadHooks,
    /// Set once by the first shutdown (or drop); read by `is_shutdown` and `custom`.
    shut: AtomicBool,
    /// The service's one timer thread (`{name}.timer`): delayed, periodic and cron tasks, rate
    /// limits, retries. Shut down first when the service shuts down.
    timer: Timer,
    /// Throttled and rate-limited views, held weakly: their gates hold accepted tasks outside
    /// the pools, which the shutdown report must account for.
    gated: WeakViews,
    /// The pools, gates and refusal tallies the service publishes (`metrics` feature).
    #[cfg(feature = "metrics")]
    observed: Arc<Observed>,
}

impl ServiceInner {
    fn entries(&self) -> Vec<Arc<ServicePool>> {
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

    fn entry_for(&self, class: TaskClass) -> &Arc<ServicePool> {
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
        if !self.shut.swap(true, Ordering::AcqRel) {
            tracing::info!(service = %self.name, ?timeout, "scheduler service shutting down");
        }
        // Periodic and cron schedules end, pending delayed tasks are cancelled (and counted).
        let delayed_cancelled = self.timer.shutdown();
        let entries = self.entries();
        // Stop admissions everywhere first, then wait for each pool within one deadline.
        for entry in &entries {
            entry.shared().begin_shutdown();
        }
        // The gates' held tasks can no longer reach a pool.
        let gated: Vec<Arc<View>> = self.gated.lock().iter().filter_map(Weak::upgrade).collect();
        for view in &gated {
            view.cancel_held(None);
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
        #[cfg(feature = "metrics")]
        self.observed.publish_final();
        report
    }
}

impl Drop for ServiceInner {
    fn drop(&mut self) {
        if !self.shut.load(Ordering::Acquire) {
            self.shutdown_timeout(self.config.graceful_shutdown_timeout);
        }
    }
}

/// The scheduler service: one elastic UBER pool or three DEDICATED pools, and schedulers per
/// task class over them. Cheap to clone; clones share the pools.
///
/// Dropping the last handle shuts the service down and blocks, for up to the configured
/// graceful shutdown timeout (15 s by default), while queued and running tasks finish; in async
/// code, shut down first with [`shutdown_in_background`](Self::shutdown_in_background) and await
/// the report. Schedulers and flows do not keep the service alive: once it is gone, they refuse
/// work with [`RejectKind::Shutdown`](crate::RejectKind::Shutdown).
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

static NEXT_CUSTOM_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// The default name of a class scheduler: `{service}.cpuLight`, `.io` or `.cpuIntensive` — the
/// labels of DEDICATED's pools.
fn class_label(class: TaskClass) -> &'static str {
    match class {
        TaskClass::CpuLight => "cpuLight",
        TaskClass::CpuIntensive => "cpuIntensive",
        TaskClass::Io => "io",
    }
}

impl SchedulerService {
    /// A builder: Mule's defaults for this machine, name `"uberpool"`.
    pub fn builder() -> ServiceBuilder {
        ServiceBuilder {
            config: None,
            name: "uberpool".to_owned(),
            hooks: ThreadHooks::default(),
            #[cfg(feature = "metrics")]
            publish_every: None,
        }
    }

    /// A service configured by the `scheduler-pools.conf` at `path`, sized for this machine.
    pub fn from_conf_file(path: impl AsRef<Path>) -> Result<Self, ServiceError> {
        let config = PoolsConfig::load(path.as_ref(), &Resources::detect())?;
        Self::builder().config(config).build()
    }

    pub(crate) fn from_parts(
        name: String,
        config: PoolsConfig,
        pools: Pools,
        hooks: ThreadHooks,
    ) -> Self {
        let timer = Timer::new(format!("{name}.timer"));
        let service = SchedulerService {
            inner: Arc::new(ServiceInner {
                timer,
                gated: Mutex::new(Vec::new()),
                #[cfg(feature = "metrics")]
                observed: Observed::new(name.clone()),
                name,
                config,
                pools,
                customs: Mutex::new(Vec::new()),
                hooks,
                shut: AtomicBool::new(false),
            }),
        };
        #[cfg(feature = "metrics")]
        for pool in service.inner.entries() {
            service.inner.observed.watch_pool(&pool);
        }
        service
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

    /// A new CPU_LIGHT scheduler, named `{service}.cpuLight`.
    pub fn cpu_light(&self) -> Scheduler {
        self.scheduler(TaskClass::CpuLight)
    }

    /// A new CPU_INTENSIVE scheduler, named `{service}.cpuIntensive`.
    pub fn cpu_intensive(&self) -> Scheduler {
        self.scheduler(TaskClass::CpuIntensive)
    }

    /// A new IO scheduler, named `{service}.io`.
    pub fn io(&self) -> Scheduler {
        self.scheduler(TaskClass::Io)
    }

    /// A new scheduler for `class`, named `{service}.cpuLight`, `{service}.io` or
    /// `{service}.cpuIntensive`.
    pub fn scheduler(&self, class: TaskClass) -> Scheduler {
        Scheduler::new(ViewSpec {
            name: self.default_name(class),
            class,
            pool: self.inner.entry_for(class).clone(),
            owns_pool: false,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            timer: self.inner.timer.clone(),
            throttle: None,
            #[cfg(feature = "metrics")]
            observed: self.inner.observed.clone(),
        })
    }

    fn default_name(&self, class: TaskClass) -> String {
        format!("{}.{}", self.inner.name, class_label(class))
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
        let pool = self.inner.entry_for(class).clone();
        let name = config.name_or(|| self.default_name(class));
        let checked = config.class_view(name, pool.pool.metrics().max_size)?;
        let gated = checked.throttle.is_some();
        let scheduler = Scheduler::new(ViewSpec {
            name: checked.name,
            class,
            pool,
            owns_pool: false,
            stop_timeout: checked.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT),
            timer: self.inner.timer.clone(),
            throttle: checked.throttle,
            #[cfg(feature = "metrics")]
            observed: self.inner.observed.clone(),
        });
        if gated {
            let mut views = self.inner.gated.lock();
            views.retain(|view| view.strong_count() > 0);
            views.push(Arc::downgrade(scheduler.view()));
            #[cfg(feature = "metrics")]
            self.inner.observed.watch_gate(scheduler.view());
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
        if self.inner.shut.load(Ordering::Acquire) {
            return Err(SchedulerError::ServiceShutdown(self.inner.name.clone()));
        }
        let id = NEXT_CUSTOM_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = config.name_or(|| format!("{}.custom{id}", self.inner.name));
        let checked = config.custom_pool(&name)?;
        let stop_timeout = checked.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT);
        let role = ThreadRole::Custom {
            id,
            wait_allowed: checked.wait_allowed,
            direct_run_cpu_light: checked.direct_run_cpu_light,
        };
        let pool = self
            .inner
            .hooks
            .pool_builder(name.clone(), role)
            .core_size(checked.size)
            .max_size(checked.size)
            .queue_size(checked.queue_size)
            .shutdown_timeout(stop_timeout)
            .build()?;
        let pool = Arc::new(ServicePool::new(pool, Target::Custom { id }, name.clone()));
        self.inner.customs.lock().push(Arc::downgrade(&pool));
        #[cfg(feature = "metrics")]
        self.inner.observed.watch_pool(&pool);
        Ok(Scheduler::new(ViewSpec {
            name,
            class: checked.class,
            pool,
            owns_pool: true,
            stop_timeout,
            timer: self.inner.timer.clone(),
            throttle: None,
            #[cfg(feature = "metrics")]
            observed: self.inner.observed.clone(),
        }))
    }

    /// A snapshot of every pool.
    pub fn metrics(&self) -> ServiceMetrics {
        let pools = self
            .inner
            .entries()
            .iter()
            .map(|p| PoolMetrics::of(p))
            .collect();
        ServiceMetrics::new(self.inner.config.strategy, pools)
    }

    /// Publishes every pool's and scheduler's figures now through the `metrics` facade, to the
    /// calling thread's recorder: the one set with
    /// [`metrics::with_local_recorder`](crate::metrics::with_local_recorder) around this call, else
    /// the global one (none installed: nothing happens). The same figures, families and labels
    /// as the periodic publish of [`ServiceBuilder::publish_metrics`], which lists them. Use it
    /// to publish right before a scrape, or in tests.
    ///
    /// ```
    /// use metrics_exporter_prometheus::PrometheusBuilder;
    /// use uberpool::{SchedulerService, metrics};
    ///
    /// let service = SchedulerService::builder().name("mailer").build()?;
    /// service.io().submit(|| ())?.join()?;
    /// let prometheus = PrometheusBuilder::new().build_recorder(); // any `metrics::Recorder`
    /// metrics::with_local_recorder(&prometheus, || service.publish_metrics_now());
    /// let scrape = prometheus.handle().render();
    /// assert!(scrape.contains(r#"uberpool_pool_submitted_tasks_total{service="mailer",pool="uber"} 1"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "metrics")]
    pub fn publish_metrics_now(&self) {
        self.inner.observed.publish();
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
        let entries = self.inner.entries();
        report::usage_table(
            entries
                .iter()
                .map(|entry| (entry.label.as_str(), PoolMetrics::of(entry))),
        )
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

    /// Shuts down like [`shutdown_timeout`](Self::shutdown_timeout), on a thread of its own
    /// (`{service}.shutdown`), and returns at once with a handle to the report: join it, or await
    /// it from async code without blocking the runtime's thread. Once the report is in, dropping
    /// the last service handle does not block.
    ///
    /// Fails only when the operating system refuses the thread; the service is then not shut
    /// down.
    ///
    /// ```
    /// use std::time::Duration;
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// service.io().submit(|| ())?.join()?;
    /// let report = service.shutdown_in_background(Duration::from_secs(5))?;
    /// // in async code: `let report = report.await?;`
    /// assert_eq!(report.join()?.completed, 1);
    /// assert!(service.is_shutdown());
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn shutdown_in_background(
        &self,
        timeout: Duration,
    ) -> std::io::Result<TaskHandle<ShutdownReport>> {
        let (done, report) = Completer::new();
        let service = self.clone();
        std::thread::Builder::new()
            .name(format!("{}.shutdown", self.inner.name))
            .spawn(move || done.complete(Ok(service.shutdown_timeout(timeout))))?;
        Ok(report)
    }

    /// `true` once [`shutdown`](Self::shutdown) (or a drop of the last handle) began.
    pub fn is_shutdown(&self) -> bool {
        self.inner.shut.load(Ordering::Acquire)
    }

    /// The pool serving `class` (the uber pool for every class under UBER).
    pub(crate) fn pool_for(&self, class: TaskClass) -> Arc<ServicePool> {
        self.inner.entry_for(class).clone()
    }

    /// The service's timer.
    pub(crate) fn timer(&self) -> &Timer {
        &self.inner.timer
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

#[cfg(all(test, not(loom)))]
mod tests;

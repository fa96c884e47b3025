//! [`ServiceBuilder`]: how a service's pools are built from a [`PoolsConfig`], with the
//! thread roles the policy needs and the user's thread hooks.

use std::fmt;
use std::io;
use std::sync::Arc;
#[cfg(feature = "metrics")]
use std::time::Duration;

use crate::config::{PoolSpec, PoolsConfig, Resources, Strategy};
use crate::dispatch::{PoolKind, ServicePool};
use crate::policy::Target;
use crate::pool::{PoolBuilder, ThreadPool, ThreadSpawn};
use crate::role::{ThreadRole, set_thread_role};

use super::{Pools, SchedulerService, ServiceError};

/// Configures and builds a [`SchedulerService`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct ServiceBuilder {
    pub(super) config: Option<PoolsConfig>,
    pub(super) name: String,
    pub(super) hooks: ThreadHooks,
    /// The interval of periodic publishing (`metrics` feature), if asked for.
    #[cfg(feature = "metrics")]
    pub(super) publish_every: Option<Duration>,
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
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
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

    /// Publishes every pool's and scheduler's figures through the `metrics` facade every
    /// `interval`, from the service's timer thread, to the global recorder (install one first,
    /// e.g. `metrics-exporter-prometheus`'s); and once more at shutdown, when every task is
    /// accounted for. Available with the cargo feature `metrics`.
    ///
    /// Publishing samples counters the service keeps anyway: the path of a task does no more
    /// work with it on than off. An interval under 10 ms is raised to 10 ms; one too long to
    /// add to an [`Instant`](std::time::Instant) publishes only at shutdown and on
    /// [`SchedulerService::publish_metrics_now`].
    ///
    /// Families (Prometheus names; counters are published as absolute values, gauges as set
    /// values). Pool families are labelled `service` and `pool` (`uber`, `cpuLight`, `io`,
    /// `cpuIntensive`, or a custom scheduler's name); scheduler families `service`, `pool`,
    /// `class` (`CPU_LIGHT`, `IO`, `CPU_INTENSIVE`) and `scheduler` (its name):
    ///
    /// | family | type | what |
    /// |---|---|---|
    /// | `uberpool_pool_threads` | gauge | threads alive |
    /// | `uberpool_pool_idle_threads`, `uberpool_pool_active_threads` | gauge | threads without / with a task |
    /// | `uberpool_pool_queued_tasks` | gauge | tasks waiting for a thread |
    /// | `uberpool_pool_peak_threads`, `uberpool_pool_max_threads` | gauge | most threads alive at once; allowed |
    /// | `uberpool_pool_queue_capacity` | gauge | the pool's queue size |
    /// | `uberpool_pool_submitted_tasks_total`, `..._completed_tasks_total`, `..._cancelled_tasks_total` | counter | tasks accepted; run to their end (panicked or not); never run |
    /// | `uberpool_pool_rejected_tasks_total` | counter | offers refused because the pool was full |
    /// | `uberpool_pool_caller_ran_tasks_total` | counter | tasks run on the submitting thread |
    /// | `uberpool_pool_waited_submissions_total` | counter | submissions that waited for the pool |
    /// | `uberpool_pool_panicked_tasks_total` | counter | tasks that panicked |
    /// | `uberpool_pool_light_overruns_total` | counter | CPU_LIGHT tasks over the 10 ms budget |
    /// | `uberpool_pool_hops_switched_total`, `uberpool_pool_hops_elided_total` | counter | flow steps with / without a thread switch |
    /// | `uberpool_scheduler_rejected_tasks_total` | counter | refusals handed back by the scheduler, label `kind`: `busy`, `throttled`, `shutdown` |
    /// | `uberpool_scheduler_concurrency_limit` | gauge | a throttled scheduler's limit (whatever its gate says now; an adaptive scheduler's current limit) |
    /// | `uberpool_scheduler_concurrency_gradient` | gauge | an adaptive scheduler's latest latency gradient, 0.5 to 1 ([`AdaptiveStatus::gradient`](crate::AdaptiveStatus::gradient)) |
    /// | `uberpool_scheduler_in_flight_tasks`, `uberpool_scheduler_held_tasks` | gauge | tasks holding a slot of the gate; waiting in its own queue |
    ///
    /// Schedulers are counted by name: the fresh scheduler every `service.io()` call returns
    /// adds to the one `{service}.io` series, so making them per call grows nothing. Figures
    /// of pools or schedulers sharing a name are added up. Refusal counters appear for a
    /// throttled scheduler at once, for others at their first refusal. There are no
    /// histograms: timing every task costs the submit path a measurable share (the crate's
    /// BENCHMARKS.md has the figures).
    ///
    /// ```
    /// use std::time::Duration;
    /// use metrics_exporter_prometheus::PrometheusBuilder;
    /// use uberpool::SchedulerService;
    ///
    /// let prometheus = PrometheusBuilder::new().install_recorder()?;
    /// let service = SchedulerService::builder()
    ///     .name("mailer")
    ///     .publish_metrics(Duration::from_secs(1))
    ///     .build()?;
    /// service.io().submit(|| "250 OK")?.join()?;
    /// service.shutdown(); // publishes the final figures
    /// let scrape = prometheus.render();
    /// assert!(scrape.contains(r#"uberpool_pool_completed_tasks_total{service="mailer",pool="uber"} 1"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "metrics")]
    pub fn publish_metrics(mut self, interval: Duration) -> Self {
        self.publish_every = Some(interval);
        self
    }

    /// Builds the pools and starts their core threads.
    ///
    /// The resolved configuration is logged at `DEBUG` in the shape of Mule's startup splash
    /// (target `uberpool::service`); see [`SchedulerService::splash`].
    pub fn build(self) -> Result<SchedulerService, ServiceError> {
        let config = match self.config {
            Some(config) => config,
            None => PoolsConfig::defaults(&Resources::detect()),
        };
        let name = self.name;
        #[cfg(feature = "metrics")]
        let publish_every = self.publish_every;
        let shutdown_timeout = config.graceful_shutdown_timeout;
        let hooks = self.hooks;
        // The pools that run CPU_LIGHT work keep it to the cores (`pool/cpu.rs`).
        let cores = Resources::detect().cores.max(1);
        let make = |kind: PoolKind, spec: &PoolSpec, role: ThreadRole, target: Target| {
            let serves_light = matches!(kind, PoolKind::Uber | PoolKind::CpuLight);
            let cpu_limit = if serves_light { cores } else { 0 };
            hooks
                .pool_builder(format!("{name}.{}", kind.label()), role)
                .cpu_limit(cpu_limit)
                .core_size(spec.core_size.max(1))
                .max_size(spec.max_size)
                .queue_size(spec.queue_size)
                .keep_alive(spec.keep_alive)
                .shutdown_timeout(shutdown_timeout)
                .build()
                .map(|pool| Arc::new(ServicePool::new(pool, target, kind.label().to_owned())))
        };
        let pools = match config.strategy {
            Strategy::Uber => Pools::Uber(make(
                PoolKind::Uber,
                &config.uber,
                ThreadRole::Uber,
                Target::Uber,
            )?),
            Strategy::Dedicated => Pools::Dedicated {
                cpu_light: make(
                    PoolKind::CpuLight,
                    &config.cpu_light,
                    ThreadRole::CpuLight,
                    Target::CpuLight,
                )?,
                io: make(PoolKind::Io, &config.io, ThreadRole::Io, Target::Io)?,
                cpu_intensive: make(
                    PoolKind::CpuIntensive,
                    &config.cpu_intensive,
                    ThreadRole::CpuIntensive,
                    Target::CpuIntensive,
                )?,
            },
        };
        tracing::debug!(service = %name, "{}", config.splash());
        let service = SchedulerService::from_parts(name, config, pools, hooks);
        #[cfg(feature = "metrics")]
        if let Some(interval) = publish_every {
            service
                .inner
                .observed
                .publish_every(service.timer(), interval);
        }
        Ok(service)
    }
}

/// The thread hooks, spawn handler and stack size a service gives every pool it builds
/// (custom schedulers' pools included).
#[derive(Default)]
pub(crate) struct ThreadHooks {
    on_thread_start: Option<Hook>,
    on_thread_stop: Option<Hook>,
    spawn_handler: Option<SpawnFn>,
    stack_size: Option<usize>,
}

type Hook = Arc<dyn Fn() + Send + Sync + 'static>;
type SpawnFn = Arc<dyn Fn(ThreadSpawn) -> io::Result<()> + Send + Sync + 'static>;

impl ThreadHooks {
    /// A pool builder named `name` whose threads take `role` when they start, then run the
    /// service's start hook; the pool itself knows nothing of roles.
    pub(crate) fn pool_builder(&self, name: String, role: ThreadRole) -> PoolBuilder {
        let user_start = self.on_thread_start.clone();
        let mut builder = ThreadPool::builder().name(name).on_thread_start(move || {
            set_thread_role(role);
            if let Some(hook) = &user_start {
                hook();
            }
        });
        if let Some(hook) = self.on_thread_stop.clone() {
            builder = builder.on_thread_stop(move || hook());
        }
        if let Some(handler) = self.spawn_handler.clone() {
            builder = builder.spawn_handler(move |spawn| handler(spawn));
        }
        if let Some(bytes) = self.stack_size {
            builder = builder.thread_stack_size(bytes);
        }
        builder
    }
}

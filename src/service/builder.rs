//! [`ServiceBuilder`]: how a service's pools are built from a [`PoolsConfig`], with the
//! thread roles the policy needs and the user's thread hooks.

use std::fmt;
use std::io;
use std::sync::Arc;

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
        let shutdown_timeout = config.graceful_shutdown_timeout;
        let hooks = self.hooks;
        let make = |kind: PoolKind, spec: &PoolSpec, role: ThreadRole, target: Target| {
            hooks
                .pool_builder(format!("{name}.{}", kind.label()), role)
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
        Ok(SchedulerService::from_parts(name, config, pools, hooks))
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

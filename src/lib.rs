#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)] // allowed in one module: src/task/raw.rs
#![warn(clippy::undocumented_unsafe_blocks)]

mod async_task;
mod class;
pub mod config;
mod dispatch;
mod flow;
mod loom;
mod policy;
pub mod pool;
mod rejected;
mod role;
mod schedule;
mod scheduler;
mod service;
mod task;
mod throttle;
mod timer;
mod view;

pub use class::{ParseTaskClassError, TaskClass};
pub use config::{ConfigError, ConfigWarning, PoolSpec, PoolsConfig, Resources, Strategy};
pub use dispatch::{MAX_INLINE_DEPTH, PoolKind};
pub use flow::{FallibleFlowBuilder, Flow, FlowBuilder, ProactorPolicy};
pub use pool::{BuildError, ShutdownReport, ThreadSpawn, shutdown_requested};
pub use rejected::{RejectKind, Rejected};
pub use schedule::{MAX_DELAY, ScheduleError, ScheduleErrorKind, ScheduledHandle};
pub use scheduler::Scheduler;
pub use service::{
    PoolMetrics, SchedulerConfig, SchedulerError, SchedulerService, ServiceBuilder, ServiceError,
    ServiceMetrics,
};
pub use task::{TaskError, TaskHandle};
pub use throttle::ThrottleStatus;
pub use view::{
    LIGHT_BUDGET, current_class, is_current_thread_for_cpu_work, is_current_thread_in_wait_group,
};

/// The `chrono` crate uberpool's cron scheduling uses for time zones
/// ([`Scheduler::schedule_cron_in`]), so that the versions match.
#[cfg(feature = "cron")]
pub use chrono;

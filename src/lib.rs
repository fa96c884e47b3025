#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)] // allowed in one module: src/task/raw.rs
#![warn(clippy::undocumented_unsafe_blocks)]

mod class;
pub mod config;
mod flow;
mod loom;
mod policy;
pub mod pool;
#[cfg(feature = "queue")]
pub mod queue;
mod rejected;
mod scheduler;
mod service;
mod spawn_async;
mod task;
mod throttle;
mod timed;
mod timer;

pub use class::{ParseTaskClassError, TaskClass};
pub use config::{ConfigError, ConfigWarning, PoolSpec, PoolsConfig, Resources, Strategy};
pub use flow::{Flow, FlowBuilder, ProactorPolicy};
pub use pool::shutdown_requested;
pub use rejected::{RejectKind, Rejected};
pub use scheduler::{
    LIGHT_BUDGET, Scheduler, current_class, is_current_thread_for_cpu_work,
    is_current_thread_in_wait_group,
};
pub use service::{
    SchedulerConfig, SchedulerError, SchedulerService, ServiceBuilder, ServiceError, ServiceMetrics,
};
pub use task::{TaskError, TaskHandle};
pub use throttle::ThrottleStatus;
pub use timed::{MAX_DELAY, ScheduleError, ScheduleErrorKind, ScheduledHandle};

/// The `chrono` crate uberpool uses for cron time zones ([`Scheduler::schedule_cron_in`]).
#[cfg(feature = "cron")]
pub use chrono;

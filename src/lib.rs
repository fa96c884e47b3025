#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

mod class;
pub mod config;
mod loom;
pub mod pool;
mod rejected;
mod task;

pub use class::{ParseTaskClassError, TaskClass};
pub use config::{ConfigError, ConfigWarning, PoolSpec, PoolsConfig, Resources, Strategy};
pub use pool::shutdown_requested;
pub use rejected::{RejectKind, Rejected};
pub use task::{TaskError, TaskHandle};

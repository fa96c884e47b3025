//! # uberpool
//!
//! Mule 4's execution model for Rust services that mix blocking IO, CPU-heavy work and light glue.
#![warn(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

mod class;
pub mod config;
mod loom;

pub use class::{ParseTaskClassError, TaskClass};
pub use config::{ConfigError, ConfigWarning, PoolSpec, PoolsConfig, Resources, Strategy};

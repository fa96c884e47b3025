//! uberpool is a scheduler for Rust services that mix blocking IO (SMTP, databases, files, HTTP
//! clients), CPU-heavy work (templating, compression, crypto) and light glue (routing, parsing,
//! logging) — one service with back pressure instead of tokio's blocking pool, rayon and hand-made
//! threads with unbounded queues side by side. It brings MuleSoft Mule 4's execution model to
//! Rust: three task classes, one elastic pool for all of them or one pool per class chosen by a
//! configuration file, pool sizes written as expressions over `cores` and `mem`, and a
//! caller-aware rejection policy that hands refused work back, never drops it.
//!
//! ```sh
//! cargo add uberpool
//! ```
//!
//! # Quick start
//!
//! ```
//! use uberpool::{Flow, SchedulerService};
//!
//! // Mule's defaults for this machine (UBER); `SchedulerService::from_conf_file` reads a
//! // scheduler-pools.conf instead.
//! let service = SchedulerService::builder().name("mailer").build()?;
//!
//! // One task on the IO pool: blocking work (SMTP, files, databases).
//! let reply = service.io().submit(|| "250 OK")?;
//! assert_eq!(reply.join()?, "250 OK");
//!
//! // A 3-step flow: fetch (IO), render (CPU_INTENSIVE), log (CPU_LIGHT, runs in place).
//! let send = Flow::builder(&service)
//!     .io(|id: u32| format!("subscriber-{id}@example.com"))
//!     .intensive(|to: String| format!("To: {to}\n\nDear subscriber"))
//!     .light(|message: String| message.len())
//!     .build();
//! assert_eq!(send.run(7)?.join()?, 45);
//!
//! let report = service.shutdown(); // accounts for every accepted task
//! assert_eq!(report.completed, 3);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```
//!
//! Every error converts with `?` into `Box<dyn Error + Send + Sync>` or `anyhow::Error`, whatever
//! the submitted closure captures; a refusal ([`Rejected`]) still gives the closure back with
//! [`Rejected::into_inner`].
//!
//! # The model
//!
//! | class | for | examples |
//! |---|---|---|
//! | [`TaskClass::CpuLight`] | short work that never blocks (< 10 ms) | routing, parsing, logging a delivery |
//! | [`TaskClass::CpuIntensive`] | long compute that rarely blocks | rendering a template, compressing, hashing |
//! | [`TaskClass::Io`] | work that is mostly blocked | SMTP, HTTP clients, files, databases |
//!
//! - **UBER** (the default, as in Mule 4.3+): one elastic pool serves all three classes, `cores`
//!   threads growing up to `max(2, cores + (mem - 245760) / 5120)` for blocked work.
//! - **DEDICATED** (Mule 4.1/4.2): one pool per class — cpuLight, io (elastic) and cpuIntensive.
//!   A stuck IO call cannot starve light work.
//!
//! CPU_LIGHT work is kept to the cores: once `cores` threads of a pool run it, more of it waits
//! in the pool's queue for them instead of waking or starting a thread per task (tasks running
//! and queued still stay within the pool's maximum). A light task that blocks anyway cannot
//! starve the work behind it: when no task of the pool ends for 10 ms while work is queued, a
//! watch thread (`uberpool-stall-watch`) adds a thread.
//!
//! The strategy and the sizes come from a [`PoolsConfig`]: Mule's `scheduler-pools.conf` keys,
//! read by [`PoolsConfig::load`] (every error names the file, line and key). A
//! [`SchedulerService`] hands out [`Scheduler`]s — views over its pools, each with its own
//! lifecycle — and runs [`Flow`]s whose steps declare their class.
//!
//! # Who waits, who runs inline, who is refused
//!
//! Queues are bounded. When a pool is full and cannot grow, the thread that submits decides,
//! as in Mule:
//!
//! | caller \ full target | DEDICATED cpuLight | DEDICATED io | DEDICATED cpuIntensive | UBER |
//! |---|---|---|---|---|
//! | your own threads (`main`, request handlers) | wait | wait | wait | wait |
//! | a cpuLight or cpuIntensive thread | run inline | refuse | refuse | — |
//! | an io thread | wait | run inline | wait | — |
//! | an uber thread | — | — | — | run inline |
//! | a custom scheduler's thread | refuse (`wait_allowed`: wait; `direct_run_cpu_light_when_target_busy`: run CPU_LIGHT inline) | refuse | refuse | refuse |
//! | the service's timer | refuse | refuse | refuse | refuse |
//!
//! "Refuse" returns [`Rejected`] with the closure inside ([`RejectKind::Busy`]);
//! [`Scheduler::try_submit`] always refuses instead of waiting or running inline, and
//! [`Scheduler::submit_timeout`] bounds every wait. Inline runs nest at most
//! [`MAX_INLINE_DEPTH`] deep; beyond that the submission is refused. A throttled scheduler
//! ([`SchedulerConfig::max_concurrent_tasks`], [`SchedulerConfig::rate_limit`]) applies the
//! same rules at its own limit, refusing with [`RejectKind::Throttled`]. A scheduler with an
//! adaptive limit ([`SchedulerConfig::adaptive_concurrency`]) applies them at a limit it moves
//! itself from its tasks' running times and the overloads they report ([`report_overload`]).
//!
//! # Logging
//!
//! uberpool logs through [`tracing`](https://docs.rs/tracing); install a subscriber (for example
//! `tracing-subscriber`) to see it. Without one, nothing is printed — including the warnings
//! below, which are usually the first sign of misclassified work. Fields name the scheduler,
//! pool, flow or timer.
//!
//! | level | event | meaning |
//! |---|---|---|
//! | WARN | a CPU_LIGHT task ran over the 10 ms budget | blocking or long work on CPU_LIGHT: move it to IO or CPU_INTENSIVE (at most once per 5 s per scheduler; counted in `light_overruns`) |
//! | WARN | task rejected from scheduler | a submission was handed back refused (at most once per 5 s per scheduler) |
//! | WARN | a periodic task skipped a tick | its pool or throttle was full at the tick |
//! | WARN | task panicked; the worker thread carries on | a panic was caught; the handle yields [`TaskError::Panicked`] |
//! | WARN | dropping … panicked; ignored | a value's `Drop` panicked inside the library's bookkeeping and was contained |
//! | WARN | could not start a pool thread | the OS (or the spawn handler) refused a thread; the task was refused as if the pool were full |
//! | WARN | shutdown grace period ended; queued tasks cancelled | a shutdown timed out |
//! | WARN | configuration warnings | unknown keys (with the nearest valid one), clamped values |
//! | INFO | scheduler service shutting down | a service's shutdown began |
//! | DEBUG | the resolved configuration (Mule's startup splash) | at every `build()` |
//! | DEBUG | idle thread retired; shutdown requested | pool life cycle |
//! | DEBUG | adaptive limit of scheduler … | an adaptive scheduler judged a window or backed off: decision, limit before and after, gradient, latency, baseline |
//!
//! # Lifetimes and dropping
//!
//! - A [`SchedulerService`] is a cheap handle; clones share the pools. Dropping the **last**
//!   handle shuts the service down and **blocks** for up to its graceful shutdown timeout
//!   (`gracefulShutdownTimeout`, 15 s by default) while queued and running tasks finish.
//! - A [`Scheduler`] or [`Flow`] does not keep its service alive: once the last service handle is
//!   gone, their submissions are refused with [`RejectKind::Shutdown`].
//! - In async code, do not let the last handle drop on a runtime thread: shut down first with
//!   [`SchedulerService::shutdown_in_background`], which returns a [`TaskHandle`] to await, so
//!   the drop that follows does not block.
//! - Dropping a [`TaskHandle`] or [`ScheduledHandle`] does not cancel its task.
//!
//! # Async
//!
//! [`TaskHandle`] and [`ScheduledHandle`] are futures, and [`Scheduler::spawn_async`] polls a
//! future on a scheduler's pool, submitting the next poll on every wake. No reactor is bundled:
//! futures that wait on uberpool's handles, on channels, or on your own wakers work; futures that
//! need a runtime's reactor or timer (`tokio::net`, `tokio::time`) panic when polled outside it,
//! and the handle yields [`TaskError::Panicked`].
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `cron` | yes | [`Scheduler::schedule_cron`] and [`Scheduler::schedule_cron_in`] (the `cron` and `chrono` crates) |
//! | `queue` | no | `uberpool::queue`: the capacity-aware consumer of durable job queues and its backend interface (no client; chosen by the two below) |
//! | `beanstalkd` | no | `queue` plus the beanstalkd client, producer and consumer backend (no extra crates) |
//! | `redis` | no | `queue` plus the Redis Streams producer and consumer backend, on one server or a Redis Cluster (the `redis` crate, synchronous connection only) |
//! | `metrics` | no | every pool's and scheduler's figures published through the `metrics` facade (`ServiceBuilder::publish_metrics`, `SchedulerService::publish_metrics_now`), for Prometheus and other exporters |
//!
//! # More
//!
//! The crate's repository holds the examples — an email campaign sent over real SMTP on
//! loopback among them — the benchmarks and their results, and the protocol notes behind the
//! pool, the views and the timed tasks (a `README.md` beside each).
#![warn(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)] // allowed in one module: src/task/raw.rs
#![warn(clippy::undocumented_unsafe_blocks)]

mod adaptive;
mod async_task;
mod class;
pub mod config;
mod dispatch;
mod flow;
mod loom;
#[cfg(feature = "metrics")]
mod observe;
mod policy;
pub mod pool;
#[cfg(feature = "queue")]
pub mod queue;
mod rejected;
mod role;
mod schedule;
mod scheduler;
mod scoped;
mod service;
mod task;
mod throttle;
mod timer;
mod view;

pub use adaptive::{AdaptiveConcurrency, AdaptiveStatus, LimitDecision};
pub use class::{ParseTaskClassError, TaskClass};
pub use config::{ConfigError, ConfigWarning, PoolSpec, PoolsConfig, Resources, Strategy};
pub use dispatch::{MAX_INLINE_DEPTH, PoolKind};
pub use flow::{FallibleFlowBuilder, Flow, FlowBuilder, ProactorPolicy};
pub use pool::{BuildError, ShutdownReport, ThreadSpawn, shutdown_requested};
pub use rejected::{RejectKind, Rejected};
pub use schedule::{MAX_DELAY, ScheduleError, ScheduleErrorKind, ScheduledHandle};
pub use scheduler::Scheduler;
pub use scoped::{Scope, ScopedHandle};
pub use service::{
    PoolMetrics, SchedulerConfig, SchedulerError, SchedulerService, ServiceBuilder, ServiceError,
    ServiceMetrics,
};
pub use task::{Panic, TaskError, TaskHandle};
pub use throttle::ThrottleStatus;
pub use view::{
    LIGHT_BUDGET, current_class, ignore_sample, is_current_thread_for_cpu_work,
    is_current_thread_in_wait_group, report_overload,
};

/// The `chrono` crate uberpool's cron scheduling uses for time zones
/// ([`Scheduler::schedule_cron_in`]), so that the versions match.
#[cfg(feature = "cron")]
pub use chrono;

/// The `metrics` facade uberpool publishes through (feature `metrics`), so that a recorder or
/// exporter can be matched to the same version.
#[cfg(feature = "metrics")]
pub use metrics;

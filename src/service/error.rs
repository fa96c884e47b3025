//! Why a service or a scheduler could not be created: [`ServiceError`], [`SchedulerError`].

use std::time::Duration;

use crate::config::ConfigError;
use crate::pool::BuildError;

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
    /// `rate_limit(n, per)` with `n == 0`, a zero `per`, or a `per` longer than
    /// [`MAX_DELAY`](crate::MAX_DELAY).
    #[error(
        "scheduler '{name}': rate_limit({n}, {per:?}) must allow at least one task per period, with a period greater than zero and at most {max:?}"
    )]
    InvalidRateLimit {
        /// The scheduler's name.
        name: String,
        /// The number of tasks per period asked for.
        n: usize,
        /// The period asked for.
        per: Duration,
        /// The longest period accepted ([`MAX_DELAY`](crate::MAX_DELAY)).
        max: Duration,
    },
    /// A duration option longer than [`MAX_DELAY`](crate::MAX_DELAY): no deadline that far
    /// away can be computed.
    #[error(
        "scheduler '{name}': {option}({value:?}) is longer than the longest uberpool accepts ({max:?})"
    )]
    DurationTooLarge {
        /// The scheduler's name.
        name: String,
        /// The option, as the builder spells it (`shutdown_timeout`).
        option: &'static str,
        /// The duration asked for.
        value: Duration,
        /// The longest duration accepted ([`MAX_DELAY`](crate::MAX_DELAY)).
        max: Duration,
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
    /// An [`AdaptiveConcurrency`](crate::AdaptiveConcurrency) option out of its range.
    #[error(
        "scheduler '{name}': adaptive_concurrency {option}({value}) is out of range: {accepted}"
    )]
    InvalidAdaptive {
        /// The scheduler's name.
        name: String,
        /// The option, as the builder spells it (`floor`, `smoothing`, ...).
        option: &'static str,
        /// The value given, as text.
        value: String,
        /// What the option accepts.
        accepted: &'static str,
    },
    /// Both `max_concurrent_tasks` and `adaptive_concurrency` on a class scheduler: a view has
    /// one limit, fixed or adaptive.
    #[error(
        "scheduler '{name}': max_concurrent_tasks and adaptive_concurrency both set; a view's limit is fixed or adaptive, not both (give the adaptive limit a ceiling instead)"
    )]
    FixedAndAdaptiveLimit {
        /// The scheduler's name.
        name: String,
    },
    /// `adaptive_concurrency` on a custom scheduler (its pool size is its limit; give a view of
    /// a class scheduler an adaptive limit instead).
    #[error("Only class schedulers may define 'adaptiveConcurrency' behaviour")]
    AdaptiveOnCustom,
    /// The service has been shut down.
    #[error("the scheduler service '{0}' is shut down")]
    ServiceShutdown(String),
    /// The custom scheduler's pool could not start.
    #[error(transparent)]
    Start(#[from] BuildError),
}

/// Why a service could not be created: by [`ServiceBuilder::build`](crate::ServiceBuilder::build)
/// or [`SchedulerService::from_conf_file`](crate::SchedulerService::from_conf_file).
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

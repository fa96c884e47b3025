//! [`SchedulerConfig`]: the options of a throttled, rate-limited or custom scheduler, and how
//! they are checked and turned into a view.

use std::time::Duration;

use crate::TaskClass;
use crate::adaptive::AdaptiveConcurrency;
use crate::schedule::MAX_DELAY;
use crate::throttle::Throttle;

use super::error::SchedulerError;

/// Options of a scheduler: its name, and for custom schedulers their pool and flags.
///
/// ```
/// use uberpool::SchedulerConfig;
///
/// let config = SchedulerConfig::new()
///     .name("smtp-relay")
///     .max_concurrent_tasks(16)
///     .wait_allowed(true);
/// # let _ = config;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "a SchedulerConfig does nothing until passed to `scheduler_with` or `custom`"]
pub struct SchedulerConfig {
    name: Option<String>,
    max_concurrent_tasks: Option<usize>,
    queue_size: Option<usize>,
    wait_allowed: bool,
    direct_run_cpu_light_when_target_busy: bool,
    shutdown_timeout: Option<Duration>,
    class: Option<TaskClass>,
    rate_limit: Option<(usize, Duration)>,
    adaptive: Option<AdaptiveConcurrency>,
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
    /// - For [`SchedulerService::scheduler_with`](crate::SchedulerService::scheduler_with): a **throttled** view when `n` is below the
    ///   pool's maximum size (at or above it, the pool's own limit already applies and a plain
    ///   view is returned, as in Mule). Beyond the limit, callers that may wait (your own
    ///   threads, IO and UBER threads) wait for a slot and the others are refused with
    ///   [`RejectKind::Throttled`](crate::RejectKind::Throttled); with
    ///   [`queue_size`](Self::queue_size) the excess first waits in the scheduler's own queue.
    /// - For [`SchedulerService::custom`](crate::SchedulerService::custom): the size of its own pool (required).
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
    /// ([`SchedulerService::scheduler_with`](crate::SchedulerService::scheduler_with)).
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
    pub fn rate_limit(mut self, n: usize, per: Duration) -> Self {
        self.rate_limit = Some((n, per));
        self
    }

    /// An **adaptive** limit instead of a fixed
    /// [`max_concurrent_tasks`](Self::max_concurrent_tasks): the most tasks of the view in
    /// flight at once moves between the options' floor and ceiling from the running times of
    /// the view's tasks and the overloads they report with
    /// [`report_overload`](crate::report_overload) (see [`AdaptiveConcurrency`]). Every rule of
    /// a throttled view holds at the current limit: callers that may wait wait for a slot, the
    /// others are refused with [`RejectKind::Throttled`](crate::RejectKind::Throttled), the
    /// excess waits in the view's own queue with [`queue_size`](Self::queue_size) (default 0).
    /// When the limit drops below the tasks in flight, they run on and no task starts until
    /// fewer than the limit are in flight; when it rises, held tasks start and waiting callers
    /// are woken. Combines with [`rate_limit`](Self::rate_limit). Class schedulers only
    /// ([`SchedulerService::scheduler_with`](crate::SchedulerService::scheduler_with)); not
    /// together with `max_concurrent_tasks`. The current limit is in
    /// [`Scheduler::throttle`](crate::Scheduler::throttle).
    ///
    /// ```
    /// use uberpool::{AdaptiveConcurrency, SchedulerConfig, SchedulerService, TaskClass};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let relay = service.scheduler_with(
    ///     TaskClass::Io,
    ///     SchedulerConfig::new()
    ///         .name("smtp")
    ///         .adaptive_concurrency(AdaptiveConcurrency::new().ceiling(32))
    ///         .queue_size(1000),
    /// )?;
    /// let sent: Vec<_> = (0..20).map(|i| relay.submit(move || i)).collect::<Result<_, _>>()?;
    /// for handle in sent {
    ///     handle.join()?;
    /// }
    /// let limit = relay.throttle().unwrap().limit.unwrap();
    /// assert!((1..=32).contains(&limit));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn adaptive_concurrency(mut self, options: AdaptiveConcurrency) -> Self {
        self.adaptive = Some(options);
        self
    }

    /// How long [`Scheduler::stop`](crate::Scheduler::stop) waits for the scheduler's tasks (default 5 s).
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
}

/// What a class scheduler's options come to, once checked.
pub(crate) struct ClassView {
    pub(crate) name: String,
    pub(crate) stop_timeout: Option<Duration>,
    pub(crate) throttle: Option<Throttle>,
}

/// What a custom scheduler's options come to, once checked.
pub(crate) struct CustomPool {
    pub(crate) size: usize,
    pub(crate) queue_size: usize,
    pub(crate) stop_timeout: Option<Duration>,
    pub(crate) class: TaskClass,
    pub(crate) wait_allowed: bool,
    pub(crate) direct_run_cpu_light: bool,
}

impl SchedulerConfig {
    /// The configured name, or `default`.
    pub(crate) fn name_or(&self, default: impl FnOnce() -> String) -> String {
        self.name.clone().unwrap_or_else(default)
    }

    /// Checks the options of a class scheduler over a pool of at most `pool_max` threads.
    pub(crate) fn class_view(
        &self,
        name: String,
        pool_max: usize,
    ) -> Result<ClassView, SchedulerError> {
        if self.wait_allowed {
            return Err(SchedulerError::CustomOnly {
                option: "waitAllowed",
            });
        }
        if self.direct_run_cpu_light_when_target_busy {
            return Err(SchedulerError::CustomOnly {
                option: "directRunCpuLightWhenTargetBusy",
            });
        }
        self.check_stop_timeout(&name)?;
        if let Some(options) = self.adaptive {
            return self.adaptive_view(name, options);
        }
        if self.max_concurrent_tasks == Some(0) {
            return Err(SchedulerError::ZeroConcurrency { name });
        }
        let limit = self.max_concurrent_tasks.filter(|n| *n < pool_max);
        self.check_rate_limit(&name)?;
        let throttle = match (limit, self.rate_limit) {
            (None, None) => {
                if self.queue_size.is_some() && self.max_concurrent_tasks.is_none() {
                    return Err(SchedulerError::QueueWithoutThrottle {
                        name,
                        max: pool_max,
                    });
                }
                None
            }
            (limit, rate) => {
                let default_queue = rate.map_or(0, |(n, _)| n);
                let queue = self.queue_size.unwrap_or(default_queue);
                Some(Throttle::new(limit, rate, queue))
            }
        };
        Ok(ClassView {
            name,
            stop_timeout: self.shutdown_timeout,
            throttle,
        })
    }

    /// A class view with an adaptive limit (always gated, whatever the pool's size).
    fn adaptive_view(
        &self,
        name: String,
        options: AdaptiveConcurrency,
    ) -> Result<ClassView, SchedulerError> {
        if self.max_concurrent_tasks.is_some() {
            return Err(SchedulerError::FixedAndAdaptiveLimit { name });
        }
        self.check_rate_limit(&name)?;
        let params = match options.params() {
            Ok(params) => params,
            Err(invalid) => {
                return Err(SchedulerError::InvalidAdaptive {
                    name,
                    option: invalid.option,
                    value: invalid.value,
                    accepted: invalid.accepted,
                });
            }
        };
        let default_queue = self.rate_limit.map_or(0, |(n, _)| n);
        let queue = self.queue_size.unwrap_or(default_queue);
        Ok(ClassView {
            name,
            stop_timeout: self.shutdown_timeout,
            throttle: Some(Throttle::adaptive(params, self.rate_limit, queue)),
        })
    }

    fn check_rate_limit(&self, name: &str) -> Result<(), SchedulerError> {
        match self.rate_limit {
            Some((n, per)) if n == 0 || per.is_zero() || per > MAX_DELAY => {
                Err(SchedulerError::InvalidRateLimit {
                    name: name.to_owned(),
                    n,
                    per,
                    max: MAX_DELAY,
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks the options of a custom scheduler.
    pub(crate) fn custom_pool(&self, name: &str) -> Result<CustomPool, SchedulerError> {
        let size = self
            .max_concurrent_tasks
            .filter(|n| *n > 0)
            .ok_or(SchedulerError::MissingPoolSize)?;
        if self.rate_limit.is_some() {
            return Err(SchedulerError::RateLimitOnCustom);
        }
        if self.adaptive.is_some() {
            return Err(SchedulerError::AdaptiveOnCustom);
        }
        self.check_stop_timeout(name)?;
        Ok(CustomPool {
            size,
            queue_size: self.queue_size.unwrap_or(size),
            stop_timeout: self.shutdown_timeout,
            class: self.class.unwrap_or(TaskClass::Io),
            wait_allowed: self.wait_allowed,
            direct_run_cpu_light: self.direct_run_cpu_light_when_target_busy,
        })
    }

    fn check_stop_timeout(&self, name: &str) -> Result<(), SchedulerError> {
        match self.shutdown_timeout {
            Some(value) if value > MAX_DELAY => Err(SchedulerError::DurationTooLarge {
                name: name.to_owned(),
                option: "shutdown_timeout",
                value,
                max: MAX_DELAY,
            }),
            _ => Ok(()),
        }
    }
}

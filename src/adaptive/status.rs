//! [`AdaptiveStatus`]: a snapshot of an adaptive limit, as
//! [`Scheduler::throttle`](crate::Scheduler::throttle) reports it.

use std::time::Duration;

use super::limit::{AdaptiveLimit, LimitDecision};

/// A snapshot of an adaptive view's limit: where it stands, what it saw and what it decided.
/// Reached through [`ThrottleStatus::adaptive`](crate::ThrottleStatus::adaptive).
///
/// ```
/// use uberpool::{AdaptiveConcurrency, LimitDecision, SchedulerConfig, SchedulerService, TaskClass};
///
/// let service = SchedulerService::builder().build()?;
/// let view = service.scheduler_with(
///     TaskClass::Io,
///     SchedulerConfig::new().adaptive_concurrency(AdaptiveConcurrency::new().initial_limit(10)),
/// )?;
/// let status = view.throttle().unwrap().adaptive.unwrap();
/// assert_eq!((status.limit, status.floor, status.ceiling), (10, 1, 200));
/// assert_eq!(status.decision, LimitDecision::Initial);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AdaptiveStatus {
    /// The limit the view applies now: the whole part of [`exact_limit`](Self::exact_limit).
    pub limit: usize,
    /// The limit as the algorithm holds it (it moves by fractions of a task).
    pub exact_limit: f64,
    /// The lowest the limit goes.
    pub floor: usize,
    /// The highest the limit goes.
    pub ceiling: usize,
    /// The latest gradient: `min(1, tolerance × baseline / latency)`, at least 0.5 (1.0 before
    /// the first window, after a backoff and in an app-limited window).
    pub gradient: f64,
    /// The mean running time of the tasks of the latest judged window.
    pub latency: Option<Duration>,
    /// The long-term baseline latency the windows are compared with.
    pub baseline: Option<Duration>,
    /// What the latest step decided.
    pub decision: LimitDecision,
    /// Windows judged so far.
    pub windows: u64,
    /// Windows that raised the limit.
    pub increases: u64,
    /// Windows that lowered the limit (latency above the baseline).
    pub decreases: u64,
    /// Multiplicative decreases after an overload.
    pub backoffs: u64,
    /// Tasks that reported overload or ran past the overload timeout (those that started before
    /// a backoff included: they are counted, but cause no second backoff).
    pub overloads: u64,
    /// Tasks that called [`ignore_sample`](crate::ignore_sample).
    pub ignored: u64,
}

/// Equality compares the fractions bit for bit, so that [`ThrottleStatus`](crate::ThrottleStatus)
/// stays `Eq`.
impl PartialEq for AdaptiveStatus {
    fn eq(&self, other: &Self) -> bool {
        self.limit == other.limit
            && self.exact_limit.to_bits() == other.exact_limit.to_bits()
            && self.floor == other.floor
            && self.ceiling == other.ceiling
            && self.gradient.to_bits() == other.gradient.to_bits()
            && self.latency == other.latency
            && self.baseline == other.baseline
            && self.decision == other.decision
            && self.windows == other.windows
            && self.increases == other.increases
            && self.decreases == other.decreases
            && self.backoffs == other.backoffs
            && self.overloads == other.overloads
            && self.ignored == other.ignored
    }
}

impl Eq for AdaptiveStatus {}

impl AdaptiveLimit {
    /// A snapshot for [`AdaptiveStatus`].
    pub(crate) fn status(&self) -> AdaptiveStatus {
        let figures = self.figures();
        let params = self.params();
        AdaptiveStatus {
            limit: self.whole(),
            exact_limit: figures.limit,
            floor: params.floor,
            ceiling: params.ceiling,
            gradient: figures.gradient,
            latency: figures.latency,
            baseline: figures.baseline,
            decision: figures.decision,
            windows: figures.windows,
            increases: figures.increases,
            decreases: figures.decreases,
            backoffs: figures.backoffs,
            overloads: figures.overloads,
            ignored: figures.ignored,
        }
    }
}

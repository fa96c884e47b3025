//! [`AdaptiveConcurrency`]: the options of an adaptive limit, their defaults, and the checks
//! that turn them into the parameters the algorithm (`limit.rs`) runs with.

use std::fmt;
use std::time::Duration;

/// An adaptive concurrency limit for a scheduler view, given to
/// [`SchedulerConfig::adaptive_concurrency`](crate::SchedulerConfig::adaptive_concurrency)
/// instead of a fixed [`max_concurrent_tasks`](crate::SchedulerConfig::max_concurrent_tasks).
///
/// The view starts at [`initial_limit`](Self::initial_limit) tasks in flight and moves its limit
/// between [`floor`](Self::floor) and [`ceiling`](Self::ceiling) from what its tasks show:
///
/// - **latency**: every [`window`](Self::window) the mean running time of the tasks that ended
///   in it is compared with a long-term baseline. While it stays at the baseline the limit grows
///   — by a fifth a window until the latency first rises, then by
///   `smoothing × queue_allowance` a window near the point where it rose, faster beyond it; when
///   it rises the limit moves towards `limit × baseline / latency + queue_allowance` (the target
///   is never below half the limit), each step smoothed by [`smoothing`](Self::smoothing);
/// - **overload**: a task that calls [`report_overload`](crate::report_overload) (an SMTP `421`
///   or `451`, an HTTP `503`, a timeout of its own) or that runs longer than
///   [`overload_timeout`](Self::overload_timeout) multiplies the limit by
///   [`backoff`](Self::backoff) at once — once per round: overloads of tasks that started before
///   the last decrease do not decrease it again.
///
/// The defaults suit blocking IO against a remote service whose capacity is a few to a few
/// hundred concurrent requests (an SMTP relay, an HTTP API):
///
/// | option | default | accepted |
/// |---|---|---|
/// | [`floor`](Self::floor) | 1 | ≥ 1 |
/// | [`ceiling`](Self::ceiling) | 200 | ≥ `floor` |
/// | [`initial_limit`](Self::initial_limit) | 4, or `floor` if higher, or `ceiling` if lower | `floor..=ceiling` |
/// | [`smoothing`](Self::smoothing) | 0.2 | `0 < s <= 1` |
/// | [`queue_allowance`](Self::queue_allowance) | 1.0 | `0 <= q <= ceiling`, finite |
/// | [`tolerance`](Self::tolerance) | 1.0 | `1 <= t <= 10` |
/// | [`backoff`](Self::backoff) | 0.8 | `0.5 <= b < 1` |
/// | [`window`](Self::window) | 50 ms, and at least 10 tasks | 1 ms to 60 s; 1 to 10,000 tasks |
/// | [`baseline_windows`](Self::baseline_windows) | 600 (30 s at the default window) | 1 to 1,000,000 |
/// | [`overload_timeout`](Self::overload_timeout) | 5 s | 1 ms to [`MAX_DELAY`](crate::MAX_DELAY) |
///
/// A value outside its range is refused by
/// [`scheduler_with`](crate::SchedulerService::scheduler_with) with
/// [`SchedulerError::InvalidAdaptive`](crate::SchedulerError::InvalidAdaptive), naming the
/// option. The algorithm and its invariants are described in the repository's
/// `src/adaptive/README.md`.
///
/// ```
/// use std::time::Duration;
/// use uberpool::{AdaptiveConcurrency, SchedulerConfig, SchedulerService, TaskClass};
///
/// let service = SchedulerService::builder().build()?;
/// let relay = service.scheduler_with(
///     TaskClass::Io,
///     SchedulerConfig::new().name("smtp").adaptive_concurrency(
///         AdaptiveConcurrency::new()
///             .floor(2)
///             .ceiling(64)
///             .overload_timeout(Duration::from_secs(30)),
///     ),
/// )?;
/// let reply = relay.submit(|| {
///     let code = 421; // what the relay answered
///     if code == 421 {
///         uberpool::report_overload(); // the limit backs off
///     }
///     code
/// })?;
/// assert_eq!(reply.join()?, 421);
/// let status = relay.throttle().unwrap().adaptive.unwrap();
/// assert!((2..=64).contains(&status.limit));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[must_use = "an AdaptiveConcurrency does nothing until passed to `SchedulerConfig::adaptive_concurrency`"]
pub struct AdaptiveConcurrency {
    floor: usize,
    ceiling: usize,
    initial_limit: Option<usize>,
    smoothing: f64,
    queue_allowance: f64,
    tolerance: f64,
    backoff: f64,
    window: Duration,
    window_tasks: usize,
    baseline_windows: u32,
    overload_timeout: Duration,
}

impl Default for AdaptiveConcurrency {
    fn default() -> Self {
        AdaptiveConcurrency {
            floor: 1,
            ceiling: 200,
            initial_limit: None,
            smoothing: 0.2,
            queue_allowance: 1.0,
            tolerance: 1.0,
            backoff: 0.8,
            window: Duration::from_millis(50),
            window_tasks: 10,
            baseline_windows: 600,
            overload_timeout: Duration::from_secs(5),
        }
    }
}

/// Equality compares the options exactly (the fractions bit for bit), so that a
/// [`SchedulerConfig`](crate::SchedulerConfig) holding one stays `Eq`.
impl PartialEq for AdaptiveConcurrency {
    fn eq(&self, other: &Self) -> bool {
        self.floor == other.floor
            && self.ceiling == other.ceiling
            && self.initial_limit == other.initial_limit
            && self.smoothing.to_bits() == other.smoothing.to_bits()
            && self.queue_allowance.to_bits() == other.queue_allowance.to_bits()
            && self.tolerance.to_bits() == other.tolerance.to_bits()
            && self.backoff.to_bits() == other.backoff.to_bits()
            && self.window == other.window
            && self.window_tasks == other.window_tasks
            && self.baseline_windows == other.baseline_windows
            && self.overload_timeout == other.overload_timeout
    }
}

impl Eq for AdaptiveConcurrency {}

impl AdaptiveConcurrency {
    /// The defaults (see the table above).
    ///
    /// ```
    /// use uberpool::{AdaptiveConcurrency, SchedulerConfig, SchedulerService, TaskClass};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let relay = service.scheduler_with(
    ///     TaskClass::Io,
    ///     SchedulerConfig::new().adaptive_concurrency(AdaptiveConcurrency::new()),
    /// )?;
    /// let status = relay.throttle().unwrap().adaptive.unwrap();
    /// assert_eq!((status.limit, status.floor, status.ceiling), (4, 1, 200));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The lowest the limit goes, whatever the tasks show (default 1).
    pub fn floor(mut self, n: usize) -> Self {
        self.floor = n;
        self
    }

    /// The highest the limit goes (default 200). The pool behind the view still applies its
    /// own maximum.
    pub fn ceiling(mut self, n: usize) -> Self {
        self.ceiling = n;
        self
    }

    /// The limit the view starts with (default 4, brought within `floor..=ceiling`).
    pub fn initial_limit(mut self, n: usize) -> Self {
        self.initial_limit = Some(n);
        self
    }

    /// How far one window's verdict moves the limit: the new limit is
    /// `(1 - s) × limit + s × target` (default 0.2; 1 follows the target at once).
    pub fn smoothing(mut self, s: f64) -> Self {
        self.smoothing = s;
        self
    }

    /// Tasks allowed to wait at the remote end beyond what it serves at its baseline latency:
    /// the limit's target is `limit × gradient + q`, so the limit settles where about `q` tasks
    /// wait (`limit × (1 - gradient) = q`), and near that point it grows by `smoothing × q` a
    /// window while the latency is flat (default 1.0).
    pub fn queue_allowance(mut self, q: f64) -> Self {
        self.queue_allowance = q;
        self
    }

    /// How much higher than the baseline a window's latency may be and still count as flat:
    /// the gradient is `min(1, tolerance × baseline / latency)` (default 1.0: any rise counts).
    pub fn tolerance(mut self, t: f64) -> Self {
        self.tolerance = t;
        self
    }

    /// The factor an overload multiplies the limit by (default 0.8).
    ///
    /// ```
    /// use uberpool::{AdaptiveConcurrency, SchedulerConfig, SchedulerService, TaskClass};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let relay = service.scheduler_with(
    ///     TaskClass::Io,
    ///     SchedulerConfig::new()
    ///         .adaptive_concurrency(AdaptiveConcurrency::new().initial_limit(10).backoff(0.5)),
    /// )?;
    /// relay.submit(uberpool::report_overload)?.join()?;
    /// assert_eq!(relay.throttle().unwrap().limit, Some(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backoff(mut self, b: f64) -> Self {
        self.backoff = b;
        self
    }

    /// The shortest window of samples the latency is judged on (default 50 ms); a window also
    /// waits for [`window_tasks`](Self::window_tasks) tasks to end.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The fewest tasks a window judges the latency on (default 10).
    pub fn window_tasks(mut self, n: usize) -> Self {
        self.window_tasks = n;
        self
    }

    /// How many windows the long-term baseline latency takes to follow a latency that stays
    /// higher (default 600). It follows a lower latency at once.
    pub fn baseline_windows(mut self, n: u32) -> Self {
        self.baseline_windows = n;
        self
    }

    /// A task running at least this long counts as overloaded, as if it had called
    /// [`report_overload`](crate::report_overload) (default 5 s). Measured when the task ends.
    pub fn overload_timeout(mut self, timeout: Duration) -> Self {
        self.overload_timeout = timeout;
        self
    }

    /// Checks every option; the error names the first one out of range, with what it accepts.
    pub(crate) fn params(&self) -> Result<Params, InvalidOption> {
        let bad = |option: &'static str, value: String, accepted: &'static str| {
            Err(InvalidOption {
                option,
                value,
                accepted,
            })
        };
        if self.floor == 0 {
            return bad("floor", self.floor.to_string(), "at least 1");
        }
        if self.ceiling < self.floor {
            return bad("ceiling", self.ceiling.to_string(), "at least the floor");
        }
        let initial = match self.initial_limit {
            Some(n) if !(self.floor..=self.ceiling).contains(&n) => {
                return bad("initial_limit", n.to_string(), "between floor and ceiling");
            }
            Some(n) => n,
            None => DEFAULT_INITIAL.clamp(self.floor, self.ceiling),
        };
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return bad(
                "smoothing",
                self.smoothing.to_string(),
                "greater than 0, at most 1",
            );
        }
        if !(self.queue_allowance >= 0.0 && self.queue_allowance <= self.ceiling as f64) {
            return bad(
                "queue_allowance",
                self.queue_allowance.to_string(),
                "at least 0, at most the ceiling",
            );
        }
        if !(1.0..=10.0).contains(&self.tolerance) {
            return bad("tolerance", self.tolerance.to_string(), "from 1 to 10");
        }
        if !(self.backoff >= 0.5 && self.backoff < 1.0) {
            return bad(
                "backoff",
                self.backoff.to_string(),
                "at least 0.5, less than 1",
            );
        }
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&self.window) {
            return bad("window", format!("{:?}", self.window), "from 1 ms to 60 s");
        }
        if !(1..=MAX_WINDOW_TASKS).contains(&self.window_tasks) {
            return bad(
                "window_tasks",
                self.window_tasks.to_string(),
                "from 1 to 10000",
            );
        }
        if !(1..=MAX_BASELINE_WINDOWS).contains(&self.baseline_windows) {
            return bad(
                "baseline_windows",
                self.baseline_windows.to_string(),
                "from 1 to 1000000",
            );
        }
        if !(MIN_WINDOW..=MAX_OVERLOAD_TIMEOUT).contains(&self.overload_timeout) {
            return bad(
                "overload_timeout",
                format!("{:?}", self.overload_timeout),
                "from 1 ms to MAX_DELAY",
            );
        }
        Ok(Params {
            floor: self.floor,
            ceiling: self.ceiling,
            initial,
            smoothing: self.smoothing,
            queue_allowance: self.queue_allowance,
            tolerance: self.tolerance,
            backoff: self.backoff,
            window: self.window,
            window_tasks: u32::try_from(self.window_tasks).unwrap_or(u32::MAX),
            baseline_windows: self.baseline_windows,
            overload_timeout: self.overload_timeout,
        })
    }
}

/// The initial limit when none is given (before clamping to `floor..=ceiling`): small, as the
/// remote services adaptive views are for often take only a handful of clients at once.
const DEFAULT_INITIAL: usize = 4;
const MIN_WINDOW: Duration = Duration::from_millis(1);
const MAX_WINDOW: Duration = Duration::from_secs(60);
const MAX_WINDOW_TASKS: usize = 10_000;
/// The longest overload timeout: [`MAX_DELAY`](crate::MAX_DELAY), the longest delay of a timed
/// task (spelt out here, as `adaptive` depends on no scheduling module; `tests/adaptive.rs`
/// checks the two agree).
const MAX_OVERLOAD_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
const MAX_BASELINE_WINDOWS: u32 = 1_000_000;

/// An option out of its range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InvalidOption {
    pub(crate) option: &'static str,
    pub(crate) value: String,
    pub(crate) accepted: &'static str,
}

impl fmt::Display for InvalidOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({}) is out of range: {}",
            self.option, self.value, self.accepted
        )
    }
}

/// Checked options, as the algorithm uses them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Params {
    pub(crate) floor: usize,
    pub(crate) ceiling: usize,
    pub(crate) initial: usize,
    pub(crate) smoothing: f64,
    pub(crate) queue_allowance: f64,
    pub(crate) tolerance: f64,
    pub(crate) backoff: f64,
    pub(crate) window: Duration,
    pub(crate) window_tasks: u32,
    pub(crate) baseline_windows: u32,
    pub(crate) overload_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_start_at_four() {
        let params = AdaptiveConcurrency::new().params().unwrap();
        assert_eq!((params.floor, params.initial, params.ceiling), (1, 4, 200));
        let high_floor = AdaptiveConcurrency::new().floor(10).params().unwrap();
        assert_eq!(high_floor.initial, 10);
        let low_ceiling = AdaptiveConcurrency::new().ceiling(2).params().unwrap();
        assert_eq!(low_ceiling.initial, 2);
    }

    #[test]
    fn each_option_out_of_range_is_named() {
        let cases: Vec<(AdaptiveConcurrency, &str)> = vec![
            (AdaptiveConcurrency::new().floor(0), "floor"),
            (AdaptiveConcurrency::new().floor(5).ceiling(4), "ceiling"),
            (AdaptiveConcurrency::new().initial_limit(0), "initial_limit"),
            (
                AdaptiveConcurrency::new().ceiling(8).initial_limit(9),
                "initial_limit",
            ),
            (AdaptiveConcurrency::new().smoothing(0.0), "smoothing"),
            (AdaptiveConcurrency::new().smoothing(1.5), "smoothing"),
            (AdaptiveConcurrency::new().smoothing(f64::NAN), "smoothing"),
            (
                AdaptiveConcurrency::new().queue_allowance(-1.0),
                "queue_allowance",
            ),
            (
                AdaptiveConcurrency::new().queue_allowance(f64::INFINITY),
                "queue_allowance",
            ),
            (AdaptiveConcurrency::new().tolerance(0.9), "tolerance"),
            (AdaptiveConcurrency::new().backoff(1.0), "backoff"),
            (AdaptiveConcurrency::new().backoff(0.4), "backoff"),
            (AdaptiveConcurrency::new().window(Duration::ZERO), "window"),
            (
                AdaptiveConcurrency::new().window(Duration::from_secs(61)),
                "window",
            ),
            (AdaptiveConcurrency::new().window_tasks(0), "window_tasks"),
            (
                AdaptiveConcurrency::new().baseline_windows(0),
                "baseline_windows",
            ),
            (
                AdaptiveConcurrency::new().overload_timeout(Duration::ZERO),
                "overload_timeout",
            ),
            (
                AdaptiveConcurrency::new().overload_timeout(Duration::MAX),
                "overload_timeout",
            ),
        ];
        for (options, name) in cases {
            let error = options.params().unwrap_err();
            assert_eq!(error.option, name, "{error}");
        }
    }

    #[test]
    fn equality_is_exact_and_reflexive() {
        let a = AdaptiveConcurrency::new().smoothing(0.3);
        assert_eq!(a, a);
        assert_ne!(a, AdaptiveConcurrency::new());
        let nan = AdaptiveConcurrency::new().smoothing(f64::NAN);
        assert_eq!(nan, nan, "bitwise, so a SchedulerConfig stays Eq");
    }
}

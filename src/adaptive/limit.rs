//! The adaptive limit itself: a pure state machine fed one sample per finished task, with the
//! time carried in each sample. It reads no clock, takes no lock and knows nothing of views;
//! `throttle/` owns one under the gate's lock and stamps the samples. The rules and their
//! invariants are in `README.md` beside this file.

use std::time::Duration;

use super::config::Params;

/// How a task ended, as far as the limit is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It ran to its end (or panicked): its running time is a latency sample.
    Completed,
    /// It called [`report_overload`](crate::report_overload): the remote end is overloaded.
    Overloaded,
    /// It called [`ignore_sample`](crate::ignore_sample): its running time says nothing about
    /// load.
    Ignored,
}

/// One finished task, with times on the caller's clock (any monotonic origin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sample {
    /// When the task started running (not when it was submitted: queueing is not latency).
    pub(crate) started: Duration,
    /// When it ended.
    pub(crate) ended: Duration,
    /// Tasks in flight when it ended, itself included.
    pub(crate) in_flight: usize,
    pub(crate) outcome: Outcome,
}

/// What the latest step of the limit decided, in
/// [`AdaptiveStatus::decision`](crate::AdaptiveStatus::decision).
///
/// ```
/// use uberpool::{AdaptiveConcurrency, LimitDecision, SchedulerConfig, SchedulerService, TaskClass};
///
/// let service = SchedulerService::builder().build()?;
/// let relay = service.scheduler_with(
///     TaskClass::Io,
///     SchedulerConfig::new().adaptive_concurrency(AdaptiveConcurrency::new()),
/// )?;
/// let decision = || relay.throttle().unwrap().adaptive.unwrap().decision;
/// assert_eq!(decision(), LimitDecision::Initial);
/// relay.submit(uberpool::report_overload)?.join()?;
/// assert_eq!(decision(), LimitDecision::Backoff);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitDecision {
    /// No window has been judged and no overload seen yet.
    Initial,
    /// A window's latency was at the baseline: the limit grew.
    Increase,
    /// A window's latency was above the baseline: the limit shrank.
    Decrease,
    /// A window was judged but the limit stayed (at the floor or ceiling, or exactly balanced).
    Hold,
    /// Fewer than half the limit's tasks were in flight during the window: the view is not
    /// using its limit, which says nothing about the remote end; the limit stayed.
    AppLimited,
    /// A task reported overload (or ran past the overload timeout): the limit was multiplied by
    /// the backoff factor.
    Backoff,
}

/// A step that changed the limit or judged a window: what the gate and the logs need.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Step {
    pub(crate) decision: LimitDecision,
    /// The whole limit before and after the step.
    pub(crate) before: usize,
    pub(crate) after: usize,
    /// The gradient the step used (1.0 for a backoff or an app-limited window).
    pub(crate) gradient: f64,
    /// The window's mean latency and the baseline, when a window was judged.
    pub(crate) latency: Option<Duration>,
    pub(crate) baseline: Option<Duration>,
}

/// The samples of the window being filled.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    /// When it opened (the end of the previous window, the latest backoff, or the first
    /// sample); `None` until the first sample.
    opened: Option<Duration>,
    /// Latency samples in it, and the sum of their latencies in nanoseconds.
    tasks: u32,
    latency_sum: f64,
    /// The most tasks in flight at the end of any of its samples.
    max_in_flight: usize,
}

/// Counters and latest values, for the status.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Figures {
    pub(crate) limit: f64,
    pub(crate) gradient: f64,
    pub(crate) latency: Option<Duration>,
    pub(crate) baseline: Option<Duration>,
    pub(crate) decision: LimitDecision,
    pub(crate) windows: u64,
    pub(crate) increases: u64,
    pub(crate) decreases: u64,
    pub(crate) backoffs: u64,
    pub(crate) overloads: u64,
    pub(crate) ignored: u64,
}

/// The adaptive limit. Invariants (checked by `debug_assert` after every step and by the
/// tests): `floor <= limit <= ceiling`; `limit` is finite; `baseline`, once set, is finite and
/// positive or zero.
#[derive(Clone, Debug)]
pub(crate) struct AdaptiveLimit {
    params: Params,
    /// The limit as a real number; the gate uses its whole part (`whole`).
    limit: f64,
    window: Window,
    /// The long-term latency in nanoseconds: follows a lower window mean at once and a higher
    /// one over `baseline_windows` windows.
    baseline: Option<f64>,
    /// When the latest backoff happened: an overload of a task that started before it is a
    /// consequence of the old limit, already answered.
    last_backoff: Option<Duration>,
    /// The limit when a window last showed no room (the tasks waiting at the remote end,
    /// `limit × (1 - gradient)`, at least the allowance) or an overload backed it off: the knee
    /// as last seen. `None` until then.
    knee: Option<f64>,
    /// Consecutive windows with room judged on the same side of `knee`: each doubles the
    /// allowance of the next (up to the gap to the knee below it, up to the limit beyond it).
    streak: u32,
    /// The side of `knee` the streak was counted on (`true`: at or below it).
    below_knee: bool,
    figures: Figures,
}

impl AdaptiveLimit {
    pub(crate) fn new(params: Params) -> Self {
        let limit = params.initial as f64;
        AdaptiveLimit {
            params,
            limit,
            window: Window::default(),
            baseline: None,
            last_backoff: None,
            knee: None,
            streak: 0,
            below_knee: false,
            figures: Figures {
                limit,
                gradient: 1.0,
                latency: None,
                baseline: None,
                decision: LimitDecision::Initial,
                windows: 0,
                increases: 0,
                decreases: 0,
                backoffs: 0,
                overloads: 0,
                ignored: 0,
            },
        }
    }

    /// The checked options.
    pub(crate) fn params(&self) -> &Params {
        &self.params
    }

    /// The limit the gate applies: the whole part of the real limit, within floor and ceiling.
    pub(crate) fn whole(&self) -> usize {
        whole(self.limit, &self.params)
    }

    /// Latest values and counters.
    pub(crate) fn figures(&self) -> Figures {
        self.figures
    }

    /// Takes one finished task into account; returns the step if it judged a window or backed
    /// off (the whole limit may or may not have changed).
    pub(crate) fn on_sample(&mut self, sample: Sample) -> Option<Step> {
        let latency = sample.ended.saturating_sub(sample.started);
        let outcome = match sample.outcome {
            Outcome::Completed if latency >= self.params.overload_timeout => Outcome::Overloaded,
            outcome => outcome,
        };
        let step = match outcome {
            Outcome::Ignored => {
                self.figures.ignored += 1;
                None
            }
            Outcome::Overloaded => {
                self.figures.overloads += 1;
                self.back_off(sample)
            }
            Outcome::Completed => self.add_latency(sample, latency),
        };
        debug_assert!(self.limit.is_finite());
        debug_assert!(
            (self.params.floor as f64..=self.params.ceiling as f64).contains(&self.limit),
            "the limit stays within floor and ceiling"
        );
        debug_assert!(self.baseline.is_none_or(|b| b.is_finite() && b >= 0.0));
        step
    }

    /// An overload: multiplies the limit by the backoff factor, unless the task started before
    /// the latest backoff (its overload was caused by the limit before that one).
    fn back_off(&mut self, sample: Sample) -> Option<Step> {
        if self.last_backoff.is_some_and(|at| sample.started < at) {
            return None;
        }
        let before = self.whole();
        let before_exact = self.limit;
        self.limit = (self.limit * self.params.backoff).max(self.params.floor as f64);
        self.last_backoff = Some(sample.ended);
        // The samples so far were measured under the old limit.
        self.window = Window {
            opened: Some(sample.ended),
            ..Window::default()
        };
        self.figures.backoffs += 1;
        self.knee = Some(before_exact);
        self.streak = 0;
        self.record(LimitDecision::Backoff, 1.0);
        Some(Step {
            decision: LimitDecision::Backoff,
            before,
            after: self.whole(),
            gradient: 1.0,
            latency: None,
            baseline: self.baseline.map(nanos_to_duration),
        })
    }

    /// A latency sample; judges the window once it is long enough and has enough samples.
    fn add_latency(&mut self, sample: Sample, latency: Duration) -> Option<Step> {
        if self.last_backoff.is_some_and(|at| sample.started < at) {
            // Started under the limit before the latest backoff: not this window's business.
            return None;
        }
        let window = &mut self.window;
        let opened = *window.opened.get_or_insert(sample.started);
        window.tasks += 1;
        window.latency_sum += latency.as_nanos() as f64;
        window.max_in_flight = window.max_in_flight.max(sample.in_flight);
        if window.tasks < self.params.window_tasks
            || sample.ended.saturating_sub(opened) < self.params.window
        {
            return None;
        }
        let judged = std::mem::replace(
            window,
            Window {
                opened: Some(sample.ended),
                ..Window::default()
            },
        );
        Some(self.judge(judged))
    }

    /// The gradient step over a full window.
    fn judge(&mut self, window: Window) -> Step {
        let p = self.params;
        let mean = window.latency_sum / f64::from(window.tasks);
        let baseline = match self.baseline {
            Some(b) if mean >= b => b + (mean - b) / f64::from(p.baseline_windows),
            _ => mean,
        };
        self.baseline = Some(baseline);
        self.figures.windows += 1;
        let before = self.whole();
        let (decision, gradient) = if window.max_in_flight.saturating_mul(2) < before {
            self.streak = 0;
            (LimitDecision::AppLimited, 1.0)
        } else {
            let gradient = if mean > 0.0 {
                (p.tolerance * baseline / mean).clamp(0.5, 1.0)
            } else {
                1.0
            };
            let allowance = self.allowance(self.limit * (1.0 - gradient));
            let target = self.limit * gradient + allowance;
            let next = (self.limit * (1.0 - p.smoothing) + target * p.smoothing)
                .clamp(p.floor as f64, p.ceiling as f64);
            let decision = if next > self.limit {
                self.figures.increases += 1;
                LimitDecision::Increase
            } else if next < self.limit {
                self.figures.decreases += 1;
                LimitDecision::Decrease
            } else {
                LimitDecision::Hold
            };
            self.limit = next;
            (decision, gradient)
        };
        self.figures.latency = Some(nanos_to_duration(mean));
        self.record(decision, gradient);
        Step {
            decision,
            before,
            after: self.whole(),
            gradient,
            latency: Some(nanos_to_duration(mean)),
            baseline: Some(nanos_to_duration(baseline)),
        }
    }

    /// The allowance of a window whose estimate of the tasks waiting at the remote end is
    /// `waiting` (rule 8 of the README).
    fn allowance(&mut self, waiting: f64) -> f64 {
        let q = self.params.queue_allowance;
        if waiting >= q {
            // No room: this is the knee for now.
            self.knee = Some(self.limit);
            self.streak = 0;
            return q;
        }
        let Some(knee) = self.knee else {
            // No knee seen yet (a slow start): the largest allowance, the limit itself.
            return self.limit.max(q);
        };
        let below = self.limit <= knee;
        if below != self.below_knee {
            self.below_knee = below;
            self.streak = 0;
        }
        // Room: the allowance doubles each window in a row on the same side of the knee — up
        // to the gap below it (far below, the limit closes a fifth of the gap a window; near
        // it, it creeps up by `q`), up to the limit itself beyond it (new ground).
        let doubled = q * f64::from(1u32 << self.streak.min(30));
        self.streak = self.streak.saturating_add(1);
        let cap = if below { knee - self.limit } else { self.limit };
        doubled.min(cap.max(q))
    }

    fn record(&mut self, decision: LimitDecision, gradient: f64) {
        self.figures.limit = self.limit;
        self.figures.gradient = gradient;
        self.figures.decision = decision;
        self.figures.baseline = self.baseline.map(nanos_to_duration);
    }
}

/// The whole part of `limit`, within floor and ceiling.
fn whole(limit: f64, params: &Params) -> usize {
    // `as` saturates; the limit is finite and within floor..=ceiling already.
    (limit.floor() as usize).clamp(params.floor, params.ceiling)
}

fn nanos_to_duration(nanos: f64) -> Duration {
    Duration::from_nanos(nanos.max(0.0).min(u64::MAX as f64) as u64)
}

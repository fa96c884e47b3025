//! A throttled view's follow-ups — starting the tasks its gate releases, arming the rate's
//! timer, cancelling what the gate holds when the pool or timer is gone — and the limiter that
//! keeps a view's warnings to one per interval.
//!
//! The gate (`throttle/`) only decides; these methods carry its decisions out. A task the gate
//! releases holds a slot and is offered to the pool by whichever thread released it (a finishing
//! task, the timer): that thread never waits for the pool, so a full pool means a retry from the
//! timer through `dispatch::offer_or_retry`, and a shut-down pool or timer means the task and
//! everything else the gate holds is cancelled (handles resolve `Cancelled`, slots and view
//! counts are given back, and the view counts them for the shutdown report).

use std::time::{Duration, Instant};

use crate::dispatch::{Attempt, Offered, Patience, Redeliver, offer_or_retry};
use std::sync::Arc;

use crate::adaptive::{Outcome, Step};
use crate::loom::{Mutex, Ordering};
use crate::rejected::RejectKind;
use crate::task::Job;
use crate::throttle::Pump;
use crate::timer::Fire;

use super::View;

/// Warnings of one kind are logged at most once per this interval per scheduler.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Lets one log entry through per [`LOG_INTERVAL`].
#[derive(Debug, Default)]
pub(crate) struct LogLimiter {
    last: Mutex<Option<Instant>>,
}

impl LogLimiter {
    /// `true` (and remembers now) if the last entry let through is older than the interval.
    pub(crate) fn allow(&self) -> bool {
        let mut last = self.last.lock();
        let now = Instant::now();
        match *last {
            Some(at) if now.saturating_duration_since(at) < LOG_INTERVAL => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

/// A task the gate released (it holds a slot), on its way to the pool.
struct HeldStart {
    view: Arc<View>,
    job: Job,
}

impl Redeliver for HeldStart {
    /// Counted by the view (`held_cancelled`) rather than by the timer.
    const IS_TASK: bool = false;

    fn attempt(self) -> Attempt<Self> {
        let HeldStart { view, job } = self;
        match view.pool.offer(job, Patience::Never, view.class) {
            Offered::Accepted => Attempt::Taken,
            Offered::Refused(job, RejectKind::Busy) => Attempt::Busy(HeldStart { view, job }),
            Offered::Refused(job, _) => {
                view.cancel_held(Some(job));
                Attempt::Taken
            }
            Offered::RunHere(..) => unreachable!("an offer that may not wait never runs inline"),
        }
    }

    fn abandon(self) {
        self.view.cancel_held(Some(self.job));
    }
}

impl View {
    /// A task of a throttled view gives its slot back; held tasks may start in its place.
    pub(crate) fn release_slot(self: &Arc<Self>) {
        if let Some(throttle) = &self.throttle {
            let pump = throttle.release();
            self.run_pump(pump);
        }
    }

    /// A task of an adaptive view gives its slot back with its sample (started and ended
    /// running, how it ended); the limit's step, if it took one, is logged at DEBUG.
    pub(crate) fn release_sampled(
        self: &Arc<Self>,
        started: Instant,
        ended: Instant,
        outcome: Outcome,
    ) {
        if let Some(throttle) = &self.throttle {
            let pump = throttle.release_sampled(started, ended, outcome);
            self.run_pump(pump);
        }
    }

    /// Logs an adaptive limit's step.
    fn log_step(&self, step: &Step) {
        tracing::debug!(
            scheduler = %self.name,
            decision = ?step.decision,
            before = step.before,
            after = step.after,
            gradient = step.gradient,
            latency_us = step.latency.map(|d| d.as_micros() as u64),
            baseline_us = step.baseline.map(|d| d.as_micros() as u64),
            "adaptive limit of scheduler '{}': {:?}, {} -> {}",
            self.name,
            step.decision,
            step.before,
            step.after
        );
    }

    /// Carries out a gate's follow-up: offers the tasks it released, arms its release timer,
    /// logs an adaptive limit's step.
    pub(crate) fn run_pump(self: &Arc<Self>, pump: Pump) {
        if let Some(step) = &pump.step {
            self.log_step(step);
        }
        for job in pump.start {
            offer_or_retry(
                &self.timer,
                HeldStart {
                    view: self.clone(),
                    job,
                },
            );
        }
        if let Some(at) = pump.arm_at {
            let view = self.clone();
            let action = Box::new(move |fire: Fire| match fire {
                Fire::Due => {
                    if let Some(throttle) = &view.throttle {
                        let pump = throttle.timer_fired();
                        view.run_pump(pump);
                    }
                }
                Fire::Cancelled => view.cancel_held(None),
            });
            if let Err(refused) = self.timer.defer_until(at, false, action) {
                (refused.action)(Fire::Cancelled);
            }
        }
    }

    /// Cancels `job` (which holds a slot) and every task the gate holds: the pool or the timer
    /// is gone. Their handles yield `Cancelled`; their slots and view counts are given back, and
    /// they are counted for the service's shutdown report.
    pub(crate) fn cancel_held(self: &Arc<Self>, job: Option<Job>) {
        let held = match &self.throttle {
            Some(throttle) => throttle.drain(),
            None => Vec::new(),
        };
        for job in job.into_iter().chain(held) {
            self.held_cancelled.fetch_add(1, Ordering::Relaxed);
            job.cancel();
        }
    }

    /// Accepted tasks of this view cancelled before they ever reached the pool (held by the
    /// gate, or waiting for a retry): the service adds them to its shutdown report.
    pub(crate) fn held_cancelled(&self) -> u64 {
        self.held_cancelled.load(Ordering::Acquire)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_limiter_lets_one_entry_through_per_interval() {
        let limiter = LogLimiter::default();
        assert!(limiter.allow());
        assert!(!limiter.allow());
        *limiter.last.lock() = Instant::now().checked_sub(LOG_INTERVAL);
        assert!(limiter.allow(), "the interval has passed");
    }
}

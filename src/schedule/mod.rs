//! Delayed, periodic and cron tasks on a [`Scheduler`]: [`Scheduler::schedule`],
//! [`Scheduler::schedule_at_fixed_rate`], [`Scheduler::schedule_with_fixed_delay`],
//! [`Scheduler::schedule_cron`] and [`Scheduler::schedule_cron_in`].
//!
//! The pieces: `task.rs` (a timed task's phases and runs, and how the timer dispatches them),
//! `next.rs` (the arithmetic of the next tick), `handle.rs` ([`ScheduledHandle`]), `error.rs`
//! ([`ScheduleError`]).
//!
//! A periodic task never overlaps itself: a tick that falls due while the previous run is still
//! queued or running is skipped (and counted), so a run slower than its period does not pile up.
//! A panic in one periodic run is caught, counted ([`ScheduledHandle::panics`]) and logged, and
//! the schedule continues — one bad message should not stop a nightly campaign; cancel the
//! handle to stop it.
//!
//! A delayed task is counted among the view's queued tasks from the moment it is scheduled,
//! exactly like a submitted task: [`Scheduler::shutdown`] still lets it run (as in Mule),
//! [`Scheduler::stop`] waits for it within the stop timeout, [`Scheduler::shutdown_now`] cancels
//! it and counts it among the tasks it cancelled, and a service shutdown cancels it and reports
//! it in [`ShutdownReport::cancelled`](crate::ShutdownReport::cancelled). Periodic and cron tasks
//! end at any shutdown of their view or service.

mod error;
mod handle;
mod next;
mod task;

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::loom::Mutex;

use crate::dispatch::retry_later;
use crate::scheduler::Scheduler;
use crate::task::{Completer, Panic, TaskError, drop_contained};
use crate::timer::TimerRefusal;
use crate::view::TimedEntry;

pub use error::{ScheduleError, ScheduleErrorKind};
pub use handle::ScheduledHandle;
pub use next::MAX_DELAY;

use next::check_delay;
#[cfg(feature = "cron")]
use next::{cron_next, instant_of, parse_cron};
#[cfg(feature = "cron")]
use task::Wall;
use task::{Kind, Offer, OnceWork, OneShot, PeriodicWork, Phase, TimedTask};

impl ScheduleErrorKind {
    /// Why the timer refused to arm a task.
    fn from_timer(why: TimerRefusal) -> Self {
        match why {
            TimerRefusal::Shutdown => ScheduleErrorKind::Shutdown,
            TimerRefusal::NoThread => ScheduleErrorKind::TimerUnavailable,
        }
    }
}

/// A closure travelling boxed inside a timed task, which can be taken back out unrun: the box
/// and the caller share `slot`; the box takes the closure out only when it runs.
fn shared_slot<F>(f: F) -> Arc<Mutex<Option<F>>> {
    Arc::new(Mutex::new(Some(f)))
}

fn take_back<F>(slot: &Mutex<Option<F>>) -> F {
    slot.lock().take().expect("a refused closure has not run")
}

impl Scheduler {
    /// Runs `f` once on this scheduler after `delay`.
    ///
    /// The service's timer thread offers `f` to the pool when it falls due; if the pool (or
    /// this scheduler's throttle) is full, it tries again after 1 ms, then after delays doubling up
    /// to 10 ms, until it is accepted. A
    /// zero delay offers it at once. The task counts as queued on this scheduler until it runs:
    /// [`shutdown`](Self::shutdown) lets it run, [`shutdown_now`](Self::shutdown_now) cancels
    /// it.
    ///
    /// Refused, with `f` handed back, when the delay exceeds [`MAX_DELAY`] or the scheduler is
    /// shut down.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::{Duration, Instant};
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let (tx, rx) = mpsc::channel();
    /// let start = Instant::now();
    /// let retry = service.io().schedule(Duration::from_millis(20), move || {
    ///     tx.send(start.elapsed()).unwrap(); // resend the message, in real life
    /// })?;
    /// assert!(rx.recv()? >= Duration::from_millis(20));
    /// assert!(!retry.is_cancelled());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn schedule<F, T>(
        &self,
        delay: Duration,
        f: F,
    ) -> Result<ScheduledHandle<T>, ScheduleError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let view = self.view();
        let refuse = |kind, f| Err(ScheduleError::new(f, kind, view.name()));
        let now = Instant::now();
        if let Some(kind) = check_delay(delay, now) {
            return refuse(kind, f);
        }
        if view.is_shut() || !view.try_enter() {
            return refuse(ScheduleErrorKind::Shutdown, f);
        }
        let task = TimedTask::new(view.clone(), Kind::Once, None, None);
        let slot = shared_slot(f);
        // The value reaches the handle through `done`, which travels with the closure: dropped
        // unrun (cancelled, refused, shut down), it tells the handle `Cancelled`.
        let (done, value) = Completer::new();
        let work: OnceWork = {
            let slot = slot.clone();
            let counts = task.counts.clone();
            Box::new(move || {
                let f = slot.lock().take();
                if let Some(f) = f {
                    counts.runs.fetch_add(1, crate::loom::Ordering::Relaxed);
                    match catch_unwind(AssertUnwindSafe(f)) {
                        Ok(output) => done.complete(Ok(output)),
                        Err(payload) => {
                            // The handle gets the original payload; the pool, which counts
                            // the panic, gets its message.
                            let panic = Panic::caught(payload);
                            let message = panic.message().to_owned();
                            done.complete(Err(TaskError::Panicked(panic)));
                            resume_unwind(Box::new(message));
                        }
                    }
                }
            })
        };
        view.register_timed(Arc::downgrade(&task) as Weak<dyn TimedEntry>);
        let scheduled = if delay.is_zero() {
            *task.phase.lock() = Phase::Armed {
                key: None,
                work: Some(work),
            };
            match task.offer_once() {
                Offer::Dispatched | Offer::Gone => Ok(()),
                Offer::Busy => {
                    retry_later(&view.timer, OneShot { task: task.clone() }, 0);
                    Ok(())
                }
                Offer::Closed => Err(ScheduleErrorKind::Shutdown),
            }
        } else {
            let armed = {
                let mut phase = task.phase.lock();
                *phase = Phase::Armed {
                    key: None,
                    work: Some(work),
                };
                task.arm(&mut phase, now + delay, None)
            };
            armed.map_err(|why| {
                let work = match std::mem::replace(&mut *task.phase.lock(), Phase::Cancelled) {
                    Phase::Armed { work, .. } => work,
                    _ => None,
                };
                drop(work);
                view.leave_unrun();
                ScheduleErrorKind::from_timer(why)
            })
        };
        match scheduled {
            Ok(()) => {
                // If the task was given up meanwhile (a cancel, a shutdown), the closure is still
                // in the slot and this is its last owner: its `Drop` is user code.
                drop_contained("a delayed task's closure", slot);
                Ok(ScheduledHandle { task, value })
            }
            Err(kind) => refuse(kind, take_back(&slot)),
        }
    }

    /// Runs `f` every `period`, the first time after `initial`.
    ///
    /// Ticks are counted from the first one, not from the end of each run. A tick that falls
    /// due while the previous run is still going, or that the pool or throttle refuses, is
    /// skipped (see [`ScheduledHandle::skipped_ticks`]): runs never overlap and never pile up.
    /// A run that panics is counted and logged, and the schedule continues. The schedule ends
    /// when the handle is cancelled or the scheduler or service shuts down.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let (tx, rx) = mpsc::channel();
    /// let mut sent = 0;
    /// let heartbeat = service.cpu_light().schedule_at_fixed_rate(
    ///     Duration::ZERO,
    ///     Duration::from_millis(10),
    ///     move || { sent += 1; let _ = tx.send(sent); },
    /// )?;
    /// assert_eq!(rx.recv()?, 1);
    /// assert_eq!(rx.recv()?, 2);
    /// heartbeat.cancel();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn schedule_at_fixed_rate<F>(
        &self,
        initial: Duration,
        period: Duration,
        f: F,
    ) -> Result<ScheduledHandle, ScheduleError<F>>
    where
        F: FnMut() + Send + 'static,
    {
        self.schedule_periodic(initial, period, f, Kind::FixedRate(period))
    }

    /// Runs `f` repeatedly, the first time after `initial`, then `delay` after the end of each
    /// run.
    ///
    /// When the pool or throttle refuses a run, it is tried again `delay` later. A run that
    /// panics is counted and logged, and the schedule continues.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let (tx, rx) = mpsc::channel();
    /// let poller = service.io().schedule_with_fixed_delay(
    ///     Duration::ZERO,
    ///     Duration::from_millis(5),
    ///     move || { let _ = tx.send("polled the bounce mailbox"); },
    /// )?;
    /// rx.recv()?;
    /// rx.recv()?;
    /// poller.cancel();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn schedule_with_fixed_delay<F>(
        &self,
        initial: Duration,
        delay: Duration,
        f: F,
    ) -> Result<ScheduledHandle, ScheduleError<F>>
    where
        F: FnMut() + Send + 'static,
    {
        self.schedule_periodic(initial, delay, f, Kind::FixedDelay(delay))
    }

    /// Runs `f` at the times a cron expression names, in the local time zone.
    ///
    /// The expression is a standard crontab line, `min hour day-of-month month day-of-week`
    /// (firing at second 0), or the same with a seconds field first and an optional year last:
    /// `sec min hour day-of-month month day-of-week [year]`, as the
    /// [`cron`](https://docs.rs/cron) crate reads it (`*`, lists, ranges, steps, names such as
    /// `Mon` or `Jan`, and `?`). `"0 2 * * *"` and `"0 0 2 * * *"` are both every night at
    /// 02:00; `"0/2 * * * * ?"` is every two seconds. Ticks follow the rules of
    /// [`schedule_at_fixed_rate`](Self::schedule_at_fixed_rate): never overlapping, skipped
    /// (and counted) when the pool is full. [`schedule_cron_in`](Self::schedule_cron_in) picks
    /// another time zone.
    ///
    /// ```
    /// use uberpool::{ScheduleErrorKind, SchedulerService};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let campaign = service.cpu_intensive().schedule_cron("0 2 * * *", || {
    ///     // render and queue tonight's newsletter
    /// })?;
    /// assert!(!campaign.is_done());
    /// campaign.cancel();
    ///
    /// let refused = service.io().schedule_cron("every night", || ()).unwrap_err();
    /// assert!(matches!(refused.kind(), ScheduleErrorKind::InvalidCron { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cron")]
    pub fn schedule_cron<F>(
        &self,
        expression: &str,
        f: F,
    ) -> Result<ScheduledHandle, ScheduleError<F>>
    where
        F: FnMut() + Send + 'static,
    {
        self.schedule_cron_in(expression, chrono::Local, f)
    }

    /// Like [`schedule_cron`](Self::schedule_cron), with the expression read in time zone
    /// `zone`: [`chrono::Utc`], [`chrono::Local`] or a [`chrono::FixedOffset`] (re-exported as
    /// [`uberpool::chrono`](crate::chrono) under the `cron` feature, so the versions match).
    ///
    /// ```
    /// use uberpool::SchedulerService;
    /// use uberpool::chrono::{FixedOffset, Utc};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let utc = service.io().schedule_cron_in("0 30 9 * * Mon-Fri", Utc, || ())?;
    /// let paris = FixedOffset::east_opt(3600).unwrap();
    /// let local = service.io().schedule_cron_in("0 30 9 * * Mon-Fri", paris, || ())?;
    /// utc.cancel();
    /// local.cancel();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cron")]
    pub fn schedule_cron_in<Z, F>(
        &self,
        expression: &str,
        zone: Z,
        f: F,
    ) -> Result<ScheduledHandle, ScheduleError<F>>
    where
        Z: chrono::TimeZone + Send + Sync + 'static,
        Z::Offset: Send + Sync,
        F: FnMut() + Send + 'static,
    {
        let name = self.view().name();
        let schedule = match parse_cron(expression) {
            Ok(schedule) => schedule,
            Err(reason) => {
                let kind = ScheduleErrorKind::InvalidCron {
                    expression: expression.to_owned(),
                    reason,
                };
                return Err(ScheduleError::new(f, kind, name));
            }
        };
        let next = cron_next(schedule, zone);
        let (wall_now, now) = (chrono::Utc::now(), Instant::now());
        let Some((due, at)) =
            next(wall_now).and_then(|at| instant_of(at, wall_now, now).map(|due| (due, at)))
        else {
            let kind = ScheduleErrorKind::NeverFires {
                expression: expression.to_owned(),
            };
            return Err(ScheduleError::new(f, kind, name));
        };
        let kind = Kind::Cron {
            expression: expression.to_owned(),
            next,
        };
        self.start_periodic(due, Some(Wall(at)), f, kind)
    }

    fn schedule_periodic<F>(
        &self,
        initial: Duration,
        period: Duration,
        f: F,
        kind: Kind,
    ) -> Result<ScheduledHandle, ScheduleError<F>>
    where
        F: FnMut() + Send + 'static,
    {
        let name = self.view().name();
        if period.is_zero() {
            return Err(ScheduleError::new(f, ScheduleErrorKind::ZeroPeriod, name));
        }
        let now = Instant::now();
        if let Some(kind) = check_delay(initial, now).or_else(|| check_delay(period, now)) {
            return Err(ScheduleError::new(f, kind, name));
        }
        self.start_periodic(now + initial, None, f, kind)
    }

    fn start_periodic<F>(
        &self,
        due: Instant,
        wall: Option<task::Wall>,
        f: F,
        kind: Kind,
    ) -> Result<ScheduledHandle, ScheduleError<F>>
    where
        F: FnMut() + Send + 'static,
    {
        let view = self.view();
        if view.is_shut() {
            return Err(ScheduleError::new(
                f,
                ScheduleErrorKind::Shutdown,
                view.name(),
            ));
        }
        let slot = shared_slot(f);
        let work: PeriodicWork = {
            let slot = slot.clone();
            Box::new(move || {
                if let Some(f) = slot.lock().as_mut() {
                    f()
                }
            })
        };
        let (ended, value) = Completer::new();
        let task = TimedTask::new(view.clone(), kind, Some(work), Some(ended));
        view.register_timed(Arc::downgrade(&task) as Weak<dyn TimedEntry>);
        let armed = {
            let mut phase = task.phase.lock();
            *phase = Phase::Armed {
                key: None,
                work: None,
            };
            task.arm(&mut phase, due, wall)
        };
        match armed {
            Ok(()) => Ok(ScheduledHandle { task, value }),
            Err(why) => {
                *task.phase.lock() = Phase::Cancelled;
                let kind = ScheduleErrorKind::from_timer(why);
                Err(ScheduleError::new(take_back(&slot), kind, view.name()))
            }
        }
    }
}

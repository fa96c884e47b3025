//! One timed task — delayed, fixed-rate, fixed-delay or cron — from the moment it is scheduled
//! until it is cancelled or, for a delayed task, has been handed to its view: its phase, its
//! ticks and its runs.
//!
//! The timer thread only dispatches: when a timed task falls due it offers one run to the view
//! (through its gate, if throttled) without ever waiting or running it inline. When the view or
//! pool refuses:
//! - a delayed task is offered again from the timer, with the back-off of
//!   `dispatch::offer_or_retry`, until it is accepted or cancelled;
//! - a fixed-rate or cron tick is skipped and counted; the schedule carries on;
//! - a fixed-delay task is re-armed `delay` later.
//!
//! Lock discipline (what keeps the timer from ever waiting on itself): `phase` is held only to
//! read and move the phase and to arm or cancel a timer entry (the timer calls no action while
//! it holds its own lock). It is never held while offering to the view, while a run or a
//! closure is dropped, or while user code runs: offering may drain a throttled view's queue,
//! dropping a queued periodic run takes `phase` to re-arm, and user code may call anything.
//!
//! Who leaves the view for a delayed task that never runs: whoever takes its closure out of
//! [`Phase::Armed`] to give it up — `cancel` (the handle, a shutdown, a timer that shut down
//! while a retry was pending), or the offering side when the view refuses for good or it finds
//! the task cancelled while the closure was out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dispatch::{Attempt, Patience, Redeliver};
use crate::loom::{AtomicBool, AtomicU64, Mutex, Ordering};
use crate::rejected::RejectKind;
use crate::task::{Completer, HandleJob, PlainJob, TaskHandle, drop_contained};
use crate::timer::{Fire, TimerKey, TimerRefusal};
use crate::view::{LogLimiter, TaskScope, TimedEntry, View};

use super::next::next_rate_tick;
#[cfg(feature = "cron")]
use super::next::{NextFire, instant_of};

/// A delayed task's closure, boxed.
pub(crate) type OnceWork = Box<dyn FnOnce() + Send + 'static>;
/// A periodic task's closure, boxed.
pub(crate) type PeriodicWork = Box<dyn FnMut() + Send + 'static>;

/// The nominal wall-clock time of a cron tick (a later tick is computed from it, not from the
/// possibly late moment it ran).
#[cfg(feature = "cron")]
#[derive(Clone, Copy)]
pub(crate) struct Wall(pub(crate) chrono::DateTime<chrono::Utc>);

/// Without cron there are no wall-clock ticks.
#[cfg(not(feature = "cron"))]
#[derive(Clone, Copy)]
pub(crate) enum Wall {}

/// The kind of timed task.
pub(crate) enum Kind {
    Once,
    FixedRate(Duration),
    FixedDelay(Duration),
    #[cfg(feature = "cron")]
    Cron {
        expression: String,
        next: NextFire,
    },
}

impl Kind {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Kind::Once => "delayed",
            Kind::FixedRate(_) => "fixed-rate",
            Kind::FixedDelay(_) => "fixed-delay",
            #[cfg(feature = "cron")]
            Kind::Cron { .. } => "cron",
        }
    }
}

/// Where a timed task is. Moves only under `TimedTask::phase`.
pub(crate) enum Phase {
    /// Waiting for the timer. `key` is its entry (removed on cancel; absent while a tick is being
    /// handled). A delayed task's closure waits here too.
    Armed {
        key: Option<TimerKey>,
        work: Option<OnceWork>,
    },
    /// A delayed task's closure is out of the phase: being offered to the view, or waiting for a
    /// retry from the timer. Its holder gives it up if it finds the phase cancelled.
    Offering,
    /// A delayed task handed to the view: queued in its gate or pool, running, or finished.
    Dispatched(TaskHandle<()>),
    /// Cancelled (by its handle, a shutdown, a timer that refused, or a cron line with no next
    /// time). Final.
    Cancelled,
}

/// Counters a handle reads; shared with the closures that count.
#[derive(Default)]
pub(crate) struct Counts {
    /// Runs started.
    pub(crate) runs: AtomicU64,
    /// Ticks not run: the pool or gate was full, or the previous run was still going.
    pub(crate) skipped: AtomicU64,
    /// Runs that panicked.
    pub(crate) panics: AtomicU64,
}

/// One timed task: its schedule, phase and counters. Shared by its handle, its timer entry and
/// its runs; the view holds it weakly.
pub(crate) struct TimedTask {
    pub(crate) view: Arc<View>,
    pub(crate) kind: Kind,
    pub(crate) phase: Mutex<Phase>,
    /// A periodic run is queued or running (set by a tick, cleared when the run ends or is
    /// dropped unrun): the overlap guard. Only its own swap decides, so `AcqRel` suffices.
    running: AtomicBool,
    /// A periodic task's closure; locked only by its runs, which never overlap.
    work: Mutex<Option<PeriodicWork>>,
    pub(crate) counts: Arc<Counts>,
    skip_log: LogLimiter,
    /// A periodic task's end, published to its handle once the schedule is over (cancelled,
    /// shut down, or out of ticks); `None` for a delayed task, whose handle gets its value from
    /// the closure itself.
    ended: Mutex<Option<Completer<()>>>,
}

/// What one offer of a delayed task came to.
pub(crate) enum Offer {
    /// Handed to the view.
    Dispatched,
    /// The view or pool is full for now; the closure is back in the phase, for a retry.
    Busy,
    /// Given up: the view is shut down, or the task was cancelled while its closure was out.
    Closed,
    /// Nothing to offer: cancelled (or already offered) before this attempt.
    Gone,
}

impl TimedTask {
    /// A delayed task (no periodic closure, no end to publish), or a periodic task whose end is
    /// published through `ended`.
    pub(crate) fn new(
        view: Arc<View>,
        kind: Kind,
        work: Option<PeriodicWork>,
        ended: Option<Completer<()>>,
    ) -> Arc<Self> {
        Arc::new(TimedTask {
            view,
            kind,
            phase: Mutex::new(Phase::Cancelled),
            running: AtomicBool::new(false),
            work: Mutex::new(work),
            counts: Arc::new(Counts::default()),
            skip_log: LogLimiter::default(),
            ended: Mutex::new(ended),
        })
    }

    /// Publishes a periodic task's end to its handle (once; never with `phase` held: a waker of
    /// the handle may run).
    fn end_schedule(&self) {
        let ended = self.ended.lock().take();
        if let Some(ended) = ended {
            ended.complete(Ok(()));
        }
    }

    /// `true` for fixed-rate, fixed-delay and cron tasks.
    pub(crate) fn is_periodic(&self) -> bool {
        !matches!(self.kind, Kind::Once)
    }

    /// Arms the timer at `due` (`wall`: a cron tick's nominal time) and records the entry in
    /// `phase`. Called with `phase` locked.
    pub(crate) fn arm(
        self: &Arc<Self>,
        phase: &mut Phase,
        due: Instant,
        wall: Option<Wall>,
    ) -> Result<(), TimerRefusal> {
        let task = self.clone();
        let action = Box::new(move |fire: Fire| task.fire(fire, due, wall));
        let key = self
            .view
            .timer
            .defer_until(due, !self.is_periodic(), action)
            .map_err(|refused| refused.why)?;
        if let Phase::Armed { key: slot, .. } = phase {
            *slot = Some(key);
        }
        Ok(())
    }

    /// The timer calls: the task is due, or the timer shut down first.
    fn fire(self: &Arc<Self>, fire: Fire, due: Instant, wall: Option<Wall>) {
        match fire {
            Fire::Cancelled => {
                let work = {
                    let mut phase = self.phase.lock();
                    match std::mem::replace(&mut *phase, Phase::Cancelled) {
                        Phase::Armed { work, .. } => work,
                        other => {
                            *phase = other;
                            return;
                        }
                    }
                };
                if self.is_periodic() {
                    self.end_schedule();
                } else {
                    self.view.leave_unrun();
                }
                drop_contained("a delayed task's closure", work);
            }
            Fire::Due if self.is_periodic() => self.tick(due, wall),
            Fire::Due => self.fire_once(),
        }
    }

    /// A delayed task fell due: it is offered to the view, again and again from the timer while
    /// the view is full.
    fn fire_once(self: &Arc<Self>) {
        crate::dispatch::offer_or_retry(&self.view.timer, OneShot { task: self.clone() });
    }

    /// Offers a delayed task's closure to the view once, never waiting or running it here. The
    /// closure leaves [`Phase::Armed`] for the offer and goes back there when the view is full,
    /// so a cancel while the task waits for a retry finds it and ends the task at once.
    pub(crate) fn offer_once(self: &Arc<Self>) -> Offer {
        let work = {
            let mut phase = self.phase.lock();
            match &mut *phase {
                Phase::Armed { key, work: Some(_) } => {
                    *key = None;
                    match std::mem::replace(&mut *phase, Phase::Offering) {
                        Phase::Armed {
                            work: Some(work), ..
                        } => work,
                        _ => unreachable!("matched above"),
                    }
                }
                _ => return Offer::Gone,
            }
        };
        let (job, handle) = HandleJob::with_hooks(work, TaskScope::new(self.view.clone()));
        let (back, kind) = match self.view.offer(job, Patience::Never) {
            Ok(()) => {
                let cancelled_meanwhile = {
                    let mut phase = self.phase.lock();
                    if matches!(*phase, Phase::Offering) {
                        *phase = Phase::Dispatched(handle);
                        None
                    } else {
                        Some(handle)
                    }
                };
                if let Some(handle) = cancelled_meanwhile {
                    // Cancelled while it was being offered: it must not run. If it already
                    // started, it runs to its end like any started task.
                    handle.cancel();
                }
                return Offer::Dispatched;
            }
            Err((job, kind)) => (HandleJob::<OnceWork, (), TaskScope>::recover(job), kind),
        };
        if kind != RejectKind::Shutdown {
            let mut phase = self.phase.lock();
            if matches!(*phase, Phase::Offering) {
                *phase = Phase::Armed {
                    key: None,
                    work: Some(back),
                };
                return Offer::Busy;
            }
        }
        self.give_up(back);
        Offer::Closed
    }

    /// Gives a delayed task up for good, with its closure in hand: cancelled, out of the view.
    fn give_up(&self, work: OnceWork) {
        *self.phase.lock() = Phase::Cancelled;
        self.view.leave_unrun();
        drop_contained("a delayed task's closure", work);
    }

    /// A periodic tick: re-arm (fixed rate, cron), then dispatch one run unless the previous
    /// one is still going or the view refuses.
    fn tick(self: &Arc<Self>, due: Instant, wall: Option<Wall>) {
        let ends = {
            let mut phase = self.phase.lock();
            match &mut *phase {
                Phase::Armed { key, .. } => *key = None,
                _ => return,
            }
            let rearmed = self.rearm(&mut phase, due, wall);
            if !rearmed {
                *phase = Phase::Cancelled;
            }
            !rearmed
        };
        if ends {
            self.end_schedule();
        }
        if self.running.swap(true, Ordering::AcqRel) {
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.view.try_enter() {
            self.running.store(false, Ordering::Release);
            self.cancel();
            return;
        }
        let run = PeriodicRun { task: self.clone() };
        let job = PlainJob::job(move || run.run(), TaskScope::new(self.view.clone()));
        if let Err((job, kind)) = self.view.offer(job, Patience::Never) {
            self.view.leave_unrun();
            if kind == RejectKind::Shutdown {
                self.cancel();
            } else {
                self.counts.skipped.fetch_add(1, Ordering::Relaxed);
                if self.skip_log.allow() {
                    tracing::warn!(
                        scheduler = %self.view.name(),
                        %kind,
                        "a {} task of scheduler '{}' skipped a tick: the pool was {}; similar log entries will be suppressed for the following 5 seconds",
                        self.kind.label(),
                        self.view.name(),
                        kind
                    );
                }
            }
            // Dropping the refused run clears the overlap guard (and re-arms a fixed delay).
            drop(job);
        }
    }

    /// Arms the tick after the one due at `due`; `false` when the schedule ends (the timer
    /// refused, or a cron line has no next time). A fixed delay re-arms when its run ends.
    fn rearm(self: &Arc<Self>, phase: &mut Phase, due: Instant, wall: Option<Wall>) -> bool {
        let _ = wall;
        match &self.kind {
            Kind::Once => unreachable!("a tick is periodic"),
            Kind::FixedRate(period) => match next_rate_tick(due, *period, Instant::now()) {
                Some((next, missed)) => {
                    self.counts.skipped.fetch_add(missed, Ordering::Relaxed);
                    self.arm(phase, next, None).is_ok()
                }
                None => false,
            },
            #[cfg(feature = "cron")]
            Kind::Cron { next, .. } => {
                let (wall_now, now) = (chrono::Utc::now(), Instant::now());
                let after = wall.map_or(wall_now, |w| w.0.max(wall_now));
                match next(after).and_then(|at| instant_of(at, wall_now, now).map(|d| (d, at))) {
                    Some((due, at)) => self.arm(phase, due, Some(Wall(at))).is_ok(),
                    None => false,
                }
            }
            Kind::FixedDelay(_) => true,
        }
    }

    /// Cancels the task; `true` if this call cancelled it. Takes `phase` only to move it; the
    /// timer entry, the view count and the closure are dealt with after.
    pub(crate) fn cancel(&self) -> bool {
        let (entry, work) = {
            let mut phase = self.phase.lock();
            match std::mem::replace(&mut *phase, Phase::Cancelled) {
                Phase::Armed { key, work } => {
                    (key.and_then(|key| self.view.timer.cancel(key)), work)
                }
                Phase::Offering => (None, None),
                Phase::Dispatched(handle) => {
                    if handle.cancel() {
                        (None, None)
                    } else {
                        *phase = Phase::Dispatched(handle);
                        return false;
                    }
                }
                Phase::Cancelled => return false,
            }
        };
        drop(entry);
        if let Some(work) = work {
            self.view.leave_unrun();
            drop_contained("a delayed task's closure", work);
        }
        self.end_schedule();
        true
    }
}

/// The last reference to a timed task may go on any thread (a pool thread after a run, the timer
/// after an action): a periodic closure dropped there is user code, so its `Drop` is contained.
impl Drop for TimedTask {
    fn drop(&mut self) {
        if let Some(work) = self.work.get_mut().take() {
            drop_contained("a periodic task's closure", work);
        }
    }
}

impl TimedEntry for TimedTask {
    fn is_periodic(&self) -> bool {
        TimedTask::is_periodic(self)
    }

    fn cancel(&self) -> bool {
        TimedTask::cancel(self)
    }
}

/// A delayed task on its way to the view, offered again from the timer while the view is full.
pub(crate) struct OneShot {
    pub(crate) task: Arc<TimedTask>,
}

impl Redeliver for OneShot {
    /// A delayed task is an accepted task: a shutdown reports it cancelled.
    const IS_TASK: bool = true;

    fn attempt(self) -> Attempt<Self> {
        match self.task.offer_once() {
            Offer::Busy => Attempt::Busy(self),
            Offer::Dispatched | Offer::Closed | Offer::Gone => Attempt::Taken,
        }
    }

    fn abandon(self) {
        // The timer shut down while a retry was pending: the task ends like a cancelled one.
        self.task.cancel();
    }
}

/// One queued or running periodic run. Dropping it — after the run, during a panic, or unrun
/// when the pool or view discards it — clears the overlap guard and, for a fixed delay, arms the
/// next run.
struct PeriodicRun {
    task: Arc<TimedTask>,
}

impl PeriodicRun {
    fn run(self) {
        self.task.counts.runs.fetch_add(1, Ordering::Relaxed);
        let mut work = self.task.work.lock();
        if let Some(work) = work.as_mut() {
            work();
        }
    }
}

impl Drop for PeriodicRun {
    fn drop(&mut self) {
        let task = &self.task;
        if std::thread::panicking() {
            task.counts.panics.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                scheduler = %task.view.name(),
                "a run of a {} task of scheduler '{}' panicked; the schedule continues",
                task.kind.label(),
                task.view.name()
            );
        }
        task.running.store(false, Ordering::Release);
        if let Kind::FixedDelay(delay) = task.kind {
            let ends = {
                let mut phase = task.phase.lock();
                let armed = !matches!(&*phase, Phase::Armed { .. })
                    || Instant::now()
                        .checked_add(delay)
                        .is_some_and(|due| task.arm(&mut phase, due, None).is_ok());
                if !armed {
                    *phase = Phase::Cancelled;
                }
                !armed
            };
            if ends {
                task.end_schedule();
            }
        }
    }
}

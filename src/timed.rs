//! Delayed, periodic and cron tasks on a [`Scheduler`]: [`Scheduler::schedule`],
//! [`Scheduler::schedule_at_fixed_rate`], [`Scheduler::schedule_with_fixed_delay`],
//! [`Scheduler::schedule_cron`], and the [`ScheduledHandle`] each returns.
//!
//! The service's timer thread only *dispatches*: when a timed task falls due it offers one run to
//! the view (through its gate, if throttled) without ever waiting or running it inline. The run
//! itself happens on a pool thread like any other task of the view. When the pool (or the gate)
//! refuses:
//! - a one-shot delayed task is offered again [`RETRY_DELAY`] (10 ms) later, until it is accepted
//!   or cancelled;
//! - a fixed-rate or cron tick is skipped and counted ([`ScheduledHandle::skipped_ticks`]); the
//!   schedule carries on with the next tick;
//! - a fixed-delay task is re-armed `delay` later.
//!
//! A periodic task never overlaps itself: a tick that falls due while the previous run is still
//! queued or running is skipped (and counted), so a run slower than its period does not pile up.
//! A panic in one periodic run is caught, counted ([`ScheduledHandle::panics`]) and logged, and
//! the schedule continues — one bad message should not stop a nightly campaign; cancel the
//! handle to stop it.
//!
//! A one-shot delayed task is counted among the view's queued tasks from the moment it is
//! scheduled, exactly like a submitted task: [`Scheduler::shutdown`] still lets it run (as in
//! Mule), [`Scheduler::stop`] waits for it within the stop timeout, [`Scheduler::shutdown_now`]
//! cancels it and counts it among the tasks it cancelled, and a service shutdown cancels it and
//! reports it in [`ShutdownReport::cancelled`](crate::pool::ShutdownReport::cancelled). Periodic
//! and cron tasks end at any shutdown of their view or service.

use std::fmt;
#[cfg(feature = "cron")]
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[cfg(feature = "cron")]
use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;

use crate::scheduler::{Patience, RETRY_DELAY, Scheduler, TaskScope, ViewShared, rate_limited};
use crate::task::{HandleJob, PlainJob, TaskHandle};
use crate::timer::{Fire, TimerKey};

/// The longest delay (or period) a timed task accepts: about 100 years. Longer ones are refused
/// with [`ScheduleErrorKind::DelayTooLarge`] rather than overflowing a clock.
///
/// ```
/// use std::time::Duration;
/// use uberpool::{MAX_DELAY, SchedulerService};
///
/// let service = SchedulerService::builder().build()?;
/// let io = service.io();
/// assert!(io.schedule(MAX_DELAY, || ()).is_ok());
/// assert!(io.schedule(MAX_DELAY + Duration::from_secs(1), || ()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

type OnceWork = Box<dyn FnOnce() + Send + 'static>;
type PeriodicWork = Box<dyn FnMut() + Send + 'static>;
#[cfg(feature = "cron")]
type NextFire = Box<dyn Fn(DateTime<Utc>) -> Option<DateTime<Utc>> + Send + Sync + 'static>;

/// The nominal wall-clock time of a cron tick; without the `cron` feature there is none.
#[cfg(feature = "cron")]
type Wall = DateTime<Utc>;
#[cfg(not(feature = "cron"))]
type Wall = std::convert::Infallible;

/// Why a task could not be scheduled.
///
/// ```
/// use std::time::Duration;
/// use uberpool::{ScheduleErrorKind, SchedulerService};
///
/// let service = SchedulerService::builder().build()?;
/// let io = service.io();
/// let refused = io.schedule_at_fixed_rate(Duration::ZERO, Duration::ZERO, || ()).unwrap_err();
/// assert_eq!(refused.kind(), &ScheduleErrorKind::ZeroPeriod);
/// io.shutdown();
/// let refused = io.schedule(Duration::ZERO, || ()).unwrap_err();
/// assert_eq!(refused.kind(), &ScheduleErrorKind::Shutdown);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleErrorKind {
    /// The delay or period is longer than [`MAX_DELAY`].
    #[error("a delay of {delay:?} is longer than the longest uberpool schedules ({max:?})")]
    DelayTooLarge {
        /// The delay asked for.
        delay: Duration,
        /// [`MAX_DELAY`].
        max: Duration,
    },
    /// A periodic task with a zero period or delay.
    #[error("the period of a periodic task must be greater than zero")]
    ZeroPeriod,
    /// The cron expression does not parse.
    #[error(
        "invalid cron expression '{expression}': {reason} (expected 'sec min hour day-of-month month day-of-week [year]', e.g. '0 0 2 * * *')"
    )]
    InvalidCron {
        /// The expression.
        expression: String,
        /// The parser's message.
        reason: String,
    },
    /// The cron expression parses but has no future fire time.
    #[error("cron expression '{expression}' never fires again")]
    NeverFires {
        /// The expression.
        expression: String,
    },
    /// The scheduler or its service is shut down.
    #[error("the scheduler is shut down")]
    Shutdown,
}

/// A task that could not be scheduled: the reason, and the closure, handed back.
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use uberpool::{ScheduleErrorKind, SchedulerService};
///
/// let service = SchedulerService::builder().build()?;
/// let (tx, rx) = mpsc::channel();
/// let refused = service
///     .io()
///     .schedule(Duration::MAX, move || tx.send("sent").unwrap())
///     .unwrap_err();
/// assert!(matches!(refused.kind(), ScheduleErrorKind::DelayTooLarge { .. }));
/// let task = refused.into_inner(); // nothing is lost
/// task();
/// assert_eq!(rx.recv()?, "sent");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ScheduleError<F> {
    kind: ScheduleErrorKind,
    scheduler: String,
    work: F,
}

impl<F> ScheduleError<F> {
    fn new(kind: ScheduleErrorKind, scheduler: &str, work: F) -> Self {
        ScheduleError {
            kind,
            scheduler: scheduler.to_owned(),
            work,
        }
    }

    /// Why the task was refused.
    pub fn kind(&self) -> &ScheduleErrorKind {
        &self.kind
    }

    /// The name of the scheduler that refused it.
    pub fn scheduler(&self) -> &str {
        &self.scheduler
    }

    /// Gives the closure back.
    pub fn into_inner(self) -> F {
        self.work
    }
}

impl<F> fmt::Debug for ScheduleError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduleError")
            .field("kind", &self.kind)
            .field("scheduler", &self.scheduler)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for ScheduleError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot schedule on '{}': {}", self.scheduler, self.kind)
    }
}

impl<F> std::error::Error for ScheduleError<F> {}

/// The kind of timed task.
enum Kind {
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
    fn label(&self) -> &'static str {
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
enum Phase {
    /// Waiting for the timer (`key`, absent only while a tick is being handled). A one-shot
    /// task's closure waits here too.
    Armed {
        key: Option<TimerKey>,
        work: Option<OnceWork>,
    },
    /// A one-shot task handed to the view: queued in its gate or pool, running, or finished.
    Dispatched(TaskHandle<()>),
    /// Cancelled (by its handle, a shutdown, or a cron expression with no next time). Final.
    Cancelled,
}

/// Counters a handle reads; shared with the closures that count.
#[derive(Default)]
struct Counts {
    /// Runs started.
    runs: AtomicU64,
    /// Ticks not run: the pool or gate was full, or the previous run was still going.
    skipped: AtomicU64,
    /// Runs that panicked.
    panics: AtomicU64,
}

/// One timed task: its schedule, phase and counters. Shared by its handle, its timer entry and
/// its runs; the view holds it weakly.
pub(crate) struct TimedTask {
    view: Arc<ViewShared>,
    kind: Kind,
    phase: Mutex<Phase>,
    /// A periodic run is queued or running (set by a tick, cleared when the run ends or is
    /// discarded): the overlap guard.
    running: AtomicBool,
    /// A periodic task's closure; locked only by its (never overlapping) runs.
    work: Mutex<Option<PeriodicWork>>,
    counts: Arc<Counts>,
    last_skip_log: Mutex<Option<Instant>>,
}

impl TimedTask {
    fn new(view: Arc<ViewShared>, kind: Kind, work: Option<PeriodicWork>) -> Arc<Self> {
        Arc::new(TimedTask {
            view,
            kind,
            phase: Mutex::new(Phase::Armed {
                key: None,
                work: None,
            }),
            running: AtomicBool::new(false),
            work: Mutex::new(work),
            counts: Arc::new(Counts::default()),
            last_skip_log: Mutex::new(None),
        })
    }

    /// `true` for fixed-rate, fixed-delay and cron tasks.
    pub(crate) fn is_periodic(&self) -> bool {
        !matches!(self.kind, Kind::Once)
    }

    /// Arms the timer at `due` (`wall`: the nominal wall-clock time of a cron tick). `false` if
    /// the timer is shut down.
    fn arm(self: &Arc<Self>, phase: &mut Phase, due: Instant, wall: Option<Wall>) -> bool {
        let task = self.clone();
        let is_task = !self.is_periodic();
        let action = Box::new(move |fire: Fire| task.fire(fire, due, wall));
        match self.view.timer().defer_until(due, is_task, action) {
            Ok(new_key) => {
                if let Phase::Armed { key, .. } = phase {
                    *key = Some(new_key);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// The timer calls: the task is due, or the timer shut down first.
    fn fire(self: &Arc<Self>, fire: Fire, due: Instant, wall: Option<Wall>) {
        match fire {
            Fire::Cancelled => {
                let mut phase = self.phase.lock();
                if let Phase::Armed { .. } = &*phase {
                    if !self.is_periodic() {
                        self.view.leave_unrun();
                    }
                    *phase = Phase::Cancelled;
                }
            }
            Fire::Due if self.is_periodic() => self.tick(due, wall),
            Fire::Due => drop(self.fire_once()),
        }
    }

    /// Dispatches a one-shot task (from the timer, or from the caller for a zero delay): never
    /// waits, never runs it here. Busy: again [`RETRY_DELAY`] later. Returns the closure when
    /// the pool is shut down (the task is then cancelled).
    fn fire_once(self: &Arc<Self>) -> Option<OnceWork> {
        let mut phase = self.phase.lock();
        let Phase::Armed { key, work } = &mut *phase else {
            return None; // cancelled meanwhile
        };
        *key = None;
        let work = work
            .take()
            .expect("an armed delayed task holds its closure");
        let (job, handle) = HandleJob::with_hooks(work, TaskScope::new(self.view.clone()));
        match self.view.offer(job, Patience::Never) {
            Ok(()) => *phase = Phase::Dispatched(handle),
            Err((job, crate::RejectKind::Shutdown)) => {
                self.view.leave_unrun();
                *phase = Phase::Cancelled;
                return Some(HandleJob::<OnceWork, (), TaskScope>::recover(job));
            }
            Err((job, _)) => {
                let work = HandleJob::<OnceWork, (), TaskScope>::recover(job);
                *phase = Phase::Armed {
                    key: None,
                    work: Some(work),
                };
                let retry_at = Instant::now() + RETRY_DELAY;
                if !self.arm(&mut phase, retry_at, None) {
                    self.view.leave_unrun();
                    *phase = Phase::Cancelled;
                }
            }
        }
        None
    }

    /// A periodic tick: re-arm (fixed rate, cron), then dispatch one run unless the previous
    /// one is still going or the pool refuses.
    // `wall` is read by cron ticks only.
    #[cfg_attr(not(feature = "cron"), allow(unused_variables))]
    fn tick(self: &Arc<Self>, due: Instant, wall: Option<Wall>) {
        let mut phase = self.phase.lock();
        if !matches!(&*phase, Phase::Armed { .. }) {
            return;
        }
        if let Phase::Armed { key, .. } = &mut *phase {
            *key = None;
        }
        let rearmed = match &self.kind {
            Kind::Once => unreachable!("a tick is periodic"),
            Kind::FixedRate(period) => {
                let (next, missed) = next_rate_tick(due, *period, Instant::now());
                self.counts.skipped.fetch_add(missed, Ordering::Relaxed);
                self.arm(&mut phase, next, None)
            }
            #[cfg(feature = "cron")]
            Kind::Cron { next, .. } => {
                let after = wall.map_or_else(Utc::now, |w| w.max(Utc::now()));
                match next(after).and_then(|at| instant_of(at).map(|due| (due, at))) {
                    Some((due, at)) => self.arm(&mut phase, due, Some(at)),
                    None => false,
                }
            }
            Kind::FixedDelay(_) => true,
        };
        if !rearmed {
            *phase = Phase::Cancelled;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.view.try_enter() {
            self.running.store(false, Ordering::Release);
            self.cancel_locked(&mut phase);
            return;
        }
        let run = PeriodicRun { task: self.clone() };
        let job = PlainJob::job(move || run.run(), TaskScope::new(self.view.clone()));
        if let Err((job, kind)) = self.view.offer(job, Patience::Never) {
            self.view.leave_unrun();
            // Dropping the refused run clears `running` (and re-arms a fixed delay); release
            // the lock first, as that re-arming takes it.
            drop(phase);
            if kind == crate::RejectKind::Shutdown {
                self.cancel();
                drop(job);
                return;
            }
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            if rate_limited(&self.last_skip_log) {
                tracing::warn!(
                    scheduler = %self.view.name(),
                    %kind,
                    "a {} task of scheduler '{}' skipped a tick: the pool was {}; similar log entries will be suppressed for the following 5 seconds",
                    self.kind.label(),
                    self.view.name(),
                    kind
                );
            }
            drop(job);
        }
    }

    /// Cancels with the phase lock held; `true` if this call cancelled it.
    fn cancel_locked(&self, phase: &mut Phase) -> bool {
        match std::mem::replace(phase, Phase::Cancelled) {
            Phase::Armed { key, work } => {
                if let Some(key) = key {
                    drop(self.view.timer().cancel(key));
                }
                if !self.is_periodic() {
                    drop(work);
                    self.view.leave_unrun();
                }
                true
            }
            Phase::Dispatched(handle) => {
                if handle.cancel() {
                    true
                } else {
                    *phase = Phase::Dispatched(handle);
                    false
                }
            }
            Phase::Cancelled => false,
        }
    }

    /// See [`ScheduledHandle::cancel`].
    pub(crate) fn cancel(&self) -> bool {
        let mut phase = self.phase.lock();
        self.cancel_locked(&mut phase)
    }
}

/// The next fixed-rate tick after the one due at `due`, skipping ticks already in the past
/// (counted as missed) so that a late timer or a slow run never causes a burst of catch-up runs.
fn next_rate_tick(due: Instant, period: Duration, now: Instant) -> (Instant, u64) {
    let next = due + period;
    if next > now {
        return (next, 0);
    }
    let behind = now.duration_since(next).as_nanos();
    let missed = behind / period.as_nanos() + 1;
    let missed_u32 = u32::try_from(missed).unwrap_or(u32::MAX);
    (next + period * missed_u32, missed_u32 as u64)
}

/// The next fire time of `schedule` read in `zone`, strictly after a UTC instant.
#[cfg(feature = "cron")]
fn cron_next<Z>(schedule: cron::Schedule, zone: Z) -> NextFire
where
    Z: TimeZone + Send + Sync + 'static,
    Z::Offset: Send + Sync,
{
    Box::new(move |after: DateTime<Utc>| {
        schedule
            .after(&after.with_timezone(&zone))
            .next()
            .map(|at| at.with_timezone(&Utc))
    })
}

/// The monotonic instant of a wall-clock time (now, if it is in the past).
#[cfg(feature = "cron")]
fn instant_of(at: DateTime<Utc>) -> Option<Instant> {
    let delay = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    if delay > MAX_DELAY {
        return None;
    }
    Instant::now().checked_add(delay)
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
            let mut phase = task.phase.lock();
            if matches!(&*phase, Phase::Armed { .. })
                && !task.arm(&mut phase, Instant::now() + delay, None)
            {
                *phase = Phase::Cancelled;
            }
        }
    }
}

/// A delayed, periodic or cron task: cancel it, see whether it is done, read its counters.
///
/// Cheap to clone; clones observe the same task. Dropping every handle does not cancel the task
/// (a periodic task then runs until its scheduler or service shuts down).
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use uberpool::SchedulerService;
///
/// let service = SchedulerService::builder().build()?;
/// let (tx, rx) = mpsc::channel();
/// let ticker = service.cpu_light().schedule_at_fixed_rate(
///     Duration::ZERO,
///     Duration::from_millis(5),
///     move || { let _ = tx.send(()); },
/// )?;
/// rx.recv()?;
/// rx.recv()?;
/// assert!(ticker.cancel());
/// assert!(ticker.is_cancelled());
/// assert!(ticker.runs() >= 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ScheduledHandle {
    task: Arc<TimedTask>,
}

impl ScheduledHandle {
    /// Cancels the task: a delayed task that has not started will not run; a periodic or cron
    /// task runs no more (a run in progress finishes). Returns `true` if this call cancelled it,
    /// `false` if it was already cancelled, or (a delayed task) already started or finished.
    ///
    /// ```
    /// use std::time::Duration;
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let reminder = service.io().schedule(Duration::from_secs(600), || unreachable!())?;
    /// assert!(reminder.cancel());
    /// assert!(!reminder.cancel());
    /// assert!(reminder.is_cancelled() && reminder.is_done());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel(&self) -> bool {
        self.task.cancel()
    }

    /// `true` once the task was cancelled (by [`cancel`](Self::cancel), a shutdown, or a cron
    /// expression with no next fire time).
    pub fn is_cancelled(&self) -> bool {
        match &*self.task.phase.lock() {
            Phase::Cancelled => true,
            // Finished without its closure having started: cancelled in the pool or the gate
            // (a shutdown). The run count is raised before the closure starts, so it is final
            // once the handle reports the task finished.
            Phase::Dispatched(handle) => handle.is_finished() && self.runs() == 0,
            Phase::Armed { .. } => false,
        }
    }

    /// `true` once the task will not run again: cancelled, or a delayed task that finished.
    ///
    /// ```
    /// use std::time::Duration;
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let once = service.cpu_light().schedule(Duration::ZERO, || ())?;
    /// while !once.is_done() {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(once.runs(), 1);
    /// assert!(!once.is_cancelled());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_done(&self) -> bool {
        match &*self.task.phase.lock() {
            Phase::Cancelled => true,
            Phase::Dispatched(handle) => handle.is_finished(),
            Phase::Armed { .. } => false,
        }
    }

    /// Runs started so far.
    pub fn runs(&self) -> u64 {
        self.task.counts.runs.load(Ordering::Relaxed)
    }

    /// Periodic ticks that did not run: for fixed-rate and cron tasks, the pool or throttle was
    /// full, the previous run was still going, or the timer fell more than a period behind; for
    /// fixed-delay tasks, attempts the pool or throttle refused (each re-armed `delay` later).
    ///
    /// ```
    /// use std::time::Duration;
    /// use uberpool::{SchedulerConfig, SchedulerService, TaskClass};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// // A view that admits one task at a time, kept busy by a slow first run.
    /// let single = service.scheduler_with(
    ///     TaskClass::Io,
    ///     SchedulerConfig::new().max_concurrent_tasks(1),
    /// )?;
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let busy = single.submit(move || { rx.recv().ok(); })?;
    /// let ticker = single.schedule_at_fixed_rate(Duration::ZERO, Duration::from_millis(1), || ())?;
    /// while ticker.skipped_ticks() < 2 {
    ///     std::thread::yield_now(); // every tick meets the full view and is skipped
    /// }
    /// assert_eq!(ticker.runs(), 0);
    /// ticker.cancel();
    /// tx.send(())?;
    /// busy.join()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn skipped_ticks(&self) -> u64 {
        self.task.counts.skipped.load(Ordering::Relaxed)
    }

    /// Periodic runs that panicked (each was logged; the schedule went on).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let (tx, rx) = mpsc::channel();
    /// let mut first = true;
    /// let ticker = service.cpu_light().schedule_at_fixed_rate(
    ///     Duration::ZERO,
    ///     Duration::from_millis(1),
    ///     move || {
    ///         if std::mem::take(&mut first) {
    ///             panic!("malformed address");
    ///         }
    ///         let _ = tx.send(());
    ///     },
    /// )?;
    /// rx.recv()?; // the schedule went on after the panic
    /// assert_eq!(ticker.panics(), 1);
    /// ticker.cancel();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn panics(&self) -> u64 {
        self.task.counts.panics.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for ScheduledHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.task.phase.lock() {
            Phase::Armed { .. } => "armed",
            Phase::Dispatched(handle) if handle.is_finished() && self.runs() == 0 => "cancelled",
            Phase::Dispatched(handle) if handle.is_finished() => "finished",
            Phase::Dispatched(_) => "dispatched",
            Phase::Cancelled => "cancelled",
        };
        let mut out = f.debug_struct("ScheduledHandle");
        out.field("scheduler", &self.task.view.name())
            .field("kind", &self.task.kind.label());
        #[cfg(feature = "cron")]
        if let Kind::Cron { expression, .. } = &self.task.kind {
            out.field("expression", expression);
        }
        out.field("state", &state)
            .field("runs", &self.runs())
            .field("skipped_ticks", &self.skipped_ticks())
            .field("panics", &self.panics())
            .finish()
    }
}

/// `Some(error kind)` if `delay` is too long to schedule.
fn check_delay(delay: Duration) -> Option<ScheduleErrorKind> {
    (delay > MAX_DELAY || Instant::now().checked_add(delay).is_none()).then_some(
        ScheduleErrorKind::DelayTooLarge {
            delay,
            max: MAX_DELAY,
        },
    )
}

impl Scheduler {
    /// Runs `f` once on this scheduler after `delay`.
    ///
    /// The service's timer thread offers `f` to the pool when it falls due; if the pool (or
    /// this scheduler's throttle) is full, it tries again every 10 ms until it is accepted. A
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
    pub fn schedule<F>(&self, delay: Duration, f: F) -> Result<ScheduledHandle, ScheduleError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let view = self.view();
        if let Some(kind) = check_delay(delay) {
            return Err(ScheduleError::new(kind, view.name(), f));
        }
        if view.is_shut() || !view.try_enter() {
            return Err(ScheduleError::new(
                ScheduleErrorKind::Shutdown,
                view.name(),
                f,
            ));
        }
        let task = TimedTask::new(view.clone(), Kind::Once, None);
        // `f` travels boxed inside the task; it comes back out of the box (below) only on a
        // refusal, through a slot shared with the boxed closure.
        let slot = Arc::new(Mutex::new(Some(f)));
        let boxed: OnceWork = {
            let slot = slot.clone();
            let counts = task.counts.clone();
            Box::new(move || {
                let f = slot.lock().take();
                if let Some(f) = f {
                    counts.runs.fetch_add(1, Ordering::Relaxed);
                    f()
                }
            })
        };
        view.register_timed(Arc::downgrade(&task));
        let mut phase = task.phase.lock();
        *phase = Phase::Armed {
            key: None,
            work: Some(boxed),
        };
        let refused = if delay.is_zero() {
            drop(phase);
            task.fire_once().is_some()
        } else if !task.arm(&mut phase, Instant::now() + delay, None) {
            *phase = Phase::Cancelled;
            drop(phase);
            view.leave_unrun();
            true
        } else {
            drop(phase);
            false
        };
        if refused {
            let f = slot.lock().take().expect("the closure has not run");
            return Err(ScheduleError::new(
                ScheduleErrorKind::Shutdown,
                view.name(),
                f,
            ));
        }
        Ok(ScheduledHandle { task })
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

    /// Runs `f` at the times a cron expression names, in the local time zone (with the `cron`
    /// feature, on by default).
    ///
    /// The expression has a seconds field: `sec min hour day-of-month month day-of-week
    /// [year]`, as the [`cron`](https://docs.rs/cron) crate reads it (`*`, lists, ranges, steps,
    /// names such as `Mon` or `Jan`, and `?`). `"0 0 2 * * *"` is every night at 02:00;
    /// `"0/2 * * * * ?"` every two seconds. Ticks follow the rules of
    /// [`schedule_at_fixed_rate`](Self::schedule_at_fixed_rate): never overlapping, skipped
    /// (and counted) when the pool is full. [`schedule_cron_in`](Self::schedule_cron_in) picks
    /// another time zone.
    ///
    /// ```
    /// use uberpool::{ScheduleErrorKind, SchedulerService};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let campaign = service.cpu_intensive().schedule_cron("0 0 2 * * *", || {
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
    /// [`uberpool::chrono`](crate::chrono), so the versions match).
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
        Z: TimeZone + Send + Sync + 'static,
        Z::Offset: Send + Sync,
        F: FnMut() + Send + 'static,
    {
        let view = self.view();
        let schedule = match cron::Schedule::from_str(expression) {
            Ok(schedule) => schedule,
            Err(error) => {
                return Err(ScheduleError::new(
                    ScheduleErrorKind::InvalidCron {
                        expression: expression.to_owned(),
                        reason: error.to_string(),
                    },
                    view.name(),
                    f,
                ));
            }
        };
        let next = cron_next(schedule, zone);
        let Some((due, wall)) = next(Utc::now()).and_then(|at| instant_of(at).map(|d| (d, at)))
        else {
            return Err(ScheduleError::new(
                ScheduleErrorKind::NeverFires {
                    expression: expression.to_owned(),
                },
                view.name(),
                f,
            ));
        };
        let kind = Kind::Cron {
            expression: expression.to_owned(),
            next,
        };
        self.start_periodic(due, Some(wall), f, kind)
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
            return Err(ScheduleError::new(ScheduleErrorKind::ZeroPeriod, name, f));
        }
        if let Some(kind) = check_delay(initial).or_else(|| check_delay(period)) {
            return Err(ScheduleError::new(kind, name, f));
        }
        self.start_periodic(Instant::now() + initial, None, f, kind)
    }

    fn start_periodic<F>(
        &self,
        due: Instant,
        wall: Option<Wall>,
        f: F,
        kind: Kind,
    ) -> Result<ScheduledHandle, ScheduleError<F>>
    where
        F: FnMut() + Send + 'static,
    {
        let view = self.view();
        if view.is_shut() {
            return Err(ScheduleError::new(
                ScheduleErrorKind::Shutdown,
                view.name(),
                f,
            ));
        }
        // As for `schedule`: `f` comes back out of the shared slot if the timer refuses.
        let slot = Arc::new(Mutex::new(Some(f)));
        let work: PeriodicWork = {
            let slot = slot.clone();
            Box::new(move || {
                if let Some(f) = slot.lock().as_mut() {
                    f()
                }
            })
        };
        let task = TimedTask::new(view.clone(), kind, Some(work));
        view.register_timed(Arc::downgrade(&task));
        let mut phase = task.phase.lock();
        if !task.arm(&mut phase, due, wall) {
            *phase = Phase::Cancelled;
            drop(phase);
            let f = slot
                .lock()
                .take()
                .expect("a periodic closure not yet armed");
            return Err(ScheduleError::new(
                ScheduleErrorKind::Shutdown,
                view.name(),
                f,
            ));
        }
        drop(phase);
        Ok(ScheduledHandle { task })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_late_fixed_rate_tick_skips_to_the_next_future_tick() {
        let start = Instant::now();
        let period = Duration::from_millis(100);
        assert_eq!(next_rate_tick(start, period, start), (start + period, 0));
        let now = start + Duration::from_millis(350);
        let (next, missed) = next_rate_tick(start, period, now);
        assert_eq!(next, start + Duration::from_millis(400));
        assert_eq!(missed, 3);
        assert!(next > now);
    }

    #[cfg(feature = "cron")]
    #[test]
    fn a_wall_clock_time_in_the_past_is_due_now() {
        let before = Instant::now();
        let due = instant_of(Utc::now() - chrono::Duration::seconds(5)).unwrap();
        assert!(due >= before && due <= Instant::now());
    }

    #[cfg(feature = "cron")]
    #[test]
    fn the_time_zone_reaches_the_cron_schedule() {
        let at = |h, m| Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0).unwrap();
        let nightly = || cron::Schedule::from_str("0 0 2 * * *").unwrap();
        let utc = cron_next(nightly(), Utc);
        assert_eq!(utc(at(0, 0)), Some(at(2, 0)));
        // 02:00 at UTC+03:00 is 23:00 UTC the day before.
        let moscow = cron_next(nightly(), chrono::FixedOffset::east_opt(3 * 3600).unwrap());
        assert_eq!(moscow(at(0, 0)), Some(at(23, 0)));
        let new_york = cron_next(nightly(), chrono::FixedOffset::west_opt(5 * 3600).unwrap());
        assert_eq!(new_york(at(0, 0)), Some(at(7, 0)));
    }

    #[cfg(feature = "cron")]
    #[test]
    fn cron_next_fire_is_strictly_after_the_given_time() {
        let schedule = cron::Schedule::from_str("0/2 * * * * ?").unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 2).unwrap();
        let next = schedule.after(&at).next().unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 4).unwrap());
    }
}

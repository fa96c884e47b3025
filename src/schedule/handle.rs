//! [`ScheduledHandle`]: what the caller keeps of a delayed, periodic or cron task — cancel it,
//! see whether it is done, read its counters, wait for its value or its end.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::loom::Ordering;
use crate::task::{TaskError, TaskHandle};

#[cfg(feature = "cron")]
use super::task::Kind;
use super::task::{Phase, TimedTask};

/// A delayed, periodic or cron task: cancel it, see whether it is done, read its counters, and
/// wait for it — a delayed task's value (`T`), or a periodic task's end.
///
/// Dropping the handle does not cancel the task (a periodic task then runs until its scheduler
/// or service shuts down). Awaiting it, or [`join`](Self::join), waits without cancelling.
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
#[must_use = "dropping the handle does not cancel the task; keep it to cancel or observe it"]
pub struct ScheduledHandle<T = ()> {
    pub(crate) task: Arc<TimedTask>,
    /// A delayed task's value, or a periodic task's end.
    pub(crate) value: TaskHandle<T>,
}

impl<T> ScheduledHandle<T> {
    /// Waits for the task: a delayed task's value once it has run (or why there is none:
    /// [`TaskError::Cancelled`] if it was cancelled or shut down before it started,
    /// [`TaskError::Panicked`] if it panicked); for a periodic or cron task, `Ok(())` once the
    /// schedule has ended — cancelled, or its scheduler or service shut down.
    ///
    /// ```
    /// use std::time::Duration;
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let bounced = service.io().schedule(Duration::from_millis(5), || 3)?; // poll the mailbox
    /// assert_eq!(bounced.join()?, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join(self) -> Result<T, TaskError> {
        self.value.join()
    }

    /// Like [`join`](Self::join), waiting at most `timeout`; the handle comes back when the task
    /// is not done by then.
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, TaskError>, Self> {
        let ScheduledHandle { task, value } = self;
        value
            .join_timeout(timeout)
            .map_err(|value| ScheduledHandle { task, value })
    }

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
            Phase::Armed { .. } | Phase::Offering => false,
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
            Phase::Armed { .. } | Phase::Offering => false,
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

/// Awaiting the handle is [`join`](ScheduledHandle::join) without blocking the executor thread.
impl<T> Future for ScheduledHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.value).poll(cx)
    }
}

impl<T> fmt::Debug for ScheduledHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.task.phase.lock() {
            Phase::Armed { .. } => "armed",
            Phase::Offering => "offering",
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

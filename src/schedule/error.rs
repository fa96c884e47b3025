//! Why a delayed, periodic or cron task could not be scheduled: [`ScheduleErrorKind`], carried
//! with the refused closure in a [`ScheduleError`] — a [`Rejected`] whose reason is a
//! `ScheduleErrorKind`.

use std::fmt;
use std::time::Duration;

use crate::rejected::Rejected;

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
    /// The delay or period is longer than [`MAX_DELAY`](crate::MAX_DELAY).
    #[error("a delay of {delay:?} is longer than the longest uberpool schedules ({max:?})")]
    DelayTooLarge {
        /// The delay asked for.
        delay: Duration,
        /// [`MAX_DELAY`](crate::MAX_DELAY).
        max: Duration,
    },
    /// A periodic task with a zero period or delay.
    #[error("the period of a periodic task must be greater than zero")]
    ZeroPeriod,
    /// The cron expression does not parse.
    #[error(
        "invalid cron expression '{expression}': {reason} (expected 'min hour day-of-month month day-of-week', or with seconds first: 'sec min hour day-of-month month day-of-week [year]')"
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
    /// The service's timer thread could not be started (the operating system refused a
    /// thread): nothing can be timed until it can.
    #[error("the service's timer thread could not be started")]
    TimerUnavailable,
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
pub type ScheduleError<F> = Rejected<F, ScheduleErrorKind>;

impl<F> Rejected<F, ScheduleErrorKind> {
    /// Why the task was refused.
    pub fn kind(&self) -> &ScheduleErrorKind {
        self.reason()
    }
}

impl<F> fmt::Display for Rejected<F, ScheduleErrorKind> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot schedule on '{}': {}",
            self.target(),
            self.reason()
        )
    }
}

impl<F> std::error::Error for Rejected<F, ScheduleErrorKind> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.reason())
    }
}

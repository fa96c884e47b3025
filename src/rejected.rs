//! [`Rejected`]: work that a pool or scheduler refused, handed back to the caller.
//!
//! uberpool never drops refused work: every refusal returns the closure (or future, or flow
//! input) inside a `Rejected`, together with the reason. The reason's type is a parameter so
//! that refusals with richer reasons — a timed task's [`ScheduleError`](crate::ScheduleError) —
//! are the same type with another reason, not a copy of it.

use std::fmt;
use std::sync::Mutex;

/// Why work was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectKind {
    /// The target pool is at its maximum size and its queue is full.
    Busy,
    /// A throttled scheduler is at its concurrency limit (or its own queue is full).
    Throttled,
    /// The pool, scheduler or service is shutting down or shut down.
    Shutdown,
}

impl fmt::Display for RejectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectKind::Busy => "busy",
            RejectKind::Throttled => "throttled",
            RejectKind::Shutdown => "shut down",
        })
    }
}

/// Work that was not accepted, returned to the caller with the reason.
///
/// `F` is whatever was offered: a closure, a future or a flow input. `K` is the reason:
/// [`RejectKind`] for submissions, [`ScheduleErrorKind`](crate::ScheduleErrorKind) for timed
/// tasks. Nothing is lost: [`into_inner`](Rejected::into_inner) gives the work back so the
/// caller can retry, run it itself, or report the failure.
///
/// A `Rejected` is `Send + Sync` whenever `F` is `Send` (the work is only ever handed back by
/// value, never shared), so `?` turns it into `anyhow::Error` or
/// `Box<dyn Error + Send + Sync>` whatever the closure captures:
///
/// ```
/// fn send(service: &uberpool::SchedulerService) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
///     let counter = std::cell::Cell::new(7); // Send, not Sync
///     let handle = service.io().submit(move || counter.get())?;
///     Ok(handle.join()?)
/// }
/// let service = uberpool::SchedulerService::builder().build()?;
/// assert_eq!(send(&service)?, 7);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
///
/// Taking the work back:
///
/// ```
/// use uberpool::pool::ThreadPool;
/// use uberpool::RejectKind;
///
/// let pool = ThreadPool::builder().core_size(1).max_size(1).build().unwrap();
/// pool.shutdown();
/// let refused = pool.execute(|| println!("never runs")).unwrap_err();
/// assert_eq!(refused.kind(), RejectKind::Shutdown);
/// let task = refused.into_inner(); // the closure is back
/// task();
/// ```
#[must_use = "the refused work is inside: take it back with `into_inner`, or report the error"]
pub struct Rejected<F, K = RejectKind> {
    /// Boxed, so that a `Result` carrying a refusal stays small whatever the work's size (the box
    /// is made only on the refusal path); behind a mutex that is never locked, which makes the
    /// refusal `Sync` for any `Send` work, as error types need, without ever sharing the work.
    work: Box<Mutex<F>>,
    kind: K,
    target: String,
}

impl<F, K> Rejected<F, K> {
    pub(crate) fn new(work: F, kind: K, target: impl Into<String>) -> Self {
        Self {
            work: Box::new(Mutex::new(work)),
            kind,
            target: target.into(),
        }
    }

    /// The name of the pool, scheduler or flow that refused the work.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Gives the refused work back.
    pub fn into_inner(self) -> F {
        self.work
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The reason, whatever its type.
    pub(crate) fn reason(&self) -> &K {
        &self.kind
    }
}

impl<F> Rejected<F> {
    /// Why the work was refused.
    pub fn kind(&self) -> RejectKind {
        self.kind
    }
}

impl<F, K: fmt::Debug> fmt::Debug for Rejected<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("kind", &self.kind)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for Rejected<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RejectKind::Busy => write!(f, "task rejected: '{}' is busy", self.target),
            RejectKind::Throttled => write!(f, "task rejected: '{}' is throttled", self.target),
            RejectKind::Shutdown => write!(f, "task rejected: '{}' is shut down", self.target),
        }
    }
}

impl<F> std::error::Error for Rejected<F> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}

    #[test]
    fn a_refusal_of_send_work_is_send_and_sync() {
        let cell = std::cell::Cell::new(1);
        let refused = Rejected::new(move || cell.get(), RejectKind::Busy, "io");
        assert_send_sync(&refused);
        assert_eq!(refused.into_inner()(), 1);
    }

    #[test]
    fn display_names_the_target_and_the_reason() {
        let refused = Rejected::new((), RejectKind::Throttled, "smtp");
        assert_eq!(refused.to_string(), "task rejected: 'smtp' is throttled");
        assert_eq!(refused.target(), "smtp");
    }
}

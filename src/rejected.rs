//! [`Rejected`]: work that a pool or scheduler refused, handed back to the caller.
//!
//! uberpool never drops refused work: every refusal returns the closure (or future, or flow
//! input) inside a `Rejected`, together with the reason.

use std::fmt;

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
/// `F` is whatever was offered: a closure, a future or a flow input. Nothing is lost:
/// [`into_inner`](Rejected::into_inner) gives it back so the caller can retry, run it itself, or
/// report the failure.
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
pub struct Rejected<F> {
    work: F,
    kind: RejectKind,
    target: String,
}

impl<F> Rejected<F> {
    pub(crate) fn new(work: F, kind: RejectKind, target: impl Into<String>) -> Self {
        Self {
            work,
            kind,
            target: target.into(),
        }
    }

    /// Why the work was refused.
    pub fn kind(&self) -> RejectKind {
        self.kind
    }

    /// The name of the pool or scheduler that refused the work.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Gives the refused work back.
    pub fn into_inner(self) -> F {
        self.work
    }
}

impl<F> fmt::Debug for Rejected<F> {
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

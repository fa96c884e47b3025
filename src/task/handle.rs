//! The caller's side of a task ([`TaskHandle`]) and how an outcome reaches it through the cell.
//!
//! The party that claimed the task (`state.rs`) publishes its outcome with
//! [`TaskCell::publish`]: under the slot lock it stores the outcome, sets `COMPLETE`, notifies
//! joiners and takes the waker of an awaiting future, which it wakes after the lock is released.
//! The handle takes the outcome under the same lock and sets `CLOSED` as it does. A handle that
//! finds no outcome waits (or registers its waker) — whatever the claim bits say, because a
//! canceller claims the task before it publishes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::raw::{CellRef, TaskCell};
use super::{TaskError, contain};

/// What the cell's slot lock protects.
pub(crate) struct Slot<T> {
    /// The published outcome, until the handle takes it. Some only while the word says
    /// `COMPLETE` and not `CLOSED`.
    pub(crate) outcome: Option<Result<T, TaskError>>,
    /// The waker of the future awaiting the handle, if it was polled before the outcome came.
    pub(crate) waker: Option<Waker>,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Self {
        Slot {
            outcome: None,
            waker: None,
        }
    }
}

impl<T> TaskCell<T> {
    /// Publishes `outcome`. The caller claimed the task (to run it, or to cancel it) and has
    /// not published before. A panicking waker is contained: the outcome is already in place.
    pub(crate) fn publish(&self, outcome: Result<T, TaskError>) {
        let waker = {
            let mut slot = self.slot.lock();
            slot.outcome = Some(outcome);
            self.state.complete();
            self.done.notify_all();
            slot.waker.take()
        };
        if let Some(waker) = waker {
            contain("a task handle's waker", || waker.wake());
        }
    }

    /// Claims the task to cancel it and publishes `Cancelled`; `true` if this call won.
    pub(crate) fn try_cancel(&self) -> bool {
        if self.state.claim_cancel() {
            self.publish(Err(TaskError::Cancelled));
            true
        } else {
            false
        }
    }
}

/// The caller's side of a submitted task: wait for its value, cancel it, or `.await` it.
///
/// Dropping a handle detaches the task: it still runs, and its value is dropped.
///
/// ```
/// use uberpool::pool::ThreadPool;
///
/// let pool = ThreadPool::builder().core_size(2).queue_size(16).build().unwrap();
/// let handle = pool.submit(|| 6 * 7).unwrap();
/// assert_eq!(handle.join(), Ok(42));
/// ```
#[must_use = "dropping the handle does not cancel the task; `execute` submits without one"]
pub struct TaskHandle<T> {
    cell: CellRef<T>,
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(cell: CellRef<T>) -> Self {
        TaskHandle { cell }
    }

    /// Waits for the task and returns its value, or why there is none.
    ///
    /// # Panics
    /// If the handle's future already returned the outcome (`Ready`).
    pub fn join(self) -> Result<T, TaskError> {
        let mut slot = self.cell.slot.lock();
        loop {
            if let Some(outcome) = self.take(&mut slot) {
                return outcome;
            }
            self.cell.done.wait(&mut slot);
        }
    }

    /// Waits at most `timeout` for the task.
    ///
    /// Returns `Ok(outcome)` when the task finished (or was cancelled) in time, and gives the
    /// handle back as `Err(handle)` when it did not, so the caller can wait again or cancel.
    /// Any `timeout` is accepted: one too long for the clock waits without a deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use uberpool::pool::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().core_size(1).queue_size(4).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let handle = pool.submit(move || rx.recv().is_ok()).unwrap();
    /// let handle = handle.join_timeout(Duration::from_millis(1)).unwrap_err(); // still blocked
    /// tx.send(()).unwrap();
    /// assert_eq!(handle.join_timeout(Duration::from_secs(30)).ok(), Some(Ok(true)));
    /// ```
    ///
    /// # Panics
    /// If the handle's future already returned the outcome (`Ready`).
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, TaskError>, TaskHandle<T>> {
        let deadline = Instant::now().checked_add(timeout);
        {
            let mut slot = self.cell.slot.lock();
            loop {
                if let Some(outcome) = self.take(&mut slot) {
                    return Ok(outcome);
                }
                let left = match deadline {
                    Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                    None => Duration::from_secs(3600),
                };
                if left.is_zero() {
                    break;
                }
                crate::loom::wait_timeout(&self.cell.done, &mut slot, left);
            }
        }
        Err(self)
    }

    /// Takes the published outcome, if there is one, and closes the cell. Called with the slot
    /// lock held.
    fn take(&self, slot: &mut Slot<T>) -> Option<Result<T, TaskError>> {
        let outcome = slot.outcome.take();
        if outcome.is_some() {
            self.cell.state.close();
        } else {
            assert!(
                !self.cell.state.load().is_closed(),
                "TaskHandle used after its future returned Ready"
            );
        }
        outcome
    }

    /// `true` once the task has finished running or was cancelled: [`join`](Self::join) will
    /// not block.
    pub fn is_finished(&self) -> bool {
        self.cell.state.load().is_complete()
    }

    /// Cancels the task if it has not started; `true` if it will never run (cancelled by this
    /// call, or before it by the pool).
    ///
    /// A task that already started cannot be stopped; `cancel` then returns `false` and the
    /// task runs to its end.
    pub fn cancel(&self) -> bool {
        self.cell.try_cancel() || self.cell.state.load().is_cancelled()
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("state", &self.cell.state.load().describe())
            .finish()
    }
}

/// A handle is a pointer to its task's cell: moving it never moves the task, whatever `T` is.
impl<T> Unpin for TaskHandle<T> {}

/// Awaiting a handle waits for the task without blocking the executor thread.
///
/// The pool thread that finishes the task wakes the awaiting future's waker (a waker that panics
/// there is contained; the outcome is in place for the next poll). Polling again after the
/// future returned `Ready` panics, like other completed futures.
impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.cell.slot.lock();
        if let Some(outcome) = self.take(&mut slot) {
            return Poll::Ready(outcome);
        }
        // Claimed or not, no outcome yet: its publisher takes this waker under the lock.
        match &slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::{Completer, HandleJob};
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A canceller claims the task before it publishes: a poll in between waits, and the
    /// publication wakes it (this poll used to panic "polled after it returned Ready").
    #[test]
    fn a_poll_between_a_cancel_claim_and_its_outcome_waits() {
        let (completer, handle) = Completer::<u8>::new();
        let cell = completer.cell.as_ref().unwrap();
        assert!(cell.state.claim_cancel());
        let wakes = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut handle = std::pin::pin!(handle);
        assert!(handle.as_mut().poll(&mut cx).is_pending());
        assert!(!handle.is_finished());
        cell.publish(Err(TaskError::Cancelled));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(handle.is_finished());
        assert_eq!(
            handle.as_mut().poll(&mut cx),
            Poll::Ready(Err(TaskError::Cancelled))
        );
        drop(completer);
    }

    #[test]
    #[should_panic(expected = "after its future returned Ready")]
    fn polling_after_ready_panics() {
        let (job, handle) = HandleJob::job(|| 3);
        job.run();
        let mut cx = Context::from_waker(Waker::noop());
        let mut handle = std::pin::pin!(handle);
        assert_eq!(handle.as_mut().poll(&mut cx), Poll::Ready(Ok(3)));
        let _ = handle.as_mut().poll(&mut cx);
    }

    #[test]
    fn cancel_is_true_when_the_pool_cancelled_first() {
        let (job, handle) = HandleJob::job(|| 3);
        job.cancel();
        assert!(handle.cancel(), "it will never run");
        assert_eq!(handle.join(), Err(TaskError::Cancelled));
    }

    #[test]
    fn a_panicking_waker_is_contained_and_the_outcome_stays() {
        struct Panicking;
        impl Wake for Panicking {
            fn wake(self: Arc<Self>) {
                panic!("the waker panics");
            }
        }
        let (job, handle) = HandleJob::job(|| 4);
        let waker = Waker::from(Arc::new(Panicking));
        let mut cx = Context::from_waker(&waker);
        let mut handle = std::pin::pin!(handle);
        assert!(handle.as_mut().poll(&mut cx).is_pending());
        assert!(matches!(job.run(), super::super::RunOutcome::Completed));
        assert_eq!(handle.as_mut().poll(&mut cx), Poll::Ready(Ok(4)));
    }
}

/// loom model: a handle polled while the pool cancels its task (claim outside the slot lock,
/// outcome stored after). Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::super::HandleJob;
    use super::*;
    use crate::loom::{AtomicBool, Ordering, thread};
    use std::task::Wake;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Whatever the interleaving, the poll returns `Pending` (and is woken) or `Cancelled`;
    /// it never panics. Fails when a poll reads "claimed, no outcome" as "already taken".
    #[test]
    fn loom_handle_polled_while_cancelled() {
        crate::loom::model(3, || {
            let (job, handle) = HandleJob::job(|| 1u8);
            let canceller = thread::spawn(move || job.cancel());
            let woken = std::sync::Arc::new(Flag(AtomicBool::new(false)));
            let waker = Waker::from(woken.clone());
            let mut cx = Context::from_waker(&waker);
            let mut handle = std::pin::pin!(handle);
            match handle.as_mut().poll(&mut cx) {
                Poll::Ready(outcome) => {
                    assert_eq!(outcome, Err(TaskError::Cancelled));
                    canceller.join().unwrap();
                }
                Poll::Pending => {
                    canceller.join().unwrap();
                    assert!(
                        woken.0.load(Ordering::SeqCst),
                        "the publisher woke the poller"
                    );
                    assert_eq!(
                        handle.as_mut().poll(&mut cx),
                        Poll::Ready(Err(TaskError::Cancelled))
                    );
                }
            }
        });
    }
}

//! Tasks as the pool sees them ([`Job`]) and as the caller sees them ([`TaskHandle`]).
//!
//! A job is one pointer to one allocation: the pool can run it, cancel it without running it
//! (shutdown), or, when a thread could not be started for it, give the original closure back.
//! Fire-and-forget work is a boxed [`Runnable`] ([`PlainJob`]); work with a handle keeps the
//! closure and the cell its handle reads in the same block ([`HandleJob`]). The memory protocol
//! is in `raw.rs` and `README.md` beside it.
//!
//! Panics are caught here, inside the job: the worker thread never unwinds.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::loom::Ordering;

mod raw;

pub(crate) use raw::Job;
use raw::{CellRef, TaskCell};

/// Why a task produced no value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; the message is the panic payload when it was a string.
    #[error("task panicked: {0}")]
    Panicked(String),
    /// The task was cancelled before it started (by [`TaskHandle::cancel`] or by a shutdown
    /// whose grace period ended first).
    #[error("task cancelled before it started")]
    Cancelled,
}

/// What happened when the pool took a job.
#[derive(Debug)]
pub(crate) enum RunOutcome {
    /// The closure ran to its end.
    Completed,
    /// The closure panicked; the message is logged and counted.
    Panicked(String),
    /// The job had been cancelled through its handle; the closure was dropped unrun.
    Skipped,
}

/// Work the pool can hold in a boxed [`Job`]: run it, or drop it unrun with its bookkeeping.
pub(crate) trait Runnable: Send + 'static {
    /// Runs the work on the current thread, catching panics.
    fn run(self) -> RunOutcome;
    /// Runs the work as a worker's top-level task (the worker loop calls this; everything that
    /// runs a job inline inside another task calls [`run`](Self::run)).
    fn run_top(self) -> RunOutcome
    where
        Self: Sized,
    {
        self.run()
    }
    /// Drops the work without running it (shutdown); a handle, if any, yields
    /// [`TaskError::Cancelled`].
    fn cancel(self);
}

/// Bookkeeping a scheduler wraps around each of its tasks: called on the thread that runs the
/// task (or that drops it unrun). The pool's own submissions use `()`, which does nothing.
pub(crate) trait RunHooks: Send + 'static {
    /// Just before the closure runs; `false` cancels the task instead of running it.
    fn begin(&mut self) -> bool;
    /// Just after the closure returned or panicked.
    fn end(&mut self);
    /// The task left without running (cancelled through its handle or at shutdown).
    fn discard(&mut self);
}

impl RunHooks for () {
    #[inline]
    fn begin(&mut self) -> bool {
        true
    }
    #[inline]
    fn end(&mut self) {}
    #[inline]
    fn discard(&mut self) {}
}

/// Renders a panic payload as text.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Fire-and-forget work: the closure alone (plus its scheduler's hooks), no handle.
pub(crate) struct PlainJob<F, H = ()>(pub(crate) F, pub(crate) H);

impl<F: FnOnce() + Send + 'static, H: RunHooks> Runnable for PlainJob<F, H> {
    fn run(self) -> RunOutcome {
        let PlainJob(f, mut hooks) = self;
        if !hooks.begin() {
            return RunOutcome::Skipped;
        }
        let result = catch_unwind(AssertUnwindSafe(f));
        hooks.end();
        match result {
            Ok(()) => RunOutcome::Completed,
            Err(payload) => RunOutcome::Panicked(panic_message(&*payload)),
        }
    }

    fn cancel(self) {
        let PlainJob(_, mut hooks) = self;
        hooks.discard();
    }
}

impl<F: FnOnce() + Send + 'static, H: RunHooks> PlainJob<F, H> {
    /// The job for `f` wrapped in `hooks`: one allocation.
    pub(crate) fn job(f: F, hooks: H) -> Job {
        Job::new(PlainJob(f, hooks))
    }

    /// Takes the closure back out of a job built as `PlainJob<F, H>`.
    pub(crate) fn recover(job: Job) -> F {
        job.recover::<PlainJob<F, H>>().0
    }
}

const QUEUED: usize = 0;
const RUNNING: usize = 1;
const DONE: usize = 2;
const CANCELLED: usize = 3;

struct Slot<T> {
    outcome: Option<Result<T, TaskError>>,
    waker: Option<Waker>,
}

impl<T> TaskCell<T> {
    fn finish(&self, outcome: Result<T, TaskError>, state: usize) {
        let waker = {
            let mut slot = self.slot.lock();
            slot.outcome = Some(outcome);
            self.state.store(state, Ordering::Release);
            self.done.notify_all();
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Moves QUEUED → CANCELLED; `true` if this call won.
    fn try_cancel(&self) -> bool {
        if self
            .state
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.finish(Err(TaskError::Cancelled), CANCELLED);
            true
        } else {
            false
        }
    }
}

/// Work with a handle: the closure and the cell it reports to share one allocation.
pub(crate) struct HandleJob<F, T, H = ()>(PhantomData<fn(F, H) -> T>);

impl<F, T> HandleJob<F, T, ()>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    /// Builds the job and the handle that observes it.
    pub(crate) fn job(f: F) -> (Job, TaskHandle<T>) {
        Self::with_hooks(f, ())
    }
}

impl<F, T, H> HandleJob<F, T, H>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    H: RunHooks,
{
    /// Builds the job, wrapped in `hooks`, and the handle that observes it.
    pub(crate) fn with_hooks(f: F, hooks: H) -> (Job, TaskHandle<T>) {
        let (job, cell) = Job::with_cell(f, hooks);
        (job, TaskHandle { cell })
    }

    /// Takes the closure back out of a job built as `HandleJob<F, T, H>`; the handle, if still
    /// held, yields [`TaskError::Cancelled`].
    pub(crate) fn recover(job: Job) -> F {
        job.recover_with_cell::<F, T, H>()
    }
}

/// The body of a job with a cell: run `f` unless the handle cancelled it first, and publish.
fn run_with_cell<F, T, H>(f: F, mut hooks: H, cell: &TaskCell<T>) -> RunOutcome
where
    F: FnOnce() -> T,
    H: RunHooks,
{
    if cell
        .state
        .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        hooks.discard();
        return RunOutcome::Skipped;
    }
    if !hooks.begin() {
        cell.finish(Err(TaskError::Cancelled), CANCELLED);
        return RunOutcome::Skipped;
    }
    let result = catch_unwind(AssertUnwindSafe(f));
    // The scheduler's bookkeeping ends before the value is published, so a caller that
    // joined the handle sees the scheduler already past this task.
    hooks.end();
    match result {
        Ok(value) => {
            cell.finish(Ok(value), DONE);
            RunOutcome::Completed
        }
        Err(payload) => {
            let message = panic_message(&*payload);
            cell.finish(Err(TaskError::Panicked(message.clone())), DONE);
            RunOutcome::Panicked(message)
        }
    }
}

/// The producing side of a [`TaskHandle`] whose work is not one closure (a flow, a future):
/// whoever drives the work starts it, then completes it exactly once.
pub(crate) struct Completer<T> {
    /// `None` once the outcome is published.
    cell: Option<CellRef<T>>,
}

impl<T: Send + 'static> Completer<T> {
    /// A new pending task: the completer and the handle that observes it.
    pub(crate) fn new() -> (Self, TaskHandle<T>) {
        let (mine, theirs) = CellRef::new_pair();
        (Completer { cell: Some(mine) }, TaskHandle { cell: theirs })
    }
}

impl<T> Completer<T> {
    fn cell(&self) -> &CellRef<T> {
        self.cell
            .as_ref()
            .expect("a completer is used only before it completes")
    }

    /// Marks the work started; `false` if the handle cancelled it first (then the work must be
    /// dropped, and the completer too).
    pub(crate) fn start(&self) -> bool {
        let cell = self.cell();
        cell.state
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            || cell.state.load(Ordering::Acquire) == RUNNING
    }

    /// `true` if the handle cancelled the work before it started.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cell().state.load(Ordering::Acquire) == CANCELLED
    }

    /// Publishes the outcome (nothing, if the handle already cancelled the work).
    pub(crate) fn complete(mut self, outcome: Result<T, TaskError>) {
        if let Some(cell) = self.cell.take() {
            Self::publish(&cell, outcome);
        }
    }

    fn publish(cell: &TaskCell<T>, outcome: Result<T, TaskError>) {
        if cell.state.load(Ordering::Acquire) == CANCELLED {
            return;
        }
        match outcome {
            Err(TaskError::Cancelled) => {
                if !cell.try_cancel() {
                    cell.finish(Err(TaskError::Cancelled), CANCELLED);
                }
            }
            other => cell.finish(other, DONE),
        }
    }
}

/// Work dropped without an outcome (its job was cancelled unrun at shutdown, or refused with no
/// one left to retry it) reports `Cancelled`: a handle never waits forever.
impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            Self::publish(&cell, Err(TaskError::Cancelled));
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
pub struct TaskHandle<T> {
    cell: CellRef<T>,
}

impl<T> TaskHandle<T> {
    /// Waits for the task and returns its value, or why there is none.
    pub fn join(self) -> Result<T, TaskError> {
        let mut slot = self.cell.slot.lock();
        loop {
            if let Some(outcome) = slot.outcome.take() {
                return outcome;
            }
            self.cell.done.wait(&mut slot);
        }
    }

    /// Waits at most `timeout` for the task.
    ///
    /// Returns `Ok(outcome)` when the task finished (or was cancelled) in time, and gives the
    /// handle back as `Err(handle)` when it did not, so the caller can wait again or cancel.
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
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, TaskError>, TaskHandle<T>> {
        let deadline = Instant::now().checked_add(timeout);
        {
            let mut slot = self.cell.slot.lock();
            loop {
                if let Some(outcome) = slot.outcome.take() {
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

    /// `true` once the task has finished running or was cancelled: [`join`](Self::join) will
    /// not block.
    pub fn is_finished(&self) -> bool {
        matches!(self.cell.state.load(Ordering::Acquire), DONE | CANCELLED)
    }

    /// Cancels the task if it has not started; `true` if it will never run.
    ///
    /// A task that already started cannot be stopped; `cancel` then returns `false` and the
    /// task runs to its end.
    pub fn cancel(&self) -> bool {
        self.cell.try_cancel()
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.cell.state.load(Ordering::Acquire) {
            QUEUED => "queued",
            RUNNING => "running",
            DONE => "done",
            _ => "cancelled",
        };
        f.debug_struct("TaskHandle").field("state", &state).finish()
    }
}

/// A handle is a pointer to its task's cell: moving it never moves the task, whatever `T` is.
impl<T> Unpin for TaskHandle<T> {}

/// Awaiting a handle waits for the task without blocking the executor thread.
///
/// The pool thread that finishes the task wakes the awaiting future's waker. Polling again
/// after the future returned `Ready` panics, like other completed futures.
impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.cell.slot.lock();
        if let Some(outcome) = slot.outcome.take() {
            return Poll::Ready(outcome);
        }
        assert!(
            !matches!(self.cell.state.load(Ordering::Acquire), DONE | CANCELLED),
            "TaskHandle polled after it returned Ready"
        );
        match &slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn plain_job_reports_a_panic_with_its_message() {
        let job = PlainJob::job(|| panic!("boom"), ());
        match job.run() {
            RunOutcome::Panicked(message) => assert_eq!(message, "boom"),
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    #[test]
    fn handle_job_delivers_its_value() {
        let (job, handle) = HandleJob::job(|| 5);
        assert!(matches!(job.run(), RunOutcome::Completed));
        assert!(handle.is_finished());
        assert_eq!(handle.join(), Ok(5));
    }

    #[test]
    fn cancelled_handle_job_is_skipped_and_never_runs() {
        let (job, handle) = HandleJob::job(|| -> u8 { panic!("must not run") });
        assert!(handle.cancel());
        assert!(!handle.cancel(), "a second cancel does nothing");
        assert!(matches!(job.run(), RunOutcome::Skipped));
        assert_eq!(handle.join(), Err(TaskError::Cancelled));
    }

    #[test]
    fn cancel_after_start_is_refused() {
        let (job, handle) = HandleJob::job(|| 1);
        assert!(matches!(job.run(), RunOutcome::Completed));
        assert!(!handle.cancel());
        assert_eq!(handle.join(), Ok(1));
    }

    #[test]
    fn recover_gives_the_closure_back() {
        fn nine() -> u32 {
            9
        }
        let (job, handle) = HandleJob::job(nine as fn() -> u32);
        let f = HandleJob::<fn() -> u32, u32>::recover(job);
        assert_eq!(f(), 9);
        assert_eq!(
            handle.join(),
            Err(TaskError::Cancelled),
            "a recovered job never runs"
        );

        fn round_trip<F: FnOnce() + Send + 'static>(f: F) -> F {
            PlainJob::<F>::recover(PlainJob::job(f, ()))
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let f = round_trip(move || tx.send(7).unwrap());
        f();
        assert_eq!(rx.recv(), Ok(7));
    }

    #[test]
    fn job_and_handle_on_different_threads() {
        for _ in 0..8 {
            let (job, handle) = HandleJob::job(|| vec![1u8, 2, 3]);
            let runner = std::thread::spawn(move || job.run());
            assert_eq!(handle.join(), Ok(vec![1, 2, 3]));
            assert!(matches!(runner.join().unwrap(), RunOutcome::Completed));

            let (job, handle) = HandleJob::job(|| 1u8);
            let canceller = std::thread::spawn(move || handle.cancel());
            let outcome = job.run();
            let cancelled = canceller.join().unwrap();
            assert_eq!(cancelled, matches!(outcome, RunOutcome::Skipped));
        }
    }
}

//! Tasks as the pool sees them ([`Job`]) and as the caller sees them ([`TaskHandle`]).
//!
//! A job is one pointer to one allocation: the pool can run it, cancel it without running it
//! (shutdown), or, when a thread could not be started for it, give the original closure back.
//! Fire-and-forget work is a boxed [`Runnable`] ([`PlainJob`]); work with a handle keeps the
//! closure and the cell its handle reads in the same block ([`HandleJob`]). The memory protocol
//! is in `raw.rs`, the cell's state word in `state.rs`, and both are explained in `README.md`
//! beside them.
//!
//! Panics are caught here, inside the job: the worker thread never unwinds. A task's own panic
//! becomes [`TaskError::Panicked`]; panics from user code that runs outside the task's closure
//! (a payload's, a captured value's or a result's `Drop`, a waker) are contained where the job
//! meets them (`unwind.rs`). A job run by a worker counts its end in the pool's tally before it
//! publishes its outcome (`report.rs`).

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};

mod error;
mod handle;
mod raw;
mod report;
mod state;
mod unwind;

pub use error::{Panic, TaskError};
pub use handle::TaskHandle;
use raw::{CellRef, TaskCell};
pub(crate) use raw::{Job, ScopeEraser};
pub(crate) use report::{Report, Tally};
pub(crate) use unwind::{contain, drop_contained, drop_payload};

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
    /// Runs the work on the current thread, catching panics. Not counted in any pool's tally
    /// (the dispatch layer runs work inline this way).
    fn run(self) -> RunOutcome;
    /// Runs the work as a worker's top-level task (the worker loop calls this; everything that
    /// runs a job inline inside another task calls [`run`](Self::run)). Work that publishes an
    /// outcome to a handle must call [`Report::count`] just before it publishes; the default
    /// runs [`run`](Self::run) and leaves the count to the worker, which counts after the run
    /// returns (right for work that publishes nothing).
    fn run_top(self, report: &Report<'_>) -> RunOutcome
    where
        Self: Sized,
    {
        let _ = report;
        self.run()
    }
    /// Drops the work without running it (shutdown); a handle, if any, yields
    /// [`TaskError::Cancelled`]. A panic from user code dropped here must be contained.
    fn cancel(self);
}

/// Bookkeeping a scheduler wraps around each of its tasks: called on the thread that runs the
/// task (or that drops it unrun). The pool's own submissions use `()`, which does nothing.
pub(crate) trait RunHooks: Send + 'static {
    /// What [`begin`](Self::begin) hands to [`end`](Self::end): it lives on the running
    /// thread's stack for the length of the run, not in the job, so a queued job carries only
    /// what it needs before it starts.
    type Running;
    /// Just before the closure runs; `None` cancels the task instead of running it.
    fn begin(&mut self) -> Option<Self::Running>;
    /// Just after the closure returned or panicked.
    fn end(&mut self, running: Self::Running);
    /// The task left without running (cancelled through its handle or at shutdown).
    fn discard(&mut self);
}

impl RunHooks for () {
    type Running = ();
    #[inline]
    fn begin(&mut self) -> Option<()> {
        Some(())
    }
    #[inline]
    fn end(&mut self, (): ()) {}
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
        let Some(running) = hooks.begin() else {
            drop_contained("a cancelled task's closure", f);
            return RunOutcome::Skipped;
        };
        let result = catch_unwind(AssertUnwindSafe(f));
        hooks.end(running);
        match result {
            Ok(()) => RunOutcome::Completed,
            Err(payload) => {
                let message = panic_message(&*payload);
                drop_payload(payload);
                RunOutcome::Panicked(message)
            }
        }
    }

    fn cancel(self) {
        let PlainJob(f, mut hooks) = self;
        drop_contained("a cancelled task's closure", f);
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
        (job, TaskHandle::new(cell))
    }

    /// Takes the closure back out of a job built as `HandleJob<F, T, H>`; the handle, if still
    /// held, yields [`TaskError::Cancelled`].
    pub(crate) fn recover(job: Job) -> F {
        job.recover_with_cell::<F, T, H>()
    }
}

/// The body of a job with a cell: run `f` unless the handle cancelled it first, count the end in
/// `report` (when a worker runs it), then publish.
fn run_with_cell<F, T, H>(
    f: F,
    mut hooks: H,
    cell: &TaskCell<T>,
    report: Option<&Report<'_>>,
) -> RunOutcome
where
    F: FnOnce() -> T,
    H: RunHooks,
{
    if !cell.state.claim_run() {
        // The handle cancelled the task and published `Cancelled` itself.
        report::count(report, &RunOutcome::Skipped);
        drop_contained("a cancelled task's closure", f);
        hooks.discard();
        return RunOutcome::Skipped;
    }
    // Claimed: from here the handle waits for this run's outcome. Should the scheduler's
    // bookkeeping (`begin`, `end`) panic, the guard publishes a panic as it unwinds, so the
    // handle still resolves; the worker catches and counts the panic.
    let unwinding = PublishOnUnwind(cell);
    let Some(running) = hooks.begin() else {
        std::mem::forget(unwinding);
        report::count(report, &RunOutcome::Skipped);
        cell.publish(Err(TaskError::Cancelled));
        drop_contained("a cancelled task's closure", f);
        return RunOutcome::Skipped;
    };
    let result = catch_unwind(AssertUnwindSafe(f));
    // The scheduler's bookkeeping ends and the pool counts the task before the value is
    // published, so a caller that joined the handle sees both already past this task.
    hooks.end(running);
    std::mem::forget(unwinding);
    match result {
        Ok(value) => {
            report::count(report, &RunOutcome::Completed);
            cell.publish(Ok(value));
            RunOutcome::Completed
        }
        Err(payload) => {
            let panic = Panic::caught(payload);
            let outcome = RunOutcome::Panicked(panic.message().to_owned());
            report::count(report, &outcome);
            cell.publish(Err(TaskError::Panicked(panic)));
            outcome
        }
    }
}

/// Publishes a panic if dropped: armed while a claimed task's outcome is not yet published, and
/// forgotten (never dropped) on every normal path.
struct PublishOnUnwind<'a, T>(&'a TaskCell<T>);

impl<T> Drop for PublishOnUnwind<'_, T> {
    fn drop(&mut self) {
        self.0.publish(Err(TaskError::Panicked(Panic::from(
            "a panic escaped the task's bookkeeping",
        ))));
    }
}

/// The producing side of a [`TaskHandle`] whose work is not one closure (a flow, a future):
/// whoever drives the work starts it, then completes it exactly once.
///
/// The completer is the only party that claims its cell to run (the handle only cancels), so a
/// cell claimed to run was claimed by this completer, which alone publishes its outcome.
pub(crate) struct Completer<T> {
    /// `None` once the outcome is published.
    cell: Option<CellRef<T>>,
}

impl<T: Send + 'static> Completer<T> {
    /// A new pending task: the completer and the handle that observes it.
    pub(crate) fn new() -> (Self, TaskHandle<T>) {
        let (mine, theirs) = CellRef::new_pair();
        (Completer { cell: Some(mine) }, TaskHandle::new(theirs))
    }
}

impl<T> Completer<T> {
    fn cell(&self) -> &CellRef<T> {
        self.cell
            .as_ref()
            .expect("a completer is used only before it completes")
    }

    /// Marks the work started (or finds it started by an earlier call); `false` if the handle
    /// cancelled it first (then the work must be dropped, and the completer too).
    pub(crate) fn start(&self) -> bool {
        let state = &self.cell().state;
        state.claim_run() || state.load().is_running()
    }

    /// `true` if the handle cancelled the work before it started.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cell().state.load().is_cancelled()
    }

    /// Publishes the outcome (nothing, if the handle already cancelled the work).
    pub(crate) fn complete(mut self, outcome: Result<T, TaskError>) {
        if let Some(cell) = self.cell.take() {
            Self::publish(&cell, outcome);
        }
    }

    fn publish(cell: &TaskCell<T>, outcome: Result<T, TaskError>) {
        let state = cell.state.load();
        if state.is_cancelled() {
            return; // the handle's cancel published `Cancelled`
        }
        if state.is_queued() {
            let claimed = match outcome {
                Err(TaskError::Cancelled) => {
                    // never started: cancel (unless the handle just did)
                    cell.try_cancel();
                    return;
                }
                _ => cell.state.claim_run(),
            };
            if !claimed {
                return; // the handle cancelled it meanwhile, and published
            }
        }
        cell.publish(outcome);
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
        assert!(
            handle.cancel(),
            "a second cancel changes nothing, and still says the task will never run"
        );
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

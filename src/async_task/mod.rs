//! [`Scheduler::spawn_async`]: futures polled on a scheduler's pool, each wake submitting the
//! next poll to the same scheduler.
//!
//! No reactor is bundled. A future runs here when whatever it waits for wakes its waker from
//! another thread: uberpool's own [`TaskHandle`]s (awaiting pool work), channels whose sender
//! wakes the receiver (`futures::channel`, `tokio::sync` primitives, which need no runtime), or
//! your own wakers. Futures that need a runtime's reactor or timer (`tokio::net`,
//! `tokio::time`) panic when first polled outside their runtime ("there is no reactor running");
//! the panic is caught and the task's handle yields [`TaskError::Panicked`].
//!
//! The poll/wake protocol is in `state.rs`; a poll refused by a full pool is offered again from
//! the service's timer (`dispatch::offer_or_retry`), so no thread blocks on it.

mod state;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::loom::Mutex;

use crate::dispatch::{Attempt, Patience, Redeliver, offer_or_retry};
use crate::rejected::{RejectKind, Rejected};
use crate::scheduler::Scheduler;
use crate::task::{
    Completer, Job, Panic, Report, RunHooks, RunOutcome, Runnable, TaskError, TaskHandle,
    drop_contained,
};
use crate::view::TaskScope;

use state::{AfterPoll, PollState};

enum Slot<Fut> {
    /// Not polled yet: can still be handed back to the caller.
    Fresh(Fut),
    /// Polled at least once, pinned in its box.
    Pinned(Pin<Box<Fut>>),
    /// Taken by the poll in progress, or gone (finished, panicked, cancelled).
    Empty,
}

/// A spawned future, the word that decides who polls it, and the completer of its handle.
struct AsyncTask<Fut: Future> {
    /// The future, between polls. Locked only to take it out and put it back, never while it
    /// is polled (the word guarantees one poll at a time).
    slot: Mutex<Slot<Fut>>,
    state: PollState,
    done: Mutex<Option<Completer<Fut::Output>>>,
    scheduler: Scheduler,
}

impl<Fut> AsyncTask<Fut>
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    /// Ends the task: drops the future (outside any lock; its `Drop` is user code) and publishes
    /// the outcome — after counting the pool task it ends in, when there is one (`report`), so a
    /// caller whose `join` returned finds that task in the pool's counters.
    fn complete(&self, outcome: Result<Fut::Output, TaskError>, report: Option<&Report<'_>>) {
        if !self.state.complete() {
            return;
        }
        if let Some(report) = report {
            report.count(&RunOutcome::Completed);
        }
        let future = std::mem::replace(&mut *self.slot.lock(), Slot::Empty);
        drop_contained("an async task's future", future);
        let done = self.done.lock().take();
        if let Some(done) = done {
            done.complete(outcome);
        }
    }

    /// Polls the future once, on a pool thread of the scheduler (`report`: the pool task this
    /// poll is, when the pool runs it as its top-level task).
    fn poll_once(self: Arc<Self>, report: Option<&Report<'_>>) {
        if !self.state.begin_poll() {
            return; // completed or cancelled meanwhile
        }
        if !self.done.lock().as_ref().is_some_and(Completer::start) {
            self.complete(Err(TaskError::Cancelled), report); // cancelled through its handle
            return;
        }
        let mut future = match std::mem::replace(&mut *self.slot.lock(), Slot::Empty) {
            Slot::Fresh(future) => Box::pin(future),
            Slot::Pinned(future) => future,
            Slot::Empty => unreachable!("a running poll finds the future in its slot"),
        };
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
            Ok(Poll::Ready(value)) => {
                drop_contained("an async task's future", future);
                self.complete(Ok(value), report);
            }
            Ok(Poll::Pending) => {
                *self.slot.lock() = Slot::Pinned(future);
                if self.state.end_poll() == AfterPoll::PollAgain {
                    self.submit_poll();
                }
            }
            Err(payload) => {
                drop_contained("an async task's future", future);
                self.complete(Err(TaskError::Panicked(Panic::caught(payload))), report);
            }
        }
    }

    /// Submits the next poll (the caller entered `SCHEDULED`): from this thread first, then from
    /// the timer while the pool is full.
    fn submit_poll(self: Arc<Self>) {
        let timer = self.scheduler.view().timer.clone();
        offer_or_retry(&timer, NextPoll(self));
    }
}

/// One poll of a task as a pool job, inside the scheduler's task scope.
struct PollJob<Fut: Future> {
    task: Arc<AsyncTask<Fut>>,
    scope: TaskScope,
}

impl<Fut> PollJob<Fut>
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn poll(self, report: Option<&Report<'_>>) -> RunOutcome {
        let PollJob { task, mut scope } = self;
        let Some(running) = scope.begin() else {
            // The scheduler was shut down with `shutdown_now` before this poll started: the
            // poll is counted cancelled, before the task's end is published.
            if let Some(report) = report {
                report.count(&RunOutcome::Skipped);
            }
            task.complete(Err(TaskError::Cancelled), None);
            return RunOutcome::Skipped;
        };
        task.poll_once(report);
        scope.end(running);
        RunOutcome::Completed
    }

    /// Offers a poll of `task` to `scheduler`; a refusal gives the task back.
    fn offer(
        scheduler: &Scheduler,
        task: Arc<AsyncTask<Fut>>,
        patience: Patience,
    ) -> Result<(), Rejected<Arc<AsyncTask<Fut>>>> {
        scheduler.dispatch(
            task,
            patience,
            |task, scope| (Job::new(PollJob { task, scope }), ()),
            |job| job.recover::<PollJob<Fut>>().task,
        )
    }
}

impl<Fut> Runnable for PollJob<Fut>
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn run(self) -> RunOutcome {
        self.poll(None)
    }

    fn run_top(self, report: &Report<'_>) -> RunOutcome {
        self.poll(Some(report))
    }

    fn cancel(self) {
        let PollJob { task, mut scope } = self;
        scope.discard();
        task.complete(Err(TaskError::Cancelled), None);
    }
}

/// The next poll of a task, on its way to the pool.
struct NextPoll<Fut: Future>(Arc<AsyncTask<Fut>>);

impl<Fut> Redeliver for NextPoll<Fut>
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    /// The task is accounted for by its handle, not by the shutdown report.
    const IS_TASK: bool = false;

    /// Never waits and never runs the poll on the waking thread: a waker is called from
    /// anywhere — a pool thread finishing a task, a shutdown cancelling held work, code holding
    /// a lock — and a wake that blocked for room in a full pool or gate could wait on work only
    /// the waking thread would release. A full target is retried from the timer.
    fn attempt(self) -> Attempt<Self> {
        let scheduler = self.0.scheduler.clone();
        match PollJob::offer(&scheduler, self.0, Patience::Never) {
            Ok(()) => Attempt::Taken,
            Err(refused) if refused.kind() == RejectKind::Shutdown => {
                refused
                    .into_inner()
                    .complete(Err(TaskError::Cancelled), None);
                Attempt::Taken
            }
            Err(refused) => Attempt::Busy(NextPoll(refused.into_inner())),
        }
    }

    fn abandon(self) {
        self.0.complete(Err(TaskError::Cancelled), None);
    }
}

impl<Fut> Wake for AsyncTask<Fut>
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn wake(self: Arc<Self>) {
        if self.state.wake() {
            self.submit_poll();
        }
    }
}

impl Scheduler {
    /// Runs `future` on this scheduler's pool: the first poll is submitted like
    /// [`submit`](Self::submit) (so a full pool makes the caller wait, run it, or get the future
    /// back, per its role), and every wake submits the next poll to the same scheduler —
    /// Mule's "the response continues on CPU_LIGHT". A poll refused by a full pool is offered
    /// again from the service's timer; no thread blocks on it.
    ///
    /// No reactor is bundled: a future makes progress here when whatever it waits for wakes its
    /// waker from another thread — uberpool's own [`TaskHandle`]s (awaiting pool work, the main
    /// use), channels whose sender wakes the receiver (`tokio::sync` or `futures::channel`
    /// primitives, which need no runtime), or your own wakers. Futures that need a runtime's
    /// reactor or timer (`tokio::net`, `tokio::time`) panic when polled outside that runtime;
    /// the panic is caught and the handle yields [`TaskError::Panicked`].
    ///
    /// ```
    /// use uberpool::SchedulerService;
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let (light, io) = (service.cpu_light(), service.io());
    /// let handle = light.spawn_async(async move {
    ///     let body = io.submit(|| "fetched")?.await?;   // blocking IO on the IO pool
    ///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(body.len()) // continues on CPU_LIGHT
    /// })?;
    /// assert_eq!(handle.join()?.unwrap(), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn_async<Fut>(&self, future: Fut) -> Result<TaskHandle<Fut::Output>, Rejected<Fut>>
    where
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let (done, handle) = Completer::new();
        let task = Arc::new(AsyncTask {
            slot: Mutex::new(Slot::Fresh(future)),
            state: PollState::scheduled(),
            done: Mutex::new(Some(done)),
            scheduler: self.clone(),
        });
        match PollJob::offer(self, task, Patience::Policy) {
            Ok(()) => Ok(handle),
            Err(refused) => {
                let kind = refused.kind();
                let task = refused.into_inner();
                task.state.complete();
                let future = match std::mem::replace(&mut *task.slot.lock(), Slot::Empty) {
                    Slot::Fresh(future) => future,
                    _ => unreachable!("a refused first poll leaves the future unpolled"),
                };
                // The completer goes with the task; the caller gets the future back instead.
                drop(task.done.lock().take());
                drop(handle);
                Err(Rejected::new(future, kind, self.name()))
            }
        }
    }
}

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

use crate::dispatch::{Attempt, Redeliver, drop_user_value, offer_or_retry};
use crate::rejected::{RejectKind, Rejected};
use crate::scheduler::Scheduler;
use crate::task::{Completer, TaskError, TaskHandle, panic_message};

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
    /// the outcome.
    fn complete(&self, outcome: Result<Fut::Output, TaskError>) {
        if !self.state.complete() {
            return;
        }
        let future = std::mem::replace(&mut *self.slot.lock(), Slot::Empty);
        drop_user_value(future, "an async task's future");
        let done = self.done.lock().take();
        if let Some(done) = done {
            done.complete(outcome);
        }
    }

    /// Polls the future once, on a pool thread of the scheduler.
    fn poll_once(self: Arc<Self>) {
        if !self.state.begin_poll() {
            return; // completed or cancelled meanwhile
        }
        if !self.done.lock().as_ref().is_some_and(Completer::start) {
            self.complete(Err(TaskError::Cancelled)); // cancelled through its handle
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
                drop_user_value(future, "an async task's future");
                self.complete(Ok(value));
            }
            Ok(Poll::Pending) => {
                *self.slot.lock() = Slot::Pinned(future);
                if self.state.end_poll() == AfterPoll::PollAgain {
                    self.submit_poll();
                }
            }
            Err(payload) => {
                let message = panic_message(&*payload);
                drop_user_value(payload, "a panic payload");
                drop_user_value(future, "an async task's future");
                self.complete(Err(TaskError::Panicked(message)));
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

/// The next poll of a task, on its way to the pool.
struct NextPoll<Fut: Future>(Arc<AsyncTask<Fut>>);

impl<Fut> Redeliver for NextPoll<Fut>
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    /// The task is accounted for by its handle, not by the shutdown report.
    const IS_TASK: bool = false;

    fn attempt(self) -> Attempt<Self> {
        let task = self.0.clone();
        match self.0.scheduler.execute(move || task.poll_once()) {
            Ok(()) => Attempt::Taken,
            Err(refused) if refused.kind() == RejectKind::Shutdown => {
                drop(refused);
                self.0.complete(Err(TaskError::Cancelled));
                Attempt::Taken
            }
            Err(refused) => {
                drop(refused);
                Attempt::Busy(self)
            }
        }
    }

    fn abandon(self) {
        self.0.complete(Err(TaskError::Cancelled));
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
        let first = task.clone();
        match self.submit(move || first.poll_once()) {
            Ok(_) => Ok(handle),
            Err(refused) => {
                let kind = refused.kind();
                drop(refused);
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

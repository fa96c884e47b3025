//! [`Scheduler::spawn_async`]: futures polled on a scheduler's pool.
//!
//! No reactor is bundled. A future runs here when whatever it waits for wakes its waker from
//! another thread: uberpool's own [`TaskHandle`]s (awaiting pool work), channels whose sender
//! wakes the receiver (`std`-free channels such as `futures::channel`, `tokio::sync` primitives,
//! which need no runtime), or your own wakers. Futures that need a runtime's reactor or timer
//! (`tokio::net`, `tokio::time`) never make progress here.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use parking_lot::Mutex;

use crate::rejected::{RejectKind, Rejected};
use crate::scheduler::Scheduler;
use crate::task::{Completer, TaskError, TaskHandle, panic_message};

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

/// Delay before a poll refused by a full pool is offered again (from the timer).
const RETRY: Duration = Duration::from_millis(2);

enum Slot<Fut> {
    /// Not polled yet: can still be handed back to the caller.
    Fresh(Fut),
    Pinned(Pin<Box<Fut>>),
    Done,
}

/// A spawned future and the state machine that makes sure it is polled by one thread at a time:
/// IDLE → SCHEDULED (a poll job is queued) → RUNNING → IDLE, or → NOTIFIED when woken while
/// running (then polled again), or → DONE.
struct AsyncTask<Fut: Future> {
    slot: Mutex<Slot<Fut>>,
    state: AtomicU8,
    done: Mutex<Option<Completer<Fut::Output>>>,
    scheduler: Scheduler,
}

impl<Fut> AsyncTask<Fut>
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn complete(&self, outcome: Result<Fut::Output, TaskError>) {
        self.state.store(DONE, Ordering::SeqCst);
        *self.slot.lock() = Slot::Done;
        if let Some(done) = self.done.lock().take() {
            done.complete(outcome);
        }
    }

    /// Offers one poll to the scheduler; a full pool means a retry from the timer, a shut-down
    /// one cancels the task.
    fn submit_poll(self: Arc<Self>) {
        let task = self.clone();
        match self.scheduler.execute(move || task.poll_once()) {
            Ok(()) => {}
            Err(refused) if refused.kind() == RejectKind::Shutdown => {
                self.complete(Err(TaskError::Cancelled));
            }
            Err(_) => {
                let task = self.clone();
                if !self
                    .scheduler
                    .defer(RETRY, Box::new(move || task.submit_poll()))
                {
                    self.complete(Err(TaskError::Cancelled));
                }
            }
        }
    }

    fn poll_once(self: Arc<Self>) {
        if self
            .state
            .compare_exchange(SCHEDULED, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return; // completed or cancelled meanwhile
        }
        if !self.done.lock().as_ref().is_some_and(Completer::start) {
            // cancelled through its handle before the first poll
            self.complete(Err(TaskError::Cancelled));
            return;
        }
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        let mut slot = self.slot.lock();
        let mut future = match std::mem::replace(&mut *slot, Slot::Done) {
            Slot::Fresh(future) => Box::pin(future),
            Slot::Pinned(future) => future,
            Slot::Done => return,
        };
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
            Ok(Poll::Ready(value)) => {
                drop(slot);
                self.complete(Ok(value));
            }
            Ok(Poll::Pending) => {
                *slot = Slot::Pinned(future);
                drop(slot);
                if self
                    .state
                    .compare_exchange(RUNNING, IDLE, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
                {
                    // woken while running: poll again, behind the work already queued
                    self.state.store(SCHEDULED, Ordering::SeqCst);
                    self.submit_poll();
                }
            }
            Err(payload) => {
                drop(slot);
                self.complete(Err(TaskError::Panicked(panic_message(&*payload))));
            }
        }
    }
}

impl<Fut> Wake for AsyncTask<Fut>
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn wake(self: Arc<Self>) {
        loop {
            match self.state.load(Ordering::SeqCst) {
                IDLE => {
                    if self
                        .state
                        .compare_exchange(IDLE, SCHEDULED, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        self.submit_poll();
                        return;
                    }
                }
                RUNNING => {
                    if self
                        .state
                        .compare_exchange(RUNNING, NOTIFIED, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        return;
                    }
                }
                _ => return, // already scheduled, notified or done
            }
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
    /// reactor or timer (`tokio::net`, `tokio::time`) never make progress here.
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
            state: AtomicU8::new(SCHEDULED),
            done: Mutex::new(Some(done)),
            scheduler: self.clone(),
        });
        let first = task.clone();
        match self.submit(move || first.poll_once()) {
            Ok(_) => Ok(handle),
            Err(refused) => {
                let kind = refused.kind();
                drop(refused);
                task.state.store(DONE, Ordering::SeqCst);
                let future = match std::mem::replace(&mut *task.slot.lock(), Slot::Done) {
                    Slot::Fresh(future) => future,
                    _ => unreachable!("a refused first poll leaves the future unpolled"),
                };
                Err(Rejected::new(future, kind, self.name()))
            }
        }
    }
}

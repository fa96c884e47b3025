//! [`Scheduler`]: the public handle to a scheduler view — submit, execute, shut down, observe.
//!
//! Everything behind it lives elsewhere: the view's state and the path a task takes through it
//! (`view/`), the policy and the pools (`dispatch.rs`), timed tasks (`schedule/`), async tasks
//! (`async_task/`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::TaskClass;
use crate::dispatch::Patience;
use crate::rejected::{RejectKind, Rejected};
use crate::task::{HandleJob, Job, PlainJob, TaskHandle};
use crate::throttle::{Throttle, ThrottleStatus};
use crate::view::{TaskScope, View, ViewSpec};

/// A handle to submit work of one class, with its own lifecycle. Cheap to clone: clones share
/// the view.
///
/// When the pool behind the view is full, what happens depends on the calling thread (see the
/// crate documentation's table): a foreign thread waits, an IO thread submitting IO work runs it
/// itself, a CPU thread is refused, and so on. Refused work comes back in [`Rejected`].
///
/// ```
/// use uberpool::SchedulerService;
///
/// let service = SchedulerService::builder().build()?;
/// let io = service.io();
/// let reply = io.submit(|| "250 OK")?;        // a blocking SMTP call in real life
/// assert_eq!(reply.join()?, "250 OK");
/// io.shutdown();                                // this view only; the pool carries on
/// assert!(io.submit(|| ()).is_err());
/// assert!(service.io().submit(|| ()).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Scheduler {
    view: Arc<View>,
}

impl Scheduler {
    /// A scheduler over a new view.
    pub(crate) fn new(spec: ViewSpec) -> Self {
        Scheduler {
            view: View::new(spec),
        }
    }

    /// The view's shared state (timed and async tasks build on it).
    pub(crate) fn view(&self) -> &Arc<View> {
        &self.view
    }

    /// The class of work this scheduler runs.
    pub fn class(&self) -> TaskClass {
        self.view.class
    }

    /// The scheduler's name (used in logs and rejections).
    pub fn name(&self) -> &str {
        &self.view.name
    }

    /// The name of the pool behind this scheduler.
    pub fn pool_name(&self) -> &str {
        self.view.pool.pool.name()
    }

    /// Runs `f` and returns a handle to its value.
    ///
    /// When the pool is full, the calling thread's role decides: wait until the pool accepts,
    /// run `f` now on this thread (the handle is then already finished), or refuse with
    /// [`RejectKind::Busy`]. After shutdown the work is refused with [`RejectKind::Shutdown`].
    pub fn submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.dispatch_handle(f, Patience::Policy)
    }

    /// Like [`submit`](Self::submit), but never waits and never runs `f` on this thread: a full
    /// pool refuses at once.
    pub fn try_submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.dispatch_handle(f, Patience::Never)
    }

    /// Like [`submit`](Self::submit), but a wait for a full pool gives up after `timeout`
    /// ([`RejectKind::Busy`], with `f` returned).
    pub fn submit_timeout<F, T>(
        &self,
        f: F,
        timeout: Duration,
    ) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.dispatch_handle(f, Patience::within(timeout))
    }

    /// Runs `f` without a handle (one allocation). Refusals follow the same rules as
    /// [`submit`](Self::submit).
    pub fn execute<F>(&self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.dispatch(
            f,
            Patience::Policy,
            |f, scope| (PlainJob::job(f, scope), ()),
            PlainJob::<F, TaskScope>::recover,
        )
    }

    fn dispatch_handle<F, T>(&self, f: F, patience: Patience) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.dispatch(
            f,
            patience,
            HandleJob::with_hooks,
            HandleJob::<F, T, TaskScope>::recover,
        )
    }

    /// Offers `f` to the pool and carries out the policy when the pool is full: `build` makes
    /// the job (wrapped in the view's task scope), `recover` takes `f` back out of a refused one.
    pub(crate) fn dispatch<F, R>(
        &self,
        f: F,
        patience: Patience,
        build: impl FnOnce(F, TaskScope) -> (Job, R),
        recover: fn(Job) -> F,
    ) -> Result<R, Rejected<F>> {
        let view = &self.view;
        if !view.try_enter() {
            return Err(Rejected::new(f, RejectKind::Shutdown, view.name.as_str()));
        }
        let (job, result) = build(f, TaskScope::new(view.clone()));
        match view.offer(job, patience) {
            Ok(()) => Ok(result),
            Err((job, kind)) => {
                view.leave_unrun();
                if kind != RejectKind::Shutdown {
                    view.log_refusal(kind);
                }
                let f = recover(job);
                Err(Rejected::new(f, kind, view.name.as_str()))
            }
        }
    }

    /// Stops accepting work on this scheduler. Tasks already submitted still run — including
    /// those waiting in a throttled scheduler's queue and pending delayed tasks, as in Mule —
    /// while periodic and cron tasks end; callers waiting at a throttled scheduler's limit are
    /// refused with [`RejectKind::Shutdown`]. Other schedulers over the same pool are
    /// unaffected. Does not wait.
    pub fn shutdown(&self) {
        self.view.shutdown();
    }

    /// Stops accepting work and cancels this scheduler's tasks that have not started (their
    /// handles yield [`TaskError::Cancelled`](crate::TaskError::Cancelled)): queued ones, those
    /// in a throttled scheduler's own queue, and pending delayed tasks. Periodic and cron tasks
    /// end. Returns how many tasks were cancelled. Running tasks cannot be interrupted; they
    /// run to their end.
    ///
    /// A task already handed to the pool cannot be taken out of the pool's queue from here: it
    /// is marked cancelled, and when a pool thread reaches it, it is dropped unrun and its handle
    /// resolves as `Cancelled` — at once if the pool has an idle thread, otherwise as soon as
    /// one frees. It never runs.
    pub fn shutdown_now(&self) -> usize {
        self.view.shutdown_now()
    }

    /// Graceful stop: shuts down (periodic and cron tasks end), waits up to the scheduler's stop
    /// timeout (default 5 s) for its queued and running tasks and pending delayed tasks, then
    /// cancels what has not started. Returns `true` if every task finished in time.
    ///
    /// Called from one of the scheduler's own tasks, it does not wait for that task.
    pub fn stop(&self) -> bool {
        self.view.stop()
    }

    /// The gate of a throttled or rate-limited scheduler (see
    /// [`SchedulerConfig::max_concurrent_tasks`](crate::SchedulerConfig::max_concurrent_tasks)
    /// and [`SchedulerConfig::rate_limit`](crate::SchedulerConfig::rate_limit)); `None` for a
    /// plain view.
    ///
    /// ```
    /// use uberpool::{SchedulerConfig, SchedulerService, TaskClass};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// assert!(service.io().throttle().is_none());
    /// let gated = service.scheduler_with(
    ///     TaskClass::Io,
    ///     SchedulerConfig::new().max_concurrent_tasks(3),
    /// )?;
    /// let status = gated.throttle().unwrap();
    /// assert_eq!((status.limit, status.in_flight), (Some(3), 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn throttle(&self) -> Option<ThrottleStatus> {
        self.view.throttle.as_ref().map(Throttle::status)
    }

    /// How many more tasks this scheduler would accept right now without making the caller
    /// wait, running a task on the caller's thread, or refusing: the room of its pool (idle
    /// threads, queue room, threads it may still start) and, for a throttled or rate-limited
    /// scheduler, the free slots and queue room of its gate. Zero once it is shut down.
    ///
    /// A snapshot, for callers that pull work from elsewhere (a queue consumer takes only as
    /// many jobs as this says): other submitters may take the room before the caller uses it,
    /// and the submission then follows the usual rules.
    ///
    /// ```
    /// use uberpool::{SchedulerConfig, SchedulerService, TaskClass};
    ///
    /// let service = SchedulerService::builder().build()?;
    /// let relay = service.scheduler_with(
    ///     TaskClass::Io,
    ///     SchedulerConfig::new().max_concurrent_tasks(4).queue_size(10),
    /// )?;
    /// assert_eq!(relay.free_slots(), 4 + 10);
    /// relay.shutdown();
    /// assert_eq!(relay.free_slots(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn free_slots(&self) -> usize {
        if self.is_shutdown() {
            return 0;
        }
        let pool_free = self.view.pool.pool.free_slots();
        match &self.view.throttle {
            None => pool_free,
            Some(throttle) => throttle.free_slots(pool_free),
        }
    }

    /// `true` once the scheduler (or its pool) no longer accepts work.
    pub fn is_shutdown(&self) -> bool {
        self.view.is_shut()
    }

    /// `true` once the scheduler is shut down and none of its tasks is queued or running (the
    /// task calling this, if it is one of the scheduler's, does not count).
    pub fn is_terminated(&self) -> bool {
        self.is_shutdown() && self.view.outstanding_excluding_current() == 0
    }
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Scheduler").field(&self.view).finish()
    }
}
